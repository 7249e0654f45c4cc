public import MechaCore
public import MechaResiliency
import NIOCore
import Synchronization

/// Service invocation, written once: the local app or a remote sidecar, caller identity headers,
/// error mapping. Bodies stream in both directions.
public struct InvokeAPI: Sendable {
    let identity: SidecarIdentity
    let appChannel: (any AppChannel)?
    let remote: any RemoteInvoker
    let readiness: Readiness?
    /// Every call to another app goes through its Resiliency policy here.
    public let outbound: OutboundSeam
    /// This app's `spec.accessControl`, checked for every invocation another sidecar brings
    /// (replaced when hot reload sees the Configuration change).
    public var accessControl: AccessControl? { self.accessControlBox.current.withLock { $0 } }
    let accessControlBox: AccessControlBox

    /// Holds the access control in force; a new one applies to the next call.
    public final class AccessControlBox: Sendable {
        let current: Mutex<AccessControl?>
        init(_ initial: AccessControl?) { self.current = Mutex(initial) }
    }

    /// Installs a new `spec.accessControl` (nil: none) for the calls that come next.
    public func replaceAccessControl(_ accessControl: AccessControl?) {
        self.accessControlBox.current.withLock { $0 = accessControl }
    }

    public init(
        identity: SidecarIdentity, appChannel: (any AppChannel)?, remote: any RemoteInvoker, readiness: Readiness? = nil, outbound: OutboundSeam = OutboundSeam(),
        accessControl: AccessControl? = nil
    ) {
        self.accessControlBox = AccessControlBox(accessControl)
        self.identity = identity
        self.appChannel = appChannel
        self.remote = remote
        self.readiness = readiness
        self.outbound = outbound
    }

    /// Largest error answer kept in memory so that, when retries give up, the app's last answer
    /// can still be passed to the caller.
    static let retainedErrorAnswer = 4 << 20

    /// The local app channel (nil without `--app-port`).
    public var localAppChannel: (any AppChannel)? { self.appChannel }
    /// The remote invoker, when it can name hops without waiting (the fast path's remote leg).
    public var directHops: (any DirectHopProvider)? { self.remote as? any DirectHopProvider }
    /// False when app health checks are on and the app is unhealthy: it is not called then.
    public var isAppHealthy: Bool { self.readiness?.isAppHealthy ?? true }

    /// Headers that carry caller identity; whatever the caller sent under these names is replaced.
    public static let identityHeaders: Set<String> = ["dapr-caller-app-id", "dapr-caller-namespace", "dapr-callee-app-id"]

    /// Whether the caller another sidecar names may invoke `method` (as the app will see it,
    /// without the leading slash) with `verb` (nil on gRPC): nil when it may, else daprd's error
    /// (403, `ERR_DIRECT_INVOKE` wrapping the PermissionDenied status).
    ///
    /// The caller is who the sending sidecar says it is (`dapr-caller-app-id`,
    /// `dapr-caller-namespace`, which it sets itself): the listener only trusts them from sidecars
    /// holding the Mecha home's peer token. Its trust domain is this app's.
    public func authorize(callerAppID: String?, callerNamespace: String?, method: String, verb: String?) -> APIError? {
        guard case .denied(let reason) = self.accessDecision(callerAppID: callerAppID, callerNamespace: callerNamespace, method: method, verb: verb)
        else { return nil }
        return APIError(
            errorCode: "ERR_DIRECT_INVOKE", message: "failed to invoke, id: \(self.identity.appID), err: rpc error: code = PermissionDenied desc = \(reason)",
            httpStatus: 403, grpcStatus: .permissionDenied)
    }

    /// The access control decision itself (what the gRPC proxy answers with PermissionDenied).
    public func accessDecision(callerAppID: String?, callerNamespace: String?, method: String, verb: String?) -> AccessControl.Decision {
        guard let accessControl = self.accessControl else { return .allowed }
        let caller = callerAppID.flatMap { appID -> CallerIdentity? in
            guard !appID.isEmpty else { return nil }
            return CallerIdentity(trustDomain: accessControl.spec.trustDomain, namespace: callerNamespace ?? self.identity.namespace, appID: appID)
        }
        return accessControl.decide(caller: caller, method: method, verb: verb)
    }

    /// Splits `app.namespace` as Dapr does; more than one dot is an error.
    public func parseTarget(_ target: String) throws(APIError) -> (appID: String, namespace: String) {
        let parts = target.split(separator: ".", omittingEmptySubsequences: false)
        switch parts.count {
        case 1: return (target, self.identity.namespace)
        case 2: return (String(parts[0]), String(parts[1]))
        default: throw .directInvoke(appID: target, "invalid app id \(target)")
        }
    }

    /// Invokes `request.method` on `target`. Errors before the app answered are `APIError`s; the
    /// app's own non-2xx answers are passed to `handler` untouched.
    public func invoke<Output: Sendable>(
        target: String,
        request: InvocationRequest,
        _ handler: (InvocationResponse) async throws -> Output
    ) async throws -> Output {
        let (appID, namespace) = try self.parseTarget(target)
        var outgoing = request
        switch InvocationMethod.normalize(outgoing.method) {
        case .success(let method):
            outgoing.method = method
        case .failure(let invalid):
            throw APIError(
                errorCode: "ERR_DIRECT_INVOKE",
                message: "failed to invoke, id: \(target), err: \(invalid.description)",
                httpStatus: 500,
                grpcStatus: .invalidArgument
            )
        }
        outgoing.headers.removeAll { Self.identityHeaders.contains($0.name.lowercased()) }
        outgoing.headers.add("dapr-caller-app-id", self.identity.appID)
        outgoing.headers.add("dapr-caller-namespace", self.identity.namespace)
        outgoing.headers.add("dapr-callee-app-id", appID)
        if !outgoing.headers.contains("traceparent") {
            // daprd always sends a trace context: the current call's span (a gRPC call's travels
            // in `TraceScope`, not in headers), else an unsampled one.
            outgoing.headers.add("traceparent", TraceScope.traceParent ?? TraceContext.newUnsampled())
        }
        let policies = self.outbound.policies
        let policy = policies.isEmpty ? TargetPolicy.none : policies.app(appID)
        let context = InvocationContext(builtInRetries: !policies.namesApp(appID))
        let local = appID == self.identity.appID && namespace == self.identity.namespace
        let remote = self.remote
        let request = outgoing
        @Sendable func once(_ handler: (InvocationResponse) async throws -> Output) async throws -> Output {
            if local { return try await self.invokeLocal(request, target: target, handler) }
            return try await remote.invoke(appID: appID, namespace: namespace, request: request, context: context, handler)
        }
        do {
            if policy.isEmpty { return try await once(handler) }
            return try await self.underPolicy(policy, appID: appID, request: request, once: once, handler)
        } catch let error as InvocationError {
            throw APIError(
                errorCode: "ERR_DIRECT_INVOKE",
                message: "failed to invoke, id: \(target), err: \(error.description)",
                httpStatus: error.status,
                grpcStatus: error.status == 403 ? .permissionDenied : .internalError
            )
        } catch let rejected as InvocationRejected {
            throw rejected.error
        } catch let error as ResiliencyError {
            // daprd: HTTP 500 ERR_DIRECT_INVOKE; gRPC DeadlineExceeded for a timeout, Unknown for
            // an open breaker (the raw Go error through grpc-go).
            throw APIError(
                errorCode: "ERR_DIRECT_INVOKE",
                message: "failed to invoke, id: \(target), err: \(error.description)",
                httpStatus: 500,
                grpcStatus: error.code == .timeout ? .deadlineExceeded : .unknown
            )
        }
    }

    /// An app's non-2xx/3xx answer as a failure the policy sees (retried per `matching`, counted
    /// by the breaker); the body is kept so the last one can be passed on when the policy gives up.
    struct AppStatusFailure: StatusCodedFailure, CustomStringConvertible {
        var response: InvocationResponse
        var body: ByteBuffer
        var httpStatusCode: Int? { self.response.status }
        var grpcStatusCode: Int? { nil }
        var description: String { "app answered \(self.response.status)" }
    }

    /// The caller's handler failed (it went away): not the target's fault, never retried.
    struct HandlerFailure: PermanentFailure {
        var underlying: any Error
    }

    /// daprd's service invocation under a policy: the request is replayed on retries only when its
    /// body is in memory; app answers outside 200-399 are failures for the policy; when it gives
    /// up on such an answer, the app's last answer is passed through unchanged.
    func underPolicy<Output: Sendable>(
        _ policy: TargetPolicy,
        appID: String,
        request: InvocationRequest,
        once: @Sendable ((InvocationResponse) async throws -> Output) async throws -> Output,
        _ handler: (InvocationResponse) async throws -> Output
    ) async throws -> Output {
        let replayable = request.body.bufferedBytes != nil
        do {
            return try await withoutActuallyEscaping(handler) { handler in
                let handlerBox = UncheckedHandler(handler)
                return try await policy.execute(breakerKey: "\(appID):\(request.method)", retries: replayable) { _, disarm in
                    try await once { response in
                        if response.status < 200 || response.status > 399 {
                            let body = try await response.body.collect(upTo: Self.retainedErrorAnswer)
                            throw AppStatusFailure(response: response, body: body)
                        }
                        // daprd's timeout ends with the answer's head: the body streams unbounded.
                        disarm.answered()
                        do {
                            return try await handlerBox.handler(response)
                        } catch {
                            throw HandlerFailure(underlying: error)
                        }
                    }
                }
            }
        } catch let failure as AppStatusFailure {
            var response = failure.response
            response.body = BodyStream(buffer: failure.body)
            return try await handler(response)
        } catch let failure as HandlerFailure {
            throw failure.underlying
        }
    }

    /// Delivers an invocation that arrived from another sidecar (or from this one) to the local app.
    public func invokeLocal<Output: Sendable>(
        _ request: InvocationRequest,
        target: String,
        _ handler: (InvocationResponse) async throws -> Output
    ) async throws -> Output {
        guard let appChannel = self.appChannel else {
            throw APIError.directInvoke(appID: target, "cannot invoke local endpoint: app channel not initialized")
        }
        // With app health checks on, an unhealthy app is not called (daprd's behaviour).
        guard self.isAppHealthy else {
            throw APIError.directInvoke(appID: target, "app is not in a healthy state")
        }
        do {
            return try await appChannel.invoke(request, handler)
        } catch let error as InvocationError {
            throw APIError.directInvoke(appID: target, "error invoking app channel: \(error.description)")
        }
    }
}

/// W3C trace context values.
public enum TraceContext {
    /// A fresh `traceparent` with random trace and span ids and the "not sampled" flag.
    public static func newUnsampled() -> String {
        let trace = (FastRandom.next(), FastRandom.next())
        let span = FastRandom.next()
        // "00-" + 32 hex + "-" + 16 hex + "-00": 55 bytes, written in place.
        return String(unsafeUninitializedCapacity: 55) { buffer in
            let digits: StaticString = "0123456789abcdef"
            var index = 0
            func put(_ byte: UInt8) {
                buffer[index] = byte
                index += 1
            }
            func hex(_ value: UInt64) {
                for shift in stride(from: 60, through: 0, by: -4) {
                    put(digits.utf8Start[Int((value >> UInt64(shift)) & 0xF)])
                }
            }
            put(UInt8(ascii: "0")); put(UInt8(ascii: "0")); put(UInt8(ascii: "-"))
            hex(trace.0); hex(trace.1)
            put(UInt8(ascii: "-"))
            hex(span)
            put(UInt8(ascii: "-")); put(UInt8(ascii: "0")); put(UInt8(ascii: "0"))
            return index
        }
    }
}

/// Carries the caller's (non-Sendable) response handler into the policy's `@Sendable` operation.
/// Safe: the operation runs its attempts one after another, never two at once.
struct UncheckedHandler<Output>: @unchecked Sendable {
    let handler: (InvocationResponse) async throws -> Output
    init(_ handler: @escaping (InvocationResponse) async throws -> Output) { self.handler = handler }
}

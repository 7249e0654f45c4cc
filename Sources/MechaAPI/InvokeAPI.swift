public import MechaCore

/// Service invocation, written once: the local app or a remote sidecar, caller identity headers,
/// error mapping. Bodies stream in both directions.
public struct InvokeAPI: Sendable {
    let identity: SidecarIdentity
    let appChannel: (any AppChannel)?
    let remote: any RemoteInvoker
    let readiness: Readiness?

    public init(identity: SidecarIdentity, appChannel: (any AppChannel)?, remote: any RemoteInvoker, readiness: Readiness? = nil) {
        self.identity = identity
        self.appChannel = appChannel
        self.remote = remote
        self.readiness = readiness
    }

    /// The local app channel (nil without `--app-port`).
    public var localAppChannel: (any AppChannel)? { self.appChannel }
    /// The remote invoker, when it can name hops without waiting (the fast path's remote leg).
    public var directHops: (any DirectHopProvider)? { self.remote as? any DirectHopProvider }
    /// False when app health checks are on and the app is unhealthy: it is not called then.
    public var isAppHealthy: Bool { self.readiness?.isAppHealthy ?? true }

    /// Headers that carry caller identity; whatever the caller sent under these names is replaced.
    public static let identityHeaders: Set<String> = ["dapr-caller-app-id", "dapr-caller-namespace", "dapr-callee-app-id"]

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
        var request = request
        switch InvocationMethod.normalize(request.method) {
        case .success(let method):
            request.method = method
        case .failure(let invalid):
            throw APIError(
                errorCode: "ERR_DIRECT_INVOKE",
                message: "failed to invoke, id: \(target), err: \(invalid.description)",
                httpStatus: 500,
                grpcStatus: .invalidArgument
            )
        }
        request.headers.removeAll { Self.identityHeaders.contains($0.name.lowercased()) }
        request.headers.add("dapr-caller-app-id", self.identity.appID)
        request.headers.add("dapr-caller-namespace", self.identity.namespace)
        request.headers.add("dapr-callee-app-id", appID)
        if !request.headers.contains("traceparent") {
            // daprd always sends a trace context; without tracing it is an unsampled one.
            request.headers.add("traceparent", TraceContext.newUnsampled())
        }
        if appID == self.identity.appID && namespace == self.identity.namespace {
            return try await self.invokeLocal(request, target: target, handler)
        }
        do {
            return try await self.remote.invoke(appID: appID, namespace: namespace, request: request, handler)
        } catch let error as InvocationError {
            throw APIError(
                errorCode: "ERR_DIRECT_INVOKE",
                message: "failed to invoke, id: \(target), err: \(error.description)",
                httpStatus: error.status,
                grpcStatus: error.status == 403 ? .permissionDenied : .internalError
            )
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

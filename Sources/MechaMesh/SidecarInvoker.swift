public import HTTP1Client
public import Logging
public import MechaAPI
public import MechaCore
public import MechaIdentity
import MechaResiliency
import NIOCore
import NIOHTTP1
import Synchronization

/// Sends invocations to another app's sidecar through the mesh stack: the target's TrafficPolicy
/// routes the call (split, mirror, fault, local rate limit), its balancer picks an instance that is
/// not ejected, and the outcome feeds balancing and outlier ejection. Without a Resiliency policy
/// naming the app, Dapr's built-in retries apply: a call that cannot reach an instance (before any
/// response byte, body in memory) goes to another, up to three attempts.
public final class SidecarInvoker: RemoteInvoker, DirectHopProvider {
    /// Header naming the app the caller meant to reach; the receiving sidecar refuses others.
    public static let targetHeader = "x-mecha-target-app"
    /// Set by a receiving sidecar on answers it produced itself (not the app's), e.g. misdirected calls.
    public static let sidecarErrorHeader = "x-mecha-sidecar-error"
    /// Dapr's built-in service invocation retries: 3.
    static let builtInAttempts = 3

    public let mesh: Mesh
    let client: HTTP1Client
    let logger: Logger
    /// This host's address and name, for `X-Forwarded-*` / `Forwarded` on outgoing calls.
    let hostAddress: String
    let hostname: String
    /// The `X-Forwarded-*` / `Forwarded` headers of every hop (they only name this host).
    let forwardedHeaders: [(name: String, value: String)]
    /// Presented to a receiving sidecar that listens in plaintext, which refuses calls without it.
    let peerToken: PeerToken
    /// This sidecar's mTLS identity, for instances that listen with mTLS (nil: mTLS is off here,
    /// and such instances cannot be called).
    let tls: MeshTLS?
    /// Shares `globalRateLimit` budgets with the other sidecars through a state store.
    let globalLimiter: GlobalRateLimiter?

    public init(
        mesh: Mesh,
        client: HTTP1Client,
        peerToken: PeerToken,
        tls: MeshTLS? = nil,
        logger: Logger,
        hostAddress: String = "127.0.0.1",
        hostname: String = "localhost",
        globalLimiter: GlobalRateLimiter? = nil
    ) {
        self.peerToken = peerToken
        self.tls = tls
        self.globalLimiter = globalLimiter
        self.mesh = mesh
        self.client = client
        self.logger = logger
        self.hostAddress = hostAddress
        self.hostname = hostname
        let forwardedFor = hostAddress.contains(":") ? "\"[\(hostAddress)]\"" : hostAddress
        self.forwardedHeaders = [
            ("x-forwarded-for", hostAddress),
            ("x-forwarded-host", hostname),
            ("forwarded", "for=\(forwardedFor);by=\(forwardedFor);host=\(hostname)"),
        ]
    }

    public convenience init(
        resolver: any NameResolver,
        client: HTTP1Client,
        peerToken: PeerToken,
        logger: Logger,
        hostAddress: String = "127.0.0.1",
        hostname: String = "localhost"
    ) {
        self.init(mesh: Mesh(resolver: resolver, hostname: hostname), client: client, peerToken: peerToken, logger: logger, hostAddress: hostAddress, hostname: hostname)
    }

    /// What a TrafficPolicy route decided for one call, kept for its retries.
    struct CallPlan: Sendable {
        var appID: String
        var delay: Duration?
        var abortStatus: Int?
        /// The route's shared limit: budget key, requests per second, state store.
        var global: (key: String, limit: Int, store: String)?
    }

    static func tooManyRequests(_ appID: String, _ scope: String = "") -> InvocationRejected {
        InvocationRejected(
            APIError(
                errorCode: "ERR_TOO_MANY_REQUESTS",
                message: "rate limit exceeded for calls to app \(appID)\(scope)",
                httpStatus: 429,
                grpcStatus: .resourceExhausted
            )
        )
    }

    public func invoke<Output: Sendable>(
        appID: String,
        namespace: String,
        request: InvocationRequest,
        context: InvocationContext,
        _ handler: (InvocationResponse) async throws -> Output
    ) async throws -> Output {
        let firstAttempt = context.triedInstances.isEmpty
        let plan = try context.once { () throws(InvocationRejected) -> CallPlan in
            try self.plan(appID: appID, namespace: namespace, request: request)
        }
        if firstAttempt, let global = plan.global, let limiter = self.globalLimiter {
            let admitted: Bool
            do {
                admitted = try await limiter.admit(key: global.key, limit: global.limit, store: global.store)
            } catch {
                throw InvocationRejected(.directInvoke(appID: appID, "\(error)"))
            }
            guard admitted else { throw Self.tooManyRequests(appID, " (global limit)") }
        }
        if firstAttempt, let delay = plan.delay { try await Task.sleep(for: delay) }
        if let status = plan.abortStatus {
            let body = ByteBuffer(string: "fault filter abort")
            return try await handler(InvocationResponse(status: status, headers: ["content-type": "text/plain"], contentType: "text/plain", body: BodyStream(buffer: body)))
        }
        let target: MeshTarget
        do {
            target = try await self.mesh.resolved(appID: plan.appID, namespace: namespace)
        } catch Mesh.MeshError.noInstances {
            throw InvocationError("couldn't find service: \(plan.appID)")
        } catch {
            throw InvocationError("couldn't find service: \(plan.appID): \(error)")
        }
        let hashKey = target.hashOnHeader.flatMap { request.headers.first($0) }
        let replayable = request.body.bufferedBytes != nil
        let attempts = replayable && context.builtInRetries ? Self.builtInAttempts : 1
        var lastError: (any Error)?
        var made = 0
        for _ in 0..<attempts {
            // Not ejected and not tried by this call; failing that, not tried; failing that, any.
            guard let lease = target.pick(hashKey: hashKey, excluding: context.triedInstances) ?? target.pick(hashKey: hashKey) else { break }
            context.markTried(lease.instance.instanceID)
            made += 1
            do {
                return try await self.send(request, to: lease, of: target, appID: plan.appID, handler)
            } catch let error as Misdirected {
                lastError = error
                self.logger.debug("instance \(lease.instance.instanceID) of \(plan.appID) refused the call: \(error)")
            } catch let error as HandlerFailure {
                throw error.underlying
            } catch let error as APIError {
                throw error
            } catch {
                lastError = error
                self.logger.debug("cannot reach sidecar of \(plan.appID) at \(lease.instance.host):\(lease.instance.internalPort): \(error)")
            }
        }
        guard made > 0 else { throw InvocationError("couldn't find service: \(plan.appID)") }
        throw InvocationError("failed to invoke target \(plan.appID) after \(made) attempts. Error: \(lastError.map { "\($0)" } ?? "unknown")")
    }

    /// Routes a call by the target's TrafficPolicy: the split target, the fault, the mirror (sent
    /// here, fire-and-forget) and the local rate limit.
    func plan(appID: String, namespace: String, request: InvocationRequest) throws(InvocationRejected) -> CallPlan {
        guard let target = self.mesh.policyTarget(appID: appID, namespace: namespace), target.hasRoutes else { return CallPlan(appID: appID) }
        let decision = target.route(path: "/" + request.method, verb: request.httpVerb) { request.headers.first($0) }
        guard target.admit(route: decision.routeIndex) else { throw Self.tooManyRequests(appID) }
        if let mirror = decision.mirror, let body = request.body.bufferedBytes {
            var copy = request
            copy.body = BodyStream(buffer: body)
            Task { await self.mirror(copy, to: mirror, namespace: namespace) }
        }
        var global: (key: String, limit: Int, store: String)?
        if let index = decision.routeIndex, let limit = target.policy?.routes[index].globalRateLimit {
            global = ("\(target.policy?.name ?? appID)/\(index)", limit.requestsPerSecond, limit.store)
        }
        return CallPlan(appID: decision.target ?? appID, delay: decision.delay, abortStatus: decision.abortStatus, global: global)
    }

    /// Sends a copy to `appID` and throws its answer away.
    func mirror(_ request: InvocationRequest, to appID: String, namespace: String) async {
        do {
            let target = try await self.mesh.resolved(appID: appID, namespace: namespace)
            guard let lease = target.pick() else { return }
            try await self.send(request, to: lease, of: target, appID: appID) { response in
                for try await _ in response.body {}
            }
        } catch {
            self.logger.debug("mirrored call to \(appID) failed: \(error)")
        }
    }

    /// The next instance of `appID` by the target's balancer when resolution is cached, with the
    /// headers `send` adds on this hop. Targets with TrafficPolicy routes take the general path.
    public func directHop(appID: String, namespace: String) -> DirectHop? {
        guard let target = self.mesh.cached(appID: appID, namespace: namespace), !target.hasRoutes, target.hashOnHeader == nil,
            let lease = target.pick()
        else { return nil }
        let instance = lease.instance
        // An mTLS instance this sidecar cannot call: the general path says why.
        guard !instance.mtls || self.tls != nil else {
            target.finish(lease, success: true)
            return nil
        }
        return DirectHop(host: instance.host, port: instance.internalPort, headers: self.hopHeaders(appID: appID, mtls: instance.mtls), tls: instance.mtls) {
            success in
            target.finish(lease, success: success)
        }
    }

    /// The target check, the peer token (to a plaintext listener; over mTLS the certificate
    /// speaks for the caller) and, as daprd adds them on the sidecar-to-sidecar hop, `X-Forwarded-*`.
    func hopHeaders(appID: String, mtls: Bool) -> [(name: String, value: String)] {
        (mtls ? [(Self.targetHeader, appID)] : [(Self.targetHeader, appID), (PeerToken.header, self.peerToken.value)]) + self.forwardedHeaders
    }

    /// An instance listening with mTLS, called by a sidecar running without it.
    struct NeedsMutualTLS: Error, CustomStringConvertible {
        var appID: String
        var description: String {
            "the sidecar of \(self.appID) accepts only mTLS connections, and this sidecar runs with mTLS disabled (spec.mtls.enabled or --enable-mtls)"
        }
    }

    struct Misdirected: Error, CustomStringConvertible {
        var description: String
    }

    struct HandlerFailure: Error {
        var underlying: any Error
    }

    func send<Output: Sendable>(
        _ request: InvocationRequest,
        to lease: MeshTarget.Lease,
        of target: MeshTarget,
        appID: String,
        _ handler: (InvocationResponse) async throws -> Output
    ) async throws -> Output {
        let instance = lease.instance
        let reported = Mutex(false)
        @Sendable func report(_ success: Bool) {
            guard reported.withLock({ done in defer { done = true }; return !done }) else { return }
            target.finish(lease, success: success)
        }
        do {
            return try await self.send(request, to: instance, appID: appID, report: report, handler)
        } catch let error as HandlerFailure {
            report(true)
            throw error
        } catch {
            report(false)
            throw error
        }
    }

    func send<Output: Sendable>(
        _ request: InvocationRequest,
        to instance: AppInstance,
        appID: String,
        report: @Sendable (Bool) -> Void,
        _ handler: (InvocationResponse) async throws -> Output
    ) async throws -> Output {
        var headers = HTTPHeaders()
        for field in request.headers where !field.name.lowercased().hasPrefix("x-mecha-") {
            headers.add(name: field.name, value: field.value)
        }
        guard !instance.mtls || self.tls != nil else { throw NeedsMutualTLS(appID: appID) }
        for (name, value) in self.hopHeaders(appID: appID, mtls: instance.mtls) { headers.add(name: name, value: value) }
        if let contentType = request.contentType { headers.replaceOrAdd(name: "content-type", value: contentType) }
        var uri = "/" + request.method
        if !request.queryString.isEmpty { uri += "?" + request.queryString }
        let body: HTTP1RequestBody
        if let buffered = request.body.bufferedBytes {
            body = buffered.readableBytes == 0 ? .empty : .bytes(buffered)
        } else {
            body = .stream(ByteStream(request.body), length: request.body.length)
        }
        let httpRequest = HTTP1Request(
            target: HTTP1Target(
                host: instance.host, port: instance.internalPort, tls: instance.mtls,
                peer: instance.mtls ? MeshTLS.peer(appID: instance.appID, namespace: instance.namespace) : nil),
            method: HTTPMethod(rawValue: request.httpVerb),
            uri: uri,
            headers: headers,
            body: body
        )
        return try await self.client.execute(httpRequest) { response in
            if response.status.code == 421, response.headers.contains(name: Self.sidecarErrorHeader) {
                throw Misdirected(description: "instance serves another app")
            }
            // Outlier ejection counts 5xx answers as failures of the instance.
            report(response.status.code < 500)
            var responseHeaders = HeaderList()
            for (name, value) in response.headers where name.lowercased() != "content-length" && name.lowercased() != Self.sidecarErrorHeader {
                responseHeaders.add(name, value)
            }
            let length = response.headers.first(name: "content-length").flatMap(Int.init)
            do {
                return try await handler(
                    InvocationResponse(
                        status: Int(response.status.code),
                        headers: responseHeaders,
                        contentType: response.headers.first(name: "content-type"),
                        body: BodyStream(response.body, length: length)
                    )
                )
            } catch {
                throw HandlerFailure(underlying: error)
            }
        }
    }
}

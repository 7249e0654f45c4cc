public import GRPCCore
import GRPCNIOTransportHTTP2
public import Logging
public import MechaAPI
public import MechaCore
public import MechaIdentity
public import MechaMesh
public import MechaResiliency

/// Decides where proxied gRPC calls go (Dapr's gRPC proxying: any call an app sends to its sidecar
/// with metadata `dapr-app-id: <target>` reaches the target app, through the target's sidecar).
public struct GRPCProxyRouter: Sendable {
    public static let daprService = "dapr.proto.runtime.v1.Dapr"
    static let targetHeader = "x-mecha-target-app"

    let identity: SidecarIdentity
    /// The mesh stack the HTTP paths use too: the same instances, balancer and ejections.
    let mesh: Mesh
    /// Resiliency policies of target apps (timeout and circuit breaker on proxied calls).
    let outbound: OutboundSeam
    let pool: GRPCTransportPool
    /// Where the local app serves gRPC, when its protocol is gRPC.
    let appAddress: (host: String, port: Int)?
    let appAPIToken: String?
    /// Presented to other sidecars' plaintext internal gRPC ports, and required on ours when it
    /// is plaintext.
    let peerToken: PeerToken
    /// This sidecar's mTLS identity: our internal port listens with it, and calls to sidecars that
    /// listen with mTLS present it. Nil: mTLS is off.
    public let tls: MeshTLS?
    /// This app's invocation rules (`spec.accessControl`), for calls proxied to it.
    let invoke: InvokeAPI?
    let logger: Logger

    public init(
        identity: SidecarIdentity,
        mesh: Mesh,
        outbound: OutboundSeam = OutboundSeam(),
        pool: GRPCTransportPool,
        appAddress: (host: String, port: Int)?,
        appAPIToken: String?,
        peerToken: PeerToken,
        tls: MeshTLS? = nil,
        invoke: InvokeAPI? = nil,
        logger: Logger
    ) {
        self.tls = tls
        self.invoke = invoke
        self.peerToken = peerToken
        self.identity = identity
        self.mesh = mesh
        self.outbound = outbound
        self.pool = pool
        self.appAddress = appAddress
        self.appAPIToken = appAPIToken
        self.logger = logger
    }

    /// The public gRPC port: Dapr's own API is served; other services with `dapr-app-id` are
    /// forwarded to the target app (the local one, or another sidecar's internal gRPC port).
    public func routePublic(_ descriptor: MethodDescriptor, _ metadata: Metadata) async -> ProxyingServerTransport.Route {
        // The Dapr API's own methods pass the inbound chain in their interceptor.
        guard descriptor.service.fullyQualifiedService != Self.daprService else { return .serve }
        // Every other call — proxied or for a service nobody serves — has passed the inbound chain
        // (the API token) in `DaprGRPCServer`'s route before it gets here.
        guard let target = metadata[stringValues: "dapr-app-id"].first(where: { _ in true }), !target.isEmpty else { return .serve }
        var forwarded = metadata
        forwarded.removeAllValues(forKey: "dapr-api-token")
        for key in ["dapr-caller-app-id", "dapr-caller-namespace", "dapr-callee-app-id"] { forwarded.removeAllValues(forKey: key) }
        Self.removeInternalKeys(&forwarded)
        let parts = target.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return .reject(.invalidArgument, "invalid app id \(target)") }
        var appID = String(parts[0])
        let namespace = parts.count == 2 ? String(parts[1]) : self.identity.namespace
        // The target's TrafficPolicy routes apply to proxied calls too (`POST` with the path
        // `/<package.Service>/<Method>`): local rate limit, fault, split. Streams are not mirrored.
        if let routed = self.mesh.policyTarget(appID: appID, namespace: namespace), routed.hasRoutes {
            let decision = routed.route(path: "/" + descriptor.fullyQualifiedMethod, verb: "POST") { metadata[stringValues: $0].first(where: { _ in true }) }
            guard routed.admit(route: decision.routeIndex) else {
                return .reject(.resourceExhausted, "rate limit exceeded for calls to app \(appID)")
            }
            if let delay = decision.delay { try? await Task.sleep(for: delay) }
            if let status = decision.abortStatus {
                return .reject(Status.Code(HTTPStatusMapping.grpcCode(forHTTPStatus: status)), "fault filter abort")
            }
            if let split = decision.target { appID = split }
        }
        forwarded.addString(self.identity.appID, forKey: "dapr-caller-app-id")
        forwarded.addString(self.identity.namespace, forKey: "dapr-caller-namespace")
        forwarded.addString(appID, forKey: "dapr-callee-app-id")
        if appID == self.identity.appID && namespace == self.identity.namespace {
            return self.toLocalApp(forwarded)
        }
        let meshTarget: MeshTarget
        do {
            meshTarget = try await self.mesh.resolved(appID: appID, namespace: namespace)
        } catch Mesh.MeshError.noInstances {
            return .reject(.unavailable, "failed to proxy request: couldn't find service: \(appID)")
        } catch {
            return .reject(.unavailable, "failed to proxy request: couldn't find service: \(appID): \(error)")
        }
        guard let lease = meshTarget.pick(filter: { $0.grpcInternalPort > 0 }) else {
            return .reject(.unavailable, "failed to proxy request: couldn't find service: \(appID)")
        }
        let instance = lease.instance
        // daprd's policies for proxied calls: the target app's timeout and its breaker for this
        // method (`app:/pkg.Service/Method`); no retries (the stream cannot be replayed).
        let policy = self.outbound.policy(for: .app(appID))
        let breaker = policy.begin(breakerKey: "\(appID):/\(descriptor.fullyQualifiedMethod)")
        var ticket: CircuitBreaker.Ticket?
        if let breaker {
            do {
                ticket = try breaker.admit()
            } catch {
                meshTarget.finish(lease, success: true)
                return .reject(.unknown, error.description)
            }
        }
        let admitted = ticket
        let governance = ProxyCallGovernance(timeout: policy.timeout, timedOut: { policy.timedOut() }) { code in
            let failed = code != .ok
            if let breaker, let admitted { breaker.finish(admitted, success: !failed) }
            meshTarget.finish(lease, success: !(code == .unavailable || code == .deadlineExceeded || code == .internalError || code == .unknown))
        }
        forwarded.addString(appID, forKey: Self.targetHeader)
        // Over mTLS the certificate speaks for this sidecar; the token is for plaintext ports.
        if !instance.mtls { forwarded.addString(self.peerToken.value, forKey: PeerToken.header) }
        do {
            return .forward(try self.pool.transport(
                    host: instance.host, port: instance.grpcInternalPort, secure: instance.mtls,
                    peer: instance.mtls ? MeshTLS.peer(appID: instance.appID, namespace: instance.namespace) : nil), forwarded, governance)
        } catch {
            governance.finish(.unavailable)
            return .reject(.unavailable, "failed to proxy request: \(error)")
        }
    }

    /// The internal gRPC port: every call is for the local app, forwarded by another sidecar.
    public func routeInternal(_ descriptor: MethodDescriptor, _ metadata: Metadata, _ context: ServerContext) async -> ProxyingServerTransport.Route {
        var metadata = metadata
        if let tls = self.tls {
            // The listener completed an mTLS handshake; the caller is who its certificate says.
            let certificate = (context.transportSpecific as? HTTP2ServerTransport.Posix.Context)?.peerCertificate
            guard let peer = certificate.flatMap(tls.peerID(of:)) else {
                return .reject(.unauthenticated, "the peer's certificate carries no SPIFFE id of trust domain '\(tls.id.trustDomain)'")
            }
            metadata.removeAllValues(forKey: "dapr-caller-app-id")
            metadata.removeAllValues(forKey: "dapr-caller-namespace")
            metadata.addString(peer.appID, forKey: "dapr-caller-app-id")
            metadata.addString(peer.namespace, forKey: "dapr-caller-namespace")
        } else {
            guard self.peerToken.accepts(metadata[stringValues: PeerToken.header].first(where: { _ in true })) else {
                return .reject(.unauthenticated, APIError.peerUnauthenticated.message)
            }
        }
        let target = metadata[stringValues: Self.targetHeader].first(where: { _ in true }) ?? ""
        guard target == self.identity.appID else {
            return .reject(.unavailable, "this sidecar serves \(self.identity.appID), not \(target)")
        }
        // The app's access control, as daprd's proxy applies it: the full method as the operation,
        // no verb; a denial is the PermissionDenied status itself.
        if let invoke = self.invoke, invoke.accessControl != nil,
            case .denied(let reason) = invoke.accessDecision(
                callerAppID: metadata[stringValues: "dapr-caller-app-id"].first(where: { _ in true }),
                callerNamespace: metadata[stringValues: "dapr-caller-namespace"].first(where: { _ in true }), method: descriptor.fullyQualifiedMethod,
                verb: nil)
        {
            return .reject(.permissionDenied, reason)
        }
        var forwarded = metadata
        Self.removeInternalKeys(&forwarded)
        return self.toLocalApp(forwarded)
    }

    /// Drops every `x-mecha-` key: sidecar-internal metadata is never taken from a caller nor
    /// passed to an app.
    static func removeInternalKeys(_ metadata: inout Metadata) {
        var keys: Set<String> = []
        for (key, _) in metadata where key.lowercased().hasPrefix("x-mecha-") { keys.insert(key) }
        for key in keys { metadata.removeAllValues(forKey: key) }
    }

    func toLocalApp(_ metadata: Metadata) -> ProxyingServerTransport.Route {
        guard let app = self.appAddress else {
            return .reject(.unavailable, "failed to proxy request: app \(self.identity.appID) does not serve gRPC (start its sidecar with --app-protocol grpc)")
        }
        var forwarded = metadata
        if let token = self.appAPIToken {
            forwarded.removeAllValues(forKey: "dapr-api-token")
            forwarded.addString(token, forKey: "dapr-api-token")
        }
        do {
            return .forward(try self.pool.transport(host: app.host, port: app.port), forwarded)
        } catch {
            return .reject(.unavailable, "failed to proxy request: \(error)")
        }
    }
}

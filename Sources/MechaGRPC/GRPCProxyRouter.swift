public import GRPCCore
import GRPCNIOTransportHTTP2
public import Logging
public import MechaAPI
public import MechaCore

/// Decides where proxied gRPC calls go (Dapr's gRPC proxying: any call an app sends to its sidecar
/// with metadata `dapr-app-id: <target>` reaches the target app, through the target's sidecar).
public struct GRPCProxyRouter: Sendable {
    public static let daprService = "dapr.proto.runtime.v1.Dapr"
    static let targetHeader = "x-mecha-target-app"

    let identity: SidecarIdentity
    let resolver: any MechaCore.NameResolver
    let pool: GRPCTransportPool
    /// Where the local app serves gRPC, when its protocol is gRPC.
    let appAddress: (host: String, port: Int)?
    let apiToken: String?
    let appAPIToken: String?
    /// Presented to other sidecars' internal gRPC ports, and required on ours.
    let peerToken: PeerToken
    let logger: Logger

    public init(
        identity: SidecarIdentity,
        resolver: any MechaCore.NameResolver,
        pool: GRPCTransportPool,
        appAddress: (host: String, port: Int)?,
        apiToken: String?,
        appAPIToken: String?,
        peerToken: PeerToken,
        logger: Logger
    ) {
        self.peerToken = peerToken
        self.identity = identity
        self.resolver = resolver
        self.pool = pool
        self.appAddress = appAddress
        self.apiToken = apiToken
        self.appAPIToken = appAPIToken
        self.logger = logger
    }

    /// The public gRPC port: Dapr's own API is served; other services with `dapr-app-id` are
    /// forwarded to the target app (the local one, or another sidecar's internal gRPC port).
    public func routePublic(_ descriptor: MethodDescriptor, _ metadata: Metadata) async -> ProxyingServerTransport.Route {
        // The Dapr API's own methods check the token in their interceptor.
        guard descriptor.service.fullyQualifiedService != Self.daprService else { return .serve }
        // Every other call — proxied or for a service nobody serves — needs the token first, as
        // daprd's interceptors run before its unknown-service handler: without it a caller learns
        // nothing, not even that a method is unimplemented.
        if let token = self.apiToken {
            guard let sent = metadata[stringValues: "dapr-api-token"].first(where: { _ in true }) else {
                return .reject(.unauthenticated, "missing api token in request metadata")
            }
            guard ConstantTime.equals(sent, token) else { return .reject(.unauthenticated, "authentication error: api token mismatch") }
        }
        guard let target = metadata[stringValues: "dapr-app-id"].first(where: { _ in true }), !target.isEmpty else { return .serve }
        var forwarded = metadata
        forwarded.removeAllValues(forKey: "dapr-api-token")
        for key in ["dapr-caller-app-id", "dapr-caller-namespace", "dapr-callee-app-id"] { forwarded.removeAllValues(forKey: key) }
        Self.removeInternalKeys(&forwarded)
        let parts = target.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return .reject(.invalidArgument, "invalid app id \(target)") }
        let appID = String(parts[0])
        let namespace = parts.count == 2 ? String(parts[1]) : self.identity.namespace
        forwarded.addString(self.identity.appID, forKey: "dapr-caller-app-id")
        forwarded.addString(self.identity.namespace, forKey: "dapr-caller-namespace")
        forwarded.addString(appID, forKey: "dapr-callee-app-id")
        if appID == self.identity.appID && namespace == self.identity.namespace {
            return self.toLocalApp(forwarded)
        }
        let instances: [AppInstance]
        do {
            instances = try await self.resolver.resolve(appID: appID, namespace: namespace).filter { $0.grpcInternalPort > 0 }
        } catch {
            return .reject(.unavailable, "failed to proxy request: couldn't find service: \(appID): \(error)")
        }
        guard let instance = instances.randomElement() else {
            return .reject(.unavailable, "failed to proxy request: couldn't find service: \(appID)")
        }
        forwarded.addString(appID, forKey: Self.targetHeader)
        forwarded.addString(self.peerToken.value, forKey: PeerToken.header)
        do {
            return .forward(try self.pool.transport(host: instance.host, port: instance.grpcInternalPort), forwarded)
        } catch {
            return .reject(.unavailable, "failed to proxy request: \(error)")
        }
    }

    /// The internal gRPC port: every call is for the local app, forwarded by another sidecar.
    public func routeInternal(_ descriptor: MethodDescriptor, _ metadata: Metadata) async -> ProxyingServerTransport.Route {
        guard self.peerToken.accepts(metadata[stringValues: PeerToken.header].first(where: { _ in true })) else {
            return .reject(.unauthenticated, APIError.peerUnauthenticated.message)
        }
        let target = metadata[stringValues: Self.targetHeader].first(where: { _ in true }) ?? ""
        guard target == self.identity.appID else {
            return .reject(.unavailable, "this sidecar serves \(self.identity.appID), not \(target)")
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

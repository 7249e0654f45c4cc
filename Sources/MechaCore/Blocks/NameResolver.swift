/// A reachable instance of an app: where its sidecar accepts sidecar-to-sidecar calls.
public struct AppInstance: Sendable, Hashable {
    public var appID: String
    public var namespace: String
    /// Host of the sidecar's internal listener.
    public var host: String
    /// Port of the sidecar's internal (sidecar-to-sidecar) listener.
    public var internalPort: Int
    /// Port of the sidecar's public HTTP API.
    public var httpPort: Int
    /// Port of the sidecar's internal gRPC listener (proxied gRPC calls); 0 when it has none.
    public var grpcInternalPort: Int
    /// Unique id of the sidecar process.
    public var instanceID: String
    public var processID: Int32
    public var hostname: String
    /// Port of the sidecar's metrics endpoint; 0 when it serves none.
    public var metricsPort: Int
    /// The sidecar's internal listeners speak mutual TLS with SPIFFE identities (callers must
    /// present an SVID); false: plaintext with the home's peer token.
    public var mtls: Bool

    public init(
        appID: String,
        namespace: String = "default",
        host: String,
        internalPort: Int,
        httpPort: Int,
        grpcInternalPort: Int = 0,
        instanceID: String,
        processID: Int32,
        hostname: String,
        metricsPort: Int = 0,
        mtls: Bool = false
    ) {
        self.metricsPort = metricsPort
        self.mtls = mtls
        self.appID = appID
        self.namespace = namespace
        self.host = host
        self.internalPort = internalPort
        self.httpPort = httpPort
        self.grpcInternalPort = grpcInternalPort
        self.instanceID = instanceID
        self.processID = processID
        self.hostname = hostname
    }
}

/// Name resolution: sidecars register themselves; callers resolve an app id to live instances.
public protocol NameResolver: Component {
    /// Announces this sidecar. Kept alive until `deregister` (implementations heartbeat in `run`).
    func register(_ instance: AppInstance) async throws
    func deregister(instanceID: String) async throws
    /// Live instances of `appID`, possibly empty.
    func resolve(appID: String, namespace: String) async throws -> [AppInstance]
    /// Instances of `appID` known without waiting (a fresh cache entry), or nil. The invocation fast
    /// path uses this; on nil it takes the general path, which calls `resolve`.
    func cachedInstances(appID: String, namespace: String) -> [AppInstance]?
    /// Every live instance of every app (`mecha dashboard`); nil when the resolver cannot list.
    func allInstances() async throws -> [AppInstance]?
}

extension NameResolver {
    public func cachedInstances(appID: String, namespace: String) -> [AppInstance]? { nil }
    public func allInstances() async throws -> [AppInstance]? { nil }
}

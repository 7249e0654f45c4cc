public import MechaCore

/// Everything `mecha sidecar` (daprd's flags) configures.
public struct SidecarOptions: Sendable {
    public enum AppProtocol: String, Sendable, CaseIterable {
        case http
        case https
        case grpc
        case grpcs
        case h2c
    }

    public var appID: String
    public var appPort: Int?
    public var appProtocol: AppProtocol = .http
    public var appChannelAddress = "127.0.0.1"
    public var httpPort = 3500
    public var grpcPort = 50001
    /// 0 picks a free port.
    public var internalPort = 0
    public var internalListenAddress = "127.0.0.1"
    public var metricsPort = 9090
    public var enableMetrics = true
    public var metricsListenAddress = "127.0.0.1"
    /// `--enable-api-logging` when given (nil: the Configuration's `spec.logging.apiLogging.enabled`).
    public var enableAPILogging: Bool?
    /// `--enable-mtls`; nil: Configuration `spec.mtls.enabled`, else on.
    public var enableMTLS: Bool?
    /// `--control-plane-address`: SVIDs come from `mecha control-plane` instead of the home's CA.
    public var controlPlaneAddress: String?
    /// The PEM roots to trust for it, and where they came from (for messages).
    public var trustAnchors: (pem: String, origin: String)?
    /// The join token presented to it.
    public var controlPlaneToken: String?
    public var resourcesPaths: [String] = []
    public var configPath: String?
    public var enableAppHealthCheck = false
    public var appHealthCheckPath = "/healthz"
    public var appHealthProbeInterval: Duration = .seconds(5)
    public var appHealthProbeTimeout: Duration = .milliseconds(500)
    public var appHealthThreshold = 3
    /// nil or ≤ 0: unlimited.
    public var appMaxConcurrency: Int?
    public var maxBodySize = 4 << 20
    public var listenAddresses: [String] = ["127.0.0.1"]
    public var namespace = "default"
    /// Where embedded databases and default components live (`~/.mecha`).
    public var mechaHome: String
    public var gracefulShutdownTimeout: Duration = .seconds(5)
    /// Idle and read deadlines of every connection on every listener.
    public var connectionTimeouts: ConnectionTimeouts = .standard

    public init(appID: String, mechaHome: String) {
        self.appID = appID
        self.mechaHome = mechaHome
    }
}

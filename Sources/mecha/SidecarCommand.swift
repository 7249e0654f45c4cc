#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import Logging
import MechaComponents
import MechaConfig
import MechaCore
import MechaRuntime
import MechaSidecar

/// `mecha sidecar`: the data plane, with daprd's flags (also what `daprd` runs as).
struct SidecarCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sidecar",
        abstract: "Run the sidecar (the data plane), with daprd's flags."
    )

    @OptionGroup var flags: SidecarFlags

    func run() async throws {
        let environment = ProcessEnvironment.current
        let options: SidecarOptions
        do {
            options = try self.flags.options(environment: environment)
        } catch let error as ValidationError {
            throw error
        }
        LoggingSystem.bootstrap { label in
            SidecarLogHandler(label: label, level: self.flags.level, json: self.flags.logAsJSON, appID: options.appID)
        }
        var logger = Logger(label: "dapr.runtime")
        logger.logLevel = self.flags.level
        for ignored in self.flags.ignoredFlags { logger.info("flag --\(ignored) is accepted for compatibility and has no effect yet") }
        logger.info("starting Mecha \(Sidecar.version) (Dapr API compatible) app_id=\(options.appID)")
        let sidecar = Sidecar(options: options, registry: BuiltInComponents.registry, environment: environment, logger: logger)
        // Started by `mecha run -f`: follow the runner, so a runner that dies (SIGKILL, a closed
        // terminal) leaves no sidecar behind.
        if let text = environment["MECHA_RUNNER_PID"], let runner = Int32(text), runner > 1 {
            // Our output goes through the runner: once it is gone, a log line must not kill us
            // (SIGPIPE) before the graceful shutdown.
            signal(SIGPIPE, SIG_IGN)
            Task {
                while getppid() == runner { try? await Task.sleep(for: .milliseconds(500)) }
                logger.info("the mecha run process that started this sidecar (pid \(runner)) has exited: shutting down")
                await sidecar.shutdown()
            }
        }
        do {
            try await sidecar.run()
        } catch {
            logger.critical("\(StartupErrorText.describe(error))")
            throw ExitCode(1)
        }
    }
}

/// daprd's flags. Every flag daprd accepts parses; the ones Mecha does not implement yet are
/// reported once at startup.
struct SidecarFlags: ParsableArguments {
    @Option(name: .customLong("app-id"), help: "The id of the app this sidecar serves.") var appID: String = ""
    @Option(name: .customLong("app-port"), help: "The port the app listens on (empty or 0: no app channel).") var appPort: String = ""
    @Option(name: .customLong("app-protocol"), help: "http, https, grpc, grpcs or h2c.") var appProtocol: String = "http"
    @Option(name: .customLong("app-channel-address"), help: "The address the app listens on.") var appChannelAddress: String = "127.0.0.1"
    @Flag(name: .customLong("app-ssl"), help: .hidden) var appSSL = false
    @Option(name: .customLong("app-max-concurrency"), help: "Limit of concurrent calls to the app (-1: unlimited).") var appMaxConcurrency: Int = -1
    @Option(name: .customLong("app-health-check-path"), help: "Path of the app's health endpoint.") var appHealthCheckPath: String = "/healthz"
    @Flag(name: .customLong("enable-app-health-check"), inversion: .prefixedNo, help: "Probe the app's health endpoint.") var enableAppHealthCheck = false
    @Option(name: .customLong("app-health-probe-interval"), help: "Seconds between health probes.") var appHealthProbeInterval: Int = 5
    @Option(name: .customLong("app-health-probe-timeout"), help: "Milliseconds a health probe may take.") var appHealthProbeTimeout: Int = 500
    @Option(name: .customLong("app-health-threshold"), help: "Failed probes before the app counts as unhealthy.") var appHealthThreshold: Int = 3
    @Option(name: .customLong("app-binding-options-timeout"), help: .hidden) var appBindingOptionsTimeout: String?

    @Option(name: .customLong("dapr-http-port"), help: "Port of the HTTP API.") var httpPort: String = "3500"
    @Option(name: .customLong("dapr-grpc-port"), help: "Port of the gRPC API.") var grpcPort: String = "50001"
    @Option(name: .customLong("dapr-internal-grpc-port"), help: "Port for sidecar-to-sidecar calls (empty or 0: any free port).") var internalPort: String = ""
    @Option(name: .customLong("dapr-internal-grpc-listen-address"), help: "Address for sidecar-to-sidecar calls.") var internalListenAddress: String = "127.0.0.1"
    @Option(name: .customLong("dapr-listen-addresses"), help: "Comma-separated addresses the API listens on (default 127.0.0.1).") var listenAddresses: String = ""
    @Option(name: .customLong("metrics-port"), help: "Port of the Prometheus metrics endpoint (GET /metrics).") var metricsPort: String = "9090"
    @Flag(name: .customLong("enable-metrics"), inversion: .prefixedNo, help: "Serve metrics (--enable-metrics=false turns them off).") var enableMetrics = true
    @Option(name: .customLong("metrics-listen-address"), help: "Address of the metrics endpoint (default 127.0.0.1).") var metricsListenAddress: String?

    @Option(name: .customLong("resources-path"), help: "A directory (or file) of resource YAML; repeatable.") var resourcesPaths: [String] = []
    @Option(name: .customLong("components-path"), help: .hidden) var componentsPath: String?
    @Option(name: .customLong("config"), help: "A Configuration YAML file.") var config: [String] = []
    @Option(name: .customLong("log-level"), help: "debug, info, warn, error or fatal.") var logLevel: String = "info"
    @Flag(name: .customLong("log-as-json"), inversion: .prefixedNo, help: "Write logs as JSON lines.") var logAsJSON = false
    @Option(name: .customLong("log-file"), help: .hidden) var logFile: String?
    @Flag(name: .customLong("enable-api-logging"), inversion: .prefixedNo, help: "Log every API call (default: the Configuration's spec.logging.apiLogging.enabled).")
    var enableAPILogging: Bool?
    @Option(name: .customLong("max-body-size"), help: "Largest request body (e.g. 4Mi).") var maxBodySize: String?
    @Option(name: .customLong("dapr-http-max-request-size"), help: "Largest request body in MB (deprecated).") var maxRequestSizeMB: Int?
    @Option(name: .customLong("read-buffer-size"), help: .hidden) var readBufferSize: String?
    @Option(name: .customLong("dapr-http-read-buffer-size"), help: .hidden) var httpReadBufferSize: Int?
    @Option(name: .customLong("dapr-graceful-shutdown-seconds"), help: "Seconds to drain on shutdown.") var gracefulShutdownSeconds: Int = 5
    @Option(name: .customLong("connection-idle-timeout"), help: "Close a connection with no request or call in progress after this long (Go duration).")
    var connectionIdleTimeout: String = "60s"
    @Option(name: .customLong("connection-read-timeout"), help: "A request head must arrive, and a body may stall, at most this long (Go duration).")
    var connectionReadTimeout: String = "30s"
    @Flag(
        name: .customLong("enable-mtls"), inversion: .prefixedNo,
        help: "Mutual TLS with SPIFFE identities between sidecars (default: Configuration spec.mtls.enabled, else on).")
    var enableMTLS: Bool?
    @Option(
        name: .customLong("control-plane-address"),
        help: "host:port of `mecha control-plane`: SVIDs come from its CA (needs --trust-anchors-file and a join token in $MECHA_CONTROL_PLANE_TOKEN).")
    var controlPlaneAddress: String?
    @Option(name: .customLong("sentry-address"), help: "daprd's name for --control-plane-address.") var sentryAddress: String?
    @Option(name: .customLong("trust-anchors-file"), help: "PEM roots to trust (also $DAPR_TRUST_ANCHORS with the PEM itself).")
    var trustAnchorsFile: String?
    @Option(name: .customLong("mecha-home"), help: "Directory for embedded databases and default components (default ~/.mecha or $MECHA_HOME).") var mechaHome: String?

    // Accepted for compatibility with daprd's command line; not implemented yet.
    @Option(name: .customLong("mode"), help: .hidden) var mode: String?
    @Option(name: .customLong("dapr-public-port"), help: .hidden) var publicPort: String?
    @Option(name: .customLong("dapr-public-listen-address"), help: .hidden) var publicListenAddress: String?
    @Option(name: .customLong("profile-port"), help: .hidden) var profilePort: String?
    @Flag(name: .customLong("enable-profiling"), inversion: .prefixedNo, help: .hidden) var enableProfiling = false
    @Option(name: .customLong("unix-domain-socket"), help: .hidden) var unixDomainSocket: String?
    @Option(name: .customLong("dapr-block-shutdown-duration"), help: .hidden) var blockShutdownDuration: String?
    @Option(name: .customLong("placement-host-address"), help: .hidden) var placementHostAddress: String?
    @Option(name: .customLong("scheduler-host-address"), help: .hidden) var schedulerHostAddress: [String] = []

    @Option(name: .customLong("control-plane-trust-domain"), help: .hidden) var trustDomain: String?
    @Option(name: .customLong("control-plane-namespace"), help: .hidden) var controlPlaneNamespace: String?
    @Option(name: .customLong("allowed-origins"), help: .hidden) var allowedOrigins: String?
    @Flag(name: .customLong("disable-builtin-k8s-secret-store"), inversion: .prefixedNo, help: .hidden) var disableK8sSecretStore = false
    @Option(name: .customLong("disable-init-endpoints"), help: .hidden) var disableInitEndpoints: [String] = []
    @Option(name: .customLong("actors-disseminate-timeout"), help: .hidden) var actorsDisseminateTimeout: String?
    @Option(name: .customLong("hot-reload-reconcile-interval"), help: .hidden) var hotReloadInterval: String?

    var level: Logger.Level {
        switch self.logLevel.lowercased() {
        case "debug": .debug
        case "warn", "warning": .warning
        case "error": .error
        case "fatal": .critical
        default: .info
        }
    }

    var ignoredFlags: [String] {
        var names: [String] = []
        if self.publicPort != nil { names.append("dapr-public-port") }
        if self.profilePort != nil || self.enableProfiling { names.append("enable-profiling") }
        if self.unixDomainSocket != nil { names.append("unix-domain-socket") }
        if self.placementHostAddress.map({ !$0.isEmpty }) ?? false { names.append("placement-host-address") }
        if !self.schedulerHostAddress.filter({ !$0.isEmpty }).isEmpty { names.append("scheduler-host-address") }
        if self.allowedOrigins != nil { names.append("allowed-origins") }
        if self.logFile != nil { names.append("log-file") }
        if self.config.count > 1 { names.append("config (only the first file is used)") }
        return names
    }

    func validate() throws {
        guard ["debug", "info", "warn", "warning", "error", "fatal"].contains(self.logLevel.lowercased()) else {
            throw ValidationError("invalid value for --log-level: \(self.logLevel)")
        }
    }

    /// Turns flags into options, with daprd's checks and messages.
    func options(environment: [String: String]) throws -> SidecarOptions {
        guard !self.appID.isEmpty else { throw ValidationError("parameter app-id cannot be empty") }
        guard !self.appID.contains(".") else { throw ValidationError("parameter app-id cannot contain dots") }
        let home = self.mechaHome ?? environment["MECHA_HOME"] ?? ((environment["HOME"] ?? "/tmp") + "/.mecha")
        var options = SidecarOptions(appID: self.appID, mechaHome: home)
        let httpPort = try Self.port(self.httpPort, flag: "dapr-http-port")
        let grpcPort = try Self.port(self.grpcPort, flag: "dapr-grpc-port")
        options.httpPort = httpPort
        options.grpcPort = grpcPort
        if !self.appPort.isEmpty {
            guard let port = Int(self.appPort), (0...65535).contains(port) else {
                throw ValidationError("error parsing app-port: invalid value \"\(self.appPort)\"")
            }
            if port > 0 {
                guard port != httpPort else { throw ValidationError("the 'dapr-http-port' argument value \(httpPort) conflicts with 'app-port'") }
                guard port != grpcPort else { throw ValidationError("the 'dapr-grpc-port' argument value \(grpcPort) conflicts with 'app-port'") }
                options.appPort = port
            }
        }
        let protocolName = self.appProtocol.isEmpty ? "http" : self.appProtocol.lowercased()
        guard var appProtocol = SidecarOptions.AppProtocol(rawValue: protocolName) else {
            throw ValidationError("invalid value for 'app-protocol': \(self.appProtocol)")
        }
        if self.appSSL { appProtocol = appProtocol == .grpc ? .grpcs : (appProtocol == .http ? .https : appProtocol) }
        options.appProtocol = appProtocol
        options.appChannelAddress = self.appChannelAddress
        options.internalPort = self.internalPort.isEmpty ? 0 : try Self.port(self.internalPort, flag: "dapr-internal-grpc-port")
        options.internalListenAddress = self.internalListenAddress.isEmpty ? "127.0.0.1" : self.internalListenAddress
        options.metricsPort = try Self.port(self.metricsPort, flag: "metrics-port")
        options.enableMetrics = self.enableMetrics
        if let address = self.metricsListenAddress, !address.isEmpty { options.metricsListenAddress = address }
        options.enableAPILogging = self.enableAPILogging
        options.enableMTLS = self.enableMTLS
        if let address = [self.controlPlaneAddress, self.sentryAddress].compactMap({ $0 }).first(where: { !$0.isEmpty }) {
            options.controlPlaneAddress = address
            if let file = self.trustAnchorsFile, !file.isEmpty {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                    throw ValidationError("cannot read --trust-anchors-file '\(file)'")
                }
                options.trustAnchors = (text, file)
            } else if let text = environment["DAPR_TRUST_ANCHORS"], !text.isEmpty {
                options.trustAnchors = (text, "$DAPR_TRUST_ANCHORS")
            } else {
                throw ValidationError("--control-plane-address needs the control plane's root: --trust-anchors-file or $DAPR_TRUST_ANCHORS")
            }
            guard let token = environment["MECHA_CONTROL_PLANE_TOKEN"], !token.isEmpty else {
                throw ValidationError("--control-plane-address needs a join token in $MECHA_CONTROL_PLANE_TOKEN (mecha control-plane token --app-id \(self.appID))")
            }
            options.controlPlaneToken = token
        }
        var paths = self.resourcesPaths.flatMap { $0.split(separator: ",").map(String.init) }.filter { !$0.isEmpty }
        if paths.isEmpty, let components = self.componentsPath, !components.isEmpty { paths = [components] }
        options.resourcesPaths = paths
        options.configPath = self.config.first { !$0.isEmpty }
        options.enableAppHealthCheck = self.enableAppHealthCheck
        options.appHealthCheckPath = self.appHealthCheckPath
        options.appHealthProbeInterval = .seconds(self.appHealthProbeInterval > 0 ? self.appHealthProbeInterval : 5)
        options.appHealthProbeTimeout = .milliseconds(self.appHealthProbeTimeout > 0 ? self.appHealthProbeTimeout : 500)
        guard options.appHealthProbeTimeout < options.appHealthProbeInterval else {
            throw ValidationError("value for 'health-probe-timeout' must be smaller than 'health-probe-interval'")
        }
        options.appHealthThreshold = max(1, self.appHealthThreshold)
        options.appMaxConcurrency = self.appMaxConcurrency > 0 ? self.appMaxConcurrency : nil
        if let text = self.maxBodySize {
            guard let bytes = Quantity.bytes(text), bytes <= Self.maxBodySizeLimit else {
                throw ValidationError("invalid value for 'max-body-size' option: \(text) (a size up to 2Gi, e.g. 4Mi)")
            }
            options.maxBodySize = bytes
        } else if let megabytes = self.maxRequestSizeMB, megabytes > 0 {
            guard megabytes <= Self.maxBodySizeLimit >> 20 else {
                throw ValidationError("invalid value for 'dapr-http-max-request-size' option: \(megabytes) (at most \(Self.maxBodySizeLimit >> 20))")
            }
            options.maxBodySize = megabytes << 20
        }
        options.connectionTimeouts = ConnectionTimeouts(
            idle: try Self.timeout(self.connectionIdleTimeout, flag: "connection-idle-timeout"),
            read: try Self.timeout(self.connectionReadTimeout, flag: "connection-read-timeout")
        )
        let addresses = self.listenAddresses.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
        options.listenAddresses = addresses.isEmpty ? ["127.0.0.1"] : addresses
        options.namespace = environment["NAMESPACE"].flatMap { $0.isEmpty ? nil : $0 } ?? "default"
        options.gracefulShutdownTimeout = .seconds(self.gracefulShutdownSeconds >= 0 ? self.gracefulShutdownSeconds : 5)
        return options
    }

    /// Request bodies are held in memory up to this size at most (gRPC messages are too).
    static let maxBodySizeLimit = 2 << 30

    static func timeout(_ text: String, flag: String) throws -> Duration {
        guard let duration = GoDuration.parse(text), duration >= .milliseconds(1), duration <= .seconds(86_400) else {
            throw ValidationError("invalid value for '\(flag)' option: \(text) (a duration from 1ms to 24h, e.g. 60s)")
        }
        return duration
    }

    static func port(_ text: String, flag: String) throws -> Int {
        guard let port = Int(text), (0...65535).contains(port) else {
            throw ValidationError("error parsing \(flag) flag: invalid port \"\(text)\"")
        }
        return port
    }
}

/// Turns startup errors into one readable message each.
enum StartupErrorText {
    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as ResourceLoadError:
            return "invalid resources:\n" + error.errors.map { "  - \($0)" }.joined(separator: "\n")
        case let error as ComponentInitError:
            return "component initialization failed:\n" + error.errors.map { "  - \($0)" }.joined(separator: "\n")
        default:
            return "fatal error: \(error)"
        }
    }
}

/// The process environment as a dictionary.
enum ProcessEnvironment {
    static var current: [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return result
    }
}

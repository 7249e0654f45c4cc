#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Logging
import MechaComponents
import MechaConfig
import MechaCore
import MechaSidecar
import NIOCore
import NIOPosix
import UnixSignals

/// `mecha run [flags] -- <app command>` (and `dapr run …`): a sidecar and the app together.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a sidecar and your app together, like `dapr run`.",
        discussion: "Example: mecha run --app-id orders --app-port 8080 -- python3 app.py"
    )

    @Option(name: [.customShort("a"), .customLong("app-id")], help: "The app id (random when omitted).") var appID: String = ""
    @Option(name: [.customShort("p"), .customLong("app-port")], help: "The port your app listens on.") var appPort: Int = -1
    @Option(name: [.customShort("P"), .customLong("app-protocol")], help: "http or grpc.") var appProtocol: String = "http"
    @Option(name: .customLong("app-channel-address"), help: "The address your app listens on.") var appChannelAddress: String = "127.0.0.1"
    @Option(name: [.customShort("H"), .customLong("dapr-http-port")], help: "HTTP API port (default 3500, or a free port if taken).") var httpPort: Int = -1
    @Option(name: [.customShort("G"), .customLong("dapr-grpc-port")], help: "gRPC API port (default 50001, or a free port if taken).") var grpcPort: Int = -1
    @Option(name: [.customShort("I"), .customLong("dapr-internal-grpc-port")], help: "Sidecar-to-sidecar port (default: a free port).") var internalPort: Int = -1
    @Option(name: [.customShort("M"), .customLong("metrics-port")], help: "Metrics port.") var metricsPort: Int = -1
    @Option(name: .customLong("resources-path"), help: "Resource YAML directory or file; repeatable.") var resourcesPaths: [String] = []
    @Option(name: [.customShort("d"), .customLong("components-path")], help: .hidden) var componentsPath: String?
    @Option(name: [.customShort("c"), .customLong("config")], help: "A Configuration YAML file.") var config: String?
    @Option(name: .customLong("log-level"), help: "debug, info, warn or error.") var logLevel: String = "info"
    @Flag(name: .customLong("log-as-json"), help: "Sidecar logs as JSON lines.") var logAsJSON = false
    @Flag(name: .customLong("enable-api-logging"), help: "Log every API call the app makes.") var enableAPILogging = false
    @Option(name: .customLong("app-max-concurrency"), help: "Limit of concurrent calls to the app.") var appMaxConcurrency: Int = -1
    @Option(name: .customLong("max-body-size"), help: "Largest request body (e.g. 4Mi).") var maxBodySize: String = "4Mi"
    @Option(name: .customLong("read-buffer-size"), help: .hidden) var readBufferSize: String?
    @Flag(name: .customLong("enable-app-health-check"), help: "Probe the app's health endpoint.") var enableAppHealthCheck = false
    @Option(name: .customLong("app-health-check-path"), help: "Path of the app's health endpoint.") var appHealthCheckPath: String = ""
    @Option(name: .customLong("app-health-probe-interval"), help: "Seconds between probes.") var appHealthProbeInterval: Int = 0
    @Option(name: .customLong("app-health-probe-timeout"), help: "Milliseconds per probe.") var appHealthProbeTimeout: Int = 0
    @Option(name: .customLong("app-health-threshold"), help: "Failures before unhealthy.") var appHealthThreshold: Int = 0
    @Option(name: .customLong("dapr-listen-addresses"), help: "Addresses the API listens on.") var listenAddresses: String = ""
    @Option(name: .customLong("mecha-home"), help: "Directory for embedded databases (default ~/.mecha).") var mechaHome: String?
    @Option(name: .customLong("placement-host-address"), help: .hidden) var placementHostAddress: String?
    @Option(name: .customLong("scheduler-host-address"), help: .hidden) var schedulerHostAddress: String?
    @Option(name: [.customShort("u"), .customLong("unix-domain-socket")], help: .hidden) var unixDomainSocket: String?
    @Option(name: [.customShort("f"), .customLong("run-file")], help: "A multi-app run template (dapr.yaml, or the folder holding it).") var runFile: String?
    /// Set when started as `dapr`: without --resources-path / --config, use `~/.dapr/components`
    /// and `~/.dapr/config.yaml` when they exist, as the Dapr CLI does.
    @Flag(name: .customLong("dapr-cli-defaults"), help: .hidden) var daprCLIDefaults = false
    @Flag(name: [.customShort("k"), .customLong("kubernetes")], help: .hidden) var kubernetes = false
    @Flag(name: .customLong("app-ssl"), help: .hidden) var appSSL = false

    @Argument(parsing: .captureForPassthrough, help: "The app command (after --).") var command: [String] = []

    func run() async throws {
        // The passthrough argument would otherwise take `--help` for the app command.
        if let first = self.command.first, first == "--help" || first == "-h" || first == "help" {
            print(Mecha.helpMessage(for: Self.self))
            return
        }
        if self.kubernetes {
            Console.failure("--kubernetes is not supported by mecha run")
            throw ExitCode(1)
        }
        let environment = ProcessEnvironment.current
        let daprDefaults = self.daprCLIDefaults ? DaprCLIDefaults(environment: environment) : DaprCLIDefaults.none
        if let runFile = self.runFile {
            try await self.runTemplate(runFile, environment: environment, defaults: daprDefaults)
            return
        }
        let appCommand = self.command.first == "--" ? Array(self.command.dropFirst()) : self.command
        let appID = self.appID.isEmpty ? RandomName.make() : self.appID
        let httpPort = self.httpPort >= 0 ? self.httpPort : FreePort.preferring(3500)
        let grpcPort = self.grpcPort >= 0 ? self.grpcPort : FreePort.preferring(50001)

        var arguments = ["--app-id", appID, "--dapr-http-port", String(httpPort), "--dapr-grpc-port", String(grpcPort)]
        arguments += ["--app-protocol", self.appProtocol, "--app-channel-address", self.appChannelAddress]
        if self.appPort > 0 { arguments += ["--app-port", String(self.appPort)] }
        if self.internalPort > 0 { arguments += ["--dapr-internal-grpc-port", String(self.internalPort)] }
        // As the Dapr CLI: 9090 when free, else any free port (several `mecha run` side by side).
        arguments += ["--metrics-port", String(self.metricsPort > 0 ? self.metricsPort : FreePort.preferring(9090))]
        for path in self.resourcesPaths { arguments += ["--resources-path", path] }
        if self.resourcesPaths.isEmpty, let path = self.componentsPath { arguments += ["--resources-path", path] }
        if self.resourcesPaths.isEmpty, self.componentsPath == nil {
            for path in daprDefaults.resources { arguments += ["--resources-path", path] }
        }
        if let config = self.config ?? daprDefaults.config { arguments += ["--config", config] }
        arguments += ["--log-level", self.logLevel, "--max-body-size", self.maxBodySize, "--app-max-concurrency=\(self.appMaxConcurrency)"]
        if self.logAsJSON { arguments.append("--log-as-json") }
        if self.enableAPILogging { arguments.append("--enable-api-logging") }
        if self.enableAppHealthCheck { arguments.append("--enable-app-health-check") }
        if !self.appHealthCheckPath.isEmpty { arguments += ["--app-health-check-path", self.appHealthCheckPath] }
        if self.appHealthProbeInterval > 0 { arguments += ["--app-health-probe-interval", String(self.appHealthProbeInterval)] }
        if self.appHealthProbeTimeout > 0 { arguments += ["--app-health-probe-timeout", String(self.appHealthProbeTimeout)] }
        if self.appHealthThreshold > 0 { arguments += ["--app-health-threshold", String(self.appHealthThreshold)] }
        if !self.listenAddresses.isEmpty { arguments += ["--dapr-listen-addresses", self.listenAddresses] }
        if let home = self.mechaHome { arguments += ["--mecha-home", home] }
        if self.appSSL { arguments.append("--app-ssl") }

        let flags: SidecarFlags
        let options: SidecarOptions
        do {
            flags = try SidecarFlags.parse(arguments)
            options = try flags.options(environment: environment)
        } catch {
            Console.failure(SidecarFlags.message(for: error))
            throw ExitCode(1)
        }
        LoggingSystem.bootstrap { label in
            SidecarLogHandler(label: label, level: flags.level, json: flags.logAsJSON, appID: appID)
        }
        var logger = Logger(label: "dapr.runtime")
        logger.logLevel = flags.level

        if appCommand.isEmpty { print("WARNING: no application command found.") }
        Console.info("Starting Dapr with id \(appID). HTTP Port: \(httpPort). gRPC Port: \(grpcPort)")
        let sidecar = Sidecar(options: options, registry: BuiltInComponents.registry, environment: environment, logger: logger)
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)

        let exitCode: Int32 = await withTaskGroup(of: RunEvent.self) { group in
            group.addTask {
                do {
                    try await sidecar.run(gracefulShutdownSignals: [])
                    return .sidecarExited(nil)
                } catch {
                    return .sidecarExited(StartupErrorText.describe(error))
                }
            }
            group.addTask {
                for await signal in signals { return .signal(signal) }
                return .signal(nil)
            }
            group.addTask {
                // A sidecar that fails to start reports it through `.sidecarExited`.
                guard (try? await sidecar.listeningPorts()) != nil else { return .signal(nil) }
                return .listening
            }

            var child: ChildProcess?
            var record: String?
            defer { RunRegistry.remove(record) }
            var appExit: Int32?
            var sidecarFailure: String?
            var shuttingDown = false
            while let event = await group.next() {
                switch event {
                case .listening:
                    if !appCommand.isEmpty {
                        var appEnvironment = environment
                        appEnvironment["APP_ID"] = appID
                        appEnvironment["APP_CHANNEL_ADDRESS"] = self.appChannelAddress
                        appEnvironment["APP_PROTOCOL"] = self.appProtocol
                        if self.appPort > 0 { appEnvironment["APP_PORT"] = String(self.appPort) }
                        appEnvironment["DAPR_HTTP_PORT"] = String(httpPort)
                        appEnvironment["DAPR_GRPC_PORT"] = String(grpcPort)
                        appEnvironment["DAPR_METRICS_PORT"] = String(options.metricsPort)
                        do {
                            let process = try ChildProcess(arguments: appCommand, environment: appEnvironment, outputPrefix: "== APP == ")
                            child = process
                            Console.info("Updating metadata for appPID: \(process.pid)")
                            Console.info("Updating metadata for app command: \(appCommand.joined(separator: " "))")
                            group.addTask { .appExited(await process.wait()) }
                        } catch {
                            Console.failure("\(error)")
                            appExit = 1
                            shuttingDown = true
                            await sidecar.shutdown()
                            continue
                        }
                    }
                    let now = RunRegistry.now()
                    record = RunRegistry.register(
                        RunRecord(
                            appId: appID, httpPort: httpPort, grpcPort: grpcPort, appPort: max(0, self.appPort), metricsEnabled: true,
                            command: appCommand.joined(separator: " "), created: RunRegistry.createdText(now), createdUnix: now,
                            daprdPid: getpid(), cliPid: getpid(), appPid: child?.pid ?? 0, maxRequestBodySize: options.maxBodySize,
                            httpReadBufferSize: 4 << 10, runTemplatePath: "", appLogPath: "", daprdLogPath: "", runTemplateName: ""),
                        home: options.mechaHome)
                    group.addTask {
                        .healthy(await sidecar.waitUntilHealthy(timeout: .seconds(60)))
                    }
                case .healthy(let healthy):
                    guard !shuttingDown else { continue }
                    if healthy {
                        Console.success(
                            appCommand.isEmpty
                                ? "You're up and running! Dapr logs will appear here.\n"
                                : "You're up and running! Both Dapr and your app logs will appear here.\n"
                        )
                    } else {
                        Console.warning("Dapr sidecar might not be responding.")
                    }
                case .signal(let signal):
                    guard signal != nil, !shuttingDown else { continue }
                    shuttingDown = true
                    Console.info("\nterminated signal received: shutting down")
                    if let process = child, !process.hasExited {
                        process.signal(signal == .sigint ? SIGINT : SIGTERM)
                        group.addTask {
                            try? await Task.sleep(for: .seconds(5))
                            return .killApp
                        }
                    } else {
                        await sidecar.shutdown()
                    }
                case .killApp:
                    if let process = child, !process.hasExited { process.signal(SIGKILL) }
                case .appExited(let status):
                    let code = ChildProcess.exitCode(status)
                    appExit = code
                    if code == 0 {
                        Console.success("Exited App successfully")
                    } else if status & 0x7f != 0 {
                        Console.failure("The App process was terminated by signal: \(status & 0x7f)")
                    } else {
                        Console.failure("The App process exited with error code: \(code)")
                    }
                    shuttingDown = true
                    await sidecar.shutdown()
                case .sidecarExited(let failure):
                    sidecarFailure = failure
                    if let failure {
                        Console.failure(failure)
                    } else {
                        Console.success("Exited Dapr successfully")
                    }
                    if let process = child, !process.hasExited {
                        process.signal(SIGTERM)
                        let status = await process.wait()
                        appExit = appExit ?? ChildProcess.exitCode(status)
                    }
                    group.cancelAll()
                    return sidecarFailure != nil ? 1 : (appExit ?? 0)
                }
            }
            return appExit ?? 0
        }
        if exitCode != 0 { throw ExitCode(exitCode) }
    }

    /// `mecha run -f`: every app of the template with its sidecar.
    func runTemplate(_ path: String, environment: [String: String], defaults: DaprCLIDefaults) async throws {
        let template: RunTemplate
        do throws(ResourceError) {
            let file = try RunTemplate.locate(path)
            template = try RunTemplate.load(
                path: file, home: environment["HOME"] ?? "/", workingDirectory: Self.currentDirectory(),
                defaultResources: defaults.resources, defaultConfig: defaults.config)
        } catch {
            Console.failure("Error getting apps from config file: \(error)")
            throw ExitCode(1)
        }
        guard !template.apps.isEmpty else {
            Console.failure("No apps to run")
            throw ExitCode(1)
        }
        let run = MultiAppRun(
            template: template, environment: environment, mechaHome: self.mechaHome,
            registryHome: RunRegistry.home(self.mechaHome, environment: environment))
        let status = await run.run()
        if status != 0 { throw ExitCode(status) }
    }

    static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buffer, buffer.count) != nil else { return "/" }
        return String(cString: buffer)
    }

    enum RunEvent: Sendable {
        case listening
        case healthy(Bool)
        case signal(UnixSignal?)
        case appExited(Int32)
        case killApp
        case sidecarExited(String?)
    }
}

/// What the Dapr CLI uses when a run names no resources or configuration: `~/.dapr/components` and
/// `~/.dapr/config.yaml` (written by `dapr init`), each only when it exists. Applied when the
/// binary is started as `dapr`; `mecha run` keeps Mecha's own rule (`<mecha home>/components`,
/// else the embedded defaults).
struct DaprCLIDefaults: Sendable {
    var resources: [String]
    var config: String?

    static let none = DaprCLIDefaults(resources: [], config: nil)

    init(resources: [String], config: String?) {
        self.resources = resources
        self.config = config
    }

    init(environment: [String: String]) {
        let home = (environment["HOME"] ?? "/") + "/.dapr"
        var info = stat()
        let components = home + "/components"
        self.resources = stat(components, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR ? [components] : []
        let config = home + "/config.yaml"
        self.config = stat(config, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG ? config : nil
    }
}

/// The CLI's status lines, with the Dapr CLI's prefixes.
enum Console {
    static func info(_ message: String) { self.emit("ℹ️  " + message) }
    static func success(_ message: String) { self.emit("✅  " + message) }
    static func warning(_ message: String) { self.emit("⚠  " + message) }
    static func failure(_ message: String) { self.emit("❌  " + message) }

    private static func emit(_ line: String) {
        Loopback.writeAll(1, Array((line + "\n").utf8))
    }
}

/// Ports for `mecha run`.
enum FreePort {
    /// `preferred` when nothing listens there, else any free port.
    static func preferring(_ preferred: Int) -> Int {
        self.isFree(preferred) ? preferred : self.any()
    }

    static func isFree(_ port: Int) -> Bool {
        Loopback.withSocket(port: port) { fd, address, length in bind(fd, address, length) == 0 } ?? false
    }

    static func any() -> Int {
        Loopback.withSocket(port: 0) { fd, address, length -> Int in
            _ = bind(fd, address, length)
            var bound = sockaddr_in()
            var boundLength = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &bound) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &boundLength) }
            }
            return Int(UInt16(bigEndian: bound.sin_port))
        } ?? 0
    }
}

/// Random app ids like the Dapr CLI's (`adjective-noun`).
enum RandomName {
    static let adjectives = ["brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lively", "merry", "nimble", "proud", "quick", "shiny", "witty", "zesty"]
    static let nouns = ["otter", "falcon", "badger", "heron", "lynx", "marmot", "panda", "puffin", "raven", "salmon", "tapir", "walrus", "wombat", "yak", "zebra", "gecko"]

    static func make() -> String {
        "\(self.adjectives.randomElement()!)-\(self.nouns.randomElement()!)"
    }
}

extension SidecarFlags {
    static func message(for error: any Error) -> String {
        if let validation = error as? ValidationError { return validation.message }
        return self.message(for: error as (any Error)?)
    }

    static func message(for error: (any Error)?) -> String {
        guard let error else { return "" }
        return Self.fullMessage(for: error)
    }
}

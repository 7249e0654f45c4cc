#if canImport(Glibc)
import Glibc
#endif
import MechaConfig
import UnixSignals

/// `mecha run -f <dir|dapr.yaml>` / `dapr run -f …`: every app of a Dapr CLI run template with
/// its own sidecar, as the Dapr CLI runs them. Each sidecar is this binary started as `daprd` in
/// the app's folder (a process of its own, so one app's sidecar failing or being stopped leaves
/// the others running); the app starts once its sidecar listens. App output goes to the console
/// prefixed `== APP - <id> == ` and/or to `<appDirPath>/.dapr/logs/<id>_app_<time>.log`, sidecar
/// output to `<id>_daprd_<time>.log` (the CLI's defaults: `appLogDestination: fileAndConsole`,
/// `daprdLogDestination: file`). Ctrl-C or SIGTERM (`dapr stop -f`) stops every app and sidecar;
/// an app that exits leaves the rest running, as with the CLI. Exit status 1 when an app or its
/// sidecar could not be started (the others are then stopped), else 0.
struct MultiAppRun {
    var template: RunTemplate
    var environment: [String: String]
    /// `--mecha-home` given to `mecha run`, passed on to every sidecar.
    var mechaHome: String?
    /// Where the run registry lives.
    var registryHome: String

    /// One started app: its sidecar, its process (when it has a command) and where their output goes.
    final class Started: @unchecked Sendable {
        let app: RunTemplate.App
        let sidecar: ChildProcess
        var process: ChildProcess?
        let daprdOutput: [Int32]
        var appOutput: [Int32]
        var record: String?
        var sidecarDone = false

        init(app: RunTemplate.App, sidecar: ChildProcess, daprdOutput: [Int32]) {
            self.app = app
            self.sidecar = sidecar
            self.daprdOutput = daprdOutput
            self.appOutput = daprdOutput
        }
    }

    struct StartFailure: Error, CustomStringConvertible {
        var description: String
    }

    enum Event: Sendable {
        case sidecarExited(Int, Int32)
        case appExited(Int, Int32)
        case signal(UnixSignal?)
    }

    func run() async -> Int32 {
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        var started: [Started] = []
        var failed = false
        for app in self.template.apps {
            Console.info("Validating config and starting app \"\(app.appID)\"")
            do {
                started.append(try await self.start(app))
            } catch {
                Console.failure("Error starting Dapr and app (\"\(app.appID)\"): \(error)")
                failed = true
                break
            }
        }

        if !failed {
            await withTaskGroup(of: Event.self) { group in
                for (index, entry) in started.enumerated() {
                    let sidecar = entry.sidecar
                    group.addTask { .sidecarExited(index, await sidecar.wait()) }
                    if let process = entry.process {
                        group.addTask { .appExited(index, await process.wait()) }
                    }
                }
                group.addTask {
                    for await signal in signals { return .signal(signal) }
                    return .signal(nil)
                }
                loop: while let event = await group.next() {
                    switch event {
                    case .signal(let signal):
                        guard signal != nil else { continue }
                        print("")
                        Console.info("Received signal to stop Dapr and app processes. Shutting down Dapr and app processes.")
                        break loop
                    case .appExited(let index, let status):
                        let entry = started[index]
                        if ChildProcess.exitCode(status) == 0 {
                            Self.emit("✅  Exited App successfully", to: entry.appOutput)
                        } else {
                            Self.emit("❌  The App process exited with error code: \(Self.goExitText(status))", to: entry.appOutput)
                        }
                    case .sidecarExited(let index, let status):
                        let entry = started[index]
                        entry.sidecarDone = true
                        if ChildProcess.exitCode(status) == 0 {
                            Self.emit("✅  Exited Dapr successfully", to: entry.daprdOutput)
                        } else {
                            Self.emit("❌  The daprd process exited with error code: \(Self.goExitText(status))", to: entry.daprdOutput)
                        }
                        // An app without its sidecar cannot work: stop it too (as `dapr stop --app-id` means).
                        if let process = entry.process, !process.hasExited { process.signal(SIGTERM) }
                        RunRegistry.remove(entry.record)
                        entry.record = nil
                        if started.allSatisfy(\.sidecarDone) { break loop }
                    }
                }
                // The tasks waiting for processes end as the processes do; the signal task is cancelled.
                await self.stopAll(started)
                group.cancelAll()
            }
        } else {
            await self.stopAll(started)
        }
        return failed ? 1 : 0
    }

    /// Starts one app's sidecar, waits until it listens, then starts the app.
    private func start(_ app: RunTemplate.App) async throws -> Started {
        let httpPort = app.daprHTTPPort ?? FreePort.any()
        let grpcPort = app.daprGRPCPort ?? FreePort.any()
        let internalPort = app.daprInternalGRPCPort ?? FreePort.any()
        let metricsPort = app.metricsPort ?? FreePort.any()
        let logsDirectory = app.appDirPath + "/.dapr/logs"
        let stamp = Self.timestamp()
        let needsLogs = app.daprdLogDestination.toFile || (!app.command.isEmpty && app.appLogDestination.toFile)
        if needsLogs {
            mkdir(app.appDirPath + "/.dapr", 0o755)
            mkdir(logsDirectory, 0o755)
        }

        var daprdLogPath = ""
        var daprdOutput: [Int32] = app.daprdLogDestination.toConsole ? [1] : []
        var daprdErrors: [Int32] = app.daprdLogDestination.toConsole ? [2] : []
        if app.daprdLogDestination.toFile {
            daprdLogPath = "\(logsDirectory)/\(app.appID)_daprd_\(stamp).log"
            let fd = try Self.createLog(daprdLogPath)
            daprdOutput.append(fd)
            daprdErrors.append(fd)
        }

        var arguments = ["daprd", "--app-id", app.appID, "--dapr-http-port", String(httpPort), "--dapr-grpc-port", String(grpcPort)]
        arguments += ["--dapr-internal-grpc-port", String(internalPort), "--metrics-port", String(metricsPort)]
        arguments += ["--app-protocol", app.appProtocol]
        if let port = app.appPort { arguments += ["--app-port", String(port)] }
        if !app.appChannelAddress.isEmpty { arguments += ["--app-channel-address", app.appChannelAddress] }
        for path in app.resourcesPaths { arguments += ["--resources-path", path] }
        if let config = app.configFile { arguments += ["--config", config] }
        if !app.logLevel.isEmpty { arguments += ["--log-level", app.logLevel] }
        if !app.maxBodySize.isEmpty { arguments += ["--max-body-size", app.maxBodySize] }
        if let concurrency = app.appMaxConcurrency, concurrency > 0 { arguments += ["--app-max-concurrency", String(concurrency)] }
        if app.enableAppHealthCheck { arguments.append("--enable-app-health-check") }
        if !app.appHealthCheckPath.isEmpty { arguments += ["--app-health-check-path", app.appHealthCheckPath] }
        if app.appHealthProbeInterval > 0 { arguments += ["--app-health-probe-interval", String(app.appHealthProbeInterval)] }
        if app.appHealthProbeTimeout > 0 { arguments += ["--app-health-probe-timeout", String(app.appHealthProbeTimeout)] }
        if app.appHealthThreshold > 0 { arguments += ["--app-health-threshold", String(app.appHealthThreshold)] }
        if !app.apiListenAddresses.isEmpty { arguments += ["--dapr-listen-addresses", app.apiListenAddresses] }
        if app.appSSL { arguments.append("--app-ssl") }
        if app.enableAPILogging { arguments.append("--enable-api-logging") }
        if let home = self.mechaHome { arguments += ["--mecha-home", home] }

        var sidecarEnvironment = self.environment
        for (key, value) in app.env { sidecarEnvironment[key] = value }
        if sidecarEnvironment["DAPR_HOST_IP"] == nil { sidecarEnvironment["DAPR_HOST_IP"] = "127.0.0.1" }
        sidecarEnvironment["MECHA_RUNNER_PID"] = String(getpid())

        Self.emit("ℹ️  Starting Dapr with id \(app.appID). HTTP Port: \(httpPort). gRPC Port: \(grpcPort)", to: daprdOutput)
        let sidecar = try ChildProcess(
            executable: Self.selfExecutable(), arguments: arguments, environment: sidecarEnvironment, directory: app.appDirPath,
            output: .init(prefix: "", targets: daprdOutput), errors: .init(prefix: "", targets: daprdErrors))
        let entry = Started(app: app, sidecar: sidecar, daprdOutput: daprdOutput)

        // Wait until the sidecar listens (it binds before it waits for the app, so no deadlock).
        Self.emit("ℹ️  Checking if Dapr sidecar is listening on HTTP port \(httpPort)", to: daprdOutput)
        let deadline = ContinuousClock.now + .seconds(60)
        while !Loopback.listening(httpPort) {
            if sidecar.hasExited {
                throw StartFailure(description: "the sidecar exited (\(ChildProcess.describe(await sidecar.wait())))" + (daprdLogPath.isEmpty ? "" : "; its log: \(daprdLogPath)"))
            }
            guard ContinuousClock.now < deadline else {
                sidecar.signal(SIGKILL)
                throw StartFailure(description: "the sidecar is not listening on HTTP port \(httpPort) after 60 s")
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        Self.emit("ℹ️  Dapr sidecar is up and running.", to: daprdOutput)

        var appLogPath = ""
        if app.command.isEmpty {
            Console.warning("No application command found for app \"\(app.appID)\" present in \(self.template.file)")
        } else {
            var appOutput: [Int32] = app.appLogDestination.toConsole ? [1] : []
            var appErrors: [Int32] = app.appLogDestination.toConsole ? [2] : []
            if app.appLogDestination.toFile {
                appLogPath = "\(logsDirectory)/\(app.appID)_app_\(stamp).log"
                let fd = try Self.createLog(appLogPath)
                appOutput.append(fd)
                appErrors.append(fd)
            }
            entry.appOutput = appOutput
            var appEnvironment = self.environment
            for (key, value) in app.env { appEnvironment[key] = value }
            appEnvironment["APP_ID"] = app.appID
            if let port = app.appPort { appEnvironment["APP_PORT"] = String(port) }
            appEnvironment["APP_PROTOCOL"] = app.appProtocol
            if !app.appChannelAddress.isEmpty { appEnvironment["APP_CHANNEL_ADDRESS"] = app.appChannelAddress }
            appEnvironment["DAPR_HTTP_PORT"] = String(httpPort)
            appEnvironment["DAPR_GRPC_PORT"] = String(grpcPort)
            appEnvironment["DAPR_METRICS_PORT"] = String(metricsPort)
            do {
                entry.process = try ChildProcess(
                    arguments: app.command, environment: appEnvironment, directory: app.appDirPath,
                    output: .init(prefix: "== APP - \(app.appID) == ", targets: appOutput),
                    errors: .init(prefix: "== APP - \(app.appID) == ", targets: appErrors))
            } catch {
                Self.emit("❌  Error starting app process: \(error)", to: appErrors)
                sidecar.signal(SIGTERM)
                _ = await sidecar.wait()
                throw error
            }
        }

        let now = RunRegistry.now()
        entry.record = RunRegistry.register(
            RunRecord(
                appId: app.appID, httpPort: httpPort, grpcPort: grpcPort, appPort: app.appPort ?? 0, metricsEnabled: true,
                command: app.command.joined(separator: " "), created: RunRegistry.createdText(now), createdUnix: now,
                daprdPid: sidecar.pid, cliPid: getpid(), appPid: entry.process?.pid ?? 0,
                maxRequestBodySize: 4 << 20, httpReadBufferSize: 4 << 10, runTemplatePath: self.template.file,
                appLogPath: appLogPath, daprdLogPath: daprdLogPath, runTemplateName: self.template.name),
            home: self.registryHome)

        Self.emit("✅  You're up and running! Dapr logs will appear here.\n", to: daprdOutput)
        Console.info("Started Dapr with app id \"\(app.appID)\". HTTP Port: \(httpPort). gRPC Port: \(grpcPort)")
        if needsLogs { Console.info("Writing log files to directory : \(logsDirectory)") }
        return entry
    }

    /// SIGTERM to every app and sidecar still running; SIGKILL to what has not exited 10 s later.
    private func stopAll(_ started: [Started]) async {
        for entry in started {
            Self.emit("ℹ️  \ntermination signal received: shutting down", to: entry.daprdOutput)
            if let process = entry.process, !process.hasExited { process.signal(SIGTERM) }
            if !entry.sidecar.hasExited { entry.sidecar.signal(SIGTERM) }
        }
        let deadline = ContinuousClock.now + .seconds(10)
        for entry in started {
            for process in [entry.process, entry.sidecar].compactMap({ $0 }) {
                while !process.hasExited, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
                if !process.hasExited { process.signal(SIGKILL) }
                _ = await process.wait()
            }
            RunRegistry.remove(entry.record)
            entry.record = nil
        }
    }

    static func emit(_ line: String, to targets: [Int32]) {
        let bytes = Array((line + "\n").utf8)
        for target in targets { Loopback.writeAll(target, bytes) }
    }

    /// Go's `exec.ExitError` text (`exit status 3`, `signal: killed`).
    static func goExitText(_ status: Int32) -> String {
        let signal = status & 0x7f
        if signal == 0 { return "exit status \((status >> 8) & 0xff)" }
        let names: [Int32: String] = [SIGKILL: "killed", SIGTERM: "terminated", SIGINT: "interrupt", SIGSEGV: "segmentation fault", SIGABRT: "aborted"]
        return "signal: \(names[signal] ?? String(signal))"
    }

    static func createLog(_ path: String) throws -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StartFailure(description: "cannot create the log file \(path): \(String(cString: strerror(errno)))") }
        return fd
    }

    /// `20060102150405` in local time, as the CLI names log files.
    static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900)\(two(parts.tm_mon + 1))\(two(parts.tm_mday))\(two(parts.tm_hour))\(two(parts.tm_min))\(two(parts.tm_sec))"
    }

    /// This binary (`/proc/self/exe`), to start the sidecars.
    static func selfExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return CommandLine.arguments[0] }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A `mecha sidecar` process started by a test on free ports, with its own home directory unless
/// one is shared on purpose (sidecars sharing a home share the embedded database).
public final class SidecarHarness: Sendable {
    public let appID: String
    public let httpPort: Int
    public let appPort: Int?
    public let home: String
    public let process: TestProcess
    public let arguments: [String]

    /// Starts the sidecar and waits until `/v1.0/healthz/outbound` answers 204.
    public init(
        appID: String,
        appPort: Int? = nil,
        home: String,
        resourcesPaths: [String] = [],
        extraArguments: [String] = [],
        environment: [String: String] = [:],
        httpPort: Int? = nil,
        waitForHealthz: Bool = false,
        logName: String? = nil
    ) async throws {
        self.appID = appID
        self.appPort = appPort
        self.home = home
        // Ports chosen here may be taken by a parallel test between choosing and binding; the
        // sidecar then exits with "Address already in use" and is started again on other ports.
        var attempt = 0
        while true {
            attempt += 1
            let chosenHTTP = httpPort ?? TestEnvironment.freePort()
            var arguments = [
                "sidecar", "--app-id", appID, "--dapr-http-port", String(chosenHTTP), "--dapr-grpc-port", String(TestEnvironment.freePort()),
                "--mecha-home", home, "--log-level", "debug",
            ]
            if let appPort { arguments += ["--app-port", String(appPort)] }
            for path in resourcesPaths { arguments += ["--resources-path", path] }
            arguments += extraArguments
            let process = try TestProcess(try MechaBinaries.mecha, arguments, environment: environment, logPath: home + "/\(logName ?? appID)-sidecar.log")
            let exitedOnTakenPort = await Self.exitsOnTakenPort(process, port: chosenHTTP)
            if exitedOnTakenPort, attempt < 3, httpPort == nil, !extraArguments.contains(where: { $0.hasSuffix("-port") }) { continue }
            self.httpPort = chosenHTTP
            self.arguments = arguments
            self.process = process
            break
        }
        try await self.waitUntilUp(healthz: waitForHealthz)
    }

    private init(copying other: SidecarHarness, logName: String) throws {
        self.appID = other.appID
        self.appPort = other.appPort
        self.home = other.home
        self.httpPort = other.httpPort
        self.arguments = other.arguments
        self.process = try TestProcess(try MechaBinaries.mecha, other.arguments, logPath: other.home + "/\(logName).log")
    }

    /// Waits until the sidecar logs that its listeners are bound, or exits; true when it exited
    /// because a port was taken.
    static func exitsOnTakenPort(_ process: TestProcess, port: Int) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if !process.isRunning { return process.output.contains("Address already in use") }
            if process.output.contains("HTTP API listening on") { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    func waitUntilUp(healthz: Bool) async throws {
        let port = self.httpPort
        let process = self.process
        try await TestHTTP.with { http in
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                guard process.isRunning else {
                    throw HarnessError("sidecar \(self.appID) exited during startup:\n\(process.output)")
                }
                if let response = try? await http.get(port: port, healthz ? "/v1.0/healthz" : "/v1.0/healthz/outbound"), response.status == 204 {
                    return
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw HarnessError("sidecar \(self.appID) not healthy within 30s:\n\(process.output)")
        }
    }

    /// Starts the same sidecar again (same ports, same home) after it stopped.
    public func restarted(logName: String, waitForHealthz: Bool = false) async throws -> SidecarHarness {
        let next = try SidecarHarness(copying: self, logName: logName)
        try await next.waitUntilUp(healthz: waitForHealthz)
        return next
    }

    public func stop() async { await self.process.stop() }
}

/// A `mecha-testapp` process on a free port.
public final class TestAppHarness: Sendable {
    public let port: Int
    public let process: TestProcess

    public init(directory: String, name: String, subscriptions: String = "[]", port: Int? = nil) async throws {
        self.port = port ?? TestEnvironment.freePort()
        self.process = try TestProcess(
            try MechaBinaries.testApp,
            [],
            environment: ["APP_PORT": String(self.port), "SUBSCRIPTIONS": subscriptions],
            logPath: directory + "/\(name)-app.log"
        )
        let port = self.port
        let pid = String(self.process.pid)
        try await TestHTTP.with { http in
            // Our own app answers with its pid (another test's app may hold a port we were told was free).
            let answer = try await http.waitFor(port: port, "/healthz", timeout: .seconds(20)) { $0.status == 200 || $0.header("x-testapp-pid") != nil }
            guard answer.header("x-testapp-pid") == pid else {
                throw HarnessError("port \(port) is served by another process (pid \(answer.header("x-testapp-pid") ?? "?")), not our test app \(pid)")
            }
        }
    }

    public func stop() async { await self.process.stop() }
}

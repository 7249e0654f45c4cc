public import RESPClient
import RESPWire
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A `redis-server` for tests: a free port on 127.0.0.1, a temporary directory, no persistence,
/// optionally a password. Stopped by its PID; a test that forgets to stop it still has it killed
/// when the harness is released.
///
/// ```swift
/// try await RedisServerHarness.withServer { redis in
///     let pool = try RESPConnectionPool(configuration: redis.configuration)
///     …
/// }
/// ```
public final class RedisServerHarness: Sendable {
    public let port: Int
    public let password: String?
    /// The server's working directory (removed by `stop()`).
    public let directory: String
    private let extraArguments: [String]
    private let process: Mutex<TestProcess?>

    private init(port: Int, password: String?, directory: String, extraArguments: [String], process: TestProcess) {
        self.port = port
        self.password = password
        self.directory = directory
        self.extraArguments = extraArguments
        self.process = Mutex(process)
    }

    /// The path of redis-server: `$REDIS_SERVER`, else the Debian package's `/usr/bin/redis-server`,
    /// else `/usr/local/bin/redis-server`.
    public static func executable() throws -> String {
        var candidates = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        if let override = TestEnvironment.current["REDIS_SERVER"] { candidates.insert(override, at: 0) }
        guard let found = candidates.first(where: { access($0, X_OK) == 0 }) else {
            throw HarnessError("redis-server not found: install redis-server (apt-get install redis-server)")
        }
        return found
    }

    /// Starts a server and waits until it answers PING.
    ///
    /// - Parameters:
    ///   - password: sets `--requirepass`.
    ///   - extraArguments: more `--option value` pairs, e.g. `["--notify-keyspace-events", "KEA"]`.
    /// - Throws: ``HarnessError`` when redis-server is missing (saying what to install) or does not
    ///   come up within 10 s (with its log).
    public static func start(password: String? = nil, extraArguments: [String] = []) async throws -> RedisServerHarness {
        let executable = try self.executable()
        var lastError: any Error = HarnessError("redis-server did not start")
        for _ in 0..<3 {
            let port = TestEnvironment.freePort()
            let directory = TestEnvironment.temporaryDirectory("mecha-redis")
            let process = try Self.spawn(executable, port: port, password: password, directory: directory, extraArguments: extraArguments)
            let harness = RedisServerHarness(port: port, password: password, directory: directory, extraArguments: extraArguments, process: process)
            do {
                try await harness.waitUntilReady(process)
                return harness
            } catch {
                // Most likely the port was taken between choosing and binding it: try another.
                lastError = error
                await harness.stop()
            }
        }
        throw lastError
    }

    /// Starts a server, runs `body`, and stops the server however `body` ends.
    public static func withServer<Result>(
        password: String? = nil,
        extraArguments: [String] = [],
        isolation: isolated (any Actor)? = #isolation,
        _ body: (RedisServerHarness) async throws -> Result
    ) async throws -> Result {
        let harness = try await self.start(password: password, extraArguments: extraArguments)
        do {
            let result = try await body(harness)
            await harness.stop()
            return result
        } catch {
            await harness.stop()
            throw error
        }
    }

    /// A client configuration for this server (its port and password, short timeouts, few retries).
    public var configuration: RESPConfiguration {
        RESPConfiguration(
            host: "127.0.0.1",
            port: self.port,
            password: self.password,
            poolSize: 4,
            dialTimeout: .seconds(2),
            readTimeout: .seconds(5),
            maxRetries: 3,
            minRetryBackoff: .milliseconds(20),
            maxRetryBackoff: .milliseconds(200)
        )
    }

    /// Its output so far (for failure messages).
    public var log: String { self.process.withLock { $0?.output ?? "" } }

    public var isRunning: Bool { self.process.withLock { $0?.isRunning ?? false } }

    /// Shuts the server down (`SHUTDOWN NOSAVE`, then signals) and removes its directory.
    public func stop() async {
        await self.stopProcess()
        TestEnvironment.remove(self.directory)
    }

    /// SIGKILL, as a crash; the directory stays for `restart()`.
    public func kill() async {
        let process = self.process.withLock { $0 }
        await process?.kill9()
    }

    /// Stops the server (if running) and starts a new one on the same port and directory.
    public func restart() async throws {
        await self.stopProcess()
        let process = try Self.spawn(try Self.executable(), port: self.port, password: self.password, directory: self.directory, extraArguments: self.extraArguments)
        self.process.withLock { $0 = process }
        try await self.waitUntilReady(process)
    }

    /// `SHUTDOWN NOSAVE` first: a signal may not arrive promptly when the test process blocks it in
    /// the thread that spawned the server (the mask is inherited). SIGTERM, then SIGKILL, as fallbacks.
    private func stopProcess() async {
        guard let process = self.process.withLock({ $0 }), process.isRunning else { return }
        var configuration = self.configuration
        configuration.dialTimeout = .seconds(1)
        configuration.readTimeout = .seconds(1)
        if let connection = try? await RESPConnection.connect(configuration: configuration) {
            _ = try? await connection.send(["SHUTDOWN", "NOSAVE"])
            await connection.close()
        }
        if await process.waitForExit(timeout: .seconds(2)) == nil {
            await process.stop(grace: .seconds(2))
        }
    }

    private static func spawn(_ executable: String, port: Int, password: String?, directory: String, extraArguments: [String]) throws -> TestProcess {
        var arguments = [
            "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory,
            "--daemonize", "no", "--logfile", "",
        ]
        if let password { arguments += ["--requirepass", password] }
        arguments += extraArguments
        return try TestProcess(executable, arguments, logPath: directory + "/redis.log")
    }

    private func waitUntilReady(_ process: TestProcess) async throws {
        var configuration = self.configuration
        configuration.dialTimeout = .seconds(1)
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            guard process.isRunning else {
                throw HarnessError("redis-server exited on port \(self.port):\n\(process.output)")
            }
            if let connection = try? await RESPConnection.connect(configuration: configuration) {
                let reply = try? await connection.send(["PING"])
                await connection.close()
                if reply?.string == "PONG" { return }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw HarnessError("redis-server on port \(self.port) did not answer PING within 10 s:\n\(process.output)")
    }
}

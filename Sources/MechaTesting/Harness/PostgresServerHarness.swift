#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A throwaway PostgreSQL server for tests: `initdb` into a temporary directory (trust
/// authentication, superuser `postgres`), `postgres` on a free port of 127.0.0.1 with its socket in
/// that directory, stopped by its PID (SIGINT: fast shutdown) and the directory removed afterwards.
///
/// `shared()` starts one server per test process and stops it when the process exits; each test
/// takes a database of its own with `createDatabase()`. When the process dies without exiting, a
/// small watchdog stops the server. Running as root (PostgreSQL refuses to), the server runs as
/// `nobody` through `setpriv`. Missing binaries fail with what to install.
///
/// ```swift
/// let server = try await PostgresServerHarness.shared()
/// let database = try await server.createDatabase()
/// let connectionString = server.connectionString(database: database)
/// ```
public final class PostgresServerHarness: Sendable {
    public let host = "127.0.0.1"
    public let port: Int
    /// The superuser (trust authentication: no password).
    public let user = "postgres"
    /// Holds the data directory (`data/`), the socket and the log (`postgres.log`).
    public let directory: String
    public var pid: Int32 { self.process.pid }
    private let process: TestProcess
    private let binDirectory: String
    private let stopped = Mutex(false)
    private let watchdog = Mutex<TestProcess?>(nil)

    private init(port: Int, directory: String, process: TestProcess, binDirectory: String) {
        self.port = port
        self.directory = directory
        self.process = process
        self.binDirectory = binDirectory
    }

    /// `host=127.0.0.1 port=… user=postgres dbname=… sslmode=disable`.
    public func connectionString(database: String = "postgres") -> String {
        "host=\(self.host) port=\(self.port) user=\(self.user) dbname=\(database) sslmode=disable"
    }

    /// `postgres://postgres@127.0.0.1:…/…?sslmode=disable`.
    public func url(database: String = "postgres") -> String {
        "postgres://\(self.user)@\(self.host):\(self.port)/\(database)?sslmode=disable"
    }

    // MARK: The shared server

    private static let sharedServer = SharedServer()

    /// The server shared by every test of this process, started on first use.
    public static func shared() async throws -> PostgresServerHarness {
        try await self.sharedServer.get()
    }

    private actor SharedServer {
        private var starting: Task<PostgresServerHarness, any Error>?

        func get() async throws -> PostgresServerHarness {
            if let starting { return try await starting.value }
            let task = Task { () throws -> PostgresServerHarness in
                let server = try await PostgresServerHarness.start()
                ExitCleanup.register(server)
                return server
            }
            self.starting = task
            return try await task.value
        }
    }

    // MARK: Starting and stopping

    /// Starts a new server; the caller stops it with `stop()`.
    public static func start() async throws -> PostgresServerHarness {
        let bin = try self.binaryDirectory()
        let directory = TestEnvironment.temporaryDirectory("mecha-postgres")
        let data = directory + "/data"
        do {
            let account = try self.serverAccount()
            if let account { guard chown(directory, account.uid, account.gid) == 0 else { throw HarnessError("cannot chown \(directory) to nobody: errno \(errno)") } }
            let prefix = account.map { ["setpriv", "--reuid=\($0.uid)", "--regid=\($0.gid)", "--clear-groups"] } ?? []
            // `cd` first: the server's user may not be allowed into the test's working directory.
            let initdb = prefix + [bin + "/initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]
            let initProcess = try TestProcess("/bin/sh", ["-c", "cd \(directory) && exec \(Self.shellWords(initdb))"], logPath: directory + "/initdb.log")
            guard let code = await initProcess.waitForExit(timeout: .seconds(120)), code == 0 else {
                initProcess.signal(SIGKILL)
                throw HarnessError("initdb failed:\n\(initProcess.output)")
            }
            var lastOutput = ""
            for _ in 0..<3 {
                let port = TestEnvironment.freePort()
                let server = prefix + [
                    bin + "/postgres", "-D", data, "-k", directory, "-p", "\(port)",
                    "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                    "-c", "full_page_writes=off", "-c", "max_connections=200",
                ]
                let process = try TestProcess("/bin/sh", ["-c", "cd \(directory) && exec \(Self.shellWords(server))"], logPath: directory + "/postgres.log")
                if await self.waitUntilAccepting(port: port, process: process, timeout: .seconds(60)) {
                    let harness = PostgresServerHarness(port: port, directory: directory, process: process, binDirectory: bin)
                    harness.startWatchdog()
                    return harness
                }
                lastOutput = process.output
                await process.stop(grace: .seconds(10))
            }
            throw HarnessError("postgres did not start:\n\(lastOutput)")
        } catch {
            TestEnvironment.remove(directory)
            throw error
        }
    }

    /// Fast shutdown (SIGINT) by PID, SIGKILL if it lingers, then the directory is removed. Idempotent.
    public func stop() {
        let first = self.stopped.withLock { stopped -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        // Synchronous: this also runs from atexit, where nothing async can.
        self.process.signal(SIGINT)
        for _ in 0..<200 where self.process.isRunning { usleep(50_000) }
        if self.process.isRunning {
            self.process.signal(SIGKILL)
            while self.process.isRunning { usleep(10_000) }
        }
        TestEnvironment.remove(self.directory)
        if let watchdog = self.watchdog.withLock({ $0 }) {
            watchdog.signal(SIGKILL)
            for _ in 0..<100 where watchdog.isRunning { usleep(10_000) }
        }
    }

    /// A new, empty database with a unique name; returns its name.
    public func createDatabase(_ prefix: String = "test") async throws -> String {
        let name = "\(prefix)_\(UInt64.random(in: 0...UInt64.max) & 0xFFFF_FFFF_FFFF)".lowercased()
        let log = self.directory + "/createdb-\(name).log"
        let process = try TestProcess(
            self.binDirectory + "/createdb",
            ["-h", self.host, "-p", "\(self.port)", "-U", self.user, name],
            logPath: log
        )
        guard let code = await process.waitForExit(timeout: .seconds(60)), code == 0 else {
            process.signal(SIGKILL)
            throw HarnessError("createdb \(name) failed:\n\(process.output)")
        }
        unlink(log)
        return name
    }

    /// Runs SQL through `psql` (from the same installation) and returns its unaligned output.
    public func psql(_ sql: String, database: String = "postgres") async throws -> String {
        let log = self.directory + "/psql-\(UInt32.random(in: 0...UInt32.max)).log"
        defer { unlink(log) }
        let process = try TestProcess(
            self.binDirectory + "/psql",
            ["-h", self.host, "-p", "\(self.port)", "-U", self.user, "-d", database, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
            logPath: log
        )
        guard let code = await process.waitForExit(timeout: .seconds(60)), code == 0 else {
            process.signal(SIGKILL)
            throw HarnessError("psql failed: \(sql)\n\(process.output)")
        }
        return process.output
    }

    /// A shell loop that stops the server if this process dies without running its exit cleanup.
    private func startWatchdog() {
        let script = """
            while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done
            if [ -d '\(self.directory)/data' ]; then kill -INT \(self.pid) 2>/dev/null; sleep 5; kill -KILL \(self.pid) 2>/dev/null; rm -rf '\(self.directory)'; fi
            """
        let process = try? TestProcess("/bin/sh", ["-c", script], logPath: "/dev/null")
        self.watchdog.withLock { $0 = process }
    }

    // MARK: Finding the binaries

    /// The directory holding `initdb`, `postgres`, `createdb` and `psql`: `$PATH` first (following
    /// symlinks, so Debian's /usr/local/bin links lead to the real directory), then Debian's
    /// /usr/lib/postgresql/<version>/bin, newest first.
    static func binaryDirectory() throws -> String {
        let needed = ["initdb", "postgres", "createdb", "psql"]
        var candidates: [String] = []
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":").map(String.init) where access(directory + "/postgres", X_OK) == 0 {
            if let real = realpath(directory + "/postgres", nil) {
                let resolved = String(cString: real)
                free(real)
                candidates.append(String(resolved[..<(resolved.lastIndex(of: "/") ?? resolved.endIndex)]))
            }
            candidates.append(directory)
        }
        if let stream = opendir("/usr/lib/postgresql") {
            var versions: [String] = []
            while let entry = readdir(stream) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.baseAddress!.assumingMemoryBound(to: CChar.self)) }
                if !name.hasPrefix(".") { versions.append(name) }
            }
            closedir(stream)
            for version in versions.sorted(by: { (Int($0) ?? 0) > (Int($1) ?? 0) }) { candidates.append("/usr/lib/postgresql/\(version)/bin") }
        }
        for directory in candidates where needed.allSatisfy({ access(directory + "/" + $0, X_OK) == 0 }) {
            return directory
        }
        throw HarnessError(
            "PostgreSQL server binaries (initdb, postgres, createdb, psql) not found on PATH or in /usr/lib/postgresql/*/bin: "
                + "install postgresql (apt-get install postgresql)"
        )
    }

    /// `nil` when not root; otherwise `nobody`, whom the server runs as.
    static func serverAccount() throws -> (uid: uid_t, gid: gid_t)? {
        guard geteuid() == 0 else { return nil }
        guard access("/usr/bin/setpriv", X_OK) == 0 || access("/bin/setpriv", X_OK) == 0 else {
            throw HarnessError("running as root, PostgreSQL must run as another user through setpriv: install util-linux (apt-get install util-linux)")
        }
        guard let entry = getpwnam("nobody") else { throw HarnessError("running as root and there is no user 'nobody' to run PostgreSQL as") }
        return (entry.pointee.pw_uid, entry.pointee.pw_gid)
    }

    private static func shellWords(_ words: [String]) -> String {
        words.map { "'" + $0.replacing("'", with: "'\\''") + "'" }.joined(separator: " ")
    }

    private static func waitUntilAccepting(port: Int, process: TestProcess, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard process.isRunning else { return false }
            // The log line comes after the socket is listening and recovery is done.
            if self.canConnect(port: port) && process.output.contains("ready to accept connections") { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    private static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return TestEnvironment.withLoopbackAddress(port: port) { connect(fd, $0, $1) } == 0
    }
}

/// Stops servers registered here when the test process exits normally.
private enum ExitCleanup {
    static let servers = Mutex<[PostgresServerHarness]>([])
    static let installed = Mutex(false)

    static func register(_ server: PostgresServerHarness) {
        self.servers.withLock { $0.append(server) }
        let install = self.installed.withLock { installed -> Bool in
            defer { installed = true }
            return !installed
        }
        if install {
            atexit {
                for server in ExitCleanup.servers.withLock({ $0 }) { server.stop() }
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A process started by a test, its output written to a log file, ended by its PID only.
public final class TestProcess: @unchecked Sendable {
    public let pid: Int32
    public let logPath: String
    public let arguments: [String]
    private var reaped: Int32?

    /// Starts `executable` with `arguments`; `environment` entries are added to (or override) the
    /// test's own environment.
    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], logPath: String) throws {
        var env = TestEnvironment.current
        for (key, value) in environment { env[key] = value }
        let fd = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        guard fd >= 0 else { throw HarnessError("cannot open \(logPath)") }
        defer { close(fd) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fd, 1)
        posix_spawn_file_actions_adddup2(&actions, fd, 2)
        // The child gets stdout/stderr and nothing else of the test process: hundreds of inherited
        // sockets and files would leak into every server a test starts (PostgreSQL refuses to start
        // when they use up its file descriptor budget).
        SpawnCloseFrom.add(&actions, from: 3)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        // Signals as a freshly started program expects them: the test process (and the in-process
        // sidecars' signal handling) may block or ignore SIGTERM/SIGINT, and a child would inherit that
        // — a server that ignores SIGTERM cannot be stopped gracefully.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaultSignals = sigset_t()
        sigemptyset(&defaultSignals)
        for signal in [SIGINT, SIGTERM, SIGPIPE, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD] { sigaddset(&defaultSignals, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaultSignals)
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        var pid: pid_t = 0
        let status = posix_spawnp(&pid, executable, &actions, &attributes, argv, envp)
        guard status == 0 else { throw HarnessError("cannot start \(executable): \(String(cString: strerror(status)))") }
        self.pid = pid
        self.logPath = logPath
        self.arguments = arguments
    }

    /// Sends `signal` to this process.
    public func signal(_ signal: Int32) {
        guard self.reaped == nil else { return }
        kill(self.pid, signal)
    }

    /// Waits up to `timeout` for the process to exit; returns its exit code (128+signal when killed), or nil.
    public func waitForExit(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let status = self.reap() { return status }
            if ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    private func reap() -> Int32? {
        if let reaped = self.reaped { return reaped }
        var status: Int32 = 0
        let result = waitpid(self.pid, &status, WNOHANG)
        guard result == self.pid else { return nil }
        let signal = status & 0x7f
        let code = signal == 0 ? (status >> 8) & 0xff : 128 + signal
        self.reaped = code
        return code
    }

    public var isRunning: Bool { self.reap() == nil }

    /// SIGTERM, then SIGKILL after `grace`.
    @discardableResult
    public func stop(grace: Duration = .seconds(10)) async -> Int32? {
        self.signal(SIGTERM)
        if let code = await self.waitForExit(timeout: grace) { return code }
        self.signal(SIGKILL)
        return await self.waitForExit(timeout: .seconds(5))
    }

    /// SIGKILL, no grace: a crash.
    public func kill9() async {
        self.signal(SIGKILL)
        _ = await self.waitForExit(timeout: .seconds(5))
    }

    /// The output so far.
    public var output: String {
        guard let file = fopen(self.logPath, "r") else { return "" }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes.append(contentsOf: buffer[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    deinit {
        if self.reaped == nil {
            kill(self.pid, SIGKILL)
            var status: Int32 = 0
            waitpid(self.pid, &status, 0)
        }
    }
}

/// Free ports, temporary directories and the environment, for tests.
public enum TestEnvironment {
    public static var current: [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") { result[String(text[..<equals])] = String(text[text.index(after: equals)...]) }
            pointer += 1
        }
        return result
    }

    /// A port that refuses connections for as long as the test process runs: bound on 127.0.0.1 but
    /// never listening, so no other test running in parallel can take it over (a `freePort()` where
    /// "nothing listens" may be handed to another test's server a moment later).
    public static func refusingPort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        _ = Self.bindLoopback(fd, port: 0)
        // The descriptor is deliberately kept open until the process exits.
        return Self.boundPort(fd)
    }

    /// A port held for a server a test starts later: bound (not listening) until `release()`, so no
    /// test running in parallel takes it meanwhile; release it right before the server binds.
    public static func reservePort() -> PortReservation {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        _ = Self.bindLoopback(fd, port: 0)
        return PortReservation(port: Self.boundPort(fd), descriptor: fd)
    }

    /// A port nothing listens on right now, for a server a test (or a process it starts) binds soon.
    /// Ports come from below the kernel's ephemeral range (20000–32767), each one once per test
    /// process: a parallel test binding port 0 or opening a connection never takes them (those
    /// draw from the ephemeral range), and two tests never get the same one. Ports in use by
    /// anything else are skipped (a trial bind on 127.0.0.1).
    public static func freePort() -> Int {
        for _ in 0..<Self.portRangeSize {
            let offset = Self.nextPort.wrappingAdd(1, ordering: .relaxed).oldValue
            let port = Self.portRangeStart + (Self.portSeed + offset) % Self.portRangeSize
            if Self.canBind(port) { return port }
        }
        return Self.ephemeralPort()
    }

    static let portRangeStart = 20000
    static let portRangeSize = 12768
    static let portSeed = Int(UInt32(truncatingIfNeeded: getpid()) &* 2_654_435_761 % UInt32(12768))
    static let nextPort = Atomic<Int>(0)

    static func canBind(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return Self.bindLoopback(fd, port: port)
    }

    /// A port the kernel picks (bound and released on 127.0.0.1).
    static func ephemeralPort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        _ = Self.bindLoopback(fd, port: 0)
        return Self.boundPort(fd)
    }

    /// Calls `body` with the address `127.0.0.1:port`.
    static func withLoopbackAddress<Result>(port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// Binds `fd` to `127.0.0.1:port` (0: a port the kernel picks); true on success.
    static func bindLoopback(_ fd: Int32, port: Int) -> Bool {
        self.withLoopbackAddress(port: port) { bind(fd, $0, $1) } == 0
    }

    /// The local port `fd` is bound to.
    static func boundPort(_ fd: Int32) -> Int {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// A new empty directory under /tmp.
    public static func temporaryDirectory(_ prefix: String = "mecha-test") -> String {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        let path = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        return path.map { String(cString: $0) } ?? "/tmp/\(prefix)-\(getpid())"
    }

    /// Writes `text` to `path`.
    public static func write(_ text: String, to path: String) throws {
        guard let file = fopen(path, "w") else { throw HarnessError("cannot write \(path)") }
        defer { fclose(file) }
        _ = text.utf8CString.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count - 1, file) }
    }

    /// `rm -rf` for a directory the test created.
    public static func remove(_ path: String) {
        guard path.hasPrefix("/tmp/") else { return }
        var status: Int32 = 0
        var pid: pid_t = 0
        let words: [String] = ["rm", "-rf", path]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        if posix_spawnp(&pid, "rm", nil, nil, argv, environ) == 0 { waitpid(pid, &status, 0) }
    }
}

extension TestEnvironment {
    /// `mkdir -p`; returns the path.
    @discardableResult
    public static func makeDirectory(_ path: String) -> String {
        var current = ""
        for component in path.split(separator: "/") {
            current += "/" + component
            mkdir(current, 0o755)
        }
        return path
    }
}

/// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34+), looked up at run time because the
/// Swift Glibc module does not export it; without it (older glibc) children inherit as before.
enum SpawnCloseFrom {
    private typealias Function = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private static let function: Function? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: Function.self)
    }()

    static func add(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, from descriptor: Int32) {
        _ = self.function?(actions, descriptor)
    }
}

/// A port held by `TestEnvironment.reservePort()`.
public final class PortReservation: Sendable {
    public let port: Int
    private let descriptor: Int32

    init(port: Int, descriptor: Int32) {
        self.port = port
        self.descriptor = descriptor
    }

    /// Frees the port for the server about to bind it. Call once.
    public func release() { close(self.descriptor) }
}

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn` (in our process group, as the Dapr CLI starts apps
/// and daprd: a signal to the `dapr run` process group reaches them too), its stdout and stderr
/// copied line by line to ours with a prefix. Blocking reads and `waitpid` run on dedicated threads,
/// never on the cooperative pool.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    private let exitBox = ExitBox()

    struct SpawnError: Error, CustomStringConvertible {
        var description: String
    }

    /// Starts `arguments[0]` (looked up in PATH) with `environment`.
    convenience init(arguments: [String], environment: [String: String], outputPrefix: String) throws {
        try self.init(arguments: arguments, environment: environment, output: OutputRouting(prefix: outputPrefix, targets: [1]), errors: OutputRouting(prefix: outputPrefix, targets: [2]))
    }

    /// Where a child's stdout or stderr goes: each line, prefixed, to every target descriptor.
    struct OutputRouting: Sendable {
        var prefix: String
        var targets: [Int32]
    }

    /// Starts `executable` (default `arguments[0]`, looked up in PATH) with `arguments` as its argv,
    /// in `directory` (default: ours).
    init(
        executable: String? = nil, arguments: [String], environment: [String: String], directory: String? = nil,
        output: OutputRouting, errors: OutputRouting
    ) throws {
        guard let executable = executable ?? arguments.first else { throw SpawnError(description: "no command given") }
        var stdoutPipe: [Int32] = [0, 0]
        var stderrPipe: [Int32] = [0, 0]
        guard pipe(&stdoutPipe) == 0, pipe(&stderrPipe) == 0 else { throw SpawnError(description: "cannot create pipes: errno \(errno)") }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, stderrPipe[1], 2)
        posix_spawn_file_actions_addclose(&actions, stdoutPipe[0])
        posix_spawn_file_actions_addclose(&actions, stderrPipe[0])
        // The app inherits stdin, stdout and stderr only — never the sidecar's sockets or files.
        SpawnCloseFrom.add(&actions, from: 3)
        if let directory {
            guard SpawnChangeDirectory.add(&actions, directory) else {
                close(stdoutPipe[0]); close(stdoutPipe[1]); close(stderrPipe[0]); close(stderrPipe[1])
                throw SpawnError(description: "cannot start \(executable) in \(directory): this C library cannot change the directory of a spawned process")
            }
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaultSignals = sigset_t()
        sigemptyset(&defaultSignals)
        sigaddset(&defaultSignals, SIGINT)
        sigaddset(&defaultSignals, SIGTERM)
        sigaddset(&defaultSignals, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaultSignals)
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let status = posix_spawnp(&pid, executable, &actions, &attributes, argv, envp)
        close(stdoutPipe[1])
        close(stderrPipe[1])
        guard status == 0 else {
            close(stdoutPipe[0])
            close(stderrPipe[0])
            throw SpawnError(description: "cannot start \(executable): \(String(cString: strerror(status)))")
        }
        self.pid = pid
        Self.pump(fd: stdoutPipe[0], to: output.targets, prefix: output.prefix)
        Self.pump(fd: stderrPipe[0], to: errors.targets, prefix: errors.prefix)
        let box = self.exitBox
        let childPID = pid
        Thread.start {
            var status: Int32 = 0
            while waitpid(childPID, &status, 0) < 0 && errno == EINTR {}
            box.set(status)
        }
    }

    /// Sends `signal` to the child (once it has exited, nothing: its PID may be reused).
    func signal(_ signal: Int32) {
        guard !self.hasExited else { return }
        kill(self.pid, signal)
    }

    /// Waits for the child to exit; returns the `waitpid` status.
    func wait() async -> Int32 {
        await self.exitBox.wait()
    }

    var hasExited: Bool { self.exitBox.value != nil }

    /// The exit code a shell would report (128 + signal when killed).
    static func exitCode(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        if signal == 0 { return (status >> 8) & 0xff }
        return 128 + signal
    }

    static func describe(_ status: Int32) -> String {
        let signal = status & 0x7f
        if signal == 0 { return "exit code \((status >> 8) & 0xff)" }
        return "signal \(signal)"
    }

    /// Copies lines from `fd` to every target, each prefixed.
    private static func pump(fd: Int32, to targets: [Int32], prefix: String) {
        Thread.start {
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 16 * 1024)
            let prefixBytes = Array(prefix.utf8)
            func emit(_ line: ArraySlice<UInt8>) {
                var out = prefixBytes
                out.append(contentsOf: line)
                out.append(0x0A)
                for target in targets { Loopback.writeAll(target, out) }
            }
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                pending.append(contentsOf: buffer[0..<count])
                while let newline = pending.firstIndex(of: 0x0A) {
                    emit(pending[pending.startIndex..<newline])
                    pending.removeSubrange(pending.startIndex...newline)
                }
            }
            if !pending.isEmpty { emit(pending[...]) }
            close(fd)
        }
    }
}

/// The exit status, set once by the waiting thread.
final class ExitBox: @unchecked Sendable {
    private var status: Int32?
    private var waiters: [CheckedContinuation<Int32, Never>] = []
    private var lock = pthread_mutex_t()

    init() { pthread_mutex_init(&self.lock, nil) }

    var value: Int32? {
        pthread_mutex_lock(&self.lock)
        defer { pthread_mutex_unlock(&self.lock) }
        return self.status
    }

    func set(_ status: Int32) {
        pthread_mutex_lock(&self.lock)
        self.status = status
        let waiters = self.waiters
        self.waiters = []
        pthread_mutex_unlock(&self.lock)
        for waiter in waiters { waiter.resume(returning: status) }
    }

    func wait() async -> Int32 {
        await withCheckedContinuation { continuation in
            pthread_mutex_lock(&self.lock)
            if let status = self.status {
                pthread_mutex_unlock(&self.lock)
                continuation.resume(returning: status)
                return
            }
            self.waiters.append(continuation)
            pthread_mutex_unlock(&self.lock)
        }
    }
}

/// A detached OS thread for blocking work.
enum Thread {
    static func start(_ body: @escaping @Sendable () -> Void) {
        final class Box: @unchecked Sendable {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        var thread = pthread_t()
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        pthread_create(&thread, nil, { raw in
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, box)
        pthread_detach(thread)
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

/// `posix_spawn_file_actions_addchdir_np` (glibc 2.29+), looked up at run time like `SpawnCloseFrom`.
enum SpawnChangeDirectory {
    private typealias Function = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    private static let function: Function? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np") else { return nil }
        return unsafeBitCast(symbol, to: Function.self)
    }()

    static func add(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ directory: String) -> Bool {
        guard let function = self.function else { return false }
        return directory.withCString { function(actions, $0) } == 0
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Logging
import MechaCore
import PostgresNIO
import Synchronization

/// A small pool of `PostgresConnection`s: at most `maxConnections` open, idle ones reused, broken
/// ones dropped and replaced on the next use. Callers queue (FIFO) when every connection is busy.
///
/// Each use has a deadline: when it passes, the connection is closed (which fails the query in
/// flight at once) and the caller gets `PostgresPoolError.timedOut`.
final class PostgresConnectionPool: Sendable {
    private struct State {
        var idle: [PostgresConnection] = []
        var permits: Int
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        var nextWaiterID: UInt64 = 0
        var closed = false
    }

    let configuration: PostgresConnection.Configuration
    /// `host:port` or the socket path, for messages.
    let endpoint: String
    private let logger: Logger
    private let state: Mutex<State>
    private let nextConnectionID = Atomic<Int>(0)

    init(configuration: PostgresConnection.Configuration, endpoint: String, maxConnections: Int, logger: Logger) {
        self.configuration = configuration
        self.endpoint = endpoint
        self.logger = logger
        self.state = Mutex(State(permits: max(1, maxConnections)))
    }

    /// Lends a connection to `body` for at most `timeout`.
    func withConnection<Result: Sendable>(
        timeout: Duration,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await self.acquirePermit()
        var connection = self.state.withLock { $0.idle.popLast() }
        do {
            if connection == nil { connection = try await self.connect() }
            let lent = connection!
            let result = try await Self.run(lent, timeout: timeout, body)
            self.release(lent)
            return result
        } catch {
            self.release(connection)
            throw error
        }
    }

    /// Closes every idle connection and refuses new uses; connections in use close when returned.
    func close() async {
        let (idle, waiters) = self.state.withLock { state in
            state.closed = true
            defer {
                state.idle = []
                state.waiters = []
            }
            return (state.idle, state.waiters)
        }
        for waiter in waiters { waiter.continuation.resume(throwing: PostgresPoolError.closed) }
        for connection in idle { try? await connection.close() }
    }

    private static func run<Result: Sendable>(
        _ connection: PostgresConnection,
        timeout: Duration,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        let timedOut = TimeoutFlag()
        return try await withThrowingTaskGroup(of: Result?.self) { group in
            group.addTask { try await body(connection) }
            group.addTask {
                try await Task.sleep(for: timeout)
                timedOut.set()
                // Closing fails the query in flight, so the body's task ends promptly.
                try? await connection.close()
                return nil
            }
            defer { group.cancelAll() }
            do {
                while let next = try await group.next() {
                    if let result = next { return result }
                    throw PostgresPoolError.timedOut(timeout)
                }
            } catch {
                // The body fails because the connection was closed under it: report the timeout.
                if timedOut.isSet { throw PostgresPoolError.timedOut(timeout) }
                throw error
            }
            throw CancellationError()
        }
    }

    /// Closes the idle connections; the pool stays usable and reconnects on the next use (the
    /// Postgres binding's `close` operation).
    func closeIdle() async {
        let idle = self.state.withLock { state in
            defer { state.idle = [] }
            return state.idle
        }
        for connection in idle { try? await connection.close() }
    }

    /// A connection outside the pool, for a long-lived listener; the caller closes it.
    func makeDedicatedConnection() async throws -> PostgresConnection {
        guard !self.state.withLock({ $0.closed }) else { throw PostgresPoolError.closed }
        return try await self.connect()
    }

    private func connect() async throws -> PostgresConnection {
        let id = self.nextConnectionID.wrappingAdd(1, ordering: .relaxed).newValue
        do {
            return try await PostgresConnection.connect(configuration: self.configuration, id: id, logger: self.logger)
        } catch {
            throw PostgresPoolError.connect(self.endpoint, PostgresErrorText.describe(error))
        }
    }

    private func acquirePermit() async throws {
        let id = self.state.withLock { state -> UInt64 in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = self.state.withLock { state -> Swift.Result<Void, any Error>? in
                    if state.closed { return .failure(PostgresPoolError.closed) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if state.permits > 0 {
                        state.permits -= 1
                        return .success(())
                    }
                    state.waiters.append((id, continuation))
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let waiter = self.state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// Returns the permit (handing it to the first waiter) and the connection, if still usable.
    private func release(_ connection: PostgresConnection?) {
        let (waiter, discard) = self.state.withLock { state -> (CheckedContinuation<Void, any Error>?, PostgresConnection?) in
            var discard: PostgresConnection? = nil
            if let connection {
                if state.closed || connection.isClosed { discard = connection } else { state.idle.append(connection) }
            }
            if !state.waiters.isEmpty { return (state.waiters.removeFirst().continuation, discard) }
            state.permits += 1
            return (nil, discard)
        }
        waiter?.resume()
        if let discard, !discard.isClosed { discard.close().whenComplete { _ in } }
    }
}

/// Set once by the timeout task, read by the caller.
private final class TimeoutFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { self.flag.store(true, ordering: .releasing) }
    var isSet: Bool { self.flag.load(ordering: .acquiring) }
}

enum PostgresPoolError: Error, Sendable, CustomStringConvertible {
    case closed
    case timedOut(Duration)
    case connect(String, String)

    var description: String {
        switch self {
        case .closed: "the PostgreSQL connection pool is closed"
        case .timedOut(let timeout): "the PostgreSQL operation did not finish within \(timeout) (metadata 'timeout')"
        case .connect(let endpoint, let reason): "cannot connect to PostgreSQL at \(endpoint): \(reason)"
        }
    }
}

/// Readable text for postgres-nio errors: the server's message and SQLSTATE, never query binds.
enum PostgresErrorText {
    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                let state = error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
                return message + state
            }
            if let underlying = error.underlying { return "\(error.code): \(underlying)" }
            return "\(error.code)"
        }
        if let error = error as? PostgresPoolError { return error.description }
        return "\(error)"
    }

    /// The SQLSTATE of a server error, if that is what `error` is.
    static func sqlState(_ error: any Error) -> String? {
        (error as? PSQLError)?.serverInfo?[.sqlState]
    }
}

extension PostgresConnectionPool {
    /// A pool from a component's `connectionString` (or Dapr's alias `url`); errors name the field.
    static func make(
        metadata: ComponentMetadata,
        timeout: Duration,
        maxConnections: Int,
        logger: Logger
    ) throws(ComponentConfigurationError) -> PostgresConnectionPool {
        let key = metadata["connectionString"] == nil && metadata["url"] != nil ? "url" : "connectionString"
        let text = try metadata.require(key)
        do {
            return try self.make(try PostgresConnectionString(parsing: text), connectTimeout: timeout, maxConnections: maxConnections, logger: logger)
        } catch {
            throw ComponentConfigurationError(key: key, reason: "invalid connection string: \(error.reason)")
        }
    }

    /// A pool for `connection`: TLS from `sslmode` (as libpq: `prefer` falls back to plain text,
    /// `require` encrypts without verifying unless `sslrootcert` is given, `verify-ca` checks the chain,
    /// `verify-full` also the host name); the user defaults to the process's user, as in libpq.
    static func make(
        _ connection: PostgresConnectionString,
        connectTimeout: Duration,
        maxConnections: Int,
        logger: Logger
    ) throws(ComponentConfigurationErrorReason) -> PostgresConnectionPool {
        let user = connection.user ?? Self.processUser
        var configuration: PostgresConnection.Configuration
        let endpoint: String
        if let socket = connection.unixSocketPath {
            configuration = .init(unixSocketPath: socket, username: user, password: connection.password, database: connection.database)
            endpoint = socket
        } else {
            let tls = try Self.tls(connection)
            configuration = .init(host: connection.host, port: connection.port, username: user, password: connection.password, database: connection.database, tls: tls)
            endpoint = "\(connection.host):\(connection.port)"
        }
        let timeout = connection.connectTimeout ?? connectTimeout
        configuration.options.connectTimeout = .milliseconds(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        configuration.options.additionalStartupParameters = connection.parameters
        return PostgresConnectionPool(configuration: configuration, endpoint: endpoint, maxConnections: maxConnections, logger: logger)
    }

    private static func tls(_ connection: PostgresConnectionString) throws(ComponentConfigurationErrorReason) -> PostgresConnection.Configuration.TLS {
        if connection.sslMode == .disable { return .disable }
        var tls = TLSConfiguration.makeClientConfiguration()
        switch connection.sslMode {
        case .disable, .allow, .prefer: tls.certificateVerification = .none
        case .require: tls.certificateVerification = connection.sslRootCert == nil ? .none : .noHostnameVerification
        case .verifyCA: tls.certificateVerification = .noHostnameVerification
        case .verifyFull: tls.certificateVerification = .fullVerification
        }
        do {
            if let root = connection.sslRootCert { tls.trustRoots = .file(root) }
            if let certificate = connection.sslCert {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
            }
            if let key = connection.sslKey { tls.privateKey = .file(key) }
            let context = try NIOSSLContext(configuration: tls)
            switch connection.sslMode {
            case .allow, .prefer: return .prefer(context)
            default: return .require(context)
            }
        } catch {
            throw ComponentConfigurationErrorReason("cannot set up TLS (sslmode=\(connection.sslMode.rawValue)): \(error)")
        }
    }

    /// The effective user's login name, or `postgres` when it has none.
    static var processUser: String {
        guard let entry = getpwuid(geteuid()), let name = entry.pointee.pw_name else { return "postgres" }
        return String(cString: name)
    }
}

public import Logging
public import NIOCore
public import NIOPosix
import NIOSSL
public import RESPWire
import Synchronization

/// `poolSize` connections to one Redis server, shared by every caller: commands are pipelined over
/// the connections round-robin, so a pool of a few connections carries many concurrent tasks.
///
/// Connections open on first use and reopen after they break; a command that fails with a
/// connection error is retried up to `maxRetries` times with exponential backoff
/// (`minRetryBackoff` doubling up to `maxRetryBackoff`). Error replies are never retried.
/// `run()` (optional, as a service) pings connections that were idle for `healthCheckInterval` and
/// closes those unused for `idleTimeout`.
///
/// Blocking commands (`XREADGROUP … BLOCK`, `BLPOP`) and pub/sub must not share a pipelined
/// connection: use ``withDedicatedConnection(isolation:_:)`` or ``makeDedicatedConnection()``.
/// Transactions (`MULTI`/`EXEC`) are safe through ``transaction(_:timeout:)``, which writes them
/// in one piece; `WATCH` needs a dedicated connection.
public final class RESPConnectionPool: Sendable {
    public let configuration: RESPConfiguration
    private let eventLoopGroup: any EventLoopGroup
    private let sslContext: NIOSSLContext?
    private let logger: Logger
    private let state: Mutex<State>

    private enum Slot {
        case empty
        case connecting(EventLoopFuture<RESPConnection>)
        case connected(RESPConnection, lastUsed: ContinuousClock.Instant)
    }

    private struct State {
        var slots: [Slot]
        var next = 0
        var isShutDown = false
    }

    private enum Pick {
        case use(RESPConnection)
        case wait(EventLoopFuture<RESPConnection>)
        case connect(Int, EventLoopPromise<RESPConnection>)
    }

    /// - Throws: ``RESPError`` `.connectionFailed` when the TLS configuration is invalid.
    public init(
        configuration: RESPConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "mecha.resp")
    ) throws {
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.sslContext = try configuration.makeSSLContext()
        self.logger = logger
        self.state = Mutex(State(slots: Array(repeating: .empty, count: max(1, configuration.poolSize))))
    }

    // MARK: Commands

    /// Sends one command on a pooled connection and returns its reply; see ``RESPConnection/send(_:timeout:)``.
    ///
    /// - Throws: ``RESPError``: `.server` for an error reply; a connection error once retries are
    ///   exhausted; `.shutDown` after ``shutdown()``.
    public func send(_ command: RESPCommand, timeout: Duration? = nil) async throws -> RESPValue {
        try await self.withRetries { try await $0.send(command, timeout: timeout) }
    }

    /// Sends commands in one write on one connection; replies in order, error replies as `.error` values.
    public func pipeline(_ commands: [RESPCommand], timeout: Duration? = nil) async throws -> [RESPValue] {
        try await self.withRetries { try await $0.pipeline(commands, timeout: timeout) }
    }

    /// `MULTI` + commands + `EXEC` in one write; see ``RESPConnection/transaction(_:timeout:)``.
    public func transaction(_ commands: [RESPCommand], timeout: Duration? = nil) async throws -> [RESPValue]? {
        try await self.withRetries { try await $0.transaction(commands, timeout: timeout) }
    }

    // MARK: Dedicated connections

    /// Opens a connection outside the pool (same configuration, same retries), runs `body` with it
    /// and closes it. For blocking reads, `WATCH` transactions and pub/sub.
    public func withDedicatedConnection<Result>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (RESPConnection) async throws -> Result
    ) async throws -> Result {
        let connection = try await self.makeDedicatedConnection()
        do {
            let result = try await body(connection)
            await connection.close()
            return result
        } catch {
            await connection.close()
            throw error
        }
    }

    /// Opens a connection outside the pool; the caller closes it. For a long-lived subscriber.
    public func makeDedicatedConnection() async throws -> RESPConnection {
        try self.checkNotShutDown()
        return try await self.withRetries(onPooledConnection: false) { _ in
            try await RESPConnection.connect(configuration: self.configuration, sslContext: self.sslContext, eventLoopGroup: self.eventLoopGroup, logger: self.logger)
        }
    }

    /// Subscribes a dedicated connection to `channels` and `patterns`, runs `body` with the
    /// published messages, and closes the connection when `body` returns or throws.
    ///
    /// The sequence throws `.connectionClosed` if the server goes away; subscribe again to resume
    /// (pub/sub does not replay missed messages).
    public func withSubscription<Result>(
        channels: [String] = [],
        patterns: [String] = [],
        isolation: isolated (any Actor)? = #isolation,
        _ body: (AsyncCompactMapSequence<AsyncThrowingStream<[RESPValue], any Error>, RESPPubSubMessage>) async throws -> Result
    ) async throws -> Result {
        let connection = try await self.makeDedicatedConnection()
        do {
            if !channels.isEmpty { try await connection.subscribe(channels) }
            if !patterns.isEmpty { try await connection.psubscribe(patterns) }
            let result = try await body(connection.messages)
            await connection.close()
            return result
        } catch {
            await connection.close()
            throw error
        }
    }

    // MARK: Lifecycle

    /// Health checks until cancelled or shut down: every `healthCheckInterval`, closes connections
    /// unused for `idleTimeout` and pings the other idle ones, dropping those that do not answer.
    public func run() async {
        while !Task.isCancelled, !self.isShutDown {
            do { try await Task.sleep(for: self.configuration.healthCheckInterval) } catch { return }
            await self.checkConnections()
        }
    }

    /// One round of `run()`'s checks, as if the time were `now`.
    public func checkConnections(now: ContinuousClock.Instant = .now) async {
        let (expired, toPing) = self.state.withLock { state -> ([RESPConnection], [(Int, RESPConnection)]) in
            var expired: [RESPConnection] = []
            var toPing: [(Int, RESPConnection)] = []
            for index in state.slots.indices {
                guard case .connected(let connection, let lastUsed) = state.slots[index] else { continue }
                if !connection.isActive {
                    state.slots[index] = .empty
                } else if let idleTimeout = self.configuration.idleTimeout, now - lastUsed >= idleTimeout {
                    state.slots[index] = .empty
                    expired.append(connection)
                } else if now - lastUsed >= self.configuration.healthCheckInterval {
                    toPing.append((index, connection))
                }
            }
            return (expired, toPing)
        }
        for connection in expired {
            self.logger.debug("closing idle redis connection")
            await connection.close()
        }
        await withTaskGroup(of: Void.self) { group in
            for (index, connection) in toPing {
                group.addTask {
                    do {
                        _ = try await connection.send(["PING"])
                    } catch {
                        self.logger.debug("redis health check failed", metadata: ["error": "\(error)"])
                        self.state.withLock { state in
                            if case .connected(let current, _) = state.slots[index], current === connection { state.slots[index] = .empty }
                        }
                        await connection.close()
                    }
                }
            }
        }
    }

    /// Closes every pooled connection; later commands fail with `.shutDown`. Dedicated connections
    /// belong to their callers.
    public func shutdown() async {
        let connections = self.state.withLock { state -> [RESPConnection] in
            state.isShutDown = true
            defer { state.slots = state.slots.map { _ in .empty } }
            return state.slots.compactMap { if case .connected(let connection, _) = $0 { connection } else { nil } }
        }
        for connection in connections { await connection.close() }
    }

    /// Pooled connections currently open.
    public var openConnectionCount: Int {
        self.state.withLock { state in
            state.slots.count { if case .connected(let connection, _) = $0 { connection.isActive } else { false } }
        }
    }

    private var isShutDown: Bool { self.state.withLock { $0.isShutDown } }

    private func checkNotShutDown() throws {
        if self.isShutDown { throw RESPError(.shutDown, "the connection pool was shut down") }
    }

    // MARK: Connections

    private func withRetries<Result>(
        onPooledConnection: Bool = true,
        _ body: (RESPConnection?) async throws -> Result
    ) async throws -> Result {
        var attempt = 0
        while true {
            do {
                return try await body(onPooledConnection ? try await self.pooledConnection() : nil)
            } catch let error as RESPError
                where (error.code == .connectionFailed || error.code == .connectionClosed) && attempt < self.configuration.maxRetries
            {
                attempt += 1
                let backoff = self.configuration.retryBackoff(attempt: attempt)
                self.logger.debug("retrying redis command", metadata: ["attempt": "\(attempt)", "backoff": "\(backoff)", "error": "\(error)"])
                try await Task.sleep(for: backoff)
                try self.checkNotShutDown()
            }
        }
    }

    private func withRetries<Result>(_ body: (RESPConnection) async throws -> Result) async throws -> Result {
        try await self.withRetries(onPooledConnection: true) { try await body($0!) }
    }

    private func pooledConnection() async throws -> RESPConnection {
        let pick = try self.state.withLock { state -> Pick in
            guard !state.isShutDown else { throw RESPError(.shutDown, "the connection pool was shut down") }
            let index = state.next % state.slots.count
            state.next &+= 1
            switch state.slots[index] {
            case .connected(let connection, _) where connection.isActive:
                state.slots[index] = .connected(connection, lastUsed: .now)
                return .use(connection)
            case .connecting(let future):
                return .wait(future)
            case .connected, .empty:
                let promise = self.eventLoopGroup.any().makePromise(of: RESPConnection.self)
                state.slots[index] = .connecting(promise.futureResult)
                return .connect(index, promise)
            }
        }
        switch pick {
        case .use(let connection):
            return connection
        case .wait(let future):
            return try await future.get()
        case .connect(let index, let promise):
            do {
                let connection = try await RESPConnection.connect(
                    configuration: self.configuration, sslContext: self.sslContext, eventLoopGroup: self.eventLoopGroup, logger: self.logger
                )
                let kept = self.state.withLock { state -> Bool in
                    guard !state.isShutDown else { return false }
                    state.slots[index] = .connected(connection, lastUsed: .now)
                    return true
                }
                guard kept else {
                    await connection.close()
                    let error = RESPError(.shutDown, "the connection pool was shut down")
                    promise.fail(error)
                    throw error
                }
                promise.succeed(connection)
                return connection
            } catch {
                self.state.withLock { state in
                    if case .connecting(let future) = state.slots[index], future === promise.futureResult { state.slots[index] = .empty }
                }
                promise.fail(error)
                throw error
            }
        }
    }
}

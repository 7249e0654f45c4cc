/// Which connections exist per upstream, which are idle, and who is waiting. Pure: events in,
/// actions out; the shell (`ConnectionPool`) performs the IO and resumes continuations.
struct ConnectionPoolStateMachine {
    typealias ConnectionID = Int
    typealias WaiterID = Int

    struct Key: Hashable, Sendable, CustomStringConvertible {
        var host: String
        var port: Int
        var tls: Bool
        var peer: String? = nil

        var description: String { "\(self.tls ? "https" : "http")://\(self.authority)" }

        /// `host:port`, with brackets around an IPv6 address.
        var authority: String { self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }
    }

    enum ConnectionState: Equatable {
        /// Being established on behalf of `waiter` (nil once that waiter went away).
        case connecting(for: WaiterID?)
        case idle(since: ContinuousClock.Instant)
        case leased
    }

    struct Connection {
        var key: Key
        var state: ConnectionState
    }

    enum LeaseAction: Equatable {
        /// Use this idle connection now.
        case use(ConnectionID)
        /// Establish a new connection (the id is reserved) and give it to the waiter.
        case connect(ConnectionID)
        /// At the per-host limit: wait for a release.
        case wait
    }

    enum ReleaseAction: Equatable {
        /// Hand the connection straight to this waiter.
        case handOver(ConnectionID, to: WaiterID)
        /// Park it as idle.
        case park
        /// Close it; if a waiter is queued, a new connection was reserved for it.
        case close(ConnectionID, thenConnect: ConnectionID?, for: WaiterID?)
    }

    enum EstablishedAction: Equatable {
        case handOver(to: WaiterID)
        case park
        /// Nobody wants it and the pool is shutting down: close it.
        case close
    }

    /// A connection went away while callers were queued at the limit: a new connection was reserved
    /// for the first of them.
    struct Reconnect: Equatable {
        var connection: ConnectionID
        var waiter: WaiterID
    }

    enum FailedAction: Equatable {
        /// Fail the waiter the connection was being established for (nil when it went away), and
        /// establish `reconnect` for the next queued waiter, if any.
        case fail(WaiterID?, reconnect: Reconnect?)
    }

    let maxConnectionsPerKey: Int
    private(set) var connections: [ConnectionID: Connection] = [:]
    private var idleByKey: [Key: [ConnectionID]] = [:]
    private var waitersByKey: [Key: [WaiterID]] = [:]
    private var countByKey: [Key: Int] = [:]
    private var nextConnectionID = 0
    private(set) var shuttingDown = false

    init(maxConnectionsPerKey: Int) {
        self.maxConnectionsPerKey = max(1, maxConnectionsPerKey)
    }

    private mutating func reserve(_ key: Key, for waiter: WaiterID?) -> ConnectionID {
        self.nextConnectionID += 1
        let id = self.nextConnectionID
        self.connections[id] = Connection(key: key, state: .connecting(for: waiter))
        self.countByKey[key, default: 0] += 1
        return id
    }

    /// A caller wants a connection to `key`.
    mutating func leaseRequested(_ key: Key, waiter: WaiterID) -> LeaseAction {
        if var idle = self.idleByKey[key], let id = idle.popLast() {
            self.idleByKey[key] = idle
            self.connections[id]?.state = .leased
            return .use(id)
        }
        if self.countByKey[key, default: 0] < self.maxConnectionsPerKey {
            return .connect(self.reserve(key, for: waiter))
        }
        self.waitersByKey[key, default: []].append(waiter)
        return .wait
    }

    /// A waiter gave up (cancelled). Returns true when it was still queued.
    mutating func waiterCancelled(_ waiter: WaiterID, key: Key) -> Bool {
        for (id, connection) in self.connections where connection.state == .connecting(for: waiter) {
            self.connections[id]?.state = .connecting(for: nil)
        }
        guard var waiters = self.waitersByKey[key], let index = waiters.firstIndex(of: waiter) else { return false }
        waiters.remove(at: index)
        self.waitersByKey[key] = waiters
        return true
    }

    /// A reserved connection is up.
    mutating func connectionEstablished(_ id: ConnectionID, now: ContinuousClock.Instant) -> EstablishedAction {
        guard let connection = self.connections[id] else { return .park }
        if case .connecting(let waiter?) = connection.state {
            self.connections[id]?.state = .leased
            return .handOver(to: waiter)
        }
        if let waiter = self.popWaiter(connection.key) {
            self.connections[id]?.state = .leased
            return .handOver(to: waiter)
        }
        if self.shuttingDown {
            self.remove(id)
            return .close
        }
        self.connections[id]?.state = .idle(since: now)
        self.idleByKey[connection.key, default: []].append(id)
        return .park
    }

    /// A reserved connection could not be established: its waiter (if still there) fails; a queued
    /// waiter gets its own attempt, so nobody waits forever for capacity that was never used.
    mutating func connectionFailed(_ id: ConnectionID) -> FailedAction {
        guard let connection = self.connections[id] else { return .fail(nil, reconnect: nil) }
        self.remove(id)
        var waiter: WaiterID?
        if case .connecting(let reserved?) = connection.state { waiter = reserved }
        return .fail(waiter, reconnect: self.reconnectForQueuedWaiter(connection.key))
    }

    /// A leased connection is back. `reusable` is false after `Connection: close`, errors or
    /// an unread body.
    mutating func connectionReleased(_ id: ConnectionID, reusable: Bool, now: ContinuousClock.Instant) -> ReleaseAction {
        guard let connection = self.connections[id] else { return .park }
        if reusable && !self.shuttingDown {
            if let waiter = self.popWaiter(connection.key) {
                return .handOver(id, to: waiter)
            }
            self.connections[id]?.state = .idle(since: now)
            self.idleByKey[connection.key, default: []].append(id)
            return .park
        }
        self.remove(id)
        if !self.shuttingDown, let waiter = self.popWaiter(connection.key) {
            return .close(id, thenConnect: self.reserve(connection.key, for: waiter), for: waiter)
        }
        return .close(id, thenConnect: nil, for: nil)
    }

    /// The connection closed (peer, error or our own request). Forget it; if callers are queued for
    /// its key, a new connection is reserved for the first (its capacity is free now, and a later
    /// release of the closed connection will not hand anything over).
    mutating func connectionClosed(_ id: ConnectionID) -> Reconnect? {
        guard let connection = self.connections[id] else { return nil }
        self.remove(id)
        return self.reconnectForQueuedWaiter(connection.key)
    }

    /// Idle connections older than `timeout`, removed from the pool; the shell closes them.
    mutating func idleConnectionsToClose(now: ContinuousClock.Instant, timeout: Duration) -> [ConnectionID] {
        var expired: [ConnectionID] = []
        for (id, connection) in self.connections {
            if case .idle(let since) = connection.state, now - since >= timeout { expired.append(id) }
        }
        for id in expired { self.remove(id) }
        return expired
    }

    /// Starts shutdown: every idle connection is returned for closing; queued waiters are returned to fail.
    mutating func shutdown() -> (close: [ConnectionID], fail: [WaiterID]) {
        self.shuttingDown = true
        var idle: [ConnectionID] = []
        for (id, connection) in self.connections {
            if case .idle = connection.state { idle.append(id) }
        }
        for id in idle { self.remove(id) }
        let waiters = self.waitersByKey.values.flatMap { $0 }
        self.waitersByKey = [:]
        return (idle, waiters)
    }

    var isEmpty: Bool { self.connections.isEmpty }

    private mutating func reconnectForQueuedWaiter(_ key: Key) -> Reconnect? {
        guard !self.shuttingDown, self.countByKey[key, default: 0] < self.maxConnectionsPerKey,
            let waiter = self.popWaiter(key)
        else { return nil }
        return Reconnect(connection: self.reserve(key, for: waiter), waiter: waiter)
    }

    private mutating func popWaiter(_ key: Key) -> WaiterID? {
        guard var waiters = self.waitersByKey[key], !waiters.isEmpty else { return nil }
        let waiter = waiters.removeFirst()
        self.waitersByKey[key] = waiters
        return waiter
    }

    private mutating func remove(_ id: ConnectionID) {
        guard let connection = self.connections.removeValue(forKey: id) else { return }
        self.countByKey[connection.key, default: 1] -= 1
        if case .idle = connection.state, var idle = self.idleByKey[connection.key], let index = idle.firstIndex(of: id) {
            idle.remove(at: index)
            self.idleByKey[connection.key] = idle
        }
    }
}

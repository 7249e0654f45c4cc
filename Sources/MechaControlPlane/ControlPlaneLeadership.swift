public import Foundation
public import Logging
import MechaPostgres
import PostgresNIO
import Synchronization

/// Which of the control planes sharing a store leads its background work (the registry's
/// housekeeping today). Every control plane serves every request from the shared store; the
/// leader is the one holding a session-level PostgreSQL advisory lock, on a connection of its own.
/// PostgreSQL releases the lock when that session ends — the leader's process killed or its
/// connection lost — and another control plane takes it within a second. No home-made consensus:
/// the database decides. A leader that cannot confirm its session within `checkTimeout` steps down
/// before the server could hand the lock to another, so two never lead at once.
///
/// On the embedded SQLite store there is one control plane per file: it always leads.
public final class ControlPlaneLeadership: Sendable {
    let store: ControlPlaneStore
    let key: Int64
    let logger: Logger
    let interval: Duration
    let checkTimeout: Duration
    /// How long an instance stays in the registry's table without a heartbeat before the leader
    /// removes it (it is no longer listed after `ControlPlaneAPI.freshness` already).
    let pruneAfter: Duration
    private let state = Mutex<(leading: Bool, since: Date?, changes: Int)>((false, nil, 0))

    public init(store: ControlPlaneStore, trustDomain: String, logger: Logger, interval: Duration = .seconds(1), checkTimeout: Duration = .seconds(3),
                pruneAfter: Duration = .seconds(300)) {
        self.store = store
        self.key = Self.lockKey(trustDomain: trustDomain)
        self.logger = logger
        self.interval = interval
        self.checkTimeout = checkTimeout
        self.pruneAfter = pruneAfter
    }

    /// The advisory lock's key: FNV-1a of `mecha-control-plane/<trust domain>` (one leader per
    /// trust domain on a database).
    static func lockKey(trustDomain: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "mecha-control-plane/\(trustDomain)".utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return Int64(bitPattern: hash)
    }

    public var isLeader: Bool { self.state.withLock { $0.leading } }
    /// When this process became the leader, while it is.
    public var leaderSince: Date? { self.state.withLock { $0.since } }
    /// How many times leadership was taken or lost (status).
    public var transitions: Int { self.state.withLock { $0.changes } }

    private func set(leading: Bool) {
        let changed = self.state.withLock { state -> Bool in
            guard state.leading != leading else { return false }
            state = (leading, leading ? Date() : nil, state.changes + 1)
            return true
        }
        guard changed else { return }
        if leading {
            self.logger.info("leading the control planes on \(self.store.kind) \(self.store.path)")
        } else {
            self.logger.warning("no longer leading the control planes on \(self.store.kind) \(self.store.path)")
        }
    }

    /// Campaigns, leads and does the leader's work until cancelled.
    public func run() async {
        guard let postgres = self.store.postgres else {
            self.set(leading: true)
            await self.housekeep()
            return
        }
        var backoff: Duration = .milliseconds(500)
        while !Task.isCancelled {
            var connection: PostgresConnection?
            do {
                let session = try await postgres.dedicatedConnection()
                connection = session
                backoff = .milliseconds(500)
                var lastHousekeeping = ContinuousClock.now - .seconds(3600)
                while !Task.isCancelled {
                    if self.isLeader {
                        // Still the same session, so still the lock's holder.
                        _ = try await self.bounded(session) { try await session.query("SELECT 1", logger: self.logger).get() }
                    } else {
                        let key = self.key
                        let result = try await self.bounded(session) { try await session.query("SELECT pg_try_advisory_lock(\(key))", logger: self.logger).get() }
                        if try result.rows.first?.decode(Bool.self) == true { self.set(leading: true) }
                    }
                    if self.isLeader, ContinuousClock.now - lastHousekeeping >= .seconds(10) {
                        lastHousekeeping = ContinuousClock.now
                        await self.pruneOnce()
                    }
                    try await Task.sleep(for: self.interval)
                }
            } catch {
                if !Task.isCancelled {
                    self.logger.warning("control plane leadership: \(MechaPostgresDatabase.describe(error)); retrying in \(backoff)")
                }
            }
            self.set(leading: false)
            if let connection { try? await connection.close() }
            guard (try? await Task.sleep(for: backoff)) != nil else { break }
            backoff = min(backoff * 2, .seconds(5))
        }
        self.set(leading: false)
    }

    /// The sole control plane's housekeeping (SQLite).
    func housekeep() async {
        while !Task.isCancelled {
            await self.pruneOnce()
            guard (try? await Task.sleep(for: .seconds(10))) != nil else { return }
        }
    }

    func pruneOnce() async {
        do {
            let removed = try await self.store.pruneInstances(olderThan: self.pruneAfter)
            if removed > 0 { self.logger.info("registry: removed \(removed) instance(s) unheard of for \(self.pruneAfter)") }
        } catch {
            self.logger.warning("registry housekeeping failed: \(error)")
        }
    }

    /// `body` within `checkTimeout`; otherwise the session is closed (which fails the query in
    /// flight) and an error thrown.
    func bounded<Output: Sendable>(_ session: PostgresConnection, _ body: @escaping @Sendable () async throws -> Output) async throws -> Output {
        let timeout = self.checkTimeout
        return try await withThrowingTaskGroup(of: Output?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: timeout)
                try? await session.close()
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let output = first else {
                throw ControlPlaneStoreError("the leader's session did not answer within \(timeout)")
            }
            return output
        }
    }
}

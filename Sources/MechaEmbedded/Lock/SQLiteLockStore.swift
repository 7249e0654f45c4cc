public import MechaCore

/// `lock.sqlite`: locks in an SQLite database, by default the shared embedded one, so every sidecar
/// on the machine contends for the same locks (the embedded default `lockstore`).
///
/// One row per held lock: `key`, `owner`, `expires_at` (Unix milliseconds from the wall clock of the
/// process that took it; processes sharing a file share a clock). A lock whose expiry has passed is
/// free: `tryLock` replaces it in the same transaction, and a periodic cleanup deletes the rest.
public final class SQLiteLockStore: LockStore {
    let database: SQLiteDatabase
    let table: String
    let cleanupInterval: Duration
    private let now: @Sendable () -> Timestamp

    init(database: SQLiteDatabase, table: String, cleanupInterval: Duration, now: @escaping @Sendable () -> Timestamp = { WallClock.now() }) {
        self.database = database
        self.table = table
        self.cleanupInterval = cleanupInterval
        self.now = now
    }

    func migrate() async throws {
        _ = try await self.database.execute(
            "CREATE TABLE IF NOT EXISTS \(self.table) (key TEXT NOT NULL PRIMARY KEY, owner TEXT NOT NULL, expires_at INTEGER NOT NULL)"
        )
    }

    public func tryLock(resourceID: String, owner: String, expiry: Duration) async throws -> Bool {
        let now = self.now().unixMilliseconds
        let table = self.table
        return try await self.database.transaction { connection in
            try connection.run("DELETE FROM \(table) WHERE key = ? AND expires_at <= ?", [.text(resourceID), .integer(now)])
            let inserted = try connection.run(
                "INSERT INTO \(table) (key, owner, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING",
                [.text(resourceID), .text(owner), .integer(now.addingSaturated(expiry.milliseconds))]
            )
            return inserted == 1
        }
    }

    public func unlock(resourceID: String, owner: String) async throws -> UnlockStatus {
        let now = self.now().unixMilliseconds
        let table = self.table
        return try await self.database.transaction { connection in
            let rows = try connection.query("SELECT owner FROM \(table) WHERE key = ? AND expires_at > ?", [.text(resourceID), .integer(now)])
            guard let holder = rows.first?.first?.string else { return .lockDoesNotExist }
            guard holder == owner else { return .lockBelongsToOthers }
            try connection.run("DELETE FROM \(table) WHERE key = ?", [.text(resourceID)])
            return .success
        }
    }

    /// Deletes expired locks every `cleanupInterval`.
    public func run(until stop: StopSignal) async throws {
        guard self.cleanupInterval > .zero else { return }
        while !(await stop.sleep(for: self.cleanupInterval)) {
            _ = try? await self.database.execute("DELETE FROM \(self.table) WHERE expires_at <= ?", [.integer(self.now().unixMilliseconds)])
        }
    }
}

/// Factory for `lock.sqlite`. Metadata: `connectionString` (file path or `:memory:`; default the
/// shared embedded database), `tableName` (default `locks`), `busyTimeout`, `disableWAL`,
/// `cleanupInterval` (default 1h; 0 disables).
public struct SQLiteLockStoreFactory: ComponentFactory {
    public init() {}
    public var type: ComponentType { ComponentType(.lock, "sqlite") }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        let metadata = spec.metadata
        let table = try EmbeddedDatabase.identifier(metadata, "tableName", default: "locks")
        let cleanup = try EmbeddedDatabase.cleanupInterval(metadata)
        let database = try EmbeddedDatabase.open(metadata, context: context)
        let store = SQLiteLockStore(database: database, table: table, cleanupInterval: cleanup)
        try await store.migrate()
        return store
    }
}

public import MechaCore

/// `state.sqlite`: state in an SQLite database, in the same table layout as Dapr's SQLite state
/// store (`key, value, is_binary, etag, expiration_time, update_time` plus a `metadata` table), so a
/// database written by daprd can be read by Mecha and the other way round.
///
/// Values that are valid JSON are stored as text; other bytes as base64 with `is_binary = 1`.
/// ETags are random UUIDs, changed on every write. TTL uses `expiration_time`; expired rows are
/// invisible at once and deleted by a periodic cleanup (coordinated between processes sharing the file).
public final class SQLiteStateStore: TransactionalStateStore {
    let database: SQLiteDatabase
    let table: String
    let metadataTable: String
    let cleanupInterval: Duration

    public var features: StateFeatures { [.etag, .transactional, .ttl] }

    init(database: SQLiteDatabase, table: String, metadataTable: String, cleanupInterval: Duration) {
        self.database = database
        self.table = table
        self.metadataTable = metadataTable
        self.cleanupInterval = cleanupInterval
    }

    /// Creates the tables if missing (migration level 1, as Dapr records it).
    func migrate() async throws {
        let table = self.table
        let metadataTable = self.metadataTable
        try await self.database.transaction { connection in
            try connection.execute("CREATE TABLE IF NOT EXISTS \(metadataTable) (key text NOT NULL PRIMARY KEY, value text NOT NULL)")
            let level = try connection.query("SELECT value FROM \(metadataTable) WHERE key = 'migrations'").first?.first?.string.flatMap(Int.init) ?? 0
            if level < 1 {
                try connection.execute(
                    """
                    CREATE TABLE IF NOT EXISTS \(table) (
                        key TEXT NOT NULL PRIMARY KEY,
                        value TEXT NOT NULL,
                        is_binary BOOLEAN NOT NULL,
                        etag TEXT NOT NULL,
                        expiration_time TIMESTAMP DEFAULT NULL,
                        update_time TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
                    )
                    """
                )
                try connection.run("REPLACE INTO \(metadataTable) (key, value) VALUES ('migrations', '1')")
            }
        }
    }

    static func encode(_ value: [UInt8]) -> (text: String, binary: Bool) {
        if let text = String(validating: value, as: UTF8.self), JSONValue.isValid(value) { return (text, false) }
        return (Base64.encode(value), true)
    }

    static func decode(_ text: SQLiteValue, binary: SQLiteValue) -> [UInt8] {
        let raw = text.string ?? ""
        if binary.int == 1 { return Base64.decode(raw) ?? Array(raw.utf8) }
        return Array(raw.utf8)
    }

    /// `2026-01-02 03:04:05` (SQLite's CURRENT_TIMESTAMP form) → RFC 3339.
    static func rfc3339(_ value: SQLiteValue) -> String? {
        guard let text = value.string, !text.isEmpty else { return nil }
        return Timestamp(rfc3339: text.replacing(" ", with: "T") + (text.hasSuffix("Z") ? "" : "Z"))?.rfc3339
    }

    private var liveCondition: String { "(expiration_time IS NULL OR expiration_time > CURRENT_TIMESTAMP)" }

    public func get(_ request: StateGetRequest) async throws -> StateItem? {
        guard !request.key.isEmpty else { throw StateStoreError(.invalidRequest, detail: "missing key in get operation") }
        let sql = "SELECT value, is_binary, etag, expiration_time FROM \(self.table) WHERE key = ? AND \(self.liveCondition)"
        let rows = try await self.database.query(sql, [.text(request.key)])
        guard let row = rows.first else { return nil }
        var metadata: [String: String] = [:]
        if let expires = Self.rfc3339(row[3]) { metadata["ttlExpireTime"] = expires }
        return StateItem(key: request.key, value: Self.decode(row[0], binary: row[1]), etag: row[2].string, metadata: metadata)
    }

    public func bulkGet(_ requests: [StateGetRequest]) async throws -> [StateBulkItem] {
        guard !requests.isEmpty else { return [] }
        var results: [String: StateItem] = [:]
        // Chunked IN lists keep statements within SQLite's variable limit.
        for chunk in stride(from: 0, to: requests.count, by: 500).map({ Array(requests[$0..<min($0 + 500, requests.count)]) }) {
            let placeholders = Array(repeating: "?", count: chunk.count).joined(separator: ",")
            let sql = "SELECT key, value, is_binary, etag, expiration_time FROM \(self.table) WHERE key IN (\(placeholders)) AND \(self.liveCondition)"
            for row in try await self.database.query(sql, chunk.map { .text($0.key) }) {
                let key = row[0].string ?? ""
                var metadata: [String: String] = [:]
                if let expires = Self.rfc3339(row[4]) { metadata["ttlExpireTime"] = expires }
                results[key] = StateItem(key: key, value: Self.decode(row[1], binary: row[2]), etag: row[3].string, metadata: metadata)
            }
        }
        return requests.map { StateBulkItem(key: $0.key, item: results[$0.key]) }
    }

    public func set(_ request: StateSetRequest) async throws {
        try await self.transact([.set(request)], metadata: [:])
    }

    public func delete(_ request: StateDeleteRequest) async throws {
        try await self.transact([.delete(request)], metadata: [:])
    }

    public func transact(_ operations: [StateOperation], metadata: [String: String]) async throws {
        for operation in operations where operation.key.isEmpty {
            throw StateStoreError(.invalidRequest, detail: "missing key in \(operation.isSet ? "set" : "delete") operation")
        }
        let table = self.table
        let live = self.liveCondition
        try await self.database.transaction { connection in
            for operation in operations {
                switch operation {
                case .set(let request):
                    let (text, binary) = Self.encode(request.value)
                    let etag = RandomID.uuid()
                    // A zero or negative TTL means no expiry; a fraction of a second counts as a whole one.
                    let expiry: SQLiteValue = request.ttl.flatMap { ttl -> SQLiteValue? in
                        guard ttl > .zero else { return nil }
                        let (seconds, attoseconds) = ttl.components
                        return .text("+\(seconds + (attoseconds > 0 ? 1 : 0)) seconds")
                    } ?? .null
                    let values: [SQLiteValue] = [.text(text), .integer(binary ? 1 : 0), .text(etag), expiry]
                    if let expected = request.etag {
                        let changed = try connection.run(
                            """
                            UPDATE \(table) SET value = ?, is_binary = ?, etag = ?,
                                expiration_time = CASE WHEN ?4 IS NULL THEN NULL ELSE DATETIME(CURRENT_TIMESTAMP, ?4) END,
                                update_time = CURRENT_TIMESTAMP
                            WHERE key = ?5 AND etag = ?6 AND \(live)
                            """,
                            values + [.text(request.key), .text(expected)]
                        )
                        guard changed == 1 else {
                            throw StateStoreError(.etagMismatch, key: request.key, detail: "state not exist or etag not match for key=\(request.key)")
                        }
                    } else if request.concurrency == .firstWrite {
                        let changed = try connection.run(
                            """
                            INSERT INTO \(table) (key, value, is_binary, etag, expiration_time, update_time)
                            VALUES (?5, ?1, ?2, ?3, CASE WHEN ?4 IS NULL THEN NULL ELSE DATETIME(CURRENT_TIMESTAMP, ?4) END, CURRENT_TIMESTAMP)
                            ON CONFLICT (key) DO UPDATE SET value = excluded.value, is_binary = excluded.is_binary, etag = excluded.etag,
                                expiration_time = excluded.expiration_time, update_time = excluded.update_time
                            WHERE \(table).expiration_time IS NOT NULL AND \(table).expiration_time <= CURRENT_TIMESTAMP
                            """,
                            values + [.text(request.key)]
                        )
                        guard changed == 1 else {
                            throw StateStoreError(.etagMismatch, key: request.key, detail: "item already exists and no etag was passed")
                        }
                    } else {
                        try connection.run(
                            """
                            INSERT INTO \(table) (key, value, is_binary, etag, expiration_time, update_time)
                            VALUES (?5, ?1, ?2, ?3, CASE WHEN ?4 IS NULL THEN NULL ELSE DATETIME(CURRENT_TIMESTAMP, ?4) END, CURRENT_TIMESTAMP)
                            ON CONFLICT (key) DO UPDATE SET value = excluded.value, is_binary = excluded.is_binary, etag = excluded.etag,
                                expiration_time = excluded.expiration_time, update_time = excluded.update_time
                            """,
                            values + [.text(request.key)]
                        )
                    }
                case .delete(let request):
                    if let expected = request.etag {
                        let changed = try connection.run("DELETE FROM \(table) WHERE key = ? AND etag = ?", [.text(request.key), .text(expected)])
                        guard changed == 1 else {
                            throw StateStoreError(.etagMismatch, key: request.key, detail: "state not exist or etag not match for key=\(request.key)")
                        }
                    } else {
                        try connection.run("DELETE FROM \(table) WHERE key = ?", [.text(request.key)])
                    }
                }
            }
        }
    }

    /// Deletes expired rows every `cleanupInterval`; the `last-cleanup` row keeps several processes
    /// sharing the database from cleaning at once.
    public func run(until stop: StopSignal) async throws {
        guard self.cleanupInterval > .zero else { return }
        let seconds = self.cleanupInterval.components.seconds
        while !(await stop.sleep(for: self.cleanupInterval)) {
            let table = self.table
            let metadataTable = self.metadataTable
            _ = try? await self.database.transaction { connection in
                let claimed = try connection.run(
                    """
                    INSERT INTO \(metadataTable) (key, value) VALUES ('last-cleanup', CURRENT_TIMESTAMP)
                    ON CONFLICT (key) DO UPDATE SET value = CURRENT_TIMESTAMP
                    WHERE DATETIME(\(metadataTable).value, '+\(max(0, seconds - 1)) seconds') <= CURRENT_TIMESTAMP
                    """
                )
                if claimed > 0 {
                    try connection.run("DELETE FROM \(table) WHERE expiration_time IS NOT NULL AND expiration_time <= CURRENT_TIMESTAMP")
                }
            }
        }
    }
}

extension StateOperation {
    var isSet: Bool {
        if case .set = self { return true }
        return false
    }
}

/// Factory for `state.sqlite`. Metadata: `connectionString` (file path or `:memory:`; default the
/// shared embedded database), `tableName`, `metadataTableName`, `busyTimeout`, `disableWAL`,
/// `cleanupInterval`.
public struct SQLiteStateStoreFactory: ComponentFactory {
    public init() {}
    public var type: ComponentType { ComponentType(.state, "sqlite") }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        let metadata = spec.metadata
        let table = try EmbeddedDatabase.identifier(metadata, "tableName", default: "state")
        let metadataTable = try EmbeddedDatabase.identifier(metadata, "metadataTableName", default: "metadata")
        let cleanup = try EmbeddedDatabase.cleanupInterval(metadata)
        _ = try metadata.duration("timeout", default: .seconds(20))
        let database = try EmbeddedDatabase.open(metadata, context: context)
        let store = SQLiteStateStore(database: database, table: table, metadataTable: metadataTable, cleanupInterval: cleanup)
        try await store.migrate()
        return store
    }
}

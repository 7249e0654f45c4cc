public import Logging
public import MechaCore
import PostgresNIO

/// `state.postgresql`: state in a PostgreSQL table laid out as Dapr's v2 PostgreSQL state store
/// (`key text PRIMARY KEY, value bytea, etag uuid, created_at, updated_at, expires_at` plus an index on
/// `expires_at`, and a `dapr_metadata` table recording migrations), so a database written by daprd's
/// v2 store is read by Mecha and the other way round.
///
/// Values are stored byte for byte. ETags are random UUIDs, changed on every write; an ETag that is
/// not a UUID is `.etagInvalid`. TTL sets `expires_at`; expired rows are invisible at once and
/// deleted every `cleanupInterval` (one process at a time, coordinated through the metadata table).
/// Transactions run in one database transaction: all operations apply or none.
public final class PostgresStateStore: TransactionalStateStore {
    public let configuration: PostgresStateStoreConfiguration
    let pool: PostgresConnectionPool
    let logger: Logger

    public var features: StateFeatures { [.etag, .transactional, .ttl] }

    init(configuration: PostgresStateStoreConfiguration, pool: PostgresConnectionPool, logger: Logger) {
        self.configuration = configuration
        self.pool = pool
        self.logger = logger
    }

    private var table: String { self.configuration.table }
    private static let live = "(expires_at IS NULL OR expires_at > now())"

    // MARK: Reads

    public func get(_ request: StateGetRequest) async throws -> StateItem? {
        guard !request.key.isEmpty else { throw StateStoreError(.invalidRequest, detail: "missing key in get operation") }
        let key = request.key
        let query: PostgresQuery = """
            SELECT key, value, etag::text, floor(extract(epoch FROM expires_at))::int8
            FROM \(unescaped: self.table) WHERE key = \(key) AND \(unescaped: Self.live)
            """
        let logger = self.logger
        return try await self.perform { connection in
            try await Self.items(connection.query(query, logger: logger)).first
        }
    }

    public func bulkGet(_ requests: [StateGetRequest]) async throws -> [StateBulkItem] {
        guard !requests.isEmpty else { return [] }
        let keys = requests.map(\.key)
        let query: PostgresQuery = """
            SELECT key, value, etag::text, floor(extract(epoch FROM expires_at))::int8
            FROM \(unescaped: self.table) WHERE key = ANY(\(keys)) AND \(unescaped: Self.live)
            """
        let logger = self.logger
        let items = try await self.perform { connection in
            try await Self.items(connection.query(query, logger: logger))
        }
        var byKey: [String: StateItem] = [:]
        for item in items { byKey[item.key] = item }
        return requests.map { StateBulkItem(key: $0.key, item: byKey[$0.key]) }
    }

    private static func items(_ rows: PostgresRowSequence) async throws -> [StateItem] {
        var items: [StateItem] = []
        for try await row in rows {
            let (key, value, etag, expires) = try row.decode((String, ByteBuffer, String, Int64?).self)
            var metadata: [String: String] = [:]
            if let expires { metadata["ttlExpireTime"] = Timestamp(seconds: expires).rfc3339 }
            items.append(StateItem(key: key, value: Array(value.readableBytesView), etag: etag, metadata: metadata))
        }
        return items
    }

    // MARK: Writes

    public func set(_ request: StateSetRequest) async throws {
        let statement = try self.statement(for: .set(request))
        let logger = self.logger
        try await self.perform { connection in try await statement.run(on: connection, logger: logger) }
    }

    public func delete(_ request: StateDeleteRequest) async throws {
        let statement = try self.statement(for: .delete(request))
        let logger = self.logger
        try await self.perform { connection in try await statement.run(on: connection, logger: logger) }
    }

    public func transact(_ operations: [StateOperation], metadata: [String: String]) async throws {
        guard !operations.isEmpty else { return }
        // Every request is validated before anything is sent.
        let statements = try operations.map { try self.statement(for: $0) }
        let logger = self.logger
        try await self.perform { connection in
            try await connection.query("BEGIN", logger: logger)
            do {
                for statement in statements { try await statement.run(on: connection, logger: logger) }
                try await connection.query("COMMIT", logger: logger)
            } catch {
                do {
                    try await connection.query("ROLLBACK", logger: logger)
                } catch {
                    // A connection that cannot roll back is not handed out again.
                    try? await connection.close()
                }
                throw error
            }
        }
    }

    /// One write as SQL plus what its row count means.
    struct Statement: Sendable {
        var query: PostgresQuery
        /// When set, the statement must touch exactly one row, else this error.
        var mustChange: StateStoreError?

        func run(on connection: PostgresConnection, logger: Logger) async throws {
            let changed = try await connection.query(self.query, logger: logger).collect().count
            if let mustChange, changed != 1 { throw mustChange }
        }
    }

    func statement(for operation: StateOperation) throws -> Statement {
        let table = self.table
        let live = Self.live
        switch operation {
        case .set(let request):
            guard !request.key.isEmpty else { throw StateStoreError(.invalidRequest, detail: "missing key in set operation") }
            let key = request.key
            let value = ByteBuffer(bytes: request.value)
            let etag = RandomID.uuid()
            // A zero or negative TTL means no expiry; a fraction of a second counts as a whole one.
            let ttlSeconds: Int64? = request.ttl.flatMap { ttl in
                guard ttl > .zero else { return nil }
                let (seconds, attoseconds) = ttl.components
                return seconds + (attoseconds > 0 ? 1 : 0)
            }
            // An integer we computed, so it is spliced as a literal.
            let expiry = ttlSeconds.map { "now() + interval '\($0) seconds'" } ?? "NULL"
            if let expected = request.etag {
                try Self.validate(etag: expected, key: key)
                return Statement(
                    query: """
                        UPDATE \(unescaped: table) SET value = \(value), etag = \(etag)::uuid, updated_at = now(),
                            expires_at = \(unescaped: expiry)
                        WHERE key = \(key) AND etag = \(expected)::uuid AND \(unescaped: live)
                        RETURNING 1
                        """,
                    mustChange: StateStoreError(.etagMismatch, key: key, detail: "state not exist or etag not match for key=\(key)")
                )
            }
            // Upsert; with first-write only a missing or expired row may be replaced.
            let condition = request.concurrency == .firstWrite
                ? "WHERE stored.expires_at IS NOT NULL AND stored.expires_at <= now()" : ""
            let query: PostgresQuery = """
                INSERT INTO \(unescaped: table) AS stored (key, value, etag, expires_at)
                VALUES (\(key), \(value), \(etag)::uuid, \(unescaped: expiry))
                ON CONFLICT (key) DO UPDATE SET value = excluded.value, etag = excluded.etag, updated_at = now(),
                    expires_at = excluded.expires_at
                \(unescaped: condition)
                RETURNING 1
                """
            if request.concurrency == .firstWrite {
                return Statement(
                    query: query,
                    mustChange: StateStoreError(.etagMismatch, key: key, detail: "item already exists and no etag was passed")
                )
            }
            return Statement(query: query, mustChange: nil)
        case .delete(let request):
            guard !request.key.isEmpty else { throw StateStoreError(.invalidRequest, detail: "missing key in delete operation") }
            let key = request.key
            if let expected = request.etag {
                try Self.validate(etag: expected, key: key)
                return Statement(
                    query: "DELETE FROM \(unescaped: table) WHERE key = \(key) AND etag = \(expected)::uuid AND \(unescaped: live) RETURNING 1",
                    mustChange: StateStoreError(.etagMismatch, key: key, detail: "state not exist or etag not match for key=\(key)")
                )
            }
            return Statement(query: "DELETE FROM \(unescaped: table) WHERE key = \(key) RETURNING 1", mustChange: nil)
        }
    }

    /// ETags are UUIDs (32 hex digits, hyphens anywhere PostgreSQL accepts them, optional braces).
    static func validate(etag: String, key: String) throws {
        var text = Substring(etag)
        if text.first == "{" && text.last == "}" { text = text.dropFirst().dropLast() }
        let digits = text.utf8.filter { $0 != UInt8(ascii: "-") }
        let hex = digits.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 70) || ($0 >= 97 && $0 <= 102) }
        guard digits.count == 32, hex, text.first != "-", text.last != "-", !text.contains("--") else {
            throw StateStoreError(.etagInvalid, key: key, detail: "'\(etag)' is not a UUID")
        }
    }

    /// Runs `body` on a pooled connection within `timeout`; database failures become `.backend` errors.
    func perform<Result: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> Result) async throws -> Result {
        do {
            return try await self.pool.withConnection(timeout: self.configuration.timeout, body)
        } catch let error as StateStoreError {
            throw error
        } catch let error as CancellationError {
            throw error
        } catch {
            throw StateStoreError(.backend, detail: "state.postgresql: \(PostgresErrorText.describe(error))")
        }
    }

    // MARK: Lifecycle

    /// Creates the metadata and state tables when missing and records the migration level, holding a
    /// row lock in the metadata table so concurrent sidecars migrate one at a time (as Dapr does).
    /// Refuses a table that does not have the v2 layout (such as one written by Dapr's v1 store).
    func migrate() async throws {
        let table = self.table
        let metadataTable = self.configuration.metadataTable
        let migrationsKey = self.configuration.migrationsKey
        let logger = self.logger
        let indexName = (table.split(separator: ".").last.map(String.init) ?? table) + "_expires_at_idx"
        try await self.pool.withConnection(timeout: self.configuration.timeout) { connection in
            // Concurrent CREATE TABLE IF NOT EXISTS can still collide on the type name (23505): retry.
            for attempt in 1...3 {
                do {
                    try await connection.query(
                        "CREATE TABLE IF NOT EXISTS \(unescaped: metadataTable) (key text NOT NULL PRIMARY KEY, value text NOT NULL)",
                        logger: logger
                    )
                    break
                } catch where PostgresErrorText.sqlState(error) == "23505" && attempt < 3 {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            try await connection.query(
                "INSERT INTO \(unescaped: metadataTable) (key, value) VALUES ('lock', 'lock') ON CONFLICT (key) DO NOTHING",
                logger: logger
            )
            try await connection.query("BEGIN", logger: logger)
            do {
                try await connection.query("SELECT value FROM \(unescaped: metadataTable) WHERE key = 'lock' FOR UPDATE", logger: logger)
                var level = 0
                for try await (value) in try await connection.query(
                    "SELECT value FROM \(unescaped: metadataTable) WHERE key = \(migrationsKey)", logger: logger
                ).decode(String.self) {
                    level = Int(value) ?? 0
                }
                if level < 1 {
                    logger.info("creating state table", metadata: ["table": "\(table)"])
                    try await connection.query(
                        """
                        CREATE TABLE IF NOT EXISTS \(unescaped: table) (
                            key text NOT NULL PRIMARY KEY,
                            value bytea NOT NULL,
                            etag uuid NOT NULL,
                            created_at timestamp with time zone NOT NULL DEFAULT now(),
                            updated_at timestamp with time zone,
                            expires_at timestamp with time zone
                        )
                        """,
                        logger: logger
                    )
                    // An existing table of another layout is refused before anything is added to it.
                    try await Self.checkLayout(connection, table: table, logger: logger)
                    try await connection.query("CREATE INDEX IF NOT EXISTS \(unescaped: indexName) ON \(unescaped: table) (expires_at)", logger: logger)
                    try await connection.query(
                        """
                        INSERT INTO \(unescaped: metadataTable) (key, value) VALUES (\(migrationsKey), '1')
                        ON CONFLICT (key) DO UPDATE SET value = '1'
                        """,
                        logger: logger
                    )
                } else {
                    try await Self.checkLayout(connection, table: table, logger: logger)
                }
                try await connection.query("COMMIT", logger: logger)
            } catch {
                try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
        }
    }

    /// The state table must have the v2 columns; Dapr's v1 layout (jsonb `value`, `isbinary`,
    /// `xmin` ETags) is named in the error rather than misread.
    static func checkLayout(_ connection: PostgresConnection, table: String, logger: Logger) async throws {
        let parts = table.split(separator: ".").map(String.init)
        let name = parts.last ?? table
        let schema: String? = parts.count == 2 ? parts[0] : nil
        var columns: [String: String] = [:]
        let rows = try await connection.query(
            """
            SELECT column_name::text, data_type::text FROM information_schema.columns
            WHERE table_name = \(name) AND table_schema = coalesce(\(schema), current_schema())
            """,
            logger: logger
        )
        for try await (column, type) in rows.decode((String, String).self) { columns[column] = type }
        if columns["isbinary"] != nil {
            throw PostgresLayoutError(
                "table \(table) has the layout of Dapr's state.postgresql v1 (value jsonb, isbinary, insertdate); Mecha reads "
                    + "and writes Dapr's v2 layout only: set tableName (or tablePrefix) to a new table, or migrate the data"
            )
        }
        let expected = ["key": "text", "value": "bytea", "etag": "uuid", "expires_at": "timestamp with time zone"]
        for (column, type) in expected.sorted(by: { $0.key < $1.key }) where columns[column] != type {
            let found = columns[column].map { "is \($0)" } ?? "is missing"
            throw PostgresLayoutError("table \(table) is not a Dapr v2 state table: column \(column) \(found), expected \(type)")
        }
    }

    /// Deletes expired rows every `cleanupInterval`. The last-cleanup row in the metadata table makes
    /// sidecars sharing the database take turns instead of all cleaning at once.
    public func run(until stop: StopSignal) async throws {
        guard let interval = self.configuration.cleanupInterval else { return }
        while !(await stop.sleep(for: interval)) {
            do {
                let deleted = try await self.cleanupExpired()
                if deleted > 0 { self.logger.debug("deleted expired state", metadata: ["rows": "\(deleted)"]) }
            } catch {
                self.logger.warning("state.postgresql cleanup failed: \(error)")
            }
        }
    }

    /// Claims this cleanup round (unless another process cleaned within the interval) and deletes
    /// expired rows; returns how many it deleted.
    @discardableResult
    func cleanupExpired() async throws -> Int {
        let interval = self.configuration.cleanupInterval ?? .zero
        // A little slack so a process on the same schedule is not skipped by a few milliseconds.
        let (seconds, attoseconds) = (interval * 0.9).components
        let milliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        let table = self.table
        let metadataTable = self.configuration.metadataTable
        let cleanupKey = self.configuration.lastCleanupKey
        let logger = self.logger
        return try await self.perform { connection in
            let claimed = try await connection.query(
                """
                INSERT INTO \(unescaped: metadataTable) AS stored (key, value) VALUES (\(cleanupKey), now()::text)
                ON CONFLICT (key) DO UPDATE SET value = now()::text
                WHERE stored.value::timestamp with time zone <= now() - \(milliseconds)::int8 * interval '1 millisecond'
                RETURNING 1
                """,
                logger: logger
            ).collect().count
            guard claimed > 0 else { return 0 }
            return try await connection.query(
                "DELETE FROM \(unescaped: table) WHERE expires_at IS NOT NULL AND expires_at <= now() RETURNING 1",
                logger: logger
            ).collect().count
        }
    }

    public func close() async throws {
        await self.pool.close()
    }
}

/// The existing state table cannot be used as it is.
struct PostgresLayoutError: Error, Sendable, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Factory for `state.postgresql`, versions `v1` and `v2` (both Dapr's v2 table layout; see README).
public struct PostgresStateStoreFactory: ComponentFactory {
    public init() {}
    public var type: ComponentType { ComponentType(.state, "postgresql") }
    public var versions: [String] { ["v1", "v2"] }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        let configuration = try PostgresStateStoreConfiguration(spec.metadata)
        let pool: PostgresConnectionPool
        do {
            pool = try PostgresConnectionPool.make(
                configuration.connection,
                connectTimeout: configuration.timeout,
                maxConnections: configuration.maxConnections,
                logger: context.logger
            )
        } catch {
            throw ComponentConfigurationError(key: "connectionString", reason: error.reason)
        }
        let store = PostgresStateStore(configuration: configuration, pool: pool, logger: context.logger)
        do {
            try await store.migrate()
        } catch {
            await pool.close()
            throw PostgresStateStoreInitError("state.postgresql: \(PostgresErrorText.describe(error))")
        }
        return store
    }
}

/// The store could not be initialised (database unreachable, migration failed, table unusable).
public struct PostgresStateStoreInitError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

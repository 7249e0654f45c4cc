public import Logging
public import MechaCore
import PostgresNIO

/// `configuration.postgresql` (alias `configuration.postgres`): Dapr's PostgreSQL configuration
/// store. Items live in a table the user creates, `(KEY VARCHAR, VALUE VARCHAR, VERSION VARCHAR,
/// METADATA JSON)`; the store only reads it. When a key appears in several rows, the row with the
/// highest numeric version wins, as in Dapr.
///
/// Subscriptions need the request metadata `pgNotifyChannel`: the store LISTENs on that channel and
/// expects a trigger on the table to `pg_notify` it with a JSON payload whose `data` object holds
/// `key`, `value`, `version` and `metadata` (Dapr's documented trigger sends `row_to_json(NEW)`).
/// A lost LISTEN connection is re-established with backoff, and the watched keys' current items are
/// then sent so changes made meanwhile are not missed.
public final class PostgresConfigurationStore: ConfigurationStore {
    let pool: PostgresConnectionPool
    let table: String
    let timeout: Duration
    let logger: Logger

    init(pool: PostgresConnectionPool, table: String, timeout: Duration, logger: Logger) {
        self.pool = pool
        self.table = table
        self.timeout = timeout
        self.logger = logger
    }

    /// Dapr's key rule: letters, digits, `.`, `/` and `_`.
    static func isValidKey(_ key: String) -> Bool {
        key.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 46 || $0 == 47 || $0 == 95 }
    }

    func tableExists() async throws -> Bool {
        let table = self.table
        let logger = self.logger
        return try await self.pool.withConnection(timeout: self.timeout) { connection in
            let rows = try await connection.query("SELECT to_regclass(\(table)) IS NOT NULL", logger: logger)
            for try await exists in rows.decode(Bool.self) { return exists }
            return false
        }
    }

    public func get(keys: [String], metadata: [String: String]) async throws -> [String: ConfigurationItem] {
        if let invalid = keys.first(where: { !Self.isValidKey($0) }) {
            throw ConfigurationStoreError("invalid key : '\(invalid)'")
        }
        let query: PostgresQuery = keys.isEmpty
            ? "SELECT key, value, version, metadata::text FROM \(unescaped: self.table)"
            : "SELECT key, value, version, metadata::text FROM \(unescaped: self.table) WHERE key = ANY(\(keys))"
        let logger = self.logger
        let rows: [(String, String, String, String?)]
        do {
            rows = try await self.pool.withConnection(timeout: self.timeout) { connection in
                var rows: [(String, String, String, String?)] = []
                for try await row in try await connection.query(query, logger: logger).decode((String, String, String, String?).self) {
                    rows.append(row)
                }
                return rows
            }
        } catch {
            throw ConfigurationStoreError("configuration.postgresql: \(PostgresErrorText.describe(error))")
        }
        var items: [String: ConfigurationItem] = [:]
        for (key, value, version, metadata) in rows {
            if let existing = items[key], Int(existing.version) ?? -1 >= Int(version) ?? -1 { continue }
            items[key] = ConfigurationItem(value: value, version: version, metadata: Self.stringMap(metadata.flatMap { try? JSONValue(parsing: Array($0.utf8)) }))
        }
        return items
    }

    static func stringMap(_ value: JSONValue?) -> [String: String] {
        guard case .object(let members)? = value else { return [:] }
        var map: [String: String] = [:]
        for (key, entry) in members {
            switch entry {
            case .string(let text): map[key] = text
            case .null: continue
            default: map[key] = String(decoding: entry.serialized, as: UTF8.self)
            }
        }
        return map
    }

    public func subscribe(keys: [String], metadata: [String: String]) async throws -> ConfigurationUpdates {
        guard let channel = metadata.first(where: { $0.key.lowercased() == "pgnotifychannel" })?.value, !channel.isEmpty else {
            throw ConfigurationStoreError("unable to subscribe to '\(self.table)'. pgNotifyChannel attribute cannot be empty")
        }
        // The first LISTEN is made before returning: a change right after is delivered.
        var first: (PostgresConnection, PostgresNotificationSequence)?
        do {
            first = try await self.listen(channel)
        } catch {
            throw ConfigurationStoreError("configuration.postgresql: \(PostgresErrorText.describe(error))")
        }
        let wanted = Set(keys)
        let logger = self.logger
        let (updates, continuation) = ConfigurationUpdates.makeStream()
        let reader = Task {
            var backoff = Duration.milliseconds(100)
            while !Task.isCancelled {
                var connection: PostgresConnection?
                do {
                    let (listening, notifications): (PostgresConnection, PostgresNotificationSequence)
                    if let first {
                        (listening, notifications) = first
                    } else {
                        (listening, notifications) = try await self.listen(channel)
                    }
                    connection = listening
                    if first == nil {
                        backoff = .milliseconds(100)
                        logger.info("configuration.postgresql: listening on \(channel) again after a lost connection")
                        // Changes made while the connection was down: send the watched keys' current items.
                        if !keys.isEmpty, let current = try? await self.get(keys: keys, metadata: [:]), !current.isEmpty {
                            continuation.yield(current)
                        }
                    }
                    first = nil
                    for try await notification in notifications {
                        guard let (key, item) = Self.notifiedItem(notification.payload) else {
                            logger.warning("configuration.postgresql: ignoring a notification on \(channel) that is not {\"data\":{\"key\",\"value\",\"version\",\"metadata\"}}: \(notification.payload.prefix(200))")
                            continue
                        }
                        if wanted.isEmpty || wanted.contains(key) { continuation.yield([key: item]) }
                    }
                } catch {
                    if !Task.isCancelled { logger.warning("configuration.postgresql: LISTEN connection lost: \(PostgresErrorText.describe(error))") }
                }
                first = nil
                try? await connection?.close()
                if Task.isCancelled { break }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in reader.cancel() }
        return updates
    }

    /// A dedicated connection listening on `channel`.
    private func listen(_ channel: String) async throws -> (PostgresConnection, PostgresNotificationSequence) {
        let connection = try await self.pool.makeDedicatedConnection()
        do {
            return (connection, try await connection.listen(channel))
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// `{"data":{"key":…,"value":…,"version":…,"metadata":{…}}}`, names in any case (as Dapr reads it).
    static func notifiedItem(_ payload: String) -> (String, ConfigurationItem)? {
        guard case .object(let members)? = try? JSONValue(parsing: Array(payload.utf8)),
            case .object(let data)? = members.first(where: { $0.0.lowercased() == "data" })?.1
        else { return nil }
        func field(_ name: String) -> JSONValue? { data.first { $0.0.lowercased() == name }?.1 }
        guard case .string(let key)? = field("key") else { return nil }
        let value = field("value")?.stringValue ?? ""
        let version = field("version")?.stringValue ?? ""
        return (key, ConfigurationItem(value: value, version: version, metadata: self.stringMap(field("metadata"))))
    }

    public func close() async throws {
        await self.pool.close()
    }
}

/// Factory for `configuration.postgresql` and `configuration.postgres`. Metadata: `connectionString`
/// (required, as `state.postgresql`), `table` (required: lower-case letters, digits, `.`, `/`, `_`,
/// at most 64 characters; the table must exist), `timeout` (`20s`), `maxConns` (`5`).
public struct PostgresConfigurationStoreFactory: ComponentFactory {
    let name: String
    public init(name: String = "postgresql") { self.name = name }
    public var type: ComponentType { ComponentType(.configuration, self.name) }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        let metadata = spec.metadata
        guard let table = metadata["table"]?.trimmingSpaces(), !table.isEmpty else {
            throw ComponentConfigurationError(key: "table", reason: "missing postgreSQL configuration table name")
        }
        let allowed = table.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 122) || $0 == 46 || $0 == 47 || $0 == 95 }
        guard allowed, table.utf8.count <= 64 else {
            throw ComponentConfigurationError(key: "table", reason: "invalid table name '\(table)': use lower-case letters, digits, '.', '/' and '_' (at most 64)")
        }
        let timeoutKey = metadata["timeout"] == nil && metadata["timeoutInSeconds"] != nil ? "timeoutInSeconds" : "timeout"
        let timeout = try metadata.duration(timeoutKey, default: .seconds(20))
        guard timeout >= .seconds(1) else { throw ComponentConfigurationError(key: timeoutKey, reason: "must be at least 1s") }
        let maxConnections = try metadata.int("maxConns", default: 5, range: 1...1000)
        let pool = try PostgresConnectionPool.make(metadata: metadata, timeout: timeout, maxConnections: maxConnections, logger: context.logger)
        let store = PostgresConfigurationStore(pool: pool, table: table, timeout: timeout, logger: context.logger)
        do {
            guard try await store.tableExists() else {
                throw ConfigurationStoreError("postgreSQL configuration table '\(table)' does not exist")
            }
        } catch let error as ConfigurationStoreError {
            await pool.close()
            throw error
        } catch {
            await pool.close()
            throw ConfigurationStoreError("configuration.postgresql: \(PostgresErrorText.describe(error))")
        }
        return store
    }
}

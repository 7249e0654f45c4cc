public import MechaCore

/// Typed `state.postgresql` metadata, with Dapr's names (v2 component; v1's `tableName` too).
///
/// - `connectionString` (required; alias `url`): keyword/value or `postgres://` URL form.
/// - `tableName` (default `state`), or Dapr v2's `tablePrefix` (the table is `<prefix>state`); either
///   may be `schema.table`. Giving both is an error.
/// - `metadataTableName` (default `dapr_metadata`).
/// - `timeout` (alias `timeoutInSeconds`; default `20s`, at least `1s`): per operation.
/// - `cleanupInterval` (alias `cleanupIntervalInSeconds`; default `1h`; `0` or negative disables).
/// - `maxConns` (default 10; the connection string's `pool_max_conns` also works).
/// - `actorStateStore` (a boolean; the runtime reads it).
public struct PostgresStateStoreConfiguration: Sendable, Hashable {
    public var table: String
    public var metadataTable: String
    public var timeout: Duration
    /// `nil` when cleanup is disabled.
    public var cleanupInterval: Duration?
    public var maxConnections: Int
    public var actorStateStore: Bool
    /// The key under which the table's migration level is recorded in the metadata table (Dapr's).
    public var migrationsKey: String
    /// The key of the last-cleanup row in the metadata table (Dapr's).
    public var lastCleanupKey: String
    var connection: PostgresConnectionString

    public init(_ metadata: ComponentMetadata) throws(ComponentConfigurationError) {
        let connectionKey = metadata["connectionString"] == nil && metadata["url"] != nil ? "url" : "connectionString"
        let text = try metadata.require(connectionKey)
        do {
            self.connection = try PostgresConnectionString(parsing: text)
        } catch {
            throw ComponentConfigurationError(key: connectionKey, reason: "invalid connection string: \(error.reason)")
        }

        let prefix = try Self.identifier(metadata, "tablePrefix", allowEmpty: true)
        let tableName = try Self.identifier(metadata, "tableName", allowEmpty: false)
        switch (prefix, tableName) {
        case (.some, .some):
            throw ComponentConfigurationError(key: "tablePrefix", reason: "give tableName or tablePrefix, not both")
        case (.some(let prefix), nil):
            self.table = prefix + "state"
        case (nil, .some(let name)):
            self.table = name
        case (nil, nil):
            self.table = "state"
        }
        // Dapr v2 keys the migration level by table prefix; a table named `<prefix>state` is the same table.
        let keyPrefix = self.table.hasSuffix("state") ? String(self.table.dropLast(5)) : self.table
        self.migrationsKey = "migrations-state-v2-" + keyPrefix
        self.metadataTable = try Self.identifier(metadata, "metadataTableName", allowEmpty: false) ?? "dapr_metadata"
        self.lastCleanupKey = "last-cleanup-state-v2-" + self.metadataTable

        let timeoutKey = metadata["timeout"] == nil && metadata["timeoutInSeconds"] != nil ? "timeoutInSeconds" : "timeout"
        self.timeout = try metadata.duration(timeoutKey, default: .seconds(20))
        guard self.timeout >= .seconds(1) else {
            throw ComponentConfigurationError(key: timeoutKey, reason: "must be at least 1s, got \(metadata[timeoutKey] ?? "")")
        }
        let cleanupKey = metadata["cleanupInterval"] == nil && metadata["cleanupIntervalInSeconds"] != nil
            ? "cleanupIntervalInSeconds" : "cleanupInterval"
        let cleanup = try metadata.duration(cleanupKey, default: .seconds(3600), range: (.zero - Duration.maximumInterval) ... .maximumInterval)
        self.cleanupInterval = cleanup > .zero ? cleanup : nil
        self.maxConnections = try metadata.int("maxConns", default: self.connection.maxConnections ?? 10, range: 1...1000)
        self.actorStateStore = try metadata.bool("actorStateStore", default: false)
    }

    /// A table name spliced into SQL: `name` or `schema.name`, each part letters, digits and `_`,
    /// not starting with a digit. `nil` when absent.
    static func identifier(_ metadata: ComponentMetadata, _ key: String, allowEmpty: Bool) throws(ComponentConfigurationError) -> String? {
        guard let raw = metadata[key] else { return nil }
        let name = raw.trimmingSpaces()
        if name.isEmpty {
            if allowEmpty { return "" }
            throw ComponentConfigurationError(key: key, reason: "must not be empty")
        }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        let valid = parts.count <= 2 && parts.indices.allSatisfy { index in
            let part = parts[index]
            // `schema.` is a valid prefix: the table is `schema.state`.
            if part.isEmpty { return allowEmpty && index == 1 && !parts[0].isEmpty }
            guard let first = part.utf8.first, !(first >= 48 && first <= 57) else { return false }
            return part.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 95 }
        }
        guard valid else {
            throw ComponentConfigurationError(key: key, reason: "invalid identifier: \(name) (use letters, digits and _, optionally schema.name)")
        }
        return name
    }
}

#if canImport(Glibc)
import Glibc
#endif
import MechaCore

/// Where embedded SQLite components keep their data: one shared database file per machine
/// (`<data dir>/mecha.db`) unless the component names another.
enum EmbeddedDatabase {
    static let fileName = "mecha.db"

    /// The database path from `connectionString` (a path, a `file:` URI or `:memory:`), defaulting
    /// to the shared embedded database. The parent directory is created when missing.
    static func path(_ metadata: ComponentMetadata, context: ComponentContext) throws -> String {
        if let connection = metadata.value(forAnyOf: "connectionString", "url", "databasePath"), !connection.isEmpty {
            if connection == ":memory:" || connection.hasPrefix("file:") { return connection }
            try self.makeParentDirectory(of: connection)
            return connection
        }
        try self.makeDirectory(context.dataDirectory)
        return context.dataDirectory + "/" + self.fileName
    }

    /// Opens the component's database: `connectionString` (see `path`), `busyTimeout` (`5s`) and
    /// `disableWAL` (`false`), as Dapr's SQLite components read them.
    static func open(_ metadata: ComponentMetadata, context: ComponentContext) throws -> SQLiteDatabase {
        let path = try self.path(metadata, context: context)
        let busyTimeout = try self.busyTimeout(metadata)
        let disableWAL = try metadata.bool("disableWAL", default: false)
        return try SQLiteDatabase(path: path, busyTimeout: busyTimeout, wal: !disableWAL)
    }

    /// `busyTimeout` (`5s`): how long a statement waits for another process's lock. SQLite counts
    /// it in milliseconds in a 32-bit integer; a day is far more than any lock should be held.
    static func busyTimeout(_ metadata: ComponentMetadata) throws(ComponentConfigurationError) -> Duration {
        try metadata.duration("busyTimeout", default: .seconds(5), range: .zero ... .seconds(86_400))
    }

    /// `cleanupInterval` (`1h`) of the SQLite stores: how often expired rows are deleted; zero or a
    /// negative value turns the cleanup off, as in Dapr.
    static func cleanupInterval(_ metadata: ComponentMetadata) throws(ComponentConfigurationError) -> Duration {
        let value = try metadata.duration("cleanupInterval", default: .seconds(3600), range: (.zero - Duration.maximumInterval) ... .maximumInterval)
        return max(value, .zero)
    }

    /// A table name: ASCII letters, digits and `_` only (it is spliced into SQL).
    static func identifier(_ metadata: ComponentMetadata, _ key: String, default defaultValue: String) throws(ComponentConfigurationError) -> String {
        let name = metadata.string(key) ?? defaultValue
        guard !name.isEmpty, name.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 95 }) else {
            throw ComponentConfigurationError(key: key, reason: "invalid identifier: \(name) (use letters, digits and _)")
        }
        return name
    }

    static func makeParentDirectory(of path: String) throws {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        try self.makeDirectory(String(path[..<slash]))
    }

    /// `mkdir -p`.
    static func makeDirectory(_ path: String) throws {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw ComponentConfigurationError(key: "connectionString", reason: "cannot create directory \(current): errno \(errno)")
            }
        }
    }
}

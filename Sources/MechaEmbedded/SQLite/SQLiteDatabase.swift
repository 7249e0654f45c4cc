#if canImport(Glibc)
import Glibc
#endif
import CSQLite
import MechaCore
public import NIOPosix
import Synchronization

/// A value in or out of SQLite.
public enum SQLiteValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])

    public var int: Int64? {
        switch self {
        case .integer(let value): value
        case .real(let value): Int64(value)
        case .text(let text): Int64(text)
        default: nil
        }
    }

    public var string: String? {
        switch self {
        case .text(let text): text
        case .integer(let value): String(value)
        case .real(let value): String(value)
        case .blob(let bytes): String(decoding: bytes, as: UTF8.self)
        case .null: nil
        }
    }

    var bytes: [UInt8]? {
        switch self {
        case .blob(let bytes): bytes
        case .text(let text): Array(text.utf8)
        default: nil
        }
    }
}

/// An SQLite error with the library's message.
public struct SQLiteError: Error, Sendable, CustomStringConvertible {
    public var code: Int32
    public var message: String
    public var description: String { "sqlite error \(self.code): \(self.message)" }

    var isBusy: Bool { self.code == SQLITE_BUSY || self.code == SQLITE_LOCKED }
}

/// One SQLite connection (the system library, serialized mode). Every call runs on NIO's blocking
/// thread pool, never on the cooperative pool: SQLite may block on file locks held by other
/// processes sharing the database. Calls on one connection are serialized by a lock.
public final class SQLiteDatabase: Sendable {
    private final class Handle: @unchecked Sendable {
        var raw: OpaquePointer?
        var statements: [String: OpaquePointer] = [:]
        init(_ raw: OpaquePointer?) { self.raw = raw }
    }

    private let handle: Handle
    private let lock = Mutex(())
    public let path: String
    private let pool: NIOThreadPool

    /// Opens (creating if needed) the database at `path`. WAL mode lets several processes share it.
    public init(path: String, busyTimeout: Duration = .seconds(5), wal: Bool = true, pool: NIOThreadPool = .singleton) throws {
        var raw: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_URI
        let status = sqlite3_open_v2(path, &raw, flags, nil)
        guard status == SQLITE_OK else {
            let message = raw.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open database"
            sqlite3_close_v2(raw)
            throw SQLiteError(code: status, message: "\(message) (\(path))")
        }
        self.handle = Handle(raw)
        self.path = path
        self.pool = pool
        sqlite3_busy_timeout(raw, Int32(clamping: busyTimeout.milliseconds))
        sqlite3_extended_result_codes(raw, 1)
        if wal && path != ":memory:" {
            // Processes opening a new database together race for the journal mode switch, which
            // answers SQLITE_BUSY without waiting on the busy handler: try again for a while.
            var attempt = 0
            while true {
                do {
                    try self.executeNow("PRAGMA journal_mode=WAL")
                    break
                } catch let error as SQLiteError where error.code & 0xFF == SQLITE_BUSY && attempt < 100 {
                    attempt += 1
                    usleep(20_000)
                }
            }
            try self.executeNow("PRAGMA synchronous=NORMAL")
        }
    }

    deinit {
        for statement in self.handle.statements.values { sqlite3_finalize(statement) }
        sqlite3_close_v2(self.handle.raw)
    }

    // MARK: Async API (thread pool)

    /// Runs `body` with exclusive use of the connection, on the blocking pool.
    public func withConnection<Output: Sendable>(_ body: @escaping @Sendable (Connection) throws -> Output) async throws -> Output {
        try await self.pool.runIfActive {
            try self.lock.withLock { _ in
                try body(Connection(database: self))
            }
        }
    }

    /// Runs `body` inside `BEGIN IMMEDIATE … COMMIT`; any error rolls back.
    public func transaction<Output: Sendable>(_ body: @escaping @Sendable (Connection) throws -> Output) async throws -> Output {
        try await self.withConnection { connection in
            try connection.execute("BEGIN IMMEDIATE")
            do {
                let output = try body(connection)
                try connection.execute("COMMIT")
                return output
            } catch {
                try? connection.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// A statement with no results, outside a transaction.
    public func execute(_ sql: String, _ bindings: [SQLiteValue] = []) async throws -> Int {
        try await self.withConnection { try $0.run(sql, bindings) }
    }

    public func query(_ sql: String, _ bindings: [SQLiteValue] = []) async throws -> [[SQLiteValue]] {
        try await self.withConnection { try $0.query(sql, bindings) }
    }

    private func executeNow(_ sql: String) throws {
        try self.lock.withLock { _ in try Connection(database: self).execute(sql) }
    }

    /// Synchronous access while the caller holds the connection (inside `withConnection`).
    public struct Connection {
        fileprivate let database: SQLiteDatabase
        var raw: OpaquePointer? { self.database.handle.raw }

        /// Runs one or more statements without bindings.
        public func execute(_ sql: String) throws {
            var errorMessage: UnsafeMutablePointer<CChar>?
            let status = sqlite3_exec(self.raw, sql, nil, nil, &errorMessage)
            if status != SQLITE_OK {
                let message = errorMessage.map { String(cString: $0) } ?? "unknown error"
                sqlite3_free(errorMessage)
                throw SQLiteError(code: status, message: message)
            }
        }

        /// Runs a statement and returns the number of rows changed.
        @discardableResult
        public func run(_ sql: String, _ bindings: [SQLiteValue] = []) throws -> Int {
            let statement = try self.prepare(sql, bindings)
            defer { sqlite3_reset(statement) }
            while true {
                let status = sqlite3_step(statement)
                if status == SQLITE_DONE { break }
                if status == SQLITE_ROW { continue }
                throw self.error(status)
            }
            return Int(sqlite3_changes(self.raw))
        }

        /// Runs a query and returns every row.
        public func query(_ sql: String, _ bindings: [SQLiteValue] = []) throws -> [[SQLiteValue]] {
            let statement = try self.prepare(sql, bindings)
            defer { sqlite3_reset(statement) }
            var rows: [[SQLiteValue]] = []
            let columns = sqlite3_column_count(statement)
            while true {
                let status = sqlite3_step(statement)
                if status == SQLITE_DONE { break }
                guard status == SQLITE_ROW else { throw self.error(status) }
                var row: [SQLiteValue] = []
                row.reserveCapacity(Int(columns))
                for column in 0..<columns { row.append(Self.column(statement, column)) }
                rows.append(row)
            }
            return rows
        }

        public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(self.raw) }

        private func prepare(_ sql: String, _ bindings: [SQLiteValue]) throws -> OpaquePointer {
            let handle = self.database.handle
            let statement: OpaquePointer
            if let cached = handle.statements[sql] {
                statement = cached
                sqlite3_reset(statement)
                sqlite3_clear_bindings(statement)
            } else {
                var prepared: OpaquePointer?
                let status = sqlite3_prepare_v2(self.raw, sql, -1, &prepared, nil)
                guard status == SQLITE_OK, let prepared else { throw self.error(status) }
                handle.statements[sql] = prepared
                statement = prepared
            }
            for (offset, value) in bindings.enumerated() {
                let index = Int32(offset + 1)
                let status: Int32
                switch value {
                case .null: status = sqlite3_bind_null(statement, index)
                case .integer(let number): status = sqlite3_bind_int64(statement, index, number)
                case .real(let number): status = sqlite3_bind_double(statement, index, number)
                case .text(var text):
                    // Bound with its byte count, never as a C string: a NUL inside the text must
                    // not cut it short (a key "a\0b" would otherwise read and write key "a").
                    status = text.withUTF8 { utf8 in
                        utf8.withMemoryRebound(to: CChar.self) { chars in
                            guard let base = chars.baseAddress, chars.count > 0 else {
                                return sqlite3_bind_text(statement, index, "", 0, Self.transient)
                            }
                            return sqlite3_bind_text64(statement, index, base, sqlite3_uint64(chars.count), Self.transient, UInt8(SQLITE_UTF8))
                        }
                    }
                case .blob(let bytes):
                    status = bytes.withUnsafeBytes { buffer in
                        sqlite3_bind_blob64(
                            statement, index, buffer.baseAddress ?? UnsafeRawPointer(bitPattern: 1), sqlite3_uint64(buffer.count), Self.transient)
                    }
                }
                guard status == SQLITE_OK else { throw self.error(status) }
            }
            return statement
        }

        private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

        private static func column(_ statement: OpaquePointer, _ index: Int32) -> SQLiteValue {
            switch sqlite3_column_type(statement, index) {
            case SQLITE_INTEGER: return .integer(sqlite3_column_int64(statement, index))
            case SQLITE_FLOAT: return .real(sqlite3_column_double(statement, index))
            case SQLITE_TEXT:
                guard let pointer = sqlite3_column_text(statement, index) else { return .text("") }
                let count = Int(sqlite3_column_bytes(statement, index))
                return .text(String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self))
            case SQLITE_BLOB:
                let count = Int(sqlite3_column_bytes(statement, index))
                guard count > 0, let pointer = sqlite3_column_blob(statement, index) else { return .blob([]) }
                return .blob(Array(UnsafeRawBufferPointer(start: pointer, count: count)))
            default:
                return .null
            }
        }

        private func error(_ status: Int32) -> SQLiteError {
            SQLiteError(code: status, message: String(cString: sqlite3_errmsg(self.raw)))
        }
    }
}

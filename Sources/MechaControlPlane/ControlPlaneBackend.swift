import Foundation
import Logging
import MechaEmbedded
import MechaPostgres
import PostgresNIO
import Synchronization

/// The database under `ControlPlaneStore`: the embedded SQLite file by default, PostgreSQL for
/// several control planes sharing one state. Statements are written once, in the SQL both accept
/// (`INSERT … ON CONFLICT`, `?` placeholders that the PostgreSQL side numbers), with text and
/// 64-bit integer values only.
protocol ControlPlaneBackend: Sendable {
    /// The file or `host:port`, for messages.
    var location: String { get }
    var kind: String { get }
    func execute(_ sql: String, _ values: [SQLiteValue]) async throws -> Int
    func query(_ sql: String, _ values: [SQLiteValue]) async throws -> [[SQLiteValue]]
    /// Runs the statements in one transaction.
    func transaction(_ statements: [(sql: String, values: [SQLiteValue])]) async throws
}

struct SQLiteControlPlaneBackend: ControlPlaneBackend {
    let database: SQLiteDatabase
    let location: String
    var kind: String { "sqlite" }

    func execute(_ sql: String, _ values: [SQLiteValue]) async throws -> Int {
        try await self.database.execute(sql, values)
    }

    func query(_ sql: String, _ values: [SQLiteValue]) async throws -> [[SQLiteValue]] {
        try await self.database.query(sql, values)
    }

    func transaction(_ statements: [(sql: String, values: [SQLiteValue])]) async throws {
        try await self.database.transaction { connection in
            for statement in statements { _ = try connection.run(statement.sql, statement.values) }
        }
    }
}

struct PostgresControlPlaneBackend: ControlPlaneBackend {
    let database: MechaPostgresDatabase
    let logger: Logger
    var location: String { self.database.endpoint }
    var kind: String { "postgresql" }

    /// `?` placeholders numbered as `$1, $2, …` (the statements hold no `?` in literals).
    static func numbered(_ sql: String) -> String {
        var output = ""
        var next = 1
        for character in sql {
            if character == "?" {
                output += "$\(next)"
                next += 1
            } else {
                output.append(character)
            }
        }
        return output
    }

    static func query(_ sql: String, _ values: [SQLiteValue]) -> PostgresQuery {
        var bindings = PostgresBindings(capacity: values.count)
        for value in values {
            switch value {
            case .integer(let number): bindings.append(number)
            case .text(let text): bindings.append(text)
            case .real(let number): bindings.append(number)
            case .blob(let bytes): bindings.append(ByteBuffer(bytes: bytes))
            case .null: bindings.appendNull()
            }
        }
        return PostgresQuery(unsafeSQL: Self.numbered(sql), binds: bindings)
    }

    func execute(_ sql: String, _ values: [SQLiteValue]) async throws -> Int {
        let logger = self.logger
        do {
            return try await self.database.withConnection { connection in
                let result: PostgresQueryResult = try await connection.query(Self.query(sql, values), logger: logger).get()
                return result.metadata.rows ?? 0
            }
        } catch {
            throw ControlPlaneStoreError(MechaPostgresDatabase.describe(error))
        }
    }

    func query(_ sql: String, _ values: [SQLiteValue]) async throws -> [[SQLiteValue]] {
        let logger = self.logger
        do {
            return try await self.database.withConnection { connection in
                let result: PostgresQueryResult = try await connection.query(Self.query(sql, values), logger: logger).get()
                return try Self.rows(result.rows)
            }
        } catch {
            throw ControlPlaneStoreError(MechaPostgresDatabase.describe(error))
        }
    }

    func transaction(_ statements: [(sql: String, values: [SQLiteValue])]) async throws {
        let logger = self.logger
        do {
            try await self.database.withConnection { connection in
                _ = try await connection.query("BEGIN", logger: logger).get()
                do {
                    for statement in statements {
                        _ = try await connection.query(Self.query(statement.sql, statement.values), logger: logger).get()
                    }
                    _ = try await connection.query("COMMIT", logger: logger).get()
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: logger).get()
                    throw error
                }
            }
        } catch {
            throw ControlPlaneStoreError(MechaPostgresDatabase.describe(error))
        }
    }

    /// The rows, each cell as text or a 64-bit integer.
    static func rows(_ rows: [PostgresRow]) throws -> [[SQLiteValue]] {
        try rows.map { row in
            try row.map { cell -> SQLiteValue in
                if cell.bytes == nil { return .null }
                if cell.dataType == .int8 || cell.dataType == .int4 || cell.dataType == .int2 { return .integer(try cell.decode(Int64.self)) }
                if cell.dataType == .bool { return .integer(try cell.decode(Bool.self) ? 1 : 0) }
                return .text(try cell.decode(String.self))
            }
        }
    }
}

public struct ControlPlaneStoreError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

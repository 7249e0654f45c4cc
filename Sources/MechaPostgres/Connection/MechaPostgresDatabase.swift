public import Logging
public import PostgresNIO

/// A PostgreSQL database for Mecha's own state outside components (the control plane's store):
/// the components' connection string forms, the same pool with per-use deadlines, and readable
/// errors that never carry the password or query binds.
public final class MechaPostgresDatabase: Sendable {
    let pool: PostgresConnectionPool
    /// `host:port` or the socket path, for messages.
    public var endpoint: String { self.pool.endpoint }
    public let timeout: Duration

    public struct InvalidConnectionString: Error, CustomStringConvertible {
        public let description: String
    }

    /// `connectionString` in libpq's keyword/value or URL form (see `PostgresConnectionString`).
    public init(connectionString: String, maxConnections: Int = 8, timeout: Duration = .seconds(10), logger: Logger) throws(InvalidConnectionString) {
        do {
            let parsed = try PostgresConnectionString(parsing: connectionString)
            self.pool = try PostgresConnectionPool.make(parsed, connectTimeout: timeout, maxConnections: parsed.maxConnections ?? maxConnections, logger: logger)
        } catch {
            throw InvalidConnectionString(description: "invalid PostgreSQL connection string: \(error.reason)")
        }
        self.timeout = timeout
    }

    /// Lends a pooled connection to `body` for at most the database's timeout.
    public func withConnection<Result: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> Result) async throws -> Result {
        try await self.pool.withConnection(timeout: self.timeout, body)
    }

    /// A connection outside the pool (a session-level advisory lock lives as long as it); the
    /// caller closes it.
    public func dedicatedConnection() async throws -> PostgresConnection {
        try await self.pool.makeDedicatedConnection()
    }

    public func close() async {
        await self.pool.close()
    }

    /// The server's message and SQLSTATE, or the connection failure, for logs and answers.
    public static func describe(_ error: any Error) -> String {
        PostgresErrorText.describe(error)
    }
}

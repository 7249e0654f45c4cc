public import Logging
public import MechaCore
public import RESPClient
import RESPWire

/// A Redis component that owns one connection pool: the pool's health checks run while the
/// component is live and the pool shuts down with it. Every Redis component shares this lifecycle.
public protocol RedisPooledComponent: Component {
    var pool: RESPConnectionPool { get }
}

extension RedisPooledComponent {
    /// Keeps the pool's connections healthy until stopped.
    public func run(until stop: StopSignal) async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.pool.run() }
            await stop.wait()
            group.cancelAll()
        }
    }

    public func close() async throws {
        await self.pool.shutdown()
    }
}

extension RedisClientSettings {
    /// A pool on these settings whose server has answered PING. When it cannot be reached (or
    /// refuses the credentials), the pool is shut down and `failure` words the error from the
    /// message `error connecting to redis at <address>: <cause>`.
    public func connectedPool(logger: Logger, failure: (String) -> any Error) async throws -> RESPConnectionPool {
        let pool = try RESPConnectionPool(configuration: self.configuration, logger: logger)
        do {
            _ = try await pool.send(["PING"])
            return pool
        } catch {
            await pool.shutdown()
            throw failure("error connecting to redis at \(self.address): \(error)")
        }
    }
}

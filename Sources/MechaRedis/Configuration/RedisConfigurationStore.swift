public import Logging
public import MechaCore
public import RESPClient
import RESPWire

/// `configuration.redis`: Dapr's Redis configuration store. Each item is a string key holding
/// `value||version` (`value` alone means no version); `get` without keys reads every key.
/// Subscriptions use keyspace notifications (`__keyspace@<db>__:<key>`): the store turns them on
/// (`CONFIG SET notify-keyspace-events Kg$xe`, as Dapr does; when the server refuses `CONFIG`, set
/// it there) and sends the key's new item after each change, an empty item after a delete or expiry.
/// A lost connection is re-established with backoff; the watched keys' current items are then sent,
/// so changes made meanwhile are not missed (a subscription to every key resumes without that).
public final class RedisConfigurationStore: ConfigurationStore, RedisPooledComponent {
    public let pool: RESPConnectionPool
    let database: Int
    let logger: Logger

    init(pool: RESPConnectionPool, database: Int, logger: Logger) {
        self.pool = pool
        self.database = database
        self.logger = logger
    }

    /// `value||version` → item; Dapr splits on every `||` and keeps the first two parts.
    static func item(_ stored: String) -> ConfigurationItem {
        let parts = stored.split(separator: "||", omittingEmptySubsequences: false)
        return ConfigurationItem(value: String(parts[0]), version: parts.count > 1 ? String(parts[1]) : "")
    }

    public func get(keys: [String], metadata: [String: String]) async throws -> [String: ConfigurationItem] {
        var keys = keys
        if keys.isEmpty {
            keys = try await self.pool.send(["KEYS", "*"]).array?.compactMap(\.string) ?? []
        }
        guard !keys.isEmpty else { return [:] }
        let replies = try await self.pool.pipeline(keys.map { ["GET", $0] })
        var items: [String: ConfigurationItem] = [:]
        for (key, reply) in zip(keys, replies) {
            switch reply {
            case .null:
                continue
            case .error(let message):
                // A key of another type is not a configuration item (Dapr skips WRONGTYPE).
                if message.hasPrefix("WRONGTYPE") { continue }
                throw ConfigurationStoreError("fail to get configuration for redis key=\(key), error is \(message)")
            default:
                let item = Self.item(reply.string ?? "")
                if !item.value.isEmpty { items[key] = item }
            }
        }
        return items
    }

    public func subscribe(keys: [String], metadata: [String: String]) async throws -> ConfigurationUpdates {
        let prefix = "__keyspace@\(self.database)__:"
        // The first subscription is made before returning: a change right after is delivered.
        let first = try await self.watch(keys, prefix: prefix)
        let (updates, continuation) = ConfigurationUpdates.makeStream()
        let reader = Task {
            var connection: RESPConnection? = first
            var backoff = Duration.milliseconds(100)
            while !Task.isCancelled {
                do {
                    if connection == nil {
                        connection = try await self.watch(keys, prefix: prefix)
                        backoff = .milliseconds(100)
                        self.logger.info("configuration.redis: watching \(keys.isEmpty ? "every key" : "\(keys)") again after a lost connection")
                        // Changes made while the connection was down: send the watched keys' current items.
                        if !keys.isEmpty {
                            let current = try await self.get(keys: keys, metadata: [:])
                            var batch: [String: ConfigurationItem] = [:]
                            for key in keys { batch[key] = current[key] ?? .deleted }
                            continuation.yield(batch)
                        }
                    }
                    for try await message in connection!.messages where message.channel.hasPrefix(prefix) {
                        let key = String(message.channel.dropFirst(prefix.count))
                        let item = try await self.get(keys: [key], metadata: [:])[key] ?? .deleted
                        continuation.yield([key: item])
                    }
                } catch {
                    if !Task.isCancelled { self.logger.warning("configuration.redis: subscription connection lost: \(error)") }
                }
                if let lost = connection { await lost.close() }
                connection = nil
                if Task.isCancelled { break }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
            if let connection { await connection.close() }
            continuation.finish()
        }
        continuation.onTermination = { _ in reader.cancel() }
        return updates
    }

    /// A dedicated connection subscribed to the keyspace channels of `keys` (a pattern for all).
    /// Keyspace notifications are (re)enabled each time: a restarted server has forgotten them.
    private func watch(_ keys: [String], prefix: String) async throws -> RESPConnection {
        do {
            _ = try await self.pool.send(["CONFIG", "SET", "notify-keyspace-events", "Kg$xe"])
        } catch let error as RESPError where error.serverErrorPrefix != nil {
            self.logger.warning("configuration.redis: could not enable keyspace notifications (\(error)); set notify-keyspace-events to Kg$xe on the server")
        }
        let connection = try await self.pool.makeDedicatedConnection()
        do {
            if keys.isEmpty {
                try await connection.psubscribe([prefix + "*"])
            } else {
                try await connection.subscribe(keys.map { prefix + $0 })
            }
            return connection
        } catch {
            await connection.close()
            throw error
        }
    }

}

/// Factory for `configuration.redis`. See `RedisClientSettings` for the metadata.
public struct RedisConfigurationStoreFactory: ComponentFactory {
    public init() {}
    public var type: ComponentType { ComponentType(.configuration, "redis") }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        let settings = try RedisClientSettings(spec.metadata)
        let pool = try await settings.connectedPool(logger: context.logger) { ConfigurationStoreError("redis configuration: \($0)") }
        return RedisConfigurationStore(pool: pool, database: settings.configuration.database, logger: context.logger)
    }
}

public import MechaCore
public import RESPClient
import RESPWire

/// `lock.redis`: Dapr's standalone Redis lock. A lock is a string key holding its owner, taken with
/// `SET key owner NX PX <expiry>` and released by a script that deletes it only for its owner, so a
/// lock that expired and was taken by someone else is never released by the former holder.
///
/// Metadata: the shared Redis connection settings (`RedisClientSettings`). As Dapr's, it refuses a
/// server with replicas: a lock acknowledged by a primary that fails over before replicating would
/// be held twice.
public final class RedisLockStore: LockStore, RedisPooledComponent {
    public let pool: RESPConnectionPool
    /// Returns 1 when deleted, 0 when the key does not exist, -1 when another owner holds it.
    static let unlockScript = RedisScript(
        """
        local holder = redis.call("GET", KEYS[1])
        if not holder then return 0 end
        if holder ~= ARGV[1] then return -1 end
        redis.call("DEL", KEYS[1])
        return 1
        """
    )

    init(pool: RESPConnectionPool) {
        self.pool = pool
    }

    public func tryLock(resourceID: String, owner: String, expiry: Duration) async throws -> Bool {
        var command = RESPCommand()
        command.append("SET")
        command.append(resourceID)
        command.append(owner)
        command.append("NX")
        command.append("PX")
        command.append(max(1, expiry.milliseconds))
        let reply = try await self.pool.send(command)
        if case .null = reply { return false }
        return reply.string == "OK"
    }

    public func unlock(resourceID: String, owner: String) async throws -> UnlockStatus {
        let reply = try await Self.unlockScript.run(keys: [resourceID], on: self.pool) { $0.append(owner) }
        switch reply.int {
        case 1: return .success
        case 0: return .lockDoesNotExist
        case -1: return .lockBelongsToOthers
        default: return .internalError
        }
    }

}

/// Factory for `lock.redis`. See `RedisClientSettings` for the metadata.
public struct RedisLockStoreFactory: ComponentFactory {
    public init() {}
    public var type: ComponentType { ComponentType(.lock, "redis") }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        let settings = try RedisClientSettings(spec.metadata)
        let pool = try await settings.connectedPool(logger: context.logger) { LockStoreError("redis lock: \($0)") }
        do {
            let replicas = try await RedisStateStore.connectedReplicas(pool)
            if replicas > 0 {
                throw LockStoreError("redis lock: the server at \(settings.address) has \(replicas) replica(s); lock.redis needs a standalone Redis (a failover could grant a lock twice)")
            }
            try await RedisLockStore.unlockScript.load(on: pool)
            return RedisLockStore(pool: pool)
        } catch {
            await pool.shutdown()
            throw error
        }
    }
}

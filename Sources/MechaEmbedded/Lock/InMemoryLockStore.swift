public import MechaCore
import Synchronization

/// `lock.in-memory`: locks in the sidecar's memory, for one sidecar (tests, single-process apps).
/// Time is injected so expiry tests never sleep.
public final class InMemoryLockStore: LockStore {
    struct Holder {
        var owner: String
        var expiresAt: Timestamp
    }

    private let locks = Mutex<[String: Holder]>([:])
    private let now: @Sendable () -> Timestamp

    public init(now: @escaping @Sendable () -> Timestamp = { WallClock.now() }) {
        self.now = now
    }

    public func tryLock(resourceID: String, owner: String, expiry: Duration) async throws -> Bool {
        let now = self.now()
        return self.locks.withLock { locks in
            if let holder = locks[resourceID], holder.expiresAt > now { return false }
            locks[resourceID] = Holder(owner: owner, expiresAt: Timestamp(unixMilliseconds: now.unixMilliseconds.addingSaturated(expiry.milliseconds)))
            return true
        }
    }

    public func unlock(resourceID: String, owner: String) async throws -> UnlockStatus {
        let now = self.now()
        return self.locks.withLock { locks in
            guard let holder = locks[resourceID], holder.expiresAt > now else {
                locks[resourceID] = nil
                return .lockDoesNotExist
            }
            guard holder.owner == owner else { return .lockBelongsToOthers }
            locks[resourceID] = nil
            return .success
        }
    }
}

/// Factory for `lock.in-memory` (no metadata).
public struct InMemoryLockStoreFactory: ComponentFactory {
    public init() {}
    public var type: ComponentType { ComponentType(.lock, "in-memory") }
    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        InMemoryLockStore()
    }
}

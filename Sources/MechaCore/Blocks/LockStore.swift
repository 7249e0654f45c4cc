/// The distributed lock building block's component contract (Dapr's `lock.*`).
///
/// A lock is a resource id held by one owner until it unlocks or its expiry passes. Locks are not
/// re-entrant: `tryLock` by the owner already holding a live lock answers `false`, as Dapr's
/// Redis lock does. Keys arrive already prefixed by the lock API (`lock||<app id>||<resource>`).
public protocol LockStore: Component {
    /// Takes the lock when nobody holds it (or its holder's expiry has passed). `expiry` is at
    /// least one second. Returns whether `owner` now holds it.
    func tryLock(resourceID: String, owner: String, expiry: Duration) async throws -> Bool
    /// Releases the lock when `owner` holds it.
    func unlock(resourceID: String, owner: String) async throws -> UnlockStatus
}

/// The outcome of an unlock, with Dapr's numbering (`UnlockResponse.Status`).
public enum UnlockStatus: Int, Sendable, Hashable, CaseIterable {
    case success = 0
    case lockDoesNotExist = 1
    case lockBelongsToOthers = 2
    case internalError = 3
}

public struct LockStoreError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { self.reason }
}

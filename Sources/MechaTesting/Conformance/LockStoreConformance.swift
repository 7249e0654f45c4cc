public import MechaCore
import Testing

/// The distributed lock conformance suite: one owner at a time, unlock only by the holder, expiry
/// frees a lock, resources are independent, and concurrent contenders get exactly one winner.
/// Every implementation (`lock.in-memory`, `lock.sqlite`, `lock.redis`) runs it unchanged.
///
/// ```swift
/// try await LockStoreConformance { try await factory.make(spec: spec, context: context) as! any LockStore }.run()
/// ```
public struct LockStoreConformance: Sendable {
    public enum Check: String, CaseIterable, Sendable, CustomStringConvertible {
        /// A free lock is taken; another owner, and the holder itself, are refused while it is held.
        case exclusive
        /// Only the holder unlocks; unlocking a free lock says it does not exist; a released lock
        /// can be taken by another owner.
        case unlock
        /// A lock is free once its expiry passes; its former holder then cannot release it.
        case expiry
        /// Locks on different resources do not interfere.
        case independentResources
        /// Many owners racing for one lock: exactly one wins.
        case contention

        public var description: String { self.rawValue }
    }

    let makeStore: @Sendable () async throws -> any LockStore

    public init(makeStore: @escaping @Sendable () async throws -> any LockStore) {
        self.makeStore = makeStore
    }

    public func run() async throws {
        for check in Check.allCases { try await self.run(check) }
    }

    /// Runs one check on a fresh store. Throws only when the store cannot be made.
    public func run(_ check: Check) async throws {
        let store = try await self.makeStore()
        let resource = "conformance-\(Conformance.runID())"
        try await LiveComponent.with(store, label: "lock store", stopTimeout: .seconds(5)) {
            await Conformance.record("lock store", check.rawValue) {
                switch check {
                case .exclusive: try await self.checkExclusive(store, resource)
                case .unlock: try await self.checkUnlock(store, resource)
                case .expiry: try await self.checkExpiry(store, resource)
                case .independentResources: try await self.checkIndependent(store, resource)
                case .contention: try await self.checkContention(store, resource)
                }
            }
        }
    }

    func checkExclusive(_ store: any LockStore, _ resource: String) async throws {
        #expect(try await store.tryLock(resourceID: resource, owner: "owner-a", expiry: .seconds(30)), "a free lock was refused")
        #expect(try await !store.tryLock(resourceID: resource, owner: "owner-b", expiry: .seconds(30)), "a held lock was granted to another owner")
        #expect(try await !store.tryLock(resourceID: resource, owner: "owner-a", expiry: .seconds(30)), "a held lock was granted again to its holder (locks are not re-entrant)")
        #expect(try await store.unlock(resourceID: resource, owner: "owner-a") == .success)
    }

    func checkUnlock(_ store: any LockStore, _ resource: String) async throws {
        #expect(try await store.unlock(resourceID: resource, owner: "owner-a") == .lockDoesNotExist, "unlocking a lock nobody holds")
        try #require(try await store.tryLock(resourceID: resource, owner: "owner-a", expiry: .seconds(30)))
        #expect(try await store.unlock(resourceID: resource, owner: "owner-b") == .lockBelongsToOthers, "another owner unlocked a held lock")
        #expect(try await !store.tryLock(resourceID: resource, owner: "owner-b", expiry: .seconds(30)), "a refused unlock released the lock")
        #expect(try await store.unlock(resourceID: resource, owner: "owner-a") == .success, "the holder could not unlock")
        #expect(try await store.unlock(resourceID: resource, owner: "owner-a") == .lockDoesNotExist, "a released lock was unlocked twice")
        #expect(try await store.tryLock(resourceID: resource, owner: "owner-b", expiry: .seconds(30)), "a released lock could not be taken")
        #expect(try await store.unlock(resourceID: resource, owner: "owner-b") == .success)
    }

    func checkExpiry(_ store: any LockStore, _ resource: String) async throws {
        try #require(try await store.tryLock(resourceID: resource, owner: "owner-a", expiry: .seconds(1)))
        let freed = try await Conformance.eventually(within: .seconds(5), every: .milliseconds(100)) {
            try await store.tryLock(resourceID: resource, owner: "owner-b", expiry: .seconds(30))
        }
        #expect(freed, "a lock with a 1 s expiry was still held after 5 s")
        guard freed else { return }
        #expect(try await store.unlock(resourceID: resource, owner: "owner-a") == .lockBelongsToOthers, "an expired holder's unlock, now that another owner holds it")
        #expect(try await store.unlock(resourceID: resource, owner: "owner-b") == .success)
        // An expired lock that nobody took again does not exist.
        try #require(try await store.tryLock(resourceID: resource, owner: "owner-c", expiry: .seconds(1)))
        try await Task.sleep(for: .milliseconds(1500))
        #expect(try await store.unlock(resourceID: resource, owner: "owner-c") == .lockDoesNotExist, "unlocking an expired lock")
    }

    func checkIndependent(_ store: any LockStore, _ resource: String) async throws {
        #expect(try await store.tryLock(resourceID: resource + "-1", owner: "owner-a", expiry: .seconds(30)))
        #expect(try await store.tryLock(resourceID: resource + "-2", owner: "owner-b", expiry: .seconds(30)), "a lock on another resource blocked this one")
        #expect(try await store.unlock(resourceID: resource + "-2", owner: "owner-a") == .lockBelongsToOthers)
        #expect(try await store.unlock(resourceID: resource + "-1", owner: "owner-a") == .success)
        #expect(try await store.unlock(resourceID: resource + "-2", owner: "owner-b") == .success)
    }

    func checkContention(_ store: any LockStore, _ resource: String) async throws {
        let winners = try await withThrowingTaskGroup(of: String?.self) { group in
            for index in 0..<16 {
                group.addTask {
                    try await store.tryLock(resourceID: resource, owner: "owner-\(index)", expiry: .seconds(30)) ? "owner-\(index)" : nil
                }
            }
            var winners: [String] = []
            for try await winner in group { if let winner { winners.append(winner) } }
            return winners
        }
        #expect(winners.count == 1, "16 owners racing for one lock: \(winners.count) won (\(winners.sorted()))")
        if let winner = winners.first {
            #expect(try await store.unlock(resourceID: resource, owner: winner) == .success)
        }
    }
}

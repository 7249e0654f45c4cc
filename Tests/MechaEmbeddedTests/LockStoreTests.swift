import MechaCore
import MechaEmbedded
import MechaTesting
import Synchronization
import Testing

struct LockStoreConformanceTests {
    typealias Check = LockStoreConformance.Check

    @Test("lock.in-memory", arguments: Check.allCases)
    func inMemory(_ check: Check) async throws {
        try await LockStoreConformance {
            try await ConformanceComponents.make(InMemoryLockStoreFactory(), as: (any LockStore).self)
        }.run(check)
    }

    @Test("lock.sqlite on a database file", arguments: Check.allCases)
    func sqliteFile(_ check: Check) async throws {
        try await ScratchFiles.withDirectory("lock-conformance") { directory in
            try await LockStoreConformance {
                try await ConformanceComponents.make(SQLiteLockStoreFactory(), ["connectionString": directory + "/locks.db"], as: (any LockStore).self)
            }.run(check)
        }
    }

    /// Two stores on one file are two sidecars on one machine: they exclude each other.
    @Test func sqliteLocksAreSharedThroughTheFile() async throws {
        try await ScratchFiles.withDirectory("lock-shared") { directory in
            let metadata = ["connectionString": directory + "/mecha.db"]
            let first = try await ConformanceComponents.make(SQLiteLockStoreFactory(), metadata, as: (any LockStore).self)
            let second = try await ConformanceComponents.make(SQLiteLockStoreFactory(), metadata, as: (any LockStore).self)
            #expect(try await first.tryLock(resourceID: "r", owner: "a", expiry: .seconds(30)))
            #expect(try await !second.tryLock(resourceID: "r", owner: "b", expiry: .seconds(30)))
            #expect(try await second.unlock(resourceID: "r", owner: "b") == .lockBelongsToOthers)
            #expect(try await second.unlock(resourceID: "r", owner: "a") == .success)
            #expect(try await second.tryLock(resourceID: "r", owner: "b", expiry: .seconds(30)))
        }
    }

    @Test func sqliteRefusesABadTableName() async throws {
        await #expect(throws: ComponentConfigurationError.self) {
            _ = try await ConformanceComponents.make(SQLiteLockStoreFactory(), ["connectionString": ":memory:", "tableName": "locks; DROP"], as: (any LockStore).self)
        }
    }
}

/// Each lying lock store breaks one rule; the suite must catch it (`withKnownIssue` fails when the
/// suite records nothing).
struct LockConformanceSelfTests {
    enum Lie: String, CaseIterable, Sendable, CustomStringConvertible {
        case reentrant, anyoneUnlocks, neverExpires, sharedAcrossResources, racy, unlockSaysSuccessWhenFree
        var description: String { self.rawValue }
        var check: LockStoreConformance.Check {
            switch self {
            case .reentrant: .exclusive
            case .anyoneUnlocks, .unlockSaysSuccessWhenFree: .unlock
            case .neverExpires: .expiry
            case .sharedAcrossResources: .independentResources
            case .racy: .contention
            }
        }
    }

    final class LyingLockStore: LockStore {
        let lie: Lie
        let holders = Mutex<[String: (owner: String, until: ContinuousClock.Instant)]>([:])
        init(_ lie: Lie) { self.lie = lie }

        func tryLock(resourceID: String, owner: String, expiry: Duration) async throws -> Bool {
            let key = self.lie == .sharedAcrossResources ? "one" : resourceID
            if self.lie == .racy {
                let free = self.holders.withLock { $0[key] == nil }
                try await Task.sleep(for: .milliseconds(5))
                if free { self.holders.withLock { $0[key] = (owner, .now + expiry) } }
                return free
            }
            return self.holders.withLock { holders in
                if let holder = holders[key], self.lie == .neverExpires || holder.until > .now {
                    return self.lie == .reentrant && holder.owner == owner
                }
                holders[key] = (owner, .now + expiry)
                return true
            }
        }

        func unlock(resourceID: String, owner: String) async throws -> UnlockStatus {
            let key = self.lie == .sharedAcrossResources ? "one" : resourceID
            return self.holders.withLock { holders in
                guard let holder = holders[key], self.lie == .neverExpires || holder.until > .now else {
                    return self.lie == .unlockSaysSuccessWhenFree ? .success : .lockDoesNotExist
                }
                guard holder.owner == owner || self.lie == .anyoneUnlocks else { return .lockBelongsToOthers }
                holders[key] = nil
                return .success
            }
        }
    }

    @Test("lock suite fails a lying store", arguments: Lie.allCases)
    func catches(_ lie: Lie) async throws {
        await withKnownIssue("a lock store that is \(lie) must fail the \(lie.check) check") {
            try await LockStoreConformance { LyingLockStore(lie) }.run(lie.check)
        }
    }
}

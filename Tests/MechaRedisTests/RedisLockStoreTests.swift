import MechaCore
import MechaRedis
import MechaTesting
import RESPClient
import RESPWire
import Testing

struct RedisLockStoreTests {
    typealias Check = LockStoreConformance.Check

    @Test("lock.redis on a real redis-server", .timeLimit(.minutes(1)), arguments: Check.allCases)
    func conformance(_ check: Check) async throws {
        try await RedisServerHarness.withServer { redis in
            try await LockStoreConformance {
                try await RedisComponents.make(RedisLockStoreFactory(), RedisComponents.metadata(redis), as: (any LockStore).self)
            }.run(check)
        }
    }

    /// Dapr's layout: a string key holding the owner, with a PX expiry, so daprd and Mecha sharing a
    /// Redis exclude each other.
    @Test(.timeLimit(.minutes(1)))
    func locksAreOwnerStringsWithAnExpiry() async throws {
        try await RedisServerHarness.withServer { redis in
            let store = try await RedisComponents.make(RedisLockStoreFactory(), RedisComponents.metadata(redis), as: (any LockStore).self)
            #expect(try await store.tryLock(resourceID: "lock||app||order-1", owner: "owner-a", expiry: .seconds(20)))
            try await RedisComponents.withClient(redis) { client in
                #expect(try await client.send(["GET", "lock||app||order-1"]).text == "owner-a")
                let ttl = try await client.send(["PTTL", "lock||app||order-1"]).int ?? -1
                #expect(ttl > 15_000 && ttl <= 20_000, "PTTL \(ttl)")
                // A lock written by another process in the same layout is honoured.
                _ = try await client.send(["SET", "lock||app||order-2", "daprd-owner", "EX", "30"])
            }
            #expect(try await !store.tryLock(resourceID: "lock||app||order-2", owner: "owner-a", expiry: .seconds(20)))
            #expect(try await store.unlock(resourceID: "lock||app||order-2", owner: "daprd-owner") == .success)
            try await store.close()
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func unreachableServerFailsInitNamingIt() async throws {
        let port = TestEnvironment.refusingPort()
        do {
            _ = try await RedisComponents.make(RedisLockStoreFactory(), ["redisHost": "127.0.0.1:\(port)", "redisMaxRetries": "0"], as: (any LockStore).self)
            Issue.record("init succeeded against a closed port")
        } catch {
            #expect("\(error)".contains("127.0.0.1:\(port)"), "\(error)")
        }
    }
}

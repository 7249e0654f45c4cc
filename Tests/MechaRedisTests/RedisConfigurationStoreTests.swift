import MechaCore
import MechaRedis
import MechaTesting
import RESPClient
import RESPWire
import Testing

struct RedisConfigurationStoreTests {
    typealias Check = ConfigurationStoreConformance.Check

    /// Items as Dapr's Redis configuration store keeps them: `value||version` strings.
    static func backend(_ redis: RedisServerHarness) -> ConfigurationStoreConformance.Backend {
        ConfigurationStoreConformance.Backend(
            set: { key, item in
                try await RedisComponents.withClient(redis) { client in
                    _ = try await client.send(["SET", key, item.version.isEmpty ? item.value : item.value + "||" + item.version])
                }
            },
            delete: { key in
                try await RedisComponents.withClient(redis) { client in _ = try await client.send(["DEL", key]) }
            }
        )
    }

    @Test("configuration.redis on a real redis-server", .timeLimit(.minutes(1)), arguments: Check.allCases)
    func conformance(_ check: Check) async throws {
        try await RedisServerHarness.withServer { redis in
            try await ConfigurationStoreConformance(backend: Self.backend(redis)) {
                try await RedisComponents.make(RedisConfigurationStoreFactory(), RedisComponents.metadata(redis), as: (any ConfigurationStore).self)
            }.run(check)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func valuesWithoutVersionsAndOtherKeyTypes() async throws {
        try await RedisServerHarness.withServer { redis in
            let store = try await RedisComponents.make(RedisConfigurationStoreFactory(), RedisComponents.metadata(redis), as: (any ConfigurationStore).self)
            try await RedisComponents.withClient(redis) { client in
                _ = try await client.send(["SET", "plain", "just-a-value"])
                _ = try await client.send(["SET", "versioned", "v||42||extra"])
                _ = try await client.send(["HSET", "a-hash", "f", "v"])
                _ = try await client.send(["SET", "empty", ""])
            }
            let items = try await store.get(keys: [], metadata: [:])
            #expect(items == [
                "plain": ConfigurationItem(value: "just-a-value"),
                "versioned": ConfigurationItem(value: "v", version: "42"),
            ])
            try await store.close()
        }
    }
}

struct RedisConfigurationResilienceTests {
    /// A restarted server (which forgot the keyspace notification setting and the subscription):
    /// the watch comes back by itself, sends the watched key's current item, and later changes too.
    @Test(.timeLimit(.minutes(1)))
    func aSubscriptionSurvivesARedisRestart() async throws {
        try await RedisServerHarness.withServer { redis in
            let store = try await RedisComponents.make(RedisConfigurationStoreFactory(), RedisComponents.metadata(redis), as: (any ConfigurationStore).self)
            let updates = try await store.subscribe(keys: ["color"], metadata: [:])
            let received = ConfigurationUpdateLog()
            let reader = Task {
                for try await batch in updates { received.add(batch) }
            }
            let backend = RedisConfigurationStoreTests.backend(redis)
            try await backend.set("color", ConfigurationItem(value: "red", version: "1"))
            #expect(await received.waitFor("color", ConfigurationItem(value: "red", version: "1")))
            try await redis.restart()
            // Written while the store may still be reconnecting: it must arrive either way.
            try await backend.set("color", ConfigurationItem(value: "green", version: "2"))
            #expect(await received.waitFor("color", ConfigurationItem(value: "green", version: "2")))
            try await backend.set("color", ConfigurationItem(value: "blue", version: "3"))
            #expect(await received.waitFor("color", ConfigurationItem(value: "blue", version: "3")))
            reader.cancel()
            try await store.close()
        }
    }
}

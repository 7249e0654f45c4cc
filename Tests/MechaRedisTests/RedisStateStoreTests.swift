import MechaCore
import MechaRedis
import MechaTesting
import NIOCore
import RESPClient
import RESPWire
import Testing

/// Builds Redis components through their factories, as the runtime does.
enum RedisComponents {
    static func make<Contract>(
        _ factory: some ComponentFactory,
        _ metadata: [String: String],
        appID: String = "redistest",
        as contract: Contract.Type
    ) async throws -> Contract {
        let spec = ComponentSpec(name: "redistest", type: factory.type, metadata: ComponentMetadata(metadata))
        let context = ComponentContext(appID: appID, dataDirectory: "/tmp/mecha-redis-unused", instanceID: RandomID.uuid())
        let component = try await factory.make(spec: spec, context: context)
        return try #require(component as? Contract, "\(factory.type) does not build a \(Contract.self)")
    }

    static func metadata(_ redis: RedisServerHarness, _ extra: [String: String] = [:]) -> [String: String] {
        var metadata = ["redisHost": "127.0.0.1:\(redis.port)"]
        if let password = redis.password { metadata["redisPassword"] = password }
        metadata.merge(extra) { $1 }
        return metadata
    }

    static func store(_ redis: RedisServerHarness, _ extra: [String: String] = [:]) async throws -> RedisStateStore {
        try await self.make(RedisStateStoreFactory(), self.metadata(redis, extra), as: RedisStateStore.self)
    }

    /// Runs `body` with a store, closing it however `body` ends.
    static func withStore<T>(_ redis: RedisServerHarness, _ extra: [String: String] = [:], _ body: (RedisStateStore) async throws -> T) async throws -> T {
        let store = try await self.store(redis, extra)
        do {
            let result = try await body(store)
            try await store.close()
            return result
        } catch {
            try? await store.close()
            throw error
        }
    }

    /// A raw client on the harness's server, for checking the data layout.
    static func withClient<T>(_ redis: RedisServerHarness, _ body: (RESPConnectionPool) async throws -> T) async throws -> T {
        let pool = try RESPConnectionPool(configuration: redis.configuration)
        do {
            let result = try await body(pool)
            await pool.shutdown()
            return result
        } catch {
            await pool.shutdown()
            throw error
        }
    }
}

extension RESPValue {
    var text: String? { self.isNull ? nil : self.string }
}

struct RedisStateStoreConformanceTests {
    typealias Check = StateStoreConformance.Check

    @Test("state.redis on a real redis-server", .timeLimit(.minutes(2)), arguments: Check.allCases)
    func conformance(_ check: Check) async throws {
        try await RedisServerHarness.withServer { redis in
            // A well-formed version number that is never current.
            let configuration = StateStoreConformance.Configuration(expectedFeatures: [.etag, .transactional, .ttl], staleETag: "987654321")
            try await StateStoreConformance(configuration: configuration) {
                try await RedisComponents.store(redis)
            }.run(check)
        }
    }

    @Test("state.redis with a password", .timeLimit(.minutes(1)), arguments: [Check.values, .transactions])
    func withPassword(_ check: Check) async throws {
        try await RedisServerHarness.withServer(password: "s3cret pass") { redis in
            let configuration = StateStoreConformance.Configuration(expectedFeatures: [.etag, .transactional, .ttl], staleETag: "987654321")
            try await StateStoreConformance(configuration: configuration) {
                try await RedisComponents.store(redis)
            }.run(check)
        }
    }
}

struct RedisStateStoreLayoutTests {
    @Test("values are hashes with data and version, as Dapr stores them; version counts writes from 1")
    func daprLayout() async throws {
        try await RedisServerHarness.withServer { redis in
            try await RedisComponents.withStore(redis) { store in
                try await store.set(StateSetRequest(key: "app||order", value: Array(#"{"id":1}"#.utf8)))
                try await RedisComponents.withClient(redis) { client in
                    let reply1 = try await client.send(["TYPE", "app||order"]).string
                    #expect(reply1 == "hash")
                    let reply2 = try await client.send(["HGET", "app||order", "data"]).text
                    #expect(reply2 == #"{"id":1}"#)
                    let reply3 = try await client.send(["HGET", "app||order", "version"]).text
                    #expect(reply3 == "1")
                    let reply4 = try await client.send(["PTTL", "app||order"]).int
                    #expect(reply4 == -1)
                }
                let item = try await store.get(StateGetRequest(key: "app||order"))
                #expect(item?.etag == "1")
                try await store.set(StateSetRequest(key: "app||order", value: [0xFF, 0x00], etag: "1"))
                try await RedisComponents.withClient(redis) { client in
                    let data = try await client.send(["HGET", "app||order", "data"]).bytes.map { Array($0.readableBytesView) }
                    #expect(data == [0xFF, 0x00])
                    let reply5 = try await client.send(["HGET", "app||order", "version"]).text
                    #expect(reply5 == "2")
                }
            }
        }
    }

    @Test("data written in Dapr's layout by another client reads with its version as ETag")
    func readsDaprData() async throws {
        try await RedisServerHarness.withServer { redis in
            try await RedisComponents.withClient(redis) { client in
                _ = try await client.send(["HSET", "myapp||k", "data", #""hello""#, "version", "7"])
                _ = try await client.send(["SET", "myapp||old", "plain"])
            }
            try await RedisComponents.withStore(redis) { store in
                let item = try await store.get(StateGetRequest(key: "myapp||k"))
                #expect(item?.value == Array(#""hello""#.utf8))
                #expect(item?.etag == "7")
                await #expect(throws: StateStoreError(.etagMismatch, key: "myapp||k", detail: "state not exist or etag not match for key=myapp||k")) {
                    try await store.set(StateSetRequest(key: "myapp||k", value: [1], etag: "6"))
                }
                try await store.set(StateSetRequest(key: "myapp||k", value: [1], etag: "7"))
                let reply6 = try await store.get(StateGetRequest(key: "myapp||k"))?.etag
                #expect(reply6 == "8")
                // A plain string (the layout before hashes) reads without an ETag and is replaced on write.
                let old = try await store.get(StateGetRequest(key: "myapp||old"))
                #expect(old?.value == Array("plain".utf8))
                #expect(old?.etag == nil)
                try await store.set(StateSetRequest(key: "myapp||old", value: Array("new".utf8)))
                let reply7 = try await store.get(StateGetRequest(key: "myapp||old"))?.etag
                #expect(reply7 == "1")
            }
        }
    }

    @Test("a non-numeric ETag is invalid, not a mismatch")
    func invalidETag() async throws {
        try await RedisServerHarness.withServer { redis in
            try await RedisComponents.withStore(redis) { store in
                try await store.set(StateSetRequest(key: "k", value: [1]))
                do {
                    try await store.set(StateSetRequest(key: "k", value: [2], etag: "not-a-number"))
                    Issue.record("a set with a non-numeric ETag succeeded")
                } catch let error as StateStoreError {
                    #expect(error.code == .etagInvalid)
                }
                do {
                    try await store.delete(StateDeleteRequest(key: "k", etag: "abc"))
                    Issue.record("a delete with a non-numeric ETag succeeded")
                } catch let error as StateStoreError {
                    #expect(error.code == .etagInvalid)
                }
                let reply8 = try await store.get(StateGetRequest(key: "k"))?.value
                #expect(reply8 == [1])
            }
        }
    }

    @Test("the component's ttlInSeconds applies to writes without their own; ttlInSeconds -1 on a write persists")
    func defaultTTL() async throws {
        try await RedisServerHarness.withServer { redis in
            try await RedisComponents.withStore(redis, ["ttlInSeconds": "100"]) { store in
                try await store.set(StateSetRequest(key: "default", value: [1]))
                try await store.set(StateSetRequest(key: "own", value: [1], ttl: .seconds(1000)))
                try await store.set(StateSetRequest(key: "none", value: [1], metadata: ["ttlInSeconds": "-1"]))
                try await RedisComponents.withClient(redis) { client in
                    let defaultTTL = try await client.send(["TTL", "default"]).int ?? 0
                    #expect((95...100).contains(defaultTTL))
                    let own = try await client.send(["TTL", "own"]).int ?? 0
                    #expect((995...1000).contains(own))
                    let reply9 = try await client.send(["TTL", "none"]).int
                    #expect(reply9 == -1)
                }
                let item = try await store.get(StateGetRequest(key: "default"))
                #expect(item?.metadata["ttlExpireTime"] != nil)
            }
        }
    }

    @Test("EVALSHA falls back to EVAL after SCRIPT FLUSH")
    func scriptFlush() async throws {
        try await RedisServerHarness.withServer { redis in
            try await RedisComponents.withStore(redis) { store in
                try await store.set(StateSetRequest(key: "k", value: [1]))
                try await RedisComponents.withClient(redis) { client in
                    _ = try await client.send(["SCRIPT", "FLUSH"])
                }
                try await store.set(StateSetRequest(key: "k", value: [2], etag: "1"))
                try await store.set(StateSetRequest(key: "k", value: [3], etag: "2"))
                let reply10 = try await store.get(StateGetRequest(key: "k"))?.value
                #expect(reply10 == [3])
            }
        }
    }

    @Test("bulk get reads many keys in one round trip")
    func bulkGet() async throws {
        try await RedisServerHarness.withServer { redis in
            try await RedisComponents.withStore(redis) { store in
                let keys = (0..<200).map { "bulk-\($0)" }
                try await store.transact(keys.enumerated().filter { $0.offset.isMultiple(of: 2) }.map { .set(StateSetRequest(key: $0.element, value: Array("\($0.offset)".utf8))) }, metadata: [:])
                let results = try await store.bulkGet(keys.map { StateGetRequest(key: $0) })
                #expect(results.map(\.key) == keys)
                for (index, result) in results.enumerated() {
                    #expect(result.item?.value == (index.isMultiple(of: 2) ? Array("\(index)".utf8) : nil))
                }
            }
        }
    }
}

struct RedisStateStoreConfigurationTests {
    @Test(
        "bad metadata is an error naming the field",
        arguments: [
            ([:], "redisHost"),
            (["redisHost": "localhost:abc"], "redisHost"),
            (["redisHost": "localhost:6379", "redisPort": "6380"], "redisPort"),
            (["redisHost": "a:1,b:2"], "redisHost"),
            (["redisHost": "localhost", "redisDB": "x"], "redisDB"),
            (["redisHost": "localhost", "enableTLS": "maybe"], "enableTLS"),
            (["redisHost": "localhost", "maxRetries": "many"], "maxRetries"),
            (["redisHost": "localhost", "redisMaxRetries": "-5"], "redisMaxRetries"),
            (["redisHost": "localhost", "maxRetryBackoff": "soon"], "maxRetryBackoff"),
            (["redisHost": "localhost", "poolSize": "0"], "poolSize"),
            (["redisHost": "localhost", "dialTimeout": "5 parsecs"], "dialTimeout"),
            (["redisHost": "localhost", "readTimeout": "x"], "readTimeout"),
            (["redisHost": "localhost", "writeTimeout": "x"], "writeTimeout"),
            (["redisHost": "localhost", "idleTimeout": "x"], "idleTimeout"),
            (["redisHost": "localhost", "ttlInSeconds": "1h"], "ttlInSeconds"),
            (["redisHost": "localhost", "actorStateStore": "yes please"], "actorStateStore"),
            (["redisHost": "localhost", "redisType": "cluster"], "redisType"),
            (["redisHost": "localhost", "failover": "true"], "failover"),
            (["redisHost": "localhost", "queryIndexes": "[]"], "queryIndexes"),
        ] as [([String: String], String)]
    )
    func badMetadata(_ metadata: [String: String], _ field: String) async throws {
        do {
            _ = try RedisStateStoreConfiguration(ComponentMetadata(metadata))
            Issue.record("metadata \(metadata) was accepted")
        } catch {
            #expect(error.key == field, "\(metadata): \(error)")
        }
        // The factory reports it the same way, before connecting anywhere.
        let spec = ComponentSpec(name: "s", type: RedisStateStoreFactory().type, metadata: ComponentMetadata(metadata))
        let context = ComponentContext(appID: "a", dataDirectory: "/tmp/mecha-redis-unused", instanceID: "i")
        await #expect(throws: ComponentConfigurationError.self) { _ = try await RedisStateStoreFactory().make(spec: spec, context: context) }
    }

    @Test("Dapr's metadata maps onto the client configuration")
    func mapping() throws {
        let configuration = try RedisStateStoreConfiguration(
            ComponentMetadata([
                "redisHost": "redis.example:6380", "redisUsername": "u", "redisPassword": "p", "redisDB": "3",
                "enableTLS": "true", "maxRetries": "5", "maxRetryBackoff": "2s", "poolSize": "4", "dialTimeout": "250",
                "readTimeout": "-1", "idleTimeout": "1m", "ttlInSeconds": "60", "actorStateStore": "true",
            ])
        )
        let client = configuration.client.configuration
        #expect(client.host == "redis.example")
        #expect(client.port == 6380)
        #expect(client.username == "u")
        #expect(client.password == "p")
        #expect(client.database == 3)
        #expect(client.enableTLS)
        #expect(client.maxRetries == 5)
        #expect(client.maxRetryBackoff == .seconds(2))
        #expect(client.poolSize == 4)
        #expect(client.dialTimeout == .milliseconds(250))
        #expect(client.readTimeout == nil)
        #expect(client.idleTimeout == .seconds(60))
        #expect(configuration.defaultTTL == .seconds(60))
        #expect(configuration.actorStateStore)

        let plain = try RedisStateStoreConfiguration(ComponentMetadata(["redisHost": "localhost", "redisPort": "6390"]))
        #expect(plain.client.configuration.host == "localhost")
        #expect(plain.client.configuration.port == 6390)
        #expect(plain.defaultTTL == nil)
        let bare = try RedisStateStoreConfiguration(ComponentMetadata(["redisHost": "[::1]:7000", "redisMaxRetries": "-1"]))
        #expect(bare.client.configuration.host == "::1")
        #expect(bare.client.configuration.port == 7000)
        #expect(bare.client.configuration.maxRetries == 0)
    }

    @Test("an unreachable server fails the init with the address")
    func unreachable() async throws {
        let port = TestEnvironment.refusingPort()
        do {
            _ = try await RedisComponents.make(
                RedisStateStoreFactory(),
                ["redisHost": "127.0.0.1:\(port)", "maxRetries": "-1", "dialTimeout": "500ms"],
                as: RedisStateStore.self
            )
            Issue.record("a store was built without a server")
        } catch {
            #expect("\(error)".contains("127.0.0.1:\(port)"))
        }
    }
}

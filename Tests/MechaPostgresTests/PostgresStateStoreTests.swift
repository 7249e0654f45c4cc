import MechaCore
@testable import MechaPostgres
import MechaTesting
import PostgresNIO
import Testing

/// Builds `state.postgresql` stores through the factory, as the runtime does.
enum PostgresStores {
    static func make(_ metadata: [String: String], version: String = "v2") async throws -> PostgresStateStore {
        let factory = PostgresStateStoreFactory()
        let spec = ComponentSpec(name: "pgtest", type: factory.type, version: version, metadata: ComponentMetadata(metadata))
        let context = ComponentContext(appID: "pgtest", dataDirectory: "/tmp/mecha-postgres-unused", instanceID: RandomID.uuid())
        let component = try await factory.make(spec: spec, context: context)
        return try #require(component as? PostgresStateStore, "state.postgresql built \(type(of: component))")
    }

    /// Runs `body` with a store and closes it afterwards.
    static func with<T>(_ metadata: [String: String], version: String = "v2", _ body: (PostgresStateStore) async throws -> T) async throws -> T {
        let store = try await self.make(metadata, version: version)
        do {
            let result = try await body(store)
            try await store.close()
            return result
        } catch {
            try? await store.close()
            throw error
        }
    }

    /// A fresh database on the shared server; its keyword/value connection string.
    static func freshDatabase() async throws -> (server: PostgresServerHarness, database: String, connectionString: String) {
        let server = try await PostgresServerHarness.shared()
        let database = try await server.createDatabase("state")
        return (server, database, server.connectionString(database: database))
    }
}

struct PostgresStateStoreConformanceTests {
    typealias Check = StateStoreConformance.Check

    /// Well-formed for this store (a UUID) but never current.
    static let staleETag = "9b2f6c1e-3f0a-4c7e-8d1b-5a6e7f809102"

    @Test("state.postgresql on a real server", .timeLimit(.minutes(2)), arguments: Check.allCases)
    func conformance(_ check: Check) async throws {
        let (_, _, connectionString) = try await PostgresStores.freshDatabase()
        let configuration = StateStoreConformance.Configuration(expectedFeatures: [.etag, .transactional, .ttl], staleETag: Self.staleETag)
        try await StateStoreConformance(configuration: configuration) {
            try await PostgresStores.make(["connectionString": connectionString])
        }.run(check)
    }
}

struct PostgresStateStoreBehaviourTests {
    @Test("both connection string forms reach the same data")
    func connectionStringForms() async throws {
        let (server, database, keywordForm) = try await PostgresStores.freshDatabase()
        try await PostgresStores.with(["connectionString": keywordForm]) { store in
            try await store.set(StateSetRequest(key: "k", value: Array(#"{"n":1}"#.utf8)))
        }
        let urlForm = server.url(database: database)
        try await PostgresStores.with(["connectionString": urlForm]) { store in
            let item = try await store.get(StateGetRequest(key: "k"))
            #expect(item?.value == Array(#"{"n":1}"#.utf8))
        }
        // Dapr's alias `url` and quoted keyword values.
        let quoted = "host='\(server.host)' port=\(server.port) user=postgres database='\(database)' sslmode=disable"
        try await PostgresStores.with(["url": quoted]) { store in
            let item = try await store.get(StateGetRequest(key: "k"))
            #expect(item != nil)
        }
    }

    @Test("the tables are created when missing, as Dapr's v2 layout, and the migration is recorded")
    func createsTables() async throws {
        let (server, database, connectionString) = try await PostgresStores.freshDatabase()
        try await PostgresStores.with(["connectionString": connectionString, "tableName": "custom_state", "metadataTableName": "custom_meta"]) { store in
            try await store.set(StateSetRequest(key: "a", value: [1, 2, 3]))
        }
        let columns = try await server.psql(
            "SELECT column_name || ':' || data_type FROM information_schema.columns WHERE table_name = 'custom_state' ORDER BY ordinal_position",
            database: database
        )
        #expect(
            columns.split(separator: "\n").map(String.init) == [
                "key:text", "value:bytea", "etag:uuid", "created_at:timestamp with time zone",
                "updated_at:timestamp with time zone", "expires_at:timestamp with time zone",
            ]
        )
        let migrations = try await server.psql("SELECT key || '=' || value FROM custom_meta WHERE key LIKE 'migrations%'", database: database)
        #expect(migrations.trimmingSpaces() == "migrations-state-v2-custom_=1")
        let index = try await server.psql("SELECT indexname FROM pg_indexes WHERE tablename = 'custom_state' AND indexdef LIKE '%expires_at%'", database: database)
        #expect(!index.trimmingSpaces().isEmpty, "no index on expires_at")

        // Dapr v2's tablePrefix, and a schema-qualified name.
        try await PostgresStores.with(["connectionString": connectionString, "tablePrefix": "app1_"]) { store in
            try await store.set(StateSetRequest(key: "p", value: Array("1".utf8)))
        }
        let prefixed = try await server.psql("SELECT count(*) FROM app1_state", database: database)
        #expect(prefixed.trimmingSpaces() == "1")
        _ = try await server.psql("CREATE SCHEMA tenant", database: database)
        try await PostgresStores.with(["connectionString": connectionString, "tableName": "tenant.kv"]) { store in
            try await store.set(StateSetRequest(key: "s", value: Array("1".utf8)))
            let item = try await store.get(StateGetRequest(key: "s"))
            #expect(item?.value == Array("1".utf8))
        }
        let schemaRows = try await server.psql("SELECT count(*) FROM tenant.kv", database: database)
        #expect(schemaRows.trimmingSpaces() == "1")
    }

    @Test("data written by one store instance (or by daprd) is read by another")
    func dataCarriesOver() async throws {
        let (server, database, connectionString) = try await PostgresStores.freshDatabase()
        let written = try await PostgresStores.with(["connectionString": connectionString]) { store in
            try await store.set(StateSetRequest(key: "json", value: Array(#"{"a":[1,2]}"#.utf8)))
            try await store.set(StateSetRequest(key: "bytes", value: [0xFF, 0x00, 0x7F]))
            try await store.set(StateSetRequest(key: "ttl", value: Array("t".utf8), ttl: .seconds(3600)))
            return try await store.bulkGet(["json", "bytes", "ttl"].map { StateGetRequest(key: $0) })
        }
        // A row as daprd's v2 store writes it, straight into the table.
        _ = try await server.psql(
            "INSERT INTO state (key, value, etag) VALUES ('from-dapr', convert_to('\"hello\"', 'UTF8'), 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')",
            database: database
        )
        try await PostgresStores.with(["connectionString": connectionString], version: "v1") { store in
            let read = try await store.bulkGet(["json", "bytes", "ttl"].map { StateGetRequest(key: $0) })
            #expect(read == written, "a second instance read \(read), the first wrote \(written)")
            #expect(read.last?.item?.metadata["ttlExpireTime"] != nil)
            let dapr = try await store.get(StateGetRequest(key: "from-dapr"))
            #expect(dapr?.value == Array(#""hello""#.utf8))
            #expect(dapr?.etag == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
            try await store.set(StateSetRequest(key: "from-dapr", value: Array("2".utf8), etag: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"))
        }
        let value = try await server.psql("SELECT convert_from(value, 'UTF8') FROM state WHERE key = 'from-dapr'", database: database)
        #expect(value.trimmingSpaces() == "2")
    }

    @Test("cleanupInterval deletes expired rows in the background; 0 disables it")
    func cleanup() async throws {
        let (server, database, connectionString) = try await PostgresStores.freshDatabase()
        let store = try await PostgresStores.make(["connectionString": connectionString, "cleanupInterval": "1s"])
        try await store.set(StateSetRequest(key: "short", value: Array("1".utf8), ttl: .seconds(1)))
        try await store.set(StateSetRequest(key: "long", value: Array("2".utf8), ttl: .seconds(3600)))
        try await store.set(StateSetRequest(key: "forever", value: Array("3".utf8)))
        let stop = StopSignal()
        let remaining = try await withThrowingTaskGroup(of: Void.self) { group -> String in
            group.addTask { try await store.run(until: stop) }
            var rows = ""
            let deadline = ContinuousClock.now + .seconds(15)
            while ContinuousClock.now < deadline {
                rows = try await server.psql("SELECT string_agg(key, ',' ORDER BY key) FROM state", database: database)
                if rows.trimmingSpaces() == "forever,long" { break }
                try await Task.sleep(for: .milliseconds(250))
            }
            stop.stop()
            try await group.waitForAll()
            return rows
        }
        try await store.close()
        #expect(remaining.trimmingSpaces() == "forever,long", "rows left after cleanup: \(remaining)")
        let cleaned = try await server.psql("SELECT count(*) FROM dapr_metadata WHERE key = 'last-cleanup-state-v2-dapr_metadata'", database: database)
        #expect(cleaned.trimmingSpaces() == "1")

        for disabled in ["0", "-1s", "0s"] {
            let configuration = try PostgresStateStoreConfiguration(ComponentMetadata(["connectionString": connectionString, "cleanupInterval": disabled]))
            #expect(configuration.cleanupInterval == nil, "cleanupInterval \(disabled) should disable cleanup")
        }
    }

    @Test("an ETag that is not a UUID is invalid, not a mismatch")
    func invalidETag() async throws {
        let (_, _, connectionString) = try await PostgresStores.freshDatabase()
        try await PostgresStores.with(["connectionString": connectionString]) { store in
            try await store.set(StateSetRequest(key: "k", value: Array("1".utf8)))
            await #expect(throws: StateStoreError(.etagInvalid, key: "k", detail: "'not-a-uuid' is not a UUID")) {
                try await store.set(StateSetRequest(key: "k", value: Array("2".utf8), etag: "not-a-uuid"))
            }
            await #expect(throws: StateStoreError.self) {
                try await store.delete(StateDeleteRequest(key: "k", etag: "1234"))
            }
            let item = try await store.get(StateGetRequest(key: "k"))
            #expect(item?.value == Array("1".utf8))
        }
    }

    @Test("a table in Dapr's v1 layout is refused with a message saying so")
    func refusesV1Layout() async throws {
        let (server, database, connectionString) = try await PostgresStores.freshDatabase()
        _ = try await server.psql(
            """
            CREATE TABLE state (key text NOT NULL PRIMARY KEY, value jsonb NOT NULL, isbinary boolean NOT NULL,
                insertdate timestamp with time zone NOT NULL DEFAULT now(), updatedate timestamp with time zone,
                expiredate timestamp with time zone)
            """,
            database: database
        )
        do {
            _ = try await PostgresStores.make(["connectionString": connectionString], version: "v1")
            Issue.record("a v1-layout table was accepted")
        } catch {
            #expect("\(error)".contains("v1"), "unexpected error: \(error)")
        }
    }

    @Test("an unreachable server fails initialisation naming the endpoint")
    func unreachable() async throws {
        let port = TestEnvironment.refusingPort()
        do {
            _ = try await PostgresStores.make(["connectionString": "host=127.0.0.1 port=\(port) user=postgres sslmode=disable", "timeout": "2s"])
            Issue.record("connected to a port nobody listens on")
        } catch {
            #expect("\(error)".contains("127.0.0.1:\(port)"), "unexpected error: \(error)")
        }
    }

    // Disabled: passes on its own (`--filter Postgres`), but never finishes inside the full parallel
    // suite on a 2-core machine; the cause (closing a connection with a query in flight) is open.
    @Test(
        "an operation past its timeout is abandoned promptly and the pool recovers",
        .disabled(if: TestEnvironment.current["MECHA_POSTGRES_TIMEOUT_TEST"] != "1", "hangs in the full parallel suite; run with MECHA_POSTGRES_TIMEOUT_TEST=1"),
        .timeLimit(.minutes(1))
    )
    func timeout() async throws {
        let (_, _, connectionString) = try await PostgresStores.freshDatabase()
        try await PostgresStores.with(["connectionString": connectionString, "timeout": "1s", "maxConns": "1"]) { store in
            let started = ContinuousClock.now
            await #expect(throws: PostgresPoolError.self) {
                try await store.pool.withConnection(timeout: .seconds(1)) { connection in
                    try await connection.query("SELECT pg_sleep(10)", logger: store.logger)
                }
            }
            #expect(ContinuousClock.now - started < .seconds(5), "the timeout took \(ContinuousClock.now - started)")
            // The only connection was closed; the next operation opens a new one.
            try await store.set(StateSetRequest(key: "after", value: Array("1".utf8)))
            let item = try await store.get(StateGetRequest(key: "after"))
            #expect(item?.value == Array("1".utf8))
        }
    }

    @Test("many concurrent operations share a small pool")
    func concurrency() async throws {
        let (_, _, connectionString) = try await PostgresStores.freshDatabase()
        try await PostgresStores.with(["connectionString": connectionString, "maxConns": "3"]) { store in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<60 {
                    group.addTask {
                        try await store.set(StateSetRequest(key: "k\(index % 20)", value: Array("\(index)".utf8)))
                        _ = try await store.get(StateGetRequest(key: "k\(index % 20)"))
                    }
                }
                try await group.waitForAll()
            }
            // First-write races: exactly one writer of a new key wins.
            let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group -> [Bool] in
                for index in 0..<8 {
                    group.addTask {
                        do {
                            try await store.set(StateSetRequest(key: "race", value: Array("\(index)".utf8), concurrency: .firstWrite))
                            return true
                        } catch let error as StateStoreError where error.code == .etagMismatch {
                            return false
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 }.count == 1, "first-write winners: \(outcomes)")
        }
    }

    @Test("registered as state.postgresql, versions v1 and v2")
    func versions() {
        let factory = PostgresStateStoreFactory()
        #expect(factory.type.description == "state.postgresql")
        #expect(factory.versions == ["v1", "v2"])
    }
}

import MechaCore
@testable import MechaPostgres
import MechaTesting
import Testing

/// `configuration.postgresql` against a real server, with the table and NOTIFY trigger Dapr's
/// documentation tells users to create.
struct PostgresConfigurationStoreTests {
    typealias Check = ConfigurationStoreConformance.Check

    static func setUp(_ server: PostgresServerHarness, _ database: String, channel: String = "config") async throws {
        _ = try await server.psql(
            """
            CREATE TABLE configtable (KEY VARCHAR NOT NULL, VALUE VARCHAR NOT NULL, VERSION VARCHAR NOT NULL, METADATA JSON);
            CREATE OR REPLACE FUNCTION notify_config() RETURNS TRIGGER AS $$
            DECLARE
              data json;
            BEGIN
              IF (TG_OP = 'DELETE') THEN data = row_to_json(OLD); ELSE data = row_to_json(NEW); END IF;
              PERFORM pg_notify('\(channel)', json_build_object('table', TG_TABLE_NAME, 'action', TG_OP, 'data', data)::text);
              RETURN NULL;
            END;
            $$ LANGUAGE plpgsql;
            CREATE TRIGGER config_trigger AFTER INSERT OR UPDATE OR DELETE ON configtable
              FOR EACH ROW EXECUTE PROCEDURE notify_config();
            """,
            database: database
        )
    }

    static func quoted(_ text: String) -> String { "'" + text.replacing("'", with: "''") + "'" }

    static func backend(_ server: PostgresServerHarness, _ database: String) -> ConfigurationStoreConformance.Backend {
        ConfigurationStoreConformance.Backend(
            set: { key, item in
                let metadata = item.metadata.isEmpty ? "NULL" : Self.quoted(String(decoding: JSONValue.stringMap(item.metadata).serialized, as: UTF8.self))
                let (k, v, version) = (Self.quoted(key), Self.quoted(item.value), Self.quoted(item.version))
                _ = try await server.psql(
                    """
                    UPDATE configtable SET value = \(v), version = \(version), metadata = \(metadata) WHERE key = \(k);
                    INSERT INTO configtable SELECT \(k), \(v), \(version), \(metadata) WHERE NOT EXISTS (SELECT 1 FROM configtable WHERE key = \(k));
                    """,
                    database: database
                )
            },
            delete: { key in
                _ = try await server.psql("DELETE FROM configtable WHERE key = \(Self.quoted(key))", database: database)
            }
        )
    }

    static func make(_ metadata: [String: String]) async throws -> any ConfigurationStore {
        let factory = PostgresConfigurationStoreFactory()
        let spec = ComponentSpec(name: "pgconfig", type: factory.type, metadata: ComponentMetadata(metadata))
        let context = ComponentContext(appID: "pgtest", dataDirectory: "/tmp/mecha-postgres-unused", instanceID: RandomID.uuid())
        return try #require(try await factory.make(spec: spec, context: context) as? any ConfigurationStore)
    }

    @Test("configuration.postgresql on a real server", .timeLimit(.minutes(2)), arguments: Check.allCases)
    func conformance(_ check: Check) async throws {
        let server = try await PostgresServerHarness.shared()
        let database = try await server.createDatabase("config")
        try await Self.setUp(server, database)
        let configuration = ConfigurationStoreConformance.Configuration(
            subscribeMetadata: ["pgNotifyChannel": "config"],
            deletionIsEmptyItem: false,
            supportsMetadata: true
        )
        try await ConfigurationStoreConformance(configuration: configuration, backend: Self.backend(server, database)) {
            try await Self.make(["connectionString": server.connectionString(database: database), "table": "configtable"])
        }.run(check)
    }

    @Test(.timeLimit(.minutes(1)))
    func badSetupIsRefusedWithDaprsMessages() async throws {
        let server = try await PostgresServerHarness.shared()
        let database = try await server.createDatabase("config")
        let connection = server.connectionString(database: database)
        await #expect(throws: ComponentConfigurationError.self) { _ = try await Self.make(["connectionString": connection]) }
        await #expect(throws: ComponentConfigurationError.self) { _ = try await Self.make(["connectionString": connection, "table": "Config; DROP"]) }
        do {
            _ = try await Self.make(["connectionString": connection, "table": "nosuchtable"])
            Issue.record("a missing table was accepted")
        } catch {
            #expect("\(error)" == "postgreSQL configuration table 'nosuchtable' does not exist")
        }
        try await Self.setUp(server, database)
        let store = try await Self.make(["connectionString": connection, "table": "configtable"])
        await #expect(throws: ConfigurationStoreError.self) { _ = try await store.subscribe(keys: ["a"], metadata: [:]) }
        do {
            _ = try await store.get(keys: ["bad key"], metadata: [:])
            Issue.record("an invalid key was accepted")
        } catch {
            #expect("\(error)" == "invalid key : 'bad key'")
        }
        try await store.close()
    }

    /// Several rows for one key: the highest numeric version wins (Dapr's rule).
    @Test(.timeLimit(.minutes(1)))
    func highestVersionWins() async throws {
        let server = try await PostgresServerHarness.shared()
        let database = try await server.createDatabase("config")
        try await Self.setUp(server, database)
        _ = try await server.psql("INSERT INTO configtable VALUES ('k', 'old', '2', NULL), ('k', 'new', '10', '{\"a\":\"b\"}'), ('k', 'odd', 'x', NULL)", database: database)
        let store = try await Self.make(["connectionString": server.connectionString(database: database), "table": "configtable"])
        #expect(try await store.get(keys: ["k"], metadata: [:]) == ["k": ConfigurationItem(value: "new", version: "10", metadata: ["a": "b"])])
        try await store.close()
    }
}

struct PostgresConfigurationResilienceTests {
    /// The server ends the LISTEN connection (as a restart or failover would): the watch comes back
    /// by itself, sends the watched key's current item, and later changes too.
    @Test(.timeLimit(.minutes(1)))
    func aSubscriptionSurvivesALostConnection() async throws {
        let server = try await PostgresServerHarness.shared()
        let database = try await server.createDatabase("config")
        try await PostgresConfigurationStoreTests.setUp(server, database)
        let backend = PostgresConfigurationStoreTests.backend(server, database)
        let store = try await PostgresConfigurationStoreTests.make(["connectionString": server.connectionString(database: database), "table": "configtable"])
        let updates = try await store.subscribe(keys: ["color"], metadata: ["pgNotifyChannel": "config"])
        let changes = ConfigurationUpdateLog()
        let reader = Task {
            for try await batch in updates { changes.add(batch) }
        }
        try await backend.set("color", ConfigurationItem(value: "red", version: "1"))
        #expect(await changes.waitFor("color", ConfigurationItem(value: "red", version: "1")))
        let terminated = try await server.psql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
            database: database
        )
        #expect(terminated.trimmingSpaces() == "t", "the LISTEN connection was not found: \(terminated)")
        try await backend.set("color", ConfigurationItem(value: "green", version: "2"))
        #expect(await changes.waitFor("color", ConfigurationItem(value: "green", version: "2")))
        try await Task.sleep(for: .milliseconds(300))
        try await backend.set("color", ConfigurationItem(value: "blue", version: "3"))
        #expect(await changes.waitFor("color", ConfigurationItem(value: "blue", version: "3")))
        reader.cancel()
        try await store.close()
    }
}

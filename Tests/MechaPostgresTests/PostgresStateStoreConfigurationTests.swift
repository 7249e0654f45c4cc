import MechaCore
@testable import MechaPostgres
import Testing

struct PostgresStateStoreConfigurationTests {
    static let connection = "host=localhost user=postgres sslmode=disable"

    @Test("defaults are Dapr's")
    func defaults() throws {
        let configuration = try PostgresStateStoreConfiguration(ComponentMetadata(["connectionString": Self.connection]))
        #expect(configuration.table == "state")
        #expect(configuration.metadataTable == "dapr_metadata")
        #expect(configuration.timeout == .seconds(20))
        #expect(configuration.cleanupInterval == .seconds(3600))
        #expect(configuration.migrationsKey == "migrations-state-v2-")
        #expect(configuration.lastCleanupKey == "last-cleanup-state-v2-dapr_metadata")
        #expect(configuration.actorStateStore == false)
    }

    @Test("aliases and forms Dapr accepts")
    func aliases() throws {
        let configuration = try PostgresStateStoreConfiguration(
            ComponentMetadata([
                "url": Self.connection, "timeoutInSeconds": "30", "cleanupIntervalInSeconds": "60",
                "tablePrefix": "tenant.", "actorStateStore": "true", "maxConns": "3",
            ])
        )
        #expect(configuration.timeout == .seconds(30))
        #expect(configuration.cleanupInterval == .seconds(60))
        #expect(configuration.table == "tenant.state")
        #expect(configuration.migrationsKey == "migrations-state-v2-tenant.")
        #expect(configuration.actorStateStore)
        #expect(configuration.maxConnections == 3)
    }

    @Test(
        "a bad value is an error naming its field",
        arguments: [
            ([:], "connectionString"),
            (["connectionString": ""], "connectionString"),
            (["connectionString": "host=localhost port=notaport"], "connectionString"),
            (["connectionString": "host=localhost sslmode=sometimes"], "connectionString"),
            (["connectionString": "host localhost"], "connectionString"),
            (["connectionString": "host='localhost"], "connectionString"),
            (["connectionString": "mysql://root@localhost/db"], "connectionString"),
            (["connectionString": "postgres://u:p%zz@localhost/db"], "connectionString"),
            (["connectionString": "host=a,b"], "connectionString"),
            (["url": "host=localhost port=0"], "url"),
            (["connectionString": connection, "timeout": "soon"], "timeout"),
            (["connectionString": connection, "timeout": "500ms"], "timeout"),
            (["connectionString": connection, "cleanupInterval": "hourly"], "cleanupInterval"),
            (["connectionString": connection, "tableName": "state; DROP TABLE x"], "tableName"),
            (["connectionString": connection, "tableName": "1state"], "tableName"),
            (["connectionString": connection, "tableName": "a.b.c"], "tableName"),
            (["connectionString": connection, "tableName": ""], "tableName"),
            (["connectionString": connection, "tablePrefix": "x-"], "tablePrefix"),
            (["connectionString": connection, "tableName": "a", "tablePrefix": "b"], "tablePrefix"),
            (["connectionString": connection, "metadataTableName": "meta data"], "metadataTableName"),
            (["connectionString": connection, "maxConns": "0"], "maxConns"),
            (["connectionString": connection, "actorStateStore": "maybe"], "actorStateStore"),
        ] as [([String: String], String)]
    )
    func badValue(_ metadata: [String: String], _ field: String) async throws {
        #expect {
            _ = try PostgresStateStoreConfiguration(ComponentMetadata(metadata))
        } throws: { error in
            (error as? ComponentConfigurationError)?.key == field
        }
        // Through the factory too, which is what the runtime sees.
        let spec = ComponentSpec(name: "bad", type: ComponentType(.state, "postgresql"), metadata: ComponentMetadata(metadata))
        let context = ComponentContext(appID: "test", dataDirectory: "/tmp/mecha-postgres-unused", instanceID: "test")
        await #expect {
            _ = try await PostgresStateStoreFactory().make(spec: spec, context: context)
        } throws: { error in
            (error as? ComponentConfigurationError)?.key == field
        }
    }

    @Test("a password never appears in an error")
    func passwordNotShown() {
        #expect {
            _ = try PostgresStateStoreConfiguration(ComponentMetadata(["connectionString": "host=localhost password=s3cr3t port=x"]))
        } throws: { error in
            !"\(error)".contains("s3cr3t")
        }
    }
}

struct PostgresConnectionStringTests {
    @Test("keyword/value form, with quoting and escapes")
    func keywordForm() throws {
        let parsed = try PostgresConnectionString(
            parsing: #"host=db.example port = 6432 user=app password='it\'s a \\secret' database=orders sslmode=require connect_timeout=7 application_name=mecha pool_max_conns=4 pool_min_conns=1"#
        )
        #expect(parsed.host == "db.example")
        #expect(parsed.port == 6432)
        #expect(parsed.user == "app")
        #expect(parsed.password == #"it's a \secret"#)
        #expect(parsed.database == "orders")
        #expect(parsed.sslMode == .require)
        #expect(parsed.connectTimeout == .seconds(7))
        #expect(parsed.maxConnections == 4)
        #expect(parsed.parameters.map { "\($0.0)=\($0.1)" } == ["application_name=mecha"])
    }

    @Test("URL form, with percent-escapes, IPv6 and query parameters")
    func urlForm() throws {
        let parsed = try PostgresConnectionString(parsing: "postgresql://us%40er:p%3Ass@[::1]:5433/my%20db?sslmode=disable&search_path=app")
        #expect(parsed.host == "::1")
        #expect(parsed.port == 5433)
        #expect(parsed.user == "us@er")
        #expect(parsed.password == "p:ss")
        #expect(parsed.database == "my db")
        #expect(parsed.sslMode == .disable)
        #expect(parsed.parameters.map { "\($0.0)=\($0.1)" } == ["search_path=app"])

        let minimal = try PostgresConnectionString(parsing: "postgres://localhost")
        #expect(minimal.host == "localhost" && minimal.port == 5432 && minimal.user == nil && minimal.database == nil)
        #expect(minimal.sslMode == .prefer)
    }

    @Test("a host that is a directory means the Unix socket in it")
    func unixSocket() throws {
        let parsed = try PostgresConnectionString(parsing: "host=/var/run/postgresql port=5433 user=postgres")
        #expect(parsed.unixSocketPath == "/var/run/postgresql/.s.PGSQL.5433")
    }
}

import MechaCore
@testable import MechaPostgres
import MechaTesting
import Testing

struct PostgresBindingTests {
    static func make(_ connectionString: String) async throws -> any OutputBinding {
        let factory = PostgresBindingFactory()
        let spec = ComponentSpec(name: "pgbinding", type: factory.type, metadata: ComponentMetadata(["connectionString": connectionString]))
        let context = ComponentContext(appID: "pgtest", dataDirectory: "/tmp/mecha-postgres-unused", instanceID: RandomID.uuid())
        return try #require(try await factory.make(spec: spec, context: context) as? any OutputBinding)
    }

    @Test(.timeLimit(.minutes(1)))
    func execQueryAndCloseAsDaprs() async throws {
        let server = try await PostgresServerHarness.shared()
        let database = try await server.createDatabase("binding")
        let binding = try await Self.make(server.connectionString(database: database))
        let created = try await binding.invoke(BindingInvokeRequest(operation: "exec", metadata: [
            "sql": "CREATE TABLE orders (id integer PRIMARY KEY, customer text, total numeric(10,2), paid boolean, placed timestamptz, tags jsonb, note text)",
        ]))
        #expect(created.metadata["operation"] == "exec")
        #expect(created.metadata["rows-affected"] == "0")
        for key in ["sql", "start-time", "end-time", "duration"] { #expect(created.metadata[key] != nil, "missing \(key)") }
        #expect(created.data.isEmpty)

        // Parameters are untyped: the server infers integer, numeric, boolean, timestamptz, jsonb.
        let inserted = try await binding.invoke(BindingInvokeRequest(operation: "exec", metadata: [
            "sql": "INSERT INTO orders VALUES ($1, $2, $3, $4, $5, $6, $7), ($8, $9, $10, $11, $12, $13, $14)",
            "params": #"[1, "alice", 12.5, true, "2026-11-21T10:00:00Z", {"vip":true}, null, 2, "bob", "7", false, "2026-01-02T03:04:05.5Z", ["x"], "it's"]"#,
        ]))
        #expect(inserted.metadata["rows-affected"] == "2")

        let rows = try await binding.invoke(BindingInvokeRequest(operation: "query", metadata: [
            "sql": "SELECT id, customer, total, paid, placed, tags, note FROM orders WHERE id >= $1 ORDER BY id",
            "params": "[1]",
        ]))
        #expect(rows.metadata["operation"] == "query")
        #expect(rows.metadata["rows-affected"] == nil)
        let expected = #"[[1,"alice",12.50,true,"2026-11-21T10:00:00Z",{"vip":true},null],[2,"bob",7.00,false,"2026-01-02T03:04:05.5Z",["x"],"it's"]]"#
        #expect(String(decoding: rows.data, as: UTF8.self) == expected)

        let numbers = try await binding.invoke(BindingInvokeRequest(operation: "query", metadata: [
            "sql": "SELECT 0.0001::numeric, -3.5::numeric, 10000::numeric, 0::numeric, 1234567.89::numeric(12,2), 'NaN'::numeric, 100000000.000100::numeric, -0.5::float8, 3::int2",
        ]))
        #expect(String(decoding: numbers.data, as: UTF8.self) == #"[[0.0001,-3.5,10000,0,1234567.89,"NaN",100000000.000100,-0.5,3]]"#)

        let none = try await binding.invoke(BindingInvokeRequest(operation: "query", metadata: ["sql": "SELECT id FROM orders WHERE id > 100"]))
        #expect(String(decoding: none.data, as: UTF8.self) == "[]")

        #expect(try await !binding.invoke(BindingInvokeRequest(operation: "close")).hasResponse)
        // Closed connections are reopened on the next use.
        let after = try await binding.invoke(BindingInvokeRequest(operation: "query", metadata: ["sql": "SELECT count(*) FROM orders"]))
        #expect(String(decoding: after.data, as: UTF8.self) == "[[2]]")

        for (request, message) in [
            (BindingInvokeRequest(operation: "exec"), "metadata required"),
            (BindingInvokeRequest(operation: "exec", metadata: ["params": "[]"]), "required metadata not set: sql"),
            (BindingInvokeRequest(operation: "exec", metadata: ["sql": "SELECT $1", "params": "{}"]), "invalid metadata property params: failed to unserialize into an array: {}"),
            (BindingInvokeRequest(operation: "get"), "invalid operation type: get. Expected exec, query, or close"),
        ] {
            do {
                _ = try await binding.invoke(request)
                Issue.record("\(request.operation) \(request.metadata) was accepted")
            } catch {
                #expect("\(error)" == message)
            }
        }
        do {
            _ = try await binding.invoke(BindingInvokeRequest(operation: "exec", metadata: ["sql": "INSERT INTO nosuch VALUES (1)"]))
            Issue.record("a failing statement was accepted")
        } catch {
            #expect("\(error)".contains("relation \"nosuch\" does not exist"), "\(error)")
        }
        try await binding.close()
    }
}

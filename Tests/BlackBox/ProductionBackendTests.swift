import MechaCore
import MechaTesting
import Testing

/// Black-box: two `mecha` processes on production backends — state in PostgreSQL, locks in Redis —
/// with each sidecar's own home (nothing shared but the servers), as on two machines.
@Suite(.serialized)
struct ProductionBackendTests {
    static func component(_ name: String, _ type: String, _ metadata: [(String, String)]) -> String {
        var text = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: \(name)\nspec:\n  type: \(type)\n  version: v1\n  metadata:\n"
        for (key, value) in metadata { text += "  - name: \(key)\n    value: \"\(value)\"\n" }
        return text
    }

    @Test(.timeLimit(.minutes(2)))
    func stateInPostgresAndLocksInRedisAcrossTwoSidecars() async throws {
        let postgres = try await PostgresServerHarness.shared()
        let database = try await postgres.createDatabase("blackbox")
        try await RedisServerHarness.withServer { redis in
            let root = TestEnvironment.temporaryDirectory("mecha-backends")
            defer { TestEnvironment.remove(root) }
            let resources = root + "/resources"
            _ = TestEnvironment.makeDirectory(resources)
            try TestEnvironment.write(
                Self.component("orders", "state.postgresql", [("connectionString", postgres.connectionString(database: database)), ("keyPrefix", "none")])
                    + "---\n"
                    + Self.component("locks", "lock.redis", [("redisHost", "127.0.0.1:\(redis.port)"), ("keyPrefix", "name")]),
                to: resources + "/components.yaml"
            )
            let homeA = TestEnvironment.makeDirectory(root + "/a")
            let homeB = TestEnvironment.makeDirectory(root + "/b")
            let a = try await SidecarHarness(appID: "writer", home: homeA, resourcesPaths: [resources])
            let b = try await SidecarHarness(appID: "reader", home: homeB, resourcesPaths: [resources])
            try await TestHTTP.with { http in
                // State written through one sidecar is read, and guarded by its ETag, through the other.
                #expect(try await http.post(port: a.httpPort, "/v1.0/state/orders", json: #"[{"key":"order-1","value":{"qty":1}}]"#).status == 204)
                let read = try await http.get(port: b.httpPort, "/v1.0/state/orders/order-1")
                #expect(read.text == #"{"qty":1}"#)
                let etag = try #require(read.header("etag"))
                #expect(try await http.post(port: a.httpPort, "/v1.0/state/orders", json: #"[{"key":"order-1","value":{"qty":2},"etag":"\#(etag)"}]"#).status == 204)
                let stale = try await http.post(port: b.httpPort, "/v1.0/state/orders", json: #"[{"key":"order-1","value":{"qty":3},"etag":"\#(etag)"}]"#)
                #expect(stale.status == 409, "\(stale.text)")
                #expect(try await http.get(port: b.httpPort, "/v1.0/state/orders/order-1").text == #"{"qty":2}"#)

                // Two apps contend for one lock (keyPrefix name: the same key for every app).
                let lockA = try await http.post(port: a.httpPort, "/v1.0-alpha1/lock/locks", json: #"{"resourceId":"order-1","lockOwner":"writer-1","expiryInSeconds":30}"#)
                #expect(lockA.text == #"{"success":true}"#)
                let lockB = try await http.post(port: b.httpPort, "/v1.0-alpha1/lock/locks", json: #"{"resourceId":"order-1","lockOwner":"reader-1","expiryInSeconds":30}"#)
                #expect(lockB.text == #"{"success":false}"#)
                #expect(try await http.post(port: b.httpPort, "/v1.0-alpha1/unlock/locks", json: #"{"resourceId":"order-1","lockOwner":"reader-1"}"#).text == #"{"status":2}"#)
                #expect(try await http.post(port: a.httpPort, "/v1.0-alpha1/unlock/locks", json: #"{"resourceId":"order-1","lockOwner":"writer-1"}"#).text == #"{"status":0}"#)
                #expect(try await http.post(port: b.httpPort, "/v1.0-alpha1/lock/locks", json: #"{"resourceId":"order-1","lockOwner":"reader-1","expiryInSeconds":30}"#).text == #"{"success":true}"#)
            }
            await a.stop()
            await b.stop()
        }
    }
}

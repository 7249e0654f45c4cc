import MechaCore
import MechaTesting
import RESPClient
import RESPWire
import Testing

/// The HTTP configuration API over `configuration.redis` on a real redis-server: reads, updates
/// POSTed to the app, unsubscribe, and daprd's errors.
@Suite("HTTP configuration API")
struct ConfigurationRouteTests {
    static func resources(_ redis: RedisServerHarness) -> [String: String] {
        ["config.yaml": APIYAML.component("configstore", type: "configuration.redis", metadata: [("redisHost", "127.0.0.1:\(redis.port)")])]
    }

    static func set(_ redis: RedisServerHarness, _ key: String, _ value: String) async throws {
        let pool = try RESPConnectionPool(configuration: redis.configuration)
        _ = try await pool.send(["SET", key, value])
        await pool.shutdown()
    }

    @Test(.timeLimit(.minutes(1)))
    func getReadsItemsAsDaprd() async throws {
        try await RedisServerHarness.withServer { redis in
            try await Self.set(redis, "greeting", "hello||3")
            try await Self.set(redis, "plain", "v")
            try await InProcessSidecar.with(resources: Self.resources(redis)) { sidecar in
                try await TestHTTP.with { http in
                    let port = sidecar.httpPort
                    let one = try await http.get(port: port, "/v1.0/configuration/configstore?key=greeting")
                    #expect(one.status == 200)
                    #expect(one.text == #"{"greeting":{"value":"hello","version":"3"}}"# + "\n")
                    let two = try await http.get(port: port, "/v1.0-alpha1/configuration/configstore?key=greeting&key=plain&key=missing")
                    #expect(two.text == #"{"greeting":{"value":"hello","version":"3"},"plain":{"value":"v"}}"# + "\n")
                    let all = try await http.get(port: port, "/v1.0/configuration/configstore")
                    #expect(all.text == two.text)
                    let none = try await http.get(port: port, "/v1.0/configuration/configstore?key=missing")
                    #expect(none.status == 204)
                    #expect(none.text.isEmpty)
                    let unknown = try await http.get(port: port, "/v1.0/configuration/nope?key=a")
                    #expect(unknown.status == 400)
                    #expect(unknown.text == #"{"errorCode":"ERR_CONFIGURATION_STORE_NOT_FOUND","message":"configuration store nope not found"}"#)
                }
            }
        }
    }

    @Test func withoutConfigurationStoresTheAPISaysSo() async throws {
        try await InProcessSidecar.with { sidecar in
            try await TestHTTP.with { http in
                let response = try await http.get(port: sidecar.httpPort, "/v1.0/configuration/configstore?key=a")
                #expect(response.status == 500)
                #expect(response.text == #"{"errorCode":"ERR_CONFIGURATION_STORE_NOT_CONFIGURED","message":"configuration stores not configured"}"#)
            }
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func subscriptionsPostChangesToTheApp() async throws {
        try await RedisServerHarness.withServer { redis in
            try await RouteTest.withSubscriber(resources: Self.resources(redis)) { sidecar, app, http in
                let port = sidecar.httpPort
                let subscribed = try await http.get(port: port, "/v1.0/configuration/configstore/subscribe?key=greeting&key=color")
                #expect(subscribed.status == 200)
                let id = try #require(try JSONValue(parsing: subscribed.body)["id"]?.stringValue)
                try await Self.set(redis, "greeting", "hi||4")
                let bodies = try await http.waitForReceived(app, "/configuration/configstore/greeting")
                let event = try JSONValue(parsing: Array(bodies.first?.utf8 ?? "".utf8))
                #expect(event["id"]?.stringValue == id)
                #expect(event["items"] == (try JSONValue(parsing: Array(#"{"greeting":{"value":"hi","version":"4"}}"#.utf8))))

                let unsubscribed = try await http.get(port: port, "/v1.0/configuration/configstore/\(id)/unsubscribe")
                #expect(unsubscribed.status == 200)
                #expect(unsubscribed.text == #"{"ok":true}"# + "\n")
                try await Self.set(redis, "color", "blue")
                try await Task.sleep(for: .milliseconds(500))
                #expect(try await http.received(app, "/configuration/configstore/color").isEmpty, "an update arrived after unsubscribe")

                let again = try await http.get(port: port, "/v1.0/configuration/configstore/\(id)/unsubscribe")
                #expect(again.status == 500)
                #expect(again.text == #"{"message":"failed to unsubscribe to configuration request \#(id): subscription does not exist"}"# + "\n")
            }
        }
    }
}

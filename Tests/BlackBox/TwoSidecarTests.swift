import MechaCore
import MechaTesting
import Testing

/// Black-box tests: the built `mecha` binary and the test app as separate processes on 127.0.0.1,
/// sharing one embedded database the way apps on one machine do.
@Suite(.serialized)
struct TwoSidecarTests {
    @Test func invocationBetweenTwoSidecars() async throws {
        let home = TestEnvironment.temporaryDirectory("mecha-invoke")
        defer { TestEnvironment.remove(home) }
        let appA = try await TestAppHarness(directory: home, name: "a")
        let appB = try await TestAppHarness(directory: home, name: "b")
        let sidecarA = try await SidecarHarness(appID: "alpha", appPort: appA.port, home: home, waitForHealthz: true)
        let sidecarB = try await SidecarHarness(appID: "beta", appPort: appB.port, home: home, waitForHealthz: true)

        try await TestHTTP.with { http in
            // alpha → beta through both sidecars, body, query and headers carried.
            let response = try await http.post(port: sidecarA.httpPort, "/v1.0/invoke/beta/method/echo/hello?x=1&y=two", json: #"{"n":42}"#, headers: [("x-custom", "yes")])
            #expect(response.status == 200, "\(response.text)")
            let echo = try JSONValue(parsing: response.body)
            #expect(echo["method"]?.stringValue == "POST")
            #expect(echo["path"]?.stringValue == "/echo/hello")
            #expect(echo["query"]?.stringValue == "x=1&y=two")
            #expect(echo["body"]?.stringValue == #"{"n":42}"#)
            #expect(echo["headers"]?["x-custom"]?.stringValue == "yes")
            #expect(echo["headers"]?["dapr-caller-app-id"]?.stringValue == "alpha")
            #expect(echo["headers"]?["dapr-callee-app-id"]?.stringValue == "beta")
            #expect(echo["headers"]?["content-type"]?.stringValue == "application/json")

            // beta → alpha, GET, with the dapr-app-id header form.
            let back = try await http.get(port: sidecarB.httpPort, "/echo/back?z=9", headers: [("dapr-app-id", "alpha")])
            #expect(back.status == 200, "\(back.text)")
            #expect(try JSONValue(parsing: back.body)["headers"]?["dapr-caller-app-id"]?.stringValue == "beta")

            // The app's status and content type come back unchanged.
            let teapot = try await http.get(port: sidecarA.httpPort, "/v1.0/invoke/beta/method/status/418")
            #expect(teapot.status == 418)
            #expect(teapot.header("content-type") == "text/plain")
            #expect(teapot.text == "status 418")

            // A large response streams through two hops intact.
            let big = try await http.get(port: sidecarA.httpPort, "/v1.0/invoke/beta/method/bytes/3000000")
            #expect(big.status == 200)
            #expect(big.body.count == 3_000_000)

            // Unknown app id: Dapr's error.
            let missing = try await http.get(port: sidecarA.httpPort, "/v1.0/invoke/nobody/method/x")
            #expect(missing.status == 500)
            #expect(try JSONValue(parsing: missing.body)["errorCode"]?.stringValue == "ERR_DIRECT_INVOKE")
        }
    }

    @Test func publishedMessagesSurviveSubscriberSidecarCrash() async throws {
        let home = TestEnvironment.temporaryDirectory("mecha-pubsub")
        defer { TestEnvironment.remove(home) }
        let subscriptions = #"[{"pubsubname":"pubsub","topic":"orders","route":"/orders"}]"#
        let appB = try await TestAppHarness(directory: home, name: "b", subscriptions: subscriptions)
        let publisher = try await SidecarHarness(appID: "publisher", home: home)
        var subscriber = try await SidecarHarness(appID: "subscriber", appPort: appB.port, home: home, waitForHealthz: true)

        try await TestHTTP.with { http in
            func publish(_ range: ClosedRange<Int>) async throws {
                for n in range {
                    let response = try await http.post(port: publisher.httpPort, "/v1.0/publish/pubsub/orders", json: #"{"order":\#(n)}"#)
                    #expect(response.status == 204, "\(response.text)")
                }
            }
            func receivedOrders() async throws -> Set<Int> {
                let response = try await http.get(port: appB.port, "/test/received?path=/orders")
                let bodies = try JSONValue(parsing: response.body).arrayValues ?? []
                return Set(bodies.compactMap { body in
                    body.stringValue.flatMap { try? JSONValue(parsing: $0) }?["data"]?["order"]?.intValue
                })
            }
            func waitForOrders(_ expected: Set<Int>) async throws {
                let deadline = ContinuousClock.now + .seconds(30)
                while ContinuousClock.now < deadline {
                    if try await receivedOrders().isSuperset(of: expected) { return }
                    try await Task.sleep(for: .milliseconds(100))
                }
                let got = try await receivedOrders()
                Issue.record("missing orders: \(expected.subtracting(got).sorted())")
            }

            try await publish(1...5)
            try await waitForOrders(Set(1...5))

            // The subscriber's sidecar crashes; messages published meanwhile wait in the database.
            await subscriber.process.kill9()
            try await publish(6...15)
            subscriber = try await subscriber.restarted(logName: "subscriber-restarted", waitForHealthz: true)
            try await waitForOrders(Set(1...15))

            // Each delivery was a CloudEvent from the publisher.
            let bodies = try JSONValue(parsing: try await http.get(port: appB.port, "/test/received?path=/orders").body).arrayValues ?? []
            let first = try JSONValue(parsing: try #require(bodies.first?.stringValue))
            #expect(first["source"]?.stringValue == "publisher")
            #expect(first["type"]?.stringValue == "com.dapr.event.sent")
            #expect(first["pubsubname"]?.stringValue == "pubsub")
            #expect(first["topic"]?.stringValue == "orders")
            let headers = try JSONValue(parsing: try await http.get(port: appB.port, "/test/headers?path=/orders").body).arrayValues ?? []
            #expect(headers.first?["content-type"]?.stringValue == "application/cloudevents+json")
            #expect(headers.first?["pubsubname"]?.stringValue == "pubsub")
        }
    }

    @Test func statePersistsAcrossSidecarRestart() async throws {
        let home = TestEnvironment.temporaryDirectory("mecha-state")
        defer { TestEnvironment.remove(home) }
        let sidecar = try await SidecarHarness(appID: "keeper", home: home)
        try await TestHTTP.with { http in
            let saved = try await http.post(port: sidecar.httpPort, "/v1.0/state/statestore", json: #"[{"key":"k1","value":{"kept":true}}]"#)
            #expect(saved.status == 204)
            let before = try await http.get(port: sidecar.httpPort, "/v1.0/state/statestore/k1")
            let code = await sidecar.process.stop()
            #expect(code == 0, "graceful shutdown exit code")
            let again = try await sidecar.restarted(logName: "keeper-restarted")
            let after = try await http.get(port: again.httpPort, "/v1.0/state/statestore/k1")
            #expect(after.status == 200)
            #expect(after.text == #"{"kept":true}"#)
            #expect(after.header("etag") == before.header("etag"))
        }
    }

    @Test func cronInputBindingFires() async throws {
        let home = TestEnvironment.temporaryDirectory("mecha-cron")
        defer { TestEnvironment.remove(home) }
        let resources = home + "/resources"
        _ = TestEnvironment.makeDirectory(resources)
        try TestEnvironment.write(
            """
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: tick
            spec:
              type: bindings.cron
              version: v1
              metadata:
              - name: schedule
                value: "@every 1s"
            """,
            to: resources + "/cron.yaml"
        )
        let app = try await TestAppHarness(directory: home, name: "cron")
        let sidecar = try await SidecarHarness(appID: "ticker", appPort: app.port, home: home, resourcesPaths: [resources], waitForHealthz: true)
        try await TestHTTP.with { http in
            let response = try await http.waitFor(port: app.port, "/test/received?path=/tick", timeout: .seconds(10)) { response in
                ((try? JSONValue(parsing: response.body))?.arrayValues?.count ?? 0) >= 2
            }
            #expect(response.status == 200)
            let headers = try JSONValue(parsing: try await http.get(port: app.port, "/test/headers?path=/tick").body).arrayValues ?? []
            #expect(headers.first?["timezone"]?.stringValue == "Local")
            #expect(headers.first?["readtimeutc"]?.stringValue?.hasSuffix("+0000 UTC") == true)
        }
        withExtendedLifetime(sidecar) {}
    }
}

import Hummingbird
import MechaConfig
import MechaCore
import MechaSidecar
import MechaTesting
import NIOHTTP1
import Synchronization
import Testing

/// Delivery of published messages to the app: programmatic and declarative subscriptions, the
/// request the app receives, how its answer is interpreted, dead-letter topics and raw payloads.
@Suite struct SubscriptionDeliveryTests {
    static let resources = ["pubsub.yaml": RouteTest.sqlitePubSub()]

    // MARK: The request the app receives

    @Test func programmaticSubscriptionReceivesTheCloudEventWithDaprHeaders() async throws {
        let subscriptions = #"[{"pubsubname":"pubsub","topic":"orders","route":"/orders"}]"#
        try await RouteTest.withSubscriber(subscriptions: subscriptions, resources: Self.resources) { sidecar, app, http in
            let response = try await http.publish(sidecar, topic: "orders", body: #"{"order":1}"#, query: "metadata.foo=bar&metadata.ttlInSeconds=60")
            #expect(response.status == 204)
            let bodies = try await http.waitForReceived(app, "/orders")
            let event = try JSONValue(parsing: try #require(bodies.first))
            #expect(event["data"]?["order"]?.intValue == 1)
            #expect(event["topic"] == "orders")
            #expect(event["source"] == "testapp")
            let headers = try #require(try await http.receivedHeaders(app, "/orders").first)
            #expect(headers["content-type"] == "application/cloudevents+json")
            #expect(headers["pubsubname"] == "pubsub")
            // No trace context anywhere: daprd sends the all-zero traceparent.
            #expect(headers["traceparent"]?.stringValue == RouteTest.zeroTraceParent)
            #expect(headers["tracestate"] == nil)
            // Publish metadata travels with the message and arrives as headers.
            #expect(headers["foo"] == "bar")
            #expect(headers["ttlinseconds"] == "60")
            #expect(headers["dapr-api-token"] == nil)
        }
    }

    @Test func traceparentHeaderFollowsTheEvent() async throws {
        // The route is cleaned like Go's path.Clean.
        let subscriptions = #"[{"pubsubname":"pubsub","topic":"trace","route":"/trace//deep/./path/"}]"#
        try await RouteTest.withSubscriber(subscriptions: subscriptions, resources: Self.resources) { sidecar, app, http in
            let otherParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
            let cases: [(body: String, contentType: String, query: String, headers: [(String, String)], traceparent: String, tracestate: String?)] = [
                (#"{"n":0}"#, "application/json", "", [("traceparent", RouteTest.sampleTraceParent), ("tracestate", "a=b")], RouteTest.sampleTraceParent, "a=b"),
                (#"{"n":1}"#, "application/json", "metadata.cloudevent.traceid=not-a-traceparent&metadata.cloudevent.tracestate=x%3Dy", [], RouteTest.zeroTraceParent, nil),
                (#"{"n":2,"specversion":"1.0","traceid":"\#(otherParent)","data":{"n":2}}"#, "application/cloudevents+json", "", [], otherParent, nil),
                (#"{"n":3}"#, "application/json", "metadata.cloudevent.traceparent=00-00000000000000000000000000000000-b7ad6b7169203331-01", [], RouteTest.zeroTraceParent, nil),
            ]
            for item in cases {
                #expect(try await http.publish(sidecar, topic: "trace", body: item.body, contentType: item.contentType, query: item.query, headers: item.headers).status == 204)
            }
            let bodies = try await http.waitForReceived(app, "/trace/deep/path", count: cases.count)
            let headers = try await http.receivedHeaders(app, "/trace/deep/path")
            for (body, header) in zip(bodies, headers) {
                let event = try JSONValue(parsing: body)
                let n = try #require(event["data"]?["n"]?.intValue)
                #expect(header["traceparent"]?.stringValue == cases[n].traceparent, "case \(n)")
                #expect(header["tracestate"]?.stringValue == cases[n].tracestate, "case \(n)")
            }
        }
    }

    @Test func appAPITokenIsSentWithDeliveries() async throws {
        let subscriptions = #"[{"pubsubname":"pubsub","topic":"orders","route":"orders"}]"#
        try await RouteTest.withSubscriber(subscriptions: subscriptions, resources: Self.resources, environment: ["APP_API_TOKEN": "app-secret"]) { sidecar, app, http in
            #expect(try await http.publish(sidecar, topic: "orders", body: "{}").status == 204)
            // A route without a leading slash is delivered to "/orders".
            try await http.waitForReceived(app, "/orders")
            let headers = try await http.receivedHeaders(app, "/orders")
            #expect(headers.first?["dapr-api-token"] == "app-secret")
        }
    }

    @Test func rawPayloadSubscriptionGetsAWrapperAroundTheMessageBytes() async throws {
        let subscriptions = #"[{"pubsubname":"pubsub","topic":"raw","route":"/raw","metadata":{"rawPayload":"true"}}]"#
        try await RouteTest.withSubscriber(subscriptions: subscriptions, resources: Self.resources) { sidecar, app, http in
            #expect(try await http.publish(sidecar, topic: "raw", body: "plain bytes", contentType: "text/plain", query: "metadata.rawPayload=true").status == 204)
            #expect(try await http.publish(sidecar, topic: "raw", body: #"{"a":1}"#, headers: [("traceparent", RouteTest.sampleTraceParent)]).status == 204)
            let events = try await http.waitForEvents(app, "/raw", count: 2)
            let raw = try #require(events.first { $0["data_base64"]?.stringValue.flatMap(Base64.decode) == Array("plain bytes".utf8) })
            #expect(raw["datacontenttype"] == "application/octet-stream")
            #expect(raw["source"] == "Dapr")
            #expect(raw["type"] == "com.dapr.event.sent")
            #expect(raw["specversion"] == "1.0")
            #expect(raw["topic"] == "raw")
            #expect(raw["pubsubname"] == "pubsub")
            #expect(RouteTest.isUUIDv4(raw["id"]?.stringValue ?? ""))
            #expect(raw["time"] == nil)
            #expect(raw["data"] == nil)

            // A normally published message: the wrapper holds the publisher's whole CloudEvent.
            let wrapped = try #require(events.first { $0 != raw })
            let inner = try JSONValue(parsing: try #require(wrapped["data_base64"]?.stringValue.flatMap(Base64.decode)))
            #expect(inner["data"]?["a"]?.intValue == 1)
            #expect(inner["source"] == "testapp")
            #expect(inner["traceparent"]?.stringValue == RouteTest.sampleTraceParent)

            let headers = try await http.receivedHeaders(app, "/raw")
            #expect(headers.allSatisfy { $0["content-type"] == "application/cloudevents+json" })
            #expect(headers.allSatisfy { $0["pubsubname"] == "pubsub" })
        }
    }

    // MARK: The app's answer

    /// One subscription per answer, each on its own topic and path.
    static let answerSubscriptions = """
        [\(["success", "empty", "notjson", "array", "nullstatus", "nocontent", "drop", "notfound", "retry", "error", "lowercase", "teapot"].map {
            #"{"pubsubname":"pubsub","topic":"\#($0)","route":"/\#($0)"}"#
        }.joined(separator: ","))]
        """

    @Test func successfulAnswersAreDeliveredOnce() async throws {
        try await RouteTest.withSubscriber(subscriptions: Self.answerSubscriptions, resources: Self.resources) { sidecar, app, http in
            let answers: [(path: String, status: Int, body: String)] = [
                ("success", 200, #"{"status":"SUCCESS"}"#),
                ("empty", 200, ""),
                ("notjson", 200, "this is not json"),
                ("array", 201, "[1,2]"),
                ("nullstatus", 202, #"{"status":null}"#),
                ("nocontent", 204, ""),
                ("drop", 200, #"{"status":"DROP"}"#),
                ("notfound", 404, "gone"),
            ]
            for answer in answers {
                try await http.respond(app, "/" + answer.path, status: answer.status, body: answer.body)
                #expect(try await http.publish(sidecar, topic: answer.path, body: #"{"n":1}"#).status == 204)
            }
            for answer in answers {
                try await http.waitForReceived(app, "/" + answer.path)
            }
            // Several redelivery periods (100 ms) later, still exactly one delivery each.
            try await Task.sleep(for: .milliseconds(700))
            for answer in answers {
                let count = try await http.received(app, "/" + answer.path).count
                #expect(count == 1, "\(answer.path) (\(answer.status) \(answer.body)) delivered \(count) times")
            }
        }
    }

    @Test func failedAnswersAreRedeliveredUntilAccepted() async throws {
        try await RouteTest.withSubscriber(subscriptions: Self.answerSubscriptions, resources: Self.resources) { sidecar, app, http in
            let answers: [(path: String, status: Int, body: String)] = [
                ("retry", 200, #"{"status":"RETRY"}"#),
                ("error", 500, "boom"),
                ("lowercase", 200, #"{"status":"success"}"#),
                ("teapot", 418, ""),
            ]
            for answer in answers {
                try await http.respond(app, "/" + answer.path, status: answer.status, body: answer.body)
                #expect(try await http.publish(sidecar, topic: answer.path, body: #"{"n":\#(answer.status)}"#).status == 204)
            }
            for answer in answers {
                let bodies = try await http.waitForReceived(app, "/" + answer.path, count: 2)
                // The same event again.
                let ids = Set(bodies.compactMap { try? JSONValue(parsing: $0)["id"]?.stringValue })
                #expect(ids.count == 1, "\(answer.path): \(ids)")
            }
            // Once the app accepts, redelivery stops: the counts settle (redelivery backoff is at
            // most 400 ms here, so a quiet second means nothing is pending).
            for answer in answers {
                try await http.respond(app, "/" + answer.path, status: 200, body: #"{"status":"SUCCESS"}"#)
            }
            var stable = false
            for _ in 0..<10 where !stable {
                let settled = try await answers.asyncMap { try await http.received(app, "/" + $0.path).count }
                try await Task.sleep(for: .seconds(1))
                let later = try await answers.asyncMap { try await http.received(app, "/" + $0.path).count }
                stable = settled == later
            }
            #expect(stable, "deliveries kept coming after the app accepted them")
        }
    }

    @Test func messagesWaitWhileTheAppIsDown() async throws {
        // A transport error is retriable: the message is delivered once the app is back.
        let subscriptions = #"[{"pubsubname":"pubsub","topic":"orders","route":"/orders"}]"#
        try await RouteTest.withSubscriber(subscriptions: subscriptions, resources: Self.resources) { sidecar, app, http in
            await app.stop()
            #expect(try await http.publish(sidecar, topic: "orders", body: #"{"n":1}"#).status == 204)
            try await Task.sleep(for: .milliseconds(500))
            let directory = TestEnvironment.temporaryDirectory("mecha-app")
            defer { TestEnvironment.remove(directory) }
            let again = try await TestApp.start(directory: directory, name: "again", subscriptions: subscriptions, port: app.port)
            let events = try await http.waitForEvents(again, "/orders")
            #expect(events.first?["data"]?["n"]?.intValue == 1)
            await again.stop()
        }
    }

    // MARK: Dead letters

    @Test func droppedAndFailedMessagesGoToTheDeadLetterTopic() async throws {
        let subscriptions = """
            [{"pubsubname":"pubsub","topic":"dropped","route":"/dropped","deadLetterTopic":"poison"},
             {"pubsubname":"pubsub","topic":"missing","route":"/missing","deadLetterTopic":"poison"},
             {"pubsubname":"pubsub","topic":"failed","route":"/failed","deadLetterTopic":"poison"},
             {"pubsubname":"pubsub","topic":"unrouted","routes":{"rules":[{"match":"event.type == \\"never\\"","path":"/never"}]},"deadLetterTopic":"poison"},
             {"pubsubname":"pubsub","topic":"poison","route":"/poison"}]
            """
        try await RouteTest.withSubscriber(subscriptions: subscriptions, resources: Self.resources) { sidecar, app, http in
            try await http.respond(app, "/dropped", status: 200, body: #"{"status":"DROP"}"#)
            try await http.respond(app, "/missing", status: 404)
            try await http.respond(app, "/failed", status: 503)
            var published: [String: String] = [:]
            for topic in ["dropped", "missing", "failed", "unrouted"] {
                let id = "event-\(topic)"
                #expect(try await http.publish(sidecar, topic: topic, body: #"{"from":"\#(topic)"}"#, query: "metadata.cloudevent.id=\(id)&metadata.custom=kept").status == 204)
                published[topic] = id
            }
            let dead = try await http.waitForReceived(app, "/poison", count: 4)
            let events = try dead.map { try JSONValue(parsing: $0) }
            for (topic, id) in published {
                let event = try #require(events.first { $0["id"]?.stringValue == id }, "\(topic) not dead-lettered")
                // The original bytes: the CloudEvent still names the original topic.
                #expect(event["topic"]?.stringValue == topic)
                #expect(event["data"]?["from"]?.stringValue == topic)
                #expect(event["pubsubname"] == "pubsub")
            }
            // The original message metadata travels along.
            let headers = try await http.receivedHeaders(app, "/poison")
            #expect(headers.allSatisfy { $0["custom"] == "kept" })
            // A failed message goes to the dead-letter topic at once instead of being redelivered.
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await http.received(app, "/failed").count == 1)
            #expect(try await http.received(app, "/never").isEmpty)
            #expect(try await http.received(app, "/poison").count == 4)
        }
    }

    @Test func expiredCloudEventsAreDroppedToTheDeadLetterTopic() async throws {
        let subscriptions = """
            [{"pubsubname":"pubsub","topic":"orders","route":"/orders","deadLetterTopic":"expired"},
             {"pubsubname":"pubsub","topic":"plain","route":"/plain"},
             {"pubsubname":"pubsub","topic":"expired","route":"/expired","metadata":{"rawPayload":"true"}}]
            """
        try await RouteTest.withSubscriber(subscriptions: subscriptions, resources: Self.resources) { sidecar, app, http in
            let old = #"{"specversion":"1.0","id":"old","source":"s","type":"t","expiration":"2001-01-01T00:00:00Z","data":"late"}"#
            let fresh = #"{"specversion":"1.0","id":"fresh","source":"s","type":"t","expiration":"2999-01-01T00:00:00Z","data":"early"}"#
            for body in [old, fresh] {
                #expect(try await http.publish(sidecar, topic: "orders", body: body, contentType: "application/cloudevents+json").status == 204)
            }
            #expect(try await http.publish(sidecar, topic: "plain", body: old, contentType: "application/cloudevents+json").status == 204)
            #expect(try await http.waitForEvents(app, "/orders").map { $0["id"] } == ["fresh"])
            // The dead-letter copy is still expired, so it is read through a raw subscription.
            let dead = try await http.waitForEvents(app, "/expired")
            let inner = try dead.first?["data_base64"]?.stringValue.flatMap(Base64.decode).map { try JSONValue(parsing: $0) }
            #expect(inner?["id"] == "old")
            #expect(dead.count == 1)
            // Without a dead-letter topic an expired event is acknowledged and never delivered.
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await http.received(app, "/plain").isEmpty)
            #expect(try await http.received(app, "/orders").count == 1)
        }
    }

    @Test func undecodableMessagesGoToTheDeadLetterTopic() async throws {
        // A raw message is not a CloudEvent: a normal subscription cannot read it.
        let subscriptions = """
            [{"pubsubname":"pubsub","topic":"orders","route":"/orders","deadLetterTopic":"undecodable"},
             {"pubsubname":"pubsub","topic":"undecodable","route":"/undecodable","metadata":{"rawPayload":"true"}}]
            """
        try await RouteTest.withSubscriber(subscriptions: subscriptions, resources: Self.resources) { sidecar, app, http in
            #expect(try await http.publish(sidecar, topic: "orders", body: "not json at all", contentType: "text/plain", query: "metadata.rawPayload=true").status == 204)
            let dead = try await http.waitForEvents(app, "/undecodable")
            #expect(dead.first?["data_base64"]?.stringValue.flatMap(Base64.decode) == Array("not json at all".utf8))
            #expect(try await http.received(app, "/orders").isEmpty)
        }
    }

    @Test func deadLetterTopicDeniedByScopesKeepsTheMessage() async throws {
        // Publishing to the dead-letter topic is subject to publishingScopes; when it is refused the
        // message is handed back to the component (redelivered), as daprd returns the error.
        let resources = ["pubsub.yaml": RouteTest.sqlitePubSub(metadata: ["publishingScopes": "testapp=orders"])]
        let subscriptions = """
            [{"pubsubname":"pubsub","topic":"orders","route":"/orders","deadLetterTopic":"forbidden"},
             {"pubsubname":"pubsub","topic":"forbidden","route":"/forbidden"}]
            """
        try await RouteTest.withSubscriber(subscriptions: subscriptions, resources: resources) { sidecar, app, http in
            try await http.respond(app, "/orders", status: 200, body: #"{"status":"DROP"}"#)
            #expect(try await http.publish(sidecar, topic: "orders", body: #"{"n":1}"#).status == 204)
            try await http.waitForReceived(app, "/orders", count: 2)
            #expect(try await http.received(app, "/forbidden").isEmpty)
        }
    }

    @Test func subscribeEndpointRequestAndAnswers() async throws {
        let seen = Mutex<[[String: String]]>([])
        let delivered = Mutex<[String]>([])
        try await RouteTest.withInlineApp({ router in
            router.get("/dapr/subscribe") { request, _ in
                var headers: [String: String] = [:]
                for field in request.headers { headers[field.name.canonicalName] = field.value }
                seen.withLock { $0.append(headers) }
                return Response(
                    status: .ok,
                    headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: #"[{"pubsubname":"pubsub","topic":"t","route":"/t"}]"#))
                )
            }
            router.post("/t") { request, _ in
                let body = try await request.body.collect(upTo: 1 << 20)
                delivered.withLock { $0.append(String(buffer: body)) }
                return Response(status: .ok)
            }
        }) { port in
            try await InProcessSidecar.with(appID: "inline", appPort: port, resources: Self.resources, environment: ["APP_API_TOKEN": "tok"]) { sidecar in
                #expect(await sidecar.sidecar.waitUntilHealthy(timeout: .seconds(15)))
                let headers = try #require(seen.withLock { $0.first })
                #expect(headers["content-type"] == "application/json")
                #expect(headers["dapr-app-id"] == "inline")
                #expect(headers["dapr-api-token"] == "tok")
                // Asked once.
                #expect(seen.withLock { $0.count } == 1)
                try await TestHTTP.with { http in
                    #expect(try await http.publish(sidecar, topic: "t", body: #"{"n":1}"#).status == 204)
                    let deadline = ContinuousClock.now + .seconds(10)
                    while delivered.withLock({ $0.isEmpty }) && ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    #expect(delivered.withLock { $0.count } == 1)
                }
            }
        }
    }

    @Test(arguments: [(404, ""), (500, "oops"), (200, ""), (200, "null"), (200, "[]")])
    func subscribeEndpointWithoutSubscriptions(status: Int, body: String) async throws {
        try await RouteTest.withInlineApp({ router in
            router.get("/dapr/subscribe") { _, _ in
                Response(status: .init(code: status), body: .init(byteBuffer: ByteBuffer(string: body)))
            }
        }) { port in
            try await InProcessSidecar.with(appID: "inline", appPort: port, resources: Self.resources) { sidecar in
                #expect(await sidecar.sidecar.waitUntilHealthy(timeout: .seconds(15)))
                try await TestHTTP.with { http in
                    let metadata = try await http.get(port: sidecar.httpPort, "/v1.0/metadata").jsonBody
                    #expect((metadata["subscriptions"]?.arrayValues ?? []).isEmpty)
                }
            }
        }
    }

    @Test func programmaticSubscriptionKeysAndDuplicates() async throws {
        // Keys are matched case-insensitively (Go decoding); a later entry for the same topic wins.
        let subscriptions = """
            [{"PubsubName":"pubsub","TOPIC":"orders","Route":"/first"},
             {"pubsubname":"pubsub","topic":"orders","route":"/second"},
             {"pubsubname":"pubsub","topic":"noroutes"},
             {"pubsubname":"missing","topic":"orders","route":"/missing"}]
            """
        try await RouteTest.withSubscriber(subscriptions: subscriptions, resources: Self.resources) { sidecar, app, http in
            #expect(try await http.publish(sidecar, topic: "orders", body: #"{"n":1}"#).status == 204)
            #expect(try await http.publish(sidecar, topic: "noroutes", body: #"{"n":1}"#).status == 204)
            #expect(try await http.waitForEvents(app, "/second").count == 1)
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await http.received(app, "/first").isEmpty)
            #expect(try await http.received(app, "/").isEmpty)
            #expect(try await http.received(app, "/missing").isEmpty)
            let listed = try await http.get(port: sidecar.httpPort, "/v1.0/metadata").jsonBody["subscriptions"]?.arrayValues ?? []
            #expect(listed.filter { $0["topic"] == "orders" && $0["pubsubname"] == "pubsub" }.count == 1)
            #expect(!listed.contains { $0["topic"] == "noroutes" })
        }
    }

    // MARK: Routing rules

    @Test func routingRulesPickTheFirstMatchingPath() async throws {
        let subscriptions = #"""
            [{"pubsubname":"pubsub","topic":"orders","routes":{"rules":[
                {"match":"event.type == \"widget\"","path":"/widgets"},
                {"match":"has(event.data.priority) && event.data.priority > 5","path":"/urgent"},
                {"match":"event.type == 'widget' || event.type == 'gadget'","path":"/gadgets"},
                {"match":"has(event.data.kind) && event.data.kind.startsWith('x') && size(event.data.tags) == 2","path":"/xtags"}
              ],"default":"/orders-default"}},
             {"pubsubname":"pubsub","topic":"strict","routes":{"rules":[{"match":"event.data.important == true","path":"/important"}]}},
             {"pubsubname":"pubsub","topic":"shadow","routes":{"rules":[
                {"match":"event.type == \"com.dapr.event.sent\"","path":"/type"},
                {"match":"","path":"/catchall"},
                {"match":"true","path":"/never-reached"}
              ],"default":"/shadow-default"}},
             {"pubsubname":"pubsub","topic":"legacy","route":"/legacy-route","routes":{"rules":[{"match":"event.data.v == 2","path":"/v2"}]}},
             {"pubsubname":"pubsub","topic":"both","route":"/ignored","routes":{"default":"/both-default"}}]
            """#
        try await RouteTest.withSubscriber(subscriptions: subscriptions, resources: Self.resources) { sidecar, app, http in
            func publish(_ topic: String, _ body: String, type: String? = nil) async throws {
                let query = type.map { "metadata.cloudevent.type=\($0)" } ?? ""
                let response = try await http.publish(sidecar, topic: topic, body: body, query: query)
                #expect(response.status == 204)
            }
            try await publish("orders", #"{"n":"widget","priority":9}"#, type: "widget")  // first rule wins over the second
            try await publish("orders", #"{"n":"urgent","priority":7}"#)
            try await publish("orders", #"{"n":"gadget","priority":1}"#, type: "gadget")
            try await publish("orders", #"{"n":"xtags","kind":"xyz","tags":["a","b"],"priority":0}"#)
            try await publish("orders", #"{"n":"default","priority":1}"#)
            try await publish("strict", #"{"n":"important","important":true}"#)
            try await publish("strict", #"{"n":"unimportant","important":false}"#)  // no match, no default: dropped
            try await publish("shadow", #"{"n":"typed"}"#)
            try await publish("shadow", #"{"n":"other"}"#, type: "other")
            try await publish("legacy", #"{"n":"v2","v":2}"#)
            try await publish("legacy", #"{"n":"v1","v":1}"#)  // `route` is the default when routes.default is empty
            try await publish("both", #"{"n":"both"}"#)  // routes.default wins over route

            func names(_ path: String, count: Int = 1) async throws -> [String] {
                try await http.waitForEvents(app, path, count: count).compactMap { $0["data"]?["n"]?.stringValue }
            }
            #expect(try await names("/widgets") == ["widget"])
            #expect(try await names("/urgent") == ["urgent"])
            #expect(try await names("/gadgets") == ["gadget"])
            #expect(try await names("/xtags") == ["xtags"])
            #expect(try await names("/orders-default") == ["default"])
            #expect(try await names("/important") == ["important"])
            #expect(try await names("/type") == ["typed"])
            #expect(try await names("/catchall") == ["other"])
            #expect(try await names("/v2") == ["v2"])
            #expect(try await names("/legacy-route") == ["v1"])
            #expect(try await names("/both-default") == ["both"])
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await http.received(app, "/important").count == 1)
            #expect(try await http.received(app, "/never-reached").isEmpty)
            #expect(try await http.received(app, "/shadow-default").isEmpty)
            #expect(try await http.received(app, "/ignored").isEmpty)
            #expect(try await http.received(app, "/widgets").count == 1)
        }
    }

    @Test func routeEvaluationErrorIsNotAMatch() async throws {
        // `event.data.missing` on an event without that key is an evaluation error, which Dapr does
        // not treat as false: the message goes to the dead-letter topic, not to the default route.
        let subscriptions = #"""
            [{"pubsubname":"pubsub","topic":"orders","routes":{"rules":[{"match":"event.data.missing == 1","path":"/missing"}],"default":"/default"},"deadLetterTopic":"dlq"},
             {"pubsubname":"pubsub","topic":"dlq","route":"/dlq"}]
            """#
        try await RouteTest.withSubscriber(subscriptions: subscriptions, resources: Self.resources) { sidecar, app, http in
            #expect(try await http.publish(sidecar, topic: "orders", body: #"{"present":1}"#).status == 204)
            #expect(try await http.publish(sidecar, topic: "orders", body: #"{"missing":1}"#).status == 204)
            let dead = try await http.waitForEvents(app, "/dlq")
            #expect(dead.first?["data"]?["present"]?.intValue == 1)
            let matched = try await http.waitForEvents(app, "/missing")
            #expect(matched.first?["data"]?["missing"]?.intValue == 1)
            #expect(try await http.received(app, "/default").isEmpty)
        }
    }

    // MARK: Declarative subscriptions

    static let declarativeResources: [String: String] = [
        "pubsub.yaml": RouteTest.sqlitePubSub(),
        "v1.yaml": """
            apiVersion: dapr.io/v1alpha1
            kind: Subscription
            metadata:
              name: v1-orders
            spec:
              topic: v1orders
              route: /v1orders
              pubsubname: pubsub
              deadLetterTopic: v1dead
            scopes:
            - testapp
            ---
            apiVersion: dapr.io/v1alpha1
            kind: Subscription
            metadata:
              name: v1-dead
            spec:
              topic: v1dead
              route: /v1dead
              pubsubname: pubsub
            """,
        "v2.yaml": """
            apiVersion: dapr.io/v2alpha1
            kind: Subscription
            metadata:
              name: v2-orders
            spec:
              topic: v2orders
              pubsubname: pubsub
              routes:
                rules:
                - match: event.type == "widget"
                  path: /v2widgets
                - match: has(event.data.size) && event.data.size > 10
                  path: /v2large
                default: /v2default
            """,
        "raw.yaml": """
            apiVersion: dapr.io/v2alpha1
            kind: Subscription
            metadata:
              name: raw
            spec:
              topic: rawdecl
              pubsubname: pubsub
              routes:
                default: /rawdecl
              metadata:
                rawPayload: "true"
            """,
        "scoped.yaml": """
            apiVersion: dapr.io/v1alpha1
            kind: Subscription
            metadata:
              name: someone-else
            spec:
              topic: notmine
              route: /notmine
              pubsubname: pubsub
            scopes:
            - otherapp
            """,
        "replaced.yaml": """
            apiVersion: dapr.io/v2alpha1
            kind: Subscription
            metadata:
              name: replaced
            spec:
              topic: shared
              pubsubname: pubsub
              routes:
                default: /declarative-shared
            """,
    ]

    @Test func declarativeSubscriptionsDeliver() async throws {
        let programmatic = #"[{"pubsubname":"pubsub","topic":"shared","route":"/programmatic-shared"}]"#
        try await RouteTest.withSubscriber(subscriptions: programmatic, resources: Self.declarativeResources) { sidecar, app, http in
            #expect(try await http.publish(sidecar, topic: "v1orders", body: #"{"n":"v1"}"#).status == 204)
            #expect(try await http.publish(sidecar, topic: "v2orders", body: #"{"n":"widget","size":100}"#, query: "metadata.cloudevent.type=widget").status == 204)
            #expect(try await http.publish(sidecar, topic: "v2orders", body: #"{"n":"large","size":100}"#).status == 204)
            #expect(try await http.publish(sidecar, topic: "v2orders", body: #"{"n":"small","size":1}"#).status == 204)
            #expect(try await http.publish(sidecar, topic: "rawdecl", body: "raw!", contentType: "text/plain", query: "metadata.rawPayload=true").status == 204)
            #expect(try await http.publish(sidecar, topic: "notmine", body: "{}").status == 204)
            #expect(try await http.publish(sidecar, topic: "shared", body: #"{"n":"shared"}"#).status == 204)

            #expect(try await http.waitForEvents(app, "/v1orders").first?["data"]?["n"] == "v1")
            #expect(try await http.waitForEvents(app, "/v2widgets").first?["data"]?["n"] == "widget")
            #expect(try await http.waitForEvents(app, "/v2large").first?["data"]?["n"] == "large")
            #expect(try await http.waitForEvents(app, "/v2default").first?["data"]?["n"] == "small")
            let raw = try await http.waitForEvents(app, "/rawdecl")
            #expect(raw.first?["data_base64"]?.stringValue.flatMap(Base64.decode) == Array("raw!".utf8))
            // The programmatic subscription replaces the declarative one for the same topic.
            #expect(try await http.waitForEvents(app, "/programmatic-shared").first?["data"]?["n"] == "shared")

            // v1alpha1 deadLetterTopic works too.
            try await http.respond(app, "/v1orders", status: 200, body: #"{"status":"DROP"}"#)
            #expect(try await http.publish(sidecar, topic: "v1orders", body: #"{"n":"dropped"}"#).status == 204)
            #expect(try await http.waitForEvents(app, "/v1dead").first?["data"]?["n"] == "dropped")

            try await Task.sleep(for: .milliseconds(300))
            #expect(try await http.received(app, "/notmine").isEmpty)
            #expect(try await http.received(app, "/declarative-shared").isEmpty)

            // The metadata API lists what is in effect: the scoped-out subscription is absent.
            let metadata = try await http.get(port: sidecar.httpPort, "/v1.0/metadata").jsonBody
            let listed = metadata["subscriptions"]?.arrayValues ?? []
            let topics = Set(listed.compactMap { $0["topic"]?.stringValue })
            #expect(topics.isSuperset(of: ["v1orders", "v1dead", "v2orders", "rawdecl", "shared"]))
            #expect(!topics.contains("notmine"))
            #expect(listed.filter { $0["topic"] == "shared" }.count == 1)
        }
    }

    @Test func declarativeRuleWithBareMatchAlwaysMatches() async throws {
        var resources = Self.resources
        resources["bare.yaml"] = """
            apiVersion: dapr.io/v2alpha1
            kind: Subscription
            metadata:
              name: bare
            spec:
              topic: bare
              pubsubname: pubsub
              routes:
                rules:
                - match:
                  path: /bare-rule
                - match: event.type == "never"
                  path: /bare-never
                default: /bare-default
            """
        // A resource the loader refuses would stop the sidecar from starting at all.
        guard Self.loads(resources["bare.yaml"]!) else { return }
        try await RouteTest.withSubscriber(subscriptions: "[]", resources: resources) { sidecar, app, http async throws in
            #expect(try await http.publish(sidecar, topic: "bare", body: #"{"n":1}"#).status == 204)
            #expect(try await http.waitForEvents(app, "/bare-rule").count == 1)
            #expect(try await http.received(app, "/bare-default").isEmpty)
        }
    }

    @Test func declarativeSubscriptionWithoutRoutesDropsEverything() async throws {
        // daprd keeps a v2alpha1 subscription with neither rules nor a default: it matches nothing,
        // so every message is dropped (and dead-lettered when a dead-letter topic is set).
        var resources = Self.resources
        resources["empty.yaml"] = """
            apiVersion: dapr.io/v2alpha1
            kind: Subscription
            metadata:
              name: empty
            spec:
              topic: empty
              pubsubname: pubsub
              routes: {}
              deadLetterTopic: emptydead
            """
        let subscriptions = #"[{"pubsubname":"pubsub","topic":"emptydead","route":"/emptydead"}]"#
        _ = try ResourceLoader.load(text: resources["empty.yaml"]!, file: "empty.yaml")
        try await RouteTest.withSubscriber(subscriptions: subscriptions, resources: resources) { sidecar, app, http async throws in
            #expect(try await http.publish(sidecar, topic: "empty", body: #"{"n":1}"#).status == 204)
            #expect(try await http.waitForEvents(app, "/emptydead").first?["topic"] == "empty")
        }
    }

    /// Whether the resource loader accepts `yaml`; records an issue when it does not.
    static func loads(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        do {
            _ = try ResourceLoader.load(text: yaml, file: "subscription.yaml")
            return true
        } catch {
            Issue.record("the resource loader refuses a subscription daprd accepts: \(error)", sourceLocation: sourceLocation)
            return false
        }
    }

    // MARK: Scopes

    @Test func subscriptionScopesOnTheComponentLimitTopics() async throws {
        let resources = [
            "pubsub.yaml": RouteTest.sqlitePubSub(metadata: ["subscriptionScopes": "testapp=allowed;other=denied"]),
            "protected.yaml": RouteTest.sqlitePubSub(name: "protected", metadata: ["protectedTopics": "secret"]),
            "limited.yaml": RouteTest.sqlitePubSub(name: "limited", metadata: ["allowedTopics": "open"]),
        ]
        let subscriptions = """
            [{"pubsubname":"pubsub","topic":"allowed","route":"/allowed"},
             {"pubsubname":"pubsub","topic":"denied","route":"/denied"},
             {"pubsubname":"protected","topic":"secret","route":"/secret"},
             {"pubsubname":"protected","topic":"public","route":"/public"},
             {"pubsubname":"limited","topic":"open","route":"/open"},
             {"pubsubname":"limited","topic":"closed","route":"/closed"}]
            """
        try await RouteTest.withSubscriber(subscriptions: subscriptions, resources: resources) { sidecar, app, http in
            // Publishing is not limited by subscription scopes (only allowedTopics is shared).
            #expect(try await http.publish(sidecar, topic: "denied", body: #"{"n":1}"#).status == 204)
            #expect(try await http.publish(sidecar, pubsub: "protected", topic: "secret", body: #"{"n":1}"#).status == 403)
            #expect(try await http.publish(sidecar, pubsub: "limited", topic: "closed", body: #"{"n":1}"#).status == 403)
            #expect(try await http.publish(sidecar, topic: "allowed", body: #"{"n":1}"#).status == 204)
            #expect(try await http.publish(sidecar, pubsub: "protected", topic: "public", body: #"{"n":1}"#).status == 204)
            #expect(try await http.publish(sidecar, pubsub: "limited", topic: "open", body: #"{"n":1}"#).status == 204)
            try await http.waitForReceived(app, "/allowed")
            try await http.waitForReceived(app, "/public")
            try await http.waitForReceived(app, "/open")
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await http.received(app, "/denied").isEmpty)
        }
    }

    // MARK: Expiry

    @Test func expiredMessagesAreNotRedelivered() async throws {
        // The TTL leaves room for two deliveries on a loaded machine; the test then waits past it.
        let subscriptions = #"[{"pubsubname":"pubsub","topic":"ttl","route":"/ttl"}]"#
        try await RouteTest.withSubscriber(subscriptions: subscriptions, resources: Self.resources) { sidecar, app, http in
            try await http.respond(app, "/ttl", status: 200, body: #"{"status":"RETRY"}"#)
            let published = ContinuousClock.now
            #expect(try await http.publish(sidecar, topic: "ttl", body: #"{"n":1}"#, query: "metadata.ttlInSeconds=4").status == 204)
            try await http.waitForReceived(app, "/ttl", count: 2)
            try await Task.sleep(until: published + .milliseconds(4600))
            try await http.respond(app, "/ttl", status: 200)
            // A delivery that started before the expiry may still land; count after it settles. The
            // next attempt of the backoff (1 s, 2 s, 4 s…) would come about 7 s after publishing.
            try await Task.sleep(for: .milliseconds(1500))
            let expired = try await http.received(app, "/ttl").count
            try await Task.sleep(for: .seconds(3))
            #expect(try await http.received(app, "/ttl").count == expired, "an expired message was delivered again")
        }
    }

    // MARK: in-memory

    @Test func inMemoryPubSubDeliversAndRedelivers() async throws {
        let resources = ["memory.yaml": RouteTest.inMemoryPubSub(name: "memory")]
        let subscriptions = #"[{"pubsubname":"memory","topic":"orders","route":"/orders"},{"pubsubname":"memory","topic":"orders2","route":"/orders2"}]"#
        try await RouteTest.withSubscriber(subscriptions: subscriptions, resources: resources) { sidecar, app, http in
            for n in 1...5 {
                #expect(try await http.publish(sidecar, pubsub: "memory", topic: "orders", body: #"{"n":\#(n)}"#).status == 204)
            }
            let events = try await http.waitForEvents(app, "/orders", count: 5)
            // Delivery is serial per subscription, in publish order.
            #expect(events.compactMap { $0["data"]?["n"]?.intValue } == [1, 2, 3, 4, 5])
            #expect(events.allSatisfy { $0["pubsubname"] == "memory" })
            // Mecha's in-memory broker redelivers what the app did not accept (Dapr's loses it).
            try await http.respond(app, "/orders2", status: 500)
            #expect(try await http.publish(sidecar, pubsub: "memory", topic: "orders2", body: #"{"n":1}"#).status == 204)
            try await http.waitForReceived(app, "/orders2", count: 2)
        }
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}

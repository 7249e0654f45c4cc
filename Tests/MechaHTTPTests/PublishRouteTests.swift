import MechaCore
import MechaTesting
import NIOHTTP1
import Testing

/// `POST|PUT /v1.0/publish/{pubsub}/{topic}`: the CloudEvent envelope daprd builds, pass-through
/// CloudEvents, raw payloads, overrides, tracing fields and the error answers. Envelopes are observed
/// where an app receives them (a subscriber behind the same sidecar), byte for byte.
@Suite struct PublishRouteTests {
    static let subscriptions = """
        [{"pubsubname":"pubsub","topic":"envelope","route":"/envelope"},
         {"pubsubname":"pubsub","topic":"raw","route":"/raw","metadata":{"rawPayload":"true"}},
         {"pubsubname":"pubsub","topic":"a/b/c","route":"/slashes"}]
        """

    /// Publishes to topic `envelope` and returns the CloudEvent the app received (the `n`th).
    static func roundTrip(
        _ http: TestHTTP,
        _ sidecar: InProcessSidecar,
        _ app: TestApp,
        body: [UInt8],
        contentType: String?,
        query: String = "",
        headers: [(String, String)] = [],
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> (event: JSONValue, raw: String) {
        let before = try await http.received(app, "/envelope").count
        var all = headers
        if let contentType { all.append(("content-type", contentType)) }
        let response = try await http.request(
            .POST,
            port: sidecar.httpPort,
            "/v1.0/publish/pubsub/envelope" + (query.isEmpty ? "" : "?" + query),
            headers: all,
            body: body
        )
        #expect(response.status == 204, "\(response.text)", sourceLocation: sourceLocation)
        #expect(response.body.isEmpty, sourceLocation: sourceLocation)
        let bodies = try await http.waitForReceived(app, "/envelope", count: before + 1, sourceLocation: sourceLocation)
        let raw = try #require(bodies.count > before ? bodies[before] : nil, sourceLocation: sourceLocation)
        return (try JSONValue(parsing: raw), raw)
    }

    static func withPublisher(_ body: (InProcessSidecar, TestApp, TestHTTP) async throws -> Void) async throws {
        try await RouteTest.withSubscriber(subscriptions: Self.subscriptions, body)
    }

    // MARK: Envelope

    @Test func jsonPayloadIsWrappedInDaprCloudEvent() async throws {
        try await Self.withPublisher { sidecar, app, http in
            let (event, raw) = try await Self.roundTrip(http, sidecar, app, body: Array(#"{"orderId": 42, "b": [1.50, true], "a": null}"#.utf8), contentType: "application/json")
            #expect(RouteTest.isUUIDv4(event["id"]?.stringValue ?? ""), "id: \(event["id"] ?? .null)")
            #expect(event["source"] == "testapp")
            #expect(event["type"] == "com.dapr.event.sent")
            #expect(event["specversion"] == "1.0")
            #expect(event["datacontenttype"] == "application/json")
            #expect(event["topic"] == "envelope")
            #expect(event["pubsubname"] == "pubsub")
            #expect(event["traceid"] == "")
            #expect(event["traceparent"] == "")
            #expect(event["tracestate"] == "")
            #expect(RouteTest.isRFC3339Seconds(event["time"]?.stringValue ?? ""), "time: \(event["time"] ?? .null)")
            #expect(event["data"]?["orderId"]?.intValue == 42)
            #expect(event["data"]?["b"] == [.number("1.50"), true])
            #expect(event["data"]?["a"] == .null)
            #expect(event["data_base64"] == nil)
            #expect(event["subject"] == nil)
            #expect(event["expiration"] == nil)
            // Go marshals the map with sorted keys.
            let keys = event.objectMembers?.map(\.0) ?? []
            #expect(keys == keys.sorted(), "keys: \(keys)")
            #expect(keys.sorted() == ["data", "datacontenttype", "id", "pubsubname", "source", "specversion", "time", "topic", "traceid", "traceparent", "tracestate", "type"])
            // Numbers keep their text.
            #expect(raw.contains("1.50"))
        }
    }

    @Test func missingContentTypeDefaultsToTextPlain() async throws {
        try await Self.withPublisher { sidecar, app, http in
            let (event, _) = try await Self.roundTrip(http, sidecar, app, body: Array(#"{"not":"parsed"}"#.utf8), contentType: nil)
            #expect(event["datacontenttype"] == "text/plain")
            #expect(event["data"] == #"{"not":"parsed"}"#)

            let (empty, _) = try await Self.roundTrip(http, sidecar, app, body: Array("hello".utf8), contentType: "")
            #expect(empty["datacontenttype"] == "text/plain")
            #expect(empty["data"] == "hello")
        }
    }

    @Test func contentTypeIsKeptVerbatimAndDecidesDataEncoding() async throws {
        try await Self.withPublisher { sidecar, app, http in
            // JSON with parameters: still JSON, type stored as sent.
            let (charset, _) = try await Self.roundTrip(http, sidecar, app, body: Array(#"{"x":1}"#.utf8), contentType: "application/json; charset=utf-8")
            #expect(charset["datacontenttype"] == "application/json; charset=utf-8")
            #expect(charset["data"]?["x"]?.intValue == 1)

            // JSON type but not JSON: the body as a string.
            let (broken, _) = try await Self.roundTrip(http, sidecar, app, body: Array("not json {".utf8), contentType: "application/json")
            #expect(broken["data"] == "not json {")

            // JSON type, empty body: an empty string.
            let (empty, _) = try await Self.roundTrip(http, sidecar, app, body: [], contentType: "Application/JSON")
            #expect(empty["data"] == "")
            #expect(empty["datacontenttype"] == "Application/JSON")

            // A JSON string body stays a JSON string value.
            let (string, _) = try await Self.roundTrip(http, sidecar, app, body: Array(#""quoted""#.utf8), contentType: "application/json")
            #expect(string["data"] == "quoted")

            // Binary: data_base64 and no data key.
            let (binary, _) = try await Self.roundTrip(http, sidecar, app, body: [0, 1, 2, 0xFF, 0xFE], contentType: "application/octet-stream")
            #expect(binary["data_base64"] == "AAEC//4=")
            #expect(binary["data"] == nil)
            #expect(binary["datacontenttype"] == "application/octet-stream")

            // Unknown and text types: the body as a string, even when it looks like JSON.
            let (custom, _) = try await Self.roundTrip(http, sidecar, app, body: Array(#"{"status": "completed"}"#.utf8), contentType: "foo/bar")
            #expect(custom["data"] == #"{"status": "completed"}"#)
            #expect(custom["datacontenttype"] == "foo/bar")

            let (xml, _) = try await Self.roundTrip(http, sidecar, app, body: Array("<a>1</a>".utf8), contentType: "application/xml")
            #expect(xml["data"] == "<a>1</a>")

            // `+json` suffixes are not JSON for Dapr.
            let (problem, _) = try await Self.roundTrip(http, sidecar, app, body: Array(#"{"p":1}"#.utf8), contentType: "application/problem+json")
            #expect(problem["data"] == #"{"p":1}"#)
        }
    }

    @Test func cloudEventOverridesFromMetadata() async throws {
        try await Self.withPublisher { sidecar, app, http in
            let query = [
                "metadata.cloudevent.id=my-id",
                "metadata.cloudevent.source=my-source",
                "metadata.cloudevent.type=my.type",
                "metadata.cloudevent.subject=my-subject",
                "metadata.cloudevent.traceid=my-traceid",
                "metadata.cloudevent.tracestate=k%3Dv",
                // Ignored: topic, pubsub name, content type and data cannot be overridden.
                "metadata.cloudevent.topic=other",
                "metadata.cloudevent.pubsub=other",
                "metadata.cloudevent.datacontenttype=text/csv",
                "metadata.cloudevent.data=xyz",
            ].joined(separator: "&")
            let (event, _) = try await Self.roundTrip(http, sidecar, app, body: Array(#"{"a":1}"#.utf8), contentType: "application/json", query: query)
            #expect(event["id"] == "my-id")
            #expect(event["source"] == "my-source")
            #expect(event["type"] == "my.type")
            #expect(event["subject"] == "my-subject")
            #expect(event["traceid"] == "my-traceid")
            #expect(event["traceparent"] == "my-traceid")
            #expect(event["tracestate"] == "k=v")
            #expect(event["topic"] == "envelope")
            #expect(event["pubsubname"] == "pubsub")
            #expect(event["datacontenttype"] == "application/json")
            #expect(event["data"]?["a"]?.intValue == 1)
            #expect(event["specversion"] == "1.0")

            // cloudevent.traceparent wins over cloudevent.traceid for both fields.
            let (both, _) = try await Self.roundTrip(
                http, sidecar, app, body: Array("x".utf8), contentType: "text/plain",
                query: "metadata.cloudevent.traceid=tid&metadata.cloudevent.traceparent=tp"
            )
            #expect(both["traceid"] == "tp")
            #expect(both["traceparent"] == "tp")

            // An empty subject adds nothing.
            let (noSubject, _) = try await Self.roundTrip(http, sidecar, app, body: Array("x".utf8), contentType: "text/plain", query: "metadata.cloudevent.subject=")
            #expect(noSubject["subject"] == nil)
        }
    }

    @Test func ttlMetadataIsAcceptedAndBadValuesAreIgnored() async throws {
        try await Self.withPublisher { sidecar, app, http in
            for query in ["metadata.ttlInSeconds=60", "metadata.TTLINSECONDS=60", "metadata.ttl=1m", "metadata.ttlInSeconds=abc", "metadata.ttlInSeconds=-5", "metadata.ttl=0"] {
                let (event, _) = try await Self.roundTrip(http, sidecar, app, body: Array(#"{"q":1}"#.utf8), contentType: "application/json", query: query)
                #expect(event["data"]?["q"]?.intValue == 1, "\(query)")
                // pubsub.sqlite enforces TTLs itself, so no `expiration` is added to the envelope.
                #expect(event["expiration"] == nil, "\(query)")
            }
        }
    }

    @Test func traceContextOfThePublishRequestIsRecorded() async throws {
        try await Self.withPublisher { sidecar, app, http in
            let (event, _) = try await Self.roundTrip(
                http, sidecar, app, body: Array("x".utf8), contentType: "text/plain",
                headers: [("traceparent", RouteTest.sampleTraceParent), ("tracestate", "congo=t61rcWkgMzE")]
            )
            #expect(event["traceid"]?.stringValue == RouteTest.sampleTraceParent)
            #expect(event["traceparent"]?.stringValue == RouteTest.sampleTraceParent)
            #expect(event["tracestate"] == "congo=t61rcWkgMzE")
            let headers = try await http.receivedHeaders(app, "/envelope")
            #expect(headers.last?["traceparent"]?.stringValue == RouteTest.sampleTraceParent)
            #expect(headers.last?["tracestate"] == "congo=t61rcWkgMzE")
        }
    }

    @Test func cloudEventsJSONPassesThroughWithTopicAndPubsubOverwritten() async throws {
        try await Self.withPublisher { sidecar, app, http in
            let sent = #"{"specversion":"1.0","id":"ce-1","source":"elsewhere","type":"order.created","topic":"wrong","pubsubname":"wrong","datacontenttype":"application/json","data":{"n":1},"time":"2021-01-01T00:00:00Z","custom":"kept","traceid":"given"}"#
            let (event, _) = try await Self.roundTrip(
                http, sidecar, app, body: Array(sent.utf8), contentType: "application/cloudevents+json",
                query: "metadata.cloudevent.id=ignored&metadata.cloudevent.type=ignored"
            )
            #expect(event["id"] == "ce-1")
            #expect(event["source"] == "elsewhere")
            #expect(event["type"] == "order.created")
            #expect(event["topic"] == "envelope")
            #expect(event["pubsubname"] == "pubsub")
            #expect(event["time"] == "2021-01-01T00:00:00Z")
            #expect(event["custom"] == "kept")
            #expect(event["data"]?["n"]?.intValue == 1)
            #expect(event["datacontenttype"] == "application/json")
            // traceid present: left alone, and traceparent is not added.
            #expect(event["traceid"] == "given")
            #expect(event["traceparent"] == nil)
            #expect(event["tracestate"] == "")

            // A bare object: Dapr fills source/type/specversion/time/trace fields, but no id and no
            // datacontenttype; the source is "Dapr", not the app id.
            let (minimal, _) = try await Self.roundTrip(
                http, sidecar, app, body: Array(#"{"data":"x","source":null}"#.utf8), contentType: "application/cloudevents+json; charset=utf-8",
                headers: [("traceparent", RouteTest.sampleTraceParent)]
            )
            #expect(minimal["source"] == "Dapr")
            #expect(minimal["type"] == "com.dapr.event.sent")
            #expect(minimal["specversion"] == "1.0")
            #expect(minimal["id"] == nil)
            #expect(minimal["datacontenttype"] == nil)
            #expect(RouteTest.isRFC3339Seconds(minimal["time"]?.stringValue ?? ""))
            #expect(minimal["traceid"]?.stringValue == RouteTest.sampleTraceParent)
            #expect(minimal["traceparent"]?.stringValue == RouteTest.sampleTraceParent)
            #expect(minimal["topic"] == "envelope")
            let keys = minimal.objectMembers?.map(\.0) ?? []
            #expect(keys == keys.sorted())
        }
    }

    @Test func cloudEventsJSONThatIsNotAnObjectIs500() async throws {
        try await InProcessSidecar.with { sidecar in
            try await TestHTTP.with { http in
                for body in ["[1,2]", "not json", "\"text\""] {
                    let response = try await http.publish(sidecar, topic: "t", body: body, contentType: "application/cloudevents+json")
                    #expect(response.status == 500)
                    #expect(response.jsonBody["errorCode"] == "ERR_PUBSUB_CLOUD_EVENTS_SER")
                    #expect(response.jsonBody["message"] == "cannot create cloudevent")
                    let reasons = response.jsonBody["details"]?.arrayValues?.compactMap { $0["reason"]?.stringValue }
                    #expect(reasons == ["DAPR_PUBSUB_CLOUD_EVENT_CREATION"])
                }
            }
        }
    }

    // MARK: Raw payloads, routes, verbs

    @Test func rawPayloadPublishesTheBodyUnwrapped() async throws {
        try await Self.withPublisher { sidecar, app, http in
            let body = #"{"not":"a cloudevent"}"#
            for value in ["true", "True", "1", "t"] {
                let response = try await http.publish(sidecar, topic: "raw", body: body, query: "metadata.rawPayload=\(value)")
                #expect(response.status == 204, "\(response.text)")
            }
            let events = try await http.waitForEvents(app, "/raw", count: 4)
            for event in events {
                // The raw subscriber's wrapper carries exactly the published bytes.
                #expect(event["data_base64"]?.stringValue.flatMap(Base64.decode).map { String(decoding: $0, as: UTF8.self) } == body)
            }
            // rawPayload=false and empty are a normal envelope.
            let wrapped = try await http.publish(sidecar, topic: "raw", body: body, query: "metadata.rawPayload=false")
            #expect(wrapped.status == 204)
            let next = try await http.waitForEvents(app, "/raw", count: 5)
            let inner = try JSONValue(parsing: try #require(next.last?["data_base64"]?.stringValue.flatMap(Base64.decode)))
            #expect(inner["source"] == "testapp")
            #expect(inner["data"]?["not"] == "a cloudevent")
        }
    }

    @Test func invalidRawPayloadIs400() async throws {
        try await InProcessSidecar.with { sidecar in
            try await TestHTTP.with { http in
                let response = try await http.publish(sidecar, topic: "t", body: "x", query: "metadata.rawPayload=yes&metadata.other=1")
                #expect(response.status == 400)
                #expect(response.jsonBody["errorCode"] == "ERR_PUBSUB_REQUEST_METADATA")
                #expect(response.jsonBody["message"] == "failed deserializing metadata. Error: rawPayload value must be a valid boolean: actual is 'yes'")
                let details = response.jsonBody["details"]?.arrayValues ?? []
                #expect(details.count == 2)
                #expect(details.first?["@type"] == "type.googleapis.com/google.rpc.ResourceInfo")
                #expect(details.first?["resource_name"] == "pubsub")
                #expect(details.first?["resource_type"] == "pubsub")
                #expect(details.last?["@type"] == "type.googleapis.com/google.rpc.ErrorInfo")
                #expect(details.last?["reason"] == "DAPR_PUBSUB_METADATA_DESERIALIZATION")
                #expect(details.last?["metadata"]?["rawPayload"] == "yes")
                #expect(details.last?["metadata"]?["other"] == "1")
            }
        }
    }

    @Test func topicMayContainSlashesAndPutIsAccepted() async throws {
        try await Self.withPublisher { sidecar, app, http in
            let post = try await http.publish(sidecar, topic: "a/b/c", body: "one", contentType: "text/plain")
            #expect(post.status == 204)
            let put = try await http.request(.PUT, port: sidecar.httpPort, "/v1.0/publish/pubsub/a%2Fb%2Fc", headers: [("content-type", "text/plain")], body: Array("two".utf8))
            #expect(put.status == 204)
            let events = try await http.waitForEvents(app, "/slashes", count: 2)
            #expect(Set(events.compactMap { $0["data"]?.stringValue }) == ["one", "two"])
            #expect(events.allSatisfy { $0["topic"] == "a/b/c" })
        }
    }

    // MARK: Errors

    @Test func unknownPubsubIs404() async throws {
        try await InProcessSidecar.with { sidecar in
            try await TestHTTP.with { http in
                let response = try await http.publish(sidecar, pubsub: "nope", topic: "t", body: "{}", query: "metadata.k=v")
                #expect(response.status == 404)
                #expect(response.header("content-type") == "application/json")
                #expect(response.jsonBody["errorCode"] == "ERR_PUBSUB_NOT_FOUND")
                #expect(response.jsonBody["message"] == "pubsub nope is not found")
                let details = response.jsonBody["details"]?.arrayValues ?? []
                #expect(details.count == 1)
                #expect(details.first?["reason"] == "DAPR_PUBSUB_NOT_FOUND")
                #expect(details.first?["domain"] == "dapr.io")
                #expect(details.first?["metadata"]?["k"] == "v")
            }
        }
    }

    @Test func emptyTopicIs404AndMissingTopicIsNotARoute() async throws {
        try await InProcessSidecar.with { sidecar in
            try await TestHTTP.with { http in
                let empty = try await http.request(.POST, port: sidecar.httpPort, "/v1.0/publish/pubsub/", body: Array("x".utf8))
                #expect(empty.status == 404)
                #expect(empty.jsonBody["errorCode"] == "ERR_TOPIC_NAME_EMPTY")
                #expect(empty.jsonBody["message"] == "topic is empty in pubsub pubsub")
                #expect(empty.jsonBody["details"]?.arrayValues?.last?["reason"] == "DAPR_PUBSUB_TOPIC_NAME_EMPTY")

                // Unknown pubsub is checked before the topic.
                let both = try await http.request(.POST, port: sidecar.httpPort, "/v1.0/publish/nope/", body: Array("x".utf8))
                #expect(both.status == 404)
                #expect(both.jsonBody["errorCode"] == "ERR_PUBSUB_NOT_FOUND")

                let noTopic = try await http.request(.POST, port: sidecar.httpPort, "/v1.0/publish/pubsub", body: Array("x".utf8))
                #expect(noTopic.status == 404)
                #expect(noTopic.jsonBody["errorCode"] != "ERR_TOPIC_NAME_EMPTY")

                // GET is not a publish route.
                let get = try await http.get(port: sidecar.httpPort, "/v1.0/publish/pubsub/t")
                #expect(get.status == 404)
            }
        }
    }

    /// publishingScopes, allowedTopics and protectedTopics, each on its own component.
    @Test func scopesForbidPublishingWith403() async throws {
        let resources = [
            "scoped.yaml": RouteTest.inMemoryPubSub(name: "scoped", metadata: ["publishingScopes": "testapp=t1,t2;other=t3"]),
            "unlisted.yaml": RouteTest.inMemoryPubSub(name: "unlisted", metadata: ["publishingScopes": "other=t3"]),
            "denyall.yaml": RouteTest.inMemoryPubSub(name: "denyall", metadata: ["publishingScopes": "testapp="]),
            "allowed.yaml": RouteTest.inMemoryPubSub(name: "allowed", metadata: ["allowedTopics": "t1, t2"]),
            "protected.yaml": RouteTest.inMemoryPubSub(name: "protected", metadata: ["protectedTopics": "A,B"]),
            "granted.yaml": RouteTest.inMemoryPubSub(name: "granted", metadata: ["protectedTopics": "A,B", "publishingScopes": "testapp=A;app2=B"]),
            "both.yaml": RouteTest.inMemoryPubSub(name: "both", metadata: ["allowedTopics": "t1", "publishingScopes": "testapp=t1,t2"]),
        ]
        try await InProcessSidecar.with(resources: resources) { sidecar in
            try await TestHTTP.with { http in
                let cases: [(pubsub: String, topic: String, allowed: Bool)] = [
                    ("scoped", "t1", true), ("scoped", "t2", true), ("scoped", "t3", false), ("scoped", "t4", false),
                    ("unlisted", "t3", true), ("unlisted", "anything", true),
                    ("denyall", "t1", false),
                    ("allowed", "t1", true), ("allowed", "t2", true), ("allowed", "t3", false),
                    ("protected", "A", false), ("protected", "B", false), ("protected", "C", true),
                    ("granted", "A", true), ("granted", "B", false), ("granted", "C", false),
                    ("both", "t1", true), ("both", "t2", false),
                ]
                for (pubsub, topic, allowed) in cases {
                    let response = try await http.publish(sidecar, pubsub: pubsub, topic: topic, body: "{}")
                    if allowed {
                        #expect(response.status == 204, "\(pubsub)/\(topic): \(response.text)")
                    } else {
                        #expect(response.status == 403, "\(pubsub)/\(topic): \(response.status)")
                        #expect(response.jsonBody["errorCode"] == "ERR_PUBSUB_FORBIDDEN")
                        #expect(response.jsonBody["message"]?.stringValue == "topic \(topic) is not allowed for app id testapp")
                        #expect(response.jsonBody["details"]?.arrayValues?.last?["reason"] == "DAPR_PUBSUB_FORBIDDEN")
                    }
                }
                // Scopes are checked after the envelope is built: a bad CloudEvent is a 500 first.
                let badEvent = try await http.publish(sidecar, pubsub: "scoped", topic: "t3", body: "[]", contentType: "application/cloudevents+json")
                #expect(badEvent.status == 500)
                #expect(badEvent.jsonBody["errorCode"] == "ERR_PUBSUB_CLOUD_EVENTS_SER")
                let badRaw = try await http.publish(sidecar, pubsub: "scoped", topic: "t3", body: "x", query: "metadata.rawPayload=nope")
                #expect(badRaw.status == 400)
                // Bulk publishing is checked the same way.
                let bulk = try await http.post(port: sidecar.httpPort, "/v1.0-alpha1/publish/bulk/scoped/t3", json: #"[{"entryId":"1","event":"x","contentType":"text/plain"}]"#)
                #expect(bulk.status == 403)
                #expect(bulk.jsonBody["errorCode"] == "ERR_PUBSUB_FORBIDDEN")
            }
        }
    }

    @Test func publishWithNoSubscriberSucceeds() async throws {
        try await InProcessSidecar.with(resources: ["memory.yaml": RouteTest.inMemoryPubSub(name: "memory")]) { sidecar in
            try await TestHTTP.with { http in
                let response = try await http.publish(sidecar, pubsub: "memory", topic: "nobody-listens", body: #"{"a":1}"#)
                #expect(response.status == 204)
                #expect(response.body.isEmpty)
            }
        }
    }
}

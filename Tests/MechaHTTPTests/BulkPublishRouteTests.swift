import MechaCore
import MechaTesting
import NIOHTTP1
import Testing

/// Bulk publish: `/v1.0-alpha1/publish/bulk/{pubsub}/{topic}` and `/v1.0/publish/bulk/…`.
@Suite struct BulkPublishRouteTests {
    static let subscriptions = """
        [{"pubsubname":"pubsub","topic":"bulk","route":"/bulk"},
         {"pubsubname":"pubsub","topic":"rawbulk","route":"/rawbulk","metadata":{"rawPayload":"true"}},
         {"pubsubname":"memory","topic":"bulk","route":"/memory"}]
        """
    static let resources = [
        "pubsub.yaml": RouteTest.sqlitePubSub(),
        "memory.yaml": RouteTest.inMemoryPubSub(name: "memory"),
    ]

    @Test(arguments: ["/v1.0-alpha1/publish/bulk", "/v1.0/publish/bulk"])
    func entriesAreWrappedByContentType(prefix: String) async throws {
        try await RouteTest.withSubscriber(subscriptions: Self.subscriptions, resources: Self.resources) { sidecar, app, http in
            let entries = """
                [{"entryId":"1","event":"plain text","contentType":"text/plain"},
                 {"entryId":"2","event":{"n":2,"nested":{"x":[1,2]}},"contentType":"application/json"},
                 {"entryId":"3","event":"AAEC/w==","contentType":"application/octet-stream"},
                 {"entryId":"4","event":{"specversion":"1.0","id":"ce-4","source":"s","type":"t","topic":"other","data":"d"},"contentType":"application/cloudevents+json"},
                 {"entryId":"5","event":"<x/>","contentType":"application/xml"},
                 {"entryID":"6","EVENT":"case-insensitive keys","ContentType":"text/csv","unknown":true}]
                """
            let response = try await http.post(port: sidecar.httpPort, "\(prefix)/pubsub/bulk", json: entries)
            #expect(response.status == 204, "\(response.text)")
            #expect(response.body.isEmpty)
            let events = try await http.waitForEvents(app, "/bulk", count: 6)
            func event(where predicate: (JSONValue) -> Bool) -> JSONValue? { events.first(where: predicate) }

            let text = try #require(event { $0["datacontenttype"] == "text/plain" })
            #expect(text["data"] == "plain text")
            #expect(text["source"] == "testapp")
            #expect(text["topic"] == "bulk")
            #expect(text["pubsubname"] == "pubsub")
            #expect(RouteTest.isUUIDv4(text["id"]?.stringValue ?? ""))

            let json = try #require(event { $0["datacontenttype"] == "application/json" })
            #expect(json["data"]?["n"]?.intValue == 2)
            #expect(json["data"]?["nested"]?["x"] == [1, 2])

            let binary = try #require(event { $0["datacontenttype"] == "application/octet-stream" })
            #expect(binary["data_base64"] == "AAEC/w==")
            #expect(binary["data"] == nil)

            let cloudEvent = try #require(event { $0["id"] == "ce-4" })
            #expect(cloudEvent["topic"] == "bulk")
            #expect(cloudEvent["pubsubname"] == "pubsub")
            #expect(cloudEvent["source"] == "s")
            #expect(cloudEvent["data"] == "d")

            #expect(event { $0["datacontenttype"] == "application/xml" }?["data"] == "<x/>")
            #expect(event { $0["datacontenttype"] == "text/csv" }?["data"] == "case-insensitive keys")
        }
    }

    @Test func entryMetadataIsMergedOnlyWhenPresent() async throws {
        try await RouteTest.withSubscriber(subscriptions: Self.subscriptions, resources: Self.resources) { sidecar, app, http in
            let entries = """
                [{"entryId":"own","event":"a","contentType":"text/plain","metadata":{"cloudevent.type":"own.type"}},
                 {"entryId":"inherits","event":"b","contentType":"text/plain","metadata":{}},
                 {"entryId":"none","event":"c","contentType":"text/plain"}]
                """
            let response = try await http.post(
                port: sidecar.httpPort,
                "/v1.0-alpha1/publish/bulk/pubsub/bulk?metadata.cloudevent.type=request.type&metadata.cloudevent.source=request.source",
                json: entries
            )
            #expect(response.status == 204, "\(response.text)")
            let events = try await http.waitForEvents(app, "/bulk", count: 3)
            let byData = Dictionary(events.map { ($0["data"]?.stringValue ?? "", $0) }, uniquingKeysWith: { a, _ in a })
            #expect(byData["a"]?["type"] == "own.type")
            #expect(byData["a"]?["source"] == "request.source")
            #expect(byData["b"]?["type"] == "request.type")
            #expect(byData["b"]?["source"] == "request.source")
            #expect(byData["c"]?["type"] == "com.dapr.event.sent")
            #expect(byData["c"]?["source"] == "testapp")
        }
    }

    @Test func rawPayloadEntriesAreNotWrapped() async throws {
        try await RouteTest.withSubscriber(subscriptions: Self.subscriptions, resources: Self.resources) { sidecar, app, http in
            let entries = #"[{"entryId":"1","event":{"k":"v"},"contentType":"application/json"},{"entryId":"2","event":"hi","contentType":"text/plain"}]"#
            let response = try await http.post(port: sidecar.httpPort, "/v1.0-alpha1/publish/bulk/pubsub/rawbulk?metadata.rawPayload=true", json: entries)
            #expect(response.status == 204, "\(response.text)")
            let events = try await http.waitForEvents(app, "/rawbulk", count: 2)
            let payloads = Set(events.compactMap { $0["data_base64"]?.stringValue.flatMap(Base64.decode).map { String(decoding: $0, as: UTF8.self) } })
            #expect(payloads == [#"{"k":"v"}"#, "hi"])
        }
    }

    @Test func componentsWithoutNativeBulkPublishGetEveryEntry() async throws {
        try await RouteTest.withSubscriber(subscriptions: Self.subscriptions, resources: Self.resources) { sidecar, app, http in
            let entries = (1...5).map { #"{"entryId":"e\#($0)","event":{"n":\#($0)},"contentType":"application/json"}"# }.joined(separator: ",")
            let response = try await http.request(.PUT, port: sidecar.httpPort, "/v1.0-alpha1/publish/bulk/memory/bulk", body: Array("[\(entries)]".utf8))
            #expect(response.status == 204, "\(response.text)")
            let events = try await http.waitForEvents(app, "/memory", count: 5)
            #expect(Set(events.compactMap { $0["data"]?["n"]?.intValue }) == Set(1...5))
            #expect(events.allSatisfy { $0["pubsubname"] == "memory" })
        }
    }

    @Test func otherErrors() async throws {
        try await InProcessSidecar.with { sidecar in
            try await TestHTTP.with { http in
                let unknown = try await http.post(port: sidecar.httpPort, "/v1.0-alpha1/publish/bulk/nope/t", json: "[]")
                #expect(unknown.status == 404)
                #expect(unknown.jsonBody["errorCode"] == "ERR_PUBSUB_NOT_FOUND")

                let emptyTopic = try await http.post(port: sidecar.httpPort, "/v1.0-alpha1/publish/bulk/pubsub/", json: "[]")
                #expect(emptyTopic.status == 404)
                #expect(emptyTopic.jsonBody["errorCode"] == "ERR_TOPIC_NAME_EMPTY")

                let rawPayload = try await http.post(port: sidecar.httpPort, "/v1.0-alpha1/publish/bulk/pubsub/t?metadata.rawPayload=maybe", json: "[]")
                #expect(rawPayload.status == 400)
                #expect(rawPayload.jsonBody["errorCode"] == "ERR_PUBSUB_REQUEST_METADATA")

                // A cloudevents+json entry must be an object.
                let notObject = try await http.post(
                    port: sidecar.httpPort,
                    "/v1.0-alpha1/publish/bulk/pubsub/t",
                    json: #"[{"entryId":"1","event":"just a string","contentType":"application/cloudevents+json"}]"#
                )
                #expect(notObject.status == 500)
                #expect(notObject.jsonBody["errorCode"] == "ERR_PUBSUB_CLOUD_EVENTS_SER")
                #expect(notObject.jsonBody["message"] == "cannot create cloudevent")

                // GET is not a bulk publish route.
                let get = try await http.get(port: sidecar.httpPort, "/v1.0-alpha1/publish/bulk/pubsub/t")
                #expect(get.status == 404)
            }
        }
    }

    @Test func emptyArrayIs204() async throws {
        try await InProcessSidecar.with { sidecar in
            try await TestHTTP.with { http in
                let response = try await http.post(port: sidecar.httpPort, "/v1.0-alpha1/publish/bulk/pubsub/t", json: "[]")
                #expect(response.status == 204)
            }
        }
    }

    @Test func malformedRequestsAre400() async throws {
        try await InProcessSidecar.with { sidecar in
            try await TestHTTP.with { http in
                let path = "/v1.0-alpha1/publish/bulk/pubsub/orders"
                func check(_ body: String, code: String, message: String, reason: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
                    let response = try await http.post(port: sidecar.httpPort, path, json: body)
                    #expect(response.status == 400, "\(response.text)", sourceLocation: sourceLocation)
                    #expect(response.jsonBody["errorCode"]?.stringValue == code, sourceLocation: sourceLocation)
                    #expect(response.jsonBody["message"]?.stringValue == message, sourceLocation: sourceLocation)
                    #expect(response.jsonBody["details"]?.arrayValues?.last?["reason"]?.stringValue == reason, sourceLocation: sourceLocation)
                }
                try await check(
                    #"{"entryId":"1"}"#,
                    code: "ERR_PUBSUB_EVENTS_SER",
                    message: "error when unmarshaling the request for topic orders pubsub pubsub: json: cannot unmarshal object into Go value of type []http.bulkPublishMessageEntry",
                    reason: "DAPR_PUBSUB_UNMARSHAL_EVENTS"
                )
                let duplicated = "error marshaling events to bytes for topic orders pubsub pubsub. error: entryId is duplicated or not present for entry"
                try await check(
                    #"[{"entryId":"1","event":"a","contentType":"text/plain"},{"entryId":"1","event":"b","contentType":"text/plain"}]"#,
                    code: "ERR_PUBSUB_EVENTS_SER", message: duplicated, reason: "DAPR_PUBSUB_MARSHAL_EVENTS"
                )
                try await check(
                    #"[{"event":"a","contentType":"text/plain"}]"#,
                    code: "ERR_PUBSUB_EVENTS_SER", message: duplicated, reason: "DAPR_PUBSUB_MARSHAL_EVENTS"
                )
                try await check(
                    #"[{"entryId":"","event":"a","contentType":"text/plain"}]"#,
                    code: "ERR_PUBSUB_EVENTS_SER", message: duplicated, reason: "DAPR_PUBSUB_MARSHAL_EVENTS"
                )
                let mismatch = "error when marshalling cloud event envelope for topic orders pubsub pubsub: error: mismatch between contentType and event"
                // A missing content type, or a text type with a non-string event.
                try await check(#"[{"entryId":"1","event":"a"}]"#, code: "ERR_PUBSUB_EVENTS_SER", message: mismatch, reason: "DAPR_PUBSUB_MARSHAL_ENVELOPE")
                try await check(#"[{"entryId":"1","event":{"a":1},"contentType":"text/plain"}]"#, code: "ERR_PUBSUB_EVENTS_SER", message: mismatch, reason: "DAPR_PUBSUB_MARSHAL_ENVELOPE")
                try await check(#"[{"entryId":"1","event":"a","contentType":"foo/bar"}]"#, code: "ERR_PUBSUB_EVENTS_SER", message: mismatch, reason: "DAPR_PUBSUB_MARSHAL_ENVELOPE")
                try await check(#"[{"entryId":"1","event":5,"contentType":"application/octet-stream"}]"#, code: "ERR_PUBSUB_EVENTS_SER", message: mismatch, reason: "DAPR_PUBSUB_MARSHAL_ENVELOPE")
                // The content check comes before the entryId check.
                try await check(#"[{"event":{"a":1},"contentType":"text/plain"}]"#, code: "ERR_PUBSUB_EVENTS_SER", message: mismatch, reason: "DAPR_PUBSUB_MARSHAL_ENVELOPE")
                let badBase64 = try await http.post(port: sidecar.httpPort, path, json: #"[{"entryId":"1","event":"%%%","contentType":"application/octet-stream"}]"#)
                #expect(badBase64.status == 400)
                #expect(badBase64.jsonBody["message"]?.stringValue?.hasPrefix("error when marshalling cloud event envelope for topic orders pubsub pubsub: error: unable to decode base64 application/octect-stream data: ") == true)

                let notJSON = try await http.post(port: sidecar.httpPort, path, json: "[{")
                #expect(notJSON.status == 400)
                #expect(notJSON.jsonBody["errorCode"] == "ERR_PUBSUB_EVENTS_SER")
            }
        }
    }
}

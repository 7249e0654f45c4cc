import Hummingbird
import MechaCore
import MechaSidecar
import MechaTesting
import NIOCore
import Synchronization
import Testing

/// Bulk subscribe over HTTP: the runtime batches messages (by count, or by time after a batch's
/// first message), groups them by route path and posts each group as one
/// `com.dapr.event.sent.bulk` request; the app answers per entry (daprd's default bulk subscriber
/// and HTTP postman; notes/pubsub.md §6).
@Suite struct BulkSubscribeTests {
    static func resources(pubsub: [String: String] = [:], extra: [String: String] = [:]) -> [String: String] {
        var resources = ["pubsub.yaml": RouteTest.sqlitePubSub(metadata: pubsub)]
        for (name, text) in extra { resources[name] = text }
        return resources
    }

    static func bulk(_ topic: String = "orders", route: String = "/bulk", count: Int, awaitMs: Int, extra: String = "") -> String {
        #"{"pubsubname":"pubsub","topic":"\#(topic)","route":"\#(route)","bulkSubscribe":{"enabled":true,"maxMessagesCount":\#(count),"maxAwaitDurationMs":\#(awaitMs)}\#(extra)}"#
    }

    /// Publishes `events` (JSON objects) to `topic` in one bulk publish (one pubsub.sqlite transaction).
    static func publish(_ http: TestHTTP, _ sidecar: InProcessSidecar, topic: String = "orders", _ events: [String], metadata: [Int: String] = [:]) async throws {
        let entries = events.enumerated().map { index, event in
            #"{"entryId":"\#(index)","event":\#(event),"contentType":"application/json"\#(metadata[index].map { #","metadata":\#($0)"# } ?? "")}"#
        }
        let response = try await http.post(port: sidecar.httpPort, "/v1.0-alpha1/publish/bulk/pubsub/\(topic)", json: "[" + entries.joined(separator: ",") + "]")
        #expect(response.status == 204, "\(response.text)")
    }

    // MARK: Batching

    @Test func programmaticBatchesFillUpToMaxMessagesCount() async throws {
        let subscriptions = "[" + Self.bulk(count: 3, awaitMs: 60_000) + "]"
        try await BulkApp.run(subscriptions: subscriptions, resources: Self.resources()) { sidecar, app, http in
            try await Self.publish(http, sidecar, (1...6).map { #"{"n":\#($0)}"# }, metadata: [0: #"{"k":"v"}"#])
            // The await window is a minute: only the count can flush these.
            let requests = try await app.waitForRequests("/bulk", entries: 6)
            #expect(requests.count == 2)
            #expect(requests.map(\.entries.count) == [3, 3])
            #expect(Set(requests.flatMap(\.numbers)) == Set(1...6))

            let request = try #require(requests.first)
            #expect(request.headers["content-type"] == "application/json")
            #expect(request.headers["pubsubname"] == "pubsub")
            let body = request.body
            #expect(body.objectMembers?.map(\.0) == ["entries", "id", "metadata", "pubsubname", "topic", "type"])
            #expect(body["type"] == "com.dapr.event.sent.bulk")
            #expect(body["topic"] == "orders")
            #expect(body["pubsubname"] == "pubsub")
            #expect(body["metadata"] == .object([("pubsubName", "pubsub")]))
            #expect(RouteTest.isUUIDv4(body["id"]?.stringValue ?? ""))
            #expect(requests[0].body["id"] != requests[1].body["id"])
            for entry in requests.flatMap(\.entries) {
                #expect(entry.objectMembers?.map(\.0) == ["contentType", "entryId", "event", "metadata"])
                #expect(RouteTest.isUUIDv4(entry["entryId"]?.stringValue ?? ""))
                #expect(entry["contentType"] == "application/cloudevents+json")
                // The whole CloudEvent, as a single delivery would carry it.
                #expect(entry["event"]?["type"] == "com.dapr.event.sent")
                #expect(entry["event"]?["topic"] == "orders")
                #expect(entry["event"]?["datacontenttype"] == "application/json")
                if entry["event"]?["data"]?["n"]?.intValue == 1 {
                    #expect(entry["metadata"] == .object([("k", "v")]))
                } else {
                    #expect(entry["metadata"] == .null)
                }
            }
            try await Task.sleep(for: .milliseconds(400))
            #expect(app.requests("/bulk").flatMap(\.numbers).count == 6)

            // Listed in the metadata API as any programmatic subscription.
            let listed = try await http.get(port: sidecar.httpPort, "/v1.0/metadata").jsonBody["subscriptions"]?.arrayValues ?? []
            let subscription = try #require(listed.first { $0["topic"] == "orders" })
            #expect(subscription["type"] == "PROGRAMMATIC")
            #expect(subscription["rules"]?.arrayValues?.first?["path"] == "/bulk")
        }
    }

    @Test func declarativeBatchesAreFlushedAfterMaxAwaitDuration() async throws {
        let subscription = """
            apiVersion: dapr.io/v2alpha1
            kind: Subscription
            metadata:
              name: bulk-orders
            spec:
              pubsubname: pubsub
              topic: orders
              routes:
                default: /bulk
              bulkSubscribe:
                enabled: true
                maxMessagesCount: 100
                maxAwaitDurationMs: 600
            """
        try await BulkApp.run(subscriptions: "[]", resources: Self.resources(extra: ["subscription.yaml": subscription])) { sidecar, app, http in
            let started = ContinuousClock.now
            try await Self.publish(http, sidecar, [#"{"n":1}"#, #"{"n":2}"#])
            try await Task.sleep(for: .milliseconds(300))
            #expect(app.requests("/bulk").isEmpty, "flushed before the await window ended")
            let requests = try await app.waitForRequests("/bulk", entries: 2)
            let elapsed = ContinuousClock.now - started
            #expect(requests.count == 1)
            #expect(Set(requests.first?.numbers ?? []) == [1, 2])
            #expect(elapsed >= .milliseconds(550), "flushed after \(elapsed)")

            // The next message starts a new window.
            try await Self.publish(http, sidecar, [#"{"n":3}"#])
            let later = try await app.waitForRequests("/bulk", entries: 3)
            #expect(later.count == 2)
            #expect(later.last?.numbers == [3])

            let listed = try await http.get(port: sidecar.httpPort, "/v1.0/metadata").jsonBody["subscriptions"]?.arrayValues ?? []
            let entry = try #require(listed.first { $0["topic"] == "orders" })
            #expect(entry["type"] == "DECLARATIVE")
            #expect(entry["pubsubname"] == "pubsub")
        }
    }

    @Test func batchSizeIsCappedByTheComponentConcurrency() async throws {
        // pubsub.sqlite hands over at most `concurrency` messages at once: batches of 2, by time.
        let subscriptions = "[" + Self.bulk(count: 10, awaitMs: 300) + "]"
        try await BulkApp.run(subscriptions: subscriptions, resources: Self.resources(pubsub: ["concurrency": "2"])) { sidecar, app, http in
            try await Self.publish(http, sidecar, (1...4).map { #"{"n":\#($0)}"# })
            let requests = try await app.waitForRequests("/bulk", entries: 4)
            #expect(requests.map(\.entries.count) == [2, 2])
        }
    }

    @Test func inMemoryPubSubHandsOverOneMessageAtATime() async throws {
        // pubsub.in-memory delivers serially: every batch holds one message, sent when its window
        // ends (as daprd with in-memory).
        let subscriptions = "[" + Self.bulk(count: 10, awaitMs: 150) + "]"
        try await BulkApp.run(subscriptions: subscriptions, resources: ["pubsub.yaml": RouteTest.inMemoryPubSub()]) { sidecar, app, http in
            try await Self.publish(http, sidecar, [#"{"n":1}"#, #"{"n":2}"#])
            let requests = try await app.waitForRequests("/bulk", entries: 2)
            #expect(requests.map(\.entries.count) == [1, 1])
            #expect(requests.flatMap(\.numbers) == [1, 2])
        }
    }

    @Test func entriesAreGroupedByRoutePath() async throws {
        let subscriptions = #"""
            [{"pubsubname":"pubsub","topic":"orders","routes":{"rules":[{"match":"event.data.kind == \"a\"","path":"/a"}],"default":"/other"},
              "bulkSubscribe":{"enabled":true,"maxMessagesCount":4,"maxAwaitDurationMs":60000}}]
            """#
        try await BulkApp.run(subscriptions: subscriptions, resources: Self.resources()) { sidecar, app, http in
            try await Self.publish(http, sidecar, [#"{"n":1,"kind":"a"}"#, #"{"n":2,"kind":"b"}"#, #"{"n":3,"kind":"a"}"#, #"{"n":4,"kind":"c"}"#])
            let a = try await app.waitForRequests("/a", entries: 2)
            let other = try await app.waitForRequests("/other", entries: 2)
            #expect(a.count == 1)
            #expect(other.count == 1)
            #expect(Set(a.first?.numbers ?? []) == [1, 3])
            #expect(Set(other.first?.numbers ?? []) == [2, 4])
        }
    }

    // MARK: The app's answer

    @Test func eachEntryGetsItsOwnStatus() async throws {
        let subscriptions = "[" + Self.bulk(count: 5, awaitMs: 300) + "]"
        try await BulkApp.run(subscriptions: subscriptions, resources: Self.resources()) { sidecar, app, http in
            try await Self.publish(
                http,
                sidecar,
                [
                    #"{"n":1,"answer":"SUCCESS"}"#, #"{"n":2,"answer":"RETRY_ONCE"}"#, #"{"n":3,"answer":"DROP"}"#,
                    #"{"n":4,"answer":"OMIT_ONCE"}"#, #"{"n":5,"answer":"EMPTY_ONCE"}"#,
                ]
            )
            // RETRY, a missing entry and an empty status are redelivered; SUCCESS and DROP are not.
            try await app.waitForRequests("/bulk", entries: 8)
            try await Task.sleep(for: .milliseconds(800))
            let seen = app.requests("/bulk").flatMap(\.numbers)
            #expect(seen.filter { $0 == 1 }.count == 1)
            #expect(seen.filter { $0 == 2 }.count == 2)
            #expect(seen.filter { $0 == 3 }.count == 1)
            #expect(seen.filter { $0 == 4 }.count == 2)
            #expect(seen.filter { $0 == 5 }.count == 2)
            #expect(app.requests("/bulk").first?.entries.count == 5)
        }
    }

    @Test func deadLetterTopicTakesDroppedAndFailedEntries() async throws {
        let subscriptions =
            "[" + Self.bulk(count: 3, awaitMs: 300, extra: #","deadLetterTopic":"dead""#)
            + #",{"pubsubname":"pubsub","topic":"dead","route":"/dead"}]"#
        try await BulkApp.run(subscriptions: subscriptions, resources: Self.resources()) { sidecar, app, http in
            try await Self.publish(http, sidecar, [#"{"n":1,"answer":"SUCCESS"}"#, #"{"n":2,"answer":"DROP"}"#, #"{"n":3,"answer":"RETRY"}"#])
            let dead = try await app.waitForSingle("/dead", count: 2)
            // The original CloudEvent, still naming the original topic.
            #expect(Set(dead.compactMap { $0["data"]?["n"]?.intValue }) == [2, 3])
            #expect(dead.allSatisfy { $0["topic"] == "orders" })
            try await Task.sleep(for: .milliseconds(600))
            // Dead-lettered entries are settled: never redelivered to the app.
            #expect(app.requests("/bulk").flatMap(\.numbers).sorted() == [1, 2, 3])
            #expect(app.single("/dead").count == 2)
        }
    }

    @Test func failedRequestsRetryEveryEntryAndA404DropsThem() async throws {
        let subscriptions =
            "[" + Self.bulk(count: 2, awaitMs: 200) + "," + Self.bulk("gone", route: "/gone", count: 2, awaitMs: 200, extra: #","deadLetterTopic":"dead""#)
            + #",{"pubsubname":"pubsub","topic":"dead","route":"/dead"}]"#
        try await BulkApp.run(subscriptions: subscriptions, resources: Self.resources()) { sidecar, app, http in
            // A 500, then a 2xx body that does not decode: both retry the whole batch.
            app.answerNext("/bulk", [(500, "boom"), (200, "not json"), (200, #"{"statuses":"nope"}"#)])
            try await Self.publish(http, sidecar, [#"{"n":1}"#, #"{"n":2}"#])
            try await app.waitForRequests("/bulk", entries: 8)
            try await Task.sleep(for: .milliseconds(600))
            let seen = app.requests("/bulk").flatMap(\.numbers)
            #expect(seen.filter { $0 == 1 }.count == 4)
            #expect(seen.filter { $0 == 2 }.count == 4)

            // A 404 drops the batch: not redelivered, and not dead-lettered (as daprd).
            app.answerNext("/gone", [(404, "")])
            try await Self.publish(http, sidecar, topic: "gone", [#"{"n":7}"#, #"{"n":8}"#])
            try await app.waitForRequests("/gone", entries: 2)
            try await Task.sleep(for: .milliseconds(800))
            #expect(app.requests("/gone").flatMap(\.numbers).count == 2)
            #expect(app.single("/dead").isEmpty)
        }
    }

    // MARK: Raw payloads

    @Test func rawPayloadEntriesCarryTheBytesInBase64() async throws {
        let subscriptions = "[" + Self.bulk(count: 2, awaitMs: 60_000, extra: #","metadata":{"rawPayload":"true"}"#) + "]"
        try await BulkApp.run(subscriptions: subscriptions, resources: Self.resources()) { sidecar, app, http in
            let raw = try await http.post(
                port: sidecar.httpPort,
                "/v1.0/publish/pubsub/orders?metadata.rawPayload=true",
                body: Array("plain bytes".utf8),
                headers: [("content-type", "text/plain")]
            )
            #expect(raw.status == 204)
            #expect(try await http.publish(sidecar, topic: "orders", body: #"{"n":1}"#).status == 204)
            let requests = try await app.waitForRequests("/bulk", entries: 2)
            let entries = requests.flatMap(\.entries)
            let text = try #require(entries.first { $0["contentType"] == "text/plain" })
            #expect(text["event"] == .string(Base64.encode(Array("plain bytes".utf8))))
            // A CloudEvent published normally arrives as its bytes too.
            let wrapped = try #require(entries.first { $0["contentType"] == "application/cloudevents+json" })
            let decoded = try #require(Base64.decode(wrapped["event"]?.stringValue ?? ""))
            let event = try JSONValue(parsing: decoded)
            #expect(event["data"]?["n"]?.intValue == 1)
            #expect(event["topic"] == "orders")
            try await Task.sleep(for: .milliseconds(300))
            #expect(app.requests("/bulk").flatMap(\.entries).count == 2)
        }
    }
}

/// An app inside the test process for bulk subscriptions. `/dapr/subscribe` answers
/// `subscriptions`; a bulk request is recorded and answered per entry by its event's
/// `data.answer`: `SUCCESS` (default), `RETRY`, `DROP`, `OMIT` (left out of the answer), or
/// `RETRY_ONCE` / `OMIT_ONCE` / `EMPTY_ONCE` (RETRY, left out, `""` the first time, then SUCCESS).
/// `answerNext` queues whole answers for the next requests to a path. Other POSTs are recorded as
/// single deliveries.
final class BulkApp: Sendable {
    struct Request: Sendable {
        var path: String
        var headers: [String: String]
        var body: JSONValue
        var entries: [JSONValue] { self.body["entries"]?.arrayValues ?? [] }
        /// `data.n` of each entry, for entries whose event is a CloudEvent object.
        var numbers: [Int] { self.entries.compactMap { $0["event"]?["data"]?["n"]?.intValue } }
    }

    private struct State {
        var requests: [Request] = []
        var single: [String: [JSONValue]] = [:]
        var answered: Set<String> = []
        var queued: [String: [(Int, String)]] = [:]
    }

    let subscriptions: String
    private let state = Mutex(State())

    init(subscriptions: String) {
        self.subscriptions = subscriptions
    }

    static func run(
        subscriptions: String,
        resources: [String: String],
        _ body: (InProcessSidecar, BulkApp, TestHTTP) async throws -> Void
    ) async throws {
        let app = BulkApp(subscriptions: subscriptions)
        try await RouteTest.withInlineApp({ router in app.install(router) }) { port in
            try await InProcessSidecar.with(appPort: port, resources: resources) { sidecar in
                let healthy = await sidecar.sidecar.waitUntilHealthy(timeout: .seconds(15))
                try #require(healthy, "sidecar did not become ready")
                try await TestHTTP.with { http in try await body(sidecar, app, http) }
            }
        }
    }

    func install(_ router: Router<BasicRequestContext>) {
        router.get("/dapr/subscribe") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: self.subscriptions)))
        }
        router.get("/healthz") { _, _ in HTTPResponse.Status.ok }
        router.on("/**", method: .post) { request, _ in
            let bytes = try await request.body.collect(upTo: 16 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let (status, answer) = self.handle(path: request.uri.path, headers: headers, body: Array(buffer: bytes))
            return Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: answer)))
        }
    }

    private func handle(path: String, headers: [String: String], body: [UInt8]) -> (Int, String) {
        let json = (try? JSONValue(parsing: body)) ?? .null
        return self.state.withLock { state -> (Int, String) in
            guard json["type"] == "com.dapr.event.sent.bulk" else {
                state.single[path, default: []].append(json)
                return (200, "")
            }
            let request = Request(path: path, headers: headers, body: json)
            state.requests.append(request)
            if var queue = state.queued[path], !queue.isEmpty {
                let answer = queue.removeFirst()
                state.queued[path] = queue
                return answer
            }
            var statuses: [String] = []
            for entry in request.entries {
                let id = entry["entryId"]?.stringValue ?? ""
                let n = entry["event"]?["data"]?["n"]?.intValue ?? -1
                var answer = entry["event"]?["data"]?["answer"]?.stringValue ?? "SUCCESS"
                if answer.hasSuffix("_ONCE") {
                    answer = state.answered.insert("\(path)#\(n)").inserted ? String(answer.dropLast("_ONCE".count)) : "SUCCESS"
                }
                switch answer {
                case "OMIT": continue
                case "EMPTY": statuses.append(#"{"entryId":"\#(id)","status":""}"#)
                default: statuses.append(#"{"entryId":"\#(id)","status":"\#(answer)"}"#)
                }
            }
            // An unknown entry id is ignored by the sidecar.
            statuses.append(#"{"entryId":"not-an-entry","status":"SUCCESS"}"#)
            return (200, #"{"statuses":[\#(statuses.joined(separator: ","))]}"#)
        }
    }

    func answerNext(_ path: String, _ answers: [(Int, String)]) {
        self.state.withLock { $0.queued[path, default: []] += answers }
    }

    func requests(_ path: String) -> [Request] {
        self.state.withLock { $0.requests.filter { $0.path == path } }
    }

    func single(_ path: String) -> [JSONValue] {
        self.state.withLock { $0.single[path] ?? [] }
    }

    /// Polls until the requests to `path` hold at least `entries` entries in all.
    @discardableResult
    func waitForRequests(_ path: String, entries: Int, timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation) async throws -> [Request] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let requests = self.requests(path)
            if requests.reduce(0, { $0 + $1.entries.count }) >= entries { return requests }
            if ContinuousClock.now >= deadline {
                Issue.record("expected \(entries) bulk entries on \(path) within \(timeout), got \(requests.map(\.entries.count))", sourceLocation: sourceLocation)
                return requests
            }
            try await Task.sleep(for: .milliseconds(25))
        }
    }

    /// Polls until `count` single deliveries reached `path`.
    func waitForSingle(_ path: String, count: Int, timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation) async throws -> [JSONValue] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let events = self.single(path)
            if events.count >= count { return events }
            if ContinuousClock.now >= deadline {
                Issue.record("expected \(count) deliveries to \(path) within \(timeout), got \(events.count)", sourceLocation: sourceLocation)
                return events
            }
            try await Task.sleep(for: .milliseconds(25))
        }
    }
}

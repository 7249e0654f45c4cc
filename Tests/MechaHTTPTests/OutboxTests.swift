import MechaAPI
import MechaCore
import MechaEmbedded
import MechaResiliency
import MechaRuntime
import MechaSidecar
import MechaTesting
import Synchronization
import Testing

/// The transactional outbox: a state store with `outboxPublishPubsub` and `outboxPublishTopic`
/// publishes one CloudEvent per upsert of every committed transaction (daprd's
/// `tests/integration/suite/daprd/outbox/http/{basic,projection,delete}.go`, plus Mecha's own
/// guarantees: nothing for an uncommitted transaction, never success without the messages).
@Suite struct OutboxTests {
    static let subscriptions = #"[{"pubsubname":"pubsub","topic":"orders-outbox","route":"/outbox"}]"#

    static func resources(store: [String: String] = ["outboxPublishPubsub": "pubsub", "outboxPublishTopic": "orders-outbox"], pubsub: [String: String] = [:]) -> [String: String] {
        [
            "store.yaml": RouteTest.component(name: "store", type: "state.in-memory", metadata: store),
            "pubsub.yaml": RouteTest.sqlitePubSub(metadata: pubsub),
        ]
    }

    static func transaction(_ operations: String) -> [UInt8] {
        Array(#"{"operations":[\#(operations)]}"#.utf8)
    }

    // MARK: Publishing

    @Test func eachUpsertOfACommittedTransactionIsPublished() async throws {
        try await RouteTest.withSubscriber(subscriptions: Self.subscriptions, resources: Self.resources()) { sidecar, app, http in
            let body = Self.transaction(
                #"""
                {"operation":"upsert","request":{"key":"1","value":"2","metadata":{"outbox.cloudevent.myapp":"myapp1","data":"a","id":"b"}}},
                {"operation":"delete","request":{"key":"gone"}},
                {"operation":"upsert","request":{"key":"order","value":{"id":7,"items":["a"]},"contentType":"application/json","metadata":{"type":"OrderCreated","subject":"o-7"}}}
                """#
            )
            let response = try await http.post(port: sidecar.httpPort, "/v1.0/state/store/transaction", body: body)
            #expect(response.status == 204, "\(response.text)")

            let events = try await http.waitForEvents(app, "/outbox", count: 2)
            try #require(events.count == 2)
            // One message per upsert (deliveries run concurrently, so found by content, not order).
            let first = try #require(events.first { $0["data"] == "2" }, "\(events)")
            #expect(first["data"] == "2")
            #expect(first["datacontenttype"] == "text/plain")
            #expect(first["id"]?.stringValue?.hasPrefix("outbox-") == true)
            #expect(RouteTest.isUUIDv4(String(first["id"]?.stringValue?.dropFirst("outbox-".count) ?? "")))
            #expect(first["source"] == "testapp")
            #expect(first["type"] == "com.dapr.event.sent")
            #expect(first["specversion"] == "1.0")
            #expect(first["topic"] == "orders-outbox")
            #expect(first["pubsubname"] == "pubsub")
            #expect(RouteTest.isRFC3339Seconds(first["time"]?.stringValue ?? ""))
            // Operation metadata becomes top-level fields, except `data` and `id`.
            #expect(first["outbox.cloudevent.myapp"] == "myapp1")

            let second = try #require(events.first { $0["data"] != "2" }, "\(events)")
            #expect(second["datacontenttype"] == "application/json")
            #expect(second["data"]?["id"]?.intValue == 7)
            #expect(second["data"]?["items"]?.arrayValues?.count == 1)
            #expect(second["type"] == "OrderCreated")
            #expect(second["subject"] == "o-7")
            #expect(first["id"] != second["id"])

            // The state itself was saved.
            #expect(try await http.get(port: sidecar.httpPort, "/v1.0/state/store/1").text == #""2""#)
            #expect(try await http.get(port: sidecar.httpPort, "/v1.0/state/store/order").jsonBody["id"]?.intValue == 7)

            // The delete published nothing.
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await http.received(app, "/outbox").count == 2)
        }
    }

    @Test func projectionIsPublishedButNotSaved() async throws {
        try await RouteTest.withSubscriber(subscriptions: Self.subscriptions, resources: Self.resources()) { sidecar, app, http in
            let body = Self.transaction(
                #"""
                {"operation":"upsert","request":{"key":"1","value":"2"}},
                {"operation":"upsert","request":{"key":"1","value":"3","metadata":{"outbox.projection":"true"}}},
                {"operation":"upsert","request":{"key":"order1","value":{"orderId":"7hf8374s","type":"book","name":"The name of the wind"}}},
                {"operation":"upsert","request":{"key":"order1","value":{"orderId":"7hf8374s"},"metadata":{"outbox.projection":"true"},"contentType":"application/json"}},
                {"operation":"upsert","request":{"key":"order1","value":{"orderId":"second projection"},"metadata":{"outbox.projection":"true"},"contentType":"application/json"}}
                """#
            )
            #expect(try await http.post(port: sidecar.httpPort, "/v1.0/state/store/transaction", body: body).status == 204)
            let events = try await http.waitForEvents(app, "/outbox", count: 2)
            try #require(events.count == 2)
            // Deliveries run concurrently: find each event by its subject key rather than by order.
            let plain = try #require(events.first { $0["data"] == "3" }, "\(events)")
            let projected = try #require(events.first { $0["data"] != "3" }, "\(events)")
            #expect(plain["outbox.projection"] == nil)
            // The projection's content type and value; the first projection of a key wins.
            #expect(projected["datacontenttype"] == "application/json")
            #expect(projected["data"] == .object([("orderId", "7hf8374s")]))
            #expect(projected["outbox.projection"] == nil)

            #expect(try await http.get(port: sidecar.httpPort, "/v1.0/state/store/1").text == #""2""#)
            let saved = try await http.get(port: sidecar.httpPort, "/v1.0/state/store/order1").jsonBody
            #expect(saved["name"] == "The name of the wind")
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await http.received(app, "/outbox").count == 2)
        }
    }

    @Test func nothingIsPublishedForFailedTransactionsOrDeletes() async throws {
        try await RouteTest.withSubscriber(subscriptions: Self.subscriptions, resources: Self.resources()) { sidecar, app, http in
            // A stale ETag fails the whole transaction: nothing saved, nothing published.
            let failing = Self.transaction(
                #"""
                {"operation":"upsert","request":{"key":"a","value":"never"}},
                {"operation":"upsert","request":{"key":"b","value":"never","etag":"999"}}
                """#
            )
            let failed = try await http.post(port: sidecar.httpPort, "/v1.0/state/store/transaction", body: failing)
            #expect(failed.status == 500)
            #expect(failed.jsonBody["errorCode"] == "ERR_STATE_TRANSACTION")
            #expect(try await http.get(port: sidecar.httpPort, "/v1.0/state/store/a").status == 204)

            // Deletes alone publish nothing.
            let deletes = Self.transaction(#"{"operation":"delete","request":{"key":"a"}},{"operation":"delete","request":{"key":"b"}}"#)
            #expect(try await http.post(port: sidecar.httpPort, "/v1.0/state/store/transaction", body: deletes).status == 204)

            // A later successful transaction is the only message.
            let marker = Self.transaction(#"{"operation":"upsert","request":{"key":"marker","value":"last"}}"#)
            #expect(try await http.post(port: sidecar.httpPort, "/v1.0/state/store/transaction", body: marker).status == 204)
            let events = try await http.waitForEvents(app, "/outbox", count: 1)
            #expect(events.first?["data"] == "last")
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await http.received(app, "/outbox").count == 1)
        }
    }

    @Test func plainSavesAndStoresWithoutOutboxPublishNothing() async throws {
        var resources = Self.resources()
        resources["plain.yaml"] = RouteTest.component(name: "plain", type: "state.in-memory", metadata: [:])
        try await RouteTest.withSubscriber(subscriptions: Self.subscriptions, resources: resources) { sidecar, app, http in
            // Only transactions go through the outbox (as in daprd); a store without outbox keeps
            // `outbox.projection` upserts like any other.
            #expect(try await http.post(port: sidecar.httpPort, "/v1.0/state/store", json: #"[{"key":"k","value":"saved"}]"#).status == 204)
            let plain = Self.transaction(#"{"operation":"upsert","request":{"key":"p","value":"kept","metadata":{"outbox.projection":"true"}}}"#)
            #expect(try await http.post(port: sidecar.httpPort, "/v1.0/state/plain/transaction", body: plain).status == 204)
            #expect(try await http.get(port: sidecar.httpPort, "/v1.0/state/plain/p").text == #""kept""#)
            let marker = Self.transaction(#"{"operation":"upsert","request":{"key":"marker","value":"only"}}"#)
            #expect(try await http.post(port: sidecar.httpPort, "/v1.0/state/store/transaction", body: marker).status == 204)
            #expect(try await http.waitForEvents(app, "/outbox", count: 1).first?["data"] == "only")
            try await Task.sleep(for: .milliseconds(400))
            #expect(try await http.received(app, "/outbox").count == 1)
        }
    }

    // MARK: Failures

    @Test func aForbiddenTopicFailsTheTransactionBeforeCommitting() async throws {
        let resources = Self.resources(pubsub: ["publishingScopes": "testapp=other"])
        try await InProcessSidecar.with(resources: resources) { sidecar in
            try await TestHTTP.with { http in
                let body = Self.transaction(#"{"operation":"upsert","request":{"key":"1","value":"2"}}"#)
                let response = try await http.post(port: sidecar.httpPort, "/v1.0/state/store/transaction", body: body)
                #expect(response.status == 500)
                let json = response.jsonBody
                #expect(json["errorCode"] == "ERR_PUBLISH_OUTBOX")
                #expect(json["message"] == "error while publishing outbox message: topic orders-outbox is not allowed for app id testapp")
                let info = json["details"]?.arrayValues?.first { $0["@type"] == "type.googleapis.com/google.rpc.ErrorInfo" }
                #expect(info?["reason"] == "DAPR_PUBSUB_OUTBOX")
                #expect(info?["metadata"]?["appID"] == "testapp")
                #expect(json["details"]?.arrayValues?.count == 1)
                // Not committed.
                #expect(try await http.get(port: sidecar.httpPort, "/v1.0/state/store/1").status == 204)
                // A transaction of deletes only has nothing to publish and succeeds.
                let deletes = Self.transaction(#"{"operation":"delete","request":{"key":"1"}}"#)
                #expect(try await http.post(port: sidecar.httpPort, "/v1.0/state/store/transaction", body: deletes).status == 204)
            }
        }
    }

    @Test func publishFailuresAfterTheCommitAreRetriedThenReported() async throws {
        let flaky = FlakyPubSub(failures: 2)
        let (state, store) = Self.api(pubsub: flaky)
        // Two failures, then success: retried, reported as success.
        try await state.transact(storeName: "store", operations: [.upsert(SaveStateItem(key: "k", value: Array(#""v1""#.utf8)))])
        #expect(flaky.attempts == 3)
        let published = try #require(flaky.published.first)
        let event = try JSONValue(parsing: published.data)
        #expect(event["data"] == "v1")
        #expect(published.contentType == CloudEvent.contentType)
        #expect(published.topic == "orders-outbox")

        // Always failing: every message is attempted, the error says the state was committed.
        flaky.fail(forever: true)
        do {
            try await state.transact(
                storeName: "store",
                operations: [
                    .upsert(SaveStateItem(key: "k", value: Array(#""v2""#.utf8))),
                    .upsert(SaveStateItem(key: "other", value: Array(#""x""#.utf8))),
                ]
            )
            Issue.record("a transaction whose outbox messages were not published reported success")
        } catch {
            #expect(error.errorCode == "ERR_PUBLISH_OUTBOX")
            #expect(error.httpStatus == 500)
            #expect(error.message.hasPrefix("error while publishing outbox message: error when publishing to topic orders-outbox in pubsub pubsub: broker down"))
            #expect(error.message.contains("the state transaction was committed; 2 of 2 outbox messages could not be published"))
        }
        #expect(try await store.get(StateGetRequest(key: "testapp||k"))?.value == Array(#""v2""#.utf8))
    }

    @Test func withoutAPubSubTheOutboxStoreRefusesTransactions() async throws {
        let (state, store) = Self.api(pubsub: nil)
        await #expect(throws: APIError.self) {
            try await state.transact(storeName: "store", operations: [.upsert(SaveStateItem(key: "k", value: Array("1".utf8)))])
        }
        #expect(try await store.get(StateGetRequest(key: "testapp||k")) == nil)
    }

    // MARK: Configuration

    @Test(arguments: [
        (["outboxPublishPubsub": "pubsub"], "spec.metadata.outboxPublishTopic"),
        (["outboxPublishTopic": "orders"], "spec.metadata.outboxPublishPubsub"),
        (["outboxPublishPubsub": "nosuch", "outboxPublishTopic": "orders"], "pub/sub component 'nosuch'"),
    ])
    func incompleteOutboxConfigurationIsAStartupError(metadata: [String: String], expected: String) async throws {
        do {
            try await InProcessSidecar.with(resources: Self.resources(store: metadata)) { _ in
                Issue.record("the sidecar started with outbox metadata \(metadata)")
            }
        } catch {
            let text = "\(error)"
            #expect(text.contains("store.yaml"), "\(text)")
            #expect(text.contains(expected), "\(text)")
            #expect(text.contains("outbox"), "\(text)")
        }
    }

    @Test func outboxSettingsParsing() throws {
        #expect(try StateOutboxSettings.parse(ComponentMetadata([:])) == nil)
        #expect(try StateOutboxSettings.parse(ComponentMetadata(["outboxPublishPubsub": "", "outboxPublishTopic": ""])) == nil)
        let full = try #require(
            try StateOutboxSettings.parse(
                ComponentMetadata(["outboxPublishPubsub": "a", "outboxPublishTopic": "t", "outboxPubsub": "b", "outboxDiscardWhenMissingState": "yes"])
            )
        )
        #expect(full == StateOutboxSettings(publishPubsub: "a", publishTopic: "t", outboxPubsub: "b", discardWhenMissingState: true))
        let defaults = try #require(try StateOutboxSettings.parse(ComponentMetadata(["outboxPublishPubsub": "a", "outboxPublishTopic": "t"])))
        #expect(defaults.outboxPubsub == "a")
        #expect(defaults.discardWhenMissingState == false)
    }

    // MARK: Helpers

    /// A StateAPI over an in-memory store named `store` with an outbox to `pubsub`/`orders-outbox`.
    static func api(pubsub: FlakyPubSub?) -> (StateAPI, InMemoryStateStore) {
        let components = ComponentStore()
        let store = InMemoryStateStore()
        components.add(
            store,
            spec: ComponentSpec(
                name: "store",
                type: ComponentType(.state, "in-memory"),
                metadata: ComponentMetadata(["outboxPublishPubsub": "pubsub", "outboxPublishTopic": "orders-outbox"])
            )
        )
        if let pubsub { components.add(pubsub, spec: ComponentSpec(name: "pubsub", type: ComponentType(.pubsub, "flaky"))) }
        let identity = SidecarIdentity(appID: "testapp", namespace: "", instanceID: "i", runtimeVersion: "test")
        let api = StateAPI(
            components: components,
            identity: identity,
            pubsub: PubSubAPI(components: components, identity: identity, now: { WallClock.now() }),
            outboxRetry: TargetPolicy(retry: (name: "test", backoff: Backoff(.constant(.milliseconds(5)), maxRetries: 2), matching: RetryMatching()))
        )
        return (api, store)
    }
}

/// A pub/sub whose publishes fail a given number of times (or always) with "broker down".
final class FlakyPubSub: PubSub {
    private struct State {
        var failuresLeft: Int
        var forever = false
        var attempts = 0
        var published: [PublishRequest] = []
    }

    private let state: Mutex<State>

    init(failures: Int) {
        self.state = Mutex(State(failuresLeft: failures))
    }

    var features: PubSubFeatures { [] }
    var attempts: Int { self.state.withLock { $0.attempts } }
    var published: [PublishRequest] { self.state.withLock { $0.published } }
    func fail(forever: Bool) { self.state.withLock { $0.forever = forever } }

    func publish(_ request: PublishRequest) async throws {
        let fails = self.state.withLock { state -> Bool in
            state.attempts += 1
            if state.forever { return true }
            if state.failuresLeft > 0 {
                state.failuresLeft -= 1
                return true
            }
            state.published.append(request)
            return false
        }
        if fails { throw PubSubError("broker down") }
    }

    func subscribe(_ request: SubscribeRequest, until stop: StopSignal, handler: @escaping @Sendable (ReceivedMessage) async -> MessageDisposition) async throws {
        await stop.wait()
    }
}

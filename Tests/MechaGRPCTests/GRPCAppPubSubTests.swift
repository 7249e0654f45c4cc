import Foundation
import GRPCCore
import MechaAPI
import MechaCore
import MechaGRPC
import MechaSidecar
import MechaTesting
import SwiftProtobuf
import Synchronization
import Testing

/// Topic events for a gRPC app: programmatic subscriptions from `ListTopicSubscriptions`, the
/// `TopicEventRequest` the app receives, and how SUCCESS / RETRY / DROP / errors are handled.
@Suite struct GRPCAppPubSubTests {
    static let resources = ["pubsub.yaml": Resources.sqlitePubSub()]

    /// A gRPC app with `subscriptions`, and a ready sidecar in front of it.
    static func withSubscriber(
        _ subscriptions: [Dapr_Proto_Runtime_V1_TopicSubscription],
        environment: [String: String] = [:],
        configure: (inout FakeGRPCApp.Behaviour) -> Void = { _ in },
        _ body: (InProcessSidecar, FakeGRPCApp, TestHTTP) async throws -> Void
    ) async throws {
        var behaviour = FakeGRPCApp.Behaviour()
        behaviour.subscriptions = subscriptions
        configure(&behaviour)
        try await FakeGRPCApp.with(behaviour) { app in
            try await InProcessSidecar.with(appPort: app.port, resources: Self.resources, environment: environment) { sidecar in
                let healthy = await sidecar.sidecar.waitUntilHealthy(timeout: .seconds(15))
                try #require(healthy, "sidecar did not become ready")
                try await TestHTTP.with { http in try await body(sidecar, app, http) }
            }
        }
    }

    @Test func topicEventCarriesTheCloudEventFields() async throws {
        try await Self.withSubscriber([.make(topic: "orders", defaultPath: "/orders")], environment: ["APP_API_TOKEN": "app-secret"]) { sidecar, app, http in
            let published = try await http.publish(sidecar, topic: "orders", body: #"{"order":1}"#, headers: [("traceparent", Samples.traceParent)])
            #expect(published.status == 204)
            let calls = try await app.waitFor("one topic event") { $0.topicEvents.count >= 1 }
            let call = try #require(calls.topicEvents.first)
            let event = call.message
            #expect(!event.id.isEmpty)
            #expect(event.source == "testapp")
            #expect(event.type == "com.dapr.event.sent")
            #expect(event.specVersion == "1.0")
            #expect(event.dataContentType == "application/json")
            #expect(try JSONValue(parsing: [UInt8](event.data)) == (try JSONValue(parsing: Array(#"{"order":1}"#.utf8))))
            #expect(event.topic == "orders")
            #expect(event.pubsubName == "pubsub")
            #expect(event.path == "/orders")
            let extensions = event.extensions.fields
            #expect(extensions["topic"]?.stringValue == "orders")
            #expect(extensions["pubsubname"]?.stringValue == "pubsub")
            #expect(extensions["traceparent"]?.stringValue == Samples.traceParent)
            #expect(extensions["id"] == nil)
            #expect(extensions["data"] == nil)
            #expect(call.metadata["traceparent"] == Samples.traceParent)
            #expect(call.metadata["pubsubname"] == "pubsub")
            #expect(call.metadata["dapr-api-token"] == "app-secret")
            // The listing calls carry no app token (as in daprd).
            #expect(calls.listSubscriptionsCalls.first?["dapr-api-token"] == nil)
        }
    }

    @Test func programmaticSubscriptionsRouteByRules() async throws {
        let subscriptions: [Dapr_Proto_Runtime_V1_TopicSubscription] = [
            .make(topic: "orders", rules: [(#"event.type == "vip""#, "/orders/vip")], defaultPath: "/orders"),
            .make(topic: "plain"),
        ]
        try await Self.withSubscriber(subscriptions) { sidecar, app, http in
            let vip = #"{"specversion":"1.0","type":"vip","source":"shop","id":"vip-1","datacontenttype":"application/json","data":{"n":1}}"#
            #expect(try await http.publish(sidecar, topic: "orders", body: vip, contentType: "application/cloudevents+json").status == 204)
            #expect(try await http.publish(sidecar, topic: "orders", body: #"{"n":2}"#).status == 204)
            #expect(try await http.publish(sidecar, topic: "plain", body: "just text", contentType: "text/plain").status == 204)
            let calls = try await app.waitFor("three topic events") { $0.topicEvents.count >= 3 }
            let byPath = Dictionary(grouping: calls.topicEvents.map(\.message), by: \.path)
            #expect(byPath["/orders/vip"]?.map(\.id) == ["vip-1"])
            #expect(byPath["/orders/vip"]?.first?.source == "shop")
            #expect(byPath["/orders"]?.count == 1)
            // Without routes daprd delivers with an empty path.
            let plain = try #require(byPath[""]?.first)
            #expect(plain.topic == "plain")
            #expect(plain.data == Data("just text".utf8))
            #expect(plain.dataContentType == "text/plain")
            #expect(calls.listSubscriptionsCalls.count == 1)

            // The metadata API lists them as programmatic.
            let metadata = try JSONValue(parsing: try await http.get(port: sidecar.httpPort, "/v1.0/metadata").body)
            let listed = metadata["subscriptions"]?.arrayValues ?? []
            #expect(listed.count == 2)
            #expect(listed.allSatisfy { $0["type"] == "PROGRAMMATIC" })
        }
    }

    @Test func retryRedeliversTheSameEvent() async throws {
        try await Self.withSubscriber([.make(topic: "retry", defaultPath: "/retry")], configure: { $0.topicStatuses = [.retry, .retry] }) { sidecar, app, http in
            #expect(try await http.publish(sidecar, topic: "retry", body: #"{"n":1}"#).status == 204)
            let calls = try await app.waitFor("three deliveries") { $0.topicEvents.count >= 3 }
            let ids = Set(calls.topicEvents.map(\.message.id))
            #expect(ids.count == 1)
            // SUCCESS on the third attempt: no more deliveries.
            try await Task.sleep(for: .milliseconds(800))
            #expect(app.calls.topicEvents.count == 3)
        }
    }

    @Test func appErrorIsRetried() async throws {
        try await Self.withSubscriber([.make(topic: "flaky", defaultPath: "/flaky")], configure: { $0.topicErrors = ["flaky": RPCError(code: .internalError, message: "boom")] }) { sidecar, app, http in
            #expect(try await http.publish(sidecar, topic: "flaky", body: #"{"n":1}"#).status == 204)
            try await app.waitFor("redelivery after an error") { $0.topicEvents.count >= 2 }
            app.configure { $0.topicErrors = [:] }
            let count = app.calls.topicEvents.count
            try await Task.sleep(for: .milliseconds(800))
            #expect(app.calls.topicEvents.count <= count + 1)
        }
    }

    @Test func dropGoesToTheDeadLetterTopic() async throws {
        let subscriptions: [Dapr_Proto_Runtime_V1_TopicSubscription] = [
            .make(topic: "drop", defaultPath: "/drop", deadLetterTopic: "dead"),
            .make(topic: "dead", defaultPath: "/dead"),
        ]
        try await Self.withSubscriber(subscriptions, configure: { $0.topicStatuses = [.drop] }) { sidecar, app, http in
            #expect(try await http.publish(sidecar, topic: "drop", body: #"{"n":7}"#).status == 204)
            let calls = try await app.waitFor("the dead letter") { $0.topicEvents.contains { $0.message.path == "/dead" } }
            let dropped = calls.topicEvents.filter { $0.message.path == "/drop" }
            let dead = calls.topicEvents.filter { $0.message.path == "/dead" }
            #expect(dropped.count == 1)
            #expect(dead.first?.message.id == dropped.first?.message.id)
            try await Task.sleep(for: .milliseconds(500))
            #expect(app.calls.topicEvents.filter { $0.message.path == "/drop" }.count == 1)
        }
    }

    @Test func unimplementedOnTopicEventAcknowledgesWithoutDeadLetter() async throws {
        // daprd: an app that does not implement OnTopicEvent gets the message acknowledged.
        let subscriptions: [Dapr_Proto_Runtime_V1_TopicSubscription] = [
            .make(topic: "unhandled", defaultPath: "/unhandled", deadLetterTopic: "dead"),
            .make(topic: "dead", defaultPath: "/dead"),
        ]
        try await Self.withSubscriber(subscriptions, configure: { $0.topicErrors = ["unhandled": RPCError(code: .unimplemented, message: "nope")] }) { sidecar, app, http in
            #expect(try await http.publish(sidecar, topic: "unhandled", body: #"{"n":1}"#).status == 204)
            try await app.waitFor("one delivery") { $0.topicEvents.count >= 1 }
            try await Task.sleep(for: .milliseconds(800))
            #expect(app.calls.topicEvents.count == 1)
        }
    }

    @Test func appWithoutListTopicSubscriptionsHasNoProgrammaticSubscriptions() async throws {
        var behaviour = FakeGRPCApp.Behaviour()
        behaviour.subscriptions = nil
        try await FakeGRPCApp.with(behaviour) { app in
            try await InProcessSidecar.with(appPort: app.port, resources: Self.resources) { sidecar in
                #expect(await sidecar.sidecar.waitUntilHealthy(timeout: .seconds(15)))
                #expect(app.calls.listSubscriptionsCalls.count == 1)
                try await TestHTTP.with { http in
                    let metadata = try JSONValue(parsing: try await http.get(port: sidecar.httpPort, "/v1.0/metadata").body)
                    #expect((metadata["subscriptions"]?.arrayValues ?? []).isEmpty)
                }
            }
        }
    }

    @Test func bulkSubscriptionDeliversThroughOnBulkTopicEvent() async throws {
        var subscription = Dapr_Proto_Runtime_V1_TopicSubscription.make(topic: "bulk", defaultPath: "/bulk")
        var config = Dapr_Proto_Runtime_V1_BulkSubscribeConfig()
        config.enabled = true
        config.maxMessagesCount = 3
        config.maxAwaitDurationMs = 300
        subscription.bulkSubscribe = config
        let attempts = Mutex(0)
        try await Self.withSubscriber([subscription], configure: {
            $0.bulk = { request in
                // The first batch is retried as a whole; later ones succeed.
                let attempt = attempts.withLock { value -> Int in
                    value += 1
                    return value
                }
                var response = Dapr_Proto_Runtime_V1_TopicEventBulkResponse()
                response.statuses = request.entries.map { entry in
                    var status = Dapr_Proto_Runtime_V1_TopicEventBulkResponseEntry()
                    status.entryID = entry.entryID
                    status.status = attempt == 1 ? .retry : .success
                    return status
                }
                return response
            }
        }) { sidecar, app, http in
            for index in 0..<3 {
                #expect(try await http.publish(sidecar, topic: "bulk", body: #"{"n":\#(index)}"#).status == 204)
            }
            let calls = try await app.waitFor("every entry acknowledged") { recorded in
                let succeeded = recorded.bulkEvents.dropFirst().flatMap(\.message.entries).map { $0.cloudEvent.data }
                return Set(succeeded).count >= 3
            }
            #expect(calls.topicEvents.isEmpty)
            let first = try #require(calls.bulkEvents.first)
            #expect(first.message.path == "/bulk")
            #expect(first.message.topic == "bulk")
            #expect(first.message.type == "com.dapr.event.sent.bulk")
            #expect(first.message.entries.allSatisfy { $0.cloudEvent.extensions.fields["topic"]?.stringValue == "bulk" })
        }
    }
}

import Foundation
import Logging
import GRPCCore
import MechaAPI
import MechaCore
import MechaGRPC
import MechaSidecar
import MechaTesting
import SwiftProtobuf
import Testing

/// Input bindings (`ListInputBindings` + `OnBindingEvent`) and app health checks
/// (`AppCallbackHealthCheck`) for a gRPC app.
@Suite struct GRPCAppBindingsHealthTests {
    @Test func cronEventsReachTheAppAndItsReplySavesState() async throws {
        var behaviour = FakeGRPCApp.Behaviour()
        behaviour.inputBindings = ["tick"]
        var reply = Dapr_Proto_Runtime_V1_BindingEventResponse()
        reply.storeName = "statestore"
        var item = Dapr_Proto_Common_V1_StateItem()
        item.key = "last-tick"
        item.value = Data(#""ticked""#.utf8)
        reply.states = [item]
        behaviour.bindingReply = reply
        let resources = [
            "tick.yaml": Resources.cron(name: "tick"),
            "ignored.yaml": Resources.cron(name: "ignored"),
            "state.yaml": Resources.stateStore(),
        ]
        try await FakeGRPCApp.with(behaviour) { app in
            try await InProcessSidecar.with(appPort: app.port, resources: resources, environment: ["APP_API_TOKEN": "app-secret"]) { sidecar in
                let calls = try await app.waitFor("two binding events") { $0.bindingEvents.count >= 2 }
                #expect(calls.bindingEvents.allSatisfy { $0.message.name == "tick" })
                let event = try #require(calls.bindingEvents.first)
                #expect(event.metadata["dapr-api-token"] == "app-secret")
                #expect(!event.message.metadata.isEmpty)
                // Asked once for both bindings; the listing carries no token.
                #expect(calls.listInputBindingsCalls == 1)
                try await TestHTTP.with { http in
                    let deadline = ContinuousClock.now + .seconds(5)
                    var saved: TestHTTPResponse?
                    while ContinuousClock.now < deadline {
                        let response = try await http.get(port: sidecar.httpPort, "/v1.0/state/statestore/last-tick")
                        if response.status == 200 {
                            saved = response
                            break
                        }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    #expect(saved?.text == #""ticked""#)
                }
            }
        }
    }

    @Test func appWithoutListInputBindingsGetsNoEvents() async throws {
        try await FakeGRPCApp.with { app in
            try await InProcessSidecar.with(appPort: app.port, resources: ["tick.yaml": Resources.cron(name: "tick")]) { sidecar in
                #expect(await sidecar.sidecar.waitUntilHealthy(timeout: .seconds(15)))
                try await app.waitFor("the binding listing") { $0.listInputBindingsCalls >= 1 }
                try await Task.sleep(for: .milliseconds(1500))
                #expect(app.calls.bindingEvents.isEmpty)
            }
        }
    }

    @Test func healthChecksGateReadiness() async throws {
        var behaviour = FakeGRPCApp.Behaviour()
        behaviour.healthy = false
        try await FakeGRPCApp.with(behaviour) { app in
            try await InProcessSidecar.with(appPort: app.port, environment: ["APP_API_TOKEN": "app-secret"], configure: { options in
                options.enableAppHealthCheck = true
                options.appHealthProbeInterval = .milliseconds(200)
                options.appHealthProbeTimeout = .milliseconds(150)
                options.appHealthThreshold = 1
            }) { sidecar in
                try await app.waitFor("health probes") { $0.healthChecks.count >= 2 }
                #expect(await !sidecar.sidecar.waitUntilHealthy(timeout: .milliseconds(300)))
                app.configure { $0.healthy = true }
                #expect(await sidecar.sidecar.waitUntilHealthy(timeout: .seconds(5)))
                // Probes carry no app token, as in daprd.
                #expect(app.calls.healthChecks.allSatisfy { $0["dapr-api-token"] == nil })

                // Unhealthy again after `threshold` failed probes.
                app.configure { $0.healthy = false }
                let count = app.calls.healthChecks.count
                try await app.waitFor("more probes") { $0.healthChecks.count >= count + 2 }
                #expect(await !sidecar.sidecar.waitUntilHealthy(timeout: .milliseconds(100)))
            }
        }
    }
}

/// The channel on its own: lifecycle, bulk delivery and reconnection.
@Suite struct GRPCAppChannelTests {
    static func withChannel<Output: Sendable>(
        port: Int,
        configure: (inout GRPCAppChannel.Configuration) -> Void = { _ in },
        _ body: (GRPCAppChannel, StopSignal) async throws -> Output
    ) async throws -> Output {
        var configuration = GRPCAppChannel.Configuration(host: "127.0.0.1", port: port, appID: "testapp")
        configure(&configuration)
        let channel = try GRPCAppChannel(configuration: configuration, logger: .init(label: "test.channel"))
        let stop = StopSignal()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await channel.run(until: stop) }
            defer { stop.stop() }
            let output = try await body(channel, stop)
            stop.stop()
            try await group.waitForAll()
            return output
        }
    }

    static func entry(_ id: String, event: JSONValue, raw: Bool = false, data: [UInt8]? = nil) -> BulkTopicEventDelivery.Entry {
        BulkTopicEventDelivery.Entry(
            entryID: id,
            delivery: TopicEventDelivery(path: "/bulk", body: event.serialized, headers: ["traceparent": Samples.traceParent], pubsubName: "pubsub", topic: "orders", event: event),
            contentType: raw ? "application/octet-stream" : "application/cloudevents+json",
            metadata: ["k": "v"],
            raw: raw,
            data: data
        )
    }

    static let event: JSONValue = .object([
        ("id", "e-1"), ("source", "src"), ("type", "t"), ("specversion", "1.0"), ("datacontenttype", "application/json"),
        ("data", .object([("n", .number("1"))])), ("topic", "orders"), ("pubsubname", "pubsub"),
    ])

    @Test func bulkEventsMapStatusesPerEntry() async throws {
        var behaviour = FakeGRPCApp.Behaviour()
        behaviour.bulk = { request in
            var response = Dapr_Proto_Runtime_V1_TopicEventBulkResponse()
            response.statuses = request.entries.prefix(2).enumerated().map { index, entry in
                var status = Dapr_Proto_Runtime_V1_TopicEventBulkResponseEntry()
                status.entryID = entry.entryID
                status.status = index == 0 ? .success : .drop
                return status
            }
            return response
        }
        try await FakeGRPCApp.with(behaviour) { app in
            try await Self.withChannel(port: app.port) { channel, _ in
                let delivery = BulkTopicEventDelivery(path: "/bulk", pubsubName: "pubsub", topic: "orders", entries: [
                    Self.entry("a", event: Self.event),
                    Self.entry("b", event: Self.event, raw: true, data: Array("raw bytes".utf8)),
                    Self.entry("c", event: Self.event),
                ])
                let results = await channel.deliverBulkTopicEvent(delivery)
                #expect(results["a"] == .success)
                if case .drop = results["b"] {} else { Issue.record("b: \(String(describing: results["b"]))") }
                if case .retry = results["c"] {} else { Issue.record("c: \(String(describing: results["c"]))") }
                let call = try #require(app.calls.bulkEvents.first)
                #expect(call.metadata["method"] == "stable")
                #expect(call.metadata["traceparent"] == Samples.traceParent)
                let request = call.message
                #expect(!request.id.isEmpty)
                #expect(request.type == "com.dapr.event.sent.bulk")
                #expect(request.path == "/bulk")
                #expect(request.topic == "orders")
                #expect(request.pubsubName == "pubsub")
                #expect(request.entries.map(\.entryID) == ["a", "b", "c"])
                let first = request.entries[0]
                #expect(first.cloudEvent.id == "e-1")
                #expect(first.cloudEvent.source == "src")
                #expect(first.cloudEvent.data == Data(#"{"n":1}"#.utf8))
                #expect(first.cloudEvent.extensions.fields["topic"]?.stringValue == "orders")
                #expect(first.contentType == "application/cloudevents+json")
                #expect(first.metadata == ["k": "v"])
                #expect(request.entries[1].bytes == Data("raw bytes".utf8))
            }
        }
    }

    @Test func bulkFallsBackToAlpha1AndAcknowledgesWhenNeitherExists() async throws {
        var behaviour = FakeGRPCApp.Behaviour()
        behaviour.bulkAlpha = { request in
            var response = Dapr_Proto_Runtime_V1_TopicEventBulkResponse()
            response.statuses = request.entries.map { entry in
                var status = Dapr_Proto_Runtime_V1_TopicEventBulkResponseEntry()
                status.entryID = entry.entryID
                status.status = .retry
                return status
            }
            return response
        }
        try await FakeGRPCApp.with(behaviour) { app in
            try await Self.withChannel(port: app.port) { channel, _ in
                let delivery = BulkTopicEventDelivery(path: "/bulk", pubsubName: "pubsub", topic: "orders", entries: [Self.entry("a", event: Self.event)])
                let results = await channel.deliverBulkTopicEvent(delivery)
                if case .retry = results["a"] {} else { Issue.record("a: \(String(describing: results["a"]))") }
                #expect(app.calls.bulkEvents.map { $0.metadata["method"] } == ["stable", "alpha"])

                // Neither method: daprd acknowledges every entry.
                app.configure { $0.bulkAlpha = { _ in throw RPCError(code: .unimplemented, message: "no") } }
                let second = await channel.deliverBulkTopicEvent(delivery)
                #expect(second["a"] == .success)
            }
        }
    }

    @Test func callsMadeBeforeTheAppListensSucceedOnceItDoes() async throws {
        let reservation = TestEnvironment.reservePort()
        let port = reservation.port
        try await Self.withChannel(port: port) { channel, stop in
            #expect(await channel.probeHealth() == false)
            // The app starts late; the channel reconnects by itself.
            reservation.release()
            try await FakeGRPCApp.with(port: port) { app in
                await channel.waitUntilReachable(until: stop)
                // The connection comes back within the reconnect backoff (about a second; more on a
                // loaded machine: a CI run with the whole suite in parallel once took over 10 s, as the
                // failed attempts before the app listened had stretched the backoff).
                var healthy = false
                let deadline = ContinuousClock.now + .seconds(30)
                while !healthy, ContinuousClock.now < deadline { healthy = await channel.probeHealth() }
                #expect(healthy)
                let subscriptions = try await channel.listSubscriptions()
                #expect(subscriptions.isEmpty)
                #expect(app.calls.healthChecks.count >= 1)
            }
        }
    }

    @Test func subscriptionsAndBindingsAreRead() async throws {
        var behaviour = FakeGRPCApp.Behaviour()
        var bulk = Dapr_Proto_Runtime_V1_BulkSubscribeConfig()
        bulk.enabled = true
        bulk.maxMessagesCount = 5
        var withBulk = Dapr_Proto_Runtime_V1_TopicSubscription.make(topic: "b", rules: [("event.type == 'x'", "/x")], deadLetterTopic: "dlq", metadata: ["rawPayload": "true"])
        withBulk.bulkSubscribe = bulk
        behaviour.subscriptions = [.make(topic: "a", defaultPath: "/a"), withBulk, .make(topic: "c")]
        behaviour.inputBindings = ["one", "two"]
        try await FakeGRPCApp.with(behaviour) { app in
            try await Self.withChannel(port: app.port) { channel, _ in
                let specs = try await channel.listSubscriptions()
                #expect(specs.count == 3)
                #expect(specs.allSatisfy { $0.origin == .programmatic })
                #expect(specs[0].routes == SubscriptionRoutes(rules: [], defaultPath: "/a"))
                #expect(specs[1].routes.rules == [RouteRule(match: "event.type == 'x'", path: "/x")])
                #expect(specs[1].deadLetterTopic == "dlq")
                #expect(specs[1].rawPayload)
                #expect(specs[1].bulkSubscribe == BulkSubscribeOptions(enabled: true, maxMessagesCount: 5, maxAwaitDurationMs: 1000))
                #expect(specs[2].routes.rules == [RouteRule(match: "", path: "")])

                #expect(try await channel.acceptsInputBinding(name: "one", route: "/one"))
                #expect(try await channel.acceptsInputBinding(name: "two", route: "/two"))
                #expect(try await !channel.acceptsInputBinding(name: "three", route: "/three"))
                #expect(app.calls.listInputBindingsCalls == 1)
            }
        }
    }

    @Test func bindingReplyAndErrors() async throws {
        var behaviour = FakeGRPCApp.Behaviour()
        var reply = Dapr_Proto_Runtime_V1_BindingEventResponse()
        reply.to = ["out1", "out2"]
        reply.data = Data(#"{ "a" : 1 }"#.utf8)
        reply.concurrency = .parallel
        behaviour.bindingReply = reply
        try await FakeGRPCApp.with(behaviour) { app in
            try await Self.withChannel(port: app.port) { channel, _ in
                let answer = try #require(try await channel.deliverBindingEvent(name: "in", route: "/in", event: BindingEvent(data: Array("payload".utf8), metadata: ["m": "1", "traceparent": Samples.traceParent])))
                #expect(answer.outputBindings == ["out1", "out2"])
                #expect(answer.parallel)
                #expect(answer.data == Array(#"{"a":1}"#.utf8))
                let call = try #require(app.calls.bindingEvents.first)
                #expect(call.message.name == "in")
                #expect(call.message.data == Data("payload".utf8))
                #expect(call.message.metadata["m"] == "1")
                #expect(call.metadata["traceparent"] == Samples.traceParent)
            }
        }
        // No app at all: the event fails.
        _ = try await Self.withChannel(port: TestEnvironment.refusingPort(), configure: { $0.connectRetryWindow = .milliseconds(200) }) { channel, _ in
            await #expect(throws: BindingError.self) {
                _ = try await channel.deliverBindingEvent(name: "in", route: "/in", event: BindingEvent(data: []))
            }
        }
    }
}

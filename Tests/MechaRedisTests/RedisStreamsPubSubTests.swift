import MechaCore
import MechaRedis
import MechaTesting
import NIOCore
import RESPClient
import RESPWire
import Synchronization
import Testing

/// Short redelivery settings, so the suite's redelivery scenarios finish in seconds.
enum RedisPubSubs {
    static let fast = ["processingTimeout": "1s", "redeliverInterval": "200ms"]

    static func make(_ redis: RedisServerHarness, _ extra: [String: String] = fast) async throws -> RedisStreamsPubSub {
        try await RedisComponents.make(RedisStreamsPubSubFactory(), RedisComponents.metadata(redis, extra), as: RedisStreamsPubSub.self)
    }
}

/// What a test subscription received.
final class Inbox: Sendable {
    private let messages = Mutex<[ReceivedMessage]>([])
    func add(_ message: ReceivedMessage) { self.messages.withLock { $0.append(message) } }
    var all: [ReceivedMessage] { self.messages.withLock { $0 } }

    /// Waits until `condition` holds for the received messages, or `timeout` passes.
    func wait(for timeout: Duration = .seconds(10), until condition: ([ReceivedMessage]) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition(self.all) { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return condition(self.all)
    }
}

struct RedisStreamsConformanceTests {
    typealias Check = PubSubConformance.Check

    @Test("pubsub.redis on a real redis-server", .timeLimit(.minutes(2)), arguments: Check.allCases)
    func conformance(_ check: Check) async throws {
        try await RedisServerHarness.withServer { redis in
            let configuration = PubSubConformance.Configuration(expectedFeatures: [.bulkPublish, .durable, .competingConsumers])
            try await PubSubConformance(configuration: configuration) {
                try await RedisPubSubs.make(redis)
            }.run(check)
        }
    }
}

struct RedisStreamsBehaviourTests {
    @Test("a message held by a consumer that died is redelivered to another consumer of the group after processingTimeout", .timeLimit(.minutes(1)))
    func killedConsumer() async throws {
        try await RedisServerHarness.withServer { redis in
            // Another sidecar of the group reads the message, then dies without acknowledging it.
            // The message's idle time runs from that read.
            let started = ContinuousClock.now
            try await RedisComponents.withClient(redis) { client in
                _ = try await client.send(["XGROUP", "CREATE", "orders", "shipping", "0", "MKSTREAM"])
                _ = try await client.send(["XADD", "orders", "*", "data", "order-1"])
                let read = try await client.send(["XREADGROUP", "GROUP", "shipping", "dead-sidecar", "COUNT", 10, "STREAMS", "orders", ">"])
                #expect(read.description.contains("order-1"))
            }
            let pubsub = try await RedisPubSubs.make(redis, ["processingTimeout": "1500ms", "redeliverInterval": "100ms"])
            let inbox = Inbox()
            let stop = StopSignal()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await pubsub.subscribe(SubscribeRequest(topic: "orders", consumerGroup: "shipping"), until: stop) { message in
                        inbox.add(message)
                        return .acknowledge
                    }
                }
                let arrived = await inbox.wait { $0.contains { $0.data == Array("order-1".utf8) } }
                let elapsed = ContinuousClock.now - started
                stop.stop()
                try await group.waitForAll()
                #expect(arrived, "the message held by the dead consumer was never redelivered")
                #expect(elapsed >= .milliseconds(1400), "redelivered after \(elapsed), before processingTimeout passed")
                #expect(inbox.all.first?.redeliveryCount == 1)
            }
            try await RedisComponents.withClient(redis) { client in
                let pending = try await client.send(["XPENDING", "orders", "shipping"])
                #expect(pending.array?.first?.int == 0, "the redelivered message is still pending after its acknowledgement: \(pending)")
            }
            try await pubsub.close()
        }
    }

    @Test("a subscriber cancelled mid-delivery (a killed sidecar) loses nothing: a second instance gets the message", .timeLimit(.minutes(1)))
    func cancelledSubscriber() async throws {
        try await RedisServerHarness.withServer { redis in
            let first = try await RedisPubSubs.make(redis, ["processingTimeout": "1s", "redeliverInterval": "100ms"])
            let handling = StopSignal()
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    _ = try? await first.subscribe(SubscribeRequest(topic: "jobs", consumerGroup: "workers"), until: StopSignal()) { _ in
                        handling.stop()
                        try? await Task.sleep(for: .seconds(3600))
                        return .acknowledge
                    }
                }
                // Published after the group exists, so it reaches the first subscriber.
                while !handling.isStopped {
                    try? await first.publish(PublishRequest(topic: "jobs", data: Array("job-1".utf8)))
                    _ = await handling.sleep(for: .milliseconds(500))
                }
                group.cancelAll()
            }
            try await first.close()

            let second = try await RedisPubSubs.make(redis, ["processingTimeout": "1s", "redeliverInterval": "100ms"])
            let inbox = Inbox()
            let stop = StopSignal()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await second.subscribe(SubscribeRequest(topic: "jobs", consumerGroup: "workers"), until: stop) { message in
                        inbox.add(message)
                        return .acknowledge
                    }
                }
                let arrived = await inbox.wait { $0.contains { $0.data == Array("job-1".utf8) } }
                stop.stop()
                try await group.waitForAll()
                #expect(arrived, "the message being handled when its subscriber was killed was lost")
            }
            try await second.close()
        }
    }

    @Test("messages use Dapr's stream fields: data and a JSON metadata object")
    func daprFields() async throws {
        try await RedisServerHarness.withServer { redis in
            let pubsub = try await RedisPubSubs.make(redis, ["maxLenApprox": "1000"])
            try await pubsub.publish(PublishRequest(topic: "t", data: Array(#"{"id":"1"}"#.utf8), metadata: ["rawPayload": "true"]))
            try await RedisComponents.withClient(redis) { client in
                let range = try await client.send(["XRANGE", "t", "-", "+"])
                let entry = try #require(range.array?.first?.array)
                let fields = try #require(entry[1].dictionary)
                #expect(fields["data"]?.string == #"{"id":"1"}"#)
                let metadata = try #require(fields["metadata"]?.string)
                let parsed = try JSONValue(parsing: metadata).stringDictionary
                #expect(parsed == ["rawPayload": "true"])
                // What a daprd sidecar publishes reads back the same way.
                _ = try await client.send(["XADD", "t", "*", "data", "from-dapr", "metadata", #"{"traceparent":"00-abc"}"#])
            }
            let inbox = Inbox()
            let stop = StopSignal()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await pubsub.subscribe(SubscribeRequest(topic: "t", consumerGroup: "g"), until: stop) { message in
                        inbox.add(message)
                        return .acknowledge
                    }
                }
                let arrived = await inbox.wait { $0.count >= 2 }
                stop.stop()
                try await group.waitForAll()
                #expect(arrived)
            }
            let messages = inbox.all
            #expect(messages.map(\.data) == [Array(#"{"id":"1"}"#.utf8), Array("from-dapr".utf8)])
            #expect(messages.first?.metadata == ["rawPayload": "true"])
            #expect(messages.last?.metadata == ["traceparent": "00-abc"])
            // A clean stop removes the subscription's consumer from the group.
            try await RedisComponents.withClient(redis) { client in
                let consumers = try await client.send(["XINFO", "CONSUMERS", "t", "g"])
                #expect(consumers.array?.isEmpty == true, "consumers left in the group: \(consumers)")
            }
            try await pubsub.close()
        }
    }

    @Test("maxLenApprox trims the stream on publish")
    func maxLen() async throws {
        try await RedisServerHarness.withServer { redis in
            let pubsub = try await RedisPubSubs.make(redis, ["maxLenApprox": "10"])
            for index in 0..<1000 { try await pubsub.publish(PublishRequest(topic: "trimmed", data: Array("\(index)".utf8))) }
            try await RedisComponents.withClient(redis) { client in
                let length = try await client.send(["XLEN", "trimmed"]).int ?? 0
                #expect(length < 1000 && length >= 10, "stream length \(length)")
            }
            try await pubsub.close()
        }
    }

    @Test(
        "bad metadata is an error naming the field",
        arguments: [
            ([:], "redisHost"),
            (["redisHost": "localhost", "processingTimeout": "soon"], "processingTimeout"),
            (["redisHost": "localhost", "redeliverInterval": "-1s"], "redeliverInterval"),
            (["redisHost": "localhost", "queueDepth": "0"], "queueDepth"),
            (["redisHost": "localhost", "concurrency": "many"], "concurrency"),
            (["redisHost": "localhost", "maxLenApprox": "-1"], "maxLenApprox"),
            (["redisHost": "localhost", "streamTTL": "x"], "streamTTL"),
            (["redisHost": "localhost", "enableTLS": "sometimes"], "enableTLS"),
        ] as [([String: String], String)]
    )
    func badMetadata(_ metadata: [String: String], _ field: String) {
        do {
            _ = try RedisStreamsConfiguration(ComponentMetadata(metadata))
            Issue.record("metadata \(metadata) was accepted")
        } catch {
            #expect(error.key == field, "\(metadata): \(error)")
        }
    }

    @Test("Dapr's pub/sub metadata and its legacy millisecond integers")
    func mapping() throws {
        let configuration = try RedisStreamsConfiguration(
            ComponentMetadata([
                "redisHost": "localhost:6379", "consumerID": "app", "processingTimeout": "30000", "redeliverInterval": "5s",
                "queueDepth": "50", "concurrency": "3", "maxLenApprox": "100",
            ])
        )
        #expect(configuration.consumerID == "app")
        #expect(configuration.processingTimeout == .seconds(30))
        #expect(configuration.redeliverInterval == .seconds(5))
        #expect(configuration.queueDepth == 50)
        #expect(configuration.concurrency == 3)
        #expect(configuration.maxLenApprox == 100)
        #expect(configuration.redeliveryEnabled)
        let disabled = try RedisStreamsConfiguration(ComponentMetadata(["redisHost": "localhost", "redeliverInterval": "0"]))
        #expect(!disabled.redeliveryEnabled)
        let defaults = try RedisStreamsConfiguration(ComponentMetadata(["redisHost": "localhost"]))
        #expect(defaults.processingTimeout == .seconds(60))
        #expect(defaults.redeliverInterval == .seconds(15))
        #expect(defaults.queueDepth == 100)
        #expect(defaults.concurrency == 10)
    }
}

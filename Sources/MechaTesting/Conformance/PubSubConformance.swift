public import MechaCore
import Synchronization
import Testing

/// The pub/sub conformance suite: the checks every `PubSub` must pass, shipped as a library so in-tree
/// and third-party implementations run the same ones. Modelled on Dapr components-contrib's
/// `tests/conformance/pubsub`, with the contract of `PubSub`'s documentation (stop drains, a message is
/// removed only after `.acknowledge`).
///
/// Each check makes its own component, runs its `run(until:)` beside the subscriptions, and uses its
/// own topics and consumer groups (random names), so checks can share a backend. A subscription is
/// known to be live once it has received a probe message (payloads starting `conformance-probe:`, which
/// the suite publishes until every new subscription has seen one); only messages published after
/// that are expected. Every subscription is also watched for the drain contract: `subscribe` must not
/// return while one of its handlers runs, and must not call a handler after it returned.
///
/// Features are checked both ways where the contract allows: `.bulkPublish` ⇔ `BulkPublisher`; the
/// others are checked when declared (a component without `.messageTTL` leaves expiry to the runtime,
/// one without `.durable` may lose messages nobody is subscribed for).
public struct PubSubConformance: Sendable {
    public struct Configuration: Sendable {
        /// What the component should declare.
        public var expectedFeatures: PubSubFeatures
        /// Whether a subscription with `maxConcurrency` 1 receives messages in publish order.
        public var deliversInOrder: Bool
        /// Prefix of every topic and consumer group; a random run id follows it.
        public var namePrefix: String
        /// Messages per scenario (Dapr's `messageCount`).
        public var messageCount: Int
        /// How long messages may take to arrive (including redeliveries after a `.redeliver`).
        public var deliveryTimeout: Duration
        /// How long the suite waits to conclude that a message will not arrive (again).
        public var quietPeriod: Duration
        /// How long `subscribe` and `run(until:)` may take to return once their stop signal fires
        /// and no handler is running.
        public var stopTimeout: Duration
        /// The TTL given to the expiring message of the TTL check.
        public var messageTTL: Duration

        public init(
            expectedFeatures: PubSubFeatures,
            deliversInOrder: Bool = true,
            namePrefix: String = "conformance",
            messageCount: Int = 10,
            deliveryTimeout: Duration = .seconds(15),
            quietPeriod: Duration = .milliseconds(750),
            stopTimeout: Duration = .seconds(5),
            messageTTL: Duration = .seconds(1)
        ) {
            self.expectedFeatures = expectedFeatures
            self.deliversInOrder = deliversInOrder
            self.namePrefix = namePrefix
            self.messageCount = messageCount
            self.deliveryTimeout = deliveryTimeout
            self.quietPeriod = quietPeriod
            self.stopTimeout = stopTimeout
            self.messageTTL = messageTTL
        }
    }

    /// One scenario; each runs on components of its own from `makePubSub`.
    public enum Check: String, CaseIterable, Sendable, CustomStringConvertible {
        /// Declared features equal the expected ones; `.bulkPublish` ⇔ `BulkPublisher`.
        case features
        /// Every message published after subscribe arrives once, byte for byte (in order if promised).
        case delivery
        /// `.redeliver` brings the message back with a growing `redeliveryCount`; `.acknowledge` never.
        case redelivery
        /// Two consumer groups each receive every message.
        case consumerGroups
        /// Two subscribers in one group share the messages (when `.competingConsumers` is declared).
        case competingConsumers
        /// Subscribers of different topics receive only their topic's messages.
        case topicIsolation
        /// Stopping one subscription returns promptly and does not disturb another.
        case independentStop
        /// Stop drains: running handlers finish, are not cancelled, and their dispositions apply.
        case drain
        /// Cancelling the task running `subscribe` ends it promptly (a hard stop); the component
        /// keeps working for other subscriptions.
        case cancellation
        /// Messages with a TTL expire undelivered (when `.messageTTL` is declared).
        case messageTTL
        /// Bulk publish delivers every entry (when `.bulkPublish` is declared).
        case bulkPublish
        /// Messages survive a restart (when `.durable` is declared).
        case durability

        public var description: String { self.rawValue }
    }

    /// What this run expects of the component.
    public let configuration: Configuration
    let makePubSub: @Sendable () async throws -> any PubSub

    /// - Parameter makePubSub: a new component instance on each call. For a `.durable` component,
    ///   instances made by one suite must share the backend (the durability check makes a second
    ///   instance to simulate a restart).
    public init(configuration: Configuration, makePubSub: @escaping @Sendable () async throws -> any PubSub) {
        self.configuration = configuration
        self.makePubSub = makePubSub
    }

    /// Runs every check.
    public func run() async throws {
        for check in Check.allCases { try await self.run(check) }
    }

    /// Runs one check. Throws only when a component cannot be made.
    public func run(_ check: Check) async throws {
        let names = Names(prefix: self.configuration.namePrefix)
        let features = self.configuration.expectedFeatures
        switch check {
        case .features:
            let pubsub = try await self.makePubSub()
            try await LiveComponent.with(pubsub, label: "pubsub", stopTimeout: self.configuration.stopTimeout) {
                self.checkFeatures(pubsub)
            }
        case .delivery: try await self.session(check) { try await self.checkDelivery($0, names, &$1) }
        case .redelivery: try await self.session(check) { try await self.checkRedelivery($0, names, &$1) }
        case .consumerGroups: try await self.session(check) { try await self.checkConsumerGroups($0, names, &$1) }
        case .competingConsumers:
            guard features.contains(.competingConsumers) else { return }
            try await self.session(check) { try await self.checkCompetingConsumers($0, names, &$1) }
        case .topicIsolation: try await self.session(check) { try await self.checkTopicIsolation($0, names, &$1) }
        case .independentStop: try await self.session(check) { try await self.checkIndependentStop($0, names, &$1) }
        case .drain: try await self.session(check) { try await self.checkDrain($0, names, &$1) }
        case .cancellation: try await self.session(check) { try await self.checkCancellation($0, names, &$1) }
        case .messageTTL:
            guard features.contains(.messageTTL) else { return }
            try await self.session(check) { try await self.checkMessageTTL($0, names, &$1) }
        case .bulkPublish:
            guard features.contains(.bulkPublish) else { return }
            try await self.session(check) { try await self.checkBulkPublish($0, names, &$1) }
        case .durability:
            guard features.contains(.durable) else { return }
            await Conformance.record("pubsub", check.rawValue) { try await self.checkDurability(names) }
        }
    }

    /// Topics, groups and payloads of one run.
    struct Names: Sendable {
        let run: String
        init(prefix: String) { self.run = "\(prefix)-\(Conformance.runID())" }
        func topic(_ name: String) -> String { "\(self.run)-\(name)" }
        func group(_ name: String) -> String { "\(self.run)-group-\(name)" }
        func payload(_ label: String, _ index: Int) -> [UInt8] { Array("\(self.run)/\(label)/\(index)".utf8) }
        func payloads(_ label: String, _ count: Int) -> [[UInt8]] { (0..<count).map { self.payload(label, $0) } }
    }

    static let probePrefix = Array("conformance-probe:".utf8)

    // MARK: Subscriptions

    /// One `subscribe` call and what it received (probes aside).
    final class Subscriber: Sendable {
        struct State {
            var deliveries: [ReceivedMessage] = []
            var probes = 0
            var running = 0
            var callsAfterReturn = 0
            var runningAtReturn = 0
            var error: (any Error)?
        }

        let label: String
        let topic: String
        let group: String
        let stop = StopSignal()
        let returned = StopSignal()
        let probeHold: Duration
        let behaviour: @Sendable (ReceivedMessage) async -> MessageDisposition
        private let state = Mutex(State())

        init(label: String, topic: String, group: String, probeHold: Duration, behaviour: @escaping @Sendable (ReceivedMessage) async -> MessageDisposition) {
            self.label = label
            self.topic = topic
            self.group = group
            self.probeHold = probeHold
            self.behaviour = behaviour
        }

        func handle(_ message: ReceivedMessage) async -> MessageDisposition {
            let isProbe = message.data.starts(with: PubSubConformance.probePrefix)
            self.state.withLock { state in
                if self.returned.isStopped { state.callsAfterReturn += 1 }
                state.running += 1
                if isProbe { state.probes += 1 } else { state.deliveries.append(message) }
            }
            let disposition: MessageDisposition
            if isProbe {
                if self.probeHold > .zero { try? await Task.sleep(for: self.probeHold) }
                disposition = .acknowledge
            } else {
                disposition = await self.behaviour(message)
            }
            self.state.withLock { $0.running -= 1 }
            return disposition
        }

        func finished(with error: (any Error)?) {
            self.state.withLock { state in
                state.runningAtReturn = state.running
                state.error = error
            }
            self.returned.stop()
        }

        var snapshot: State { self.state.withLock { $0 } }
        var deliveries: [ReceivedMessage] { self.state.withLock { $0.deliveries } }
        var probes: Int { self.state.withLock { $0.probes } }

        /// How often each payload arrived.
        func counts() -> [[UInt8]: Int] {
            var counts: [[UInt8]: Int] = [:]
            for delivery in self.deliveries { counts[delivery.data, default: 0] += 1 }
            return counts
        }

        func received(_ payload: [UInt8]) -> Bool { self.deliveries.contains { $0.data == payload } }
        func received(all payloads: [[UInt8]]) -> Bool {
            let seen = Set(self.deliveries.map(\.data))
            return payloads.allSatisfy { seen.contains($0) }
        }
    }

    /// A live component and the subscriptions a check opened on it.
    final class Session: Sendable {
        let pubsub: any PubSub
        let configuration: Configuration
        let check: String
        private let subscribers = Mutex<[Subscriber]>([])
        private let probeCounter = Atomic<Int>(0)

        init(pubsub: any PubSub, configuration: Configuration, check: String) {
            self.pubsub = pubsub
            self.configuration = configuration
            self.check = check
        }

        var all: [Subscriber] { self.subscribers.withLock { $0 } }

        /// Starts `subscribe` in `tasks`; it runs until the subscriber's stop fires (or the session ends).
        func subscribe(
            _ label: String,
            topic: String,
            group: String,
            maxConcurrency: Int = 1,
            probeHold: Duration = .zero,
            in tasks: inout DiscardingTaskGroup,
            behaviour: @escaping @Sendable (ReceivedMessage) async -> MessageDisposition = { _ in .acknowledge }
        ) -> Subscriber {
            let subscriber = Subscriber(label: label, topic: topic, group: group, probeHold: probeHold, behaviour: behaviour)
            self.subscribers.withLock { $0.append(subscriber) }
            let request = SubscribeRequest(topic: topic, consumerGroup: group, maxConcurrency: maxConcurrency)
            let pubsub = self.pubsub
            tasks.addTask {
                do {
                    try await pubsub.subscribe(request, until: subscriber.stop) { await subscriber.handle($0) }
                    subscriber.finished(with: nil)
                } catch {
                    subscriber.finished(with: error)
                }
            }
            return subscriber
        }

        func publish(_ topic: String, _ data: [UInt8], contentType: String? = "text/plain", ttl: Duration? = nil) async throws {
            try await self.pubsub.publish(PublishRequest(topic: topic, data: data, contentType: contentType, ttl: ttl))
        }

        /// Publishes probes to `topic` until every subscriber has received one.
        func awaitReady(_ subscribers: [Subscriber], topic: String) async throws {
            let deadline = ContinuousClock.now + self.configuration.deliveryTimeout
            while subscribers.contains(where: { $0.probes == 0 }) {
                if let failed = subscribers.first(where: { $0.returned.isStopped }) {
                    throw ConformanceFailure("subscription \(failed.label) ended before receiving anything\(failed.snapshot.error.map { ": \($0)" } ?? "")")
                }
                guard ContinuousClock.now < deadline else {
                    let silent = subscribers.filter { $0.probes == 0 }.map(\.label)
                    throw ConformanceFailure("subscription(s) \(silent) received none of the probe messages published to \(topic) for \(self.configuration.deliveryTimeout)")
                }
                let index = self.probeCounter.add(1, ordering: .relaxed).newValue
                try await self.publish(topic, PubSubConformance.probePrefix + Array("\(topic)/\(index)".utf8))
                try? await Task.sleep(for: .milliseconds(50))
            }
        }

        /// Stops one subscription and waits for `subscribe` to return.
        func stop(_ subscriber: Subscriber) async {
            subscriber.stop.stop()
            if !(await subscriber.returned.sleep(for: self.configuration.stopTimeout)) {
                Issue.record("\(self.check): subscription \(subscriber.label) did not return within \(self.configuration.stopTimeout) of its stop signal")
            }
        }

        /// Waits until `subscriber` has received every payload; records which are missing otherwise.
        @discardableResult
        func expectReceives(_ subscriber: Subscriber, _ payloads: [[UInt8]], _ what: String) async -> Bool {
            if await Conformance.eventually(within: self.configuration.deliveryTimeout, { subscriber.received(all: payloads) }) {
                return true
            }
            let seen = Set(subscriber.deliveries.map(\.data))
            let missing = payloads.filter { !seen.contains($0) }.map(Conformance.show)
            Issue.record("\(self.check): \(what): subscription \(subscriber.label) is missing \(missing.count) of \(payloads.count) messages after \(self.configuration.deliveryTimeout): \(missing.prefix(5))")
            return false
        }

        /// Every payload of `expected` arrived exactly once and nothing else arrived.
        func expectExactlyOnce(_ subscriber: Subscriber, _ expected: [[UInt8]], _ what: String) {
            let counts = subscriber.counts()
            let duplicated = counts.filter { $0.value > 1 }.map { "\(Conformance.show($0.key)) ×\($0.value)" }
            #expect(duplicated.isEmpty, "\(self.check): \(what): subscription \(subscriber.label) received acknowledged messages more than once: \(duplicated.prefix(5))")
            let expectedSet = Set(expected)
            let unexpected = counts.keys.filter { !expectedSet.contains($0) }.map(Conformance.show)
            #expect(unexpected.isEmpty, "\(self.check): \(what): subscription \(subscriber.label) received messages it should not have: \(unexpected.prefix(5))")
        }

        func quiet() async {
            try? await Task.sleep(for: self.configuration.quietPeriod)
        }
    }

    /// Runs `body` with a fresh component and tears everything down after it: every subscription is
    /// stopped and must return within `stopTimeout` (else it is cancelled), then the component.
    private func session(
        _ check: Check,
        _ body: (Session, inout DiscardingTaskGroup) async throws -> Void
    ) async throws {
        let pubsub = try await self.makePubSub()
        let session = Session(pubsub: pubsub, configuration: self.configuration, check: check.rawValue)
        let componentStop = StopSignal()
        let componentReturned = StopSignal()
        let stopTimeout = self.configuration.stopTimeout
        await withDiscardingTaskGroup { tasks in
            tasks.addTask {
                do {
                    try await pubsub.run(until: componentStop)
                } catch {
                    Issue.record(error, "\(check): run(until:) threw")
                }
                componentReturned.stop()
            }
            await Conformance.record("pubsub", check.rawValue) { try await body(session, &tasks) }
            var hung: [String] = []
            for subscriber in session.all { subscriber.stop.stop() }
            for subscriber in session.all where !(await subscriber.returned.sleep(for: stopTimeout)) {
                hung.append(subscriber.label)
            }
            if !hung.isEmpty {
                Issue.record("\(check): subscription(s) \(hung) did not return within \(stopTimeout) of their stop signal; cancelling them")
                tasks.cancelAll()
            }
            componentStop.stop()
            if !(await componentReturned.sleep(for: stopTimeout)) {
                Issue.record("\(check): run(until:) did not return within \(stopTimeout) of its stop signal")
                tasks.cancelAll()
            }
        }
        for subscriber in session.all {
            let state = subscriber.snapshot
            #expect(state.runningAtReturn == 0, "\(check): subscribe (\(subscriber.label)) returned while \(state.runningAtReturn) of its handlers were still running: stop must drain in-flight deliveries")
            #expect(state.callsAfterReturn == 0, "\(check): subscription \(subscriber.label) called its handler \(state.callsAfterReturn) times after subscribe returned")
            if let error = state.error {
                Issue.record(error, "\(check): subscribe (\(subscriber.label)) threw")
            }
        }
        do {
            try await pubsub.close()
        } catch {
            Issue.record(error, "\(check): close() threw")
        }
    }

    // MARK: Checks

    func checkFeatures(_ pubsub: any PubSub) {
        let expected = self.configuration.expectedFeatures
        #expect(pubsub.features == expected, "declared features \(pubsub.features.rawValue) (\(pubsub.features.capabilityNames)) differ from the expected \(expected.rawValue) (\(expected.capabilityNames))")
        let bulk = pubsub is any BulkPublisher
        #expect(pubsub.features.contains(.bulkPublish) == bulk, "declares .bulkPublish = \(pubsub.features.contains(.bulkPublish)) but adopts BulkPublisher = \(bulk)")
    }

    func checkDelivery(_ session: Session, _ names: Names, _ tasks: inout DiscardingTaskGroup) async throws {
        let topic = names.topic("delivery")
        let subscriber = session.subscribe("delivery", topic: topic, group: names.group("delivery"), in: &tasks)
        try await session.awaitReady([subscriber], topic: topic)
        var published: [(data: [UInt8], contentType: String)] = names.payloads("message", self.configuration.messageCount).map { ($0, "text/plain") }
        published.append((names.payload("binary", 0) + [0xFF, 0x00, 0xFE, 0x80], "application/octet-stream"))
        published.append((Array(#"{"specversion":"1.0","id":"\#(names.run)","data":{"quote":"\"q\""}}"#.utf8), "application/cloudevents+json"))
        for message in published {
            try await session.publish(topic, message.data, contentType: message.contentType)
        }
        let payloads = published.map(\.data)
        await session.expectReceives(subscriber, payloads, "messages published after subscribe")
        await session.quiet()
        session.expectExactlyOnce(subscriber, payloads, "messages published after subscribe")
        let deliveries = subscriber.deliveries
        for delivery in deliveries {
            #expect(delivery.topic == topic, "delivery: message arrived with topic \(delivery.topic), published to \(topic)")
            #expect(delivery.redeliveryCount == 0, "delivery: a first delivery has redeliveryCount \(delivery.redeliveryCount)")
            #expect(!delivery.messageID.isEmpty, "delivery: message without a messageID")
            if let contentType = delivery.contentType, let sent = published.first(where: { $0.data == delivery.data })?.contentType {
                #expect(contentType == sent, "delivery: content type \(contentType) differs from the published \(sent)")
            }
        }
        let ids = deliveries.map(\.messageID)
        #expect(Set(ids).count == ids.count, "delivery: distinct messages share a messageID: \(ids)")
        if self.configuration.deliversInOrder {
            let order = deliveries.map(\.data)
            let inOrder = order == payloads
            #expect(inOrder, "delivery: a subscription with maxConcurrency 1 received messages out of publish order: \(order.map(Conformance.show))")
        }
    }

    func checkRedelivery(_ session: Session, _ names: Names, _ tasks: inout DiscardingTaskGroup) async throws {
        let topic = names.topic("redelivery")
        let group = names.group("redelivery")
        let retried = names.payload("retried", 0)
        let once = names.payload("once", 0)
        let seen = SharedValue(0)
        let first = session.subscribe("redelivery", topic: topic, group: group, in: &tasks) { message in
            // Refuse the first two deliveries of `retried`, then accept it.
            guard message.data == retried else { return .acknowledge }
            return seen.update { $0 += 1 } <= 2 ? .redeliver : .acknowledge
        }
        try await session.awaitReady([first], topic: topic)
        try await session.publish(topic, retried)
        try await session.publish(topic, once)
        let arrivedThrice = await Conformance.eventually(within: self.configuration.deliveryTimeout) {
            first.deliveries.filter { $0.data == retried }.count >= 3
        }
        let attempts = first.deliveries.filter { $0.data == retried }
        #expect(arrivedThrice, "redelivery: a message handled with .redeliver twice arrived \(attempts.count) times within \(self.configuration.deliveryTimeout), expected 3")
        let counts = attempts.map(\.redeliveryCount)
        #expect(counts.first == 0 && zip(counts, counts.dropFirst()).allSatisfy { $0 < $1 }, "redelivery: redeliveryCount of successive deliveries is \(counts), expected 0 then increasing")
        #expect(Set(attempts.map(\.messageID)).count <= 1, "redelivery: a redelivered message changed its messageID: \(attempts.map(\.messageID))")
        await session.expectReceives(first, [once], "acknowledged message")
        await session.quiet()
        let afterQuiet = first.deliveries
        #expect(afterQuiet.filter { $0.data == retried }.count == 3, "redelivery: the message came back after it was acknowledged (\(afterQuiet.filter { $0.data == retried }.count) deliveries)")
        #expect(afterQuiet.filter { $0.data == once }.count == 1, "redelivery: an acknowledged message arrived \(afterQuiet.filter { $0.data == once }.count) times")

        // A later subscription of the group does not see acknowledged messages again.
        await session.stop(first)
        let second = session.subscribe("redelivery-after", topic: topic, group: group, in: &tasks)
        try await session.awaitReady([second], topic: topic)
        await session.quiet()
        #expect(second.deliveries.isEmpty, "redelivery: acknowledged messages were delivered again to a new subscription of the group: \(second.deliveries.map { Conformance.show($0.data) })")
    }

    func checkConsumerGroups(_ session: Session, _ names: Names, _ tasks: inout DiscardingTaskGroup) async throws {
        let topic = names.topic("groups")
        let a = session.subscribe("group-a", topic: topic, group: names.group("a"), in: &tasks)
        let b = session.subscribe("group-b", topic: topic, group: names.group("b"), in: &tasks)
        try await session.awaitReady([a, b], topic: topic)
        let payloads = names.payloads("fan-out", self.configuration.messageCount)
        for payload in payloads { try await session.publish(topic, payload) }
        await session.expectReceives(a, payloads, "every consumer group gets every message")
        await session.expectReceives(b, payloads, "every consumer group gets every message")
        await session.quiet()
        session.expectExactlyOnce(a, payloads, "consumer groups")
        session.expectExactlyOnce(b, payloads, "consumer groups")
    }

    func checkCompetingConsumers(_ session: Session, _ names: Names, _ tasks: inout DiscardingTaskGroup) async throws {
        let topic = names.topic("competing")
        let group = names.group("competing")
        // Slow handlers keep one subscriber busy so the other gets work too.
        let slow: @Sendable (ReceivedMessage) async -> MessageDisposition = { _ in
            try? await Task.sleep(for: .milliseconds(20))
            return .acknowledge
        }
        let a = session.subscribe("competing-a", topic: topic, group: group, probeHold: .milliseconds(150), in: &tasks, behaviour: slow)
        let b = session.subscribe("competing-b", topic: topic, group: group, probeHold: .milliseconds(150), in: &tasks, behaviour: slow)
        try await session.awaitReady([a, b], topic: topic)
        let payloads = names.payloads("shared", self.configuration.messageCount * 2)
        for payload in payloads { try await session.publish(topic, payload) }
        let arrived = await Conformance.eventually(within: self.configuration.deliveryTimeout) {
            Set(a.deliveries.map(\.data)).union(b.deliveries.map(\.data)).isSuperset(of: payloads)
        }
        #expect(arrived, "competing consumers: not every message reached one of the two subscribers of the group within \(self.configuration.deliveryTimeout)")
        await session.quiet()
        var counts = a.counts()
        for (payload, count) in b.counts() { counts[payload, default: 0] += count }
        let twice = counts.filter { $0.value > 1 }.map { Conformance.show($0.key) }
        #expect(twice.isEmpty, "competing consumers: messages were handled by both subscribers of one group (or twice): \(twice.prefix(5))")
    }

    func checkTopicIsolation(_ session: Session, _ names: Names, _ tasks: inout DiscardingTaskGroup) async throws {
        let first = names.topic("multi-1")
        let second = names.topic("multi-2")
        // One consumer group on both topics: groups are per topic.
        let group = names.group("multi")
        let a = session.subscribe("topic-1", topic: first, group: group, in: &tasks)
        let b = session.subscribe("topic-2", topic: second, group: group, in: &tasks)
        try await session.awaitReady([a], topic: first)
        try await session.awaitReady([b], topic: second)
        var toFirst: [[UInt8]] = []
        var toSecond: [[UInt8]] = []
        for index in 0..<(self.configuration.messageCount * 2) {
            let payload = names.payload("multi", index)
            if index.isMultiple(of: 2) {
                toFirst.append(payload)
                try await session.publish(first, payload)
            } else {
                toSecond.append(payload)
                try await session.publish(second, payload)
            }
        }
        await session.expectReceives(a, toFirst, "topic isolation")
        await session.expectReceives(b, toSecond, "topic isolation")
        await session.quiet()
        session.expectExactlyOnce(a, toFirst, "topic isolation")
        session.expectExactlyOnce(b, toSecond, "topic isolation")
        #expect(a.deliveries.allSatisfy { $0.topic == first }, "topic isolation: a message of another topic reached \(first)")
        #expect(b.deliveries.allSatisfy { $0.topic == second }, "topic isolation: a message of another topic reached \(second)")
    }

    func checkIndependentStop(_ session: Session, _ names: Names, _ tasks: inout DiscardingTaskGroup) async throws {
        let first = names.topic("stop-1")
        let second = names.topic("stop-2")
        let a = session.subscribe("stopped", topic: first, group: names.group("stop"), in: &tasks)
        let b = session.subscribe("kept", topic: second, group: names.group("stop"), in: &tasks)
        let c = session.subscribe("kept-same-topic", topic: first, group: names.group("stop-other"), in: &tasks)
        try await session.awaitReady([a, c], topic: first)
        try await session.awaitReady([b], topic: second)
        await session.stop(a)
        let toFirst = names.payloads("after-stop-1", self.configuration.messageCount)
        let toSecond = names.payloads("after-stop-2", self.configuration.messageCount)
        for (x, y) in zip(toFirst, toSecond) {
            try await session.publish(first, x)
            try await session.publish(second, y)
        }
        await session.expectReceives(b, toSecond, "a subscription on another topic after one was stopped")
        await session.expectReceives(c, toFirst, "another group's subscription on the same topic after one was stopped")
        #expect(!b.returned.isStopped && !c.returned.isStopped, "independent stop: stopping one subscription ended another")
        await session.quiet()
        #expect(a.deliveries.isEmpty, "independent stop: a stopped subscription still received \(a.deliveries.count) messages")
        session.expectExactlyOnce(b, toSecond, "independent stop")
        session.expectExactlyOnce(c, toFirst, "independent stop")
    }

    func checkDrain(_ session: Session, _ names: Names, _ tasks: inout DiscardingTaskGroup) async throws {
        let topic = names.topic("drain")
        let group = names.group("drain")

        // Round 1: a handler running when stop fires finishes, uncancelled, and its .acknowledge applies.
        let acknowledged = names.payload("drain-acknowledged", 0)
        let started = StopSignal(), gate = StopSignal(), cancelled = SharedValue(false), completed = SharedValue(false)
        let first = session.subscribe("drain-1", topic: topic, group: group, in: &tasks) { message in
            guard message.data == acknowledged, !started.isStopped else { return .acknowledge }
            started.stop()
            await gate.wait()
            cancelled.set(Task.isCancelled)
            completed.set(true)
            return .acknowledge
        }
        try await session.awaitReady([first], topic: topic)
        try await session.publish(topic, acknowledged)
        guard await started.sleep(for: self.configuration.deliveryTimeout) else {
            throw ConformanceFailure("drain: the gated message never reached its handler")
        }
        first.stop.stop()
        let published = names.payload("drain-published-during-stop", 0)
        try await session.publish(topic, published)
        try? await Task.sleep(for: .milliseconds(300))
        #expect(!first.returned.isStopped, "drain: subscribe returned after stop while a handler was still running")
        gate.stop()
        if !(await first.returned.sleep(for: self.configuration.stopTimeout)) {
            Issue.record("drain: subscribe did not return within \(self.configuration.stopTimeout) of its last handler finishing")
        }
        #expect(completed.value, "drain: the running handler did not complete")
        #expect(!cancelled.value, "drain: a graceful stop cancelled a running handler")
        #expect(!first.received(published), "drain: a message published after stop fired was delivered to the stopping subscription")

        let second = session.subscribe("drain-2", topic: topic, group: group, in: &tasks)
        try await session.awaitReady([second], topic: topic)
        if self.configuration.expectedFeatures.contains(.durable) {
            await session.expectReceives(second, [published], "a message published while the group's subscription was stopping")
        }
        await session.quiet()
        #expect(!second.received(acknowledged), "drain: a message acknowledged by a handler that finished during stop was delivered again")
        await session.stop(second)

        // Round 2: a handler finishing during stop with .redeliver: the message comes back.
        let refused = names.payload("drain-redelivered", 0)
        let started2 = StopSignal(), gate2 = StopSignal()
        let third = session.subscribe("drain-3", topic: topic, group: group, in: &tasks) { message in
            guard message.data == refused, !started2.isStopped else { return .acknowledge }
            started2.stop()
            await gate2.wait()
            return .redeliver
        }
        try await session.awaitReady([third], topic: topic)
        try await session.publish(topic, refused)
        guard await started2.sleep(for: self.configuration.deliveryTimeout) else {
            throw ConformanceFailure("drain: the second gated message never reached its handler")
        }
        third.stop.stop()
        try? await Task.sleep(for: .milliseconds(100))
        gate2.stop()
        if !(await third.returned.sleep(for: self.configuration.stopTimeout)) {
            Issue.record("drain: subscribe did not return within \(self.configuration.stopTimeout) of its last handler finishing")
        }
        let fourth = session.subscribe("drain-4", topic: topic, group: group, in: &tasks)
        if await session.expectReceives(fourth, [refused], "a message handled with .redeliver while its subscription was stopping") {
            let again = fourth.deliveries.first { $0.data == refused }
            #expect((again?.redeliveryCount ?? 0) >= 1, "drain: a redelivered message arrived with redeliveryCount \(again?.redeliveryCount ?? 0)")
        }
    }

    func checkCancellation(_ session: Session, _ names: Names, _ tasks: inout DiscardingTaskGroup) async throws {
        let topic = names.topic("cancel")
        let group = names.group("cancel")
        let stopTimeout = self.configuration.stopTimeout
        // This subscription runs in a task group of its own, so that only its task is cancelled.
        let cancelled = Subscriber(label: "cancelled", topic: topic, group: group, probeHold: .zero) { _ in .acknowledge }
        let pubsub = session.pubsub
        let request = SubscribeRequest(topic: topic, consumerGroup: group, maxConcurrency: 1)
        var readiness: (any Error)?
        await withTaskGroup(of: Void.self) { subscription in
            subscription.addTask {
                // Returning or throwing (CancellationError) are both fine after a cancellation.
                _ = try? await pubsub.subscribe(request, until: cancelled.stop) { await cancelled.handle($0) }
                cancelled.finished(with: nil)
            }
            do {
                try await session.awaitReady([cancelled], topic: topic)
            } catch {
                readiness = error
            }
            subscription.cancelAll()
            if !(await cancelled.returned.sleep(for: stopTimeout)) {
                Issue.record("cancellation: subscribe did not return within \(stopTimeout) of its task being cancelled; cancellation must be a hard stop")
                // Fall back to a graceful stop so the check can end.
                cancelled.stop.stop()
            }
        }
        if let readiness { throw readiness }
        let after = session.subscribe("after-cancel", topic: topic, group: group, in: &tasks)
        try await session.awaitReady([after], topic: topic)
        let payloads = names.payloads("after-cancel", 3)
        for payload in payloads { try await session.publish(topic, payload) }
        await session.expectReceives(after, payloads, "a subscription started after another was cancelled")
        #expect(!cancelled.deliveries.contains { payloads.contains($0.data) }, "cancellation: a cancelled subscription still received messages")
    }

    func checkMessageTTL(_ session: Session, _ names: Names, _ tasks: inout DiscardingTaskGroup) async throws {
        let topic = names.topic("ttl")
        let blocker = names.payload("ttl-blocker", 0)
        let started = StopSignal(), gate = StopSignal()
        // maxConcurrency 1 and a blocked handler: later messages wait in the component until released.
        let subscriber = session.subscribe("ttl", topic: topic, group: names.group("ttl"), in: &tasks) { message in
            if message.data == blocker {
                started.stop()
                await gate.wait()
            }
            return .acknowledge
        }
        try await session.awaitReady([subscriber], topic: topic)
        try await session.publish(topic, blocker)
        guard await started.sleep(for: self.configuration.deliveryTimeout) else {
            throw ConformanceFailure("messageTTL: the blocking message never reached its handler")
        }
        let expiring = names.payload("ttl-expiring", 0)
        let longLived = names.payload("ttl-long", 0)
        let plain = names.payload("ttl-none", 0)
        try await session.publish(topic, expiring, ttl: self.configuration.messageTTL)
        try await session.publish(topic, longLived, ttl: .seconds(3600))
        try await session.publish(topic, plain)
        try? await Task.sleep(for: self.configuration.messageTTL + .milliseconds(500))
        gate.stop()
        await session.expectReceives(subscriber, [longLived, plain], "messages without a TTL or with a long one")
        await session.quiet()
        #expect(!subscriber.received(expiring), "messageTTL: a message was delivered after its TTL of \(self.configuration.messageTTL) had passed")
    }

    func checkBulkPublish(_ session: Session, _ names: Names, _ tasks: inout DiscardingTaskGroup) async throws {
        let bulk = try #require(session.pubsub as? any BulkPublisher, "declares .bulkPublish but does not adopt BulkPublisher")
        let topic = names.topic("bulk")
        let subscriber = session.subscribe("bulk", topic: topic, group: names.group("bulk"), in: &tasks)
        try await session.awaitReady([subscriber], topic: topic)
        let payloads = names.payloads("bulk", self.configuration.messageCount)
        let entries = payloads.enumerated().map { index, payload in
            BulkPublishEntry(entryID: String(index), request: PublishRequest(topic: topic, data: payload, contentType: "text/plain"))
        }
        let failed = try await bulk.bulkPublish(entries)
        #expect(failed.isEmpty, "bulk publish reported failed entries: \(failed.map { "\($0.entryID): \($0.error)" })")
        let none = try await bulk.bulkPublish([])
        #expect(none.isEmpty, "bulk publish of no entries reported failures")
        await session.expectReceives(subscriber, payloads, "bulk-published entries")
        await session.quiet()
        session.expectExactlyOnce(subscriber, payloads, "bulk publish")
        if self.configuration.deliversInOrder {
            let inOrder = subscriber.deliveries.map(\.data) == payloads
            #expect(inOrder, "bulk publish: entries arrived out of order: \(subscriber.deliveries.map { Conformance.show($0.data) })")
        }
    }

    /// Restart: the first instance registers the group, refuses one message, stops; messages are
    /// published with no subscriber running; a second instance over the same backend delivers them all.
    func checkDurability(_ names: Names) async throws {
        let topic = names.topic("durable")
        let group = names.group("durable")
        let refused = names.payload("durable-refused", 0)
        let published = names.payloads("durable", self.configuration.messageCount)
        try await self.session(.durability) { session, tasks in
            let subscriber = session.subscribe("before-restart", topic: topic, group: group, in: &tasks) { message in
                message.data == refused ? .redeliver : .acknowledge
            }
            try await session.awaitReady([subscriber], topic: topic)
            try await session.publish(topic, refused)
            await session.expectReceives(subscriber, [refused], "a message refused before the restart")
            await session.stop(subscriber)
            for payload in published { try await session.publish(topic, payload) }
        }
        try await self.session(.durability) { session, tasks in
            let subscriber = session.subscribe("after-restart", topic: topic, group: group, in: &tasks)
            await session.expectReceives(subscriber, published + [refused], "messages published while no subscriber ran, after a restart")
            await session.quiet()
            session.expectExactlyOnce(subscriber, published + [refused], "durability")
            if self.configuration.deliversInOrder {
                let order = subscriber.deliveries.map(\.data).filter { $0 != refused }
                let inOrder = order == published
                #expect(inOrder, "durability: messages kept over a restart arrived out of order: \(order.map(Conformance.show))")
            }
            if let again = subscriber.deliveries.first(where: { $0.data == refused }) {
                #expect(again.redeliveryCount >= 1, "durability: a message refused before the restart came back with redeliveryCount \(again.redeliveryCount)")
            }
        }
    }
}

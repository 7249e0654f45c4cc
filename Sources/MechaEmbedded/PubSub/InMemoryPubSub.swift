public import Logging
public import MechaCore
import Synchronization

/// `pubsub.in-memory`: pub/sub inside one sidecar process (nothing survives a restart, nothing is
/// shared between sidecars). Each consumer group gets every message; unlike Dapr's in-memory broker
/// it redelivers what the app did not accept, with backoff, instead of losing it.
public final class InMemoryPubSub: PubSub {
    struct Entry {
        var id: Int64
        var message: ReceivedMessage
        var attempts = 0
        var availableAt: ContinuousClock.Instant
        var leased = false
        var expiresAt: ContinuousClock.Instant?
    }

    struct State {
        /// topic → group → queue
        var queues: [String: [String: [Entry]]] = [:]
        var nextID: Int64 = 0
    }

    private let state = Mutex(State())
    private let doorbells = Mutex<[String: [ObjectIdentifier: Doorbell]]>([:])
    let logger: Logger

    public var features: PubSubFeatures { [.messageTTL, .competingConsumers] }

    public init(logger: Logger = Logger(label: "mecha.pubsub.in-memory")) {
        self.logger = logger
    }

    public func publish(_ request: PublishRequest) async throws {
        let now = ContinuousClock.now
        self.state.withLock { state in
            guard let groups = state.queues[request.topic] else { return }
            state.nextID += 1
            let id = state.nextID
            let message = ReceivedMessage(topic: request.topic, data: request.data, contentType: request.contentType, metadata: request.metadata, messageID: String(id))
            for group in groups.keys {
                state.queues[request.topic]?[group]?.append(Entry(id: id, message: message, availableAt: now, expiresAt: request.ttl.map { now + $0 }))
            }
        }
        let bells = self.doorbells.withLock { Array(($0[request.topic] ?? [:]).values) }
        for bell in bells { bell.ring() }
    }

    public func subscribe(
        _ request: SubscribeRequest,
        until stop: StopSignal,
        handler: @escaping @Sendable (ReceivedMessage) async -> MessageDisposition
    ) async throws {
        self.state.withLock { state in
            if state.queues[request.topic]?[request.consumerGroup] == nil {
                state.queues[request.topic, default: [:]][request.consumerGroup] = []
            }
        }
        let doorbell = Doorbell()
        let key = ObjectIdentifier(doorbell)
        self.doorbells.withLock { $0[request.topic, default: [:]][key] = doorbell }
        defer { self.doorbells.withLock { _ = $0[request.topic]?.removeValue(forKey: key) } }
        await DeliveryLoop.run(
            queue: Queue(pubsub: self, topic: request.topic, group: request.consumerGroup),
            doorbell: doorbell,
            concurrency: min(max(1, request.maxConcurrency), 1),
            pollInterval: .milliseconds(250),
            backoff: RedeliveryBackoff(initial: .milliseconds(500), maximum: .seconds(30)),
            logger: self.logger,
            until: stop,
            handler: handler
        )
    }

    struct Queue: MessageQueue {
        let pubsub: InMemoryPubSub
        let topic: String
        let group: String

        func claim(max: Int) async throws -> [ClaimedMessage] {
            let now = ContinuousClock.now
            return self.pubsub.state.withLock { state in
                guard var entries = state.queues[self.topic]?[self.group] else { return [] }
                entries.removeAll { entry in entry.expiresAt.map { $0 <= now } ?? false }
                var claimed: [ClaimedMessage] = []
                for index in entries.indices where claimed.count < max && !entries[index].leased && entries[index].availableAt <= now {
                    entries[index].leased = true
                    entries[index].attempts += 1
                    var message = entries[index].message
                    message.redeliveryCount = entries[index].attempts - 1
                    claimed.append(ClaimedMessage(message: message, token: entries[index].id, attempts: entries[index].attempts))
                }
                state.queues[self.topic]?[self.group] = entries
                return claimed
            }
        }

        func acknowledge(_ claimed: ClaimedMessage) async throws {
            self.pubsub.state.withLock { state in
                state.queues[self.topic]?[self.group]?.removeAll { $0.id == claimed.token }
            }
        }

        func release(_ claimed: ClaimedMessage, after delay: Duration) async throws {
            let availableAt = ContinuousClock.now + delay
            self.pubsub.state.withLock { state in
                guard let index = state.queues[self.topic]?[self.group]?.firstIndex(where: { $0.id == claimed.token }) else { return }
                state.queues[self.topic]?[self.group]?[index].leased = false
                state.queues[self.topic]?[self.group]?[index].availableAt = availableAt
            }
        }
    }
}

/// Factory for `pubsub.in-memory` (no metadata).
public struct InMemoryPubSubFactory: ComponentFactory {
    public init() {}
    public var type: ComponentType { ComponentType(.pubsub, "in-memory") }
    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        InMemoryPubSub(logger: context.logger)
    }
}

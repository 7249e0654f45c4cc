import Logging
public import MechaCore
import NIOCore
public import RESPClient
import RESPWire
import Synchronization

/// `pubsub.redis`: Redis Streams in Dapr's layout, so daprd and Mecha sidecars can publish to and
/// consume from the same topics.
///
/// A topic is a stream; a message is an entry with the field `data` (the bytes published) and,
/// when the publish carried metadata, `metadata` (a JSON object of strings). Each consumer group
/// (the app id, or `consumerID`) is a stream consumer group created at the start of the stream,
/// so it also receives what was published before it first subscribed; the instances of one app
/// compete for its messages. An entry is acknowledged (`XACK`) only after the handler's
/// `.acknowledge`; a `.redeliver`, a crash or a kill leaves it pending, and a pending entry idle
/// for `processingTimeout` is claimed (`XPENDING` + `XCLAIM`) by whichever consumer of the group
/// checks next (every `redeliverInterval`). Nothing is lost when a sidecar dies mid-delivery.
public final class RedisStreamsPubSub: PubSub, BulkPublisher, RedisPooledComponent {
    public let pool: RESPConnectionPool
    public let configuration: RedisStreamsConfiguration
    let instanceID: String
    let logger: Logger
    private let subscriptionCounter = Atomic<Int>(0)

    public var features: PubSubFeatures { [.bulkPublish, .durable, .competingConsumers] }

    init(pool: RESPConnectionPool, configuration: RedisStreamsConfiguration, instanceID: String, logger: Logger) {
        self.pool = pool
        self.configuration = configuration
        self.instanceID = instanceID
        self.logger = logger
    }

    // MARK: Publishing

    public func publish(_ request: PublishRequest) async throws {
        do {
            _ = try await self.pool.send(self.addCommand(request))
        } catch {
            throw PubSubError("redis streams: error from publish: \(error)")
        }
    }

    /// One pipelined round trip; entries the server refused are reported with its reason.
    public func bulkPublish(_ entries: [BulkPublishEntry]) async throws -> [(entryID: String, error: String)] {
        guard !entries.isEmpty else { return [] }
        let replies: [RESPValue]
        do {
            replies = try await self.pool.pipeline(entries.map { self.addCommand($0.request) })
        } catch {
            return entries.map { ($0.entryID, "redis streams: error from publish: \(error)") }
        }
        var failed: [(entryID: String, error: String)] = []
        for (entry, reply) in zip(entries, replies) {
            if case .error(let message) = reply { failed.append((entry.entryID, "redis streams: error from publish: \(message)")) }
        }
        return failed
    }

    /// `XADD <topic> [MAXLEN ~ n | MINID ~ id] * data <bytes> [metadata <json>]`.
    func addCommand(_ request: PublishRequest) -> RESPCommand {
        var command: RESPCommand = ["XADD", request.topic]
        if self.configuration.maxLenApprox > 0 {
            command.append(contentsOf: ["MAXLEN", "~", self.configuration.maxLenApprox])
        } else if self.configuration.streamTTL > .zero {
            let oldest = max(0, WallClock.now().unixMilliseconds.subtractingSaturated(self.configuration.streamTTL.milliseconds))
            command.append(contentsOf: ["MINID", "~", "\(oldest)-1"])
        }
        command.append(contentsOf: ["*", "data", request.data])
        if !request.metadata.isEmpty {
            command.append(contentsOf: ["metadata", JSONValue.stringMap(request.metadata).jsonString])
        }
        return command
    }

    // MARK: Subscribing

    public func subscribe(
        _ request: SubscribeRequest,
        until stop: StopSignal,
        handler: @escaping @Sendable (ReceivedMessage) async -> MessageDisposition
    ) async throws {
        try await self.createGroup(topic: request.topic, group: request.consumerGroup)
        let number = self.subscriptionCounter.add(1, ordering: .relaxed).newValue
        let subscription = RedisStreamSubscription(
            pubsub: self,
            topic: request.topic,
            group: request.consumerGroup,
            consumer: "\(self.instanceID)-\(number)",
            concurrency: min(self.configuration.concurrency, max(1, request.maxConcurrency))
        )
        await subscription.run(until: stop, handler: handler)
    }

    /// `XGROUP CREATE <topic> <group> 0 MKSTREAM`; an existing group is fine.
    func createGroup(topic: String, group: String) async throws {
        do {
            _ = try await self.pool.send(["XGROUP", "CREATE", topic, group, "0", "MKSTREAM"])
        } catch let error as RESPError where error.serverErrorPrefix == "BUSYGROUP" {
            return
        } catch {
            throw PubSubError("redis streams: cannot create consumer group \(group) for stream \(topic): \(error)")
        }
    }

    // MARK: Lifecycle

    /// Keeps the pool's connections healthy until stopped.
}

/// Factory for `pubsub.redis` (v1). See `RedisStreamsConfiguration` for the metadata.
public struct RedisStreamsPubSubFactory: ComponentFactory {
    public init() {}
    public var type: ComponentType { ComponentType(.pubsub, "redis") }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        let configuration = try RedisStreamsConfiguration(spec.metadata)
        let pool = try await configuration.client.connectedPool(logger: context.logger) { PubSubError("redis streams: \($0)") }
        if configuration.maxLenApprox > 0 && configuration.streamTTL > .zero {
            context.logger.warning("redis streams: maxLenApprox and streamTTL cannot be used together; trimming by maxLenApprox only")
        }
        return RedisStreamsPubSub(pool: pool, configuration: configuration, instanceID: context.instanceID, logger: context.logger)
    }
}

/// Optional pub/sub capabilities.
public struct PubSubFeatures: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Honours `ttlInSeconds` itself (expired messages are never delivered).
    public static let messageTTL = PubSubFeatures(rawValue: 1 << 0)
    /// Publishes several messages in one call (`BulkPublisher`).
    public static let bulkPublish = PubSubFeatures(rawValue: 1 << 1)
    /// Keeps messages published while no subscriber runs, and redelivers unacknowledged ones.
    public static let durable = PubSubFeatures(rawValue: 1 << 2)
    /// Several instances of one app id share a subscription; each message goes to one of them.
    public static let competingConsumers = PubSubFeatures(rawValue: 1 << 3)

    public var capabilityNames: [String] {
        var names: [String] = []
        if self.contains(.bulkPublish) { names.append("BULK_PUBSUB") }
        if self.contains(.messageTTL) { names.append("MESSAGE_TTL") }
        return names
    }
}

public struct PublishRequest: Sendable, Hashable {
    public var topic: String
    /// The bytes to store and deliver (a serialised CloudEvent unless raw).
    public var data: [UInt8]
    public var contentType: String?
    public var metadata: [String: String]
    /// Expiry from `metadata.ttlInSeconds`, when given.
    public var ttl: Duration?

    public init(topic: String, data: [UInt8], contentType: String? = nil, metadata: [String: String] = [:], ttl: Duration? = nil) {
        self.topic = topic
        self.data = data
        self.contentType = contentType
        self.metadata = metadata
        self.ttl = ttl
    }
}

/// A message handed to the runtime by a subscription.
public struct ReceivedMessage: Sendable, Hashable {
    public var topic: String
    public var data: [UInt8]
    public var contentType: String?
    public var metadata: [String: String]
    /// The component's own id for the message, for logs.
    public var messageID: String
    /// How many times this message has been handed out before (0 on first delivery).
    public var redeliveryCount: Int

    public init(topic: String, data: [UInt8], contentType: String? = nil, metadata: [String: String] = [:], messageID: String, redeliveryCount: Int = 0) {
        self.topic = topic
        self.data = data
        self.contentType = contentType
        self.metadata = metadata
        self.messageID = messageID
        self.redeliveryCount = redeliveryCount
    }
}

/// What the runtime tells the component about one message once it has been handled.
public enum MessageDisposition: Sendable, Hashable {
    /// Handled (or deliberately dropped): remove it; never deliver it again.
    case acknowledge
    /// Not handled: keep it and deliver it again later.
    case redeliver
}

public struct SubscribeRequest: Sendable, Hashable {
    public var topic: String
    /// The group sharing one copy of each message: the app id unless `consumerID` says otherwise.
    public var consumerGroup: String
    /// Upper bound on handler calls in flight at once.
    public var maxConcurrency: Int
    public var metadata: [String: String]

    public init(topic: String, consumerGroup: String, maxConcurrency: Int = 16, metadata: [String: String] = [:]) {
        self.topic = topic
        self.consumerGroup = consumerGroup
        self.maxConcurrency = maxConcurrency
        self.metadata = metadata
    }
}

/// The pub/sub building block's component contract.
///
/// `subscribe` delivers messages to `handler` until `stop` fires: it then stops fetching, lets every
/// handler already running finish, applies their dispositions and returns. Task cancellation is a
/// hard stop. A message is removed only after its handler returned `.acknowledge`.
public protocol PubSub: Component {
    var features: PubSubFeatures { get }
    func publish(_ request: PublishRequest) async throws
    func subscribe(
        _ request: SubscribeRequest,
        until stop: StopSignal,
        handler: @escaping @Sendable (ReceivedMessage) async -> MessageDisposition
    ) async throws
}

/// One entry of a bulk publish.
public struct BulkPublishEntry: Sendable, Hashable {
    public var entryID: String
    public var request: PublishRequest

    public init(entryID: String, request: PublishRequest) {
        self.entryID = entryID
        self.request = request
    }
}

/// A pub/sub that publishes several messages in one call (declares `.bulkPublish`). Returns the ids
/// of entries that failed, with the reason; an empty result means all succeeded.
public protocol BulkPublisher: PubSub {
    func bulkPublish(_ entries: [BulkPublishEntry]) async throws -> [(entryID: String, error: String)]
}

public struct PubSubError: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { self.reason }
}

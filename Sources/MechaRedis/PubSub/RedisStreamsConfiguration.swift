public import MechaCore

/// Typed `pubsub.redis` metadata, with Dapr's names: the connection fields of
/// `RedisClientSettings`, and
/// - `consumerID`: the consumer group (the runtime fills in the app id; subscriptions carry it).
/// - `processingTimeout` (default 60s): how long a delivered message may stay unacknowledged
///   before another consumer of the group takes it over.
/// - `redeliverInterval` (default 15s): how often pending messages are checked for that; `0`
///   (or a `processingTimeout` of `0`) disables redelivery.
/// - `queueDepth` (default 100): most messages read at once.
/// - `concurrency` (default 10): most handlers running at once per subscription.
/// - `maxLenApprox`: trims each stream to about this many entries on publish (`MAXLEN ~`).
/// - `streamTTL`: trims entries older than this on publish (`MINID ~`); ignored when
///   `maxLenApprox` is set, as in Dapr.
///
/// As in Dapr, `processingTimeout` and `redeliverInterval` given as bare integers are milliseconds.
public struct RedisStreamsConfiguration: Sendable {
    public var client: RedisClientSettings
    public var consumerID: String?
    public var processingTimeout: Duration
    public var redeliverInterval: Duration
    public var queueDepth: Int
    public var concurrency: Int
    public var maxLenApprox: Int
    public var streamTTL: Duration

    /// Whether pending messages are ever reclaimed.
    public var redeliveryEnabled: Bool { self.processingTimeout > .zero && self.redeliverInterval > .zero }

    public init(_ metadata: ComponentMetadata) throws(ComponentConfigurationError) {
        self.client = try RedisClientSettings(metadata)
        self.consumerID = metadata.string("consumerID")
        self.processingTimeout = try Self.nonNegative(metadata, "processingTimeout", default: .seconds(60))
        self.redeliverInterval = try Self.nonNegative(metadata, "redeliverInterval", default: .seconds(15))
        self.queueDepth = try metadata.int("queueDepth", default: 100, range: 1...100_000)
        self.concurrency = try metadata.int("concurrency", default: 10, range: 1...10_000)
        self.maxLenApprox = try metadata.int("maxLenApprox", default: 0, range: 0...Int(Int64.max))
        self.streamTTL = try Self.nonNegative(metadata, "streamTTL", default: .zero)
    }

    static func nonNegative(_ metadata: ComponentMetadata, _ key: String, default defaultValue: Duration) throws(ComponentConfigurationError) -> Duration {
        try metadata.duration(key, default: defaultValue, integerUnit: .milliseconds(1))
    }
}

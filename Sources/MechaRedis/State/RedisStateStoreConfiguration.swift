public import MechaCore

/// Typed `state.redis` metadata, with Dapr's names: the connection fields of
/// `RedisClientSettings`, and
/// - `ttlInSeconds`: default TTL of items saved without one (≤ 0 or absent: none).
/// - `actorStateStore` (a boolean; the runtime reads it).
/// - `keyPrefix` is read by the API layer (key prefixing), not here.
/// - `queryIndexes` is refused: the query API needs RedisJSON and RediSearch.
public struct RedisStateStoreConfiguration: Sendable {
    public var client: RedisClientSettings
    public var defaultTTL: Duration?
    public var actorStateStore: Bool

    public init(_ metadata: ComponentMetadata) throws(ComponentConfigurationError) {
        self.client = try RedisClientSettings(metadata)
        let ttl = try metadata.int("ttlInSeconds", default: 0, range: -1...Int(Int32.max))
        self.defaultTTL = ttl > 0 ? .seconds(ttl) : nil
        self.actorStateStore = try metadata.bool("actorStateStore", default: false)
        if metadata.string("queryIndexes") != nil {
            throw ComponentConfigurationError(
                key: "queryIndexes",
                reason: "the query API of state.redis needs the RedisJSON and RediSearch modules, which Mecha does not support"
            )
        }
    }
}

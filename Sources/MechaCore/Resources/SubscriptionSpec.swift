/// A subscription, declared in YAML (`kind: Subscription`, v1alpha1 or v2alpha1) or returned by the
/// app from `GET /dapr/subscribe`. Both end up as this value.
public struct SubscriptionSpec: Sendable, Hashable {
    public enum Origin: String, Sendable, Hashable {
        case declarative = "DECLARATIVE"
        case programmatic = "PROGRAMMATIC"
        case streaming = "STREAMING"
    }

    public var name: String
    public var pubsubName: String
    public var topic: String
    public var routes: SubscriptionRoutes
    public var metadata: [String: String]
    public var deadLetterTopic: String?
    public var bulkSubscribe: BulkSubscribeOptions?
    /// App ids allowed to use this subscription; empty means every app.
    public var scopes: [String]
    public var origin: Origin
    public var source: ResourceSource?

    public init(
        name: String = "",
        pubsubName: String,
        topic: String,
        routes: SubscriptionRoutes,
        metadata: [String: String] = [:],
        deadLetterTopic: String? = nil,
        bulkSubscribe: BulkSubscribeOptions? = nil,
        scopes: [String] = [],
        origin: Origin,
        source: ResourceSource? = nil
    ) {
        self.name = name
        self.pubsubName = pubsubName
        self.topic = topic
        self.routes = routes
        self.metadata = metadata
        self.deadLetterTopic = deadLetterTopic
        self.bulkSubscribe = bulkSubscribe
        self.scopes = scopes
        self.origin = origin
        self.source = source
    }

    public func isInScope(appID: String) -> Bool {
        self.scopes.isEmpty || self.scopes.contains(appID)
    }

    /// `metadata.rawPayload == true`: events arrive unwrapped from their CloudEvent.
    public var rawPayload: Bool {
        self.metadata.first { $0.key.lowercased() == "rawpayload" }.flatMap { ComponentMetadata.parseBool($0.value) } ?? false
    }
}

/// Where events go: rules tried in order (CEL `match` → `path`), then the default path.
public struct SubscriptionRoutes: Sendable, Hashable {
    public var rules: [RouteRule]
    public var defaultPath: String?

    public init(rules: [RouteRule] = [], defaultPath: String? = nil) {
        self.rules = rules
        self.defaultPath = defaultPath
    }
}

public struct RouteRule: Sendable, Hashable {
    /// A CEL expression over `event`; empty matches everything.
    public var match: String
    public var path: String

    public init(match: String, path: String) {
        self.match = match
        self.path = path
    }
}

/// `bulkSubscribe` options.
public struct BulkSubscribeOptions: Sendable, Hashable {
    public var enabled: Bool
    public var maxMessagesCount: Int
    public var maxAwaitDurationMs: Int

    public init(enabled: Bool, maxMessagesCount: Int = 100, maxAwaitDurationMs: Int = 1000) {
        self.enabled = enabled
        self.maxMessagesCount = maxMessagesCount
        self.maxAwaitDurationMs = maxAwaitDurationMs
    }
}

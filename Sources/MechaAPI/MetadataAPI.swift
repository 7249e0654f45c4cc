public import MechaCore
public import MechaRuntime
import Synchronization

/// How the sidecar reaches its app, as reported by the metadata API.
public struct AppConnectionProperties: Sendable, Hashable {
    public var port: Int
    public var `protocol`: String
    public var channelAddress: String
    public var maxConcurrency: Int
    public var healthCheckPath: String?
    public var healthProbeInterval: Duration?
    public var healthProbeTimeout: Duration?
    public var healthThreshold: Int?

    public init(
        port: Int,
        protocol: String,
        channelAddress: String,
        maxConcurrency: Int,
        healthCheckPath: String? = nil,
        healthProbeInterval: Duration? = nil,
        healthProbeTimeout: Duration? = nil,
        healthThreshold: Int? = nil
    ) {
        self.port = port
        self.protocol = `protocol`
        self.channelAddress = channelAddress
        self.maxConcurrency = maxConcurrency
        self.healthCheckPath = healthCheckPath
        self.healthProbeInterval = healthProbeInterval
        self.healthProbeTimeout = healthProbeTimeout
        self.healthThreshold = healthThreshold
    }
}

/// `GET /v1.0/metadata` and `PUT /v1.0/metadata/{key}`.
public final class MetadataAPI: Sendable {
    public let identity: SidecarIdentity
    let components: ComponentStore
    let subscriptions: SubscriptionManager
    public let enabledFeatures: [String]
    public let appConnection: AppConnectionProperties?

    /// Every component with its health, for surfaces that render their own format.
    public var componentStatuses: [ComponentStatus] { self.components.statuses }

    /// The subscriptions in effect.
    public var activeSubscriptions: [SubscriptionSpec] { self.subscriptions.subscriptions }
    private let extended = Mutex<[String: String]>([:])
    private let actorsBox = Mutex<ActorsAPI?>(nil)

    /// The actors building block whose state the document reports.
    public func attach(actors: ActorsAPI) { self.actorsBox.withLock { $0 = actors } }
    public var actors: ActorsAPI? { self.actorsBox.withLock { $0 } }

    public init(
        identity: SidecarIdentity,
        components: ComponentStore,
        subscriptions: SubscriptionManager,
        enabledFeatures: [String],
        appConnection: AppConnectionProperties?
    ) {
        self.identity = identity
        self.components = components
        self.subscriptions = subscriptions
        self.enabledFeatures = enabledFeatures
        self.appConnection = appConnection
    }

    /// Stores a custom attribute (`PUT /v1.0/metadata/{key}`); an empty key is ignored.
    public func setExtended(_ key: String, _ value: String) {
        guard !key.isEmpty else { return }
        self.extended.withLock { $0[key] = value }
    }

    public var extendedAttributes: [String: String] {
        var attributes = self.extended.withLock { $0 }
        attributes["daprRuntimeVersion"] = self.identity.runtimeVersion
        return attributes
    }

    /// The document daprd returns, field for field (empty fields omitted as daprd omits them).
    public var document: JSONValue {
        var members: [(String, JSONValue)] = [
            ("id", .string(self.identity.appID)),
            ("runtimeVersion", .string(self.identity.runtimeVersion)),
        ]
        if !self.enabledFeatures.isEmpty { members.append(("enabledFeatures", .array(self.enabledFeatures.map { .string($0) }))) }
        let statuses = self.components.statuses
        if !statuses.isEmpty {
            members.append(("components", .array(statuses.map(Self.component))))
        }
        members.append(("extended", .stringMap(self.extendedAttributes)))
        let subscriptions = self.subscriptions.subscriptions
        if !subscriptions.isEmpty {
            members.append(("subscriptions", .array(subscriptions.map(Self.subscription))))
        }
        if let app = self.appConnection {
            var connection: [(String, JSONValue)] = []
            if app.port > 0 { connection.append(("port", .int(app.port))) }
            connection.append(("protocol", .string(app.protocol)))
            connection.append(("channelAddress", .string(app.channelAddress)))
            if app.maxConcurrency > 0 { connection.append(("maxConcurrency", .int(app.maxConcurrency))) }
            if let interval = app.healthProbeInterval {
                var health: [(String, JSONValue)] = []
                if let path = app.healthCheckPath { health.append(("healthCheckPath", .string(path))) }
                health.append(("healthProbeInterval", .string(GoDuration.format(interval))))
                if let timeout = app.healthProbeTimeout { health.append(("healthProbeTimeout", .string(GoDuration.format(timeout)))) }
                if let threshold = app.healthThreshold { health.append(("healthThreshold", .int(threshold))) }
                connection.append(("health", .object(health)))
            }
            members.append(("appConnectionProperties", .object(connection)))
        }
        if let actors = self.actors {
            let counts = actors.activeCounts.map { JSONValue.object([("type", .string($0.type)), ("count", .int($0.count))]) }
            if !counts.isEmpty { members.append(("actors", .array(counts))) }
            var runtime: [(String, JSONValue)] = [("runtimeStatus", .string(actors.runtimeStatus))]
            if !counts.isEmpty { runtime.append(("activeActors", .array(counts))) }
            runtime.append(("hostReady", .bool(actors.hostReady)))
            runtime.append(("placement", .string(actors.placementStatus)))
            members.append(("actorRuntime", .object(runtime)))
        } else {
            members.append(("actorRuntime", .object([("runtimeStatus", "DISABLED"), ("hostReady", false), ("placement", "placement: disconnected")])))
        }
        return .object(members)
    }

    static func component(_ status: ComponentStatus) -> JSONValue {
        var members: [(String, JSONValue)] = [("name", .string(status.name)), ("type", .string(status.type.description))]
        if !status.version.isEmpty { members.append(("version", .string(status.version))) }
        if !status.capabilities.isEmpty { members.append(("capabilities", .array(status.capabilities.map { .string($0) }))) }
        if case .failed(let reason) = status.health {
            // Mecha extension: a component that failed with ignoreErrors stays visible, marked unhealthy.
            members.append(("health", .object([("status", "UNHEALTHY"), ("error", .string(reason))])))
        }
        return .object(members)
    }

    static func subscription(_ spec: SubscriptionSpec) -> JSONValue {
        var members: [(String, JSONValue)] = [("pubsubname", .string(spec.pubsubName)), ("topic", .string(spec.topic))]
        if !spec.metadata.isEmpty { members.append(("metadata", .stringMap(spec.metadata))) }
        var rules: [JSONValue] = spec.routes.rules.map { rule in
            var fields: [(String, JSONValue)] = []
            if !rule.match.isEmpty { fields.append(("match", .string(rule.match))) }
            fields.append(("path", .string(rule.path)))
            return .object(fields)
        }
        if let path = spec.routes.defaultPath { rules.append(.object([("path", .string(path))])) }
        if !rules.isEmpty { members.append(("rules", .array(rules))) }
        members.append(("deadLetterTopic", .string(spec.deadLetterTopic ?? "")))
        members.append(("type", .string(spec.origin.rawValue)))
        return .object(members)
    }
}

public import MechaCore

/// The app's actor settings from `GET /dapr/config` (daprd's names and defaults).
public struct ActorAppConfig: Sendable, Hashable {
    public struct TypeSettings: Sendable, Hashable {
        public var idleTimeout: Duration
        public var reentrancy: Bool
        public var maxStackDepth: Int
        public var drainOngoingCallTimeout: Duration
        public var drainRebalancedActors: Bool
    }

    /// The actor types the app hosts.
    public var entities: [String]
    public var idleTimeout: Duration = .seconds(3600)
    public var scanInterval: Duration = .seconds(30)
    public var drainOngoingCallTimeout: Duration = .seconds(60)
    public var drainRebalancedActors = true
    public var reentrancy = false
    public var maxStackDepth = 32
    public var remindersStoragePartitions = 0
    /// `entitiesConfig`: settings for some types.
    public var perType: [String: TypeSettings] = [:]

    public init(entities: [String] = []) {
        self.entities = entities
    }

    public func settings(for type: String) -> TypeSettings {
        self.perType[type]
            ?? TypeSettings(
                idleTimeout: self.idleTimeout, reentrancy: self.reentrancy, maxStackDepth: self.maxStackDepth,
                drainOngoingCallTimeout: self.drainOngoingCallTimeout, drainRebalancedActors: self.drainRebalancedActors)
    }

    /// Reads the app's answer. Durations are Go durations (`1h`, `30s`); bad values keep the
    /// default, as daprd does, and are reported in `warnings`.
    public static func parse(_ json: JSONValue) -> (config: ActorAppConfig, warnings: [String]) {
        var warnings: [String] = []
        var config = ActorAppConfig()
        config.entities = json["entities"]?.arrayValues?.compactMap(\.stringValue).filter { !$0.isEmpty } ?? []
        func duration(_ object: JSONValue, _ name: String, _ target: inout Duration) {
            guard let value = object[name], !value.isNull else { return }
            guard let text = value.stringValue, let parsed = GoDuration.parse(text), parsed > .zero else {
                warnings.append("\(name): cannot read \(value.typeName) as a duration; keeping \(GoDuration.format(target))")
                return
            }
            target = parsed
        }
        duration(json, "actorIdleTimeout", &config.idleTimeout)
        duration(json, "actorScanInterval", &config.scanInterval)
        duration(json, "drainOngoingCallTimeout", &config.drainOngoingCallTimeout)
        if let drain = json["drainRebalancedActors"]?.boolValue { config.drainRebalancedActors = drain }
        if let reentrancy = json["reentrancy"] {
            config.reentrancy = reentrancy["enabled"]?.boolValue ?? false
            if let depth = reentrancy["maxStackDepth"]?.intValue, depth > 0 { config.maxStackDepth = depth }
        }
        if let partitions = json["remindersStoragePartitions"]?.intValue, partitions >= 0 { config.remindersStoragePartitions = partitions }
        for entry in json["entitiesConfig"]?.arrayValues ?? [] {
            var settings = config.settings(for: "")
            duration(entry, "actorIdleTimeout", &settings.idleTimeout)
            duration(entry, "drainOngoingCallTimeout", &settings.drainOngoingCallTimeout)
            if let drain = entry["drainRebalancedActors"]?.boolValue { settings.drainRebalancedActors = drain }
            if let reentrancy = entry["reentrancy"] {
                settings.reentrancy = reentrancy["enabled"]?.boolValue ?? false
                if let depth = reentrancy["maxStackDepth"]?.intValue, depth > 0 { settings.maxStackDepth = depth }
            }
            for type in entry["entities"]?.arrayValues?.compactMap(\.stringValue) ?? [] {
                config.perType[type] = settings
            }
        }
        return (config, warnings)
    }
}

/// A component ready to be built: a `ComponentResource` whose metadata has been resolved to strings
/// (secret and environment references substituted). Factories receive this value.
public struct ComponentSpec: Sendable, Hashable {
    public var name: String
    public var namespace: String
    public var type: ComponentType
    /// `spec.version` exactly as written; reported verbatim by the metadata API.
    public var version: String
    public var metadata: ComponentMetadata
    public var initTimeout: Duration
    public var ignoreErrors: Bool
    public var scopes: [String]
    public var source: ResourceSource

    public init(
        name: String,
        namespace: String = "",
        type: ComponentType,
        version: String = "v1",
        metadata: ComponentMetadata = .init(),
        initTimeout: Duration = .seconds(5),
        ignoreErrors: Bool = false,
        scopes: [String] = [],
        source: ResourceSource? = nil
    ) {
        self.name = name
        self.namespace = namespace
        self.type = type
        self.version = version
        self.metadata = metadata
        self.initTimeout = initTimeout
        self.ignoreErrors = ignoreErrors
        self.scopes = scopes
        self.source = source ?? .builtIn("Component/\(name)")
    }

    /// Wraps a factory's metadata complaint into an error naming file, resource and field.
    public func error(_ error: ComponentConfigurationError) -> ResourceError {
        // The path alone (`spec.metadata[1].value`) makes the reader count entries: name the key too.
        let field = self.metadata.field(of: error.key).map { "\($0) (\(error.key))" } ?? "spec.metadata.\(error.key)"
        return ResourceError(source: self.source, field: field, reason: error.reason)
    }
}

/// Component properties (`spec.metadata[].name/value`). Keys match case-insensitively, as in Dapr.
/// Typed readers fail loudly on a malformed value instead of silently using a default.
public struct ComponentMetadata: Sendable, Hashable {
    private var storage: [String: String]
    private var originalKeys: [String: String]
    private var fields: [String: String]

    public init(_ properties: [String: String] = [:]) {
        self.storage = [:]
        self.originalKeys = [:]
        self.fields = [:]
        for (key, value) in properties { self[key] = value }
    }

    /// Sets a value and remembers the YAML field it came from.
    public mutating func set(_ key: String, _ value: String, field: String) {
        self[key] = value
        self.fields[key.lowercased()] = field
    }

    public subscript(key: String) -> String? {
        get { self.storage[key.lowercased()] }
        set {
            self.storage[key.lowercased()] = newValue
            if newValue == nil {
                self.originalKeys[key.lowercased()] = nil
            } else if self.originalKeys[key.lowercased()] == nil {
                self.originalKeys[key.lowercased()] = key
            }
        }
    }

    /// The YAML field path a key came from, for error messages.
    public func field(of key: String) -> String? { self.fields[key.lowercased()] }

    /// All properties with their keys as first written.
    public var properties: [String: String] {
        var result: [String: String] = [:]
        for (lowered, value) in self.storage { result[self.originalKeys[lowered] ?? lowered] = value }
        return result
    }

    public var isEmpty: Bool { self.storage.isEmpty }

    /// The first key present, mirroring Dapr's aliases (`redisHost` / `host`).
    public func value(forAnyOf keys: String...) -> String? {
        for key in keys { if let value = self[key] { return value } }
        return nil
    }

    /// A required, non-empty string.
    public func require(_ key: String) throws(ComponentConfigurationError) -> String {
        guard let value = self[key]?.trimmingSpaces(), !value.isEmpty else {
            throw ComponentConfigurationError(key: key, reason: "required metadata field '\(key)' is missing")
        }
        return value
    }

    /// An optional string; empty counts as absent.
    public func string(_ key: String) -> String? {
        guard let value = self[key], !value.isEmpty else { return nil }
        return value
    }

    /// A boolean (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, `t`/`f`, any case).
    public func bool(_ key: String, default defaultValue: Bool) throws(ComponentConfigurationError) -> Bool {
        guard let raw = self[key]?.trimmingSpaces(), !raw.isEmpty else { return defaultValue }
        guard let value = Self.parseBool(raw) else {
            throw ComponentConfigurationError(key: key, reason: "cannot parse '\(raw)' as a boolean")
        }
        return value
    }

    /// An integer, optionally bounded.
    public func int(
        _ key: String,
        default defaultValue: Int,
        range: ClosedRange<Int>? = nil
    ) throws(ComponentConfigurationError) -> Int {
        guard let raw = self[key]?.trimmingSpaces(), !raw.isEmpty else { return defaultValue }
        guard let value = Int(raw) else {
            throw ComponentConfigurationError(key: key, reason: "cannot parse '\(raw)' as an integer")
        }
        if let range, !range.contains(value) {
            throw ComponentConfigurationError(
                key: key,
                reason: "\(value) is out of range \(range.lowerBound)...\(range.upperBound)"
            )
        }
        return value
    }

    /// A duration in Go syntax (`5s`, `250ms`); a bare integer is read in `integerUnit`.
    ///
    /// The value must lie in `range` (by default zero up to `Duration.maximumInterval`): a
    /// negative, zero or enormous value where the component cannot use one is a configuration
    /// error naming the field, never a spinning loop or an overflow later.
    public func duration(
        _ key: String,
        default defaultValue: Duration,
        integerUnit: Duration = .seconds(1),
        range: ClosedRange<Duration> = .zero ... .maximumInterval
    ) throws(ComponentConfigurationError) -> Duration {
        guard let raw = self[key]?.trimmingSpaces(), !raw.isEmpty else { return defaultValue }
        let value: Duration
        if let integer = Int64(raw) {
            value = integerUnit * integer
        } else if let parsed = GoDuration.parse(raw) {
            value = parsed
        } else if raw.utf8.allSatisfy({ (0x30...0x39).contains($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "+") }) {
            // Digits only, yet not an Int64: a number too large to be a duration.
            value = raw.hasPrefix("-") ? (.zero - Duration.goMaximum) : .goMaximum
        } else {
            throw ComponentConfigurationError(key: key, reason: "cannot parse '\(raw)' as a duration (e.g. 5s, 250ms, 1m)")
        }
        guard range.contains(value) else {
            throw ComponentConfigurationError(
                key: key,
                reason: "'\(raw)' is out of range: must be from \(GoDuration.format(range.lowerBound)) to \(GoDuration.format(range.upperBound))"
            )
        }
        return value
    }

    /// One of a fixed set of values (compared case-insensitively); the error lists the choices.
    public func choice(
        _ key: String,
        of choices: [String],
        default defaultValue: String
    ) throws(ComponentConfigurationError) -> String {
        guard let raw = self[key]?.trimmingSpaces(), !raw.isEmpty else { return defaultValue }
        guard let match = choices.first(where: { $0.lowercased() == raw.lowercased() }) else {
            throw ComponentConfigurationError(
                key: key,
                reason: "'\(raw)' is not one of \(choices.joined(separator: ", "))"
            )
        }
        return match
    }

    public static func parseBool(_ raw: String) -> Bool? {
        switch raw.lowercased() {
        case "true", "1", "yes", "y", "on", "t": true
        case "false", "0", "no", "n", "off", "f": false
        default: nil
        }
    }
}

/// Thrown by a factory while turning a `ComponentSpec` into a live component: which metadata key is
/// wrong and why. The runtime adds the file and resource.
public struct ComponentConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var key: String
    public var reason: String

    public init(key: String, reason: String) {
        self.key = key
        self.reason = reason
    }

    public var description: String { "metadata '\(self.key)': \(self.reason)" }
}

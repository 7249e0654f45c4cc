/// One configuration value (Dapr's `ConfigurationItem`).
public struct ConfigurationItem: Sendable, Hashable {
    public var value: String
    public var version: String
    public var metadata: [String: String]

    public init(value: String, version: String = "", metadata: [String: String] = [:]) {
        self.value = value
        self.version = version
        self.metadata = metadata
    }

    /// What a subscriber receives for a deleted key: no value, no version (as Dapr's stores send).
    public static let deleted = ConfigurationItem(value: "")
}

/// Changes to watched keys, one batch (key → new item) per element. The stream ends with an error
/// when the watch breaks; a consumer that stops iterating (or is cancelled) releases the watch.
public typealias ConfigurationUpdates = AsyncThrowingStream<[String: ConfigurationItem], any Error>

/// The configuration building block's component contract (Dapr's `configuration.*`).
public protocol ConfigurationStore: Component {
    /// The items for `keys`; every item when `keys` is empty. Missing keys are left out.
    func get(keys: [String], metadata: [String: String]) async throws -> [String: ConfigurationItem]

    /// Watches `keys` (every key when empty). Returns once the watch is in place, so a change made
    /// after it returns is delivered.
    func subscribe(keys: [String], metadata: [String: String]) async throws -> ConfigurationUpdates
}

public struct ConfigurationStoreError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { self.reason }
}

public import Logging

/// Every live component. Building-block contracts (`StateStore`, `PubSub`, …) refine it.
///
/// Components own their connections. Background work (cleanup loops, heartbeats, polling) lives in
/// `run(until:)`, which the runtime runs in its service group; nothing is started from an initialiser.
public protocol Component: Sendable {
    /// Long-running work the component needs while live. Returns when `stop` fires (or the task is
    /// cancelled). The default returns at once: most components need no background work.
    func run(until stop: StopSignal) async throws

    /// Releases resources. Called once, after `run(until:)` has returned.
    func close() async throws
}

extension Component {
    public func run(until stop: StopSignal) async throws {}
    public func close() async throws {}
}

/// Everything a factory may use while building a component. Grows by adding fields, never by adding
/// parameters to `make`.
public struct ComponentContext: Sendable {
    /// The app id of the sidecar loading the component.
    public var appID: String
    public var namespace: String
    /// Mecha's data directory (`~/.mecha` by default): where embedded databases live.
    public var dataDirectory: String
    /// Unique id of this sidecar process (stable for its lifetime).
    public var instanceID: String
    public var logger: Logger

    public init(
        appID: String,
        namespace: String = "default",
        dataDirectory: String,
        instanceID: String,
        logger: Logger = Logger(label: "mecha.component")
    ) {
        self.appID = appID
        self.namespace = namespace
        self.dataDirectory = dataDirectory
        self.instanceID = instanceID
        self.logger = logger
    }
}

/// Builds one component type from a resolved spec. One factory per type; `versions` lists what
/// `spec.version` may say (the first is the default when the version is empty).
public protocol ComponentFactory: Sendable {
    /// e.g. `state.sqlite`.
    var type: ComponentType { get }
    /// Versions this factory answers to. Default `["v1"]`.
    var versions: [String] { get }
    /// Builds and initialises the component. Throw `ComponentConfigurationError` for a bad metadata
    /// value (the runtime names file, resource and field); any other error is an init failure.
    func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component
}

extension ComponentFactory {
    public var versions: [String] { ["v1"] }
}

/// Capability strings a component reports in the metadata API (`ETAG`, `TRANSACTIONAL`, …).
public protocol CapabilityReporting: Sendable {
    var capabilities: [String] { get }
}

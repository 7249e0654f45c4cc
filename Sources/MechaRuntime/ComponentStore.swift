public import MechaCore
public import MechaResiliency
import Synchronization

/// One component as the metadata API reports it.
public struct ComponentStatus: Sendable, Hashable {
    public enum Health: Sendable, Hashable {
        case ready
        /// Failed to initialise (and was ignored because of `ignoreErrors`).
        case failed(String)
    }

    public var name: String
    public var type: ComponentType
    /// `spec.version` exactly as written.
    public var version: String
    public var capabilities: [String]
    public var health: Health

    public init(name: String, type: ComponentType, version: String, capabilities: [String], health: Health) {
        self.name = name
        self.type = type
        self.version = version
        self.capabilities = capabilities
        self.health = health
    }
}

/// Live components by name. Lookups are lock-protected dictionary reads on the request path; the
/// lock is never held across an await.
public final class ComponentStore: Sendable {
    public struct Entry: Sendable {
        public var spec: ComponentSpec
        public var component: any Component
        /// Fires when this entry is replaced or removed (hot reload): loops working on the
        /// component (its own `run`, subscriptions, input bindings) stop and look the name up again.
        public let retired = StopSignal()
    }

    private struct Storage {
        var entries: [String: Entry] = [:]
        var order: [String] = []
        var failed: [String: ComponentStatus] = [:]
        var failedOrder: [String] = []
    }

    private let storage = Mutex(Storage())
    /// Every call to a component goes through it (`call(_:_:_:_:)`).
    public let outbound: OutboundSeam

    public init(outbound: OutboundSeam = OutboundSeam()) {
        self.outbound = outbound
    }

    /// Calls component `name` through its outbound policies (Resiliency
    /// `targets.components.<name>.outbound` or Dapr's default component policies).
    public func call<Output: Sendable>(
        _ name: String,
        _ category: ComponentCategory,
        _ operation: OperationName,
        fallback: TargetPolicy? = nil,
        _ body: @Sendable () async throws -> Output
    ) async throws -> Output {
        try await self.outbound.call(.component(name, category, .outbound), operation, fallback: fallback) { _ in try await body() }
    }

    /// Makes `component` the live one for `spec.name`; returns the entry it replaced (whose
    /// `retired` the caller fires once it is ready to, then closes its component).
    @discardableResult
    public func add(_ component: any Component, spec: ComponentSpec) -> Entry? {
        self.storage.withLock { storage in
            if storage.entries[spec.name] == nil { storage.order.append(spec.name) }
            let replaced = storage.entries[spec.name]
            storage.entries[spec.name] = Entry(spec: spec, component: component)
            storage.failed[spec.name] = nil
            storage.failedOrder.removeAll { $0 == spec.name }
            return replaced
        }
    }

    public func markFailed(_ spec: ComponentSpec, reason: String) {
        self.storage.withLock { storage in
            if storage.failed[spec.name] == nil { storage.failedOrder.append(spec.name) }
            storage.failed[spec.name] = ComponentStatus(name: spec.name, type: spec.type, version: spec.version, capabilities: [], health: .failed(reason))
        }
    }

    public func remove(_ name: String) -> Entry? {
        self.storage.withLock { storage in
            storage.order.removeAll { $0 == name }
            storage.failed[name] = nil
            storage.failedOrder.removeAll { $0 == name }
            return storage.entries.removeValue(forKey: name)
        }
    }

    public func entry(named name: String) -> Entry? {
        self.storage.withLock { $0.entries[name] }
    }

    /// All live entries in load order.
    public var entries: [Entry] {
        self.storage.withLock { storage in storage.order.compactMap { storage.entries[$0] } }
    }

    public func stateStore(named name: String) -> (any StateStore)? {
        self.storage.withLock { $0.entries[name]?.component as? any StateStore }
    }

    public func pubsub(named name: String) -> (any PubSub)? {
        self.storage.withLock { $0.entries[name]?.component as? any PubSub }
    }

    public func secretStore(named name: String) -> (any SecretStore)? {
        self.storage.withLock { $0.entries[name]?.component as? any SecretStore }
    }

    public func lockStore(named name: String) -> (any LockStore)? {
        self.storage.withLock { $0.entries[name]?.component as? any LockStore }
    }

    public func configurationStore(named name: String) -> (any ConfigurationStore)? {
        self.storage.withLock { $0.entries[name]?.component as? any ConfigurationStore }
    }

    public func outputBinding(named name: String) -> (any OutputBinding)? {
        self.storage.withLock { storage in
            guard let entry = storage.entries[name], entry.spec.type.category == .bindings else { return nil }
            return entry.component as? any OutputBinding
        }
    }

    /// Live components of one category, in load order.
    public func entries(in category: ComponentCategory) -> [Entry] {
        self.entries.filter { $0.spec.type.category == category }
    }

    public func count(in category: ComponentCategory) -> Int {
        self.storage.withLock { storage in storage.entries.values.filter { $0.spec.type.category == category }.count }
    }

    /// Every component with its health, live ones first in load order, then failed ones.
    public var statuses: [ComponentStatus] {
        self.storage.withLock { storage in
            let live = storage.order.compactMap { name -> ComponentStatus? in
                guard let entry = storage.entries[name] else { return nil }
                return ComponentStatus(
                    name: name,
                    type: entry.spec.type,
                    version: entry.spec.version,
                    capabilities: Self.capabilities(of: entry),
                    health: .ready
                )
            }
            return live + storage.failedOrder.compactMap { storage.failed[$0] }
        }
    }

    /// Capability names as daprd reports them.
    static func capabilities(of entry: Entry) -> [String] {
        var names: [String] = []
        switch entry.spec.type.category {
        case .state:
            if let store = entry.component as? any StateStore {
                names = store.features.capabilityNames
                if store.features.contains(.etag) && store.features.contains(.transactional) { names.append("ACTOR") }
            }
        case .pubsub:
            if let pubsub = entry.component as? any PubSub { names = pubsub.features.capabilityNames }
        case .bindings:
            if entry.component is any InputBinding { names.append("INPUT_BINDING") }
            if entry.component is any OutputBinding { names.append("OUTPUT_BINDING") }
        default:
            break
        }
        if let reporting = entry.component as? any CapabilityReporting { names.append(contentsOf: reporting.capabilities) }
        return names
    }
}

public import MechaCore
import Testing

/// The configuration store conformance suite (Dapr components-contrib's
/// `tests/conformance/configuration`): items written to the backend read back exactly, by key and
/// all at once; subscriptions deliver changes to watched keys only, deletions, and several
/// subscriptions are independent. The backend is written through `Backend` (a Redis `SET`, a
/// PostgreSQL `INSERT` …), because configuration stores are read-only to the sidecar.
public struct ConfigurationStoreConformance: Sendable {
    /// Writes to the store's backend, as an operator would.
    public struct Backend: Sendable {
        public var set: @Sendable (_ key: String, _ item: ConfigurationItem) async throws -> Void
        public var delete: @Sendable (_ key: String) async throws -> Void

        public init(
            set: @escaping @Sendable (_ key: String, _ item: ConfigurationItem) async throws -> Void,
            delete: @escaping @Sendable (_ key: String) async throws -> Void
        ) {
            self.set = set
            self.delete = delete
        }
    }

    public struct Configuration: Sendable {
        /// Metadata every subscribe request carries (PostgreSQL: `pgNotifyChannel`).
        public var subscribeMetadata: [String: String]
        /// Whether a deletion reaches subscribers as an empty item (Redis) or as the deleted row's
        /// last item (PostgreSQL's documented trigger sends `OLD`).
        public var deletionIsEmptyItem: Bool
        /// Whether items carry metadata (PostgreSQL's METADATA column; Redis has none).
        public var supportsMetadata: Bool
        /// How long to wait for a change to arrive.
        public var deliveryTimeout: Duration

        public init(
            subscribeMetadata: [String: String] = [:],
            deletionIsEmptyItem: Bool = true,
            supportsMetadata: Bool = false,
            deliveryTimeout: Duration = .seconds(10)
        ) {
            self.subscribeMetadata = subscribeMetadata
            self.deletionIsEmptyItem = deletionIsEmptyItem
            self.supportsMetadata = supportsMetadata
            self.deliveryTimeout = deliveryTimeout
        }
    }

    public enum Check: String, CaseIterable, Sendable, CustomStringConvertible {
        /// Items read back exactly by key; missing keys are left out.
        case get
        /// `get` without keys answers every item.
        case getAll
        /// A subscription to some keys gets their changes and deletions, nothing else.
        case subscribeKeys
        /// A subscription without keys gets every change.
        case subscribeAll
        /// Two subscriptions each get the change; ending one leaves the other working.
        case independentSubscriptions

        public var description: String { self.rawValue }
    }

    public let configuration: Configuration
    let backend: Backend
    let makeStore: @Sendable () async throws -> any ConfigurationStore

    public init(configuration: Configuration = .init(), backend: Backend, makeStore: @escaping @Sendable () async throws -> any ConfigurationStore) {
        self.configuration = configuration
        self.backend = backend
        self.makeStore = makeStore
    }

    public func run() async throws {
        for check in Check.allCases { try await self.run(check) }
    }

    public func run(_ check: Check) async throws {
        let store = try await self.makeStore()
        let prefix = "conformance_\(Conformance.runID())_"
        try await LiveComponent.with(store, label: "configuration store", stopTimeout: .seconds(5)) {
            await Conformance.record("configuration store", check.rawValue) {
                switch check {
                case .get: try await self.checkGet(store, prefix)
                case .getAll: try await self.checkGetAll(store, prefix)
                case .subscribeKeys: try await self.checkSubscribeKeys(store, prefix)
                case .subscribeAll: try await self.checkSubscribeAll(store, prefix)
                case .independentSubscriptions: try await self.checkIndependent(store, prefix)
                }
            }
        }
    }

    func item(_ value: String, _ version: String) -> ConfigurationItem {
        ConfigurationItem(value: value, version: version, metadata: self.configuration.supportsMetadata ? ["origin": "conformance"] : [:])
    }

    func checkGet(_ store: any ConfigurationStore, _ prefix: String) async throws {
        let a = self.item("value-a", "1")
        let b = self.item("value b with spaces", "7")
        try await self.backend.set(prefix + "a", a)
        try await self.backend.set(prefix + "b", b)
        let items = try await store.get(keys: [prefix + "a", prefix + "b", prefix + "missing"], metadata: [:])
        #expect(items == [prefix + "a": a, prefix + "b": b], "get answered \(items)")
        let one = try await store.get(keys: [prefix + "b"], metadata: [:])
        #expect(one == [prefix + "b": b], "get of one key answered \(one)")
        #expect(try await store.get(keys: [prefix + "missing"], metadata: [:]).isEmpty, "a missing key was answered")
    }

    func checkGetAll(_ store: any ConfigurationStore, _ prefix: String) async throws {
        let a = self.item("all-a", "1")
        let b = self.item("all-b", "2")
        try await self.backend.set(prefix + "a", a)
        try await self.backend.set(prefix + "b", b)
        let items = try await store.get(keys: [], metadata: [:])
        #expect(items[prefix + "a"] == a, "get without keys answered \(items[prefix + "a"].map { "\($0)" } ?? "nothing") for \(prefix)a")
        #expect(items[prefix + "b"] == b, "get without keys answered \(items[prefix + "b"].map { "\($0)" } ?? "nothing") for \(prefix)b")
    }

    /// Collects a subscription's batches until the returned collector is cancelled.
    final class Collector: Sendable {
        let batches = SharedValue<[[String: ConfigurationItem]]>([])
        let task: Task<Void, Never>
        init(_ updates: ConfigurationUpdates) {
            let batches = self.batches
            self.task = Task {
                do {
                    for try await batch in updates { batches.update { $0.append(batch) } }
                } catch {
                    batches.update { $0.append(["<error>": ConfigurationItem(value: "\(error)")]) }
                }
            }
        }
        var items: [(String, ConfigurationItem)] { self.batches.value.flatMap { $0.map { ($0.key, $0.value) } } }
        func stop() async {
            self.task.cancel()
            await self.task.value
        }
    }

    func waitFor(_ collector: Collector, _ key: String, _ expected: ConfigurationItem, what: String) async -> Bool {
        let arrived = await Conformance.eventually(within: self.configuration.deliveryTimeout, every: .milliseconds(20)) {
            collector.items.contains { $0.0 == key && $0.1 == expected }
        }
        if !arrived {
            Issue.record("\(what): \(key) = \(expected) did not arrive within \(self.configuration.deliveryTimeout); received \(collector.items)")
        }
        return arrived
    }

    func checkSubscribeKeys(_ store: any ConfigurationStore, _ prefix: String) async throws {
        let watched = [prefix + "w1", prefix + "w2"]
        try await self.backend.set(prefix + "w2", self.item("before", "1"))
        let collector = Collector(try await store.subscribe(keys: watched, metadata: self.configuration.subscribeMetadata))
        let changed = self.item("changed", "2")
        try await self.backend.set(prefix + "other", self.item("not watched", "1"))
        try await self.backend.set(prefix + "w1", changed)
        guard await self.waitFor(collector, prefix + "w1", changed, what: "a change to a watched key") else { return await collector.stop() }
        try await self.backend.delete(prefix + "w2")
        let deletion = self.configuration.deletionIsEmptyItem ? ConfigurationItem.deleted : self.item("before", "1")
        _ = await self.waitFor(collector, prefix + "w2", deletion, what: "a deleted watched key")
        #expect(!collector.items.contains { $0.0 == prefix + "other" }, "a change to an unwatched key was delivered: \(collector.items)")
        #expect(!collector.items.contains { $0.0 == "<error>" }, "the subscription failed: \(collector.items)")
        await collector.stop()
    }

    func checkSubscribeAll(_ store: any ConfigurationStore, _ prefix: String) async throws {
        let collector = Collector(try await store.subscribe(keys: [], metadata: self.configuration.subscribeMetadata))
        let first = self.item("any-1", "1")
        let second = self.item("any-2", "1")
        try await self.backend.set(prefix + "x", first)
        try await self.backend.set(prefix + "y", second)
        _ = await self.waitFor(collector, prefix + "x", first, what: "a change seen by a subscription to every key")
        _ = await self.waitFor(collector, prefix + "y", second, what: "a change seen by a subscription to every key")
        await collector.stop()
    }

    func checkIndependent(_ store: any ConfigurationStore, _ prefix: String) async throws {
        let key = prefix + "shared"
        let one = Collector(try await store.subscribe(keys: [key], metadata: self.configuration.subscribeMetadata))
        let two = Collector(try await store.subscribe(keys: [key], metadata: self.configuration.subscribeMetadata))
        let first = self.item("first", "1")
        try await self.backend.set(key, first)
        _ = await self.waitFor(one, key, first, what: "the first of two subscriptions")
        _ = await self.waitFor(two, key, first, what: "the second of two subscriptions")
        await one.stop()
        let second = self.item("second", "2")
        try await self.backend.set(key, second)
        _ = await self.waitFor(two, key, second, what: "a subscription after another one on the same key ended")
        await two.stop()
    }
}

/// Collects the batches a configuration subscription delivers, for tests that drive a store
/// directly (outside the suite).
public final class ConfigurationUpdateLog: Sendable {
    private let items = SharedValue<[(String, ConfigurationItem)]>([])

    public init() {}

    public func add(_ batch: [String: ConfigurationItem]) {
        self.items.update { $0.append(contentsOf: batch.map { ($0.key, $0.value) }) }
    }

    /// Whether `key` = `item` arrives within `timeout`.
    public func waitFor(_ key: String, _ item: ConfigurationItem, timeout: Duration = .seconds(15)) async -> Bool {
        await Conformance.eventually(within: timeout, every: .milliseconds(50)) {
            self.items.value.contains { $0.0 == key && $0.1 == item }
        }
    }
}

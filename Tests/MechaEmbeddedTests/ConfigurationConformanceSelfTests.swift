import MechaCore
import MechaTesting
import Synchronization
import Testing

/// A configuration store in memory whose backend is the test itself; each lie breaks one rule, and
/// the suite must catch it (`withKnownIssue` fails when nothing is recorded). The honest store
/// passes, which proves the checks are satisfiable.
struct ConfigurationConformanceSelfTests {
    enum Lie: String, CaseIterable, Sendable, CustomStringConvertible {
        case dropsVersion, answersMissingKeys, getAllIsEmpty, deliversUnwatchedKeys, silentDeletes, oneSubscriberOnly, noUpdatesWithoutKeys
        var description: String { self.rawValue }
        var check: ConfigurationStoreConformance.Check {
            switch self {
            case .dropsVersion, .answersMissingKeys: .get
            case .getAllIsEmpty: .getAll
            case .deliversUnwatchedKeys, .silentDeletes: .subscribeKeys
            case .oneSubscriberOnly: .independentSubscriptions
            case .noUpdatesWithoutKeys: .subscribeAll
            }
        }
    }

    final class FakeStore: ConfigurationStore {
        struct Watch { var keys: Set<String>; var continuation: ConfigurationUpdates.Continuation }
        let lie: Lie?
        let items = Mutex<[String: ConfigurationItem]>([:])
        let watches = Mutex<[Int: Watch]>([:])
        let nextID = Atomic<Int>(0)
        init(_ lie: Lie?) { self.lie = lie }

        var backend: ConfigurationStoreConformance.Backend {
            .init(
                set: { key, item in
                    self.items.withLock { $0[key] = item }
                    self.notify(key, item)
                },
                delete: { key in
                    self.items.withLock { $0[key] = nil }
                    if self.lie != .silentDeletes { self.notify(key, .deleted) }
                }
            )
        }

        func notify(_ key: String, _ item: ConfigurationItem) {
            var watches = Array(self.watches.withLock { $0 }.sorted { $0.key < $1.key }.map(\.value))
            if self.lie == .oneSubscriberOnly { watches = Array(watches.prefix(1)) }
            for watch in watches {
                if watch.keys.isEmpty && self.lie == .noUpdatesWithoutKeys { continue }
                if watch.keys.isEmpty || watch.keys.contains(key) || self.lie == .deliversUnwatchedKeys {
                    watch.continuation.yield([key: item])
                }
            }
        }

        func get(keys: [String], metadata: [String: String]) async throws -> [String: ConfigurationItem] {
            if self.lie == .getAllIsEmpty && keys.isEmpty { return [:] }
            let all = self.items.withLock { $0 }
            var result = keys.isEmpty ? all : all.filter { keys.contains($0.key) }
            if self.lie == .answersMissingKeys { for key in keys where result[key] == nil { result[key] = ConfigurationItem(value: "") } }
            if self.lie == .dropsVersion { result = result.mapValues { ConfigurationItem(value: $0.value) } }
            return result
        }

        func subscribe(keys: [String], metadata: [String: String]) async throws -> ConfigurationUpdates {
            let id = self.nextID.wrappingAdd(1, ordering: .relaxed).newValue
            let (updates, continuation) = ConfigurationUpdates.makeStream()
            self.watches.withLock { $0[id] = Watch(keys: Set(keys), continuation: continuation) }
            continuation.onTermination = { _ in _ = self.watches.withLock { $0.removeValue(forKey: id) } }
            return updates
        }
    }

    /// A lying store must fail by timing out, so its runs wait 1 s; the honest store delivers at
    /// once, and a longer wait only keeps a loaded machine (the full parallel run) from failing it.
    static func suite(_ store: FakeStore, deliveryTimeout: Duration = .seconds(1)) -> ConfigurationStoreConformance {
        ConfigurationStoreConformance(configuration: .init(deliveryTimeout: deliveryTimeout), backend: store.backend) { store }
    }

    @Test("configuration suite fails a lying store", arguments: Lie.allCases)
    func catches(_ lie: Lie) async throws {
        await withKnownIssue("a configuration store that \(lie) must fail the \(lie.check) check") {
            try await Self.suite(FakeStore(lie)).run(lie.check)
        }
    }

    @Test("configuration suite passes an honest store", arguments: ConfigurationStoreConformance.Check.allCases)
    func honest(_ check: ConfigurationStoreConformance.Check) async throws {
        try await Self.suite(FakeStore(nil), deliveryTimeout: .seconds(10)).run(check)
    }
}

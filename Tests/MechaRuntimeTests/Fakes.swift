import MechaCore
import MechaRuntime
import Synchronization

/// A component that only remembers the spec it was built from.
struct FakeComponent: Component {
    var spec: ComponentSpec
}

/// A factory whose behaviour the test supplies.
struct FakeFactory: ComponentFactory {
    var type: ComponentType
    var versions: [String]
    var build: @Sendable (ComponentSpec, ComponentContext) async throws -> any Component

    init(
        _ type: ComponentType,
        versions: [String] = ["v1"],
        build: @escaping @Sendable (ComponentSpec, ComponentContext) async throws -> any Component = { spec, _ in FakeComponent(spec: spec) }
    ) {
        self.type = type
        self.versions = versions
        self.build = build
    }

    func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        try await self.build(spec, context)
    }

    /// A factory that always fails with `error`.
    static func failing(_ type: ComponentType, _ error: any Error & Sendable) -> FakeFactory {
        FakeFactory(type) { _, _ in throw error }
    }
}

struct FakeInitError: Error, CustomStringConvertible {
    var description: String { "the backend refused the connection" }
}

/// A secret store holding fixed secrets.
struct FakeSecretStore: SecretStore {
    var secrets: [String: [String: String]]

    func secret(named name: String, metadata: [String: String]) async throws -> [String: String] {
        guard let secret = self.secrets[name] else { throw SecretStoreError(.notFound, "secret \(name) not found") }
        return secret
    }

    func bulkSecrets(metadata: [String: String]) async throws -> [String: [String: String]] { self.secrets }
}

/// A `secretstores.fake` factory whose store holds `secrets`.
func fakeSecretStoreFactory(_ secrets: [String: [String: String]]) -> FakeFactory {
    FakeFactory(ComponentType(.secretstores, "fake")) { _, _ in FakeSecretStore(secrets: secrets) }
}

/// Records the order in which factories ran.
final class Journal: Sendable {
    private let entries = Mutex<[String]>([])
    func append(_ entry: String) { self.entries.withLock { $0.append(entry) } }
    var values: [String] { self.entries.withLock { $0 } }
}

/// Minimal fakes for capability reporting.
struct FakeStateStore: StateStore {
    var features: StateFeatures
    func get(_ request: StateGetRequest) async throws -> StateItem? { nil }
    func set(_ request: StateSetRequest) async throws {}
    func delete(_ request: StateDeleteRequest) async throws {}
}

struct FakeInputBinding: InputBinding {
    func read(until stop: StopSignal, handler: @escaping @Sendable (BindingEvent) async throws -> Void) async throws {}
}

struct FakeOutputBinding: OutputBinding {
    var operations: [String] { ["create"] }
    func invoke(_ request: BindingInvokeRequest) async throws -> BindingInvokeResponse { BindingInvokeResponse() }
}

struct FakeTwoWayBinding: InputBinding, OutputBinding, CapabilityReporting {
    var operations: [String] { ["create"] }
    var capabilities: [String] { ["CUSTOM"] }
    func read(until stop: StopSignal, handler: @escaping @Sendable (BindingEvent) async throws -> Void) async throws {}
    func invoke(_ request: BindingInvokeRequest) async throws -> BindingInvokeResponse { BindingInvokeResponse() }
}

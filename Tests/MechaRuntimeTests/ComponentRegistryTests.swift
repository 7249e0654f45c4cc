import MechaComponents
import MechaCore
import MechaRuntime
import Testing

@Suite("ComponentRegistry")
struct ComponentRegistryTests {
    static let fake = ComponentType(.state, "fake")

    static func versions(_ registry: ComponentRegistry, _ type: ComponentType, _ version: String) -> [String]? {
        switch registry.factory(for: type, version: version) {
        case .success(let factory): factory.versions
        case .failure: nil
        }
    }

    @Test func looksUpByTypeAndVersion() {
        let registry = ComponentRegistry([FakeFactory(Self.fake, versions: ["v1"]), FakeFactory(Self.fake, versions: ["v2"])])
        #expect(Self.versions(registry, Self.fake, "v1") == ["v1"])
        #expect(Self.versions(registry, Self.fake, "v2") == ["v2"])
        #expect(Self.versions(registry, Self.fake, "V2") == ["v2"])
    }

    @Test func emptyVersionIsTheFirstRegisteredFactorysFirstVersion() {
        let registry = ComponentRegistry([FakeFactory(Self.fake, versions: ["v2", "v1"]), FakeFactory(Self.fake, versions: ["v3"])])
        #expect(Self.versions(registry, Self.fake, "") == ["v2", "v1"])
        #expect(Self.versions(registry, Self.fake, "v3") == ["v3"])
    }

    @Test func unknownTypeListsTheCategorysTypes() {
        let registry = BuiltInComponents.registry
        let unknown = ComponentType(.state, "nosuchstore")
        let result = registry.factory(for: unknown, version: "v1")
        guard case .failure(let error) = result else {
            Issue.record("expected a failure")
            return
        }
        let known = registry.types(in: .state)
        #expect(known.contains(ComponentType(.state, "in-memory")) && known.contains(ComponentType(.state, "sqlite")))
        #expect(error == .unknownType(unknown, known: known))
        #expect(error.description == "unknown component type state.nosuchstore; known state types: " + known.map(\.description).joined(separator: ", "))
    }

    @Test func unknownVersionListsVersions() {
        let registry = ComponentRegistry([FakeFactory(Self.fake, versions: ["v2", "v1"])])
        guard case .failure(let error) = registry.factory(for: Self.fake, version: "v9") else {
            Issue.record("expected a failure")
            return
        }
        #expect(error == .unknownVersion(Self.fake, "v9", known: ["v1", "v2"]))
        #expect(error.description == "component type state.fake has no version 'v9'; known versions: v1, v2")
    }

    @Test func typesByCategoryAreSorted() {
        let registry = BuiltInComponents.registry
        #expect(registry.types(in: .bindings).map(\.description) == ["bindings.cron", "bindings.http", "bindings.localstorage", "bindings.postgres", "bindings.postgresql", "bindings.redis"])
        #expect(registry.types(in: .secretstores).map(\.description) == ["secretstores.local.env", "secretstores.local.file"])
        #expect(registry.types(in: .lock).map(\.description) == ["lock.in-memory", "lock.redis", "lock.sqlite"])
        #expect(registry.types(in: .crypto).map(\.description) == ["crypto.dapr.jwks", "crypto.dapr.localstorage"])
        #expect(registry.types(in: .workflow).isEmpty)
        #expect(registry.allTypes == registry.allTypes.sorted())
        #expect(Set(registry.allTypes).count == registry.allTypes.count)
    }

    @Test func registerAddsToAnExistingRegistry() {
        var registry = ComponentRegistry()
        #expect(registry.allTypes.isEmpty)
        registry.register(FakeFactory(Self.fake))
        #expect(registry.allTypes == [Self.fake])
        #expect(Self.versions(registry, Self.fake, "") == ["v1"])
    }
}

import MechaCore
import MechaRuntime
import Testing

@Suite("ComponentStore")
struct ComponentStoreTests {
    static func spec(_ name: String, _ category: ComponentCategory, _ type: String = "fake", version: String = "v1") -> ComponentSpec {
        ComponentSpec(name: name, type: ComponentType(category, type), version: version)
    }

    @Test func addLookUpAndRemove() {
        let store = ComponentStore()
        store.add(FakeStateStore(features: [.etag]), spec: Self.spec("state", .state))
        store.add(FakeSecretStore(secrets: [:]), spec: Self.spec("vault", .secretstores))
        store.add(FakeOutputBinding(), spec: Self.spec("out", .bindings))
        #expect(store.entries.map(\.spec.name) == ["state", "vault", "out"])
        #expect(store.stateStore(named: "state") != nil)
        #expect(store.stateStore(named: "vault") == nil)
        #expect(store.secretStore(named: "vault") != nil)
        #expect(store.pubsub(named: "state") == nil)
        #expect(store.outputBinding(named: "out") != nil)
        #expect(store.count(in: .state) == 1)
        #expect(store.entries(in: .bindings).map(\.spec.name) == ["out"])

        #expect(store.remove("state")?.spec.name == "state")
        #expect(store.remove("state") == nil)
        #expect(store.entries.map(\.spec.name) == ["vault", "out"])
        #expect(store.count(in: .state) == 0)
    }

    @Test func outputBindingOnlyFromTheBindingsCategory() {
        let store = ComponentStore()
        // An output-binding-shaped component registered under another category is not a binding.
        store.add(FakeOutputBinding(), spec: Self.spec("notabinding", .state))
        #expect(store.outputBinding(named: "notabinding") == nil)
    }

    @Test func replacingKeepsTheOriginalPosition() {
        let store = ComponentStore()
        store.add(FakeComponent(spec: Self.spec("a", .state)), spec: Self.spec("a", .state))
        store.add(FakeComponent(spec: Self.spec("b", .state)), spec: Self.spec("b", .state))
        store.add(FakeComponent(spec: Self.spec("a", .state)), spec: Self.spec("a", .state, version: "v2"))
        #expect(store.entries.map(\.spec.name) == ["a", "b"])
        #expect(store.entry(named: "a")?.spec.version == "v2")
    }

    @Test func statusesListLiveThenFailed() {
        let store = ComponentStore()
        store.markFailed(Self.spec("broken", .pubsub), reason: "boom")
        store.add(FakeStateStore(features: []), spec: Self.spec("ok", .state))
        let statuses = store.statuses
        #expect(statuses == [
            ComponentStatus(name: "ok", type: ComponentType(.state, "fake"), version: "v1", capabilities: [], health: .ready),
            ComponentStatus(name: "broken", type: ComponentType(.pubsub, "fake"), version: "v1", capabilities: [], health: .failed("boom")),
        ])
    }

    @Test func addingClearsAnEarlierFailure() {
        let store = ComponentStore()
        store.markFailed(Self.spec("flaky", .state), reason: "first try failed")
        store.add(FakeStateStore(features: []), spec: Self.spec("flaky", .state))
        #expect(store.statuses.map(\.health) == [.ready])
    }

    @Test(arguments: [
        (StateFeatures([]), [String]()),
        (StateFeatures([.etag]), ["ETAG"]),
        (StateFeatures([.transactional]), ["TRANSACTIONAL"]),
        (StateFeatures([.etag, .transactional]), ["ETAG", "TRANSACTIONAL", "ACTOR"]),
        (StateFeatures([.etag, .transactional, .ttl]), ["ETAG", "TRANSACTIONAL", "TTL", "ACTOR"]),
        (StateFeatures([.etag, .transactional, .ttl, .query]), ["ETAG", "TRANSACTIONAL", "TTL", "QUERY_API", "ACTOR"]),
    ])
    func stateCapabilities(features: StateFeatures, expected: [String]) {
        let store = ComponentStore()
        store.add(FakeStateStore(features: features), spec: Self.spec("s", .state))
        #expect(store.statuses.first?.capabilities == expected)
    }

    @Test func bindingCapabilities() {
        let store = ComponentStore()
        store.add(FakeInputBinding(), spec: Self.spec("in", .bindings))
        store.add(FakeOutputBinding(), spec: Self.spec("out", .bindings))
        store.add(FakeTwoWayBinding(), spec: Self.spec("both", .bindings))
        let capabilities = store.statuses.map(\.capabilities)
        #expect(capabilities == [["INPUT_BINDING"], ["OUTPUT_BINDING"], ["INPUT_BINDING", "OUTPUT_BINDING", "CUSTOM"]])
    }

    @Test func otherCategoriesReportNothingByDefault() {
        let store = ComponentStore()
        store.add(FakeSecretStore(secrets: [:]), spec: Self.spec("vault", .secretstores))
        #expect(store.statuses.first?.capabilities == [])
    }
}

import MechaComponents
import MechaConfig
import MechaCore
import MechaRuntime
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("ComponentLoader")
struct ComponentLoaderTests {
    static let file = "/resources/components.yaml"

    /// Components decoded from YAML exactly as the sidecar reads them.
    static func resources(_ yaml: String, file: String = Self.file) throws -> [ComponentResource] {
        try ResourceLoader.load(text: yaml, file: file).components
    }

    /// One component document. `spec` and `extra` lines are indented by the caller.
    static func yaml(_ name: String, type: String, spec: String = "", extra: String = "") -> String {
        """
        apiVersion: dapr.io/v1alpha1
        kind: Component
        metadata:
          name: \(name)
        spec:
          type: \(type)
        \(spec)
        \(extra)
        """
    }

    static func documents(_ parts: String...) -> String { parts.joined(separator: "\n---\n") }

    static func loader(
        _ registry: ComponentRegistry,
        appID: String = "orders",
        namespace: String = "prod",
        environment: [String: String] = [:]
    ) -> ComponentLoader {
        ComponentLoader(
            registry: registry,
            context: ComponentContext(appID: appID, namespace: namespace, dataDirectory: "/tmp/mecha-runtime-tests", instanceID: "test"),
            environment: environment
        )
    }

    /// Loads `yaml` into a new store.
    static func load(
        _ yaml: String,
        registry: ComponentRegistry,
        appID: String = "orders",
        environment: [String: String] = [:]
    ) async throws -> ComponentStore {
        let store = ComponentStore()
        try await Self.loader(registry, appID: appID, environment: environment).load(try Self.resources(yaml), into: store)
        return store
    }

    /// The load error's messages.
    static func initError(
        _ yaml: String,
        registry: ComponentRegistry,
        appID: String = "orders",
        environment: [String: String] = [:],
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> [String] {
        let resources = try Self.resources(yaml)
        let error = try await #require(throws: ComponentInitError.self, sourceLocation: sourceLocation) {
            try await Self.loader(registry, appID: appID, environment: environment).load(resources, into: ComponentStore())
        }
        return error.errors
    }

    static func spec(_ store: ComponentStore, _ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> ComponentSpec {
        try #require(store.entry(named: name), sourceLocation: sourceLocation).spec
    }

    static let stateFake = ComponentType(.state, "fake")

    // MARK: Types and versions

    @Test func loadsBuiltInComponentsFromYAML() async throws {
        let store = try await Self.load(
            Self.documents(
                Self.yaml("statestore", type: "state.in-memory", spec: "  version: v1"),
                Self.yaml("pubsub", type: "pubsub.in-memory")
            ),
            registry: BuiltInComponents.registry
        )
        #expect(store.entries.map(\.spec.name) == ["statestore", "pubsub"])
        #expect(store.stateStore(named: "statestore") != nil)
        #expect(store.pubsub(named: "pubsub") != nil)
        #expect(store.statuses.map(\.health) == [.ready, .ready])
    }

    @Test func unknownTypeNamesFileResourceFieldAndKnownTypes() async throws {
        let errors = try await Self.initError(
            Self.yaml("cache", type: "state.nosuchstore", spec: "  version: v1"),
            registry: BuiltInComponents.registry
        )
        #expect(errors.count == 1)
        let message = try #require(errors.first)
        #expect(message.contains(Self.file))
        #expect(message.contains("Component/cache"))
        #expect(message.contains("spec.type"))
        #expect(message.contains("state.nosuchstore"))
        #expect(message.contains("known state types: state.in-memory, ") && message.contains("state.sqlite"))
        #expect(!message.contains("pubsub.in-memory"))
    }

    @Test func unknownTypeInACategoryWithNothingRegistered() async throws {
        let errors = try await Self.initError(Self.yaml("flow", type: "workflow.temporal"), registry: BuiltInComponents.registry)
        let message = try #require(errors.first)
        #expect(message.contains("no workflow components are built in; supported types: "))
        #expect(message.contains("state.sqlite") && message.contains("pubsub.redis"))
    }

    @Test func everyUnknownTypeIsReportedBeforeAnythingInitialises() async throws {
        let journal = Journal()
        let registry = ComponentRegistry([
            FakeFactory(Self.stateFake) { spec, _ in
                journal.append(spec.name)
                return FakeComponent(spec: spec)
            }
        ])
        let errors = try await Self.initError(
            Self.documents(
                Self.yaml("good", type: "state.fake"),
                Self.yaml("bad1", type: "state.nope"),
                Self.yaml("bad2", type: "bindings.nope")
            ),
            registry: registry
        )
        #expect(errors.count == 2)
        #expect(errors[0].contains("Component/bad1"))
        #expect(errors[1].contains("Component/bad2"))
        #expect(journal.values.isEmpty)
    }

    @Test func unknownVersionListsKnownVersions() async throws {
        let registry = ComponentRegistry([FakeFactory(Self.stateFake, versions: ["v1", "v2"])])
        let errors = try await Self.initError(Self.yaml("s", type: "state.fake", spec: "  version: v3"), registry: registry)
        let message = try #require(errors.first)
        #expect(message.contains("spec.type"))
        #expect(message.contains("'v3'"))
        #expect(message.contains("known versions: v1, v2"))
    }

    @Test func emptyVersionSelectsTheDefault() async throws {
        let registry = ComponentRegistry([
            FakeFactory(Self.stateFake, versions: ["v2", "v1"]) { spec, _ in
                FakeComponent(spec: ComponentSpec(name: "made-by-v2-factory", type: spec.type, version: spec.version))
            }
        ])
        let store = try await Self.load(Self.yaml("s", type: "state.fake"), registry: registry)
        let component = try #require(store.entry(named: "s")?.component as? FakeComponent)
        #expect(component.spec.name == "made-by-v2-factory")
        // The version is reported exactly as written (empty).
        #expect(store.statuses.first?.version == "")
    }

    @Test func versionIsMatchedCaseInsensitivelyAndKeptAsWritten() async throws {
        let registry = ComponentRegistry([FakeFactory(Self.stateFake)])
        let store = try await Self.load(Self.yaml("s", type: "state.fake", spec: "  version: V1"), registry: registry)
        #expect(try Self.spec(store, "s").version == "V1")
        #expect(store.statuses.first?.version == "V1")
    }

    // MARK: Scopes and names

    @Test func componentsScopedToOtherAppsAreSkipped() async throws {
        let registry = ComponentRegistry([FakeFactory(Self.stateFake)])
        let yaml = Self.documents(
            Self.yaml("mine", type: "state.fake", extra: "scopes:\n- orders\n- shipping"),
            Self.yaml("theirs", type: "state.fake", extra: "scopes:\n- shipping"),
            Self.yaml("everyone", type: "state.fake")
        )
        let orders = try await Self.load(yaml, registry: registry, appID: "orders")
        #expect(orders.entries.map(\.spec.name) == ["mine", "everyone"])
        let billing = try await Self.load(yaml, registry: registry, appID: "billing")
        #expect(billing.entries.map(\.spec.name) == ["everyone"])
    }

    @Test func outOfScopeComponentsAreNotValidated() async throws {
        // An unknown type scoped to another app does not stop this app.
        let store = try await Self.load(
            Self.yaml("elsewhere", type: "state.unknown", extra: "scopes: [shipping]"),
            registry: BuiltInComponents.registry
        )
        #expect(store.entries.isEmpty)
    }

    @Test func duplicateNamesNameBothDefinitions() async throws {
        let registry = ComponentRegistry([FakeFactory(Self.stateFake), FakeFactory(ComponentType(.pubsub, "fake"))])
        var resources = try Self.resources(Self.yaml("shared", type: "state.fake", spec: "  version: v1"), file: "/res/a.yaml")
        resources += try Self.resources(Self.yaml("shared", type: "pubsub.fake", spec: "  version: v1"), file: "/res/b.yaml")
        let error = try await #require(throws: ComponentInitError.self) {
            try await Self.loader(registry).load(resources, into: ComponentStore())
        }
        #expect(error.errors.count == 1)
        let message = try #require(error.errors.first)
        #expect(message.contains("/res/a.yaml"))
        #expect(message.contains("/res/b.yaml"))
        #expect(message.contains("duplicate"))
        #expect(message.contains("state.fake/v1"))
        #expect(message.contains("pubsub.fake/v1"))
    }

    @Test func sameNameForDifferentAppsIsNoConflict() async throws {
        let registry = ComponentRegistry([FakeFactory(Self.stateFake)])
        let yaml = Self.documents(
            Self.yaml("store", type: "state.fake", spec: "  metadata:\n  - name: owner\n    value: orders", extra: "scopes: [orders]"),
            Self.yaml("store", type: "state.fake", spec: "  metadata:\n  - name: owner\n    value: shipping", extra: "scopes: [shipping]")
        )
        let orders = try await Self.load(yaml, registry: registry, appID: "orders")
        #expect(try Self.spec(orders, "store").metadata["owner"] == "orders")
        let shipping = try await Self.load(yaml, registry: registry, appID: "shipping")
        #expect(try Self.spec(shipping, "store").metadata["owner"] == "shipping")
    }

    // MARK: Init failures

    @Test func initFailureStopsLoading() async throws {
        let journal = Journal()
        let registry = ComponentRegistry([
            FakeFactory.failing(ComponentType(.bindings, "broken"), FakeInitError()),
            FakeFactory(Self.stateFake) { spec, _ in
                journal.append(spec.name)
                return FakeComponent(spec: spec)
            },
        ])
        let store = ComponentStore()
        let resources = try Self.resources(
            Self.documents(
                Self.yaml("first", type: "state.fake"),
                Self.yaml("broken", type: "bindings.broken"),
                Self.yaml("after", type: "state.fake")
            )
        )
        let error = try await #require(throws: ComponentInitError.self) {
            try await Self.loader(registry).load(resources, into: store)
        }
        let message = try #require(error.errors.first)
        #expect(message.contains(Self.file))
        #expect(message.contains("Component/broken"))
        #expect(message.contains("the backend refused the connection"))
        #expect(journal.values == ["first"])
        #expect(store.entry(named: "after") == nil)
    }

    @Test func ignoreErrorsRecordsTheFailureAndLoadsTheRest() async throws {
        let registry = ComponentRegistry([
            FakeFactory.failing(ComponentType(.bindings, "broken"), FakeInitError()),
            FakeFactory(Self.stateFake),
        ])
        let store = try await Self.load(
            Self.documents(
                Self.yaml("broken", type: "bindings.broken", spec: "  version: v1\n  ignoreErrors: true"),
                Self.yaml("after", type: "state.fake")
            ),
            registry: registry
        )
        #expect(store.entries.map(\.spec.name) == ["after"])
        #expect(store.entry(named: "broken") == nil)
        let statuses = store.statuses
        #expect(statuses.map(\.name) == ["after", "broken"])
        let failed = try #require(statuses.last)
        #expect(failed.type == ComponentType(.bindings, "broken"))
        #expect(failed.version == "v1")
        #expect(failed.capabilities.isEmpty)
        guard case .failed(let reason) = failed.health else {
            Issue.record("expected .failed, got \(failed.health)")
            return
        }
        #expect(reason.contains("the backend refused the connection"))
    }

    @Test func ignoreErrorsCoversUnknownTypes() async throws {
        let store = try await Self.load(
            Self.documents(
                Self.yaml("mystery", type: "state.mystery", spec: "  ignoreErrors: true"),
                Self.yaml("memory", type: "state.in-memory")
            ),
            registry: BuiltInComponents.registry
        )
        #expect(store.entries.map(\.spec.name) == ["memory"])
        guard case .failed(let reason)? = store.statuses.last?.health else {
            Issue.record("expected a failed status")
            return
        }
        #expect(reason.contains("known state types: state.in-memory, ") && reason.contains("state.sqlite"))
    }

    @Test func badMetadataNamesTheField() async throws {
        let errors = try await Self.initError(
            Self.yaml("cron", type: "bindings.cron", spec: "  metadata:\n  - name: direction\n    value: input\n  - name: schedule\n    value: \"every tuesday\""),
            registry: BuiltInComponents.registry
        )
        let message = try #require(errors.first)
        #expect(message.contains(Self.file))
        #expect(message.contains("Component/cron"))
        #expect(message.contains("spec.metadata[1].value (schedule)"))
    }

    /// Issue 9: a duration past what the runtime can count is refused at load, naming the entry
    /// (it used to start, then trap on the first redelivery's arithmetic).
    @Test func hugeDurationIsRefusedNamingTheKey() async throws {
        let errors = try await Self.initError(
            Self.yaml("pubsub", type: "pubsub.sqlite", spec: "  metadata:\n  - name: connectionString\n    value: \":memory:\"\n  - name: redeliveryDelay\n    value: \"9223372036854775807\""),
            registry: BuiltInComponents.registry
        )
        let message = try #require(errors.first)
        #expect(message.contains("spec.metadata[1].value (redeliveryDelay)"), "\(message)")
        #expect(message.contains("out of range"), "\(message)")
    }

    @Test func missingRequiredMetadataNamesTheKey() async throws {
        let errors = try await Self.initError(Self.yaml("files", type: "secretstores.local.file"), registry: BuiltInComponents.registry)
        #expect(errors.first?.contains("secretsFile") == true)
        #expect(errors.first?.contains("Component/files") == true)
    }

    @Test func initTimeout() async throws {
        let registry = ComponentRegistry([
            FakeFactory(Self.stateFake) { spec, _ in
                try await Task.sleep(for: .seconds(30))
                return FakeComponent(spec: spec)
            }
        ])
        let started = ContinuousClock.now
        let errors = try await Self.initError(Self.yaml("slow", type: "state.fake", spec: "  initTimeout: 100ms"), registry: registry)
        #expect(ContinuousClock.now - started < .seconds(10))
        let message = try #require(errors.first)
        #expect(message.contains("init timeout"))
        #expect(message.contains("slow"))
        #expect(message.contains("100ms"))
    }

    @Test func initTimeoutWithIgnoreErrors() async throws {
        let registry = ComponentRegistry([
            FakeFactory(Self.stateFake) { spec, _ in
                if spec.name == "slow" { try await Task.sleep(for: .seconds(30)) }
                return FakeComponent(spec: spec)
            }
        ])
        let store = try await Self.load(
            Self.documents(
                Self.yaml("slow", type: "state.fake", spec: "  initTimeout: 50ms\n  ignoreErrors: true"),
                Self.yaml("fast", type: "state.fake")
            ),
            registry: registry
        )
        #expect(store.entries.map(\.spec.name) == ["fast"])
        guard case .failed(let reason)? = store.statuses.last?.health else {
            Issue.record("expected a failed status")
            return
        }
        #expect(reason.contains("init timeout"))
    }

    @Test func initWithinTheTimeoutSucceeds() async throws {
        let registry = ComponentRegistry([
            FakeFactory(Self.stateFake) { spec, _ in
                try await Task.sleep(for: .milliseconds(10))
                return FakeComponent(spec: spec)
            }
        ])
        let store = try await Self.load(Self.yaml("s", type: "state.fake", spec: "  initTimeout: 5s"), registry: registry)
        #expect(store.entry(named: "s") != nil)
    }

    // MARK: Secret references

    static let secretsRegistry = ComponentRegistry([
        fakeSecretStoreFactory(["db": ["password": "s3cret", "user": "admin"], "token": ["token": "t0k"]]),
        FakeFactory(ComponentType(.state, "fake")),
    ])

    @Test func secretKeyRefResolvesThroughASecretStoreLoadedEarlier() async throws {
        // The secret store comes last in the file; secret stores initialise first anyway.
        let store = try await Self.load(
            Self.documents(
                Self.yaml(
                    "statestore",
                    type: "state.fake",
                    spec: """
                          metadata:
                          - name: password
                            secretKeyRef:
                              name: db
                              key: password
                          - name: token
                            secretKeyRef:
                              name: token
                        """,
                    extra: "auth:\n  secretStore: vault"
                ),
                Self.yaml("vault", type: "secretstores.fake")
            ),
            registry: Self.secretsRegistry
        )
        let spec = try Self.spec(store, "statestore")
        #expect(spec.metadata["password"] == "s3cret")
        #expect(spec.metadata["token"] == "t0k")
        #expect(spec.metadata.field(of: "password") == "spec.metadata[0].value")
        #expect(store.entries.map(\.spec.name) == ["vault", "statestore"])
    }

    @Test func secretKeyRefWithoutAuthSecretStore() async throws {
        let errors = try await Self.initError(
            Self.documents(
                Self.yaml("statestore", type: "state.fake", spec: "  metadata:\n  - name: password\n    secretKeyRef:\n      name: db\n      key: password"),
                Self.yaml("vault", type: "secretstores.fake")
            ),
            registry: Self.secretsRegistry
        )
        let message = try #require(errors.first)
        #expect(message.contains("Component/statestore"))
        #expect(message.contains("spec.metadata[0].secretKeyRef"))
        #expect(message.contains("auth.secretStore"))
    }

    @Test func secretKeyRefToAStoreThatIsNotLoaded() async throws {
        let errors = try await Self.initError(
            Self.yaml(
                "statestore",
                type: "state.fake",
                spec: "  metadata:\n  - name: password\n    secretKeyRef:\n      name: db\n      key: password",
                extra: "auth:\n  secretStore: nowhere"
            ),
            registry: Self.secretsRegistry
        )
        #expect(errors.first?.contains("auth.secretStore") == true)
        #expect(errors.first?.contains("nowhere") == true)
    }

    @Test func missingSecretKey() async throws {
        let errors = try await Self.initError(
            Self.documents(
                Self.yaml("vault", type: "secretstores.fake"),
                Self.yaml(
                    "statestore",
                    type: "state.fake",
                    spec: "  metadata:\n  - name: other\n    value: x\n  - name: password\n    secretKeyRef:\n      name: db\n      key: pass",
                    extra: "auth:\n  secretStore: vault"
                )
            ),
            registry: Self.secretsRegistry
        )
        let message = try #require(errors.first)
        #expect(message.contains("spec.metadata[1].secretKeyRef.key"))
        #expect(message.contains("no key pass"))
    }

    @Test func missingSecret() async throws {
        let errors = try await Self.initError(
            Self.documents(
                Self.yaml("vault", type: "secretstores.fake"),
                Self.yaml(
                    "statestore",
                    type: "state.fake",
                    spec: "  metadata:\n  - name: password\n    secretKeyRef:\n      name: nosuch",
                    extra: "auth:\n  secretStore: vault"
                )
            ),
            registry: Self.secretsRegistry
        )
        let message = try #require(errors.first)
        #expect(message.contains("spec.metadata[0].secretKeyRef"))
        #expect(message.contains("nosuch"))
    }

    @Test func secretKeyRefThroughTheLocalFileSecretStore() async throws {
        var template = Array("/tmp/mecha-secrets-XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        let directory = String(cString: try #require(created))
        let path = directory + "/secrets.json"
        defer {
            unlink(path)
            rmdir(directory)
        }
        let file = try #require(fopen(path, "wb"))
        let json = Array(#"{"redis": {"password": "from-file"}}"#.utf8)
        _ = json.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)

        let store = try await Self.load(
            Self.documents(
                Self.yaml("state", type: "state.in-memory", spec: "  metadata:\n  - name: password\n    secretKeyRef:\n      name: redis:password", extra: "auth:\n  secretStore: files"),
                Self.yaml("files", type: "secretstores.local.file", spec: "  metadata:\n  - name: secretsFile\n    value: \(path)")
            ),
            registry: BuiltInComponents.registry
        )
        #expect(try Self.spec(store, "state").metadata["password"] == "from-file")
    }

    // MARK: Environment references and placeholders

    @Test func envRefReadsTheEnvironment() async throws {
        let store = try await Self.load(
            Self.yaml("s", type: "state.fake", spec: "  metadata:\n  - name: host\n    envRef: REDIS_HOST"),
            registry: ComponentRegistry([FakeFactory(Self.stateFake)]),
            environment: ["REDIS_HOST": "redis.local:6379"]
        )
        #expect(try Self.spec(store, "s").metadata["host"] == "redis.local:6379")
    }

    @Test func envRefToAnUnsetVariable() async throws {
        let errors = try await Self.initError(
            Self.yaml("s", type: "state.fake", spec: "  metadata:\n  - name: host\n    envRef: REDIS_HOST"),
            registry: ComponentRegistry([FakeFactory(Self.stateFake)]),
            environment: ["OTHER": "x"]
        )
        let message = try #require(errors.first)
        #expect(message.contains("spec.metadata[0].envRef"))
        #expect(message.contains("REDIS_HOST"))
    }

    @Test func envRefToAnEmptyVariableIsEmpty() async throws {
        let store = try await Self.load(
            Self.yaml("s", type: "state.fake", spec: "  metadata:\n  - name: host\n    envRef: EMPTY"),
            registry: ComponentRegistry([FakeFactory(Self.stateFake)]),
            environment: ["EMPTY": ""]
        )
        #expect(try Self.spec(store, "s").metadata["host"] == "")
    }

    @Test func placeholdersAreSubstituted() async throws {
        let store = try await Self.load(
            Self.yaml(
                "s",
                type: "state.fake",
                spec: """
                      metadata:
                      - name: app
                        value: "{appID}-table"
                      - name: ns
                        value: "{namespace}"
                      - name: ids
                        value: "{uuid}/{uuid}"
                      - name: pod
                        value: "{podName}"
                      - name: plain
                        value: "{not-a-placeholder}"
                    """
            ),
            registry: ComponentRegistry([FakeFactory(Self.stateFake)]),
            environment: ["POD_NAME": "orders-7d9f"]
        )
        let metadata = try Self.spec(store, "s").metadata
        #expect(metadata["app"] == "orders-table")
        #expect(metadata["ns"] == "prod.orders")
        #expect(metadata["pod"] == "orders-7d9f")
        #expect(metadata["plain"] == "{not-a-placeholder}")
        let ids = try #require(metadata["ids"]).split(separator: "/").map(String.init)
        #expect(ids.count == 2)
        #expect(ids[0] != ids[1])
        for id in ids {
            #expect(id.count == 36)
            #expect(id == id.lowercased())
            #expect(!id.contains("{"))
        }
    }

    @Test func placeholdersApplyToEnvironmentValues() async throws {
        let store = try await Self.load(
            Self.yaml("s", type: "state.fake", spec: "  metadata:\n  - name: table\n    envRef: TABLE"),
            registry: ComponentRegistry([FakeFactory(Self.stateFake)]),
            environment: ["TABLE": "t_{appID}"]
        )
        #expect(try Self.spec(store, "s").metadata["table"] == "t_orders")
    }

    @Test func podNameWithoutPOD_NAME() async throws {
        for environment in [[:], ["POD_NAME": ""]] as [[String: String]] {
            let errors = try await Self.initError(
                Self.yaml("s", type: "state.fake", spec: "  metadata:\n  - name: first\n    value: a\n  - name: pod\n    value: \"x-{podName}\""),
                registry: ComponentRegistry([FakeFactory(Self.stateFake)]),
                environment: environment
            )
            let message = try #require(errors.first)
            #expect(message.contains("{podName}"))
            #expect(message.contains("POD_NAME"))
            #expect(message.contains("spec.metadata[1]"))
        }
    }

    // MARK: Pub/sub consumer id

    @Test func consumerIDDefaultsToTheAppID() async throws {
        let registry = ComponentRegistry([FakeFactory(ComponentType(.pubsub, "fake")), FakeFactory(Self.stateFake)])
        let store = try await Self.load(
            Self.documents(
                Self.yaml("bus", type: "pubsub.fake"),
                Self.yaml("blank", type: "pubsub.fake", spec: "  metadata:\n  - name: consumerID\n    value: \" \""),
                Self.yaml("explicit", type: "pubsub.fake", spec: "  metadata:\n  - name: consumerID\n    value: \"{uuid}\""),
                Self.yaml("state", type: "state.fake")
            ),
            registry: registry
        )
        #expect(try Self.spec(store, "bus").metadata["consumerID"] == "orders")
        #expect(try Self.spec(store, "blank").metadata["consumerID"] == "orders")
        let explicit = try #require(try Self.spec(store, "explicit").metadata["consumerid"])
        #expect(explicit != "orders" && explicit.count == 36)
        #expect(try Self.spec(store, "state").metadata["consumerID"] == nil)
    }

    // MARK: Ordering and the resolved spec

    @Test func secretStoresInitialiseFirstThenFileOrder() async throws {
        let journal = Journal()
        let recording: @Sendable (ComponentSpec, ComponentContext) async throws -> any Component = { spec, _ in
            journal.append(spec.name)
            return FakeComponent(spec: spec)
        }
        let registry = ComponentRegistry([
            FakeFactory(Self.stateFake, build: recording),
            FakeFactory(ComponentType(.secretstores, "fake"), build: recording),
            FakeFactory(ComponentType(.bindings, "fake"), build: recording),
        ])
        _ = try await Self.load(
            Self.documents(
                Self.yaml("s1", type: "state.fake"),
                Self.yaml("secrets1", type: "secretstores.fake"),
                Self.yaml("b1", type: "bindings.fake"),
                Self.yaml("secrets2", type: "secretstores.fake"),
                Self.yaml("s2", type: "state.fake")
            ),
            registry: registry
        )
        #expect(journal.values == ["secrets1", "secrets2", "s1", "b1", "s2"])
    }

    @Test func resolvedSpecCarriesTheResource() async throws {
        let registry = ComponentRegistry([FakeFactory(Self.stateFake)])
        let store = try await Self.load(
            """
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: s
              namespace: prod
            spec:
              type: state.fake
              version: v1
              initTimeout: 2s
              metadata:
              - name: a
                value: 1
              - name: B
                value: {x: y}
            scopes: [orders]
            """,
            registry: registry
        )
        let spec = try Self.spec(store, "s")
        #expect(spec.namespace == "prod")
        #expect(spec.type == Self.stateFake)
        #expect(spec.version == "v1")
        #expect(spec.initTimeout == .seconds(2))
        #expect(spec.scopes == ["orders"])
        #expect(spec.source.resource == "Component/s")
        #expect(spec.metadata.properties == ["a": "1", "B": #"{"x":"y"}"#])
        #expect(spec.metadata["b"] == #"{"x":"y"}"#)
    }

    @Test func factoriesSeeTheContext() async throws {
        let registry = ComponentRegistry([
            FakeFactory(Self.stateFake) { spec, context in
                FakeComponent(spec: ComponentSpec(name: "\(context.appID)@\(context.namespace)", type: spec.type))
            }
        ])
        let store = try await Self.load(Self.yaml("s", type: "state.fake"), registry: registry)
        #expect((store.entry(named: "s")?.component as? FakeComponent)?.spec.name == "orders@prod")
    }

    @Test func buildResolvesWithoutAddingToTheStore() async throws {
        let secrets = ComponentStore()
        let loader = Self.loader(Self.secretsRegistry)
        try await loader.load(try Self.resources(Self.yaml("vault", type: "secretstores.fake")), into: secrets)
        let resource = try #require(
            try Self.resources(
                Self.yaml("resolver", type: "state.fake", spec: "  metadata:\n  - name: p\n    secretKeyRef:\n      name: db\n      key: user", extra: "auth:\n  secretStore: vault")
            ).first
        )
        let (component, spec) = try await loader.build(resource, secrets: secrets)
        #expect(component is FakeComponent)
        #expect(spec.metadata["p"] == "admin")
        #expect(secrets.entry(named: "resolver") == nil)
    }

    // MARK: Capabilities

    @Test func sqliteStateStoreCapabilities() async throws {
        let store = try await Self.load(
            Self.documents(
                Self.yaml("sqlite", type: "state.sqlite", spec: "  metadata:\n  - name: connectionString\n    value: \":memory:\""),
                Self.yaml("memory", type: "state.in-memory"),
                Self.yaml("bus", type: "pubsub.in-memory"),
                Self.yaml("cron", type: "bindings.cron", spec: "  metadata:\n  - name: schedule\n    value: \"@every 1h\""),
                Self.yaml("files", type: "bindings.localstorage", spec: "  metadata:\n  - name: rootPath\n    value: /tmp/mecha-runtime-tests/localstorage"),
                Self.yaml("env", type: "secretstores.local.env")
            ),
            registry: BuiltInComponents.registry
        )
        let capabilities = Dictionary(uniqueKeysWithValues: store.statuses.map { ($0.name, $0.capabilities) })
        #expect(capabilities["sqlite"] == ["ETAG", "TRANSACTIONAL", "TTL", "ACTOR"])
        #expect(capabilities["memory"] == ["ETAG", "TRANSACTIONAL", "TTL", "ACTOR"])
        #expect(capabilities["bus"] == ["MESSAGE_TTL"])
        #expect(capabilities["cron"] == ["INPUT_BINDING"])
        #expect(capabilities["files"] == ["OUTPUT_BINDING"])
        #expect(capabilities["env"] == [])
        for entry in store.entries { try await entry.component.close() }
    }
}

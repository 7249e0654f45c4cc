import MechaCore
import Testing

@testable import MechaConfig

/// Decoding of single documents: Component, Configuration and Subscription as Dapr writes them.
@Suite("ResourceDecoders")
struct ResourceDecodersTests {
    static let file = "/resources/test.yaml"

    static func load(_ yaml: String) throws -> LoadedResources {
        try ResourceLoader.load(text: yaml, file: self.file)
    }

    static func component(_ yaml: String) throws -> ComponentResource {
        let loaded = try self.load(yaml)
        #expect(loaded.components.count == 1)
        return try #require(loaded.components.first)
    }

    /// The single error that loading `yaml` reports.
    static func error(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> ResourceError {
        let failure = try #require(throws: ResourceLoadError.self, sourceLocation: sourceLocation) {
            try ResourceLoader.load(text: yaml, file: self.file)
        }
        #expect(failure.errors.count == 1, sourceLocation: sourceLocation)
        return try #require(failure.errors.first, sourceLocation: sourceLocation)
    }

    /// A component document with `spec` lines (indented by two spaces) under `spec:`.
    static func componentYAML(name: String = "statestore", spec: String, extra: String = "") -> String {
        """
        apiVersion: dapr.io/v1alpha1
        kind: Component
        metadata:
          name: \(name)
        spec:
        \(spec)
        \(extra)
        """
    }

    // MARK: Component

    static let fullComponent = """
        apiVersion: dapr.io/v1alpha1
        kind: Component
        metadata:
          name: statestore
          namespace: production
        spec:
          type: state.redis
          version: v1
          initTimeout: 1m30s
          ignoreErrors: true
          metadata:
          - name: redisHost
            value: localhost:6379
          - name: redisPassword
            secretKeyRef:
              name: redis-secret
              key: redis-password
          - name: secretWithoutKey
            secretKeyRef:
              name: only-name
          - name: fromEnvironment
            envRef: REDIS_HOST
          - name: actorStateStore
            value: "true"
          - name: maxRetries
            value: 3
          - name: enableTLS
            value: false
          - name: ratio
            value: 1.5
          - name: routing
            value:
              a: 1
              b: [x, "y", true, null]
              c: "2"
          - name: list
            value: [1, two]
          - name: empty
        auth:
          secretStore: vault
        scopes:
        - app1
        - app2
        """

    @Test func componentAsDaprWritesIt() throws {
        let component = try Self.component(Self.fullComponent)
        #expect(component.name == "statestore")
        #expect(component.namespace == "production")
        #expect(component.type == ComponentType(.state, "redis"))
        #expect(component.version == "v1")
        #expect(component.initTimeout == .seconds(90))
        #expect(component.ignoreErrors)
        #expect(component.secretStore == "vault")
        #expect(component.scopes == ["app1", "app2"])
        #expect(component.source.file == Self.file)
        #expect(component.source.resource == "Component/statestore")
        #expect(component.source.line == 1)
        #expect(component.isInScope(appID: "app1"))
        #expect(!component.isInScope(appID: "app3"))

        let values = component.metadata.map(\.value)
        #expect(component.metadata.map(\.name) == [
            "redisHost", "redisPassword", "secretWithoutKey", "fromEnvironment", "actorStateStore",
            "maxRetries", "enableTLS", "ratio", "routing", "list", "empty",
        ])
        #expect(values == [
            .literal("localhost:6379"),
            .secretKeyRef(name: "redis-secret", key: "redis-password"),
            .secretKeyRef(name: "only-name", key: "only-name"),
            .envRef("REDIS_HOST"),
            .literal("true"),
            .literal("3"),
            .literal("false"),
            .literal("1.5"),
            .literal(#"{"a":1,"b":["x","y",true,null],"c":"2"}"#),
            .literal(#"[1,"two"]"#),
            .literal(""),
        ])
        #expect(component.metadata.map(\.field) == (0..<11).map { "spec.metadata[\($0)]" })
    }

    @Test func defaultsWhenOptionalFieldsAreAbsent() throws {
        let component = try Self.component(Self.componentYAML(spec: "  type: pubsub.in-memory"))
        #expect(component.type == ComponentType(.pubsub, "in-memory"))
        #expect(component.version == "")
        #expect(component.namespace == "")
        #expect(component.initTimeout == .seconds(5))
        #expect(!component.ignoreErrors)
        #expect(component.scopes.isEmpty)
        #expect(component.secretStore == nil)
        #expect(component.metadata.isEmpty)
        #expect(component.isInScope(appID: "anything"))
    }

    @Test(arguments: ["v1", "v2", "V1", "v1alpha1", "v0.2"])
    func versionIsKeptExactlyAsWritten(version: String) throws {
        let component = try Self.component(Self.componentYAML(spec: "  type: state.sqlite\n  version: \(version)"))
        #expect(component.version == version)
    }

    @Test func typeNameIsLowercasedAndMayContainDots() throws {
        let component = try Self.component(Self.componentYAML(spec: "  type: SecretStores.Local.File"))
        #expect(component.type == ComponentType(.secretstores, "local.file"))
        #expect(component.type.description == "secretstores.local.file")
    }

    @Test(arguments: [
        ("500ms", Duration.milliseconds(500)),
        ("5s", Duration.seconds(5)),
        ("1m", Duration.seconds(60)),
        ("1h0m0s", Duration.seconds(3600)),
        ("0", Duration.zero),
    ])
    func initTimeoutInGoSyntax(text: String, expected: Duration) throws {
        let component = try Self.component(Self.componentYAML(spec: "  type: state.sqlite\n  initTimeout: \(text)"))
        #expect(component.initTimeout == expected)
    }

    @Test(arguments: [("true", true), ("false", false), ("\"true\"", true), ("yes", true), ("0", false)])
    func ignoreErrorsAcceptsBooleans(text: String, expected: Bool) throws {
        let component = try Self.component(Self.componentYAML(spec: "  type: state.sqlite\n  ignoreErrors: \(text)"))
        #expect(component.ignoreErrors == expected)
    }

    @Test func emptyAuthSecretStoreCountsAsAbsent() throws {
        let component = try Self.component(
            Self.componentYAML(spec: "  type: state.sqlite", extra: "auth:\n  secretStore: \"\"")
        )
        #expect(component.secretStore == nil)
    }

    @Test func nullSectionsCountAsEmpty() throws {
        let component = try Self.component(
            Self.componentYAML(spec: "  type: state.sqlite\n  metadata:\n  version: ~", extra: "scopes:")
        )
        #expect(component.metadata.isEmpty)
        #expect(component.scopes.isEmpty)
        #expect(component.version == "")
    }

    // MARK: Component errors

    @Test func badMetadataItemNamesFileResourceAndFieldPath() throws {
        let error = try Self.error(
            Self.componentYAML(spec: """
                  type: state.sqlite
                  metadata:
                  - name: first
                    value: one
                  - value: two
                """)
        )
        #expect(error.source.file == Self.file)
        #expect(error.source.resource == "Component/statestore")
        #expect(error.field == "spec.metadata[1].name")
        #expect(error.reason.contains("missing"))
        #expect(error.description.contains(Self.file))
        #expect(error.description.contains("Component/statestore"))
        #expect(error.description.contains("spec.metadata[1].name"))
    }

    @Test func emptyMetadataItemName() throws {
        let error = try Self.error(Self.componentYAML(spec: "  type: state.sqlite\n  metadata:\n  - name: \"  \"\n    value: x"))
        #expect(error.field == "spec.metadata[0].name")
        #expect(error.reason.contains("empty"))
    }

    @Test func metadataItemListedTwiceIsAnError() throws {
        let error = try Self.error(
            Self.componentYAML(spec: """
                  type: state.sqlite
                  metadata:
                  - name: connectionString
                    value: a
                  - name: ConnectionString
                    value: b
                """)
        )
        #expect(error.field == "spec.metadata[1]")
        #expect(error.reason.contains("ConnectionString"))
        #expect(error.reason.contains("twice"))
    }

    @Test func secretKeyRefNeedsAName() throws {
        let error = try Self.error(
            Self.componentYAML(spec: "  type: state.sqlite\n  metadata:\n  - name: password\n    secretKeyRef:\n      key: k")
        )
        #expect(error.field == "spec.metadata[0].secretKeyRef.name")
    }

    @Test func envRefMustBeAString() throws {
        let error = try Self.error(
            Self.componentYAML(spec: "  type: state.sqlite\n  metadata:\n  - name: password\n    envRef: [A, B]")
        )
        #expect(error.field == "spec.metadata[0].envRef")
        #expect(error.reason.contains("expected a string"))
    }

    @Test func badInitTimeout() throws {
        let error = try Self.error(Self.componentYAML(spec: "  type: state.sqlite\n  initTimeout: soon"))
        #expect(error.field == "spec.initTimeout")
        #expect(error.reason.contains("soon"))
        #expect(error.source.line == 7)
    }

    @Test func badIgnoreErrors() throws {
        let error = try Self.error(Self.componentYAML(spec: "  type: state.sqlite\n  ignoreErrors: perhaps"))
        #expect(error.field == "spec.ignoreErrors")
        #expect(error.reason.contains("perhaps"))
    }

    @Test func missingSpecType() throws {
        let error = try Self.error(Self.componentYAML(spec: "  version: v1"))
        #expect(error.field == "spec.type")
        #expect(error.source.resource == "Component/statestore")
        #expect(error.reason.contains("missing"))
    }

    @Test func missingSpec() throws {
        let error = try Self.error("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: x\n")
        #expect(error.field == "spec")
        #expect(error.source.resource == "Component/x")
    }

    @Test(arguments: ["statestore.redis", "redis", "state.", ".redis"])
    func unknownCategoryListsTheCategories(type: String) throws {
        let error = try Self.error(Self.componentYAML(spec: "  type: \(type)"))
        #expect(error.field == "spec.type")
        #expect(error.reason.contains("'\(type)'"))
        for category in ComponentCategory.allCases {
            #expect(error.reason.contains(category.rawValue))
        }
    }

    @Test(arguments: ["dapr.io/v2alpha1", "v1", "", "dapr.io/v1"])
    func wrongComponentAPIVersion(apiVersion: String) throws {
        let yaml = """
            apiVersion: "\(apiVersion)"
            kind: Component
            metadata:
              name: statestore
            spec:
              type: state.sqlite
            """
        let error = try Self.error(yaml)
        #expect(error.source.resource == "Component/statestore")
        #expect(error.reason.contains("apiVersion"))
        #expect(error.reason.contains("dapr.io/v1alpha1"))
    }

    @Test func missingAPIVersion() throws {
        let error = try Self.error("kind: Component\nmetadata:\n  name: s\nspec:\n  type: state.sqlite\n")
        #expect(error.reason.contains("unsupported apiVersion ''"))
    }

    @Test func missingMetadataName() throws {
        let error = try Self.error(
            """
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              namespace: default
            spec:
              type: state.sqlite
            """
        )
        #expect(error.field == "metadata.name")
        #expect(error.source.resource == "Component/#1")
        #expect(error.reason.contains("missing"))
    }

    @Test func missingMetadata() throws {
        let error = try Self.error("apiVersion: dapr.io/v1alpha1\nkind: Component\nspec:\n  type: state.sqlite\n")
        #expect(error.field == "metadata")
    }

    @Test func scopesMustBeAList() throws {
        let error = try Self.error(Self.componentYAML(spec: "  type: state.sqlite", extra: "scopes:\n  app: one"))
        #expect(error.field == "scopes")
        #expect(error.reason.contains("expected a list"))
    }

    @Test func metadataMustBeAList() throws {
        let error = try Self.error(Self.componentYAML(spec: "  type: state.sqlite\n  metadata:\n    a: b"))
        #expect(error.field == "spec.metadata")
    }

    @Test func specMustBeAMapping() throws {
        let error = try Self.error("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: s\nspec: [1]\n")
        #expect(error.field == "spec")
        #expect(error.reason.contains("expected a mapping"))
    }

    // MARK: Configuration

    static let fullConfiguration = """
        apiVersion: dapr.io/v1alpha1
        kind: Configuration
        metadata:
          name: appconfig
        spec:
          secrets:
            scopes:
            - storeName: vault
              defaultAccess: deny
              allowedSecrets: ["db-password", "api-key"]
            - storeName: local
              defaultAccess: Allow
              deniedSecrets: [admin]
            - storeName: third
          api:
            allowed:
            - name: state
              version: v1.0
              protocol: http
            - name: invoke
              version: v1.0
              protocol: GRPC
            - name: publish
              version: v1.0
            denied:
            - name: secrets
              version: v1.0
          features:
          - name: Actor.Reentrancy
            enabled: true
          - name: SchedulerReminders
            enabled: false
          - name: NoFlag
          nameResolution:
            component: sqlite
            configuration:
              connectionString: /tmp/nr.db
              timeout: 5
              nested:
                a: [1, 2]
        """

    @Test func configurationAsDaprWritesIt() throws {
        let loaded = try Self.load(Self.fullConfiguration)
        let configuration = try #require(loaded.configurations.first)
        #expect(loaded.components.isEmpty)
        #expect(configuration.name == "appconfig")
        #expect(configuration.source.resource == "Configuration/appconfig")
        #expect(configuration.secretScopes == [
            SecretScope(storeName: "vault", defaultAccess: .deny, allowedSecrets: ["db-password", "api-key"]),
            SecretScope(storeName: "local", defaultAccess: .allow, deniedSecrets: ["admin"]),
            SecretScope(storeName: "third", defaultAccess: .allow),
        ])
        #expect(configuration.secretScopes[0].isAllowed("db-password"))
        #expect(!configuration.secretScopes[0].isAllowed("other"))
        #expect(!configuration.secretScopes[1].isAllowed("admin"))
        #expect(configuration.secretScopes[1].isAllowed("other"))
        #expect(configuration.apiAllowed == [
            APIAccessRule(name: "state", version: "v1.0", apiProtocol: .http),
            APIAccessRule(name: "invoke", version: "v1.0", apiProtocol: .grpc),
            APIAccessRule(name: "publish", version: "v1.0"),
        ])
        #expect(configuration.apiDenied == [APIAccessRule(name: "secrets", version: "v1.0")])
        #expect(configuration.features == ["Actor.Reentrancy": true, "SchedulerReminders": false, "NoFlag": false])
        #expect(configuration.enabledFeatures == ["Actor.Reentrancy"])
        #expect(configuration.nameResolutionComponent == "sqlite")
        #expect(configuration.nameResolutionConfiguration == [
            "connectionString": "/tmp/nr.db",
            "timeout": "5",
            "nested": #"{"a":[1,2]}"#,
        ])
    }

    @Test func configurationWithoutSpecHasDefaults() throws {
        let loaded = try Self.load("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: empty\n")
        let configuration = try #require(loaded.configurations.first)
        #expect(configuration.name == "empty")
        #expect(configuration.secretScopes.isEmpty)
        #expect(configuration.apiAllowed == nil)
        #expect(configuration.apiDenied.isEmpty)
        #expect(configuration.features.isEmpty)
        #expect(configuration.nameResolutionComponent == nil)
    }

    @Test func emptyAllowedListDiffersFromAbsent() throws {
        let loaded = try Self.load(
            "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: c\nspec:\n  api:\n    allowed: []\n"
        )
        #expect(loaded.configurations.first?.apiAllowed == [])
    }

    static func configurationYAML(_ spec: String) -> String {
        """
        apiVersion: dapr.io/v1alpha1
        kind: Configuration
        metadata:
          name: appconfig
        spec:
        \(spec)
        """
    }

    @Test(arguments: ["maybe", "allowed", "true"])
    func badDefaultAccess(value: String) throws {
        let error = try Self.error(
            Self.configurationYAML("  secrets:\n    scopes:\n    - storeName: vault\n      defaultAccess: \(value)")
        )
        #expect(error.source.resource == "Configuration/appconfig")
        #expect(error.field == "spec.secrets.scopes[0].defaultAccess")
        #expect(error.reason == "defaultAccess \(value) can be either allow or deny")
    }

    @Test func repeatedStoreName() throws {
        let error = try Self.error(
            Self.configurationYAML(
                "  secrets:\n    scopes:\n    - storeName: vault\n    - storeName: local\n    - storeName: vault\n      defaultAccess: deny"
            )
        )
        #expect(error.field == "spec.secrets.scopes[2]")
        #expect(error.reason == "vault storeName is repeated in secrets configuration")
    }

    @Test func missingStoreName() throws {
        let error = try Self.error(Self.configurationYAML("  secrets:\n    scopes:\n    - defaultAccess: deny"))
        #expect(error.field == "spec.secrets.scopes[0].storeName")
    }

    @Test func badAPIProtocol() throws {
        let error = try Self.error(
            Self.configurationYAML("  api:\n    denied:\n    - name: state\n      version: v1.0\n      protocol: websocket")
        )
        #expect(error.field == "spec.api.denied[0].protocol")
        #expect(error.reason.contains("websocket"))
    }

    @Test func apiRuleNeedsAVersion() throws {
        let error = try Self.error(Self.configurationYAML("  api:\n    allowed:\n    - name: state"))
        #expect(error.field == "spec.api.allowed[0].version")
    }

    @Test func badFeatureFlag() throws {
        let error = try Self.error(Self.configurationYAML("  features:\n  - name: X\n    enabled: sometimes"))
        #expect(error.field == "spec.features[0].enabled")
    }

    @Test func wrongConfigurationAPIVersion() throws {
        let error = try Self.error("apiVersion: dapr.io/v2\nkind: Configuration\nmetadata:\n  name: c\n")
        #expect(error.source.resource == "Configuration/c")
        #expect(error.field == "apiVersion")
        #expect(error.reason.contains("Configuration"))
    }

    // MARK: Subscription

    @Test func subscriptionV1Alpha1WithRoute() throws {
        let loaded = try Self.load(
            """
            apiVersion: dapr.io/v1alpha1
            kind: Subscription
            metadata:
              name: order-sub
            spec:
              pubsubname: pubsub
              topic: orders
              route: /orders
              metadata:
                rawPayload: "true"
                maxCount: 3
            scopes:
            - app1
            """
        )
        let subscription = try #require(loaded.subscriptions.first)
        #expect(subscription.name == "order-sub")
        #expect(subscription.pubsubName == "pubsub")
        #expect(subscription.topic == "orders")
        #expect(subscription.routes == SubscriptionRoutes(rules: [], defaultPath: "/orders"))
        #expect(subscription.metadata == ["rawPayload": "true", "maxCount": "3"])
        #expect(subscription.rawPayload)
        #expect(subscription.scopes == ["app1"])
        #expect(subscription.origin == .declarative)
        #expect(subscription.deadLetterTopic == nil)
        #expect(subscription.bulkSubscribe == nil)
        #expect(subscription.source?.resource == "Subscription/order-sub")
        #expect(subscription.isInScope(appID: "app1"))
        #expect(!subscription.isInScope(appID: "app2"))
    }

    @Test func subscriptionV2Alpha1WithRules() throws {
        let loaded = try Self.load(
            """
            apiVersion: dapr.io/v2alpha1
            kind: Subscription
            metadata:
              name: order-sub
            spec:
              pubsubname: pubsub
              topic: orders
              routes:
                rules:
                - match: event.type == "widget"
                  path: /widgets
                - match: 'event.data.priority > 5'
                  path: /urgent
                default: /orders
              deadLetterTopic: poison
              bulkSubscribe:
                enabled: true
                maxMessagesCount: 50
                maxAwaitDurationMs: 40
            scopes: [app1, app2]
            """
        )
        let subscription = try #require(loaded.subscriptions.first)
        #expect(subscription.routes.rules == [
            RouteRule(match: #"event.type == "widget""#, path: "/widgets"),
            RouteRule(match: "event.data.priority > 5", path: "/urgent"),
        ])
        #expect(subscription.routes.defaultPath == "/orders")
        #expect(subscription.deadLetterTopic == "poison")
        #expect(subscription.bulkSubscribe == BulkSubscribeOptions(enabled: true, maxMessagesCount: 50, maxAwaitDurationMs: 40))
        #expect(subscription.scopes == ["app1", "app2"])
        #expect(!subscription.rawPayload)
    }

    @Test func subscriptionV2Alpha1RulesOnlyAndBulkDefaults() throws {
        let loaded = try Self.load(
            """
            apiVersion: dapr.io/v2alpha1
            kind: Subscription
            metadata:
              name: s
            spec:
              pubsubname: pubsub
              topic: orders
              routes:
                rules:
                - path: /all
              bulkSubscribe:
                enabled: true
              deadLetterTopic: ""
            """
        )
        let subscription = try #require(loaded.subscriptions.first)
        #expect(subscription.routes == SubscriptionRoutes(rules: [RouteRule(match: "", path: "/all")], defaultPath: nil))
        #expect(subscription.bulkSubscribe == BulkSubscribeOptions(enabled: true, maxMessagesCount: 100, maxAwaitDurationMs: 1000))
        #expect(subscription.deadLetterTopic == nil)
    }

    @Test func subscriptionV2Alpha1WithDefaultOnly() throws {
        let loaded = try Self.load(
            "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: s\nspec:\n  pubsubname: p\n  topic: t\n  routes:\n    default: /d\n"
        )
        #expect(loaded.subscriptions.first?.routes == SubscriptionRoutes(rules: [], defaultPath: "/d"))
    }

    static func subscriptionYAML(apiVersion: String = "dapr.io/v2alpha1", _ spec: String) -> String {
        """
        apiVersion: \(apiVersion)
        kind: Subscription
        metadata:
          name: sub
        spec:
        \(spec)
        """
    }

    /// daprd keeps a v2alpha1 subscription whose routes are empty (it drops every message).
    @Test func subscriptionWithEmptyRoutesIsKept() throws {
        let loaded = try ResourceLoader.load(text: Self.subscriptionYAML("  pubsubname: p\n  topic: t\n  routes:\n    rules: []"), file: "/resources/test.yaml")
        let subscription = try #require(loaded.subscriptions.first)
        #expect(subscription.routes.rules.isEmpty)
        #expect(subscription.routes.defaultPath == nil)
    }

    @Test func v1Alpha1SubscriptionNeedsRoute() throws {
        let error = try Self.error(Self.subscriptionYAML(apiVersion: "dapr.io/v1alpha1", "  pubsubname: p\n  topic: t"))
        #expect(error.field == "spec")
        #expect(error.reason.contains("spec.route"))
    }

    @Test func routeRuleNeedsAPath() throws {
        let error = try Self.error(Self.subscriptionYAML("  pubsubname: p\n  topic: t\n  routes:\n    rules:\n    - match: x"))
        #expect(error.field == "spec.routes.rules[0].path")
    }

    @Test(arguments: ["pubsubname", "topic"])
    func subscriptionRequiredFields(missing: String) throws {
        let lines = ["  pubsubname: p", "  topic: t", "  route: /r"].filter { !$0.contains(missing) }
        let error = try Self.error(Self.subscriptionYAML(lines.joined(separator: "\n")))
        #expect(error.field == "spec.\(missing)")
    }

    @Test func badBulkSubscribeCount() throws {
        let error = try Self.error(
            Self.subscriptionYAML("  pubsubname: p\n  topic: t\n  route: /r\n  bulkSubscribe:\n    maxMessagesCount: lots")
        )
        #expect(error.field == "spec.bulkSubscribe.maxMessagesCount")
    }

    @Test func wrongSubscriptionAPIVersion() throws {
        let error = try Self.error(Self.subscriptionYAML(apiVersion: "dapr.io/v3", "  pubsubname: p\n  topic: t\n  route: /r"))
        #expect(error.field == "apiVersion")
        #expect(error.reason.contains("dapr.io/v1alpha1 or dapr.io/v2alpha1"))
    }
}

import MechaCore
import Testing

@testable import MechaConfig

@Suite struct AccessControlDecoderTests {
    static let file = "/res/config.yaml"

    static func configuration(_ spec: String) throws -> ConfigurationSpec {
        let yaml = "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: acl\nspec:\n" + spec
        let loaded = try ResourceLoader.load(text: yaml, file: Self.file)
        return try #require(loaded.configurations.first)
    }

    static func error(_ spec: String) throws -> String {
        let yaml = "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: acl\nspec:\n" + spec
        let failure = try #require(throws: ResourceLoadError.self) { try ResourceLoader.load(text: yaml, file: Self.file) }
        let text = failure.errors.map(\.description).joined(separator: "\n")
        #expect(text.contains(Self.file) && text.contains("Configuration/acl"))
        return text
    }

    @Test func readsDaprsShape() throws {
        let spec = try Self.configuration(
            """
              accessControl:
                defaultAction: deny
                trustDomain: "public"
                policies:
                - appId: orders
                  defaultAction: Deny
                  trustDomain: public
                  namespace: default
                  operations:
                  - name: /ship
                    httpVerb: ["POST", "GET"]
                    action: ALLOW
                  - name: /admin/**
                    httpVerb: ["*"]
                    action: deny
                  - name: /nothing
              mtls:
                enabled: true
                workloadCertTTL: "1h"
                allowedClockSkew: "5m"
            """)
        let acl = try #require(spec.accessControl)
        #expect(acl.defaultAction == .deny && acl.trustDomain == "public")
        let policy = try #require(acl.policies.first)
        #expect(policy.appID == "orders" && policy.namespace == "default" && policy.defaultAction == .deny)
        #expect(policy.operations == [
            .init(name: "/ship", httpVerbs: ["POST", "GET"], action: .allow), .init(name: "/admin/**", httpVerbs: ["*"], action: .deny),
            // No action: denied, as daprd.
            .init(name: "/nothing", httpVerbs: [], action: .deny),
        ])
        #expect(spec.mtls == MTLSSpec(enabled: true, workloadCertTTL: .seconds(3600), allowedClockSkew: .seconds(300)))
    }

    @Test func defaultsFollowDaprd() throws {
        // Nothing in it: no ACL.
        #expect(try Self.configuration("  accessControl: {}\n").accessControl == nil)
        // Policies without a global default: deny; an explicit empty list: allow.
        let denying = try Self.configuration("  accessControl:\n    policies:\n    - {appId: a, trustDomain: public, namespace: default}\n")
        #expect(denying.accessControl?.defaultAction == .deny)
        #expect(try Self.configuration("  accessControl:\n    trustDomain: corp\n    policies: []\n").accessControl?.defaultAction == .allow)
        #expect(try Self.configuration("  accessControl:\n    trustDomain: corp\n").accessControl?.defaultAction == .deny)
        #expect(try Self.configuration("  accessControl:\n    defaultAction: allow\n").accessControl?.trustDomain == "public")
        // The later policy of an app id and namespace replaces the earlier one.
        let twice = try Self.configuration(
            "  accessControl:\n    policies:\n    - {appId: a, trustDomain: public, namespace: default, defaultAction: deny}\n    - {appId: a, trustDomain: public, namespace: default, defaultAction: allow}\n")
        #expect(twice.accessControl?.policies.map(\.defaultAction) == [.allow])
    }

    @Test func badInputNamesTheField() throws {
        #expect(try Self.error("  accessControl:\n    defaultAction: alow\n").contains("spec.accessControl.defaultAction: must be allow or deny, found 'alow'"))
        #expect(try Self.error("  accessControl:\n    policies:\n    - {trustDomain: public, namespace: default}\n").contains("appId"))
        #expect(try Self.error("  accessControl:\n    policies:\n    - {appId: a, namespace: default}\n").contains("trustDomain"))
        #expect(try Self.error("  accessControl:\n    policies:\n    - {appId: a, trustDomain: public}\n").contains("namespace"))
        #expect(
            try Self.error("  accessControl:\n    policies:\n    - appId: a\n      trustDomain: public\n      namespace: default\n      operations:\n      - {name: /x, action: maybe}\n")
                .contains("spec.accessControl.policies[0].operations[0].action: must be allow or deny, found 'maybe'"))
        #expect(try Self.error("  accessControl:\n    polices: []\n").contains("unknown field"))
        #expect(try Self.error("  mtls:\n    workloadCertTTL: soon\n").contains("spec.mtls.workloadCertTTL"))
    }
}

@Suite struct AccessPolicyDecoderTests {
    static let file = "/res/access.yaml"
    static let header = "apiVersion: mecha.dev/v1alpha1\nkind: AccessPolicy\nmetadata:\n  name: data\nspec:\n"

    static func policy(_ spec: String) throws -> AccessPolicySpec {
        try #require(try ResourceLoader.load(text: Self.header + spec, file: Self.file).accessPolicies.first)
    }

    static func error(_ spec: String) throws -> String {
        let failure = try #require(throws: ResourceLoadError.self) { try ResourceLoader.load(text: Self.header + spec, file: Self.file) }
        let text = failure.errors.map(\.description).joined(separator: "\n")
        #expect(text.contains(Self.file) && text.contains("AccessPolicy/data"))
        return text
    }

    @Test func readsTheAccessControlLanguageForBlocks() throws {
        let spec = try Self.policy(
            """
              defaultAction: allow
              policies:
              - appId: orders
                defaultAction: deny
                operations:
                - name: /state/statestore/orders-*
                  verbs: [GET, save]
                  action: allow
                - name: /pubsub/pubsub/orders
                  action: allow
              - appId: billing
                namespace: prod
                trustDomain: example.org
            """)
        #expect(spec.name == "data" && spec.source.file == Self.file)
        #expect(spec.access.defaultAction == .allow)
        #expect(spec.access.policies.count == 2)
        let orders = spec.access.policies[0]
        #expect(orders.appID == "orders" && orders.namespace == "default" && orders.trustDomain == "public" && orders.defaultAction == .deny)
        #expect(orders.operations == [
            .init(name: "/state/statestore/orders-*", httpVerbs: ["get", "save"], action: .allow),
            .init(name: "/pubsub/pubsub/orders", httpVerbs: ["*"], action: .allow),
        ])
        #expect(spec.access.policies[1].namespace == "prod" && spec.access.policies[1].trustDomain == "example.org")
        // Without defaultAction: deny once a policy exists, allow with an explicit empty list.
        #expect(try Self.policy("  policies:\n  - appId: a\n").access.defaultAction == .deny)
        #expect(try Self.policy("  policies: []\n").access.defaultAction == .allow)
    }

    @Test func badInputNamesTheField() throws {
        #expect(try Self.error("  policies:\n  - appId: a\n    operations:\n    - name: /invoke/x\n").contains("spec.policies[0].operations[0].name"))
        #expect(try Self.error("  policies:\n  - appId: a\n    operations:\n    - name: state/x\n").contains("must be /state/<store>"))
        #expect(try Self.error("  policies:\n  - appId: a\n    operations:\n    - name: /state\n").contains("operations[0].name"))
        #expect(
            try Self.error("  policies:\n  - appId: a\n    operations:\n    - {name: /pubsub/p/t, verbs: [get]}\n")
                .contains("spec.policies[0].operations[0].verbs: 'get' is not a pubsub verb; use publish, subscribe or *"))
        #expect(try Self.error("  policies:\n  - appId: a\n    operations:\n    - {name: /secrets/s, action: maybe}\n").contains("must be allow or deny"))
        #expect(try Self.error("  policies:\n  - namespace: default\n").contains("appId"))
        #expect(try Self.error("  polices: []\n").contains("unknown field"))
        let wrongVersion = try #require(throws: ResourceLoadError.self) {
            try ResourceLoader.load(
                text: "apiVersion: dapr.io/v1alpha1\nkind: AccessPolicy\nmetadata:\n  name: data\nspec:\n  policies: []\n", file: Self.file)
        }
        #expect(wrongVersion.description.contains("expected mecha.dev/v1alpha1"))
    }
}

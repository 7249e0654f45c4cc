import MechaCore
import Testing

@testable import MechaAPI

/// daprd's ACL decisions (`pkg/acl`), with the cases of its tests.
@Suite struct AccessControlTests {
    static let orders = CallerIdentity(trustDomain: "public", namespace: "default", appID: "orders")

    static func acl(_ operations: [AccessControlSpec.Operation], appDefault: AccessControlSpec.Action? = .deny, global: AccessControlSpec.Action = .allow, http: Bool = true)
        -> AccessControl
    {
        AccessControl(
            spec: AccessControlSpec(
                defaultAction: global,
                policies: [.init(appID: "orders", trustDomain: "public", namespace: "default", defaultAction: appDefault, operations: operations)]),
            appProtocolIsHTTP: http)
    }

    @Test func wildcardsFollowDaprdsTrie() {
        let acl = Self.acl(
            [
                .init(name: "/op7/a/b/*", action: .allow), .init(name: "/op7/a/b/c/f", action: .allow), .init(name: "/op7/a/b*", action: .allow),
                .init(name: "/op7/c/**", action: .allow), .init(name: "/op3/a/*", httpVerbs: ["PUT", "GET"], action: .allow),
                .init(name: "/prefix", action: .allow),
            ], http: false)
        let cases: [(String, String?, Bool)] = [
            ("op7/a/b/c", nil, true), ("op7/a/b/c/d", nil, false), ("op7/a/bc", nil, true), ("op7/c/d/e", nil, true), ("op7/c", nil, true), ("op7/d", nil, false),
            ("prefix", nil, true), ("prefix/under/it", nil, true), ("other", nil, false), ("/op3/a", nil, true), ("/op3/a/b", nil, true),
            ("/op3/b/b", nil, false),
        ]
        for (method, verb, allowed) in cases {
            #expect((acl.decide(caller: Self.orders, method: method, verb: verb) == .allowed) == allowed, "\(method)")
        }
    }

    @Test func httpAppsMatchVerbsAndIgnoreCase() {
        let acl = Self.acl([.init(name: "/op3/a/*", httpVerbs: ["PUT", "GET"], action: .allow), .init(name: "/Ship", httpVerbs: ["*"], action: .allow)])
        #expect(acl.decide(caller: Self.orders, method: "op3/a", verb: "PUT") == .allowed)
        #expect(acl.decide(caller: Self.orders, method: "OP3/A/b", verb: "GET") == .allowed)
        #expect(acl.decide(caller: Self.orders, method: "op3/a/b", verb: "POST") != .allowed)
        #expect(acl.decide(caller: Self.orders, method: "op3/a/b", verb: "put") != .allowed)
        #expect(acl.decide(caller: Self.orders, method: "ship", verb: "DELETE") == .allowed)
        // A gRPC app compares names exactly and ignores verbs.
        let grpc = Self.acl([.init(name: "/Op2", httpVerbs: [], action: .allow)], http: false)
        #expect(grpc.decide(caller: Self.orders, method: "Op2", verb: nil) == .allowed)
        #expect(grpc.decide(caller: Self.orders, method: "op2", verb: nil) != .allowed)
    }

    @Test func callersOutsideThePoliciesGetTheGlobalDefault() {
        let acl = Self.acl([.init(name: "/ship", action: .allow)], appDefault: .deny, global: .allow)
        let stranger = CallerIdentity(trustDomain: "public", namespace: "default", appID: "billing")
        let otherNamespace = CallerIdentity(trustDomain: "public", namespace: "prod", appID: "orders")
        let otherDomain = CallerIdentity(trustDomain: "corp", namespace: "default", appID: "orders")
        #expect(acl.decide(caller: stranger, method: "anything", verb: "POST") == .allowed)
        #expect(acl.decide(caller: otherNamespace, method: "anything", verb: "POST") == .allowed)
        #expect(acl.decide(caller: otherDomain, method: "anything", verb: "POST") == .allowed)
        #expect(acl.decide(caller: nil, method: "anything", verb: "POST") == .allowed)
        #expect(
            acl.decide(caller: Self.orders, method: "refund", verb: "POST")
                == .denied("access control policy has denied access to id: spiffe://public/ns/default/orders operation: /refund verb: POST"))
        // Without an app default, the global one applies to the app's other operations.
        let open = Self.acl([.init(name: "/ship", action: .deny)], appDefault: nil, global: .allow)
        #expect(open.decide(caller: Self.orders, method: "refund", verb: "POST") == .allowed)
        #expect(open.decide(caller: Self.orders, method: "ship", verb: "POST") != .allowed)
    }

    @Test func theFirstEntryOfARepeatedNameWins() {
        let acl = Self.acl([.init(name: "/ship", action: .allow), .init(name: "/ship", action: .deny)])
        #expect(acl.decide(caller: Self.orders, method: "ship", verb: "POST") == .allowed)
    }

    @Test(arguments: [("abcd", true), ("ad", true), ("abc", false), ("xabcd", false), ("a", false)])
    func segmentGlobs(segment: String, matches: Bool) {
        #expect(AccessControl.matches("a*d", segment[...]) == matches)
    }
}

/// Mecha AccessPolicies for this sidecar's own app: state keys, topics, secrets.
@Suite struct BlockAccessTests {
    static let orders = CallerIdentity(trustDomain: "public", namespace: "default", appID: "orders")

    static func policy(_ name: String, global: AccessControlSpec.Action = .deny, appDefault: AccessControlSpec.Action? = .deny, _ operations: [AccessControlSpec.Operation])
        -> AccessPolicySpec
    {
        AccessPolicySpec(
            name: name, source: ResourceSource(file: "/res/access.yaml", resource: "AccessPolicy/\(name)"),
            access: AccessControlSpec(
                defaultAction: global,
                policies: [.init(appID: "orders", trustDomain: "public", namespace: "default", defaultAction: appDefault, operations: operations)]))
    }

    @Test func withoutPoliciesNothingIsChecked() {
        let access = BlockAccess(caller: Self.orders)
        #expect(!access.isActive)
        #expect(access.denial(.state, component: "s", resource: "k", verb: "get") == nil)
    }

    @Test func keysTopicsAndSecretsFollowTheRules() {
        let access = BlockAccess(
            caller: Self.orders,
            policies: [
                Self.policy(
                    "data",
                    [
                        .init(name: "/state/statestore/orders-*", httpVerbs: ["get", "save"], action: .allow),
                        .init(name: "/state/statestore/public/**", httpVerbs: ["*"], action: .allow),
                        .init(name: "/pubsub/pubsub/orders", httpVerbs: ["publish"], action: .allow),
                        .init(name: "/secrets/vault/db-*", httpVerbs: ["get"], action: .allow),
                    ])
            ])
        #expect(access.isActive)
        #expect(access.denial(.state, component: "statestore", resource: "orders-1", verb: "get") == nil)
        #expect(access.denial(.state, component: "statestore", resource: "orders-1", verb: "save") == nil)
        // Keys are case-sensitive; verbs must be listed.
        #expect(access.denial(.state, component: "statestore", resource: "ORDERS-1", verb: "get") != nil)
        #expect(access.denial(.state, component: "statestore", resource: "orders-1", verb: "delete") != nil)
        #expect(access.denial(.state, component: "statestore", resource: "public/a/b", verb: "delete") == nil)
        #expect(access.denial(.state, component: "other", resource: "orders-1", verb: "get") != nil)
        #expect(access.denial(.pubsub, component: "pubsub", resource: "orders", verb: "publish") == nil)
        #expect(access.denial(.pubsub, component: "pubsub", resource: "orders", verb: "subscribe") != nil)
        #expect(access.denial(.secrets, component: "vault", resource: "db-password", verb: "get") == nil)
        #expect(access.denial(.secrets, component: "vault", resource: "api-key", verb: "get") != nil)
        let reason = access.denial(.state, component: "statestore", resource: "x", verb: "get")
        #expect(reason == "access policy data denies spiffe://public/ns/default/orders to get /state/statestore/x")
        let error = access.stateError(component: "statestore", keys: ["orders-1", "x"], verb: "get")
        #expect(error?.errorCode == "ERR_PERMISSION_DENIED" && error?.httpStatus == 403 && error?.grpcStatus == .permissionDenied)
    }

    @Test func anotherAppGetsTheGlobalDefaultAndEveryPolicyMustAllow() {
        let billing = BlockAccess(
            caller: CallerIdentity(trustDomain: "public", namespace: "default", appID: "billing"),
            policies: [Self.policy("open", global: .allow, [])])
        #expect(billing.denial(.state, component: "s", resource: "k", verb: "get") == nil)
        let both = BlockAccess(
            caller: Self.orders,
            policies: [
                Self.policy("first", appDefault: .allow, []),
                Self.policy("second", [.init(name: "/state/s/a", httpVerbs: ["*"], action: .allow)]),
            ])
        #expect(both.denial(.state, component: "s", resource: "a", verb: "get") == nil)
        #expect(both.denial(.state, component: "s", resource: "b", verb: "get")?.hasPrefix("access policy second") == true)
        // Replaced as a whole (hot reload).
        both.replace([])
        #expect(!both.isActive && both.denial(.state, component: "s", resource: "b", verb: "get") == nil)
    }
}

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

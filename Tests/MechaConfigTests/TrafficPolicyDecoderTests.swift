import MechaCore
import Testing

@testable import MechaConfig

/// Mecha's `TrafficPolicy` resource: every field, defaults, and the strict validation.
@Suite("TrafficPolicy decoding")
struct TrafficPolicyDecoderTests {
    static let file = "/resources/traffic.yaml"

    static let full = """
        apiVersion: mecha.dev/v1alpha1
        kind: TrafficPolicy
        metadata: {name: orders-traffic}
        scopes: [frontend]
        spec:
          target: orders
          loadBalancer: {policy: ringHash, hashOn: {header: X-User}}
          locality: {preferSameHost: true}
          outlierDetection: {consecutiveFailures: 5, baseEjectionTime: 10s, maxEjectionTime: 300s, maxEjectionPercent: 50}
          routes:
            - match: {pathPrefix: /v2/, path: /exact, method: post, headers: {X-Canary: "true"}}
              split: [{appId: orders, weight: 90}, {appId: orders-v2, weight: 10}]
              mirror: {appId: orders-shadow, percent: 20}
              fault: {delay: {fixed: 100ms, percent: 10}, abort: {httpStatus: 503, percent: 5}}
              rateLimit: {requestsPerSecond: 100, burst: 20}
              globalRateLimit: {requestsPerSecond: 300, store: statestore}
            - {}
        """

    /// A policy named `p` with `spec` lines (indented by two spaces) under `spec:`.
    static func yaml(_ spec: String) -> String {
        """
        apiVersion: mecha.dev/v1alpha1
        kind: TrafficPolicy
        metadata:
          name: p
        spec:
        \(spec)
        """
    }

    static func load(_ yaml: String) throws -> TrafficPolicySpec {
        let loaded = try ResourceLoader.load(text: yaml, file: self.file)
        #expect(loaded.trafficPolicies.count == 1)
        return try #require(loaded.trafficPolicies.first)
    }

    /// The single error loading `yaml` reports; it must name the file and the resource.
    static func error(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> ResourceError {
        let failure = try #require(throws: ResourceLoadError.self, sourceLocation: sourceLocation) {
            try ResourceLoader.load(text: yaml, file: self.file)
        }
        #expect(failure.errors.count == 1, "\(failure.errors)", sourceLocation: sourceLocation)
        let error = try #require(failure.errors.first, sourceLocation: sourceLocation)
        #expect(error.description.contains(self.file), sourceLocation: sourceLocation)
        #expect(error.description.contains("TrafficPolicy/p") || error.description.contains("TrafficPolicy/orders-traffic"), sourceLocation: sourceLocation)
        return error
    }

    // MARK: Decoding

    @Test func fullExampleDecodesToExactValues() throws {
        let policy = try Self.load(Self.full)
        let expected = TrafficPolicySpec(
            name: "orders-traffic",
            scopes: ["frontend"],
            target: .app("orders"),
            loadBalancer: LoadBalancerSpec(policy: .ringHash, hashOnHeader: "x-user"),
            locality: LocalitySpec(preferSameHost: true),
            outlierDetection: OutlierDetectionSpec(consecutiveFailures: 5, baseEjectionTime: .seconds(10), maxEjectionTime: .seconds(300), maxEjectionPercent: 50),
            routes: [
                TrafficRoute(
                    match: RouteMatch(pathPrefix: "/v2/", path: "/exact", method: "POST", headers: ["x-canary": "true"]),
                    split: [WeightedTarget(appID: "orders", weight: 90), WeightedTarget(appID: "orders-v2", weight: 10)],
                    mirror: MirrorSpec(appID: "orders-shadow", percent: 20),
                    fault: FaultSpec(delay: .init(fixed: .milliseconds(100), percent: 10), abort: .init(httpStatus: 503, percent: 5)),
                    rateLimit: RateLimitSpec(requestsPerSecond: 100, burst: 20),
                    globalRateLimit: GlobalRateLimitSpec(requestsPerSecond: 300, store: "statestore")
                ),
                TrafficRoute(),
            ],
            source: policy.source
        )
        #expect(policy == expected)
        #expect(policy.source.file == Self.file)
        #expect(policy.source.resource == "TrafficPolicy/orders-traffic")
    }

    @Test func defaults() throws {
        let policy = try Self.load(
            Self.yaml(
                """
                  target: orders
                  outlierDetection: {}
                  routes:
                    - mirror: {appId: shadow}
                      fault: {abort: {httpStatus: 500}}
                      rateLimit: {requestsPerSecond: 2.5}
                """))
        #expect(policy.target == .app("orders"))
        #expect(policy.scopes.isEmpty)
        #expect(policy.loadBalancer == LoadBalancerSpec(policy: .peakEWMA))
        #expect(policy.locality.preferSameHost == false)
        #expect(policy.outlierDetection == OutlierDetectionSpec(consecutiveFailures: 5, baseEjectionTime: .seconds(10), maxEjectionTime: .seconds(300), maxEjectionPercent: 50))
        let route = try #require(policy.routes.first)
        #expect(route.match == RouteMatch())
        #expect(route.split.isEmpty)
        #expect(route.mirror == MirrorSpec(appID: "shadow", percent: 100))
        #expect(route.fault == FaultSpec(abort: .init(httpStatus: 500, percent: 100)))
        #expect(route.rateLimit?.burst == 3)
    }

    @Test func componentTargetWithOperation() throws {
        let policy = try Self.load(
            Self.yaml(
                """
                  component: statestore
                  loadBalancer: {policy: leastRequest}
                  routes:
                    - match: {operation: get}
                      fault: {delay: {fixed: 1s}}
                """))
        #expect(policy.target == .component("statestore"))
        #expect(policy.loadBalancer.policy == .leastRequest)
        #expect(policy.routes.first?.match.operation == "get")
        #expect(policy.routes.first?.fault?.delay == FaultSpec.Delay(fixed: .seconds(1), percent: 100))
    }

    @Test func everyLoadBalancerPolicyNameParses() throws {
        for policy in LoadBalancerSpec.Policy.allCases where policy != .ringHash {
            let spec = try Self.load(Self.yaml("  target: a\n  loadBalancer: {policy: \(policy.rawValue)}"))
            #expect(spec.loadBalancer.policy == policy)
        }
    }

    // MARK: Errors

    @Test func weightsNotSummingTo100() throws {
        let error = try Self.error(Self.yaml("  target: a\n  routes:\n    - split: [{appId: a, weight: 90}, {appId: b, weight: 20}]"))
        #expect(error.field == "spec.routes[0].split")
        #expect(error.reason.contains("sum to 100"))
        #expect(error.reason.contains("110"))
    }

    @Test func ringHashWithoutHashOn() throws {
        let error = try Self.error(Self.yaml("  target: a\n  loadBalancer: {policy: ringHash}"))
        #expect(error.field == "spec.loadBalancer.hashOn")
        #expect(error.reason.contains("ringHash"))
    }

    @Test func bothTargetAndComponent() throws {
        let error = try Self.error(Self.yaml("  target: a\n  component: statestore"))
        #expect(error.field == "spec.component")
        #expect(error.reason.contains("not both"))
    }

    @Test func neitherTargetNorComponent() throws {
        let error = try Self.error(Self.yaml("  locality: {preferSameHost: true}"))
        #expect(error.field == "spec.target")
    }

    @Test(arguments: [
        ("  target: a\n  routing: []", "spec.routing"),
        ("  target: a\n  loadBalancer: {polcy: random}", "spec.loadBalancer.polcy"),
        ("  target: a\n  loadBalancer: {policy: ringHash, hashOn: {cookie: x}}", "spec.loadBalancer.hashOn.cookie"),
        ("  target: a\n  locality: {sameHost: true}", "spec.locality.sameHost"),
        ("  target: a\n  outlierDetection: {consecutiveErrors: 3}", "spec.outlierDetection.consecutiveErrors"),
        ("  target: a\n  routes:\n    - matches: {}", "spec.routes[0].matches"),
        ("  target: a\n  routes:\n    - match: {prefix: /}", "spec.routes[0].match.prefix"),
        ("  target: a\n  routes:\n    - split: [{app: a, weight: 100}]", "spec.routes[0].split[0].app"),
        ("  target: a\n  routes:\n    - mirror: {appId: a, ratio: 1}", "spec.routes[0].mirror.ratio"),
        ("  target: a\n  routes:\n    - fault: {delay: {fixed: 1s, jitter: 1s}}", "spec.routes[0].fault.delay.jitter"),
        ("  target: a\n  routes:\n    - fault: {abort: {status: 500}}", "spec.routes[0].fault.abort.status"),
        ("  target: a\n  routes:\n    - fault: {crash: {}}", "spec.routes[0].fault.crash"),
        ("  target: a\n  routes:\n    - rateLimit: {rps: 1}", "spec.routes[0].rateLimit.rps"),
        ("  target: a\n  routes:\n    - globalRateLimit: {requestsPerSecond: 1, store: s, window: 1s}", "spec.routes[0].globalRateLimit.window"),
    ])
    func unknownField(spec: String, field: String) throws {
        let error = try Self.error(Self.yaml(spec))
        #expect(error.field == field)
        #expect(error.reason.contains("unknown field"))
    }

    @Test func unknownTopLevelField() throws {
        let error = try Self.error("apiVersion: mecha.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: p}\nspecs: {}\nspec: {target: a}\n")
        #expect(error.field == "specs")
    }

    @Test(arguments: [
        ("  target: a\n  routes:\n    - split: [{appId: a, weight: 101}, {appId: b, weight: -1}]", "spec.routes[0].split[0].weight", "0 to 100"),
        ("  target: a\n  routes:\n    - split: [{appId: a, weight: 50.5}, {appId: b, weight: 49.5}]", "spec.routes[0].split[0].weight", "integer"),
        ("  target: a\n  routes:\n    - split: [{appId: \"\", weight: 100}]", "spec.routes[0].split[0].appId", "must not be empty"),
        ("  target: a\n  routes:\n    - split: [{appId: a, weight: 50}, {appId: a, weight: 50}]", "spec.routes[0].split[1]", "twice"),
        ("  target: a\n  routes:\n    - mirror: {appId: s, percent: 120}", "spec.routes[0].mirror.percent", "0 to 100"),
        ("  target: a\n  routes:\n    - fault: {delay: {fixed: 1s, percent: -1}}", "spec.routes[0].fault.delay.percent", "0 to 100"),
        ("  target: a\n  routes:\n    - fault: {delay: {fixed: 0s}}", "spec.routes[0].fault.delay.fixed", "greater than zero"),
        ("  target: a\n  routes:\n    - fault: {delay: {fixed: -10ms}}", "spec.routes[0].fault.delay.fixed", "greater than zero"),
        ("  target: a\n  routes:\n    - fault: {delay: {fixed: later}}", "spec.routes[0].fault.delay.fixed", "expected a duration"),
        ("  target: a\n  routes:\n    - fault: {abort: {httpStatus: 199}}", "spec.routes[0].fault.abort.httpStatus", "200 to 599"),
        ("  target: a\n  routes:\n    - fault: {}", "spec.routes[0].fault", "delay or abort"),
        ("  target: a\n  routes:\n    - rateLimit: {requestsPerSecond: 0}", "spec.routes[0].rateLimit.requestsPerSecond", "greater than zero"),
        ("  target: a\n  routes:\n    - rateLimit: {requestsPerSecond: 5, burst: 0}", "spec.routes[0].rateLimit.burst", "1 or more"),
        ("  target: a\n  routes:\n    - globalRateLimit: {requestsPerSecond: 0, store: s}", "spec.routes[0].globalRateLimit.requestsPerSecond", "1 or more"),
        ("  target: a\n  routes:\n    - globalRateLimit: {requestsPerSecond: 5}", "spec.routes[0].globalRateLimit.store", "required"),
        ("  target: a\n  outlierDetection: {consecutiveFailures: 0}", "spec.outlierDetection.consecutiveFailures", "1 or more"),
        ("  target: a\n  outlierDetection: {maxEjectionPercent: 101}", "spec.outlierDetection.maxEjectionPercent", "0 to 100"),
        ("  target: a\n  outlierDetection: {baseEjectionTime: -1s}", "spec.outlierDetection.baseEjectionTime", "greater than zero"),
        ("  target: a\n  outlierDetection: {baseEjectionTime: 1m, maxEjectionTime: 30s}", "spec.outlierDetection.maxEjectionTime", "shorter"),
        ("  target: a\n  loadBalancer: {policy: fastest}", "spec.loadBalancer.policy", "peakEWMA"),
        ("  target: a\n  loadBalancer: {policy: random, hashOn: {header: x}}", "spec.loadBalancer.hashOn", "ringHash"),
        ("  target: a\n  routes:\n    - match: {pathPrefix: v2/}", "spec.routes[0].match.pathPrefix", "start with '/'"),
        ("  target: a\n  routes:\n    - match: {path: exact}", "spec.routes[0].match.path", "start with '/'"),
        ("  target: a\n  routes:\n    - match: {operation: get}", "spec.routes[0].match.operation", "component target"),
        ("  target: a\n  routes:\n    - match: {headers: {X-A: \"1\", x-a: \"2\"}}", "spec.routes[0].match.headers.x-a", "twice"),
        ("  component: s\n  routes:\n    - match: {method: GET}", "spec.routes[0].match.method", "app target"),
        ("  component: s\n  routes:\n    - match: {headers: {a: b}}", "spec.routes[0].match.headers", "app target"),
        ("  component: s\n  routes:\n    - split: [{appId: a, weight: 100}]", "spec.routes[0].split", "app target"),
        ("  component: s\n  routes:\n    - mirror: {appId: a}", "spec.routes[0].mirror", "app target"),
        ("  target: \"\"", "spec.target", "must not be empty"),
    ])
    func badValue(spec: String, field: String, reason: String) throws {
        let error = try Self.error(Self.yaml(spec))
        #expect(error.field == field)
        #expect(error.reason.contains(reason), "\(error.reason)")
    }

    @Test func wrongAPIVersion() throws {
        let error = try Self.error("apiVersion: dapr.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: p}\nspec: {target: a}\n")
        #expect(error.field == "apiVersion")
        #expect(error.reason.contains("mecha.dev/v1alpha1"))
    }
}

import MechaCore
import MechaResiliency
import Testing

/// Building target policies from Resiliency resources: Dapr's default policy names and lookup
/// order, explicit targets, scopes, app breakers per endpoint, and runs with virtual sleeps.
@Suite("ResiliencyPolicies")
struct ResiliencyPoliciesTests {
    static func trip(_ text: String = "consecutiveFailures > 5") -> CELExpression {
        try! CELExpression(parsing: text)
    }

    static func spec(
        scopes: [String] = [],
        timeouts: [String: Duration] = [:],
        retries: [String: RetrySpec] = [:],
        breakers: [String: CircuitBreakerSpec] = [:],
        apps: [String: TargetPolicyNames] = [:],
        components: [String: ComponentPolicyNames] = [:]
    ) -> ResiliencySpec {
        ResiliencySpec(name: "r", scopes: scopes, timeouts: timeouts, retries: retries, circuitBreakers: breakers, apps: apps, components: components)
    }

    @Test func noResourcesMeansNoPolicies() {
        let policies = ResiliencyPolicies(specs: [], appID: "a")
        #expect(policies.isEmpty)
        #expect(policies.app("b") === TargetPolicy.none)
        #expect(policies.component("s", .state, .outbound).isEmpty)
    }

    @Test func scopesLimitTheResource() {
        let scoped = Self.spec(scopes: ["other"], timeouts: ["DefaultTimeoutPolicy": .seconds(1)])
        #expect(ResiliencyPolicies(specs: [scoped], appID: "mine").isEmpty)
        #expect(!ResiliencyPolicies(specs: [scoped], appID: "other").isEmpty)
    }

    @Test func componentDefaultsAreLookedUpMostSpecificFirst() {
        let policies = ResiliencyPolicies(
            specs: [
                Self.spec(
                    timeouts: [
                        "DefaultTimeoutPolicy": .seconds(9),
                        "DefaultComponentTimeoutPolicy": .seconds(8),
                        "DefaultComponentOutboundTimeoutPolicy": .seconds(7),
                        "DefaultStatestoreComponentOutboundTimeoutPolicy": .seconds(6),
                    ]
                )
            ],
            appID: "a"
        )
        #expect(policies.component("s", .state, .outbound).timeout == .seconds(6))
        #expect(policies.component("p", .pubsub, .outbound).timeout == .seconds(7))
        #expect(policies.component("p", .pubsub, .inbound).timeout == .seconds(8))
        #expect(policies.app("b").timeout == .seconds(9))
        #expect(policies.actor("t").timeout == .seconds(9))
    }

    @Test func aNamedTargetUsesOnlyWhatItNames() {
        let policies = ResiliencyPolicies(
            specs: [
                Self.spec(
                    timeouts: ["general": .seconds(2), "DefaultTimeoutPolicy": .seconds(9)],
                    retries: ["DefaultRetryPolicy": RetrySpec(maxRetries: 3)],
                    apps: ["named": TargetPolicyNames(timeout: "general")]
                )
            ],
            appID: "a"
        )
        let named = policies.app("named")
        #expect(named.timeout == .seconds(2))
        #expect(named.backoff == nil)  // daprd: a named target gets no default retry
        #expect(policies.namesApp("named"))
        let other = policies.app("other")
        #expect(other.timeout == .seconds(9))
        #expect(other.backoff?.maxRetries == 3)
        #expect(!policies.namesApp("other"))
    }

    @Test func policiesAreBuiltOncePerTarget() {
        let policies = ResiliencyPolicies(specs: [Self.spec(timeouts: ["DefaultTimeoutPolicy": .seconds(1)])], appID: "a")
        #expect(policies.app("b") === policies.app("b"))
        #expect(policies.app("b") !== policies.app("c"))
    }

    @Test func appBreakersArePerEndpointWithALimitedCache() {
        let policies = ResiliencyPolicies(
            specs: [
                Self.spec(
                    breakers: ["cb": CircuitBreakerSpec(trip: Self.trip("consecutiveFailures >= 1"))],
                    apps: ["b": TargetPolicyNames(circuitBreaker: "cb", circuitBreakerCacheSize: 2)]
                )
            ],
            appID: "a"
        )
        let policy = policies.app("b")
        let first = policy.breaker(for: "b:one")
        #expect(first === policy.breaker(for: "b:one"))
        #expect(first !== policy.breaker(for: "b:two"))
        _ = policy.breaker(for: "b:three")  // evicts b:one, the least recently used
        #expect(first !== policy.breaker(for: "b:one"))
        let component = ResiliencyPolicies(
            specs: [Self.spec(breakers: ["cb": CircuitBreakerSpec(trip: Self.trip())], components: ["s": ComponentPolicyNames(outbound: TargetPolicyNames(circuitBreaker: "cb"))])],
            appID: "a"
        ).component("s", .state, .outbound)
        #expect(component.breaker(for: "x") === component.breaker(for: "y"))
    }

    struct Failure: Error {}

    @Test func retriesThenTripsTheBreakerAndFailsFast() async throws {
        let sleeps = Recorder<Duration>()
        let policies = ResiliencyPolicies(
            specs: [
                Self.spec(
                    retries: ["twice": RetrySpec(policy: .constant, duration: .milliseconds(5), maxRetries: 2)],
                    breakers: ["cb": CircuitBreakerSpec(maxRequests: 1, timeout: .seconds(60), trip: Self.trip("consecutiveFailures >= 3"))],
                    components: ["s": ComponentPolicyNames(outbound: TargetPolicyNames(retry: "twice", circuitBreaker: "cb"))]
                )
            ],
            appID: "a",
            sleep: { sleeps.append($0) }
        )
        let policy = policies.component("s", .state, .outbound)
        let calls = Recorder<Int>()
        await #expect(throws: Failure.self) {
            try await policy.execute { attempt in
                calls.append(attempt)
                throw Failure()
            }
        }
        #expect(calls.values == [0, 1, 2])
        #expect(sleeps.values == [.milliseconds(5), .milliseconds(5)])
        // Three failures tripped the breaker: the next call is refused without running.
        do {
            _ = try await policy.execute { _ in calls.append(99) }
            Issue.record("expected the breaker to be open")
        } catch let error as ResiliencyError {
            #expect(error.code == .circuitOpen)
            #expect(error.description == "circuit breaker is open")
        }
        #expect(!calls.values.contains(99))
    }

    struct Coded: StatusCodedFailure {
        var httpStatusCode: Int?
        var grpcStatusCode: Int?
    }

    @Test func matchingDecidesWhichStatusesAreRetried() async {
        let policies = ResiliencyPolicies(
            specs: [
                Self.spec(
                    retries: ["m": RetrySpec(duration: .zero, maxRetries: 3, matching: StatusCodeMatching(httpStatusCodes: [500...599], grpcStatusCodes: [14...14]))],
                    apps: ["b": TargetPolicyNames(retry: "m")]
                )
            ],
            appID: "a",
            sleep: { _ in }
        )
        let policy = policies.app("b")
        for (failure, attempts) in [(Coded(httpStatusCode: 503), 4), (Coded(httpStatusCode: 404), 1), (Coded(grpcStatusCode: 14), 4), (Coded(grpcStatusCode: 5), 1)] {
            let calls = Recorder<Int>()
            await #expect(throws: Coded.self) {
                try await policy.execute { attempt in
                    calls.append(attempt)
                    throw failure
                }
            }
            #expect(calls.count == attempts, "\(failure)")
        }
    }

    @Test func tripExpressionsSeeAllCounts() {
        let machine = ResiliencyPolicies.machineForTests(CircuitBreakerSpec(trip: Self.trip("requests >= 4 && totalFailures * 2 >= requests")))
        var breaker = machine
        let now = ContinuousClock.now
        for success in [true, false, true] {
            _ = breaker.requestStarting(at: now)
            breaker.requestFinished(success: success, at: now)
        }
        guard case .closed = breaker.state else { Issue.record("tripped too early"); return }
        _ = breaker.requestStarting(at: now)
        breaker.requestFinished(success: false, at: now)
        guard case .open = breaker.state else { Issue.record("expected open after 2 of 4 failed"); return }
    }
}

import MechaCore
import MechaResiliency
import Testing

/// What policies tell their observer (daprd's `dapr_resiliency_count`, `_activations_total`,
/// `_cb_state`): each call counts its policies once, retries and a timeout are activations, a
/// breaker's state changes are activations with the new state; labels name the resource, target
/// and direction.
@Suite("Resiliency monitoring")
struct ResiliencyMonitorTests {
    struct Event: Sendable, Hashable, CustomStringConvertible {
        var activated: Bool
        var kind: ResiliencyPolicyKind
        var scope: ResiliencyScope
        var status: String
        var description: String { "\(self.activated ? "activated" : "applied") \(self.kind.rawValue) \(self.scope.resource) \(self.scope.target) \(self.scope.direction) '\(self.status)'" }
    }

    final class Observer: ResiliencyObserver {
        let events = Recorder<Event>()
        func policyApplied(_ kind: ResiliencyPolicyKind, _ scope: ResiliencyScope, status: String) {
            self.events.append(Event(activated: false, kind: kind, scope: scope, status: status))
        }
        func policyActivated(_ kind: ResiliencyPolicyKind, _ scope: ResiliencyScope, status: String) {
            self.events.append(Event(activated: true, kind: kind, scope: scope, status: status))
        }
        func count(activated: Bool, _ kind: ResiliencyPolicyKind, status: String? = nil) -> Int {
            self.events.values.filter { $0.activated == activated && $0.kind == kind && (status == nil || $0.status == status) }.count
        }
    }

    static let trip = try! CELExpression(parsing: "consecutiveFailures >= 2")

    static func policies(_ observer: Observer) -> ResiliencyPolicies {
        let apps = ResiliencySpec(
            name: "apps-policy",
            retries: ["twice": RetrySpec(policy: .constant, duration: .zero, maxRetries: 2)],
            circuitBreakers: ["cb": CircuitBreakerSpec(maxRequests: 1, timeout: .seconds(3600), trip: Self.trip)],
            apps: ["orders": TargetPolicyNames(retry: "twice", circuitBreaker: "cb")]
        )
        let defaults = ResiliencySpec(
            name: "defaults",
            timeouts: ["DefaultComponentInboundTimeoutPolicy": .milliseconds(20)],
            retries: ["DefaultStatestoreComponentOutboundRetryPolicy": RetrySpec(policy: .constant, duration: .zero, maxRetries: 1)]
        )
        return ResiliencyPolicies(specs: [apps, defaults], appID: "me", sleep: { _ in }, observer: observer)
    }

    @Test func aCallCountsEachOfItsPoliciesOnceWithTheBreakerState() async throws {
        let observer = Observer()
        let policy = Self.policies(observer).app("orders")
        _ = try await policy.execute(breakerKey: "orders:get") { _ in 1 }
        let scope = ResiliencyScope(resource: "apps-policy", target: "app_orders", direction: "outbound")
        #expect(
            observer.events.values == [
                Event(activated: false, kind: .retry, scope: scope, status: ""),
                Event(activated: false, kind: .circuitBreaker, scope: scope, status: "closed"),
            ])
    }

    @Test func retriesAndBreakerTripsAreActivations() async throws {
        let observer = Observer()
        let policy = Self.policies(observer).app("orders")
        // Three failing attempts: two retries; the second failure trips the breaker, so the third
        // attempt is refused by it (an open breaker is a failure too).
        await #expect(throws: (any Error).self) {
            try await policy.execute(breakerKey: "orders:get") { attempt -> Int in throw TestError(attempt: attempt) }
        }
        #expect(observer.count(activated: true, .retry) == 2)
        #expect(observer.count(activated: true, .circuitBreaker, status: "open") == 1)
        // The next call counts the breaker with its state.
        await #expect(throws: (any Error).self) { try await policy.execute(breakerKey: "orders:get") { _ in 1 } }
        #expect(observer.count(activated: false, .circuitBreaker, status: "open") == 1)
        #expect(observer.events.values.allSatisfy { $0.scope.target == "app_orders" && $0.scope.resource == "apps-policy" })
    }

    @Test func defaultPoliciesAreLabelledWithTheirResourceAndComponentTarget() async throws {
        let observer = Observer()
        let policies = Self.policies(observer)
        await #expect(throws: (any Error).self) {
            try await policies.component("orders-store", .state, .outbound).execute { attempt -> Int in throw TestError(attempt: attempt) }
        }
        let scope = ResiliencyScope(resource: "defaults", target: "Statestore_orders-store", direction: "outbound")
        #expect(
            observer.events.values == [
                Event(activated: false, kind: .retry, scope: scope, status: ""),
                Event(activated: true, kind: .retry, scope: scope, status: ""),
            ])
    }

    @Test func aTimeoutIsActivatedOncePerCall() async throws {
        let observer = Observer()
        let policy = Self.policies(observer).component("events", .pubsub, .inbound)
        await #expect(throws: ResiliencyError.self) {
            try await policy.execute { _ -> Int in
                try await Task.sleep(for: .seconds(5))
                return 1
            }
        }
        let scope = ResiliencyScope(resource: "defaults", target: "Pubsub_events", direction: "inbound")
        #expect(
            observer.events.values == [
                Event(activated: false, kind: .timeout, scope: scope, status: ""),
                Event(activated: true, kind: .timeout, scope: scope, status: ""),
            ])
    }

    @Test func withoutAnObserverNothingIsBuilt() {
        let policies = ResiliencyPolicies(specs: [ResiliencySpec(name: "r", timeouts: ["DefaultTimeoutPolicy": .seconds(1)])], appID: "me")
        #expect(policies.app("x").monitor == nil)
    }
}

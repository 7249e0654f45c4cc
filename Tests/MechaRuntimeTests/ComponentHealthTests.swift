import MechaCore
import MechaResiliency
import Testing

@testable import MechaRuntime

@Suite struct ComponentHealthTests {
    struct Broken: Error {}

    @Test func consecutiveBackendFailuresMakeAComponentUnhealthyUntilItsNextSuccess() {
        let clock = TestClock()
        let health = ComponentHealth(threshold: 3, now: { clock.now })
        let target = PolicyTarget.component("cache", .state, .outbound)
        health.completed(target, "get", elapsed: .zero, error: Broken())
        health.completed(target, "get", elapsed: .zero, error: Broken())
        #expect(health.record(of: "cache").unhealthySince == nil)
        clock.advance()
        health.completed(target, "get", elapsed: .zero, error: Broken())
        let since = health.record(of: "cache").unhealthySince
        #expect(since == clock.now)
        clock.advance()
        health.completed(target, "set", elapsed: .zero, error: StateStoreError(.backend))
        #expect(health.record(of: "cache").unhealthySince == since)
        #expect(health.record(of: "cache").consecutiveFailures == 4)
        health.completed(target, "get", elapsed: .zero, error: nil)
        #expect(health.record(of: "cache").unhealthySince == nil)
        #expect(health.record(of: "cache").consecutiveFailures == 0)
    }

    @Test func answersAboutTheRequestAreNotFailures() {
        let health = ComponentHealth(threshold: 1)
        let target = PolicyTarget.component("store", .state, .outbound)
        health.completed(target, "set", elapsed: .zero, error: StateStoreError(.etagMismatch))
        health.completed(.component("vault", .secretstores, .outbound), "get", elapsed: .zero, error: SecretStoreError(.notFound, "no such secret"))
        health.completed(.component("store", .state, .inbound), "deliver", elapsed: .zero, error: Broken())
        #expect(health.record(of: "store").unhealthySince == nil)
        #expect(health.record(of: "vault").unhealthySince == nil)
    }
}

final class TestClock: @unchecked Sendable {
    private(set) var now = Timestamp(seconds: 1_000)
    func advance() { self.now = Timestamp(seconds: self.now.seconds + 1) }
}

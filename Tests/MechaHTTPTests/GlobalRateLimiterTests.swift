import MechaAPI
import MechaCore
import MechaEmbedded
import MechaRuntime
import Synchronization
import Testing

/// `globalRateLimit`: two sidecars (two limiters, each with its own component store) share one
/// state store; per window they admit no more than the limit together, and nearly all of it.
@Suite("GlobalRateLimiter")
struct GlobalRateLimiterTests {
    /// A wall clock the test moves.
    final class Clock: Sendable {
        let second = Atomic<Int64>(1_700_000_000)
        func now() -> Timestamp { Timestamp(seconds: self.second.load(ordering: .relaxed)) }
        func tick() { self.second.add(1, ordering: .relaxed) }
    }

    static func limiter(sharing store: InMemoryStateStore, clock: Clock) -> GlobalRateLimiter {
        let components = ComponentStore()
        components.add(store, spec: ComponentSpec(name: "statestore", type: ComponentType(.state, "in-memory")))
        return GlobalRateLimiter(components: components, now: { clock.now() })
    }

    @Test func twoSidecarsShareOneBudgetPerWindow() async throws {
        let store = InMemoryStateStore()
        let clock = Clock()
        let a = Self.limiter(sharing: store, clock: clock)
        let b = Self.limiter(sharing: store, clock: clock)
        for _ in 0..<3 {
            // 250 calls on each sidecar, interleaved and concurrent, against a limit of 100.
            let total = try await withThrowingTaskGroup(of: Int.self) { group in
                for limiter in [a, b] {
                    group.addTask {
                        var admitted = 0
                        for _ in 0..<250 where try await limiter.admit(key: "orders/0", limit: 100, store: "statestore") {
                            admitted += 1
                        }
                        return admitted
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(total <= 100)
            #expect(total >= 90, "admitted \(total) of a limit of 100")
            clock.tick()  // a new window: a new budget
        }
    }

    @Test func aMissingStoreFailsTheCall() async {
        let limiter = GlobalRateLimiter(components: ComponentStore())
        await #expect(throws: GlobalRateLimiter.Failure.self) {
            _ = try await limiter.admit(key: "k", limit: 10, store: "nowhere")
        }
    }
}

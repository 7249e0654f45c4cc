import MechaCore
import MechaResiliency
import Synchronization
import Testing

/// A clock the test moves by hand.
final class ManualClock: Sendable {
    private let current = Mutex(ContinuousClock.now)
    var now: ContinuousClock.Instant { self.current.withLock { $0 } }
    func advance(by duration: Duration) { self.current.withLock { $0 += duration } }
}

@Suite("CircuitBreaker")
struct CircuitBreakerTests {
    static func breaker(clock: ManualClock, maxRequests: Int = 1, timeout: Duration = .seconds(30), failures: Int = 2) -> CircuitBreaker {
        CircuitBreaker(
            name: "cb",
            machine: CircuitBreakerStateMachine(maxRequests: maxRequests, timeout: timeout) { $0.consecutiveFailures >= failures },
            now: { clock.now }
        )
    }

    static func isOpen(_ breaker: CircuitBreaker) -> Bool {
        if case .open = breaker.state { return true }
        return false
    }

    @Test func passesResultsAndErrorsThroughWhileClosed() async throws {
        let breaker = Self.breaker(clock: ManualClock())
        #expect(try await breaker.execute { "ok" } == "ok")
        await #expect(throws: TestError(attempt: 1)) {
            try await breaker.execute { () async throws -> Int in throw TestError(attempt: 1) }
        }
        #expect(!Self.isOpen(breaker))
    }

    @Test func opensAndRejectsWithoutCallingTheOperation() async throws {
        let clock = ManualClock()
        let breaker = Self.breaker(clock: clock, failures: 2)
        for attempt in 1...2 {
            await #expect(throws: TestError(attempt: attempt)) {
                try await breaker.execute { () async throws -> Int in throw TestError(attempt: attempt) }
            }
        }
        #expect(Self.isOpen(breaker))
        let calls = Recorder<Int>()
        do {
            _ = try await breaker.execute { () async throws -> Int in
                calls.append(1)
                return 1
            }
            Issue.record("expected circuitOpen")
        } catch let error as ResiliencyError {
            #expect(error.code == .circuitOpen)
            #expect(error.policyName == "cb")
            #expect(error.description.contains("circuit breaker is open"))
        }
        #expect(calls.count == 0)
    }

    @Test func recoversThroughHalfOpen() async throws {
        let clock = ManualClock()
        let breaker = Self.breaker(clock: clock, timeout: .seconds(30), failures: 1)
        _ = try? await breaker.execute { () async throws -> Int in throw TestError(attempt: 1) }
        #expect(Self.isOpen(breaker))
        clock.advance(by: .seconds(29))
        await #expect(throws: ResiliencyError.self) { try await breaker.execute { 1 } }
        clock.advance(by: .seconds(1))
        #expect(try await breaker.execute { 2 } == 2)
        guard case .closed = breaker.state else {
            Issue.record("expected closed, got \(breaker.state)")
            return
        }
    }

    @Test func failedProbeReopens() async throws {
        let clock = ManualClock()
        let breaker = Self.breaker(clock: clock, timeout: .seconds(5), failures: 1)
        _ = try? await breaker.execute { () async throws -> Int in throw TestError(attempt: 1) }
        clock.advance(by: .seconds(5))
        await #expect(throws: TestError(attempt: 2)) {
            try await breaker.execute { () async throws -> Int in throw TestError(attempt: 2) }
        }
        #expect(breaker.state == .open(since: clock.now))
    }

    @Test func concurrentProbesAreLimitedToMaxRequests() async throws {
        let clock = ManualClock()
        let breaker = Self.breaker(clock: clock, maxRequests: 2, timeout: .seconds(1), failures: 1)
        _ = try? await breaker.execute { () async throws -> Int in throw TestError(attempt: 1) }
        clock.advance(by: .seconds(1))
        let gate1 = AsyncStream<Void>.makeStream()
        let gate2 = AsyncStream<Void>.makeStream()
        let started = Recorder<Int>()
        async let first: Int = breaker.execute {
            started.append(1)
            for await _ in gate1.stream {}
            return 1
        }
        async let second: Int = breaker.execute {
            started.append(2)
            for await _ in gate2.stream {}
            return 2
        }
        while started.count < 2 { try await Task.sleep(for: .milliseconds(1)) }
        await #expect(throws: ResiliencyError.self) { try await breaker.execute { 3 } }
        gate1.continuation.finish()
        gate2.continuation.finish()
        #expect(try await first + second == 3)
        guard case .closed = breaker.state else {
            Issue.record("expected closed, got \(breaker.state)")
            return
        }
    }

    @Test func slowRequestFromBeforeTheTripDoesNotCloseTheBreaker() async throws {
        let clock = ManualClock()
        let breaker = Self.breaker(clock: clock, timeout: .seconds(10), failures: 1)
        let gate = AsyncStream<Void>.makeStream()
        let started = Recorder<Int>()
        async let slow: Int = breaker.execute {
            started.append(1)
            for await _ in gate.stream {}
            return 1
        }
        while started.count < 1 { try await Task.sleep(for: .milliseconds(1)) }
        // Trip the breaker, then go half-open and start a probe that fails later.
        _ = try? await breaker.execute { () async throws -> Int in throw TestError(attempt: 1) }
        #expect(Self.isOpen(breaker))
        clock.advance(by: .seconds(10))
        let probeGate = AsyncStream<Void>.makeStream()
        let probeStarted = Recorder<Int>()
        async let probe: Int = breaker.execute { () async throws -> Int in
            probeStarted.append(1)
            for await _ in probeGate.stream {}
            throw TestError(attempt: 99)
        }
        while probeStarted.count < 1 { try await Task.sleep(for: .milliseconds(1)) }
        // The slow request from the closed period succeeds now: the breaker stays half-open.
        gate.continuation.finish()
        #expect(try await slow == 1)
        #expect(breaker.state == .halfOpen(inFlight: 1, successes: 0))
        probeGate.continuation.finish()
        let probeResult: Result<Int, any Error>
        do { probeResult = .success(try await probe) } catch { probeResult = .failure(error) }
        #expect(throws: TestError(attempt: 99)) { try probeResult.get() }
        #expect(Self.isOpen(breaker))
    }
}

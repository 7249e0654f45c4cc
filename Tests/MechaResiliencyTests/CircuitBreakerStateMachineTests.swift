import MechaResiliency
import Testing

@Suite("CircuitBreakerStateMachine")
struct CircuitBreakerStateMachineTests {
    /// A fixed origin; tests move time explicitly.
    static let t0 = ContinuousClock.now

    static func at(_ offset: Duration) -> ContinuousClock.Instant { self.t0 + offset }

    /// Dapr's default trip: more than `threshold` consecutive failures.
    static func machine(maxRequests: Int = 1, interval: Duration = .zero, timeout: Duration = .seconds(30), threshold: Int = 2) -> CircuitBreakerStateMachine {
        CircuitBreakerStateMachine(maxRequests: maxRequests, interval: interval, timeout: timeout) { $0.consecutiveFailures > threshold }
    }

    /// One allowed request that ends with `success`.
    static func run(_ machine: inout CircuitBreakerStateMachine, success: Bool, at now: ContinuousClock.Instant) {
        #expect(machine.requestStarting(at: now) == .allow)
        machine.requestFinished(success: success, at: now)
    }

    static func isClosed(_ state: CircuitBreakerStateMachine.State) -> Bool {
        if case .closed = state { return true }
        return false
    }

    @Test func startsClosedAndAllows() {
        var machine = Self.machine()
        #expect(Self.isClosed(machine.state))
        for i in 0..<10 { Self.run(&machine, success: true, at: Self.at(.seconds(i))) }
        guard case .closed(let counts) = machine.state else { Issue.record("closed"); return }
        #expect(counts.requests == 10)
        #expect(counts.totalSuccesses == 10)
        #expect(counts.consecutiveSuccesses == 10)
        #expect(counts.totalFailures == 0)
    }

    @Test func countsTrackConsecutiveRuns() {
        var machine = Self.machine(threshold: 100)
        for success in [true, false, false, true, false] { Self.run(&machine, success: success, at: Self.t0) }
        guard case .closed(let counts) = machine.state else { Issue.record("closed"); return }
        #expect(counts.requests == 5)
        #expect(counts.totalSuccesses == 2)
        #expect(counts.totalFailures == 3)
        #expect(counts.consecutiveFailures == 1)
        #expect(counts.consecutiveSuccesses == 0)
    }

    @Test func tripsOpenAfterThreshold() {
        var machine = Self.machine(threshold: 2)
        Self.run(&machine, success: false, at: Self.at(.seconds(1)))
        Self.run(&machine, success: false, at: Self.at(.seconds(2)))
        #expect(Self.isClosed(machine.state))
        Self.run(&machine, success: false, at: Self.at(.seconds(3)))
        #expect(machine.state == .open(since: Self.at(.seconds(3))))
    }

    @Test func successResetsTheConsecutiveRun() {
        var machine = Self.machine(threshold: 2)
        for success in [false, false, true, false, false] { Self.run(&machine, success: success, at: Self.t0) }
        #expect(Self.isClosed(machine.state))
    }

    @Test func successesNeverTrip() {
        // Even a trip function that is always true only trips on a failure.
        var machine = CircuitBreakerStateMachine(timeout: .seconds(1)) { _ in true }
        Self.run(&machine, success: true, at: Self.t0)
        #expect(Self.isClosed(machine.state))
        Self.run(&machine, success: false, at: Self.t0)
        #expect(machine.state == .open(since: Self.t0))
    }

    static func opened(maxRequests: Int = 1, timeout: Duration = .seconds(30)) -> CircuitBreakerStateMachine {
        var machine = CircuitBreakerStateMachine(maxRequests: maxRequests, timeout: timeout) { $0.consecutiveFailures >= 1 }
        Self.run(&machine, success: false, at: Self.t0)
        #expect(machine.state == .open(since: Self.t0))
        return machine
    }

    @Test func rejectsWhileOpen() {
        var machine = Self.opened(timeout: .seconds(30))
        for offset in [Duration.zero, .seconds(1), .seconds(29), .milliseconds(29_999)] {
            #expect(machine.requestStarting(at: Self.at(offset)) == .reject)
        }
        #expect(machine.state == .open(since: Self.t0))
    }

    @Test func halfOpenAfterTimeoutLetsOneProbeThrough() {
        var machine = Self.opened(timeout: .seconds(30))
        #expect(machine.requestStarting(at: Self.at(.seconds(30))) == .allow)
        #expect(machine.state == .halfOpen(inFlight: 1, successes: 0))
        // maxRequests = 1: a second concurrent probe is rejected.
        #expect(machine.requestStarting(at: Self.at(.seconds(31))) == .reject)
    }

    @Test func probeSuccessCloses() {
        var machine = Self.opened()
        Self.run(&machine, success: true, at: Self.at(.seconds(60)))
        #expect(machine.state == .closed(.init()))
    }

    @Test func probeFailureReopens() {
        var machine = Self.opened(timeout: .seconds(30))
        Self.run(&machine, success: false, at: Self.at(.seconds(40)))
        #expect(machine.state == .open(since: Self.at(.seconds(40))))
        // The new open period counts from the failed probe.
        #expect(machine.requestStarting(at: Self.at(.seconds(69))) == .reject)
        #expect(machine.requestStarting(at: Self.at(.seconds(70))) == .allow)
    }

    @Test func closesAfterMaxRequestsSuccesses() {
        var machine = Self.opened(maxRequests: 3, timeout: .seconds(10))
        let now = Self.at(.seconds(10))
        #expect(machine.requestStarting(at: now) == .allow)
        #expect(machine.requestStarting(at: now) == .allow)
        #expect(machine.requestStarting(at: now) == .allow)
        #expect(machine.requestStarting(at: now) == .reject)
        #expect(machine.state == .halfOpen(inFlight: 3, successes: 0))
        machine.requestFinished(success: true, at: now)
        #expect(machine.state == .halfOpen(inFlight: 2, successes: 1))
        #expect(machine.requestStarting(at: now) == .reject)
        machine.requestFinished(success: true, at: now)
        #expect(machine.state == .halfOpen(inFlight: 1, successes: 2))
        machine.requestFinished(success: true, at: now)
        #expect(machine.state == .closed(.init()))
        #expect(machine.requestStarting(at: now) == .allow)
    }

    @Test func halfOpenFailureAfterSomeSuccessesReopens() {
        var machine = Self.opened(maxRequests: 3, timeout: .seconds(10))
        let now = Self.at(.seconds(10))
        Self.run(&machine, success: true, at: now)
        Self.run(&machine, success: true, at: now)
        Self.run(&machine, success: false, at: now)
        #expect(machine.state == .open(since: now))
    }

    @Test func maxRequestsBelowOneMeansOne() {
        let machine = CircuitBreakerStateMachine(maxRequests: 0) { _ in false }
        #expect(machine.maxRequests == 1)
    }

    @Test func intervalResetsCounts() {
        var machine = Self.machine(interval: .seconds(10), threshold: 2)
        Self.run(&machine, success: false, at: Self.at(.seconds(0)))
        Self.run(&machine, success: false, at: Self.at(.seconds(5)))
        // A new window starts at 10 s: the earlier failures no longer count.
        Self.run(&machine, success: false, at: Self.at(.seconds(10)))
        guard case .closed(let counts) = machine.state else { Issue.record("closed"); return }
        #expect(counts.requests == 1)
        #expect(counts.consecutiveFailures == 1)
        #expect(counts.windowStart == Self.at(.seconds(10)))
        Self.run(&machine, success: false, at: Self.at(.seconds(11)))
        Self.run(&machine, success: false, at: Self.at(.seconds(12)))
        #expect(machine.state == .open(since: Self.at(.seconds(12))))
    }

    @Test func zeroIntervalNeverResets() {
        var machine = Self.machine(interval: .zero, threshold: 2)
        Self.run(&machine, success: false, at: Self.at(.seconds(0)))
        Self.run(&machine, success: false, at: Self.at(.seconds(1_000)))
        Self.run(&machine, success: false, at: Self.at(.seconds(100_000)))
        #expect(machine.state == .open(since: Self.at(.seconds(100_000))))
    }

    @Test func openFinishIsIgnored() {
        var machine = Self.opened()
        machine.requestFinished(success: true, at: Self.at(.seconds(1)))
        #expect(machine.state == .open(since: Self.t0))
    }

    @Test func outcomesFromAnEarlierGenerationAreIgnored() {
        var machine = CircuitBreakerStateMachine(maxRequests: 1, timeout: .seconds(10)) { $0.consecutiveFailures >= 1 }
        // A slow request starts while closed…
        #expect(machine.requestStarting(at: Self.t0) == .allow)
        let slow = machine.generation
        // …another fails and trips the breaker…
        #expect(machine.requestStarting(at: Self.t0) == .allow)
        machine.requestFinished(success: false, at: Self.t0, generation: machine.generation)
        #expect(machine.state == .open(since: Self.t0))
        // …the breaker goes half-open and a probe starts…
        #expect(machine.requestStarting(at: Self.at(.seconds(10))) == .allow)
        let probe = machine.generation
        #expect(probe != slow)
        // …the slow request's success must not close the breaker.
        machine.requestFinished(success: true, at: Self.at(.seconds(11)), generation: slow)
        #expect(machine.state == .halfOpen(inFlight: 1, successes: 0))
        machine.requestFinished(success: true, at: Self.at(.seconds(11)), generation: probe)
        #expect(Self.isClosed(machine.state))
    }

    @Test func outcomesFromAnEarlierWindowAreIgnored() {
        var machine = CircuitBreakerStateMachine(interval: .seconds(10), timeout: .seconds(10)) { $0.consecutiveFailures >= 2 }
        #expect(machine.requestStarting(at: Self.t0) == .allow)
        let old = machine.generation
        Self.run(&machine, success: false, at: Self.at(.seconds(11)))
        machine.requestFinished(success: false, at: Self.at(.seconds(12)), generation: old)
        #expect(Self.isClosed(machine.state))
    }
}

import MechaCore
import MechaResiliency
import Testing

@Suite("TimeoutPolicy")
struct TimeoutPolicyTests {
    @Test func fastOperationPassesThrough() async throws {
        let policy = TimeoutPolicy(name: "fast", timeout: .seconds(60))
        let started = ContinuousClock.now
        let output = try await policy.execute { 42 }
        #expect(output == 42)
        // The timer child is cancelled: no waiting for the full timeout (a wide margin for a loaded machine).
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    @Test func optionalOutputsSurvive() async throws {
        let policy = TimeoutPolicy(name: "optional", timeout: .seconds(5))
        let none: Int? = try await policy.execute { nil }
        #expect(none == nil)
        let some: Int? = try await policy.execute { 7 }
        #expect(some == 7)
    }

    @Test func slowOperationTimesOutAndIsCancelled() async throws {
        let policy = TimeoutPolicy(name: "slow", timeout: .milliseconds(50))
        let events = Recorder<String>()
        let started = ContinuousClock.now
        do {
            _ = try await policy.execute { () async throws -> Int in
                do {
                    try await Task.sleep(for: .seconds(30))
                    events.append("finished")
                } catch {
                    events.append(Task.isCancelled ? "cancelled" : "other: \(error)")
                    throw error
                }
                return 1
            }
            Issue.record("expected a timeout")
        } catch let error as ResiliencyError {
            #expect(error.code == .timeout)
            #expect(error.policyName == "slow")
            #expect(error.description == "context deadline exceeded")
        }
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(events.values == ["cancelled"])
    }

    @Test func operationErrorsPassThrough() async throws {
        let policy = TimeoutPolicy(name: "t", timeout: .seconds(5))
        await #expect(throws: TestError(attempt: 9)) {
            try await policy.execute { () async throws -> Int in throw TestError(attempt: 9) }
        }
    }

    @Test func callerCancellationIsNotReportedAsTimeout() async throws {
        let policy = TimeoutPolicy(name: "t", timeout: .seconds(30))
        let task = Task {
            try await policy.execute { () async throws -> Int in
                try await Task.sleep(for: .seconds(30))
                return 1
            }
        }
        try await Task.sleep(for: .milliseconds(20))
        task.cancel()
        let result = await task.result
        #expect(throws: CancellationError.self) { try result.get() }
    }
}

@Suite("TimeoutPolicy disarm")
struct TimeoutDisarmTests {
    @Test func anAnsweredOperationOutlivesItsDeadline() async throws {
        let disarm = TimeoutDisarm()
        let output = try await TimeoutPolicy(name: "t", timeout: .milliseconds(50)).execute(disarm: disarm) {
            disarm.answered()  // the head arrived in time; the body takes longer than the timeout
            try await Task.sleep(for: .milliseconds(200))
            return 7
        }
        #expect(output == 7)
    }

    @Test func anUnansweredOperationStillTimesOut() async {
        let disarm = TimeoutDisarm()
        await #expect(throws: ResiliencyError.self) {
            try await TimeoutPolicy(name: "t", timeout: .milliseconds(50)).execute(disarm: disarm) {
                try await Task.sleep(for: .seconds(10))
                return 7
            }
        }
    }
}

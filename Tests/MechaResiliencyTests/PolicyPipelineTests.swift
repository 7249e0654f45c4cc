import MechaCore
import MechaResiliency
import Testing

/// A policy that logs when it is entered and left.
struct TracingPolicy: Policy {
    var name: String
    var log: Recorder<String>

    func execute<Output: Sendable>(_ operation: @Sendable () async throws -> Output) async throws -> Output {
        self.log.append("\(self.name)>")
        defer { self.log.append("<\(self.name)") }
        return try await operation()
    }
}

@Suite("PolicyPipeline")
struct PolicyPipelineTests {
    @Test func emptyPipelineRunsTheOperationOnce() async throws {
        let pipeline = PolicyPipeline()
        #expect(pipeline.isEmpty)
        let calls = Recorder<Int>()
        let output = try await pipeline.execute { () async throws -> String in
            calls.append(1)
            return "done"
        }
        #expect(output == "done")
        #expect(calls.count == 1)
    }

    @Test func policiesWrapOutermostFirst() async throws {
        let log = Recorder<String>()
        let pipeline = PolicyPipeline([
            TracingPolicy(name: "a", log: log), TracingPolicy(name: "b", log: log), TracingPolicy(name: "c", log: log),
        ])
        #expect(!pipeline.isEmpty)
        _ = try await pipeline.execute { () async throws -> Int in
            log.append("op")
            return 0
        }
        #expect(log.values == ["a>", "b>", "c>", "op", "<c", "<b", "<a"])
    }

    @Test func retryAroundTimeoutTimesOutEachAttempt() async throws {
        let delays = Recorder<Duration>()
        let attempts = Recorder<Int>()
        let pipeline = PolicyPipeline([
            RetryPolicy(name: "retry", backoff: .init(.constant(.milliseconds(1)), maxRetries: 2), sleep: { delays.append($0) }),
            TimeoutPolicy(name: "timeout", timeout: .milliseconds(30)),
        ])
        let output = try await pipeline.execute { () async throws -> Int in
            attempts.append(1)
            // The first two attempts hang; the timeout cuts each one short and the retry tries again.
            if attempts.count < 3 { try await Task.sleep(for: .seconds(30)) }
            return attempts.count
        }
        #expect(output == 3)
        #expect(delays.count == 2)
    }

    @Test func timeoutAroundRetryBoundsTheWholeThing() async throws {
        let attempts = Recorder<Int>()
        let pipeline = PolicyPipeline([
            TimeoutPolicy(name: "overall", timeout: .milliseconds(50)),
            RetryPolicy(name: "retry", backoff: .init(.constant(.milliseconds(5)), maxRetries: nil)),
        ])
        do {
            _ = try await pipeline.execute { () async throws -> Int in
                attempts.append(1)
                throw TestError(attempt: attempts.count)
            }
            Issue.record("expected a timeout")
        } catch let error as ResiliencyError {
            #expect(error.code == .timeout)
            #expect(error.policyName == "overall")
        }
        #expect(attempts.count > 1)
    }

    @Test func retryAroundCircuitBreakerStopsWhenTheBreakerOpens() async throws {
        let attempts = Recorder<Int>()
        let breaker = CircuitBreaker(
            name: "cb",
            machine: CircuitBreakerStateMachine(timeout: .seconds(60)) { $0.consecutiveFailures >= 2 }
        )
        let pipeline = PolicyPipeline([
            RetryPolicy(
                name: "retry",
                backoff: .init(.constant(.milliseconds(1)), maxRetries: 10),
                shouldRetry: { !($0 is ResiliencyError) },
                sleep: { _ in }
            ),
            breaker,
        ])
        do {
            _ = try await pipeline.execute { () async throws -> Int in
                attempts.append(1)
                throw TestError(attempt: attempts.count)
            }
            Issue.record("expected circuitOpen")
        } catch let error as ResiliencyError {
            #expect(error.code == .circuitOpen)
        }
        // Two real attempts tripped the breaker; the third was rejected without running.
        #expect(attempts.count == 2)
    }
}

import MechaCore
import MechaResiliency
import Testing

@Suite("RetryPolicy")
struct RetryPolicyTests {
    /// A policy that records its delays instead of sleeping.
    static func policy(
        _ backoff: Backoff,
        delays: Recorder<Duration>,
        jitter: Double = 0.5,
        shouldRetry: @escaping @Sendable (any Error) -> Bool = { _ in true }
    ) -> RetryPolicy {
        RetryPolicy(name: "test", backoff: backoff, shouldRetry: shouldRetry, sleep: { delays.append($0) }, jitter: { jitter })
    }

    @Test func firstAttemptSucceeds() async throws {
        let delays = Recorder<Duration>()
        let attempts = Recorder<Int>()
        let output = try await Self.policy(.init(.constant(.seconds(1)), maxRetries: 3), delays: delays).execute {
            attempts.append(1)
            return "ok"
        }
        #expect(output == "ok")
        #expect(attempts.count == 1)
        #expect(delays.values.isEmpty)
    }

    @Test func retriesThenSucceeds() async throws {
        let delays = Recorder<Duration>()
        let attempts = Recorder<Int>()
        let policy = Self.policy(.init(.exponential(initial: .milliseconds(10), multiplier: 2, maxInterval: .seconds(1)), maxRetries: 5), delays: delays)
        let output = try await policy.execute { () async throws -> Int in
            attempts.append(attempts.count + 1)
            if attempts.count < 4 { throw TestError(attempt: attempts.count) }
            return attempts.count
        }
        #expect(output == 4)
        #expect(delays.values == [.milliseconds(10), .milliseconds(20), .milliseconds(40)])
    }

    @Test(arguments: [0, 1, 4])
    func givesUpAfterMaxRetriesWithTheLastError(maxRetries: Int) async throws {
        let delays = Recorder<Duration>()
        let attempts = Recorder<Int>()
        let policy = Self.policy(.init(.constant(.milliseconds(5)), maxRetries: maxRetries), delays: delays)
        await #expect(throws: TestError(attempt: maxRetries + 1)) {
            try await policy.execute { () async throws -> Int in
                attempts.append(1)
                throw TestError(attempt: attempts.count)
            }
        }
        #expect(attempts.count == maxRetries + 1)
        #expect(delays.values == Array(repeating: .milliseconds(5), count: maxRetries))
    }

    @Test func shouldRetryFalseDoesNotRetry() async throws {
        let delays = Recorder<Duration>()
        let attempts = Recorder<Int>()
        let policy = Self.policy(.init(.constant(.milliseconds(5)), maxRetries: 10), delays: delays, shouldRetry: { _ in false })
        await #expect(throws: TestError(attempt: 1)) {
            try await policy.execute { () async throws -> Int in
                attempts.append(1)
                throw TestError(attempt: attempts.count)
            }
        }
        #expect(attempts.count == 1)
        #expect(delays.values.isEmpty)
    }

    @Test func shouldRetryDecidesPerError() async throws {
        let delays = Recorder<Duration>()
        let attempts = Recorder<Int>()
        // Retry only attempts 1 and 2; the third error is final.
        let policy = Self.policy(.init(.constant(.milliseconds(5)), maxRetries: 10), delays: delays, shouldRetry: { error in
            (error as? TestError).map { $0.attempt < 3 } ?? false
        })
        await #expect(throws: TestError(attempt: 3)) {
            try await policy.execute { () async throws -> Int in
                attempts.append(1)
                throw TestError(attempt: attempts.count)
            }
        }
        #expect(attempts.count == 3)
        #expect(delays.count == 2)
    }

    @Test func jitterIsApplied() async throws {
        let delays = Recorder<Duration>()
        let policy = Self.policy(.exponential(maxRetries: 2, initial: .seconds(1)), delays: delays, jitter: 1)
        _ = try? await policy.execute { () async throws -> Int in throw TestError(attempt: 0) }
        #expect(delays.values == [.milliseconds(1500), .milliseconds(2250)])
    }

    @Test func cancellationIsNeverRetried() async throws {
        let delays = Recorder<Duration>()
        let attempts = Recorder<Int>()
        let policy = Self.policy(.init(.constant(.milliseconds(5)), maxRetries: 10), delays: delays)
        await #expect(throws: CancellationError.self) {
            try await policy.execute { () async throws -> Int in
                attempts.append(1)
                throw CancellationError()
            }
        }
        #expect(attempts.count == 1)
        #expect(delays.values.isEmpty)
    }

    @Test func cancelledTaskStopsRetrying() async throws {
        let attempts = Recorder<Int>()
        let policy = RetryPolicy(name: "forever", backoff: .init(.constant(.milliseconds(1)), maxRetries: nil))
        let task = Task {
            try await policy.execute { () async throws -> Int in
                attempts.append(1)
                throw TestError(attempt: attempts.count)
            }
        }
        while attempts.count < 3 { try await Task.sleep(for: .milliseconds(1)) }
        task.cancel()
        let result = await task.result
        #expect(throws: (any Error).self) { try result.get() }
        let stopped = attempts.count
        try await Task.sleep(for: .milliseconds(20))
        #expect(attempts.count == stopped)
    }

    @Test func sleepErrorsPropagate() async throws {
        struct SleepFailed: Error {}
        let policy = RetryPolicy(
            name: "t",
            backoff: .init(.constant(.seconds(1)), maxRetries: 3),
            sleep: { _ in throw SleepFailed() }
        )
        await #expect(throws: SleepFailed.self) {
            try await policy.execute { () async throws -> Int in throw TestError(attempt: 1) }
        }
    }
}

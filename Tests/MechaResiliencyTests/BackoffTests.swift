import MechaResiliency
import Testing

@Suite("Backoff")
struct BackoffTests {
    @Test(arguments: 1...5)
    func constantDelayIsTheSameEveryTime(retry: Int) {
        let backoff = Backoff(.constant(.milliseconds(250)), maxRetries: 5)
        #expect(backoff.delay(beforeRetry: retry) == .milliseconds(250))
        // Jitter does not apply to a constant policy.
        #expect(backoff.delay(beforeRetry: retry, jitter: 0) == .milliseconds(250))
        #expect(backoff.delay(beforeRetry: retry, jitter: 1) == .milliseconds(250))
    }

    @Test func exponentialGrowsByTheMultiplier() {
        let backoff = Backoff(.exponential(initial: .milliseconds(100), multiplier: 2, maxInterval: .seconds(60)), maxRetries: nil)
        let delays = (1...6).map { backoff.delay(beforeRetry: $0, jitter: 0.5) }
        #expect(delays == [100, 200, 400, 800, 1600, 3200].map { Duration.milliseconds($0) })
    }

    @Test func exponentialIsCappedAtMaxInterval() {
        let backoff = Backoff(.exponential(initial: .seconds(1), multiplier: 3, maxInterval: .seconds(10)), maxRetries: nil)
        #expect(backoff.delay(beforeRetry: 1) == .seconds(1))
        #expect(backoff.delay(beforeRetry: 2) == .seconds(3))
        #expect(backoff.delay(beforeRetry: 3) == .seconds(9))
        #expect(backoff.delay(beforeRetry: 4) == .seconds(10))
        #expect(backoff.delay(beforeRetry: 1_000) == .seconds(10))
        // Jitter never pushes a delay past the cap.
        #expect(backoff.delay(beforeRetry: 50, jitter: 1) == .seconds(10))
    }

    @Test func daprDefaultExponential() {
        let backoff = Backoff.exponential(maxRetries: 3)
        #expect(backoff.delay(beforeRetry: 1) == .milliseconds(500))
        #expect(backoff.delay(beforeRetry: 2) == .milliseconds(750))
        #expect(backoff.delay(beforeRetry: 3) == .milliseconds(1125))
        #expect(backoff.delay(beforeRetry: 4) == nil)
        #expect(Backoff.exponential().delay(beforeRetry: 100) == .seconds(60))
    }

    @Test(arguments: [0, 1, 3])
    func maxRetriesExhaustion(maxRetries: Int) {
        for kind in [Backoff.Kind.constant(.seconds(1)), .exponential(initial: .seconds(1), multiplier: 2, maxInterval: .seconds(8))] {
            let backoff = Backoff(kind, maxRetries: maxRetries)
            for retry in 1...(maxRetries + 3) {
                if retry <= maxRetries {
                    #expect(backoff.delay(beforeRetry: retry) != nil)
                } else {
                    #expect(backoff.delay(beforeRetry: retry) == nil)
                }
            }
        }
    }

    @Test func unlimitedRetriesNeverExhaust() {
        let backoff = Backoff(.constant(.milliseconds(1)), maxRetries: nil)
        #expect(backoff.delay(beforeRetry: 1_000_000) == .milliseconds(1))
    }

    @Test func jitterBounds() {
        let backoff = Backoff(.exponential(initial: .seconds(2), multiplier: 2, maxInterval: .seconds(60)), maxRetries: nil)
        // Randomisation factor 0.5 as in Dapr: [0.5·d, 1.5·d], centred on d.
        #expect(backoff.delay(beforeRetry: 1, jitter: 0) == .seconds(1))
        #expect(backoff.delay(beforeRetry: 1, jitter: 0.5) == .seconds(2))
        #expect(backoff.delay(beforeRetry: 1, jitter: 1) == .seconds(3))
        #expect(backoff.delay(beforeRetry: 2, jitter: 0.25) == .seconds(3))
        // Out-of-range jitter is clamped.
        #expect(backoff.delay(beforeRetry: 1, jitter: -5) == .seconds(1))
        #expect(backoff.delay(beforeRetry: 1, jitter: 7) == .seconds(3))
        for step in 0...100 {
            let jitter = Double(step) / 100
            for retry in 1...8 {
                let nominal = backoff.delay(beforeRetry: retry, jitter: 0.5)!
                let delay = backoff.delay(beforeRetry: retry, jitter: jitter)!
                #expect(delay >= nominal / 2)
                #expect(delay <= min(nominal * 3 / 2, .seconds(60)))
            }
        }
    }

    @Test func randomJitterStaysInBounds() {
        let backoff = Backoff.exponential()
        for _ in 0..<200 {
            let delay = backoff.delay(beforeRetry: 3, jitter: Double.random(in: 0...1))!
            #expect(delay >= .milliseconds(562) && delay <= .milliseconds(1688))
        }
    }
}

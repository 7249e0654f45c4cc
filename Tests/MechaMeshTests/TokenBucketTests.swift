import MechaCore
import MechaResiliency
import Testing

@Suite("TokenBucket")
struct TokenBucketTests {
    @Test func startsFullThenRefillsAtTheRate() {
        var bucket = TokenBucket(requestsPerSecond: 100, burst: 20)
        let t0 = VirtualTime.origin
        #expect(bucket.available(now: t0) == 20)
        var transcript: [Bool] = (0..<20).map { _ in bucket.tryTake(now: t0) }
        #expect(transcript == Array(repeating: true, count: 20))
        transcript = [bucket.tryTake(now: t0)]
        #expect(bucket.retryAfter(now: t0) == .milliseconds(10))
        #expect(bucket.retryAfter(now: t0 + 4_000_000) == .milliseconds(6))
        transcript += [bucket.tryTake(now: t0 + 9_999_999), bucket.tryTake(now: t0 + 10_000_000), bucket.tryTake(now: t0 + 10_000_000)]
        #expect(transcript == [false, false, true, false])
        // A long idle spell refills only up to the burst.
        #expect(bucket.available(now: t0 + 3_600_000_000_000) == 20)
        #expect(bucket.retryAfter(now: t0 + 3_600_000_000_000) == .zero)
    }

    /// 500 calls evenly spread over `seconds`; returns how many were admitted.
    static func arrivals(_ bucket: inout TokenBucket, from start: UInt64, seconds: Int, perSecond: Int = 500) -> Int {
        let gap = 1_000_000_000 / UInt64(perSecond)
        var admitted = 0
        for i in 0..<(seconds * perSecond) where bucket.tryTake(now: start + UInt64(i) * gap) {
            admitted += 1
        }
        return admitted
    }

    @Test func aBurstThenTheRate() {
        var bucket = TokenBucket(requestsPerSecond: 100, burst: 20)
        // First second: the burst plus one second's refill.
        let first = Self.arrivals(&bucket, from: VirtualTime.origin, seconds: 1)
        #expect((118...121).contains(first), "\(first)")
        // Steady state: the rate, within 5 %.
        let steady = Self.arrivals(&bucket, from: VirtualTime.s(1), seconds: 10)
        #expect((950...1_050).contains(steady), "\(steady)")
    }

    @Test func fromTheRouteSpec() {
        let bucket = TokenBucket(RateLimitSpec(requestsPerSecond: 2.5))
        #expect(bucket.burst == 3)
        #expect(bucket.requestsPerSecond == 2.5)
        #expect(bucket.available(now: 0) == 3)
    }

    @Test func aSlowRateWaitsLong() {
        var bucket = TokenBucket(requestsPerSecond: 0.5, burst: 1)
        let first = bucket.tryTake(now: VirtualTime.origin)
        let early = bucket.tryTake(now: VirtualTime.s(1))
        #expect(bucket.retryAfter(now: VirtualTime.s(1)) == .seconds(1))
        let onTime = bucket.tryTake(now: VirtualTime.s(2))
        #expect([first, early, onTime] == [true, false, true])
    }
}

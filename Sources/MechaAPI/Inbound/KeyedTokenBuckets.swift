/// One token bucket per key, as `golang.org/x/time/rate.Limiter.Allow` behaves: a bucket starts
/// full (`burst` tokens), refills at `rate` tokens a second up to `burst`, and each allowed event
/// takes one token. Time is passed in; the owner keeps this value behind a lock.
///
/// At most `capacity` keys are tracked. When a new key arrives at the limit, buckets that have
/// refilled completely are dropped first (a full bucket behaves exactly like a new one, so that is
/// invisible); if none has, the one idle longest goes.
struct KeyedTokenBuckets {
    struct Bucket {
        var tokens: Double
        var last: ContinuousClock.Instant
    }

    let rate: Double
    let burst: Double
    let capacity: Int
    private(set) var buckets: [String: Bucket] = [:]

    init(rate: Double, burst: Int, capacity: Int) {
        precondition(rate > 0 && burst >= 1 && capacity >= 1)
        self.rate = rate
        self.burst = Double(burst)
        self.capacity = capacity
    }

    /// Takes a token from `key`'s bucket at `now`; false when it has none.
    mutating func take(_ key: String, at now: ContinuousClock.Instant) -> Bool {
        if var bucket = self.buckets[key] {
            bucket.tokens = self.tokens(of: bucket, at: now)
            bucket.last = max(bucket.last, now)
            let allowed = bucket.tokens >= 1
            if allowed { bucket.tokens -= 1 }
            self.buckets[key] = bucket
            return allowed
        }
        if self.buckets.count >= self.capacity { self.evict(at: now) }
        self.buckets[key] = Bucket(tokens: self.burst - 1, last: now)
        return true
    }

    /// The tokens a bucket holds at `now`.
    func tokens(of bucket: Bucket, at now: ContinuousClock.Instant) -> Double {
        guard now > bucket.last else { return bucket.tokens }
        let elapsed = now - bucket.last
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        return min(self.burst, bucket.tokens + seconds * self.rate)
    }

    private mutating func evict(at now: ContinuousClock.Instant) {
        self.buckets = self.buckets.filter { self.tokens(of: $0.value, at: now) < self.burst }
        if self.buckets.count >= self.capacity, let idlest = self.buckets.min(by: { $0.value.last < $1.value.last })?.key {
            self.buckets[idlest] = nil
        }
    }
}

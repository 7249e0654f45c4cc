public import MechaCore

/// A token bucket of `burst` tokens refilled at `requestsPerSecond`, starting full.
///
/// A pure value: `now` is a monotonic nanosecond counter passed in. Implemented as GCRA (a
/// theoretical arrival time in integer nanoseconds) so it is exact over any horizon — no floating
/// drift, no refill loop, two integers of state. Keep it inside a `Mutex`.
///
/// `requestsPerSecond` must be positive (the configuration layer rejects others); values below
/// one token per 10⁶ s are clamped to that.
public struct TokenBucket: Sendable {
    /// Tokens added per second.
    public let requestsPerSecond: Double
    /// The bucket size: calls admitted back to back after an idle spell.
    public let burst: Int
    /// Nanoseconds per token.
    let interval: UInt64
    /// `interval × burst`: how far ahead of `now` the theoretical arrival time may run.
    let tolerance: UInt64
    /// When the bucket will be full again, were nothing taken meanwhile.
    private var fullAt: UInt64 = 0

    /// A full bucket.
    public init(requestsPerSecond: Double, burst: Int) {
        self.requestsPerSecond = requestsPerSecond
        self.burst = max(1, burst)
        let rate = requestsPerSecond.isFinite ? max(requestsPerSecond, 1e-6) : 1e9
        self.interval = max(1, UInt64((1e9 / rate).rounded()))
        self.tolerance = self.interval.saturatingMultiply(UInt64(self.burst))
    }

    /// A full bucket for a route's `rateLimit`.
    public init(_ spec: RateLimitSpec) {
        self.init(requestsPerSecond: spec.requestsPerSecond, burst: spec.burst)
    }

    /// Takes one token if there is one.
    public mutating func tryTake(now: UInt64) -> Bool {
        let next = max(self.fullAt, now).saturatingAdd(self.interval)
        guard next - now <= self.tolerance else { return false }
        self.fullAt = next
        return true
    }

    /// How long until `tryTake` would succeed; zero when it would now.
    public func retryAfter(now: UInt64) -> Duration {
        let next = max(self.fullAt, now).saturatingAdd(self.interval)
        let wait = next - now
        return wait <= self.tolerance ? .zero : .nanoseconds(Int64(clamping: wait - self.tolerance))
    }

    /// Whole tokens available at `now`.
    public func available(now: UInt64) -> Int {
        let debt = self.fullAt > now ? self.fullAt - now : 0
        return Int((self.tolerance - min(debt, self.tolerance)) / self.interval)
    }
}

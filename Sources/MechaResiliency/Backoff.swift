/// How long to wait before retry attempt `n`: Dapr's `constant` and `exponential` retry policies as a
/// pure function of the attempt number (jitter is injected, so tests are deterministic).
public struct Backoff: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        /// The same delay every time.
        case constant(Duration)
        /// `initial × multiplier^(attempt-1)`, capped at `maxInterval`.
        case exponential(initial: Duration, multiplier: Double, maxInterval: Duration)
    }

    public var kind: Kind
    /// Retries after the first attempt; `nil` retries forever.
    public var maxRetries: Int?

    public init(_ kind: Kind, maxRetries: Int?) {
        self.kind = kind
        self.maxRetries = maxRetries
    }

    /// Dapr's default exponential policy: 500 ms initial interval, ×1.5, capped at 60 s.
    public static func exponential(maxRetries: Int? = nil, initial: Duration = .milliseconds(500), maxInterval: Duration = .seconds(60)) -> Backoff {
        Backoff(.exponential(initial: initial, multiplier: 1.5, maxInterval: maxInterval), maxRetries: maxRetries)
    }

    /// The delay before retry number `retry` (1-based), or `nil` when retries are exhausted.
    /// `jitter` in 0...1 scales exponential delays by `1 ± 0.5·jitter'` where jitter' = 2·jitter − 1.
    public func delay(beforeRetry retry: Int, jitter: Double = 0.5) -> Duration? {
        precondition(retry >= 1)
        if let maxRetries = self.maxRetries, retry > maxRetries { return nil }
        switch self.kind {
        case .constant(let delay):
            return delay
        case .exponential(let initial, let multiplier, let maxInterval):
            var seconds = initial.secondsDouble
            let cap = maxInterval.secondsDouble
            for _ in 1..<retry {
                seconds *= multiplier
                if seconds >= cap { break }
            }
            seconds = min(seconds, cap)
            // Dapr's randomisation factor 0.5: the delay lands in [0.5·d, 1.5·d].
            let factor = 1 + 0.5 * (2 * min(max(jitter, 0), 1) - 1)
            return .nanoseconds(Int64(min(seconds * factor, cap) * 1e9))
        }
    }
}

extension Duration {
    fileprivate var secondsDouble: Double {
        let (seconds, attoseconds) = self.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

import Synchronization

/// How a target's circuit breakers are made: one for the target, or one per key (an app's
/// endpoints, `app:method`) kept in a cache of `cacheSize` that forgets the least recently used.
public struct BreakerTemplate: Sendable {
    public var name: String
    /// `nil`: one breaker for the whole target.
    public var cacheSize: Int?
    public var make: @Sendable () -> CircuitBreaker

    public init(name: String, cacheSize: Int? = nil, make: @escaping @Sendable () -> CircuitBreaker) {
        self.name = name
        self.cacheSize = cacheSize
        self.make = make
    }
}

/// The policies that apply to one target (an app, a component's outbound or inbound calls, an actor
/// type), built once from the Resiliency resources and shared by every call to that target, so the
/// breakers' counts are the target's. `execute` runs Dapr's order: retries around the breaker around
/// a per-attempt timeout.
public final class TargetPolicy: Sendable {
    /// A target without policies: `execute` calls the operation directly.
    public static let none = TargetPolicy()

    public let target: PolicyTarget?
    /// Bound on each attempt.
    public let timeout: Duration?
    public let timeoutName: String?
    /// Delays between attempts; `nil` without a retry policy.
    public let backoff: Backoff?
    public let retryName: String?
    /// Which failures are retried.
    public let matching: RetryMatching
    let breakerTemplate: BreakerTemplate?
    /// The single breaker, or the per-key ones (most recently used last).
    private let breakers: Mutex<(single: CircuitBreaker?, keyed: [String: CircuitBreaker], order: [String])>
    let sleep: @Sendable (Duration) async throws -> Void
    let jitter: @Sendable () -> Double
    /// Told when the policies apply and act (daprd's resiliency metrics); nil: not observed.
    public let monitor: PolicyMonitor?

    public var isEmpty: Bool { self.timeout == nil && self.backoff == nil && self.breakerTemplate == nil }
    public var hasBreaker: Bool { self.breakerTemplate != nil }

    public init(
        target: PolicyTarget? = nil,
        timeout: (name: String, duration: Duration)? = nil,
        retry: (name: String, backoff: Backoff, matching: RetryMatching)? = nil,
        breakers: BreakerTemplate? = nil,
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
        jitter: @escaping @Sendable () -> Double = { Double.random(in: 0...1) },
        monitor: PolicyMonitor? = nil
    ) {
        self.monitor = monitor
        self.target = target
        self.timeout = timeout?.duration
        self.timeoutName = timeout?.name
        self.backoff = retry?.backoff
        self.retryName = retry?.name
        self.matching = retry?.matching ?? RetryMatching()
        self.breakerTemplate = breakers
        self.breakers = Mutex((breakers?.cacheSize == nil ? breakers?.make() : nil, [:], []))
        self.sleep = sleep
        self.jitter = jitter
    }

    /// The breaker for `key` (ignored when the target has a single breaker); nil without one.
    public func breaker(for key: String?) -> CircuitBreaker? {
        guard let template = self.breakerTemplate else { return nil }
        return self.breakers.withLock { state in
            if let single = state.single { return single }
            let key = key ?? ""
            if let found = state.keyed[key] {
                if state.order.last != key, let index = state.order.lastIndex(of: key) {
                    state.order.remove(at: index)
                    state.order.append(key)
                }
                return found
            }
            let made = template.make()
            state.keyed[key] = made
            state.order.append(key)
            if let size = template.cacheSize, state.order.count > max(1, size) {
                let evicted = state.order.removeFirst()
                state.keyed[evicted] = nil
            }
            return made
        }
    }

    /// A call begins under the target's policies: returns the breaker for `breakerKey` (nil
    /// without one) and tells the monitor. Every call starts here once — `execute` does, and so do
    /// callers that drive attempts themselves (the event-loop fast path, proxied gRPC).
    public func begin(breakerKey: String?) -> CircuitBreaker? {
        let breaker = self.breaker(for: breakerKey)
        if let monitor = self.monitor { monitor.began(breakerState: breaker?.stateLabel) }
        return breaker
    }

    /// The timeout fired (callers that time attempts themselves report it here).
    public func timedOut() {
        self.monitor?.timedOut()
    }

    /// Runs `operation` under the target's policies. The operation receives the attempt number
    /// (0 for the first) so it can, for instance, pick another instance on a retry. `breakerKey`
    /// picks the breaker of targets with one per endpoint.
    /// `retries: false` runs a single attempt (a request body that cannot be replayed).
    public func execute<Output: Sendable>(breakerKey: String? = nil, retries: Bool = true, _ operation: @Sendable (Int) async throws -> Output) async throws -> Output {
        if self.isEmpty { return try await operation(0) }
        return try await self.execute(breakerKey: breakerKey, retries: retries) { attempt, _ in try await operation(attempt) }
    }

    /// As `execute`, the operation also receiving its attempt's `TimeoutDisarm`: calling
    /// `answered()` on it when the answer's head arrives ends the timeout there, as daprd's does
    /// (a long answer body is not cut off).
    public func execute<Output: Sendable>(
        breakerKey: String? = nil,
        retries: Bool = true,
        _ operation: @Sendable (Int, TimeoutDisarm) async throws -> Output
    ) async throws -> Output {
        if self.isEmpty { return try await operation(0, TimeoutDisarm()) }
        let breaker = self.begin(breakerKey: breakerKey)
        var attempt = 0
        var timeoutReported = false
        while true {
            var ticket: CircuitBreaker.Ticket?
            do {
                if let breaker { ticket = try breaker.admit() }
                let output = try await self.bounded(attempt, operation)
                if let breaker, let ticket { breaker.finish(ticket, success: true) }
                return output
            } catch {
                // daprd counts a timeout's activation once per call.
                if !timeoutReported, self.timeout != nil, let failure = error as? ResiliencyError, failure.code == .timeout {
                    timeoutReported = true
                    self.timedOut()
                }
                // Every error is a breaker failure (daprd), except the caller giving up.
                if let breaker, let ticket { breaker.finish(ticket, success: error is CancellationError || error is any PermanentFailure) }
                guard retries, let delay = self.retryDelay(after: error, retry: attempt + 1) else { throw error }
                attempt += 1
                if delay > .zero { try await self.sleep(delay) }
            }
        }
    }

    /// One attempt, within the timeout when there is one.
    private func bounded<Output: Sendable>(_ attempt: Int, _ operation: @Sendable (Int, TimeoutDisarm) async throws -> Output) async throws -> Output {
        let disarm = TimeoutDisarm()
        guard let timeout = self.timeout else { return try await operation(attempt, disarm) }
        return try await TimeoutPolicy(name: self.timeoutName ?? "timeout", timeout: timeout).execute(disarm: disarm) {
            try await operation(attempt, disarm)
        }
    }

    /// The wait before retry number `retry` (1-based) after `error`, or nil when the policy gives
    /// up (no retry policy, an error it does not retry, retries exhausted, the task cancelled).
    public func retryDelay(after error: any Error, retry: Int) -> Duration? {
        guard let backoff = self.backoff, !Task.isCancelled, self.matching.shouldRetry(error) else { return nil }
        guard let delay = backoff.delay(beforeRetry: retry, jitter: self.jitter()) else { return nil }
        self.monitor?.retried()
        return delay
    }
}

/// Dapr's circuit breaker as a pure state machine: closed → open after `trip` says so, open → half-open
/// after `timeout`, half-open lets `maxRequests` probes through and closes on success or re-opens on
/// failure. Time is passed in; the machine never reads a clock.
public struct CircuitBreakerStateMachine: Sendable {
    public enum State: Sendable, Hashable {
        case closed(Counts)
        case open(since: ContinuousClock.Instant)
        case halfOpen(inFlight: Int, successes: Int)
    }

    public struct Counts: Sendable, Hashable {
        public var requests = 0
        public var totalSuccesses = 0
        public var totalFailures = 0
        public var consecutiveSuccesses = 0
        public var consecutiveFailures = 0
        public var windowStart: ContinuousClock.Instant?
        public init() {}
    }

    public enum Decision: Sendable, Hashable {
        case allow
        case reject
    }

    public let maxRequests: Int
    /// Closed-state counting window; zero means counts never reset while closed.
    public let interval: Duration
    /// How long the breaker stays open before probing.
    public let timeout: Duration
    /// Trips the breaker given the closed-state counts (Dapr: `consecutiveFailures > 5`).
    public let trip: @Sendable (Counts) -> Bool
    public private(set) var state: State = .closed(Counts()) {
        didSet { if self.state.phase != oldValue.phase || self.state.isFreshWindow(after: oldValue) { self.generation &+= 1 } }
    }
    /// Bumped whenever the breaker changes state or starts a new counting window. A request reports
    /// its outcome with the generation it started in; outcomes from an earlier generation are ignored
    /// (a slow request started while closed must not close a half-open breaker).
    public private(set) var generation: UInt64 = 0

    public init(maxRequests: Int = 1, interval: Duration = .zero, timeout: Duration = .seconds(60), trip: @escaping @Sendable (Counts) -> Bool) {
        self.maxRequests = max(1, maxRequests)
        self.interval = interval
        self.timeout = timeout
        self.trip = trip
    }

    /// Asks whether a request may go through now.
    public mutating func requestStarting(at now: ContinuousClock.Instant) -> Decision {
        switch self.state {
        case .closed(var counts):
            if self.interval > .zero {
                if let start = counts.windowStart, now - start >= self.interval {
                    counts = Counts()
                }
                if counts.windowStart == nil { counts.windowStart = now }
            }
            counts.requests += 1
            self.state = .closed(counts)
            return .allow
        case .open(let since):
            guard now - since >= self.timeout else { return .reject }
            self.state = .halfOpen(inFlight: 1, successes: 0)
            return .allow
        case .halfOpen(let inFlight, let successes):
            guard inFlight + successes < self.maxRequests else { return .reject }
            self.state = .halfOpen(inFlight: inFlight + 1, successes: successes)
            return .allow
        }
    }

    /// Records how an allowed request ended, `generation` being the value read right after
    /// `requestStarting` allowed it. Stale outcomes are ignored.
    public mutating func requestFinished(success: Bool, at now: ContinuousClock.Instant, generation: UInt64) {
        guard generation == self.generation else { return }
        self.requestFinished(success: success, at: now)
    }

    /// Records how an allowed request ended (as belonging to the current generation).
    public mutating func requestFinished(success: Bool, at now: ContinuousClock.Instant) {
        switch self.state {
        case .closed(var counts):
            if success {
                counts.totalSuccesses += 1
                counts.consecutiveSuccesses += 1
                counts.consecutiveFailures = 0
            } else {
                counts.totalFailures += 1
                counts.consecutiveFailures += 1
                counts.consecutiveSuccesses = 0
            }
            self.state = !success && self.trip(counts) ? .open(since: now) : .closed(counts)
        case .open:
            break
        case .halfOpen(let inFlight, let successes):
            if !success {
                self.state = .open(since: now)
            } else if successes + 1 >= self.maxRequests {
                self.state = .closed(Counts())
            } else {
                self.state = .halfOpen(inFlight: max(0, inFlight - 1), successes: successes + 1)
            }
        }
    }
}

extension CircuitBreakerStateMachine.State {
    /// The state as daprd's breaker names it (`closed`, `open`, `half-open`).
    public var label: String {
        switch self {
        case .closed: "closed"
        case .open: "open"
        case .halfOpen: "half-open"
        }
    }

    fileprivate enum Phase { case closed, open, halfOpen }

    fileprivate var phase: Phase {
        switch self {
        case .closed: .closed
        case .open: .open
        case .halfOpen: .halfOpen
        }
    }

    /// A closed breaker whose counting window restarted.
    fileprivate func isFreshWindow(after old: Self) -> Bool {
        guard case .closed(let new) = self, case .closed(let previous) = old else { return false }
        return new.windowStart != previous.windowStart && previous.windowStart != nil
    }
}

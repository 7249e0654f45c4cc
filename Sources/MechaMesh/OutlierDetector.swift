public import MechaCore

/// Ejects instances that fail repeatedly, by the rules of an `OutlierDetectionSpec`.
///
/// A pure value: `now` is a monotonic nanosecond counter passed in (the same one the `Balancer`
/// gets). Keep it inside a `Mutex`; feed it every call's outcome and exclude `isEjected` instances
/// when picking.
///
/// The exact rules:
/// 1. A failure while not ejected adds one to the instance's consecutive-failure count; a success
///    resets it to zero. Outcomes recorded while the instance is ejected (calls that were already
///    in flight) are ignored.
/// 2. When the count reaches `consecutiveFailures`, the instance is ejected if that keeps the
///    ejected share within `maxEjectionPercent` — (ejected + 1) × 100 ≤ instances × percent,
///    strictly, so with 1 instance and 50 % nothing is ever ejected; 100 % allows all. When the cap
///    forbids it the count stays at the threshold and the next failure tries again.
/// 3. Ejecting raises the instance's multiplier n by one and ejects it for
///    min(baseEjectionTime × n, maxEjectionTime); the count restarts at zero. Once that time has
///    passed the instance is back (`isEjected` turns false on its own; nothing needs to fire).
/// 4. The multiplier decays: it drops by one for every full `baseEjectionTime` the instance spends
///    back in service without a failure (measured from the later of its return and its last
///    failure). So an instance that returns and keeps failing is ejected again — after another
///    `consecutiveFailures` failures — for longer each time, and one that stays healthy earns its
///    way back to the base time.
public struct OutlierDetector: Sendable {
    /// The rules.
    public let spec: OutlierDetectionSpec
    let threshold: Int
    let baseNanos: UInt64
    let maxNanos: UInt64

    struct Health: Sendable {
        var consecutiveFailures = 0
        /// How many times in a row (less decay) the instance was ejected.
        var multiplier = 0
        /// Ejected while `now < ejectedUntil`.
        var ejectedUntil: UInt64 = 0
        /// Decay is counted from here: the later of the return from ejection and the last failure.
        var healthySince: UInt64 = 0
    }

    private var health: [String: Health] = [:]

    /// A detector with no instances yet; call `update(endpoints:)`.
    public init(_ spec: OutlierDetectionSpec) {
        self.spec = spec
        self.threshold = max(1, spec.consecutiveFailures)
        self.baseNanos = spec.baseEjectionTime.unsignedNanoseconds
        self.maxNanos = spec.maxEjectionTime.unsignedNanoseconds
    }

    /// Replaces the instance set: remaining instances keep their state, new ones start healthy,
    /// removed ones are forgotten.
    public mutating func update(endpoints keys: [String]) {
        var next: [String: Health] = [:]
        next.reserveCapacity(keys.count)
        for key in keys {
            next[key] = self.health[key] ?? Health()
        }
        self.health = next
    }

    /// Records how a call to `key` ended. Unknown keys are ignored.
    public mutating func record(key: String, success: Bool, now: UInt64) {
        guard var health = self.health[key] else { return }
        guard now >= health.ejectedUntil else { return }
        self.decay(&health, now: now)
        if success {
            health.consecutiveFailures = 0
            self.health[key] = health
            return
        }
        health.consecutiveFailures += 1
        health.healthySince = now
        if health.consecutiveFailures >= self.threshold && self.mayEjectOneMore(now: now) {
            health.multiplier += 1
            let length = min(self.baseNanos.saturatingMultiply(UInt64(health.multiplier)), self.maxNanos)
            health.ejectedUntil = now.saturatingAdd(length)
            health.healthySince = health.ejectedUntil
            health.consecutiveFailures = 0
        }
        self.health[key] = health
    }

    /// Whether `key` is ejected at `now`. Unknown keys are not.
    public func isEjected(key: String, now: UInt64) -> Bool {
        guard let health = self.health[key] else { return false }
        return now < health.ejectedUntil
    }

    /// When `key`'s current ejection ends, nil when it is not ejected at `now`.
    public func ejectedUntil(key: String, now: UInt64) -> UInt64? {
        guard let health = self.health[key], now < health.ejectedUntil else { return nil }
        return health.ejectedUntil
    }

    /// The instances ejected at `now`.
    public func ejected(now: UInt64) -> Set<String> {
        var keys: Set<String> = []
        for (key, health) in self.health where now < health.ejectedUntil {
            keys.insert(key)
        }
        return keys
    }

    /// How many instances are ejected at `now`.
    public func ejectedCount(now: UInt64) -> Int {
        var count = 0
        for health in self.health.values where now < health.ejectedUntil {
            count += 1
        }
        return count
    }

    /// `key`'s current ejection multiplier (after decay at `now`), nil if unknown: the next
    /// ejection lasts baseEjectionTime × (this + 1), capped.
    public func multiplier(key: String, now: UInt64) -> Int? {
        guard var health = self.health[key] else { return nil }
        self.decay(&health, now: now)
        return health.multiplier
    }

    private func mayEjectOneMore(now: UInt64) -> Bool {
        let percent = self.spec.maxEjectionPercent
        guard percent < 100 else { return true }
        return (self.ejectedCount(now: now) + 1) * 100 <= self.health.count * max(0, percent)
    }

    private func decay(_ health: inout Health, now: UInt64) {
        guard health.multiplier > 0, self.baseNanos > 0, now >= health.ejectedUntil, now > health.healthySince else { return }
        let periods = (now - health.healthySince) / self.baseNanos
        guard periods > 0 else { return }
        let steps = Int(min(periods, UInt64(health.multiplier)))
        health.multiplier -= steps
        health.healthySince += UInt64(steps) * self.baseNanos
    }
}

public import MechaCore

#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Picks one instance of an app per call, by the policy of a `LoadBalancerSpec`.
///
/// A pure value: it never reads a clock or a random source of its own. `now` is any monotonic
/// nanosecond counter (e.g. `NIODeadline.now().uptimeNanoseconds`), the same one for every call;
/// randomness comes from the generator passed to `pick`. Keep it inside a `Mutex` and call it from
/// the event loop; `pick` does not allocate.
///
/// Policies:
/// - `roundRobin`: the next available instance in order.
/// - `random`: a uniformly random available instance.
/// - `leastRequest`: power of two choices — two distinct random instances, the one with fewer
///   outstanding calls (`started` minus `finished`) wins.
/// - `peakEWMA` (Finagle / linkerd): power of two choices on cost = latency estimate × (outstanding + 1).
///   The estimate decays towards zero with time constant `decay` (so idle or shunned instances get
///   probed again); an observation above the current estimate replaces it at once (the "peak"), a
///   lower one is blended in by the time elapsed. An instance never observed costs the mean estimate
///   of the observed ones, so new instances are probed without being flooded. A failed call counts
///   as at least `failurePenalty` so a fast-failing instance does not attract traffic. Estimates are
///   floored at 100 µs so long-idle instances still pay for outstanding calls.
/// - `ringHash`: a consistent-hash ring with `virtualNodes` points per instance (FNV-1a 64 with a
///   64-bit finaliser — stable across processes, unlike `Hasher`). The hash key (usually the value
///   of `hashOnHeader`) maps to the first point clockwise; excluded instances are skipped to the
///   next point of another instance. Removing one of n instances moves only its keys (≈ 1/n).
///   A call without a hash key is balanced at random.
///
/// Locality: instances marked preferred in `update(endpoints:preferred:)` (e.g. the same host) are
/// chosen whenever at least one of them is available; the others only when none is.
///
/// Example:
/// ```swift
/// var balancer = Balancer(LoadBalancerSpec(policy: .peakEWMA))
/// balancer.update(endpoints: ["a", "b", "c"])
/// if let key = balancer.pick(now: now, random: &rng, excluding: { tried.contains($0) }) {
///     balancer.started(key: key)
///     // … call it …
///     balancer.finished(key: key, latency: elapsed, success: true, now: later)
/// }
/// ```
public struct Balancer: Sendable {
    /// The balancing policy.
    public let policy: LoadBalancerSpec.Policy
    /// For `ringHash`: the request header whose value the caller passes as `hashKey`.
    public let hashOnHeader: String?
    /// Points per instance on the `ringHash` ring.
    public let virtualNodes: Int
    /// `peakEWMA` decay time constant, nanoseconds.
    let decayNanos: Double
    /// `peakEWMA`: the least latency a failed call counts as, nanoseconds.
    let failurePenaltyNanos: Double

    /// `peakEWMA` estimates never go below this, so cost still grows with outstanding calls.
    static let latencyFloorNanos: Double = 100_000
    /// `peakEWMA` estimate for unobserved instances when none has been observed yet (only relative
    /// costs matter, so any positive value does).
    static let defaultLatencyNanos: Double = 1_000_000
    /// Random draws tried before falling back to a scan when many instances are excluded.
    static let sampleAttempts = 3

    struct Endpoint: Sendable {
        let key: String
        var preferred: Bool
        var outstanding = 0
        /// `peakEWMA` latency estimate (nanoseconds) as of `stamp`; meaningful once `seen`.
        var estimate: Double = 0
        var stamp: UInt64 = 0
        var seen = false

        init(key: String, preferred: Bool) {
            self.key = key
            self.preferred = preferred
        }
    }

    struct RingPoint: Sendable {
        var hash: UInt64
        var position: Int
    }

    enum Tier {
        case preferred
        case all
    }

    private var endpoints: [Endpoint] = []
    private var positions: [String: Int] = [:]
    private var preferredPositions: [Int] = []
    private var ring: [RingPoint] = []
    private var cursor = 0
    private var preferredCursor = 0

    /// A balancer with no instances yet; call `update(endpoints:preferred:)`.
    ///
    /// - Parameters:
    ///   - decay: `peakEWMA` time constant (default 10 s).
    ///   - failurePenalty: `peakEWMA`: a failed call counts as at least this latency (default 100 ms).
    ///   - virtualNodes: `ringHash` points per instance (default 100).
    public init(_ spec: LoadBalancerSpec, decay: Duration = .seconds(10), failurePenalty: Duration = .milliseconds(100), virtualNodes: Int = 100) {
        self.policy = spec.policy
        self.hashOnHeader = spec.hashOnHeader
        self.decayNanos = Double(max(1, decay.unsignedNanoseconds))
        self.failurePenaltyNanos = Double(failurePenalty.unsignedNanoseconds)
        self.virtualNodes = max(1, virtualNodes)
    }

    /// The instances, in the order last given to `update`.
    public var keys: [String] { self.endpoints.map(\.key) }

    /// How many instances there are.
    public var count: Int { self.endpoints.count }

    /// Replaces the instance set. Instances that remain keep their statistics; new ones start
    /// unobserved. Duplicate keys count once. Rebuilds the hash ring (allocates; not per call).
    public mutating func update(endpoints keys: [String], preferred: Set<String> = []) {
        var next: [Endpoint] = []
        next.reserveCapacity(keys.count)
        var nextPositions: [String: Int] = [:]
        nextPositions.reserveCapacity(keys.count)
        for key in keys where nextPositions[key] == nil {
            var endpoint = self.positions[key].map { self.endpoints[$0] } ?? Endpoint(key: key, preferred: false)
            endpoint.preferred = preferred.contains(key)
            nextPositions[key] = next.count
            next.append(endpoint)
        }
        self.endpoints = next
        self.positions = nextPositions
        self.preferredPositions = next.indices.filter { next[$0].preferred }
        if self.policy == .ringHash { self.buildRing() }
    }

    /// Picks an available instance, or nil when every instance is excluded (or there is none).
    ///
    /// - Parameters:
    ///   - now: the current time in nanoseconds (same counter as `finished`).
    ///   - hashKey: for `ringHash`, the value to hash (nil: pick at random). Ignored by other policies.
    ///   - random: the randomness source.
    ///   - isExcluded: instances not to pick now: ejected ones, ones already tried for this call.
    ///     Called at least once per candidate; keep it cheap.
    public mutating func pick(
        now: UInt64,
        hashKey: String? = nil,
        random: inout some RandomNumberGenerator,
        excluding isExcluded: (String) -> Bool = { _ in false }
    ) -> String? {
        guard !self.endpoints.isEmpty else { return nil }
        if self.policy == .ringHash, let hashKey {
            return self.ringPick(StableHash.hash(hashKey), isExcluded).map { self.endpoints[$0].key }
        }
        if !self.preferredPositions.isEmpty, let position = self.pick(in: .preferred, now: now, random: &random, isExcluded) {
            return self.endpoints[position].key
        }
        return self.pick(in: .all, now: now, random: &random, isExcluded).map { self.endpoints[$0].key }
    }

    /// Records that a call to `key` started (counts as outstanding until `finished`). Unknown keys
    /// are ignored.
    public mutating func started(key: String) {
        guard let position = self.positions[key] else { return }
        self.endpoints[position].outstanding += 1
    }

    /// Records that a call to `key` ended after `latency` nanoseconds. Unknown keys (e.g. removed
    /// while the call ran) are ignored.
    public mutating func finished(key: String, latency: UInt64, success: Bool, now: UInt64) {
        guard let position = self.positions[key] else { return }
        self.endpoints[position].outstanding = max(0, self.endpoints[position].outstanding - 1)
        guard self.policy == .peakEWMA else { return }
        var observed = Double(latency)
        if !success { observed = max(observed, self.failurePenaltyNanos) }
        self.observe(position, latency: observed, now: now)
    }

    /// The outstanding calls of `key`, nil if unknown.
    public func outstanding(key: String) -> Int? {
        self.positions[key].map { self.endpoints[$0].outstanding }
    }

    /// The `peakEWMA` latency estimate of `key` at `now` (before the outstanding factor), nil if
    /// unknown or never observed.
    public func latencyEstimate(key: String, now: UInt64) -> Duration? {
        guard let position = self.positions[key], self.endpoints[position].seen else { return nil }
        return .nanoseconds(Int64(self.decayed(self.endpoints[position], now: now)))
    }
}

// MARK: - Picking

extension Balancer {
    private func count(_ tier: Tier) -> Int {
        switch tier {
        case .preferred: self.preferredPositions.count
        case .all: self.endpoints.count
        }
    }

    private func position(_ tier: Tier, _ index: Int) -> Int {
        switch tier {
        case .preferred: self.preferredPositions[index]
        case .all: index
        }
    }

    private mutating func pick(in tier: Tier, now: UInt64, random: inout some RandomNumberGenerator, _ isExcluded: (String) -> Bool) -> Int? {
        switch self.policy {
        case .roundRobin:
            return self.roundRobin(in: tier, isExcluded)
        case .random, .ringHash:
            return self.randomAvailable(in: tier, skipping: nil, random: &random, isExcluded)
        case .leastRequest:
            guard let first = self.randomAvailable(in: tier, skipping: nil, random: &random, isExcluded) else { return nil }
            guard let second = self.randomAvailable(in: tier, skipping: first, random: &random, isExcluded) else { return first }
            return self.endpoints[second].outstanding < self.endpoints[first].outstanding ? second : first
        case .peakEWMA:
            guard let first = self.randomAvailable(in: tier, skipping: nil, random: &random, isExcluded) else { return nil }
            guard let second = self.randomAvailable(in: tier, skipping: first, random: &random, isExcluded) else { return first }
            var neutral: Double?
            let firstCost = self.cost(first, now: now, neutral: &neutral)
            let secondCost = self.cost(second, now: now, neutral: &neutral)
            return secondCost < firstCost ? second : first
        }
    }

    private mutating func roundRobin(in tier: Tier, _ isExcluded: (String) -> Bool) -> Int? {
        let n = self.count(tier)
        var index = (tier == .preferred ? self.preferredCursor : self.cursor) % n
        for _ in 0..<n {
            let position = self.position(tier, index)
            index = index + 1 == n ? 0 : index + 1
            if !isExcluded(self.endpoints[position].key) {
                if tier == .preferred { self.preferredCursor = index } else { self.cursor = index }
                return position
            }
        }
        return nil
    }

    /// A uniformly random available position of `tier` other than `skipped`: a few random draws,
    /// then (when most are excluded) a counting scan so the answer stays uniform and exact.
    private func randomAvailable(in tier: Tier, skipping skipped: Int?, random: inout some RandomNumberGenerator, _ isExcluded: (String) -> Bool) -> Int? {
        let n = self.count(tier)
        for _ in 0..<min(n, Self.sampleAttempts) {
            let position = self.position(tier, Int.random(in: 0..<n, using: &random))
            if position != skipped && !isExcluded(self.endpoints[position].key) { return position }
        }
        var available = 0
        for index in 0..<n {
            let position = self.position(tier, index)
            if position != skipped && !isExcluded(self.endpoints[position].key) { available += 1 }
        }
        guard available > 0 else { return nil }
        var remaining = Int.random(in: 0..<available, using: &random)
        for index in 0..<n {
            let position = self.position(tier, index)
            guard position != skipped && !isExcluded(self.endpoints[position].key) else { continue }
            if remaining == 0 { return position }
            remaining -= 1
        }
        return nil
    }
}

// MARK: - Peak EWMA

extension Balancer {
    private func decayed(_ endpoint: Endpoint, now: UInt64) -> Double {
        guard now > endpoint.stamp else { return endpoint.estimate }
        return max(Self.latencyFloorNanos, endpoint.estimate * exp(-Double(now - endpoint.stamp) / self.decayNanos))
    }

    /// Cost of `position`; decays its estimate in place (as Finagle and tower do on read) so a later
    /// observation blends with the decayed value.
    private mutating func cost(_ position: Int, now: UInt64, neutral: inout Double?) -> Double {
        let outstanding = Double(self.endpoints[position].outstanding + 1)
        guard self.endpoints[position].seen else {
            if neutral == nil { neutral = self.neutralEstimate(now: now) }
            return neutral! * outstanding
        }
        if now > self.endpoints[position].stamp {
            self.endpoints[position].estimate = self.decayed(self.endpoints[position], now: now)
            self.endpoints[position].stamp = now
        }
        return self.endpoints[position].estimate * outstanding
    }

    /// The mean current estimate of the observed instances; O(n), only while some are unobserved.
    private func neutralEstimate(now: UInt64) -> Double {
        var sum = 0.0
        var seen = 0
        for endpoint in self.endpoints where endpoint.seen {
            sum += self.decayed(endpoint, now: now)
            seen += 1
        }
        return seen == 0 ? Self.defaultLatencyNanos : sum / Double(seen)
    }

    private mutating func observe(_ position: Int, latency: Double, now: UInt64) {
        var endpoint = self.endpoints[position]
        let latency = max(Self.latencyFloorNanos, latency)
        let weight = now > endpoint.stamp ? exp(-Double(now - endpoint.stamp) / self.decayNanos) : 1
        if !endpoint.seen || latency > endpoint.estimate * weight {
            // The peak: a slower answer than expected counts in full, at once.
            endpoint.estimate = latency
            endpoint.seen = true
        } else {
            endpoint.estimate = endpoint.estimate * weight + latency * (1 - weight)
        }
        endpoint.stamp = max(endpoint.stamp, now)
        self.endpoints[position] = endpoint
    }
}

// MARK: - Ring hash

extension Balancer {
    private mutating func buildRing() {
        var ring: [RingPoint] = []
        ring.reserveCapacity(self.endpoints.count * self.virtualNodes)
        for (position, endpoint) in self.endpoints.enumerated() {
            let base = StableHash.fnv1a(endpoint.key)
            for node in 0..<self.virtualNodes {
                ring.append(RingPoint(hash: StableHash.point(base, node: UInt64(node)), position: position))
            }
        }
        // Ties (vanishingly rare) are broken by key so the ring does not depend on input order.
        let endpoints = self.endpoints
        ring.sort { $0.hash != $1.hash ? $0.hash < $1.hash : endpoints[$0.position].key < endpoints[$1.position].key }
        self.ring = ring
    }

    /// The first point at or after `hash` (wrapping) whose instance is available; preferred
    /// instances first when there are any.
    private func ringPick(_ hash: UInt64, _ isExcluded: (String) -> Bool) -> Int? {
        let ring = self.ring
        guard !ring.isEmpty else { return nil }
        var low = 0
        var high = ring.count
        while low < high {
            let mid = (low + high) / 2
            if ring[mid].hash < hash { low = mid + 1 } else { high = mid }
        }
        let wantPreferred = !self.preferredPositions.isEmpty
        var fallback: Int?
        var previous = -1
        var index = low == ring.count ? 0 : low
        for _ in 0..<ring.count {
            let position = ring[index].position
            index = index + 1 == ring.count ? 0 : index + 1
            // Consecutive points of one instance need one check.
            guard position != previous else { continue }
            previous = position
            let endpoint = self.endpoints[position]
            guard !isExcluded(endpoint.key) else { continue }
            if !wantPreferred || endpoint.preferred { return position }
            if fallback == nil { fallback = position }
        }
        return fallback
    }
}

/// FNV-1a 64 followed by the MurmurHash3 finaliser: stable across processes and platforms.
enum StableHash {
    static let offset: UInt64 = 0xcbf2_9ce4_8422_2325
    static let prime: UInt64 = 0x0000_0100_0000_01b3

    static func fnv1a(_ string: String) -> UInt64 {
        var hash = offset
        for byte in string.utf8 {
            hash = (hash ^ UInt64(byte)) &* prime
        }
        return hash
    }

    static func hash(_ string: String) -> UInt64 {
        mix(fnv1a(string))
    }

    /// The `node`-th ring point of an instance whose key hashed (FNV-1a, unmixed) to `base`.
    static func point(_ base: UInt64, node: UInt64) -> UInt64 {
        var hash = base
        var value = node
        for _ in 0..<8 {
            hash = (hash ^ (value & 0xff)) &* prime
            value >>= 8
        }
        return mix(hash)
    }

    static func mix(_ value: UInt64) -> UInt64 {
        var x = value
        x ^= x >> 33
        x &*= 0xff51_afd7_ed55_8ccd
        x ^= x >> 33
        x &*= 0xc4ce_b9fe_1a85_ec53
        x ^= x >> 33
        return x
    }
}

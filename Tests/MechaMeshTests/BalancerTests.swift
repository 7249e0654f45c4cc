import MechaCore
@testable import MechaMesh
import Testing

@Suite("Balancer")
struct BalancerTests {
    static func balancer(_ policy: LoadBalancerSpec.Policy, _ keys: [String], preferred: Set<String> = []) -> Balancer {
        var balancer = Balancer(LoadBalancerSpec(policy: policy))
        balancer.update(endpoints: keys, preferred: preferred)
        return balancer
    }

    /// Picks `count` times (starting and at once finishing nothing) and counts the choices.
    static func tally(_ balancer: inout Balancer, _ count: Int, seed: UInt64 = 1, hashKey: (Int) -> String? = { _ in nil }, excluding: Set<String> = []) -> [String: Int] {
        var rng = SplitMix64(seed: seed)
        var counts: [String: Int] = [:]
        for i in 0..<count {
            let key = balancer.pick(now: VirtualTime.origin, hashKey: hashKey(i), random: &rng) { excluding.contains($0) }
            counts[key ?? "<none>", default: 0] += 1
        }
        return counts
    }

    // MARK: Round robin

    @Test func roundRobinCyclesInOrder() {
        var balancer = Self.balancer(.roundRobin, ["a", "b", "c"])
        var rng = SplitMix64(seed: 1)
        let picks = (0..<7).map { _ in balancer.pick(now: 0, random: &rng) }
        #expect(picks == ["a", "b", "c", "a", "b", "c", "a"])
    }

    @Test func roundRobinSkipsExcludedAndKeepsItsPlace() {
        var balancer = Self.balancer(.roundRobin, ["a", "b", "c"])
        var rng = SplitMix64(seed: 1)
        let picks = (0..<4).map { _ in balancer.pick(now: 0, random: &rng) { $0 == "b" } }
        #expect(picks == ["a", "c", "a", "c"])
        #expect(balancer.pick(now: 0, random: &rng) == "a")
        #expect(balancer.pick(now: 0, random: &rng) == "b")
    }

    // MARK: Random

    @Test func randomCoversAllEvenly() {
        var balancer = Self.balancer(.random, ["a", "b", "c", "d", "e"])
        let counts = Self.tally(&balancer, 10_000)
        #expect(counts.keys.sorted() == ["a", "b", "c", "d", "e"])
        for (key, count) in counts {
            #expect((1_800...2_200).contains(count), "\(key): \(count)")
        }
    }

    // MARK: Least request

    @Test func leastRequestPicksTheLessBusyOfTwo() {
        var balancer = Self.balancer(.leastRequest, ["a", "b"])
        for _ in 0..<3 { balancer.started(key: "a") }
        #expect(Self.tally(&balancer, 100) == ["b": 100])
        for _ in 0..<3 { balancer.finished(key: "a", latency: 1_000, success: true, now: 0) }
        for _ in 0..<2 { balancer.started(key: "b") }
        #expect(Self.tally(&balancer, 100) == ["a": 100])
        #expect(balancer.outstanding(key: "a") == 0)
        #expect(balancer.outstanding(key: "b") == 2)
    }

    @Test func leastRequestFavoursTheIdleOneAmongMany() {
        var balancer = Self.balancer(.leastRequest, ["a", "b", "c"])
        for _ in 0..<5 {
            balancer.started(key: "a")
            balancer.started(key: "b")
        }
        // c wins whenever it is one of the two candidates: 2/3 of the time.
        let counts = Self.tally(&balancer, 3_000)
        #expect((1_850...2_150).contains(counts["c"] ?? 0), "\(counts)")
    }

    @Test func leastRequestKeepsOutstandingLevel() {
        var balancer = Self.balancer(.leastRequest, ["a", "b", "c", "d"])
        var rng = SplitMix64(seed: 7)
        for _ in 0..<400 {
            let key = balancer.pick(now: 0, random: &rng)!
            balancer.started(key: key)
        }
        let levels = ["a", "b", "c", "d"].map { balancer.outstanding(key: $0)! }
        #expect(levels.max()! - levels.min()! <= 3, "\(levels)")
    }

    // MARK: Peak EWMA

    /// An open-loop simulation: a call arrives every `gap` ms, each finishing after the latency of the
    /// instance it went to. Returns the picks per instance during `[measureFrom, end)`.
    struct Simulation {
        var balancer: Balancer
        var rng = SplitMix64(seed: 42)
        var now: UInt64 = VirtualTime.origin
        var inFlight: [(end: UInt64, key: String, latency: UInt64)] = []

        mutating func run(seconds: Double, gapMs: Double = 2, latencyMs: (String) -> Double) -> [String: Int] {
            var counts: [String: Int] = [:]
            let gap = UInt64(gapMs * 1_000_000)
            let end = self.now + UInt64(seconds * 1_000_000_000)
            while self.now < end {
                self.inFlight.sort { $0.end < $1.end }
                while let first = self.inFlight.first, first.end <= self.now {
                    self.balancer.finished(key: first.key, latency: first.latency, success: true, now: first.end)
                    self.inFlight.removeFirst()
                }
                let key = self.balancer.pick(now: self.now, random: &self.rng)!
                self.balancer.started(key: key)
                let latency = UInt64(latencyMs(key) * 1_000_000)
                self.inFlight.append((self.now + latency, key, latency))
                counts[key, default: 0] += 1
                self.now += gap
            }
            return counts
        }
    }

    @Test func peakEWMAShunsASlowInstanceAndTakesItBackWhenFast() {
        var simulation = Simulation(balancer: Self.balancer(.peakEWMA, ["a", "b", "c", "d"]))
        _ = simulation.run(seconds: 10) { $0 == "d" ? 51 : 1 }
        let slow = simulation.run(seconds: 20) { $0 == "d" ? 51 : 1 }
        let slowShare = Double(slow["d", default: 0]) / Double(slow.values.reduce(0, +))
        #expect(slowShare < 0.10, "\(slow)")
        #expect(simulation.balancer.latencyEstimate(key: "a", now: simulation.now)! < .milliseconds(2))

        // d is fast again: its estimate decays until it is probed, then it gets its share back.
        _ = simulation.run(seconds: 60) { _ in 1 }
        let recovered = simulation.run(seconds: 20) { _ in 1 }
        let recoveredShare = Double(recovered["d", default: 0]) / Double(recovered.values.reduce(0, +))
        #expect(recoveredShare > 0.18, "\(recovered)")
    }

    @Test func peakEWMAPeakReplacesAndDecays() {
        var balancer = Self.balancer(.peakEWMA, ["a"])
        let t0 = VirtualTime.origin
        balancer.finished(key: "a", latency: 1_000_000, success: true, now: t0)
        #expect(balancer.latencyEstimate(key: "a", now: t0) == .milliseconds(1))
        // A slower answer replaces the estimate at once.
        balancer.finished(key: "a", latency: 50_000_000, success: true, now: t0)
        #expect(balancer.latencyEstimate(key: "a", now: t0) == .milliseconds(50))
        // One time constant later it has decayed to 1/e.
        let later = balancer.latencyEstimate(key: "a", now: t0 + 10_000_000_000)!
        #expect(later > .milliseconds(18) && later < .milliseconds(19))
        // A failure counts as at least the failure penalty.
        balancer.finished(key: "a", latency: 1_000, success: false, now: t0)
        #expect(balancer.latencyEstimate(key: "a", now: t0) == .milliseconds(100))
    }

    @Test func peakEWMAProbesANewInstanceWithoutFloodingIt() {
        var balancer = Self.balancer(.peakEWMA, ["a", "b"])
        let t0 = VirtualTime.origin
        balancer.finished(key: "a", latency: 5_000_000, success: true, now: t0)
        balancer.finished(key: "b", latency: 5_000_000, success: true, now: t0)
        balancer.update(endpoints: ["a", "b", "new"])
        var rng = SplitMix64(seed: 3)
        var toNew = 0
        // Calls that have not answered yet: the new instance takes its share, then pays for it.
        for _ in 0..<30 {
            let key = balancer.pick(now: t0, random: &rng)!
            balancer.started(key: key)
            if key == "new" { toNew += 1 }
        }
        #expect((5...15).contains(toNew), "\(toNew)")
        #expect(balancer.latencyEstimate(key: "new", now: t0) == nil)
    }

    // MARK: Ring hash

    static let ringKeys = ["a", "b", "c", "d", "e"]

    static func owners(_ balancer: inout Balancer, keys: Int = 2_000, excluding: Set<String> = []) -> [String] {
        var rng = SplitMix64(seed: 9)
        return (0..<keys).map { i in balancer.pick(now: 0, hashKey: "user-\(i)", random: &rng) { excluding.contains($0) }! }
    }

    @Test func ringHashSendsTheSameKeyToTheSameInstance() {
        var balancer = Self.balancer(.ringHash, Self.ringKeys)
        let first = Self.owners(&balancer)
        #expect(Self.owners(&balancer) == first)
        // Independent of the order the instances were listed in.
        var shuffled = Self.balancer(.ringHash, Self.ringKeys.reversed())
        #expect(Self.owners(&shuffled) == first)
        // Spread: each instance owns a fair part.
        for key in Self.ringKeys {
            let share = Double(first.filter { $0 == key }.count) / Double(first.count)
            #expect(share > 0.12 && share < 0.28, "\(key): \(share)")
        }
    }

    @Test func ringHashRemovingAnInstanceMovesOnlyItsKeys() {
        var balancer = Self.balancer(.ringHash, Self.ringKeys)
        let before = Self.owners(&balancer)
        balancer.update(endpoints: ["a", "b", "d", "e"])
        let after = Self.owners(&balancer)
        var moved = 0
        for (old, new) in zip(before, after) where old != new {
            #expect(old == "c")
            moved += 1
        }
        #expect(moved == before.filter { $0 == "c" }.count)
        let share = Double(moved) / Double(before.count)
        #expect(share > 0.12 && share < 0.28)
        // Adding it back restores the original mapping.
        balancer.update(endpoints: Self.ringKeys)
        #expect(Self.owners(&balancer) == before)
    }

    @Test func ringHashSkipsExcludedToTheNextInstance() {
        var balancer = Self.balancer(.ringHash, Self.ringKeys)
        let before = Self.owners(&balancer)
        let excluded = Self.owners(&balancer, excluding: ["c"])
        for (old, new) in zip(before, excluded) {
            #expect(new != "c")
            if old != "c" { #expect(new == old) }
        }
        // Same as if c were gone.
        balancer.update(endpoints: ["a", "b", "d", "e"])
        #expect(Self.owners(&balancer) == excluded)
    }

    @Test func ringHashWithoutAKeyFallsBackToRandom() {
        var balancer = Self.balancer(.ringHash, Self.ringKeys)
        let counts = Self.tally(&balancer, 5_000)
        #expect(counts.count == 5)
        #expect(counts.values.allSatisfy { (800...1_200).contains($0) }, "\(counts)")
    }

    @Test func stableHashIsFNV1a() {
        #expect(StableHash.fnv1a("") == 0xcbf2_9ce4_8422_2325)
        #expect(StableHash.fnv1a("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(StableHash.fnv1a("foobar") == 0x8594_4171_f739_67e8)
    }

    // MARK: Exclusion and locality

    @Test(arguments: LoadBalancerSpec.Policy.allCases)
    func exclusionLeavesOnlyTheRest(policy: LoadBalancerSpec.Policy) {
        var balancer = Self.balancer(policy, ["a", "b", "c", "d"])
        let one = Self.tally(&balancer, 200, hashKey: { "k\($0)" }, excluding: ["a", "b", "d"])
        #expect(one == ["c": 200])
        let two = Self.tally(&balancer, 400, hashKey: { "k\($0)" }, excluding: ["a", "b"])
        #expect(Set(two.keys) == ["c", "d"])
        let none = Self.tally(&balancer, 10, hashKey: { "k\($0)" }, excluding: ["a", "b", "c", "d"])
        #expect(none == ["<none>": 10])
    }

    @Test(arguments: LoadBalancerSpec.Policy.allCases)
    func localityPrefersTheSameHostAndFailsOver(policy: LoadBalancerSpec.Policy) {
        var balancer = Self.balancer(policy, ["remote1", "local1", "remote2", "local2"], preferred: ["local1", "local2"])
        let local = Self.tally(&balancer, 400, hashKey: { "k\($0)" })
        #expect(Set(local.keys) == ["local1", "local2"])
        let oneLocal = Self.tally(&balancer, 100, hashKey: { "k\($0)" }, excluding: ["local1"])
        #expect(oneLocal == ["local2": 100])
        let failover = Self.tally(&balancer, 400, hashKey: { "k\($0)" }, excluding: ["local1", "local2"])
        #expect(Set(failover.keys) == ["remote1", "remote2"])
    }

    @Test func emptyBalancerPicksNothing() {
        var balancer = Balancer(LoadBalancerSpec())
        var rng = SplitMix64(seed: 1)
        #expect(balancer.pick(now: 0, random: &rng) == nil)
        balancer.started(key: "ghost")
        balancer.finished(key: "ghost", latency: 1, success: true, now: 0)
        #expect(balancer.outstanding(key: "ghost") == nil)
    }

    @Test func updateKeepsStatsOfRemainingInstances() {
        var balancer = Self.balancer(.leastRequest, ["a", "b"])
        balancer.started(key: "a")
        balancer.update(endpoints: ["c", "a", "a"])
        #expect(balancer.keys == ["c", "a"])
        #expect(balancer.outstanding(key: "a") == 1)
        #expect(balancer.outstanding(key: "c") == 0)
        #expect(balancer.outstanding(key: "b") == nil)
    }
}

@testable import MechaAPI
import MechaCore
import MechaEmbedded
import Synchronization
import Testing

@Suite struct ActorTurnsTests {
    @Test func oneTurnAtATimeInArrivalOrder() async throws {
        let turns = ActorTurns()
        let order = Locked<[Int]>([])
        let inside = Locked(0)
        let maximum = Locked(0)
        await withThrowingTaskGroup(of: Void.self) { group in
            for n in 0..<20 {
                group.addTask {
                    try await turns.enter(chain: nil, maxStackDepth: 32)
                    inside.value.withLock { value in
                        value += 1
                        maximum.value.withLock { $0 = max($0, value) }
                    }
                    order.value.withLock { $0.append(n) }
                    try await Task.sleep(for: .milliseconds(1))
                    inside.value.withLock { $0 -= 1 }
                    turns.leave()
                }
                try? await Task.sleep(for: .milliseconds(2))
            }
        }
        #expect(maximum.value.withLock { $0 } == 1)
        #expect(order.value.withLock { $0 }.count == 20)
        #expect(turns.isIdle)
    }

    @Test func reentrancyByChainWithADepthLimit() async throws {
        let turns = ActorTurns()
        try await turns.enter(chain: "a", maxStackDepth: 2)
        try await turns.enter(chain: "a", maxStackDepth: 2)
        await #expect(throws: ActorTurns.Refusal.stackDepth(2)) { try await turns.enter(chain: "a", maxStackDepth: 2) }
        // Another chain waits until both nested turns ended.
        let entered = Locked(false)
        let other = Task {
            try await turns.enter(chain: "b", maxStackDepth: 2)
            entered.value.withLock { $0 = true }
            turns.leave()
        }
        try await Task.sleep(for: .milliseconds(30))
        #expect(!entered.value.withLock { $0 })
        turns.leave()
        try await Task.sleep(for: .milliseconds(30))
        #expect(!entered.value.withLock { $0 })
        turns.leave()
        try await other.value
        #expect(entered.value.withLock { $0 })
    }

    @Test func retiringRefusesWaitersAndNewCalls() async throws {
        let turns = ActorTurns()
        try await turns.enter(chain: nil, maxStackDepth: 32)
        let waiter = Task { () -> ActorTurns.Refusal? in
            do {
                try await turns.enter(chain: nil, maxStackDepth: 32)
                return nil
            } catch {
                return error as? ActorTurns.Refusal
            }
        }
        try await Task.sleep(for: .milliseconds(20))
        turns.retire()
        #expect(await waiter.value == .retired)
        turns.leave()
        await #expect(throws: ActorTurns.Refusal.retired) { try await turns.enter(chain: nil, maxStackDepth: 32) }
        #expect(!turns.retireIfIdle())
    }
}

@Suite struct ActorAppConfigTests {
    @Test func readsTheSDKsDocument() throws {
        let text = #"{"actorIdleTimeout":"1h0m0s0ms0\u03bcs","actorScanInterval":"0h0m30s0ms0\u03bcs","drainRebalancedActors":true,"entitiesConfig":[{"entities":["DemoActor"],"reentrancy":{"enabled":true,"maxStackDepth":32}}],"entities":["DemoActor","Other"]}"#
        let (config, warnings) = ActorAppConfig.parse(try JSONValue(parsing: text))
        #expect(warnings.isEmpty)
        #expect(config.entities == ["DemoActor", "Other"])
        #expect(config.idleTimeout == .seconds(3600) && config.scanInterval == .seconds(30))
        #expect(config.settings(for: "DemoActor").reentrancy)
        #expect(!config.settings(for: "Other").reentrancy)
        let (defaults, bad) = ActorAppConfig.parse(try JSONValue(parsing: #"{"entities":["A"],"actorIdleTimeout":"forever","reentrancy":{"enabled":true,"maxStackDepth":4}}"#))
        #expect(defaults.idleTimeout == .seconds(3600) && bad.count == 1)
        #expect(defaults.settings(for: "A").reentrancy && defaults.settings(for: "A").maxStackDepth == 4)
    }
}

/// Membership in memory, shared by several placements (as sidecars share mecha.db).
final class MemoryMembership: ActorMembershipStore {
    let rows = Mutex<[String: ActorMember]>([:])
    let failing = Mutex<Set<String>>([])

    func renew(_ host: ActorHost, appliedVersion: String, leaseUntil: Int64) async throws -> [ActorMember] {
        if self.failing.withLock({ $0.contains(host.instanceID) }) { throw CancellationError() }
        self.rows.withLock { $0[host.instanceID] = ActorMember(host: host, appliedVersion: appliedVersion, leaseUntil: leaseUntil) }
        return try await self.members()
    }

    func members() async throws -> [ActorMember] {
        let now = WallClock.now().unixMilliseconds
        return self.rows.withLock { rows in rows.values.filter { $0.leaseUntil >= now }.sorted { $0.host.instanceID < $1.host.instanceID } }
    }

    func leave(instanceID: String) async throws { _ = self.rows.withLock { $0.removeValue(forKey: instanceID) } }
}

@Suite struct ActorPlacementTests {
    func host(_ n: Int) -> ActorHost {
        ActorHost(instanceID: "i\(n)", appID: "app", namespace: "default", host: "127.0.0.1", internalPort: 1000 + n, mtls: false, types: ["T"])
    }

    /// Each placement "hosts" a set of actor ids; `apply` drops those the table moved away. At every
    /// moment, an actor a placement would serve (settled, owned) is held by no other.
    @Test func settlesWithoutTwoOwnersWhileMembersJoinAndLeave() async throws {
        let store = MemoryMembership()
        let placements = (0..<3).map { _ in ActorPlacement(store: store, lease: .seconds(2), renewInterval: .milliseconds(20)) }
        let held = (0..<3).map { _ in HeldIDs() }
        let stops = (0..<3).map { _ in StopSignal() }
        let violations = Locked(0)
        let ids = (0..<200).map { "a\($0)" }
        let done = StopSignal()
        await withTaskGroup(of: Void.self) { group in
            for n in 0..<3 {
                group.addTask {
                    if n > 0 { try? await Task.sleep(for: .milliseconds(150 * n)) }
                    await placements[n].run(
                        host: self.host(n), until: stops[n],
                        apply: { table in held[n].ids.withLock { $0 = $0.filter { table.host(type: "T", id: $0)?.instanceID == "i\(n)" } } },
                        surrender: { held[n].ids.withLock { $0 = [] } })
                }
            }
            // Activate actors the way a sidecar does: only under a settled table it owns them in.
            group.addTask {
                while !done.isStopped {
                    for n in 0..<3 where placements[n].isSettled && placements[n].holdsLease() {
                        let table = placements[n].table
                        for id in ids where table.host(type: "T", id: id)?.instanceID == "i\(n)" {
                            let others = (0..<3).filter { $0 != n }.contains { held[$0].ids.withLock { $0.contains(id) } }
                            if others { violations.value.withLock { $0 += 1 } }
                            held[n].ids.withLock { _ = $0.insert(id) }
                        }
                    }
                    try? await Task.sleep(for: .milliseconds(5))
                }
            }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(700))
                stops[1].stop()  // a member leaves
                try? await Task.sleep(for: .milliseconds(500))
                done.stop()
                stops[0].stop()
                stops[2].stop()
            }
        }
        #expect(violations.value.withLock { $0 } == 0)
    }

    @Test func aMemberThatCannotRenewSurrendersBeforeItsLeaseRunsOut() async throws {
        let store = MemoryMembership()
        let placement = ActorPlacement(store: store, lease: .milliseconds(800), renewInterval: .milliseconds(20))
        let stop = StopSignal()
        let surrendered = Locked<ContinuousClock.Instant?>(nil)
        let task = Task {
            await placement.run(host: self.host(1), until: stop, apply: { _ in }, surrender: { surrendered.value.withLock { $0 = .now } })
        }
        while !placement.isSettled { try await Task.sleep(for: .milliseconds(10)) }
        store.failing.withLock { _ = $0.insert("i1") }
        // Whatever the scheduler does, the member no longer serves once its lease (less the
        // margin) has run since the last renewal, which was before the cut.
        try await Task.sleep(for: .milliseconds(800))
        #expect(!placement.holdsLease())
        let deadline = ContinuousClock.now + .seconds(10)
        while surrendered.value.withLock({ $0 }) == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(surrendered.value.withLock { $0 } != nil)
        stop.stop()
        await task.value
    }

    @Test func sqliteMembershipSharedByTwoSidecars() async throws {
        let path = "/tmp/mecha-actor-membership-\(RandomID.uuid()).db"
        let first = try await SQLiteActorMembership(path: path)
        let second = try await SQLiteActorMembership(path: path)
        let now = WallClock.now().unixMilliseconds
        _ = try await first.renew(self.host(1), appliedVersion: "v", leaseUntil: now + 5000)
        let members = try await second.renew(self.host(2), appliedVersion: "", leaseUntil: now + 5000)
        #expect(members.map(\.host.instanceID) == ["i1", "i2"])
        #expect(members[0].appliedVersion == "v" && members[0].host.types == ["T"])
        // An expired lease is not a member.
        _ = try await first.renew(self.host(1), appliedVersion: "v", leaseUntil: now - 1)
        #expect(try await second.members().map(\.host.instanceID) == ["i2"])
        try await second.leave(instanceID: "i2")
        #expect(try await first.members().isEmpty)
    }
}

final class HeldIDs: Sendable {
    let ids = Mutex<Set<String>>([])
}

final class Locked<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
}

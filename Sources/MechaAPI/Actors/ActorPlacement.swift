public import MechaCore
import Synchronization

/// This sidecar's view of actor placement, kept from a membership store.
///
/// Every host renews a lease in the store and publishes which table version it has applied. A
/// table is *settled* when every live member has applied it: each has deactivated the actors the
/// table gives to another. A host serves an actor only under a settled table, so an actor is
/// never active in two places — not while members join or leave. A host that cannot renew its
/// lease stops serving its actors before the lease can run out for the others.
public final class ActorPlacement: Sendable {
    let store: any ActorMembershipStore
    /// How long a renewed membership lasts without another renewal.
    public let lease: Duration
    /// How often members renew (and everyone reads the table).
    public let renewInterval: Duration
    /// A host stops serving this long before its lease would run out for the others.
    let safetyMargin: Duration

    struct State {
        var table = PlacementTable.empty
        var members: [ActorMember] = []
        var settled = false
        var applied = ""
        var lastRenewed: ContinuousClock.Instant?
        var connected = false
        /// A caller asked for the table (sidecars without actors of their own start reading then).
        var demanded = false
        /// The sidecar stopped: lookups fail at once.
        var stopped = false
    }

    private let state = Mutex(State())
    private let demand = Doorbell()

    public init(store: any ActorMembershipStore, lease: Duration = .seconds(5), renewInterval: Duration = .milliseconds(500)) {
        self.store = store
        self.lease = lease
        self.renewInterval = renewInterval
        self.safetyMargin = min(.seconds(1), lease / 4)
    }

    /// The current table (settled or not).
    public var table: PlacementTable { self.state.withLock { $0.table } }
    /// Whether the last read or renewal reached the store.
    public var isConnected: Bool { self.state.withLock { $0.connected } }
    public var isSettled: Bool { self.state.withLock { $0.settled } }

    /// Whether this host's own lease is certainly still running for every other member.
    public func holdsLease(now: ContinuousClock.Instant = .now) -> Bool {
        self.state.withLock { state in
            guard let renewed = state.lastRenewed else { return false }
            return now < renewed + self.lease - self.safetyMargin
        }
    }

    /// The host of actor `id` of `type` under a settled table, waiting for one at most
    /// `timeout`; nil when no member hosts the type. Throws when no settled table came in time.
    public func lookup(type: String, id: String, timeout: Duration) async throws(PlacementUnavailable) -> ActorHost? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let (settled, table, demanded, stopped) = self.state.withLock { state -> (Bool, PlacementTable, Bool, Bool) in
                defer { state.demanded = true }
                return (state.settled, state.table, state.demanded, state.stopped)
            }
            if stopped { throw PlacementUnavailable(table: .empty) }
            if !demanded { self.demand.ring() }
            if settled { return table.host(type: type, id: id) }
            guard ContinuousClock.now < deadline else { throw PlacementUnavailable(table: table) }
            await self.waitForChange(until: deadline)
        }
    }

    /// Returns soon after the table or its settlement changes, or at `deadline` (lookups wait
    /// only while a table settles: polling is cheap and cannot lose a wake-up).
    func waitForChange(until deadline: ContinuousClock.Instant) async {
        try? await Task.sleep(until: min(deadline, .now + .milliseconds(20)))
    }

    /// Keeps membership until `stop`: `host` (nil: this sidecar hosts no actors and only reads the
    /// table once asked). On a new table a host first runs `apply` (deactivating the actors that
    /// moved away), then publishes that it applied it; on losing its lease it runs `surrender`.
    /// On stop, a host runs `apply` with an empty table, then leaves.
    public func run(
        host: ActorHost?,
        until stop: StopSignal,
        apply: @escaping @Sendable (PlacementTable) async -> Void,
        surrender: @escaping @Sendable () async -> Void
    ) async {
        await self.run(hostedBy: { host }, until: stop, apply: apply, surrender: surrender)
    }

    /// As `run(host:…)`, with the host asked before every renewal: an app that starts hosting
    /// later (a gRPC actor stream registering) joins then, one that stops leaves.
    public func run(
        hostedBy host: @escaping @Sendable () -> ActorHost?,
        until stop: StopSignal,
        apply: @escaping @Sendable (PlacementTable) async -> Void,
        surrender: @escaping @Sendable () async -> Void
    ) async {
        var hosting: ActorHost?
        while !stop.isStopped {
            let current = host()
            if let previous = hosting, current?.instanceID != previous.instanceID || current == nil {
                // The app stopped hosting: its actors go, then the membership.
                await apply(PlacementTable.empty)
                try? await self.store.leave(instanceID: previous.instanceID)
                self.state.withLock { state in
                    state.applied = ""
                    state.lastRenewed = nil
                }
            }
            hosting = current
            if current == nil, !self.state.withLock({ $0.demanded }) {
                // Read the table only once someone calls an actor.
                await self.demand.wait(timeout: .milliseconds(500))
                continue
            }
            let changed = await self.step(host: current, apply: apply, surrender: surrender)
            if changed { continue }  // publish the applied version at once
            if await stop.sleep(for: self.renewInterval) { break }
        }
        self.state.withLock { $0.stopped = true }
        if let hosting {
            await apply(PlacementTable.empty)
            try? await self.store.leave(instanceID: hosting.instanceID)
        }
        self.state.withLock { state in
            state.table = .empty
            state.settled = false
            state.connected = false
        }
    }

    /// One renewal (or read). True when a new table was applied and should be published.
    func step(host: ActorHost?, apply: @Sendable (PlacementTable) async -> Void, surrender: @Sendable () async -> Void) async -> Bool {
        let started = ContinuousClock.now
        let members: [ActorMember]
        do {
            if let host {
                let applied = self.state.withLock { $0.applied }
                let leaseUntil = WallClock.now().unixMilliseconds + self.lease.milliseconds
                members = try await self.store.renew(host, appliedVersion: applied, leaseUntil: leaseUntil)
                self.state.withLock { $0.lastRenewed = started }
            } else {
                members = try await self.store.members()
            }
        } catch {
            let lost = host != nil && !self.holdsLease()
            let hadTable = self.state.withLock { state -> Bool in
                state.connected = false
                guard lost else { return false }
                defer {
                    state.table = .empty
                    state.settled = false
                    state.applied = ""
                }
                return !state.table.hosts.isEmpty
            }
            if lost && hadTable { await surrender() }
            return false
        }
        let table = PlacementTable(hosts: members.map(\.host))
        let isNew = self.state.withLock { state -> Bool in
            state.connected = true
            state.members = members
            guard table.version != state.table.version else { return false }
            state.table = table
            state.settled = false
            return true
        }
        if isNew, host != nil {
            await apply(table)
            self.state.withLock { $0.applied = table.version }
            return true
        }
        let settled = self.state.withLock { state -> Bool in
            let settled = state.members.allSatisfy { $0.appliedVersion == state.table.version }
            let changed = settled != state.settled
            state.settled = settled
            return changed
        }
        _ = settled
        return false
    }
}

/// No settled placement table in time (members are joining, leaving, or the store is away).
public struct PlacementUnavailable: Error, Sendable, CustomStringConvertible {
    public var table: PlacementTable
    public var description: String {
        self.table.hosts.isEmpty ? "placement: no table yet (the membership store is unreachable or no actor host is up)" : "placement: the table is being rebalanced"
    }
}

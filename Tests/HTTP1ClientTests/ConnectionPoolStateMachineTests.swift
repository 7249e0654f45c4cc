import Testing

@testable import HTTP1Client

@Suite("ConnectionPoolStateMachine")
struct ConnectionPoolStateMachineTests {
    typealias Machine = ConnectionPoolStateMachine

    static let a = Machine.Key(host: "127.0.0.1", port: 8080, tls: false)
    static let b = Machine.Key(host: "127.0.0.1", port: 9090, tls: false)
    static let t0 = ContinuousClock.now

    /// Leases a new connection for `waiter` and establishes it; returns its id.
    static func connected(_ machine: inout Machine, _ key: Machine.Key = a, waiter: Int) -> Int {
        guard case .connect(let id) = machine.leaseRequested(key, waiter: waiter) else {
            Issue.record("expected .connect")
            return -1
        }
        #expect(machine.connectionEstablished(id, now: Self.t0) == .handOver(to: waiter))
        return id
    }

    static func state(_ machine: Machine, _ id: Int) -> Machine.ConnectionState? {
        machine.connections[id]?.state
    }

    @Test func keyDescription() {
        #expect(Self.a.description == "http://127.0.0.1:8080")
        #expect(Machine.Key(host: "h", port: 443, tls: true).description == "https://h:443")
    }

    @Test func keyDescriptionBracketsIPv6() {
        #expect(Machine.Key(host: "::1", port: 8443, tls: true).description == "https://[::1]:8443")
    }

    @Test func httpAndHTTPSToOneHostAndPortArePooledApart() {
        var machine = Machine(maxConnectionsPerKey: 1)
        let plain = Self.connected(&machine, Self.a, waiter: 1)
        #expect(machine.connectionReleased(plain, reusable: true, now: Self.t0) == .park)
        // The idle plain connection is not offered for https, and the limit is counted per scheme.
        let secure = Machine.Key(host: Self.a.host, port: Self.a.port, tls: true)
        #expect(machine.leaseRequested(secure, waiter: 2) == .connect(plain + 1))
        #expect(machine.leaseRequested(Self.a, waiter: 3) == .use(plain))
    }

    @Test func connectsWhenBelowTheLimit() {
        var machine = Machine(maxConnectionsPerKey: 2)
        #expect(machine.leaseRequested(Self.a, waiter: 1) == .connect(1))
        #expect(Self.state(machine, 1) == .connecting(for: 1))
        #expect(machine.leaseRequested(Self.a, waiter: 2) == .connect(2))
        #expect(machine.leaseRequested(Self.a, waiter: 3) == .wait)
        // Another key has its own limit.
        #expect(machine.leaseRequested(Self.b, waiter: 4) == .connect(3))
    }

    @Test func limitBelowOneMeansOne() {
        var machine = Machine(maxConnectionsPerKey: 0)
        #expect(machine.maxConnectionsPerKey == 1)
        #expect(machine.leaseRequested(Self.a, waiter: 1) == .connect(1))
        #expect(machine.leaseRequested(Self.a, waiter: 2) == .wait)
    }

    @Test func establishedHandsOverToItsWaiter() {
        var machine = Machine(maxConnectionsPerKey: 1)
        let id = Self.connected(&machine, waiter: 7)
        #expect(Self.state(machine, id) == .leased)
    }

    @Test func leaseFromIdle() {
        var machine = Machine(maxConnectionsPerKey: 4)
        let id = Self.connected(&machine, waiter: 1)
        #expect(machine.connectionReleased(id, reusable: true, now: Self.t0) == .park)
        #expect(Self.state(machine, id) == .idle(since: Self.t0))
        #expect(machine.leaseRequested(Self.a, waiter: 2) == .use(id))
        #expect(Self.state(machine, id) == .leased)
        // No idle left: the next caller connects.
        #expect(machine.leaseRequested(Self.a, waiter: 3) == .connect(id + 1))
    }

    @Test func idleConnectionsOfOtherKeysAreNotUsed() {
        var machine = Machine(maxConnectionsPerKey: 4)
        let id = Self.connected(&machine, Self.a, waiter: 1)
        _ = machine.connectionReleased(id, reusable: true, now: Self.t0)
        guard case .connect = machine.leaseRequested(Self.b, waiter: 2) else {
            Issue.record("expected .connect for another key")
            return
        }
    }

    @Test func waitsAtTheLimitAndGetsTheReleasedConnection() {
        var machine = Machine(maxConnectionsPerKey: 1)
        let id = Self.connected(&machine, waiter: 1)
        #expect(machine.leaseRequested(Self.a, waiter: 2) == .wait)
        #expect(machine.leaseRequested(Self.a, waiter: 3) == .wait)
        // Waiters are served first come, first served.
        #expect(machine.connectionReleased(id, reusable: true, now: Self.t0) == .handOver(id, to: 2))
        #expect(Self.state(machine, id) == .leased)
        #expect(machine.connectionReleased(id, reusable: true, now: Self.t0) == .handOver(id, to: 3))
        #expect(machine.connectionReleased(id, reusable: true, now: Self.t0) == .park)
    }

    @Test func nonReusableReleaseClosesAndReservesForAWaiter() {
        var machine = Machine(maxConnectionsPerKey: 1)
        let id = Self.connected(&machine, waiter: 1)
        #expect(machine.leaseRequested(Self.a, waiter: 2) == .wait)
        let action = machine.connectionReleased(id, reusable: false, now: Self.t0)
        guard case .close(let closed, let reserved?, let waiter) = action else {
            Issue.record("expected .close with a reconnect, got \(action)")
            return
        }
        #expect(closed == id)
        #expect(waiter == 2)
        #expect(machine.connections[id] == nil)
        #expect(Self.state(machine, reserved) == .connecting(for: 2))
        #expect(machine.connectionEstablished(reserved, now: Self.t0) == .handOver(to: 2))
    }

    @Test func nonReusableReleaseWithoutWaitersJustCloses() {
        var machine = Machine(maxConnectionsPerKey: 1)
        let id = Self.connected(&machine, waiter: 1)
        #expect(machine.connectionReleased(id, reusable: false, now: Self.t0) == .close(id, thenConnect: nil, for: nil))
        #expect(machine.isEmpty)
        // Capacity is free again.
        #expect(machine.leaseRequested(Self.a, waiter: 2) == .connect(id + 1))
    }

    @Test func releaseOfAnUnknownConnectionIsHarmless() {
        var machine = Machine(maxConnectionsPerKey: 1)
        #expect(machine.connectionReleased(42, reusable: true, now: Self.t0) == .park)
        #expect(machine.isEmpty)
    }

    @Test func queuedWaiterCancellation() {
        var machine = Machine(maxConnectionsPerKey: 1)
        let id = Self.connected(&machine, waiter: 1)
        #expect(machine.leaseRequested(Self.a, waiter: 2) == .wait)
        #expect(machine.leaseRequested(Self.a, waiter: 3) == .wait)
        let removed = machine.waiterCancelled(2, key: Self.a)
        #expect(removed)
        let removedAgain = machine.waiterCancelled(2, key: Self.a)
        #expect(!removedAgain)
        #expect(machine.connectionReleased(id, reusable: true, now: Self.t0) == .handOver(id, to: 3))
    }

    @Test func cancelledWaiterWhoseConnectionIsStillConnecting() {
        var machine = Machine(maxConnectionsPerKey: 1)
        #expect(machine.leaseRequested(Self.a, waiter: 1) == .connect(1))
        // Not queued (it was connecting), but the connection forgets it.
        let wasQueued = machine.waiterCancelled(1, key: Self.a)
        #expect(!wasQueued)
        #expect(Self.state(machine, 1) == .connecting(for: nil))
        // Nobody wants it: it is parked for the next caller.
        #expect(machine.connectionEstablished(1, now: Self.t0) == .park)
        #expect(machine.leaseRequested(Self.a, waiter: 2) == .use(1))
    }

    @Test func orphanedConnectionGoesToAQueuedWaiter() {
        var machine = Machine(maxConnectionsPerKey: 1)
        #expect(machine.leaseRequested(Self.a, waiter: 1) == .connect(1))
        #expect(machine.leaseRequested(Self.a, waiter: 2) == .wait)
        _ = machine.waiterCancelled(1, key: Self.a)
        #expect(machine.connectionEstablished(1, now: Self.t0) == .handOver(to: 2))
    }

    @Test func connectionFailureFailsItsWaiter() {
        var machine = Machine(maxConnectionsPerKey: 2)
        #expect(machine.leaseRequested(Self.a, waiter: 1) == .connect(1))
        #expect(machine.connectionFailed(1) == .fail(1, reconnect: nil))
        #expect(machine.isEmpty)
        #expect(machine.leaseRequested(Self.a, waiter: 2) == .connect(2))
        // An unknown id fails nobody.
        #expect(machine.connectionFailed(99) == .fail(nil, reconnect: nil))
    }

    @Test func connectionFailureGivesAQueuedWaiterItsOwnAttempt() {
        var machine = Machine(maxConnectionsPerKey: 1)
        #expect(machine.leaseRequested(Self.a, waiter: 1) == .connect(1))
        #expect(machine.leaseRequested(Self.a, waiter: 2) == .wait)
        #expect(machine.connectionFailed(1) == .fail(1, reconnect: .init(connection: 2, waiter: 2)))
        #expect(Self.state(machine, 2) == .connecting(for: 2))
    }

    @Test func failureOfAnOrphanedConnection() {
        var machine = Machine(maxConnectionsPerKey: 1)
        #expect(machine.leaseRequested(Self.a, waiter: 1) == .connect(1))
        _ = machine.waiterCancelled(1, key: Self.a)
        #expect(machine.connectionFailed(1) == .fail(nil, reconnect: nil))
    }

    @Test func idleConnectionClosedByThePeerIsForgotten() {
        var machine = Machine(maxConnectionsPerKey: 1)
        let id = Self.connected(&machine, waiter: 1)
        _ = machine.connectionReleased(id, reusable: true, now: Self.t0)
        #expect(machine.connectionClosed(id) == nil)
        #expect(machine.isEmpty)
        #expect(machine.leaseRequested(Self.a, waiter: 2) == .connect(id + 1))
    }

    @Test func leasedConnectionClosedWhileCallersWait() {
        var machine = Machine(maxConnectionsPerKey: 1)
        let id = Self.connected(&machine, waiter: 1)
        #expect(machine.leaseRequested(Self.a, waiter: 2) == .wait)
        // The peer closes the leased connection before it is released…
        let reconnect = machine.connectionClosed(id)
        #expect(reconnect?.waiter == 2)
        let reserved = reconnect?.connection ?? -1
        #expect(Self.state(machine, reserved) == .connecting(for: 2))
        // …and the late release neither hands over nor parks a dead connection.
        #expect(machine.connectionReleased(id, reusable: true, now: Self.t0) == .park)
        #expect(machine.connections[id] == nil)
    }

    @Test func idleExpiry() {
        var machine = Machine(maxConnectionsPerKey: 4)
        let old = Self.connected(&machine, waiter: 1)
        let recent = Self.connected(&machine, waiter: 2)
        let busy = Self.connected(&machine, waiter: 3)
        _ = machine.connectionReleased(old, reusable: true, now: Self.t0)
        _ = machine.connectionReleased(recent, reusable: true, now: Self.t0 + .seconds(50))
        #expect(machine.idleConnectionsToClose(now: Self.t0 + .seconds(59), timeout: .seconds(60)).isEmpty)
        #expect(machine.idleConnectionsToClose(now: Self.t0 + .seconds(60), timeout: .seconds(60)) == [old])
        #expect(machine.connections[old] == nil)
        #expect(Self.state(machine, busy) == .leased)
        // The expired connection is no longer offered.
        #expect(machine.leaseRequested(Self.a, waiter: 4) == .use(recent))
        #expect(machine.idleConnectionsToClose(now: Self.t0 + .seconds(1_000), timeout: .seconds(60)).isEmpty)
    }

    @Test func shutdownClosesIdleAndFailsWaiters() {
        var machine = Machine(maxConnectionsPerKey: 2)
        let idle = Self.connected(&machine, waiter: 1)
        let busy = Self.connected(&machine, waiter: 2)
        #expect(machine.connectionReleased(idle, reusable: true, now: Self.t0) == .park)
        let spare = Self.connected(&machine, Self.b, waiter: 3)
        #expect(machine.connectionReleased(spare, reusable: true, now: Self.t0) == .park)
        #expect(machine.leaseRequested(Self.a, waiter: 4) == .use(idle))
        #expect(machine.leaseRequested(Self.a, waiter: 5) == .wait)
        #expect(machine.leaseRequested(Self.a, waiter: 6) == .wait)
        #expect(machine.leaseRequested(Self.b, waiter: 7) == .use(spare))
        #expect(machine.leaseRequested(Self.b, waiter: 8) == .connect(4))
        #expect(machine.connectionReleased(spare, reusable: true, now: Self.t0) == .park)

        let (close, fail) = machine.shutdown()
        #expect(close == [spare])
        #expect(Set(fail) == [5, 6])
        #expect(machine.shuttingDown)
        // Leased connections close when released, even when reusable; nobody gets a reconnect.
        #expect(machine.connectionReleased(busy, reusable: true, now: Self.t0) == .close(busy, thenConnect: nil, for: nil))
        #expect(machine.connectionReleased(idle, reusable: false, now: Self.t0) == .close(idle, thenConnect: nil, for: nil))
        // A connection established during shutdown for its caller is still handed over, then closed.
        #expect(machine.connectionEstablished(4, now: Self.t0) == .handOver(to: 8))
        #expect(machine.connectionReleased(4, reusable: true, now: Self.t0) == .close(4, thenConnect: nil, for: nil))
        #expect(machine.isEmpty)
    }

    @Test func shutdownReturnsIdleConnections() {
        var machine = Machine(maxConnectionsPerKey: 2)
        let first = Self.connected(&machine, waiter: 1)
        let second = Self.connected(&machine, Self.b, waiter: 2)
        _ = machine.connectionReleased(first, reusable: true, now: Self.t0)
        _ = machine.connectionReleased(second, reusable: true, now: Self.t0)
        let (close, fail) = machine.shutdown()
        #expect(Set(close) == [first, second])
        #expect(fail.isEmpty)
        #expect(machine.isEmpty)
    }

    @Test func connectionEstablishedDuringShutdownWithoutACallerIsClosed() {
        var machine = Machine(maxConnectionsPerKey: 1)
        #expect(machine.leaseRequested(Self.a, waiter: 1) == .connect(1))
        _ = machine.waiterCancelled(1, key: Self.a)
        _ = machine.shutdown()
        #expect(machine.connectionEstablished(1, now: Self.t0) == .close)
        #expect(machine.isEmpty)
    }

    @Test func noReconnectsDuringShutdown() {
        var machine = Machine(maxConnectionsPerKey: 1)
        #expect(machine.leaseRequested(Self.a, waiter: 1) == .connect(1))
        #expect(machine.leaseRequested(Self.a, waiter: 2) == .wait)
        let (_, fail) = machine.shutdown()
        #expect(fail == [2])
        #expect(machine.connectionFailed(1) == .fail(1, reconnect: nil))
    }
}

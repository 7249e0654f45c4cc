import MechaCore
import Synchronization

/// One actor's turns: calls run one at a time, in arrival order. With reentrancy on, a call that
/// carries the reentrancy id of the running turn's chain enters at once (A → B → A), up to
/// `maxStackDepth` nested turns.
final class ActorTurns: Sendable {
    enum Refusal: Error, Equatable {
        /// The actor was deactivated (idle, rebalanced, draining) while the call waited: look it
        /// up again.
        case retired
        /// Reentrant calls nested deeper than `maxStackDepth`.
        case stackDepth(Int)
        case cancelled
    }

    private struct Waiter {
        var ticket: UInt64
        var chain: String?
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        /// The running turn's chain; nil when no turn runs or it is not reentrant.
        var chain: String?
        /// Nested turns running (0: idle).
        var depth = 0
        var waiters: [Waiter] = []
        var nextTicket: UInt64 = 0
        var retired = false
        /// Calls in a turn or waiting for one.
        var pending: Int { self.depth + self.waiters.count }
    }

    private let state = Mutex(State())

    /// Whether no call runs or waits.
    var isIdle: Bool { self.state.withLock { $0.pending == 0 } }
    var isRetired: Bool { self.state.withLock { $0.retired } }

    /// Waits for the actor's turn. `chain` is the call's reentrancy id (nil: reentrancy off).
    func enter(chain: String?, maxStackDepth: Int) async throws(Refusal) {
        enum Decision { case entered, wait(UInt64), refused(Refusal) }
        let decision = self.state.withLock { state -> Decision in
            if state.retired { return .refused(.retired) }
            if state.depth == 0 {
                state.depth = 1
                state.chain = chain
                return .entered
            }
            if let chain, state.chain == chain {
                guard state.depth < maxStackDepth else { return .refused(.stackDepth(maxStackDepth)) }
                state.depth += 1
                return .entered
            }
            state.nextTicket += 1
            return .wait(state.nextTicket)
        }
        let ticket: UInt64
        switch decision {
        case .entered: return
        case .refused(let refusal): throw refusal
        case .wait(let value): ticket = value
        }
        do {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    let cancelled = self.state.withLock { state -> Bool in
                        if Task.isCancelled { return true }
                        state.waiters.append(Waiter(ticket: ticket, chain: chain, continuation: continuation))
                        return false
                    }
                    if cancelled { continuation.resume(throwing: Refusal.cancelled) }
                }
            } onCancel: {
                let waiter = self.state.withLock { state -> Waiter? in
                    guard let index = state.waiters.firstIndex(where: { $0.ticket == ticket }) else { return nil }
                    return state.waiters.remove(at: index)
                }
                waiter?.continuation.resume(throwing: Refusal.cancelled)
            }
        } catch let refusal as Refusal {
            throw refusal
        } catch {
            throw .cancelled
        }
    }

    /// Ends a turn begun by `enter`; the next waiter (in order) starts.
    func leave() {
        let next = self.state.withLock { state -> Waiter? in
            state.depth -= 1
            guard state.depth <= 0 else { return nil }
            state.depth = 0
            state.chain = nil
            guard !state.waiters.isEmpty else { return nil }
            let waiter = state.waiters.removeFirst()
            if state.retired { return waiter }
            state.depth = 1
            state.chain = waiter.chain
            return waiter
        }
        guard let next else { return }
        if self.isRetired {
            next.continuation.resume(throwing: Refusal.retired)
            // The others learn it too.
            self.retire()
        } else {
            next.continuation.resume()
        }
    }

    /// Takes the actor out of service when no call runs or waits; false if one does.
    func retireIfIdle() -> Bool {
        self.state.withLock { state in
            guard state.pending == 0, !state.retired else { return false }
            state.retired = true
            return true
        }
    }

    /// Takes the actor out of service: waiting calls are refused (`retired`, so they look the
    /// actor up again); a running turn finishes.
    func retire() {
        let waiters = self.state.withLock { state -> [Waiter] in
            state.retired = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.continuation.resume(throwing: Refusal.retired) }
    }

    /// Waits (polling) until no turn runs, at most `timeout`. True when it drained.
    func drain(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if self.state.withLock({ $0.depth == 0 }) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return self.state.withLock { $0.depth == 0 }
    }
}

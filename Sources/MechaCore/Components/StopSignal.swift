import Synchronization

/// A one-shot "please stop" that long-running component work observes, distinct from task
/// cancellation: on graceful shutdown the runtime fires it, loops stop taking new work and finish
/// what is in flight (a delivery being handled is not cancelled). Cancellation still hard-stops.
public final class StopSignal: Sendable {
    private struct State {
        var stopped = false
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Whether `stop()` has been called.
    public var isStopped: Bool { self.state.withLock { $0.stopped } }

    /// Fires the signal; every current and future waiter resumes. Idempotent.
    public func stop() {
        let waiters = self.state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard !state.stopped else { return [] }
            state.stopped = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once the signal fires or the calling task is cancelled.
    public func wait() async {
        let id = self.state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = self.state.withLock { state -> Bool in
                    if state.stopped || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = self.state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }

    /// Sleeps for `duration` unless the signal fires first. Returns `true` when stopped (or cancelled).
    @discardableResult
    public func sleep(for duration: Duration) async -> Bool {
        if self.isStopped { return true }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: duration) }
            group.addTask { await self.wait() }
            await group.next()
            group.cancelAll()
        }
        return self.isStopped || Task.isCancelled
    }
}

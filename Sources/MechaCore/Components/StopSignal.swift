import Synchronization

/// A one-shot "please stop" that long-running component work observes, distinct from task
/// cancellation: on graceful shutdown the runtime fires it, loops stop taking new work and finish
/// what is in flight (a delivery being handled is not cancelled). Cancellation still hard-stops.
public final class StopSignal: Sendable {
    private struct State {
        var stopped = false
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// Signals that fire with this one (`either`).
        var children: [UInt64: StopSignal] = [:]
        /// Run once when this signal fires (an `either` signal leaving its parents).
        var onStop: (@Sendable () -> Void)?
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Whether `stop()` has been called.
    public var isStopped: Bool { self.state.withLock { $0.stopped } }

    /// Fires the signal; every current and future waiter resumes. Idempotent.
    public func stop() {
        let (waiters, children, onStop) = self.state.withLock { state -> ([CheckedContinuation<Void, Never>], [StopSignal], (@Sendable () -> Void)?) in
            guard !state.stopped else { return ([], [], nil) }
            state.stopped = true
            defer {
                state.waiters = [:]
                state.children = [:]
                state.onStop = nil
            }
            return (Array(state.waiters.values), Array(state.children.values), state.onStop)
        }
        for waiter in waiters { waiter.resume() }
        for child in children { child.stop() }
        onStop?()
    }

    /// A signal that fires when `first` or `second` does (e.g. the sidecar's shutdown, or the
    /// retirement of the component a loop works on). It holds no task; once it fires both parents
    /// forget it. Make one per unit of work (not per retry): until it fires, the parents keep it.
    public static func either(_ first: StopSignal, _ second: StopSignal) -> StopSignal {
        let child = StopSignal()
        let firstID = first.adopt(child)
        let secondID = second.adopt(child)
        let forget: @Sendable () -> Void = {
            if let firstID { first.forget(firstID) }
            if let secondID { second.forget(secondID) }
        }
        let fired = child.state.withLock { state -> Bool in
            if state.stopped { return true }
            state.onStop = forget
            return false
        }
        if fired { forget() }
        return child
    }

    /// Makes `child` fire with this signal; nil when this one has fired already (then `child` is stopped).
    private func adopt(_ child: StopSignal) -> UInt64? {
        let id = self.state.withLock { state -> UInt64? in
            guard !state.stopped else { return nil }
            state.nextID += 1
            state.children[state.nextID] = child
            return state.nextID
        }
        if id == nil { child.stop() }
        return id
    }

    private func forget(_ id: UInt64) {
        self.state.withLock { _ = $0.children.removeValue(forKey: id) }
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

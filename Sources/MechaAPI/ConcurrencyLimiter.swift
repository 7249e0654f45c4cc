import Synchronization

/// A counting semaphore for async code (`--app-max-concurrency`): at most `limit` holders at a
/// time; the others wait in arrival order.
public final class ConcurrencyLimiter: Sendable {
    private struct State {
        var available: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state: Mutex<State>

    public init(limit: Int) {
        self.state = Mutex(State(available: limit))
    }

    /// A limiter for `--app-max-concurrency`: nil (unlimited) when `limit` is nil or not positive.
    public static func forMaxConcurrency(_ limit: Int?) -> ConcurrencyLimiter? {
        guard let limit, limit > 0 else { return nil }
        return ConcurrencyLimiter(limit: limit)
    }

    public func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let acquired = self.state.withLock { state -> Bool in
                if state.available > 0 {
                    state.available -= 1
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if acquired { continuation.resume() }
        }
    }

    public func release() {
        let waiter = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.available += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        waiter?.resume()
    }

    /// Runs `body` holding one slot.
    public func withSlot<Output>(_ body: () async throws -> Output) async rethrows -> Output {
        await self.acquire()
        defer { self.release() }
        return try await body()
    }
}

public import MechaCore
public import MechaRuntime
import Synchronization

/// A rate limit shared by every sidecar through a state store (TrafficPolicy `globalRateLimit`):
/// fixed one-second windows (wall clock, so every host counts the same window), one counter per
/// window in the store. A sidecar claims tokens in chunks of a tenth of the limit with an ETag
/// compare-and-set, never past the limit, and spends them locally: a store round trip per chunk,
/// not per call. The sum admitted across sidecars never exceeds the limit per window; a sidecar
/// may leave part of its last chunk unused.
public final class GlobalRateLimiter: Sendable {
    let components: ComponentStore
    let now: @Sendable () -> Timestamp

    struct Window {
        var second: Int64
        var tokens: Int
        var exhausted: Bool
    }

    private let windows = Mutex<[String: Window]>([:])

    public init(components: ComponentStore, now: @escaping @Sendable () -> Timestamp = { WallClock.now() }) {
        self.components = components
        self.now = now
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Takes one token of `key`'s budget of `limit` per second in `store`. False when the window's
    /// budget is spent. A store that cannot be reached fails the call (`Failure`): a limit that
    /// silently stopped limiting would be worse.
    public func admit(key: String, limit: Int, store: String) async throws -> Bool {
        let second = self.now().seconds
        switch self.takeLocal(key, second: second) {
        case .some(let admitted): return admitted
        case .none: break
        }
        let granted = try await self.claim(key: key, limit: limit, store: store, second: second)
        return self.windows.withLock { windows in
            var window = windows[key].flatMap { $0.second == second ? $0 : nil } ?? Window(second: second, tokens: 0, exhausted: false)
            window.tokens += granted
            if granted == 0 { window.exhausted = true }
            defer { windows[key] = window }
            guard window.tokens > 0 else { return false }
            window.tokens -= 1
            return true
        }
    }

    /// A token from this window's local share; nil when the share is empty and not exhausted.
    private func takeLocal(_ key: String, second: Int64) -> Bool? {
        self.windows.withLock { windows -> Bool? in
            guard var window = windows[key], window.second == second else { return nil }
            if window.tokens > 0 {
                window.tokens -= 1
                windows[key] = window
                return true
            }
            return window.exhausted ? false : nil
        }
    }

    /// Adds up to a chunk to the window's counter in the store; returns how many it got (0 when
    /// the limit is reached).
    func claim(key: String, limit: Int, store storeName: String, second: Int64) async throws -> Int {
        guard let store = self.components.stateStore(named: storeName) else {
            throw Failure(description: "global rate limit: state store \(storeName) is not loaded")
        }
        let stored = "mecha||ratelimit||\(key)||\(second)"
        let chunk = max(1, limit / 10)
        for _ in 0..<16 {
            let current = try await store.get(StateGetRequest(key: stored))
            let used = current.flatMap { Int(String(decoding: $0.value, as: UTF8.self)) } ?? 0
            guard used < limit else { return 0 }
            let grant = min(chunk, limit - used)
            let request = StateSetRequest(
                key: stored,
                value: Array(String(used + grant).utf8),
                etag: current?.etag,
                concurrency: .firstWrite,
                ttl: .seconds(10)
            )
            do {
                try await store.set(request)
                return grant
            } catch let error as StateStoreError where error.code == .etagMismatch {
                continue  // another sidecar claimed first: read again
            }
        }
        throw Failure(description: "global rate limit: too much contention on \(stored)")
    }
}

import MechaCore
import Synchronization

/// The `cacheTTL` response cache of Dapr's LLM components: an answer is kept for the TTL under the
/// exact request sent to the provider (messages, tools and options), and the same request within
/// the TTL is answered from here without calling the provider. Only successful answers are kept.
///
/// Time is passed in (`now`), so tests move it by hand. Expired entries are dropped on every store.
final class ConversationResponseCache: Sendable {
    private struct Entry {
        var response: ConversationResponse
        var expires: ContinuousClock.Instant
    }

    let ttl: Duration
    private let now: @Sendable () -> ContinuousClock.Instant
    private let entries = Mutex<[[UInt8]: Entry]>([:])

    init(ttl: Duration, now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }) {
        self.ttl = ttl
        self.now = now
    }

    /// The answer stored for `key`, if it has not expired.
    func lookup(_ key: [UInt8]) -> ConversationResponse? {
        let now = self.now()
        return self.entries.withLock { entries in
            guard let entry = entries[key] else { return nil }
            guard entry.expires > now else {
                entries[key] = nil
                return nil
            }
            return entry.response
        }
    }

    func store(_ response: ConversationResponse, for key: [UInt8]) {
        let now = self.now()
        self.entries.withLock { entries in
            entries = entries.filter { $0.value.expires > now }
            entries[key] = Entry(response: response, expires: now + self.ttl)
        }
    }

    var count: Int { self.entries.withLock { $0.count } }
}

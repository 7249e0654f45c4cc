public import MechaCore
import Synchronization

/// `state.in-memory`: state in the sidecar's memory (lost on restart). The reference
/// implementation the conformance suite is calibrated against. Time is injected so TTL tests never
/// sleep; ETags are random UUIDs, as in Dapr.
public final class InMemoryStateStore: TransactionalStateStore {
    struct Entry {
        var value: [UInt8]
        var etag: String
        var expiresAt: Timestamp?
    }

    private let entries = Mutex<[String: Entry]>([:])
    private let now: @Sendable () -> Timestamp

    public init(now: @escaping @Sendable () -> Timestamp = { WallClock.now() }) {
        self.now = now
    }

    public var features: StateFeatures { [.etag, .transactional, .ttl] }

    public func get(_ request: StateGetRequest) async throws -> StateItem? {
        let now = self.now()
        return self.entries.withLock { entries in
            guard let entry = entries[request.key] else { return nil }
            if let expiry = entry.expiresAt, expiry <= now {
                entries[request.key] = nil
                return nil
            }
            var metadata: [String: String] = [:]
            if let expiry = entry.expiresAt { metadata["ttlExpireTime"] = expiry.rfc3339 }
            return StateItem(key: request.key, value: entry.value, etag: entry.etag, metadata: metadata)
        }
    }

    public func set(_ request: StateSetRequest) async throws {
        try self.apply([.set(request)])
    }

    public func delete(_ request: StateDeleteRequest) async throws {
        try self.apply([.delete(request)])
    }

    public func transact(_ operations: [StateOperation], metadata: [String: String]) async throws {
        try self.apply(operations)
    }

    /// All-or-nothing: every ETag is checked against the state before the transaction, then all apply.
    private func apply(_ operations: [StateOperation]) throws(StateStoreError) {
        let now = self.now()
        try self.entries.withLock { entries throws(StateStoreError) in
            var working = entries
            for operation in operations {
                let live = working[operation.key].flatMap { entry in (entry.expiresAt.map { $0 > now } ?? true) ? entry : nil }
                switch operation {
                case .set(let request):
                    if let etag = request.etag {
                        guard let live else {
                            throw StateStoreError(.etagMismatch, key: request.key, detail: "state not exist or expired for key=\(request.key)")
                        }
                        guard live.etag == etag else {
                            throw StateStoreError(.etagMismatch, key: request.key, detail: "state etag not match for key=\(request.key): current=\(live.etag), expect=\(etag)")
                        }
                    } else if request.concurrency == .firstWrite, live != nil {
                        throw StateStoreError(.etagMismatch, key: request.key, detail: "item already exists and no etag was passed")
                    }
                    // A zero or negative TTL means no expiry (and clears an earlier one).
                    let expiresAt = request.ttl.flatMap { $0 > .zero ? now.adding($0) : nil }
                    working[request.key] = Entry(value: request.value, etag: RandomID.uuid(), expiresAt: expiresAt)
                case .delete(let request):
                    if let etag = request.etag {
                        guard let live else {
                            throw StateStoreError(.etagMismatch, key: request.key, detail: "state not exist or expired for key=\(request.key)")
                        }
                        guard live.etag == etag else {
                            throw StateStoreError(.etagMismatch, key: request.key, detail: "state etag not match for key=\(request.key): current=\(live.etag), expect=\(etag)")
                        }
                    }
                    working[request.key] = nil
                }
            }
            entries = working
        }
    }

    /// Sweeps expired entries once a second.
    public func run(until stop: StopSignal) async throws {
        while !(await stop.sleep(for: .seconds(1))) {
            let now = self.now()
            self.entries.withLock { entries in
                entries = entries.filter { $0.value.expiresAt.map { $0 > now } ?? true }
            }
        }
    }
}

/// Factory for `state.in-memory` (no metadata).
public struct InMemoryStateStoreFactory: ComponentFactory {
    public init() {}
    public var type: ComponentType { ComponentType(.state, "in-memory") }
    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        InMemoryStateStore()
    }
}

public import MechaCore
import NIOCore
public import RESPClient
import RESPWire

/// `state.redis`: state in Redis in Dapr's layout, so data written by daprd reads here and the
/// other way round: each key is a hash with `data` (the value's bytes, unchanged) and `version`
/// (a decimal counter used as the ETag, starting at 1 and incremented by every write).
///
/// Writes, single or transactional, go through one Lua script (`RedisStateScript`) that checks
/// every ETag and first-write condition before it writes anything, so transactions are all or
/// nothing. An ETag that is not an integer is `.etagInvalid`; a stale one, or one given for a
/// missing key, `.etagMismatch`. TTLs are Redis expiries (`PEXPIRE`; a write without TTL removes
/// any expiry), reported on reads as `ttlExpireTime`. The query API needs RedisJSON/RediSearch and
/// is not offered.
public final class RedisStateStore: TransactionalStateStore, RedisPooledComponent {
    public let pool: RESPConnectionPool
    public let configuration: RedisStateStoreConfiguration
    let script = RedisStateScript()
    /// Replicas to wait for on strong-consistency writes (`connected_slaves` at start).
    let replicas: Int

    public var features: StateFeatures { [.etag, .transactional, .ttl] }

    init(pool: RESPConnectionPool, configuration: RedisStateStoreConfiguration, replicas: Int) {
        self.pool = pool
        self.configuration = configuration
        self.replicas = replicas
    }

    // MARK: Reads

    public func get(_ request: StateGetRequest) async throws -> StateItem? {
        guard !request.key.isEmpty else { throw StateStoreError(.invalidRequest, detail: "missing key in get operation") }
        let replies = try await self.backend(request.key) {
            try await self.pool.transaction(Self.readCommands(request.key))
        }
        return try await self.item(request.key, replies ?? [])
    }

    public func bulkGet(_ requests: [StateGetRequest]) async throws -> [StateBulkItem] {
        guard !requests.isEmpty else { return [] }
        let replies = try await self.backend(nil) {
            try await self.pool.pipeline(requests.flatMap { Self.readCommands($0.key) })
        }
        var results: [StateBulkItem] = []
        results.reserveCapacity(requests.count)
        for (index, request) in requests.enumerated() {
            let pair = Array(replies[(2 * index)..<min(2 * index + 2, replies.count)])
            do {
                results.append(StateBulkItem(key: request.key, item: try await self.item(request.key, pair)))
            } catch {
                results.append(StateBulkItem(key: request.key, item: nil, error: "\(error)"))
            }
        }
        return results
    }

    static func readCommands(_ key: String) -> [RESPCommand] {
        [["HMGET", key, "data", "version"], ["PTTL", key]]
    }

    /// The item from `HMGET data version` and `PTTL` replies.
    func item(_ key: String, _ replies: [RESPValue]) async throws -> StateItem? {
        guard replies.count == 2 else { throw StateStoreError(.backend, key: key, detail: "unexpected reply from redis: \(replies)") }
        if case .error(let message) = replies[0] {
            // A plain string: the layout before Dapr stored hashes. Readable, without an ETag.
            guard message.hasPrefix("WRONGTYPE") else { throw StateStoreError(.backend, key: key, detail: "redis: \(message)") }
            let value = try await self.backend(key) { try await self.pool.send(["GET", key]) }
            return value.bytes.map { StateItem(key: key, value: Array($0.readableBytesView)) }
        }
        guard let fields = replies[0].array, fields.count == 2 else {
            throw StateStoreError(.backend, key: key, detail: "unexpected reply from redis: \(replies[0])")
        }
        if fields[0].isNull && fields[1].isNull { return nil }
        guard let data = fields[0].bytes, let version = fields[1].string else {
            throw StateStoreError(.backend, key: key, detail: "required hash field 'data' or 'version' was not found")
        }
        var metadata: [String: String] = [:]
        if let milliseconds = replies[1].int, milliseconds >= 0 {
            metadata["ttlExpireTime"] = WallClock.now().adding(.milliseconds(milliseconds)).rfc3339
        }
        return StateItem(key: key, value: Array(data.readableBytesView), etag: version, metadata: metadata)
    }

    // MARK: Writes

    public func set(_ request: StateSetRequest) async throws {
        try await self.transact([.set(request)], metadata: [:])
    }

    public func delete(_ request: StateDeleteRequest) async throws {
        try await self.transact([.delete(request)], metadata: [:])
    }

    public func transact(_ operations: [StateOperation], metadata: [String: String]) async throws {
        guard !operations.isEmpty else { return }
        var scripted: [RedisStateScript.Operation] = []
        scripted.reserveCapacity(operations.count)
        var strong = false
        for operation in operations {
            switch operation {
            case .set(let request):
                guard !request.key.isEmpty else { throw StateStoreError(.invalidRequest, detail: "missing key in set operation") }
                let etag = try Self.etag(request.etag, key: request.key)
                scripted.append(
                    .init(
                        key: request.key,
                        isSet: true,
                        etag: etag,
                        firstWrite: etag == nil && request.concurrency == .firstWrite,
                        ttlMilliseconds: self.ttlMilliseconds(request),
                        value: request.value
                    )
                )
                strong = strong || request.consistency == .strong
            case .delete(let request):
                guard !request.key.isEmpty else { throw StateStoreError(.invalidRequest, detail: "missing key in delete operation") }
                let etag = try Self.etag(request.etag, key: request.key)
                scripted.append(.init(key: request.key, isSet: false, etag: etag, firstWrite: false, ttlMilliseconds: 0, value: []))
                strong = strong || request.consistency == .strong
            }
        }
        let failed = try await self.backend(nil) { try await self.script.run(scripted, on: self.pool) }
        if failed > 0, failed <= scripted.count {
            let operation = scripted[failed - 1]
            if operation.etag == nil {
                throw StateStoreError(.etagMismatch, key: operation.key, detail: "item already exists and no etag was passed")
            }
            throw StateStoreError(.etagMismatch, key: operation.key, detail: "state not exist or etag not match for key=\(operation.key)")
        } else if failed != 0 {
            throw StateStoreError(.backend, detail: "unexpected reply \(failed) from the state script")
        }
        if strong && self.replicas > 0 {
            _ = try await self.backend(nil) { try await self.pool.send(["WAIT", self.replicas, 1000]) }
        }
    }

    /// ETags are the decimal `version` counter; anything else cannot match.
    static func etag(_ etag: String?, key: String) throws -> String? {
        guard let etag, !etag.isEmpty else { return nil }
        guard Int64(etag) != nil else {
            throw StateStoreError(.etagInvalid, key: key, detail: "\(etag) is not a number (state.redis ETags are version numbers)")
        }
        return etag
    }

    /// The expiry of a write: its own TTL; none when it asked for none (`ttlInSeconds` ≤ 0);
    /// else the component's default `ttlInSeconds`. A fraction of a millisecond counts as a whole one.
    func ttlMilliseconds(_ request: StateSetRequest) -> Int64 {
        let ttl: Duration?
        if let own = request.ttl {
            ttl = own
        } else if request.metadata.keys.contains(where: { $0.lowercased() == "ttlinseconds" }) {
            ttl = nil
        } else {
            ttl = self.configuration.defaultTTL
        }
        guard let ttl, ttl > .zero else { return 0 }
        let milliseconds = ttl.milliseconds
        return ttl.attoseconds % 1_000_000_000_000_000 > 0 ? milliseconds.addingSaturated(1) : milliseconds
    }

    /// Runs a Redis call; connection failures and unexpected error replies become `.backend`.
    func backend<Result>(_ key: String?, _ body: () async throws -> Result) async throws -> Result {
        do {
            return try await body()
        } catch let error as RESPError {
            throw StateStoreError(.backend, key: key, detail: "\(error)")
        }
    }

    // MARK: Lifecycle

    /// Keeps the pool's connections healthy until stopped.
}

/// Factory for `state.redis` (v1). See `RedisStateStoreConfiguration` for the metadata.
public struct RedisStateStoreFactory: ComponentFactory {
    public init() {}
    public var type: ComponentType { ComponentType(.state, "redis") }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        let configuration = try RedisStateStoreConfiguration(spec.metadata)
        let pool = try await configuration.client.connectedPool(logger: context.logger) { StateStoreError(.backend, detail: "redis store: \($0)") }
        do {
            let replicas = try await RedisStateStore.connectedReplicas(pool)
            let store = RedisStateStore(pool: pool, configuration: configuration, replicas: replicas)
            try await store.script.load(on: pool)
            return store
        } catch {
            await pool.shutdown()
            throw error
        }
    }
}

extension RedisStateStore {
    /// `connected_slaves` from `INFO replication` (0 when the server does not say).
    static func connectedReplicas(_ pool: RESPConnectionPool) async throws -> Int {
        guard let info = try? await pool.send(["INFO", "replication"]).string else { return 0 }
        for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("connected_slaves:") {
            return Int(line.dropFirst("connected_slaves:".count)) ?? 0
        }
        return 0
    }
}

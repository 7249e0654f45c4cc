/// Optional capabilities a state store advertises. The conformance suite checks them both ways: a
/// declared feature must work, an undeclared one must be refused cleanly.
public struct StateFeatures: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Optimistic concurrency with ETags (first-write / last-write).
    public static let etag = StateFeatures(rawValue: 1 << 0)
    /// Multi-operation, all-or-nothing transactions (`TransactionalStateStore`).
    public static let transactional = StateFeatures(rawValue: 1 << 1)
    /// Per-item expiry through `ttlInSeconds`.
    public static let ttl = StateFeatures(rawValue: 1 << 2)
    /// The query API.
    public static let query = StateFeatures(rawValue: 1 << 3)

    /// Capability names as the metadata API reports them.
    public var capabilityNames: [String] {
        var names: [String] = []
        if self.contains(.etag) { names.append("ETAG") }
        if self.contains(.transactional) { names.append("TRANSACTIONAL") }
        if self.contains(.ttl) { names.append("TTL") }
        if self.contains(.query) { names.append("QUERY_API") }
        return names
    }
}

/// `options.concurrency`.
public enum StateConcurrency: String, Sendable, Hashable {
    case firstWrite = "first-write"
    case lastWrite = "last-write"
}

/// `options.consistency`.
public enum StateConsistency: String, Sendable, Hashable {
    case eventual
    case strong
}

public struct StateGetRequest: Sendable, Hashable {
    public var key: String
    public var consistency: StateConsistency
    public var metadata: [String: String]

    public init(key: String, consistency: StateConsistency = .eventual, metadata: [String: String] = [:]) {
        self.key = key
        self.consistency = consistency
        self.metadata = metadata
    }
}

/// A stored item. `value` is exactly the bytes that were saved.
public struct StateItem: Sendable, Hashable {
    public var key: String
    public var value: [UInt8]
    public var etag: String?
    /// Per-item metadata reported back (e.g. `ttlExpireTime`).
    public var metadata: [String: String]
    /// The content type recorded at save time (`metadata.contentType`), when the store keeps it.
    public var contentType: String?

    public init(key: String, value: [UInt8], etag: String? = nil, metadata: [String: String] = [:], contentType: String? = nil) {
        self.key = key
        self.value = value
        self.etag = etag
        self.metadata = metadata
        self.contentType = contentType
    }
}

public struct StateSetRequest: Sendable, Hashable {
    public var key: String
    public var value: [UInt8]
    /// Expected current ETag; `nil` means none given.
    public var etag: String?
    public var concurrency: StateConcurrency
    public var consistency: StateConsistency
    /// Expiry (`metadata.ttlInSeconds`); `nil` keeps the item forever. Zero or negative means "no TTL".
    public var ttl: Duration?
    public var contentType: String?
    public var metadata: [String: String]

    public init(
        key: String,
        value: [UInt8],
        etag: String? = nil,
        concurrency: StateConcurrency = .lastWrite,
        consistency: StateConsistency = .eventual,
        ttl: Duration? = nil,
        contentType: String? = nil,
        metadata: [String: String] = [:]
    ) {
        self.key = key
        self.value = value
        self.etag = etag
        self.concurrency = concurrency
        self.consistency = consistency
        self.ttl = ttl
        self.contentType = contentType
        self.metadata = metadata
    }
}

public struct StateDeleteRequest: Sendable, Hashable {
    public var key: String
    public var etag: String?
    public var concurrency: StateConcurrency
    public var consistency: StateConsistency
    public var metadata: [String: String]

    public init(
        key: String,
        etag: String? = nil,
        concurrency: StateConcurrency = .lastWrite,
        consistency: StateConsistency = .eventual,
        metadata: [String: String] = [:]
    ) {
        self.key = key
        self.etag = etag
        self.concurrency = concurrency
        self.consistency = consistency
        self.metadata = metadata
    }
}

public enum StateOperation: Sendable, Hashable {
    case set(StateSetRequest)
    case delete(StateDeleteRequest)

    public var key: String {
        switch self {
        case .set(let request): request.key
        case .delete(let request): request.key
        }
    }
}

/// One result of a bulk get: the item, or the error reading that key.
public struct StateBulkItem: Sendable, Hashable {
    public var key: String
    public var item: StateItem?
    public var error: String?

    public init(key: String, item: StateItem?, error: String? = nil) {
        self.key = key
        self.item = item
        self.error = error
    }
}

/// The state building block's component contract.
///
/// Concurrency rules every implementation follows (and the conformance suite checks):
/// - `set`/`delete` with an `etag` succeed only if it equals the item's current ETag; otherwise
///   `StateStoreError(.etagMismatch)`. An ETag the store cannot even parse is `.etagInvalid`.
///   An ETag on a missing item is a mismatch.
/// - `set` with `.firstWrite` and no ETag succeeds only if the key does not exist
///   (`.etagMismatch` otherwise, as Dapr reports it).
/// - Every successful write changes the ETag.
/// - Deleting a missing key without an ETag succeeds.
public protocol StateStore: Component {
    var features: StateFeatures { get }
    func get(_ request: StateGetRequest) async throws -> StateItem?
    func set(_ request: StateSetRequest) async throws
    func delete(_ request: StateDeleteRequest) async throws
    /// Reads several keys. The default calls `get` for each key.
    func bulkGet(_ requests: [StateGetRequest]) async throws -> [StateBulkItem]
}

extension StateStore {
    public func bulkGet(_ requests: [StateGetRequest]) async throws -> [StateBulkItem] {
        var results: [StateBulkItem] = []
        results.reserveCapacity(requests.count)
        for request in requests {
            do {
                results.append(StateBulkItem(key: request.key, item: try await self.get(request)))
            } catch {
                results.append(StateBulkItem(key: request.key, item: nil, error: "\(error)"))
            }
        }
        return results
    }
}

/// A store that applies several operations atomically, in order (declares `.transactional`).
public protocol TransactionalStateStore: StateStore {
    /// All operations succeed or none is applied. ETag rules apply per operation.
    func transact(_ operations: [StateOperation], metadata: [String: String]) async throws
    /// Upper bound on operations per transaction, if the store has one.
    var maxOperationsPerTransaction: Int? { get }
}

extension TransactionalStateStore {
    public var maxOperationsPerTransaction: Int? { nil }
}

/// Errors every state store reports with the same meaning. New codes are new static members.
public struct StateStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// The ETag given is not the current one (or the item does not exist).
        public static let etagMismatch = Code("etagMismatch")
        /// The ETag given is not even well-formed for this store.
        public static let etagInvalid = Code("etagInvalid")
        /// A feature the store does not declare was requested.
        public static let unsupported = Code("unsupported")
        /// The backend could not be reached or failed.
        public static let backend = Code("backend")
        /// A request value the store cannot accept (e.g. a negative TTL it cannot represent).
        public static let invalidRequest = Code("invalidRequest")

        public var description: String { self.name }
    }

    public var code: Code
    public var key: String?
    public var detail: String?

    public init(_ code: Code, key: String? = nil, detail: String? = nil) {
        self.code = code
        self.key = key
        self.detail = detail
    }

    public var description: String {
        switch self.code {
        case .etagMismatch: return "possible etag mismatch. error from state store: \(self.detail ?? "ETag mismatch")"
        case .etagInvalid: return "invalid etag value: \(self.detail ?? "the ETag is not valid for this store")"
        default:
            var text = self.detail ?? "\(self.code)"
            if let key { text += " (key \(key))" }
            return text
        }
    }
}

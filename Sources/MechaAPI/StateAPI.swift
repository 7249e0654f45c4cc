public import MechaCore
public import MechaRuntime

/// An item to save, as the HTTP body (`[{key, value, etag, metadata, options}]`) or gRPC describes it.
public struct SaveStateItem: Sendable {
    public var key: String
    public var value: [UInt8]
    public var etag: String?
    public var metadata: [String: String]
    /// `options.concurrency` as sent; validated here.
    public var concurrency: String?
    /// `options.consistency` as sent; validated here.
    public var consistency: String?
    public var contentType: String?

    public init(key: String, value: [UInt8], etag: String? = nil, metadata: [String: String] = [:], concurrency: String? = nil, consistency: String? = nil, contentType: String? = nil) {
        self.key = key
        self.value = value
        self.etag = etag
        self.metadata = metadata
        self.concurrency = concurrency
        self.consistency = consistency
        self.contentType = contentType
    }
}

/// One operation of `POST /v1.0/state/{store}/transaction`.
public enum TransactionOperationRequest: Sendable {
    case upsert(SaveStateItem)
    case delete(key: String, etag: String?, metadata: [String: String], concurrency: String?, consistency: String?)
}

/// The state building block, written once for every surface: validation, key prefixing, TTL,
/// ETag semantics and error mapping live here.
public struct StateAPI: Sendable {
    let components: ComponentStore
    let identity: SidecarIdentity

    public init(components: ComponentStore, identity: SidecarIdentity) {
        self.components = components
        self.identity = identity
    }

    /// The named store and its spec; daprd's order: none configured (500), then not found (400).
    public func store(_ name: String) throws(APIError) -> (store: any StateStore, spec: ComponentSpec) {
        guard let entry = self.components.entry(named: name), entry.spec.type.category == .state,
            let store = entry.component as? any StateStore
        else {
            if self.components.count(in: .state) == 0 {
                throw .stateStoreNotConfigured(name, appID: self.identity.appID)
            }
            throw .stateStoreNotFound(name, appID: self.identity.appID)
        }
        return (store, entry.spec)
    }

    // MARK: Keys

    /// The key as stored: `<prefix>||<key>` per the store's `keyPrefix` strategy (default `appid`).
    public func storedKey(_ key: String, storeName: String, spec: ComponentSpec) throws(APIError) -> String {
        guard !key.contains("||") else { throw .stateIllegalKey(store: storeName, key: key) }
        let strategy = (spec.metadata["keyPrefix"] ?? "appid").lowercased()
        switch strategy {
        case "appid", "":
            return self.identity.appID.isEmpty ? key : "\(self.identity.appID)||\(key)"
        case "name":
            return "\(storeName)||\(key)"
        case "namespace":
            if self.identity.appID.isEmpty { return key }
            return self.identity.namespace.isEmpty ? "\(self.identity.appID)||\(key)" : "\(self.identity.namespace).\(self.identity.appID)||\(key)"
        case "none":
            return key
        default:
            guard !strategy.contains("||") else { throw .stateIllegalKey(store: storeName, key: strategy) }
            return "\(strategy)||\(key)"
        }
    }

    /// The key as the app knows it (the part after the prefix).
    public static func originalKey(_ stored: String) -> String {
        let parts = stored.split(separator: "||", maxSplits: 2, omittingEmptySubsequences: false)
        return parts.count > 1 ? String(parts[1]) : stored
    }

    // MARK: Operations

    public func get(storeName: String, key: String, consistency: String? = nil, metadata: [String: String] = [:]) async throws(APIError) -> StateItem? {
        let (store, spec) = try self.store(storeName)
        let stored = try self.storedKey(key, storeName: storeName, spec: spec)
        // Reads do not validate the consistency (daprd's stores ignore a value they do not know).
        let parsedConsistency = consistency.flatMap(StateConsistency.init(rawValue:)) ?? .eventual
        do {
            guard var item = try await store.get(StateGetRequest(key: stored, consistency: parsedConsistency, metadata: metadata)) else { return nil }
            item.key = key
            return item
        } catch {
            throw .stateGet(key: key, store: storeName, "\(error)")
        }
    }

    public func bulkGet(storeName: String, keys: [String], metadata: [String: String] = [:]) async throws(APIError) -> [StateBulkItem] {
        let (store, spec) = try self.store(storeName)
        guard !keys.isEmpty else { return [] }
        var requests: [StateGetRequest] = []
        requests.reserveCapacity(keys.count)
        for key in keys {
            requests.append(StateGetRequest(key: try self.storedKey(key, storeName: storeName, spec: spec), metadata: metadata))
        }
        let results: [StateBulkItem]
        do {
            results = try await store.bulkGet(requests)
        } catch {
            throw .stateBulkGet("\(error)")
        }
        // Answer in request order, with the app's keys.
        var byKey: [String: StateBulkItem] = [:]
        for result in results { byKey[result.key] = result }
        return zip(keys, requests).map { key, request in
            var item = byKey[request.key] ?? StateBulkItem(key: request.key, item: nil)
            item.key = key
            item.item?.key = key
            return item
        }
    }

    public func save(storeName: String, items: [SaveStateItem]) async throws(APIError) {
        let (store, spec) = try self.store(storeName)
        guard !items.isEmpty else { return }
        var requests: [StateSetRequest] = []
        for item in items {
            guard !item.key.isEmpty else { throw .malformedRequest(message: "\"key\" is a required field") }
            requests.append(try self.setRequest(item, storeName: storeName, spec: spec) { .invalidStateOption(store: storeName, $0) })
        }
        for request in requests {
            do {
                try await store.set(request)
            } catch {
                throw .stateSave(store: storeName, error)
            }
        }
    }

    public func delete(
        storeName: String,
        key: String,
        etag: String?,
        concurrency: String? = nil,
        consistency: String? = nil,
        metadata: [String: String] = [:]
    ) async throws(APIError) {
        let (store, spec) = try self.store(storeName)
        let request = try self.deleteRequest(key: key, etag: etag, concurrency: concurrency, consistency: consistency, metadata: metadata, storeName: storeName, spec: spec) {
            .invalidStateDeleteOption(key: key, $0)
        }
        do {
            try await store.delete(request)
        } catch {
            throw .stateDelete(key: key, error)
        }
    }

    public func transact(storeName: String, operations: [TransactionOperationRequest], metadata: [String: String] = [:]) async throws(APIError) {
        let (store, spec) = try self.store(storeName)
        guard let transactional = store as? any TransactionalStateStore, store.features.contains(.transactional) else {
            throw .stateTransactionsNotSupported(storeName)
        }
        guard !operations.isEmpty else { return }
        if let maximum = transactional.maxOperationsPerTransaction, operations.count > maximum {
            throw .stateTooManyTransactions(storeName, count: operations.count, max: maximum)
        }
        var converted: [StateOperation] = []
        for operation in operations {
            switch operation {
            case .upsert(let item):
                guard !item.key.isEmpty else { throw .malformedRequest(message: "\"key\" is a required field") }
                // The transaction's own metadata goes to the store with the whole transaction, not
                // into each operation (as daprd).
                converted.append(.set(try self.setRequest(item, storeName: storeName, spec: spec) { .stateTransaction($0) }))
            case .delete(let key, let etag, let opMetadata, let concurrency, let consistency):
                guard !key.isEmpty else { throw .malformedRequest(message: "\"key\" is a required field") }
                converted.append(
                    .delete(
                        try self.deleteRequest(key: key, etag: etag, concurrency: concurrency, consistency: consistency, metadata: opMetadata, storeName: storeName, spec: spec) {
                            .stateTransaction($0)
                        }
                    )
                )
            }
        }
        do {
            try await transactional.transact(converted, metadata: metadata)
        } catch {
            throw .stateTransaction("\(error)")
        }
    }

    // MARK: Request building

    /// `optionError` reports a bad option or TTL the way the operation reports store failures
    /// (daprd leaves these checks to the store).
    func setRequest(
        _ item: SaveStateItem,
        storeName: String,
        spec: ComponentSpec,
        optionError: (String) -> APIError
    ) throws(APIError) -> StateSetRequest {
        let key = try self.storedKey(item.key, storeName: storeName, spec: spec)
        let concurrency = try self.concurrency(item.concurrency, error: optionError)
        let consistency = try self.consistency(item.consistency, error: optionError)
        let ttl = try Self.ttl(item.metadata, error: optionError)
        return StateSetRequest(
            key: key,
            value: item.value,
            etag: item.etag?.isEmpty == true ? nil : item.etag,
            concurrency: concurrency,
            consistency: consistency,
            ttl: ttl,
            contentType: item.contentType ?? item.metadata["contentType"],
            metadata: item.metadata
        )
    }

    func deleteRequest(
        key: String,
        etag: String?,
        concurrency: String?,
        consistency: String?,
        metadata: [String: String],
        storeName: String,
        spec: ComponentSpec,
        optionError: (String) -> APIError
    ) throws(APIError) -> StateDeleteRequest {
        let stored = try self.storedKey(key, storeName: storeName, spec: spec)
        return StateDeleteRequest(
            key: stored,
            etag: etag?.isEmpty == true ? nil : etag,
            concurrency: try self.concurrency(concurrency, error: optionError),
            consistency: try self.consistency(consistency, error: optionError),
            metadata: metadata
        )
    }

    func concurrency(_ raw: String?, error: (String) -> APIError) throws(APIError) -> StateConcurrency {
        guard let raw, !raw.isEmpty else { return .lastWrite }
        guard let value = StateConcurrency(rawValue: raw) else { throw error("unrecognized concurrency model '\(raw)'") }
        return value
    }

    func consistency(_ raw: String?, error: (String) -> APIError) throws(APIError) -> StateConsistency {
        guard let raw, !raw.isEmpty else { return .eventual }
        guard let value = StateConsistency(rawValue: raw) else { throw error("unrecognized consistency model '\(raw)'") }
        return value
    }

    /// `ttlInSeconds`: an integer ≥ -1; -1 and 0 mean no expiry.
    static func ttl(_ metadata: [String: String], error: (String) -> APIError) throws(APIError) -> Duration? {
        guard let raw = metadata.first(where: { $0.key.lowercased() == "ttlinseconds" })?.value, !raw.isEmpty else { return nil }
        guard let seconds = Int64(raw.trimmingSpaces()) else {
            throw error("error parsing TTL: incorrect value for metadata 'ttlInSeconds': strconv.ParseInt: parsing \"\(raw)\": invalid syntax")
        }
        guard seconds >= -1, seconds <= Int64(Int32.max) else {
            throw error("error parsing TTL: incorrect value for metadata 'ttlInSeconds': must be -1 or greater")
        }
        return seconds > 0 ? .seconds(seconds) : nil
    }
}

extension APIError {
    /// A bad option or metadata value on a save. daprd leaves these checks to the store, so they
    /// surface like any store failure: 500 ERR_STATE_SAVE.
    static func invalidStateOption(store: String, _ detail: String) -> APIError {
        APIError(errorCode: "ERR_STATE_SAVE", message: "failed saving state in state store \(store): \(detail)", httpStatus: 500, grpcStatus: .internalError)
    }

    /// The same on a delete: 500 ERR_STATE_DELETE naming the app's key.
    static func invalidStateDeleteOption(key: String, _ detail: String) -> APIError {
        APIError(errorCode: "ERR_STATE_DELETE", message: "failed deleting state with key \(key): \(detail)", httpStatus: 500, grpcStatus: .internalError)
    }
}

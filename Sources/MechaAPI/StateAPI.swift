public import MechaCore
public import MechaResiliency
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
    /// Publishes transactional outbox messages; without it, a transaction on a store with an
    /// outbox fails (ERR_PUBLISH_OUTBOX) rather than commit without its messages.
    let pubsub: PubSubAPI?
    /// Retries an outbox message's publish when the pub/sub has no outbound Resiliency policy.
    let outboxRetry: TargetPolicy
    /// Mecha AccessPolicies: which keys this app may get, save and delete.
    let access: BlockAccess?

    public init(
        components: ComponentStore,
        identity: SidecarIdentity,
        pubsub: PubSubAPI? = nil,
        outboxRetry: TargetPolicy = StateAPI.builtInOutboxRetry,
        access: BlockAccess? = nil
    ) {
        self.access = access
        self.components = components
        self.identity = identity
        self.pubsub = pubsub
        self.outboxRetry = outboxRetry
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
        guard !NULText.contains(key) else { throw .stateKeyNUL(store: storeName, key: key) }
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

    /// Refuses the call when an AccessPolicy denies `verb` on one of `keys` (as the app names them).
    func authorize(_ storeName: String, _ keys: [String], _ verb: String) throws(APIError) {
        if let access = self.access, let error = access.stateError(component: storeName, keys: keys, verb: verb) { throw error }
    }

    public func get(storeName: String, key: String, consistency: String? = nil, metadata: [String: String] = [:]) async throws(APIError) -> StateItem? {
        let (store, spec) = try self.store(storeName)
        try self.authorize(storeName, [key], "get")
        let stored = try self.storedKey(key, storeName: storeName, spec: spec)
        // Reads do not validate the consistency (daprd's stores ignore a value they do not know).
        let parsedConsistency = consistency.flatMap(StateConsistency.init(rawValue:)) ?? .eventual
        do {
            let request = StateGetRequest(key: stored, consistency: parsedConsistency, metadata: metadata)
            guard var item = try await self.components.call(storeName, .state, "get", { try await store.get(request) }) else { return nil }
            item.key = key
            return item
        } catch {
            throw .stateGet(key: key, store: storeName, "\(error)")
        }
    }

    public func bulkGet(storeName: String, keys: [String], metadata: [String: String] = [:]) async throws(APIError) -> [StateBulkItem] {
        let (store, spec) = try self.store(storeName)
        try self.authorize(storeName, keys, "get")
        guard !keys.isEmpty else { return [] }
        var requests: [StateGetRequest] = []
        requests.reserveCapacity(keys.count)
        for key in keys {
            requests.append(StateGetRequest(key: try self.storedKey(key, storeName: storeName, spec: spec), metadata: metadata))
        }
        let results: [StateBulkItem]
        do {
            results = try await self.components.call(storeName, .state, "bulkGet") { [requests] in try await store.bulkGet(requests) }
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
        try self.authorize(storeName, items.map(\.key), "save")
        guard !items.isEmpty else { return }
        var requests: [StateSetRequest] = []
        for item in items {
            guard !item.key.isEmpty else { throw .malformedRequest(message: "\"key\" is a required field") }
            requests.append(try self.setRequest(item, storeName: storeName, spec: spec) { .invalidStateOption(store: storeName, $0) })
        }
        for request in requests {
            do {
                try await self.components.call(storeName, .state, "set") { try await store.set(request) }
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
        try self.authorize(storeName, [key], "delete")
        let request = try self.deleteRequest(key: key, etag: etag, concurrency: concurrency, consistency: consistency, metadata: metadata, storeName: storeName, spec: spec) {
            .invalidStateDeleteOption(key: key, $0)
        }
        do {
            try await self.components.call(storeName, .state, "delete") { try await store.delete(request) }
        } catch {
            throw .stateDelete(key: key, error)
        }
    }

    /// `POST /v1.0/state/{store}/transaction` and gRPC `ExecuteStateTransaction`. On a store with a
    /// transactional outbox (`outboxPublishPubsub` + `outboxPublishTopic`), each upsert of a
    /// committed transaction is also published; see `publishOutbox`.
    public func transact(
        storeName: String,
        operations: [TransactionOperationRequest],
        metadata: [String: String] = [:],
        traceParent: String = "",
        traceState: String = ""
    ) async throws(APIError) {
        let (store, spec) = try self.store(storeName)
        guard let transactional = store as? any TransactionalStateStore, store.features.contains(.transactional) else {
            throw .stateTransactionsNotSupported(storeName)
        }
        guard !operations.isEmpty else { return }
        if self.access?.isActive == true {
            for operation in operations {
                switch operation {
                case .upsert(let item): try self.authorize(storeName, [item.key], "save")
                case .delete(let key, _, _, _, _): try self.authorize(storeName, [key], "delete")
                }
            }
        }
        if let maximum = transactional.maxOperationsPerTransaction, operations.count > maximum {
            throw .stateTooManyTransactions(storeName, count: operations.count, max: maximum)
        }
        let outbox: StateOutboxSettings?
        do {
            outbox = try StateOutboxSettings.parse(spec.metadata)
        } catch {
            // The loader refuses such a store; one built some other way must not commit silently.
            throw .pubsubOutbox(appID: self.identity.appID, "state store \(storeName): \(error)")
        }
        var converted: [StateOperation] = []
        var upserts: [(key: String, item: SaveStateItem)] = []
        var projections: [String: SaveStateItem] = [:]
        for operation in operations {
            switch operation {
            case .upsert(let item):
                guard !item.key.isEmpty else { throw .malformedRequest(message: "\"key\" is a required field") }
                // The transaction's own metadata goes to the store with the whole transaction, not
                // into each operation (as daprd).
                let request = try self.setRequest(item, storeName: storeName, spec: spec) { .stateTransaction($0) }
                if outbox != nil {
                    // A projection is not saved: its value is what the outbox publishes for the
                    // upsert of the same key (the first projection of a key wins, as documented).
                    if Self.isOutboxProjection(item.metadata) {
                        if projections[request.key] == nil { projections[request.key] = item }
                        continue
                    }
                    upserts.append((request.key, item))
                }
                converted.append(.set(request))
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

        // Outbox messages are built, and their destination checked, before anything is written:
        // a message that cannot be published fails the transaction without committing it.
        var messages: [JSONValue] = []
        if let outbox, !upserts.isEmpty {
            guard let pubsub = self.pubsub else {
                throw .pubsubOutbox(appID: self.identity.appID, "pub/sub is not available to publish to \(outbox.publishPubsub)")
            }
            do {
                try pubsub.checkPublish(pubsubName: outbox.publishPubsub, topic: outbox.publishTopic)
            } catch {
                throw .pubsubOutbox(appID: self.identity.appID, error.message)
            }
            let now = pubsub.now()
            for (key, item) in upserts {
                messages.append(self.outboxEvent(for: item, projection: projections[key], outbox: outbox, traceParent: traceParent, traceState: traceState, now: now))
            }
        }

        do {
            try await self.components.call(storeName, .state, "transact") { [converted] in try await transactional.transact(converted, metadata: metadata) }
        } catch {
            throw .stateTransaction("\(error)")
        }
        if let outbox, let pubsub = self.pubsub, !messages.isEmpty {
            try await self.publishOutbox(messages, outbox: outbox, pubsub: pubsub)
        }
    }

    // MARK: Transactional outbox

    /// Mecha's built-in outbox publish retry: four more attempts, 100 ms apart then growing (used
    /// only when the outbox pub/sub has no outbound policy of its own).
    public static let builtInOutboxRetry = TargetPolicy(
        retry: (
            name: "MechaBuiltInOutboxRetries",
            backoff: Backoff(.exponential(initial: .milliseconds(100), multiplier: 2, maxInterval: .seconds(1)), maxRetries: 4),
            matching: RetryMatching()
        )
    )

    /// Publishes the outbox messages of a committed transaction, in operation order, each retried
    /// by the pub/sub's outbound policy (or `builtInOutboxRetry`). daprd routes them through an internal topic so that a
    /// message exists exactly when the state committed; Mecha publishes after the commit instead.
    /// So: nothing is published for a transaction that did not commit, and success is reported
    /// only when every message was accepted by the pub/sub. If one still fails, the others are
    /// attempted all the same and the call fails with ERR_PUBLISH_OUTBOX (500), saying that the
    /// state was committed: the caller knows the notification is missing and may retry (message
    /// ids are fresh per transaction, so a retried transaction publishes new ids).
    func publishOutbox(_ messages: [JSONValue], outbox: StateOutboxSettings, pubsub: PubSubAPI) async throws(APIError) {
        var failures: [APIError] = []
        for message in messages {
            do {
                try await pubsub.publishEvent(message, pubsubName: outbox.publishPubsub, topic: outbox.publishTopic, fallback: self.outboxRetry)
            } catch {
                failures.append(error)
            }
        }
        guard let first = failures.first else { return }
        throw .pubsubOutbox(
            appID: self.identity.appID,
            "\(first.message) (the state transaction was committed; \(failures.count) of \(messages.count) outbox messages could not be published)"
        )
    }

    /// The CloudEvent daprd's outbox publishes for one upsert (`PublishInternal`, then the relay):
    /// id `outbox-<uuid>`, source the app id, type `com.dapr.event.sent`, `data` from the value (of
    /// the projection when there is one) by its content type, `traceid` the caller's trace. Every
    /// metadata entry of the saved upsert becomes a top-level field (so `type`, `source`, `subject`
    /// or custom fields can be set), except `data` and `id`; `topic` and `pubsubname` always name
    /// the destination.
    func outboxEvent(
        for item: SaveStateItem,
        projection: SaveStateItem?,
        outbox: StateOutboxSettings,
        traceParent: String,
        traceState: String,
        now: Timestamp
    ) -> JSONValue {
        let payload = projection ?? item
        let contentType = payload.contentType ?? payload.metadata["contentType"] ?? ""
        let envelope = CloudEvent.make(
            CloudEvent.Envelope(
                id: "outbox-" + RandomID.uuid(),
                source: self.identity.appID.isEmpty ? "Dapr" : self.identity.appID,
                topic: outbox.publishTopic,
                pubsubName: outbox.publishPubsub,
                dataContentType: contentType,
                data: Self.outboxData(payload.value, contentType: contentType),
                traceState: traceState,
                time: now
            )
        )
        var fields: [String: JSONValue] = [:]
        for (key, value) in envelope.objectMembers ?? [] { fields[key] = value }
        // daprd sets `traceid` only; `traceparent` stays empty.
        fields["traceid"] = .string(traceParent)
        for (key, value) in item.metadata where key != "data" && key != "id" {
            fields[key] = .string(value)
        }
        fields["topic"] = .string(outbox.publishTopic)
        fields["pubsubname"] = .string(outbox.publishPubsub)
        return .object(sorted: fields)
    }

    /// The bytes an upsert's value contributes to `data`. A JSON string value (what the HTTP API
    /// stores for `"value":"2"`) contributes its text, as daprd formats the decoded string; any
    /// other value contributes its bytes (for JSON content types `CloudEvent.make` parses them).
    static func outboxData(_ value: [UInt8], contentType: String) -> [UInt8] {
        guard !CloudEvent.isJSON(contentType), value.first == UInt8(ascii: "\""),
            case .string(let text)? = try? JSONValue(parsing: value)
        else { return value }
        return Array(text.utf8)
    }

    /// `outbox.projection` set to a truthy value (daprd's kit `IsTruthy`).
    static func isOutboxProjection(_ metadata: [String: String]) -> Bool {
        guard let raw = metadata["outbox.projection"] else { return false }
        return ["1", "t", "true", "y", "yes", "on"].contains(raw.trimmingSpaces().lowercased())
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
        let text = raw.trimmingSpaces()
        guard let seconds = Int64(text) else {
            let digits = text.drop(while: { $0 == "-" || $0 == "+" })
            let reason = !digits.isEmpty && digits.allSatisfy({ $0 >= "0" && $0 <= "9" }) ? "value out of range" : "invalid syntax"
            throw error("error parsing TTL: incorrect value for metadata 'ttlInSeconds': strconv.ParseInt: parsing \"\(raw)\": \(reason)")
        }
        guard seconds >= -1 else {
            throw error("error parsing TTL: incorrect value for metadata 'ttlInSeconds': must be -1 or greater")
        }
        // As daprd: a TTL beyond Int32.max seconds (68 years) is capped there, not refused.
        return seconds > 0 ? .seconds(min(seconds, Int64(Int32.max))) : nil
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

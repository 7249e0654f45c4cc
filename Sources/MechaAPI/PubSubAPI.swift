public import MechaCore
public import MechaResiliency
public import MechaRuntime

/// One entry of a bulk publish request.
public struct BulkPublishRequestEntry: Sendable {
    /// The event as the surface carries it.
    public enum Event: Sendable {
        /// HTTP: a JSON value (an object for JSON types, a string for text and base64 binary).
        case json(JSONValue)
        /// gRPC: the bytes themselves.
        case bytes([UInt8])
    }

    public var entryID: String
    public var event: Event
    public var contentType: String
    public var metadata: [String: String]?

    public init(entryID: String, event: Event, contentType: String, metadata: [String: String]?) {
        self.entryID = entryID
        self.event = event
        self.contentType = contentType
        self.metadata = metadata
    }
}

/// One entry that could not be published.
public struct FailedPublishEntry: Sendable, Hashable {
    public var entryID: String
    public var error: String
}

/// The pub/sub building block's publishing side: CloudEvent wrapping, scopes, TTL, errors.
public struct PubSubAPI: Sendable {
    let components: ComponentStore
    let identity: SidecarIdentity
    let now: @Sendable () -> Timestamp

    /// The component's topic scopes and Mecha AccessPolicies (verb `publish`) both allow it.
    func mayPublish(_ topic: String, pubsubName: String, spec: ComponentSpec) -> Bool {
        guard TopicScopes(metadata: spec.metadata, appID: self.identity.appID).mayPublish(topic) else { return false }
        return self.access?.denial(.pubsub, component: pubsubName, resource: topic, verb: "publish") == nil
    }

    /// Mecha AccessPolicies: which topics this app may publish to.
    let access: BlockAccess?

    public init(components: ComponentStore, identity: SidecarIdentity, now: @escaping @Sendable () -> Timestamp, access: BlockAccess? = nil) {
        self.access = access
        self.components = components
        self.identity = identity
        self.now = now
    }

    public func pubsub(_ name: String, metadata: [String: String]) throws(APIError) -> (pubsub: any PubSub, spec: ComponentSpec) {
        guard !name.isEmpty else { throw .pubsubEmpty(metadata: metadata) }
        guard let entry = self.components.entry(named: name), entry.spec.type.category == .pubsub, let pubsub = entry.component as? any PubSub else {
            throw .pubsubNotFound(name, metadata: metadata)
        }
        return (pubsub, entry.spec)
    }

    /// Publishes one message (`POST /v1.0/publish/{pubsub}/{topic}`).
    public func publish(
        pubsubName: String,
        topic: String,
        data: [UInt8],
        contentType: String?,
        metadata: [String: String],
        traceParent: String = "",
        traceState: String = ""
    ) async throws(APIError) {
        let (pubsub, spec) = try self.pubsub(pubsubName, metadata: metadata)
        guard !topic.isEmpty else { throw .pubsubTopicEmpty(pubsubName, metadata: metadata) }
        guard !NULText.contains(topic) else { throw .containsNUL("topic", topic) }
        let raw = try Self.rawPayload(metadata, pubsub: pubsubName)
        let ttl = Self.ttl(metadata)
        let message = try self.message(
            data: data,
            contentType: contentType,
            raw: raw,
            ttl: ttl,
            handlesTTL: pubsub.features.contains(.messageTTL),
            topic: topic,
            pubsubName: pubsubName,
            metadata: metadata,
            traceParent: traceParent,
            traceState: traceState
        )
        // Scopes are checked when the message is handed to the component, after the envelope is
        // built (daprd's order: a bad CloudEvent is a 500 even on a forbidden topic).
        guard self.mayPublish(topic, pubsubName: pubsubName, spec: spec) else {
            throw .pubsubForbidden(topic: topic, pubsub: pubsubName, appID: self.identity.appID, metadata: ["topic": topic, "error": "not allowed"])
        }
        do {
            let request = PublishRequest(topic: topic, data: message.data, contentType: message.contentType, metadata: metadata, ttl: ttl)
            try await self.components.call(pubsubName, .pubsub, OperationName("publish", subject: topic)) { try await pubsub.publish(request) }
        } catch {
            throw .pubsubPublish(topic: topic, pubsub: pubsubName, "\(error)", metadata: ["topic": topic, "error": "\(error)"])
        }
    }

    /// Checks, without publishing, that this app may publish to `topic` on `pubsubName`: the
    /// component is loaded, the topic is not empty and publishing scopes allow it. Returns the
    /// component.
    @discardableResult
    public func checkPublish(pubsubName: String, topic: String) throws(APIError) -> any PubSub {
        let (pubsub, spec) = try self.pubsub(pubsubName, metadata: [:])
        guard !topic.isEmpty else { throw .pubsubTopicEmpty(pubsubName) }
        guard !NULText.contains(topic) else { throw .containsNUL("topic", topic) }
        guard self.mayPublish(topic, pubsubName: pubsubName, spec: spec) else {
            throw .pubsubForbidden(topic: topic, pubsub: pubsubName, appID: self.identity.appID, metadata: ["topic": topic, "error": "not allowed"])
        }
        return pubsub
    }

    /// Publishes a CloudEvent the runtime built itself (the transactional outbox): no envelope is
    /// added and no metadata is interpreted; scopes apply as for any publish.
    /// `fallback` is the policy used when the pub/sub has no outbound policy of its own.
    public func publishEvent(_ event: JSONValue, pubsubName: String, topic: String, metadata: [String: String] = [:], fallback: TargetPolicy? = nil) async throws(APIError) {
        let pubsub = try self.checkPublish(pubsubName: pubsubName, topic: topic)
        do {
            let request = PublishRequest(topic: topic, data: event.serialized, contentType: CloudEvent.contentType, metadata: metadata)
            try await self.components.call(pubsubName, .pubsub, OperationName("publish", subject: topic), fallback: fallback) { try await pubsub.publish(request) }
        } catch {
            throw .pubsubPublish(topic: topic, pubsub: pubsubName, "\(error)", metadata: ["topic": topic, "error": "\(error)"])
        }
    }

    /// Publishes several messages; returns the entries that failed (empty when all succeeded).
    public func bulkPublish(
        pubsubName: String,
        topic: String,
        entries: [BulkPublishRequestEntry],
        metadata: [String: String],
        traceParent: String = "",
        traceState: String = ""
    ) async throws(APIError) -> [FailedPublishEntry] {
        let (pubsub, spec) = try self.pubsub(pubsubName, metadata: metadata)
        guard !topic.isEmpty else { throw .pubsubTopicEmpty(pubsubName, metadata: metadata) }
        guard !NULText.contains(topic) else { throw .containsNUL("topic", topic) }
        let raw = try Self.rawPayload(metadata, pubsub: pubsubName)
        var prepared: [BulkPublishEntry] = []
        var seen: Set<String> = []
        for entry in entries {
            let bytes: [UInt8]
            switch entry.event {
            case .bytes(let raw):
                bytes = raw
            case .json(let value):
                switch Self.bytes(of: value, contentType: entry.contentType) {
                case .success(let value): bytes = value
                case .failure(let message):
                    throw APIError.pubsubMarshalEnvelope(topic: topic, pubsub: pubsubName, message, appID: self.identity.appID)
                }
            }
            guard !entry.entryID.isEmpty, seen.insert(entry.entryID).inserted else {
                throw .pubsubMarshalEvents(topic: topic, pubsub: pubsubName, "entryId is duplicated or not present for entry", metadata: metadata)
            }
            var entryMetadata = entry.metadata ?? [:]
            if entry.metadata != nil { entryMetadata.merge(metadata) { own, _ in own } }
            let ttl = Self.ttl(entryMetadata)
            let message = try self.message(
                data: bytes,
                contentType: entry.contentType,
                raw: raw,
                ttl: ttl,
                handlesTTL: pubsub.features.contains(.messageTTL),
                topic: topic,
                pubsubName: pubsubName,
                metadata: entryMetadata,
                traceParent: traceParent,
                traceState: traceState
            )
            prepared.append(
                BulkPublishEntry(
                    entryID: entry.entryID,
                    request: PublishRequest(topic: topic, data: message.data, contentType: message.contentType, metadata: entryMetadata, ttl: ttl)
                )
            )
        }
        guard self.mayPublish(topic, pubsubName: pubsubName, spec: spec) else {
            throw .pubsubForbidden(topic: topic, pubsub: pubsubName, appID: self.identity.appID, metadata: ["topic": topic, "error": "not allowed"])
        }
        if let bulk = pubsub as? any BulkPublisher, pubsub.features.contains(.bulkPublish) {
            do {
                return try await self.components.call(pubsubName, .pubsub, OperationName("bulkPublish", subject: topic)) { [prepared] in try await bulk.bulkPublish(prepared) }
                    .map { FailedPublishEntry(entryID: $0.entryID, error: $0.error) }
            } catch {
                return prepared.map { FailedPublishEntry(entryID: $0.entryID, error: "\(error)") }
            }
        }
        var failed: [FailedPublishEntry] = []
        for entry in prepared {
            do {
                try await self.components.call(pubsubName, .pubsub, OperationName("publish", subject: topic)) { try await pubsub.publish(entry.request) }
            } catch {
                failed.append(FailedPublishEntry(entryID: entry.entryID, error: "\(error)"))
            }
        }
        return failed
    }

    /// Bytes and content type stored in the broker for one published payload.
    func message(
        data: [UInt8],
        contentType: String?,
        raw: Bool,
        ttl: Duration?,
        handlesTTL: Bool,
        topic: String,
        pubsubName: String,
        metadata: [String: String],
        traceParent: String,
        traceState: String
    ) throws(APIError) -> (data: [UInt8], contentType: String) {
        if raw { return (data, contentType ?? "application/octet-stream") }
        let now = self.now()
        let expiration = (ttl != nil && !handlesTTL) ? now.adding(ttl!) : nil
        let contentType = contentType ?? ""
        if CloudEvent.mediaType(contentType) == CloudEvent.contentType {
            guard
                let event = CloudEvent.complete(
                    data,
                    topic: topic,
                    pubsubName: pubsubName,
                    traceParent: traceParent,
                    traceState: traceState,
                    now: now,
                    expiration: expiration
                )
            else { throw .pubsubCloudEventCreation(pubsubName, metadata: ["appID": self.identity.appID, "error": "not a JSON object"]) }
            return (event.serialized, CloudEvent.contentType)
        }
        func override(_ name: String) -> String? {
            metadata.first { $0.key.lowercased() == "cloudevent.\(name)" }.map(\.value).flatMap { $0.isEmpty ? nil : $0 }
        }
        let trace = override("traceparent") ?? override("traceid") ?? traceParent
        let envelope = CloudEvent.Envelope(
            id: override("id") ?? RandomID.uuid(),
            source: override("source") ?? (self.identity.appID.isEmpty ? "Dapr" : self.identity.appID),
            type: override("type") ?? CloudEvent.defaultType,
            topic: topic,
            pubsubName: pubsubName,
            dataContentType: contentType,
            data: data,
            traceParent: trace,
            traceState: override("tracestate") ?? traceState,
            time: now,
            subject: override("subject"),
            expiration: expiration
        )
        return (CloudEvent.make(envelope).serialized, CloudEvent.contentType)
    }

    static func rawPayload(_ metadata: [String: String], pubsub: String) throws(APIError) -> Bool {
        guard let value = metadata["rawPayload"], !value.isEmpty else { return false }
        switch value {
        case "1", "t", "T", "TRUE", "true", "True": return true
        case "0", "f", "F", "FALSE", "false", "False": return false
        default:
            throw .pubsubMetadata(pubsub, "rawPayload value must be a valid boolean: actual is '\(value)'", metadata: metadata)
        }
    }

    /// `ttl` or `ttlInSeconds` (case-insensitive): a Go duration or whole seconds; bad values are
    /// ignored, and a TTL longer than Go can represent is clamped to `Duration.goMaximum`, as in daprd.
    static func ttl(_ metadata: [String: String]) -> Duration? {
        let lowered = Dictionary(metadata.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { first, _ in first })
        guard let raw = lowered["ttl"] ?? lowered["ttlinseconds"], !raw.isEmpty else { return nil }
        if let duration = GoDuration.parse(raw), Int64(raw) == nil { return duration > .zero ? duration : nil }
        guard let seconds = Int64(raw), seconds > 0 else { return nil }
        return Duration.seconds(seconds).clamped(to: .zero ... .goMaximum)
    }

    /// A bulk entry's `event` as bytes for its content type.
    static func bytes(of event: JSONValue, contentType: String) -> Result<[UInt8], BulkEntryError> {
        let media = CloudEvent.mediaType(contentType)
        if media == "application/octet-stream" {
            guard case .string(let text) = event else { return .failure(BulkEntryError("error: mismatch between contentType and event")) }
            guard let decoded = Base64.decode(text) else {
                return .failure(BulkEntryError("error: unable to decode base64 application/octect-stream data: illegal base64 data"))
            }
            return .success(decoded)
        }
        if media.hasPrefix("text/") || media == "application/xml" {
            guard case .string(let text) = event else { return .failure(BulkEntryError("error: mismatch between contentType and event")) }
            return .success(Array(text.utf8))
        }
        if media == "application/json" || media == CloudEvent.contentType {
            return .success(event.serialized)
        }
        return .failure(BulkEntryError("error: mismatch between contentType and event"))
    }

    struct BulkEntryError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}

extension APIError {
    static func pubsubMarshalEnvelope(topic: String, pubsub: String, _ error: PubSubAPI.BulkEntryError, appID: String) -> APIError {
        let message = "error when marshalling cloud event envelope for topic \(topic) pubsub \(pubsub): \(error)"
        return APIError(
            errorCode: "ERR_PUBSUB_EVENTS_SER",
            message: message,
            httpStatus: 400,
            grpcStatus: .invalidArgument,
            details: .init(
                reason: "DAPR_PUBSUB_MARSHAL_ENVELOPE",
                metadata: ["appID": appID, "error": error.description],
                resourceType: "pubsub",
                resourceName: pubsub,
                resourceDescription: message
            )
        )
    }
}

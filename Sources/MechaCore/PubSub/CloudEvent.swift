/// CloudEvents 1.0 envelopes the way Dapr builds them for pub/sub (JSON structured mode).
public enum CloudEvent {
    public static let contentType = "application/cloudevents+json"
    public static let defaultType = "com.dapr.event.sent"
    public static let specVersion = "1.0"

    /// Inputs for a new envelope around a published payload.
    public struct Envelope: Sendable {
        public var id: String
        public var source: String
        public var type: String
        public var topic: String
        public var pubsubName: String
        /// The request's content type; `text/plain` when empty.
        public var dataContentType: String
        public var data: [UInt8]
        public var traceParent: String
        public var traceState: String
        public var time: Timestamp
        public var subject: String?
        /// Set when the message has a TTL the component does not enforce itself.
        public var expiration: Timestamp?

        public init(
            id: String,
            source: String,
            type: String = CloudEvent.defaultType,
            topic: String,
            pubsubName: String,
            dataContentType: String,
            data: [UInt8],
            traceParent: String = "",
            traceState: String = "",
            time: Timestamp,
            subject: String? = nil,
            expiration: Timestamp? = nil
        ) {
            self.id = id
            self.source = source
            self.type = type
            self.topic = topic
            self.pubsubName = pubsubName
            self.dataContentType = dataContentType
            self.data = data
            self.traceParent = traceParent
            self.traceState = traceState
            self.time = time
            self.subject = subject
            self.expiration = expiration
        }
    }

    /// Whether a content type is JSON (`application/json`, `…+json` is not included, as in Dapr).
    public static func isJSON(_ contentType: String) -> Bool {
        self.mediaType(contentType) == "application/json"
    }

    /// The media type without parameters, lowercased.
    public static func mediaType(_ contentType: String) -> String {
        let base = contentType.split(separator: ";", maxSplits: 1).first.map(String.init) ?? ""
        return base.trimmingSpaces().lowercased()
    }

    /// Builds a new envelope. `data` holds parsed JSON for JSON content types (a string when the
    /// body is not valid JSON), `data_base64` for binary types, a string otherwise.
    public static func make(_ envelope: Envelope) -> JSONValue {
        let dataContentType = envelope.dataContentType.isEmpty ? "text/plain" : envelope.dataContentType
        let media = self.mediaType(dataContentType)
        var fields: [String: JSONValue] = [
            "id": .string(envelope.id),
            "source": .string(envelope.source),
            "type": .string(envelope.type),
            "specversion": .string(self.specVersion),
            "datacontenttype": .string(dataContentType),
            "topic": .string(envelope.topic),
            "pubsubname": .string(envelope.pubsubName),
            "traceid": .string(envelope.traceParent),
            "traceparent": .string(envelope.traceParent),
            "tracestate": .string(envelope.traceState),
            "time": .string(envelope.time.rfc3339),
        ]
        if let subject = envelope.subject, !subject.isEmpty { fields["subject"] = .string(subject) }
        if let expiration = envelope.expiration { fields["expiration"] = .string(expiration.rfc3339) }
        if media == "application/json" {
            if !envelope.data.isEmpty, let parsed = try? JSONValue(parsing: envelope.data) {
                fields["data"] = parsed
            } else {
                fields["data"] = .string(String(decoding: envelope.data, as: UTF8.self))
            }
        } else if media == "application/octet-stream" || media == "application/cloudevents+protobuf" || media == "application/x-protobuf" {
            fields["data_base64"] = .string(Base64.encode(envelope.data))
        } else {
            fields["data"] = .string(String(decoding: envelope.data, as: UTF8.self))
        }
        return .object(sorted: fields)
    }

    /// Completes an event the app sent as `application/cloudevents+json`: topic and pubsub name are
    /// overwritten; time, trace fields, source, type and specversion are filled in when missing.
    /// Returns `nil` when `body` is not a JSON object.
    public static func complete(
        _ body: [UInt8],
        topic: String,
        pubsubName: String,
        traceParent: String,
        traceState: String,
        now: Timestamp,
        expiration: Timestamp?
    ) -> JSONValue? {
        guard let parsed = try? JSONValue(parsing: body), case .object(let members) = parsed else { return nil }
        var fields: [String: JSONValue] = [:]
        for (key, value) in members { fields[key] = value }
        if fields["time"] == nil || fields["time"]?.isNull == true { fields["time"] = .string(now.rfc3339) }
        if fields["traceid"] == nil {
            fields["traceid"] = .string(traceParent)
            fields["traceparent"] = .string(traceParent)
        }
        if fields["tracestate"] == nil { fields["tracestate"] = .string(traceState) }
        fields["topic"] = .string(topic)
        fields["pubsubname"] = .string(pubsubName)
        if fields["source"] == nil || fields["source"]?.isNull == true { fields["source"] = "Dapr" }
        if fields["type"] == nil || fields["type"]?.isNull == true { fields["type"] = .string(self.defaultType) }
        if fields["specversion"] == nil || fields["specversion"]?.isNull == true { fields["specversion"] = .string(self.specVersion) }
        if let expiration { fields["expiration"] = .string(expiration.rfc3339) }
        return .object(sorted: fields)
    }

    /// The envelope a `rawPayload` subscriber receives around raw message bytes.
    public static func rawPayloadWrapper(_ data: [UInt8], topic: String, pubsubName: String, traceParent: String?, traceState: String?) -> JSONValue {
        var fields: [String: JSONValue] = [
            "data_base64": .string(Base64.encode(data)),
            "datacontenttype": "application/octet-stream",
            "id": .string(RandomID.uuid()),
            "pubsubname": .string(pubsubName),
            "source": "Dapr",
            "specversion": .string(self.specVersion),
            "topic": .string(topic),
            "type": .string(self.defaultType),
        ]
        if let traceParent, !traceParent.isEmpty {
            fields["traceid"] = .string(traceParent)
            fields["traceparent"] = .string(traceParent)
        }
        if let traceState, !traceState.isEmpty { fields["tracestate"] = .string(traceState) }
        return .object(sorted: fields)
    }
}

import MechaCore

/// Encodes finished spans as a Zipkin v2 JSON array, the body of `POST /api/v2/spans`.
///
/// Mapping (as OpenTelemetry's Zipkin exporter does it): ids in lower-case hex, `parentId` only
/// for child spans, `kind` omitted for internal spans, `timestamp` and `duration` in microseconds
/// (duration at least 1, since Zipkin reads 0 as "unknown"), the app id as
/// `localEndpoint.serviceName`, every attribute as a string tag (a repeated key keeps its last
/// value), and the status as `otel.status_code` plus, for errors, an `error` tag holding the
/// message (or `"true"` without one).
public enum ZipkinEncoder {
    /// The JSON array for `spans`, compact UTF-8.
    public static func encode(_ spans: [SpanRecord]) -> [UInt8] {
        JSONValue.array(spans.map(self.json)).serialized
    }

    /// One span as a Zipkin v2 JSON object.
    static func json(_ span: SpanRecord) -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("traceId", .string(span.traceID.hex)),
            ("id", .string(span.spanID.hex)),
        ]
        if let parent = span.parentSpanID { members.append(("parentId", .string(parent.hex))) }
        members.append(("name", .string(span.name)))
        if let kind = self.kind(span.kind) { members.append(("kind", .string(kind))) }
        members.append(("timestamp", .int(span.startUnixNanos / 1000)))
        members.append(("duration", .int(max(1, span.durationNanos / 1000))))
        var endpoint: [(String, JSONValue)] = [("serviceName", .string(span.serviceName))]
        if let local = span.localEndpoint {
            if let ipv4 = local.ipv4 { endpoint.append(("ipv4", .string(ipv4))) }
            if let ipv6 = local.ipv6 { endpoint.append(("ipv6", .string(ipv6))) }
            if let port = local.port { endpoint.append(("port", .int(port))) }
        }
        members.append(("localEndpoint", .object(endpoint)))
        let tags = self.tags(span)
        if !tags.isEmpty { members.append(("tags", .object(tags.map { ($0.0, .string($0.1)) }))) }
        return .object(members)
    }

    static func kind(_ kind: SpanRecord.Kind) -> String? {
        switch kind {
        case .server: "SERVER"
        case .client: "CLIENT"
        case .producer: "PRODUCER"
        case .consumer: "CONSUMER"
        case .internal: nil
        }
    }

    /// Attribute and status tags in first-seen key order, last value winning.
    static func tags(_ span: SpanRecord) -> [(String, String)] {
        var tags: [(String, String)] = []
        var index: [String: Int] = [:]
        func set(_ key: String, _ value: String) {
            if let position = index[key] {
                tags[position].1 = value
            } else {
                index[key] = tags.count
                tags.append((key, value))
            }
        }
        for (key, value) in span.attributes { set(key, value.stringValue) }
        switch span.status {
        case .unset:
            break
        case .ok:
            set("otel.status_code", "OK")
        case .error(let message):
            set("otel.status_code", "ERROR")
            set("error", message.flatMap { $0.isEmpty ? nil : $0 } ?? "true")
        }
        return tags
    }
}

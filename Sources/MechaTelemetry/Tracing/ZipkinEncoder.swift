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
    /// The JSON array for `spans`, compact UTF-8. Written straight into bytes (the export runs
    /// beside the requests on the same cores; a JSON value tree per span cost more than the POST).
    public static func encode(_ spans: [SpanRecord]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(spans.count * 400)
        out.append(UInt8(ascii: "["))
        for (position, span) in spans.enumerated() {
            if position > 0 { out.append(UInt8(ascii: ",")) }
            Self.write(span, into: &out)
        }
        out.append(UInt8(ascii: "]"))
        return out
    }

    /// One span, as `json(_:)` describes it, in the same member order.
    static func write(_ span: SpanRecord, into out: inout [UInt8]) {
        out.append(contentsOf: #"{"traceId":""#.utf8)
        out.append(contentsOf: span.traceID.hex.utf8)
        out.append(contentsOf: #"","id":""#.utf8)
        out.append(contentsOf: span.spanID.hex.utf8)
        if let parent = span.parentSpanID {
            out.append(contentsOf: #"","parentId":""#.utf8)
            out.append(contentsOf: parent.hex.utf8)
        }
        out.append(contentsOf: #"","name":"#.utf8)
        Self.string(span.name, into: &out)
        if let kind = self.kind(span.kind) {
            out.append(contentsOf: #","kind":""#.utf8)
            out.append(contentsOf: kind.utf8)
            out.append(UInt8(ascii: "\""))
        }
        out.append(contentsOf: #","timestamp":"#.utf8)
        out.append(contentsOf: String(span.startUnixNanos / 1000).utf8)
        out.append(contentsOf: #","duration":"#.utf8)
        out.append(contentsOf: String(max(1, span.durationNanos / 1000)).utf8)
        out.append(contentsOf: #","localEndpoint":{"serviceName":"#.utf8)
        Self.string(span.serviceName, into: &out)
        if let local = span.localEndpoint {
            if let ipv4 = local.ipv4 {
                out.append(contentsOf: #","ipv4":"#.utf8)
                Self.string(ipv4, into: &out)
            }
            if let ipv6 = local.ipv6 {
                out.append(contentsOf: #","ipv6":"#.utf8)
                Self.string(ipv6, into: &out)
            }
            if let port = local.port {
                out.append(contentsOf: #","port":"#.utf8)
                out.append(contentsOf: String(port).utf8)
            }
        }
        out.append(UInt8(ascii: "}"))
        let tags = self.tags(span)
        if !tags.isEmpty {
            out.append(contentsOf: #","tags":{"#.utf8)
            for (position, (key, value)) in tags.enumerated() {
                if position > 0 { out.append(UInt8(ascii: ",")) }
                Self.string(key, into: &out)
                out.append(UInt8(ascii: ":"))
                Self.string(value, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "}"))
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped.
    static func string(_ text: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case 0x0A: out.append(contentsOf: #"\n"#.utf8)
            case 0x0D: out.append(contentsOf: #"\r"#.utf8)
            case 0x09: out.append(contentsOf: #"\t"#.utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
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

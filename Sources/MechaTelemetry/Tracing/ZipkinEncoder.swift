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

    /// One span, as `json(_:)` describes it, in the same member order. Ids, numbers and tags go
    /// straight into `out` (no intermediate strings, arrays or dictionaries: at full sampling this
    /// runs for every request).
    static func write(_ span: SpanRecord, into out: inout [UInt8]) {
        out.append(contentsOf: #"{"traceId":""#.utf8)
        LowerHex.append(span.traceID.high, to: &out)
        LowerHex.append(span.traceID.low, to: &out)
        out.append(contentsOf: #"","id":""#.utf8)
        LowerHex.append(span.spanID.value, to: &out)
        if let parent = span.parentSpanID {
            out.append(contentsOf: #"","parentId":""#.utf8)
            LowerHex.append(parent.value, to: &out)
        }
        out.append(contentsOf: #"","name":"#.utf8)
        Self.string(span.name, into: &out)
        if let kind = self.kind(span.kind) {
            out.append(contentsOf: #","kind":""#.utf8)
            out.append(contentsOf: kind.utf8)
            out.append(UInt8(ascii: "\""))
        }
        out.append(contentsOf: #","timestamp":"#.utf8)
        Self.decimal(span.startUnixNanos / 1000, into: &out)
        out.append(contentsOf: #","duration":"#.utf8)
        Self.decimal(max(1, span.durationNanos / 1000), into: &out)
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
                Self.decimal(UInt64(max(0, port)), into: &out)
            }
        }
        out.append(UInt8(ascii: "}"))
        Self.writeTags(span, into: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// The `tags` member, as `tags(_:)` lists them: first-seen key order, last value winning.
    /// Spans carry a handful of attributes, so a repeated key is found by comparing with the
    /// others (no dictionary).
    static func writeTags(_ span: SpanRecord, into out: inout [UInt8]) {
        let attributes = span.attributes
        var statusCode: String?
        var errorText: String?
        switch span.status {
        case .unset: break
        case .ok: statusCode = "OK"
        case .error(let message):
            statusCode = "ERROR"
            errorText = message.flatMap { $0.isEmpty ? nil : $0 } ?? "true"
        }
        var written = 0
        func begin(_ key: String) {
            out.append(contentsOf: written == 0 ? #","tags":{"#.utf8 : ",".utf8)
            written += 1
            Self.string(key, into: &out)
            out.append(UInt8(ascii: ":"))
        }
        for index in attributes.indices {
            let key = attributes[index].0
            // Written at its first occurrence with its last value; later ones are skipped.
            if attributes[..<index].contains(where: { $0.0 == key }) { continue }
            if (statusCode != nil && key == "otel.status_code") || (errorText != nil && key == "error") {
                begin(key)
                Self.string(key == "error" ? errorText! : statusCode!, into: &out)
                if key == "error" { errorText = nil } else { statusCode = nil }
                continue
            }
            let value = attributes[attributes.index(after: index)...].last(where: { $0.0 == key })?.1 ?? attributes[index].1
            begin(key)
            switch value {
            case .string(let text): Self.string(text, into: &out)
            case .int(let number):
                out.append(UInt8(ascii: "\""))
                if number < 0 { out.append(UInt8(ascii: "-")) }
                Self.decimal(number.magnitude, into: &out)
                out.append(UInt8(ascii: "\""))
            default: Self.string(value.stringValue, into: &out)
            }
        }
        if let statusCode {
            begin("otel.status_code")
            Self.string(statusCode, into: &out)
        }
        if let errorText {
            begin("error")
            Self.string(errorText, into: &out)
        }
        if written > 0 { out.append(UInt8(ascii: "}")) }
    }

    /// Decimal digits of `value`.
    static func decimal(_ value: UInt64, into out: inout [UInt8]) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for 20 digits
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[23 - count] = UInt8(truncatingIfNeeded: rest % 10) + UInt8(ascii: "0")
                rest /= 10
                count += 1
            } while rest > 0
            out.append(contentsOf: buffer[(24 - count)...])
        }
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped. Text with
    /// nothing to escape (nearly all) is copied whole.
    static func string(_ text: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { bytes in
            if !bytes.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
                out.append(contentsOf: bytes)
                return
            }
            for byte in bytes {
                switch byte {
                case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
                case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
                case 0x0A: out.append(contentsOf: #"\n"#.utf8)
                case 0x0D: out.append(contentsOf: #"\r"#.utf8)
                case 0x09: out.append(contentsOf: #"\t"#.utf8)
                case 0..<0x20:
                    out.append(contentsOf: #"\u00"#.utf8)
                    out.append(LowerHex.digits[Int(byte >> 4)])
                    out.append(LowerHex.digits[Int(byte & 0x0F)])
                default: out.append(byte)
                }
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

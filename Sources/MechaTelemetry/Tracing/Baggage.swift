/// A validated W3C `baggage` header: application `key=value` members with optional `;` properties.
///
/// A simple validator, not a full model: keys must be RFC 7230 tokens, values and properties use
/// only W3C baggage octets (percent-encoded text stays encoded), at most 180 members and 8192 bytes.
/// A header that breaks any rule is dropped whole (`init?` returns `nil`), as OpenTelemetry does.
public struct Baggage: Sendable, Hashable {
    /// One list member: `key=value;property;key2=value2`.
    public struct Member: Sendable, Hashable {
        /// The member's key (an HTTP token).
        public var key: String
        /// The value as sent (still percent-encoded).
        public var value: String
        /// The properties as sent, each `key` or `key=value`, without surrounding whitespace.
        public var properties: [String]
    }

    /// The largest header, in bytes.
    public static let maxBytes = 8192
    /// The most list members.
    public static let maxMembers = 180

    /// Members in header order.
    public private(set) var members: [Member]

    /// Parses and validates a header value; `nil` when it is empty or breaks any rule.
    public init?(parsing text: some StringProtocol) {
        let utf8 = Array(text.utf8)
        guard !utf8.isEmpty, utf8.count <= Self.maxBytes else { return nil }
        var members: [Member] = []
        for rawMember in utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
            var parts = rawMember.split(separator: UInt8(ascii: ";"), omittingEmptySubsequences: false).makeIterator()
            guard let pair = parts.next(), let first = Self.keyValue(pair), let value = first.1 else { return nil }
            var properties: [String] = []
            while let property = parts.next() {
                guard let parsed = Self.keyValue(property) else { return nil }
                let (propertyKey, propertyValue) = parsed
                properties.append(propertyValue.map { "\(propertyKey)=\($0)" } ?? propertyKey)
            }
            members.append(Member(key: first.0, value: value, properties: properties))
            guard members.count <= Self.maxMembers else { return nil }
        }
        self.members = members
    }

    /// The value of `key` (still percent-encoded), if present.
    public subscript(key: String) -> String? {
        self.members.first { $0.key == key }?.value
    }

    /// The header value, members joined by `,` and properties by `;`, without whitespace.
    public var header: String {
        self.members.map { member in
            ([member.key + "=" + member.value] + member.properties).joined(separator: ";")
        }.joined(separator: ",")
    }

    /// `key OWS "=" OWS value` (value may be empty) or a bare `key` (value `nil`); `nil` if malformed.
    static func keyValue(_ text: ArraySlice<UInt8>) -> (String, String?)? {
        let trimmed = TraceState.trimmingOWS(text)
        guard let equals = trimmed.firstIndex(of: UInt8(ascii: "=")) else {
            guard !trimmed.isEmpty, trimmed.allSatisfy(Self.isTokenChar) else { return nil }
            return (String(decoding: trimmed, as: UTF8.self), nil)
        }
        let key = TraceState.trimmingOWS(trimmed[trimmed.startIndex..<equals])
        let value = TraceState.trimmingOWS(trimmed[trimmed.index(after: equals)...])
        guard !key.isEmpty, key.allSatisfy(Self.isTokenChar), value.allSatisfy(Self.isBaggageOctet) else { return nil }
        return (String(decoding: key, as: UTF8.self), String(decoding: value, as: UTF8.self))
    }

    /// RFC 7230 `tchar`.
    static func isTokenChar(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// W3C `baggage-octet`: printable ASCII except space, `"`, `,`, `;` and `\`.
    static func isBaggageOctet(_ byte: UInt8) -> Bool {
        (0x21...0x7E).contains(byte) && byte != 0x22 && byte != 0x2C && byte != 0x3B && byte != 0x5C
    }
}

/// A validated W3C `tracestate` header: vendor `key=value` members, passed on beside `traceparent`.
///
/// Dapr forwards `tracestate` only when it is at most 512 characters; anything longer, with more
/// than 32 members, a malformed member or a repeated key is dropped whole (`init?` returns `nil`)
/// rather than trimmed, because a partial vendor state can be worse than none. Empty members and
/// optional whitespace around commas are allowed and removed from `header`.
public struct TraceState: Sendable, Hashable {
    /// One `key=value` list member.
    public struct Member: Sendable, Hashable {
        /// A vendor key, `name` or `tenant@system`.
        public var key: String
        /// The vendor's opaque value.
        public var value: String
    }

    /// The longest header Dapr passes on.
    public static let maxLength = 512
    /// The most list members W3C allows.
    public static let maxMembers = 32

    /// Members in header order (the most recently updated vendor first).
    public private(set) var members: [Member]

    /// Parses and validates a header value; `nil` when it must be dropped. An empty or blank value
    /// is a valid, empty state.
    public init?(parsing text: some StringProtocol) {
        guard text.utf8.count <= Self.maxLength else { return nil }
        var members: [Member] = []
        var keys: Set<Substring> = []
        for rawMember in Array(text.utf8).split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
            let member = Self.trimmingOWS(rawMember)
            if member.isEmpty { continue }
            guard let equals = member.firstIndex(of: UInt8(ascii: "=")) else { return nil }
            let key = member[member.startIndex..<equals]
            let value = member[member.index(after: equals)...]
            guard Self.isValidKey(key), Self.isValidValue(value) else { return nil }
            let keyText = Substring(decoding: key, as: UTF8.self)
            guard keys.insert(keyText).inserted else { return nil }
            members.append(Member(key: String(keyText), value: String(decoding: value, as: UTF8.self)))
            guard members.count <= Self.maxMembers else { return nil }
        }
        self.members = members
    }

    /// True when there are no members (nothing to send).
    public var isEmpty: Bool { self.members.isEmpty }

    /// The value of `key`, if present.
    public subscript(key: String) -> String? {
        self.members.first { $0.key == key }?.value
    }

    /// The header value: members joined by `,` without whitespace.
    public var header: String {
        self.members.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    static func trimmingOWS(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        let isOWS: (UInt8) -> Bool = { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        guard let first = bytes.firstIndex(where: { !isOWS($0) }), let last = bytes.lastIndex(where: { !isOWS($0) }) else {
            return bytes[bytes.endIndex...]
        }
        return bytes[first...last]
    }

    /// `simple-key` (lcalpha, then up to 255 of lcalpha digit `_-*/`) or
    /// `tenant@system` (tenant: lcalpha/digit then up to 240; system: lcalpha then up to 13).
    static func isValidKey(_ key: ArraySlice<UInt8>) -> Bool {
        let isLowerAlpha: (UInt8) -> Bool = { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) }
        let isDigit: (UInt8) -> Bool = { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
        let isKeyChar: (UInt8) -> Bool = {
            isLowerAlpha($0) || isDigit($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "/")
        }
        if let at = key.firstIndex(of: UInt8(ascii: "@")) {
            let tenant = key[key.startIndex..<at]
            let system = key[key.index(after: at)...]
            guard let tenantFirst = tenant.first, isLowerAlpha(tenantFirst) || isDigit(tenantFirst), tenant.count <= 241,
                  tenant.dropFirst().allSatisfy(isKeyChar),
                  let systemFirst = system.first, isLowerAlpha(systemFirst), system.count <= 14,
                  system.dropFirst().allSatisfy(isKeyChar)
            else { return false }
            return true
        }
        guard let first = key.first, isLowerAlpha(first), key.count <= 256 else { return false }
        return key.dropFirst().allSatisfy(isKeyChar)
    }

    /// 1–256 printable ASCII characters other than `,` and `=`, not ending in a space.
    static func isValidValue(_ value: ArraySlice<UInt8>) -> Bool {
        guard let last = value.last, last != UInt8(ascii: " "), value.count <= 256 else { return false }
        return value.allSatisfy { (0x20...0x7E).contains($0) && $0 != UInt8(ascii: ",") && $0 != UInt8(ascii: "=") }
    }
}

public import NIOCore

/// One reply from a Redis server, in RESP2 or RESP3.
///
/// RESP2's null bulk string (`$-1`) and null array (`*-1`) and RESP3's null (`_`) all decode to
/// `.null`, so callers need not care which protocol the connection speaks. An error reply is a value
/// too (`.error`): inside an array (the replies of `EXEC`, say) it stays a value; as the whole reply
/// to a command, `RESPConnection.send` throws it as a ``RESPError`` with code `.server`.
/// RESP3 attributes (`|`) are read and dropped; the value they annotate is returned.
public enum RESPValue: Sendable, Hashable {
    /// `+OK`
    case simpleString(String)
    /// `-ERR message` or RESP3's blob error `!<len>`: the server's text, e.g. `WRONGTYPE Operation against a key…`.
    case error(String)
    /// `:42`
    case integer(Int64)
    /// `$<len>` binary-safe bytes.
    case bulkString(ByteBuffer)
    /// `*<n>`
    case array([RESPValue])
    /// `$-1`, `*-1` or RESP3 `_`.
    case null
    /// RESP3 `,1.5` (also `inf`, `-inf`, `nan`).
    case double(Double)
    /// RESP3 `#t` / `#f`.
    case boolean(Bool)
    /// RESP3 `(` arbitrary-precision integer, kept as its decimal text.
    case bigNumber(String)
    /// RESP3 `=<len>` text with a three-letter format (`txt`, `mkd`).
    case verbatimString(format: String, text: String)
    /// RESP3 `%<n>` key/value pairs in the order the server sent them.
    case map([MapEntry])
    /// RESP3 `~<n>`
    case set([RESPValue])
    /// RESP3 `><n>` out-of-band message (pub/sub, invalidation); never the reply to a command.
    case push([RESPValue])

    /// One key/value pair of a RESP3 map.
    public struct MapEntry: Sendable, Hashable {
        public var key: RESPValue
        public var value: RESPValue

        public init(key: RESPValue, value: RESPValue) {
            self.key = key
            self.value = value
        }
    }
}

extension RESPValue {
    /// A bulk string holding the UTF-8 of `text`.
    public static func bulkString(_ text: String) -> RESPValue { .bulkString(ByteBuffer(string: text)) }

    /// The text of a simple, bulk or verbatim string, a big number, an error, or an integer in
    /// decimal; nil otherwise.
    /// Bulk strings are decoded as UTF-8 (invalid sequences are repaired).
    public var string: String? {
        switch self {
        case .simpleString(let text), .error(let text), .bigNumber(let text): text
        case .bulkString(let bytes): String(buffer: bytes)
        case .verbatimString(_, let text): text
        case .integer(let value): String(value)
        default: nil
        }
    }

    /// The bytes of a bulk or simple string; nil otherwise.
    public var bytes: ByteBuffer? {
        switch self {
        case .bulkString(let bytes): bytes
        case .simpleString(let text), .verbatimString(_, let text): ByteBuffer(string: text)
        default: nil
        }
    }

    /// An integer reply, or a string that holds a decimal integer (RESP2 sends many numbers as bulk strings).
    public var int: Int? {
        switch self {
        case .integer(let value): Int(exactly: value)
        case .bulkString, .simpleString, .bigNumber: self.string.flatMap { Int($0) }
        default: nil
        }
    }

    /// A double reply, an integer, or a string holding a number (RESP2's `ZSCORE`, `INCRBYFLOAT`).
    public var double: Double? {
        switch self {
        case .double(let value): value
        case .integer(let value): Double(value)
        case .bulkString, .simpleString: self.string.flatMap { Double($0) }
        default: nil
        }
    }

    /// A RESP3 boolean, or RESP2's integer 0/1.
    public var bool: Bool? {
        switch self {
        case .boolean(let value): value
        case .integer(0): false
        case .integer(1): true
        default: nil
        }
    }

    /// The elements of an array, set or push; nil otherwise (`.null` too).
    public var array: [RESPValue]? {
        switch self {
        case .array(let values), .set(let values), .push(let values): values
        default: nil
        }
    }

    /// The pairs of a RESP3 map, or of a RESP2 array of alternating keys and values (`HGETALL`,
    /// `CONFIG GET`); nil otherwise.
    public var mapEntries: [MapEntry]? {
        switch self {
        case .map(let entries):
            return entries
        case .array(let values) where values.count.isMultiple(of: 2):
            return stride(from: 0, to: values.count, by: 2).map { MapEntry(key: values[$0], value: values[$0 + 1]) }
        default:
            return nil
        }
    }

    /// ``mapEntries`` keyed by each key's ``string``; later duplicates win.
    public var dictionary: [String: RESPValue]? {
        guard let entries = self.mapEntries else { return nil }
        var result: [String: RESPValue] = [:]
        for entry in entries {
            guard let key = entry.key.string else { return nil }
            result[key] = entry.value
        }
        return result
    }

    public var isNull: Bool { self == .null }
}

extension RESPValue: CustomStringConvertible {
    /// A short human-readable form for logs and test failures (bulk strings shown as text).
    public var description: String {
        switch self {
        case .simpleString(let text): return "+\(text)"
        case .error(let text): return "-\(text)"
        case .integer(let value): return ":\(value)"
        case .bulkString(let bytes): return "\"\(String(buffer: bytes))\""
        case .array(let values): return "[" + values.map(\.description).joined(separator: ", ") + "]"
        case .null: return "null"
        case .double(let value): return ",\(value)"
        case .boolean(let value): return value ? "#t" : "#f"
        case .bigNumber(let text): return "(\(text)"
        case .verbatimString(let format, let text): return "=\(format):\(text)"
        case .map(let entries): return "{" + entries.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
        case .set(let values): return "~[" + values.map(\.description).joined(separator: ", ") + "]"
        case .push(let values): return ">[" + values.map(\.description).joined(separator: ", ") + "]"
        }
    }
}

extension RESPValue: ExpressibleByStringLiteral {
    /// A string literal is a bulk string, so test expectations read like replies.
    public init(stringLiteral value: String) { self = .bulkString(ByteBuffer(string: value)) }
}

extension RESPValue: ExpressibleByStringInterpolation {}

extension RESPValue: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int64) { self = .integer(value) }
}

extension RESPValue: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: RESPValue...) { self = .array(elements) }
}

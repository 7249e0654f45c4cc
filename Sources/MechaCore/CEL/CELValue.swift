/// A value in the Common Expression Language subset Mecha evaluates (pub/sub routing `match`
/// rules, circuit-breaker `trip` expressions).
///
/// Swift equality (`==`, `Hashable`) is *structural*: `.int(1) != .double(1)`, strings compare by
/// Unicode scalars, maps compare as unordered sets of entries. CEL's own `==` operator, which
/// compares numbers across `int`/`uint`/`double` by value, is `celEquals(_:)`.
public indirect enum CELValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case string(String)
    case bytes([UInt8])
    case list([CELValue])
    /// Entries in insertion order. Keys are expected to be unique.
    case map([(CELValue, CELValue)])

    public static func == (lhs: CELValue, rhs: CELValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.int(let a), .int(let b)): a == b
        case (.uint(let a), .uint(let b)): a == b
        case (.double(let a), .double(let b)): a == b || (a.isNaN && b.isNaN)
        case (.string(let a), .string(let b)): a.unicodeScalars.elementsEqual(b.unicodeScalars)
        case (.bytes(let a), .bytes(let b)): a == b
        case (.list(let a), .list(let b)): a == b
        case (.map(let a), .map(let b)):
            a.count == b.count
                && a.allSatisfy { key, value in b.contains { $0.0 == key && $0.1 == value } }
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null:
            hasher.combine(0)
        case .bool(let value):
            hasher.combine(1)
            hasher.combine(value)
        case .int(let value):
            hasher.combine(2)
            hasher.combine(value)
        case .uint(let value):
            hasher.combine(3)
            hasher.combine(value)
        case .double(let value):
            hasher.combine(4)
            if value.isNaN { hasher.combine(Double.nan.bitPattern) } else { hasher.combine(value) }
        case .string(let value):
            // Scalar-equal strings are canonically equivalent, so String's hash is consistent with `==`.
            hasher.combine(5)
            hasher.combine(value)
        case .bytes(let value):
            hasher.combine(6)
            hasher.combine(value)
        case .list(let values):
            hasher.combine(7)
            hasher.combine(values)
        case .map(let entries):
            // Order-independent, like `==`.
            hasher.combine(8)
            hasher.combine(entries.count)
            var sum = 0
            for (key, value) in entries {
                var entryHasher = Hasher()
                entryHasher.combine(key)
                entryHasher.combine(value)
                sum &+= entryHasher.finalize()
            }
            hasher.combine(sum)
        }
    }
}

// MARK: - JSON

extension CELValue {
    /// Converts a JSON document the way Dapr's Go runtime sees it after `encoding/json` decoding:
    /// numbers become `double` (Go's `float64`), objects become maps with string keys (a repeated key
    /// keeps its first position and its last value), arrays become lists.
    public init(json: JSONValue) {
        switch json {
        case .null: self = .null
        case .bool(let value): self = .bool(value)
        case .number(let text): self = .double(Double(text) ?? .nan)
        case .string(let value): self = .string(value)
        case .array(let values): self = .list(values.map(CELValue.init(json:)))
        case .object(let members):
            var entries: [(CELValue, CELValue)] = []
            entries.reserveCapacity(members.count)
            var positions: [String: Int] = [:]
            for (key, value) in members {
                let converted = CELValue(json: value)
                if let index = positions[key] {
                    entries[index].1 = converted
                } else {
                    positions[key] = entries.count
                    entries.append((.string(key), converted))
                }
            }
            self = .map(entries)
        }
    }
}

// MARK: - Inspection

extension CELValue {
    /// The CEL type name: `null_type`, `bool`, `int`, `uint`, `double`, `string`, `bytes`, `list`, `map`.
    public var typeName: String {
        switch self {
        case .null: "null_type"
        case .bool: "bool"
        case .int: "int"
        case .uint: "uint"
        case .double: "double"
        case .string: "string"
        case .bytes: "bytes"
        case .list: "list"
        case .map: "map"
        }
    }

    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The value of the map entry whose key is CEL-equal to `key`; `nil` when absent or not a map.
    public subscript(key: CELValue) -> CELValue? {
        guard case .map(let entries) = self else { return nil }
        return entries.first { $0.0.celEquals(key) }?.1
    }

    /// The value of the map entry with string key `key`; `nil` when absent or not a map.
    public subscript(key: String) -> CELValue? {
        self[.string(key)]
    }

    /// CEL's `==`: numbers compare by value across `int`, `uint` and `double` (`1 == 1.0`);
    /// values of different non-numeric types are unequal; lists compare element-wise and maps
    /// entry-wise (independent of order). `NaN` equals nothing.
    public func celEquals(_ other: CELValue) -> Bool {
        switch (self, other) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.string(let a), .string(let b)): return a.unicodeScalars.elementsEqual(b.unicodeScalars)
        case (.bytes(let a), .bytes(let b)): return a == b
        case (.list(let a), .list(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.celEquals($1) }
        case (.map(let a), .map(let b)):
            guard a.count == b.count else { return false }
            for (key, value) in a {
                guard let match = b.first(where: { $0.0.celEquals(key) }), match.1.celEquals(value) else {
                    return false
                }
            }
            return true
        default:
            if let order = CELValue.numericOrder(self, other) { return order == .equal }
            return false
        }
    }
}

// MARK: - Literals

extension CELValue: ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: CELValue...) { self = .list(elements) }
    public init(dictionaryLiteral elements: (CELValue, CELValue)...) { self = .map(elements) }
}

// MARK: - Rendering

extension CELValue: CustomStringConvertible {
    /// A CEL-literal-like rendering, for messages and debugging.
    public var description: String {
        switch self {
        case .null: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .int(let value): return String(value)
        case .uint(let value): return "\(value)u"
        case .double(let value):
            let text = CELValue.formatDouble(value)
            return text.contains(where: { $0 == "." || $0 == "e" || $0 == "I" || $0 == "N" }) ? text : text + ".0"
        case .string(let value): return CELValue.quote(value)
        case .bytes(let value):
            var text = "b\""
            for byte in value {
                if byte >= 0x20, byte < 0x7F, byte != 0x22, byte != 0x5C {
                    text.unicodeScalars.append(Unicode.Scalar(byte))
                } else {
                    text += "\\x" + CELValue.hex(byte)
                }
            }
            return text + "\""
        case .list(let values): return "[" + values.map(\.description).joined(separator: ", ") + "]"
        case .map(let entries):
            return "{" + entries.map { "\($0.0.description): \($0.1.description)" }.joined(separator: ", ") + "}"
        }
    }

    static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef".unicodeScalars)
        var text = ""
        text.unicodeScalars.append(digits[Int(byte >> 4)])
        text.unicodeScalars.append(digits[Int(byte & 0xF)])
        return text
    }

    static func quote(_ value: String) -> String {
        var text = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    text += "\\x" + hex(UInt8(scalar.value))
                } else {
                    text.unicodeScalars.append(scalar)
                }
            }
        }
        return text + "\""
    }

    /// Formats a double like Go's `%g` (what cel-go's `string(double)` produces): shortest
    /// round-trip digits, exponent form when the decimal exponent is below -4 or at least 6.
    static func formatDouble(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Inf" : "+Inf" }
        if value == 0 { return value.sign == .minus ? "-0" : "0" }
        // Swift's description gives the shortest round-trip digits; re-lay them out Go's way.
        var text = Substring(value.magnitude.description)
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(text[text.index(after: e)...]) ?? 0
            text = text[..<e]
        }
        var digits: [Character] = []
        var pointPosition: Int? = nil
        for character in text {
            if character == "." { pointPosition = digits.count } else { digits.append(character) }
        }
        var decimalPoint = (pointPosition ?? digits.count) + exponent
        while let first = digits.first, first == "0" {
            digits.removeFirst()
            decimalPoint -= 1
        }
        while let last = digits.last, last == "0" { digits.removeLast() }
        if digits.isEmpty { return "0" }
        let sign = value < 0 ? "-" : ""
        let decimalExponent = decimalPoint - 1
        if decimalExponent < -4 || decimalExponent >= 6 {
            var mantissa = String(digits[0])
            if digits.count > 1 { mantissa += "." + String(digits[1...]) }
            let magnitude = abs(decimalExponent)
            let exponentText = (magnitude < 10 ? "0" : "") + String(magnitude)
            return sign + mantissa + "e" + (decimalExponent < 0 ? "-" : "+") + exponentText
        }
        if decimalPoint <= 0 {
            return sign + "0." + String(repeating: "0", count: -decimalPoint) + String(digits)
        }
        if decimalPoint >= digits.count {
            return sign + String(digits) + String(repeating: "0", count: decimalPoint - digits.count)
        }
        return sign + String(digits[..<decimalPoint]) + "." + String(digits[decimalPoint...])
    }
}

// MARK: - Numeric comparison

extension CELValue {
    /// Orders two numeric values by their mathematical value across `int`, `uint` and `double`;
    /// `nil` when either is not a number or the pair is unordered (NaN).
    static func numericOrder(_ lhs: CELValue, _ rhs: CELValue) -> CELNumericOrder? {
        switch (lhs, rhs) {
        case (.int(let a), .int(let b)): return CELNumericOrder(a, b)
        case (.uint(let a), .uint(let b)): return CELNumericOrder(a, b)
        case (.double(let a), .double(let b)):
            if a.isNaN || b.isNaN { return nil }
            return CELNumericOrder(a, b)
        case (.int(let a), .uint(let b)):
            if a < 0 { return .less }
            return CELNumericOrder(UInt64(a), b)
        case (.uint(let a), .int(let b)):
            if b < 0 { return .greater }
            return CELNumericOrder(a, UInt64(b))
        case (.int(let a), .double(let b)): return compareInt(a, b)
        case (.double(let a), .int(let b)): return compareInt(b, a).map { $0.reversed }
        case (.uint(let a), .double(let b)): return compareUInt(a, b)
        case (.double(let a), .uint(let b)): return compareUInt(b, a).map { $0.reversed }
        default: return nil
        }
    }

    /// Exact comparison of an integer with a double (no rounding of the integer).
    private static func compareInt(_ a: Int64, _ b: Double) -> CELNumericOrder? {
        if b.isNaN { return nil }
        if b >= 9_223_372_036_854_775_808.0 { return .less }
        if b < -9_223_372_036_854_775_808.0 { return .greater }
        let whole = b.rounded(.towardZero)
        let truncated = Int64(whole)
        if a != truncated { return CELNumericOrder(a, truncated) }
        let fraction = b - whole
        return fraction > 0 ? .less : fraction < 0 ? .greater : .equal
    }

    private static func compareUInt(_ a: UInt64, _ b: Double) -> CELNumericOrder? {
        if b.isNaN { return nil }
        if b >= 18_446_744_073_709_551_616.0 { return .less }
        if b < 0 { return .greater }
        let whole = b.rounded(.towardZero)
        let truncated = UInt64(whole)
        if a != truncated { return CELNumericOrder(a, truncated) }
        return b - whole > 0 ? .less : .equal
    }
}

enum CELNumericOrder: Sendable {
    case less, equal, greater

    init<T: Comparable>(_ a: T, _ b: T) {
        self = a < b ? .less : a > b ? .greater : .equal
    }

    var reversed: CELNumericOrder {
        switch self {
        case .less: .greater
        case .equal: .equal
        case .greater: .less
        }
    }
}

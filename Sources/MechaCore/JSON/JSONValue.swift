/// A JSON document as a value.
///
/// Numbers keep their source text and objects keep their key order, so a value read from a request
/// and written back (a state value, a CloudEvent's `data`) round-trips without reformatting numbers
/// or reordering keys. Parsing and serialising are in `JSONValue+Parse.swift` and
/// `JSONValue+Serialize.swift`; neither depends on Foundation.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    /// The number exactly as written (validated JSON number syntax).
    case number(String)
    case string(String)
    case array([JSONValue])
    /// Members in document order. Duplicate keys are kept as written; lookups return the last one,
    /// as most JSON decoders do.
    case object([(String, JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.number(let a), .number(let b)): a == b || Double(a) == Double(b)
        case (.string(let a), .string(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.object(let a), .object(let b)):
            a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null: hasher.combine(0)
        case .bool(let value): hasher.combine(value)
        case .number(let text): hasher.combine(Double(text) ?? 0)
        case .string(let value): hasher.combine(value)
        case .array(let values): hasher.combine(values)
        case .object(let members):
            for (key, value) in members {
                hasher.combine(key)
                hasher.combine(value)
            }
        }
    }
}

extension JSONValue {
    /// Builds a number from an integer.
    public static func int(_ value: some BinaryInteger) -> JSONValue { .number(String(value)) }

    /// Builds a number from a double; non-finite values become `null` (JSON has no NaN).
    public static func double(_ value: Double) -> JSONValue {
        guard value.isFinite else { return .null }
        if value == value.rounded(), abs(value) < 1e15 { return .number(String(Int64(value))) }
        return .number(String(value))
    }

    /// Builds an object from ordered pairs, dropping members whose value is `nil`.
    public static func object(_ members: KeyValuePairs<String, JSONValue?>) -> JSONValue {
        .object(members.compactMap { key, value in value.map { (key, $0) } })
    }

    /// Builds an object from a dictionary, keys sorted so output is deterministic.
    public static func object(sorted dictionary: [String: JSONValue]) -> JSONValue {
        .object(dictionary.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
    }

    /// Builds an object of strings from a dictionary, keys sorted.
    public static func stringMap(_ dictionary: [String: String]) -> JSONValue {
        .object(dictionary.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })
    }

    /// The member named `key` of an object (the last one if repeated); `nil` for other values.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last { $0.0 == key }?.1
    }

    /// Object members, or `nil` when this is not an object.
    public var objectMembers: [(String, JSONValue)]? {
        if case .object(let members) = self { return members }
        return nil
    }

    public var arrayValues: [JSONValue]? {
        if case .array(let values) = self { return values }
        return nil
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The number as a double, if this is a number.
    public var doubleValue: Double? {
        if case .number(let text) = self { return Double(text) }
        return nil
    }

    /// The number as an integer, if this is a number with an integral value.
    public var intValue: Int? {
        guard case .number(let text) = self else { return nil }
        if let value = Int(text) { return value }
        if let double = Double(text), double == double.rounded(), abs(double) < 9.2e18 { return Int(double) }
        return nil
    }

    /// Short name of the JSON type, for error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    /// A string map read from an object whose values are strings (other scalars are stringified).
    /// Returns `nil` when this is not an object or a member is an array/object.
    public var stringDictionary: [String: String]? {
        guard case .object(let members) = self else { return nil }
        var result: [String: String] = [:]
        for (key, value) in members {
            switch value {
            case .string(let string): result[key] = string
            case .number(let text): result[key] = text
            case .bool(let flag): result[key] = flag ? "true" : "false"
            case .null: continue
            default: return nil
            }
        }
        return result
    }
}

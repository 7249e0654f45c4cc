#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
public import MechaCore

/// `secretstores.local.file`: secrets read once, at init, from a JSON file.
///
/// Metadata: `secretsFile` (required; a relative path resolves against the current directory),
/// `nestedSeparator` (default `":"`), `multiValued` (default `false`). The file must hold a JSON object.
///
/// - Single-valued (default): the whole tree is flattened; each leaf is a secret named by its path
///   joined with the separator (array items by index: `list:0`), holding `{name: value}`.
/// - Multi-valued: only top-level entries are secrets. A string `"k":"v"` is `{k: v}`; an object is
///   that object flattened relative to itself; numbers, booleans, arrays and null are dropped. The
///   store then reports `MULTIPLE_KEY_VALUES_PER_SECRET`.
///
/// Deliberate differences from Dapr:
/// - Leaf numbers and booleans are rendered as their JSON text (`42`, `1.5`, `true`) and `null` as
///   the empty string. Dapr formats them with Go's `%s` verb and yields `%!s(float64=42)`,
///   `%!s(bool=true)` and `%!s(<nil>)`.
/// - When two paths flatten to the same name, the first in document order wins. Dapr stops
///   flattening there, and because Go maps iterate in random order its result is unpredictable.
public struct LocalFileSecretStore: SecretStore, CapabilityReporting {
    /// The capability string reported when `multiValued` is on.
    public static let multipleKeyValuesCapability = "MULTIPLE_KEY_VALUES_PER_SECRET"

    public let nestedSeparator: String
    public let multiValued: Bool
    private let secrets: [String: [String: String]]

    /// Reads and parses `secretsFile`. Throws `ComponentConfigurationError` (key `secretsFile`) when
    /// the file cannot be read, is not JSON, or is not a JSON object.
    public init(secretsFile: String, nestedSeparator: String = ":", multiValued: Bool = false) throws(ComponentConfigurationError) {
        let bytes: [UInt8]
        do {
            bytes = try readWholeFile(secretsFile)
        } catch {
            throw ComponentConfigurationError(key: "secretsFile", reason: "cannot read secrets file \(secretsFile): \(error)")
        }
        let document: JSONValue
        do {
            document = try JSONValue(parsing: bytes)
        } catch {
            throw ComponentConfigurationError(key: "secretsFile", reason: "secrets file \(secretsFile) is not valid JSON: \(error)")
        }
        try self.init(document: document, nestedSeparator: nestedSeparator, multiValued: multiValued)
    }

    /// Builds the store from an already parsed document, which must be a JSON object.
    public init(document: JSONValue, nestedSeparator: String = ":", multiValued: Bool = false) throws(ComponentConfigurationError) {
        guard let members = document.objectMembers else {
            throw ComponentConfigurationError(
                key: "secretsFile",
                reason: "secrets file must contain a JSON object, not \(document.typeName)"
            )
        }
        self.nestedSeparator = nestedSeparator
        self.multiValued = multiValued
        var secrets: [String: [String: String]] = [:]
        if multiValued {
            for (key, value) in Self.lastWins(members) {
                switch value {
                case .string(let string):
                    secrets[key] = [key: string]
                case .object:
                    var flattened: [String: String] = [:]
                    Self.flatten(value, path: [], separator: nestedSeparator, into: &flattened)
                    secrets[key] = flattened
                default:
                    continue  // numbers, booleans, arrays and null are not secrets
                }
            }
        } else {
            var flattened: [String: String] = [:]
            Self.flatten(document, path: [], separator: nestedSeparator, into: &flattened)
            for (key, value) in flattened { secrets[key] = [key: value] }
        }
        self.secrets = secrets
    }

    public var capabilities: [String] {
        self.multiValued ? [Self.multipleKeyValuesCapability] : []
    }

    public func secret(named name: String, metadata: [String: String]) async throws -> [String: String] {
        guard let secret = self.secrets[name] else {
            throw SecretStoreError(.notFound, "secret \(name) not found")
        }
        return secret
    }

    public func bulkSecrets(metadata: [String: String]) async throws -> [String: [String: String]] {
        self.secrets
    }

    /// Object members with repeated keys collapsed to the last value (as Go's decoder does), in the
    /// order of each key's first appearance.
    private static func lastWins(_ members: [(String, JSONValue)]) -> [(String, JSONValue)] {
        var order: [String] = []
        var values: [String: JSONValue] = [:]
        for (key, value) in members {
            if values.updateValue(value, forKey: key) == nil { order.append(key) }
        }
        return order.map { ($0, values[$0]!) }
    }

    private static func flatten(_ value: JSONValue, path: [String], separator: String, into result: inout [String: String]) {
        func leaf(_ text: String) {
            let key = path.joined(separator: separator)
            if result[key] == nil { result[key] = text }
        }
        switch value {
        case .object(let members):
            for (key, member) in self.lastWins(members) {
                self.flatten(member, path: path + [key], separator: separator, into: &result)
            }
        case .array(let values):
            for (index, element) in values.enumerated() {
                self.flatten(element, path: path + [String(index)], separator: separator, into: &result)
            }
        case .string(let string): leaf(string)
        case .number(let text): leaf(text)
        case .bool(let flag): leaf(flag ? "true" : "false")
        case .null: leaf("")
        }
    }
}

/// Builds `secretstores.local.file` components.
///
/// Reads `secretsFile` (required), `nestedSeparator` (default `":"`) and `multiValued` (default
/// `false`) with the typed metadata readers.
public struct LocalFileSecretStoreFactory: ComponentFactory {
    public init() {}

    public var type: ComponentType { ComponentType(.secretstores, "local.file") }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        let metadata = spec.metadata
        let file = try metadata.require("secretsFile")
        let separator = metadata.string("nestedSeparator") ?? ":"
        let multiValued = try metadata.bool("multiValued", default: false)
        return try LocalFileSecretStore(secretsFile: file, nestedSeparator: separator, multiValued: multiValued)
    }
}

/// Why a file could not be read: the failing call and `errno`.
private struct FileReadError: Error, CustomStringConvertible {
    var call: String
    var code: Int32

    var description: String {
        let message = String(cString: strerror(self.code))
        return "\(self.call): \(message.prefix(1).lowercased() + message.dropFirst())"
    }
}

/// The whole content of a (regular) file.
private func readWholeFile(_ path: String) throws(FileReadError) -> [UInt8] {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { throw FileReadError(call: "open", code: errno) }
    defer { close(descriptor) }
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { continue }
            throw FileReadError(call: "read", code: errno)
        }
        if count == 0 { return result }
        result.append(contentsOf: chunk[0..<count])
    }
}

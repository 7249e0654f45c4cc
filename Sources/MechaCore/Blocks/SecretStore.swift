/// The secrets building block's component contract.
public protocol SecretStore: Component {
    /// The values of one secret (a secret may hold several keys). Throws
    /// `SecretStoreError.notFound` when it does not exist.
    func secret(named name: String, metadata: [String: String]) async throws -> [String: String]
    /// Every secret the store holds, by name.
    func bulkSecrets(metadata: [String: String]) async throws -> [String: [String: String]]
}

public struct SecretStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable {
        private let name: String
        private init(_ name: String) { self.name = name }
        public static let notFound = Code("notFound")
        public static let backend = Code("backend")
    }

    public var code: Code
    public var reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { self.reason }
}

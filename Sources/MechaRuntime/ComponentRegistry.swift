public import MechaCore

/// Component factories by type and version. A value built in `main` (no global registry); tests
/// build their own with exactly the factories they need.
public struct ComponentRegistry: Sendable {
    private var factories: [ComponentType: [String: any ComponentFactory]] = [:]
    /// Opens actor placement membership in the embedded database of a Mecha home (the file
    /// path); nil: actors place only through a control plane.
    public var actorMembership: (@Sendable (_ databasePath: String) async throws -> any ActorMembershipStore)?

    public init() {}

    public init(_ factories: [any ComponentFactory]) {
        for factory in factories { self.register(factory) }
    }

    public mutating func register(_ factory: any ComponentFactory) {
        for version in factory.versions {
            self.factories[factory.type, default: [:]][version.lowercased()] = factory
        }
        // An empty version selects the factory's first version, as `v1` does in Dapr.
        if let first = factory.versions.first, self.factories[factory.type]?[""] == nil {
            self.factories[factory.type, default: [:]][""] = self.factories[factory.type]?[first.lowercased()]
        }
    }

    /// The factory for `type`/`version`, or a message saying what is known instead.
    public func factory(for type: ComponentType, version: String) -> Result<any ComponentFactory, RegistryLookupError> {
        guard let versions = self.factories[type] else {
            let known = self.types(in: type.category)
            return .failure(.unknownType(type, known: known.isEmpty ? self.allTypes : known))
        }
        guard let factory = versions[version.lowercased()] ?? (version.lowercased() == "v0" ? versions[""] : nil) else {
            let known = versions.keys.filter { !$0.isEmpty }.sorted()
            return .failure(.unknownVersion(type, version, known: known))
        }
        return .success(factory)
    }

    /// Registered types of one category, sorted.
    public func types(in category: ComponentCategory) -> [ComponentType] {
        self.factories.keys.filter { $0.category == category }.sorted()
    }

    public var allTypes: [ComponentType] { self.factories.keys.sorted() }
}

public enum RegistryLookupError: Error, Sendable, Hashable, CustomStringConvertible {
    /// `known` lists the category's types, or every type when the category has none.
    case unknownType(ComponentType, known: [ComponentType])
    case unknownVersion(ComponentType, String, known: [String])

    public var description: String {
        switch self {
        case .unknownType(let type, let known):
            let list = known.isEmpty ? "none" : known.map(\.description).joined(separator: ", ")
            if !known.contains(where: { $0.category == type.category }) {
                return "unknown component type \(type); no \(type.category.rawValue) components are built in; supported types: \(list)"
            }
            return "unknown component type \(type); known \(type.category.rawValue) types: \(list)"
        case .unknownVersion(let type, let version, let known):
            return "component type \(type) has no version '\(version)'; known versions: \(known.joined(separator: ", "))"
        }
    }
}

/// The building block a component belongs to: the part of `spec.type` before the first dot.
public enum ComponentCategory: String, Sendable, Hashable, CaseIterable, Comparable {
    case state
    case pubsub
    case bindings
    case secretstores
    case configuration
    case lock
    case middleware
    case nameresolution
    case crypto
    case workflow
    case conversation

    public static func < (lhs: ComponentCategory, rhs: ComponentCategory) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A Dapr component type such as `state.redis` or `bindings.cron`. Parsed once at load; never passed
/// around as a raw string.
public struct ComponentType: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let category: ComponentCategory
    /// Implementation name inside the category, lowercased (`redis`, `in-memory`, `local.file`).
    public let name: String

    public init(_ category: ComponentCategory, _ name: String) {
        self.category = category
        self.name = name.lowercased()
    }

    /// Parses `"<category>.<name>"`; `nil` for unknown categories or a missing name.
    public init?(parsing string: String) {
        guard let dot = string.firstIndex(of: ".") else { return nil }
        guard let category = ComponentCategory(rawValue: String(string[..<dot]).lowercased()) else { return nil }
        let name = string[string.index(after: dot)...]
        guard !name.isEmpty else { return nil }
        self.init(category, String(name))
    }

    public var description: String { "\(self.category.rawValue).\(self.name)" }

    public static func < (lhs: ComponentType, rhs: ComponentType) -> Bool { lhs.description < rhs.description }
}

/// Where a resource came from, so every configuration error can name the file and the resource.
public struct ResourceSource: Sendable, Hashable, CustomStringConvertible {
    /// The file path, or a description such as `<embedded defaults>`.
    public var file: String
    /// `kind/name`, e.g. `Component/statestore`.
    public var resource: String
    /// 1-based line of the resource's document in the file, when known.
    public var line: Int?

    public init(file: String, resource: String, line: Int? = nil) {
        self.file = file
        self.resource = resource
        self.line = line
    }

    public static func builtIn(_ resource: String) -> ResourceSource {
        ResourceSource(file: "<embedded defaults>", resource: resource)
    }

    public var description: String {
        if let line { return "\(self.file):\(line) (\(self.resource))" }
        return "\(self.file) (\(self.resource))"
    }
}

/// A configuration problem: names the file, the resource and the field, and says what is wrong.
public struct ResourceError: Error, Sendable, Hashable, CustomStringConvertible {
    public var source: ResourceSource
    /// Dotted path of the offending field, e.g. `spec.metadata[2].value` or `spec.type`.
    public var field: String?
    public var reason: String

    public init(source: ResourceSource, field: String?, reason: String) {
        self.source = source
        self.field = field
        self.reason = reason
    }

    public var description: String {
        if let field { return "\(self.source.file): \(self.source.resource): field \(field): \(self.reason)" }
        return "\(self.source.file): \(self.source.resource): \(self.reason)"
    }
}

import MechaCore

/// A cursor over one YAML node that knows its field path, so every decoding error names the file,
/// the resource and the field (`spec.metadata[2].value`).
struct NodeReader {
    let node: YAMLNode
    let path: String
    let source: ResourceSource

    init(_ node: YAMLNode, path: String, source: ResourceSource) {
        self.node = node
        self.path = path
        self.source = source
    }

    func error(_ reason: String) -> ResourceError {
        var source = self.source
        source.line = self.node.line
        return ResourceError(source: source, field: self.path.isEmpty ? nil : self.path, reason: reason)
    }

    private func child(_ node: YAMLNode, _ key: String) -> NodeReader {
        NodeReader(node, path: self.path.isEmpty ? key : "\(self.path).\(key)", source: self.source)
    }

    /// Members of a mapping; an explicit null counts as an empty mapping.
    func mapping() throws(ResourceError) -> [(key: String, value: NodeReader)] {
        if self.node.isNull { return [] }
        guard case .mapping(let pairs, _) = self.node else {
            throw self.error("expected a mapping, found a \(self.node.kindName)")
        }
        return pairs.map { ($0.key, self.child($0.value, $0.key)) }
    }

    /// The member `key`, or `nil` when absent or null.
    func optional(_ key: String) throws(ResourceError) -> NodeReader? {
        guard case .mapping(let pairs, _) = self.node else {
            if self.node.isNull { return nil }
            throw self.error("expected a mapping, found a \(self.node.kindName)")
        }
        guard let pair = pairs.first(where: { $0.key == key }), !pair.value.isNull else { return nil }
        return self.child(pair.value, key)
    }

    func required(_ key: String) throws(ResourceError) -> NodeReader {
        guard let value = try self.optional(key) else {
            let path = self.path.isEmpty ? key : "\(self.path).\(key)"
            var source = self.source
            source.line = self.node.line
            throw ResourceError(source: source, field: path, reason: "required field is missing")
        }
        return value
    }

    /// Items of a sequence; null counts as empty.
    func sequence() throws(ResourceError) -> [NodeReader] {
        if self.node.isNull { return [] }
        guard case .sequence(let items, _) = self.node else {
            throw self.error("expected a list, found a \(self.node.kindName)")
        }
        return items.enumerated().map { NodeReader($1, path: "\(self.path)[\($0)]", source: self.source) }
    }

    /// A scalar as a string (numbers and booleans keep their text).
    func string() throws(ResourceError) -> String {
        guard case .scalar(let text, _, _) = self.node else {
            throw self.error("expected a string, found a \(self.node.kindName)")
        }
        return text
    }

    func nonEmptyString() throws(ResourceError) -> String {
        let text = try self.string().trimmingSpaces()
        guard !text.isEmpty else { throw self.error("must not be empty") }
        return text
    }

    func bool() throws(ResourceError) -> Bool {
        let text = try self.string()
        guard let value = ComponentMetadata.parseBool(text) else {
            throw self.error("expected true or false, found '\(text)'")
        }
        return value
    }

    func int() throws(ResourceError) -> Int {
        let text = try self.string()
        guard let value = Int(text.trimmingSpaces()) else { throw self.error("expected an integer, found '\(text)'") }
        return value
    }

    func duration(range: ClosedRange<Duration> = .zero ... .maximumInterval) throws(ResourceError) -> Duration {
        let text = try self.string()
        guard let value = GoDuration.parse(text) else {
            throw self.error("expected a duration such as 5s, 500ms or 1m, found '\(text)'")
        }
        guard range.contains(value) else {
            throw self.error("'\(text)' is out of range: must be from \(GoDuration.format(range.lowerBound)) to \(GoDuration.format(range.upperBound))")
        }
        return value
    }

    /// A list of strings.
    func strings() throws(ResourceError) -> [String] {
        try self.sequence().map { (item: NodeReader) throws(ResourceError) -> String in try item.string() }
    }

    /// A mapping of string values (scalars only).
    func stringMap() throws(ResourceError) -> [String: String] {
        var result: [String: String] = [:]
        for (key, value) in try self.mapping() {
            if value.node.isNull { continue }
            result[key] = try value.string()
        }
        return result
    }

    /// The node rendered as a metadata value: scalars as text, maps and lists as JSON.
    func metadataValue() -> String {
        switch self.node {
        case .scalar(let text, _, _): text
        case .mapping, .sequence: self.node.json.jsonString
        }
    }

    /// Fails when the mapping has keys outside `allowed` (catches typos like `ignoreError`).
    func rejectUnknownKeys(_ allowed: Set<String>) throws(ResourceError) {
        for (key, value) in try self.mapping() where !allowed.contains(key) {
            throw value.error("unknown field; expected one of \(allowed.sorted().joined(separator: ", "))")
        }
    }
}

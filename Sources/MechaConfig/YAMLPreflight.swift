// libyaml's event parser, through Yams's C target. CYaml is not a product of Yams, but SwiftPM
// hands every dependency's C module map to its dependants, so it is importable here; if that ever
// changes, this file is the only user.
internal import CYaml

/// Limits on one resource file, checked before any YAML tree is built.
struct YAMLLimits: Sendable {
    /// Largest file read (Dapr resources are a few KB; a manifest bundle a few hundred).
    var maxFileBytes = 4 << 20
    /// Most nodes one file may describe once its aliases are expanded.
    var maxNodes = 250_000
    /// Deepest nesting of mappings and sequences.
    var maxDepth = 64

    static let standard = YAMLLimits()
}

/// One linear pass over libyaml's events before the text is composed into a tree.
///
/// Aliases are accepted, as Dapr (Go's YAML) accepts them, but each one counts as the whole node
/// it names: a "billion laughs" file, whose few lines expand to billions of nodes, is refused here
/// after reading it once, before anything is expanded. Nesting depth is bounded too.
enum YAMLPreflight {
    struct Violation: Error, Equatable {
        var line: Int?
        var message: String
    }

    static func check(_ text: String, limits: YAMLLimits = .standard) -> Violation? {
        var text = text
        return text.withUTF8 { utf8 -> Violation? in
            var parser = yaml_parser_t()
            guard yaml_parser_initialize(&parser) == 1 else { return Violation(line: nil, message: "out of memory") }
            defer { yaml_parser_delete(&parser) }
            yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
            yaml_parser_set_input_string(&parser, utf8.baseAddress, utf8.count)

            // Open collections: the nodes each holds so far (itself included) and its anchor.
            var open: [(count: Int, anchor: String?)] = []
            // Expanded size of every anchored node seen so far.
            var anchors: [String: Int] = [:]
            var total = 0

            func add(_ count: Int, line: Int) -> Violation? {
                total += count
                if total > limits.maxNodes {
                    return Violation(
                        line: line,
                        message: "the file describes more than \(limits.maxNodes) YAML nodes (aliases counted as the nodes they repeat); split it or remove repetition")
                }
                if !open.isEmpty { open[open.count - 1].count += count }
                return nil
            }

            while true {
                var event = yaml_event_t()
                // Syntax errors are left to the full parse, which reports them with their position.
                guard yaml_parser_parse(&parser, &event) == 1 else { return nil }
                defer { yaml_event_delete(&event) }
                let line = Int(event.start_mark.line) + 1
                switch event.type {
                case YAML_STREAM_END_EVENT:
                    return nil
                case YAML_SCALAR_EVENT:
                    if let violation = add(1, line: line) { return violation }
                    if let anchor = event.data.scalar.anchor { anchors[String(cString: anchor)] = 1 }
                case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                    let anchor = event.type == YAML_SEQUENCE_START_EVENT ? event.data.sequence_start.anchor : event.data.mapping_start.anchor
                    total += 1
                    if total > limits.maxNodes, let violation = add(0, line: line) { return violation }
                    open.append((1, anchor.map { String(cString: $0) }))
                    if open.count > limits.maxDepth {
                        return Violation(line: line, message: "YAML nested deeper than \(limits.maxDepth) levels")
                    }
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    guard let closed = open.popLast() else { return nil }
                    if let anchor = closed.anchor { anchors[anchor] = closed.count }
                    if !open.isEmpty { open[open.count - 1].count += closed.count }
                case YAML_ALIAS_EVENT:
                    let name = event.data.alias.anchor.map { String(cString: $0) } ?? ""
                    // An alias of a node still open (recursive) is refused by the full parse.
                    if let violation = add(anchors[name] ?? 1, line: line) { return violation }
                default:
                    break
                }
            }
        }
    }
}

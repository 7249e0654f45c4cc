import MechaCore
import Yams

/// A YAML document as a plain tree with line numbers, so the rest of the loader does not depend on
/// the YAML library (and every error can name a line).
indirect enum YAMLNode: Sendable {
    /// A scalar's text, whether it was quoted (quoted scalars are always strings) and its line.
    case scalar(String, quoted: Bool, line: Int)
    case mapping([(key: String, value: YAMLNode)], line: Int)
    case sequence([YAMLNode], line: Int)

    var line: Int {
        switch self {
        case .scalar(_, _, let line), .mapping(_, let line), .sequence(_, let line): line
        }
    }

    /// Plain scalars `~`, `null`, `Null`, `NULL` and the empty scalar are YAML's null.
    var isNull: Bool {
        if case .scalar(let text, let quoted, _) = self, !quoted {
            return text.isEmpty || text == "~" || text == "null" || text == "Null" || text == "NULL"
        }
        return false
    }

    var kindName: String {
        switch self {
        case .scalar: self.isNull ? "null" : "scalar"
        case .mapping: "mapping"
        case .sequence: "sequence"
        }
    }

    /// The node as JSON: plain scalars that look like numbers/booleans/null become those types.
    var json: JSONValue {
        switch self {
        case .scalar(let text, let quoted, _):
            if quoted { return .string(text) }
            if self.isNull { return .null }
            switch text {
            case "true", "True", "TRUE": return .bool(true)
            case "false", "False", "FALSE": return .bool(false)
            default: break
            }
            if let json = try? JSONValue(parsing: text), case .number = json { return json }
            return .string(text)
        case .mapping(let pairs, _): return .object(pairs.map { ($0.key, $0.value.json) })
        case .sequence(let items, _): return .array(items.map(\.json))
        }
    }
}

/// Splits a YAML text into documents, converting each to a `YAMLNode`.
enum YAMLDocuments {
    struct SyntaxError: Error {
        var line: Int?
        var message: String
    }

    static func parse(_ text: String, limits: YAMLLimits = .standard) throws(SyntaxError) -> [YAMLNode] {
        guard text.utf8.count <= limits.maxFileBytes else {
            throw SyntaxError(line: nil, message: "the file is larger than \(limits.maxFileBytes >> 20) MiB, the limit for a resource file")
        }
        if let violation = YAMLPreflight.check(text, limits: limits) {
            throw SyntaxError(line: violation.line, message: violation.message + (violation.line.map { " (line \($0))" } ?? ""))
        }
        do {
            let parser = try Parser(yaml: text, resolver: .basic, constructor: .default, encoding: .utf8)
            var documents: [YAMLNode] = []
            while let root = try parser.nextRoot() {
                documents.append(try self.convert(root))
            }
            return documents
        } catch let error as SyntaxError {
            throw error
        } catch let error as YamlError {
            throw self.describe(error)
        } catch {
            throw SyntaxError(line: nil, message: "\(error)")
        }
    }

    private static func convert(_ node: Node) throws -> YAMLNode {
        let line = (node.mark?.line ?? 0)
        switch node {
        case .scalar(let scalar):
            let quoted = scalar.style == .singleQuoted || scalar.style == .doubleQuoted
                || scalar.style == .literal || scalar.style == .folded
            return .scalar(scalar.string, quoted: quoted, line: line)
        case .mapping(let mapping):
            var pairs: [(key: String, value: YAMLNode)] = []
            var seen: Set<String> = []
            for (key, value) in mapping {
                guard case .scalar(let keyScalar) = key else {
                    throw SyntaxError(line: key.mark?.line, message: "mapping keys must be scalars")
                }
                guard seen.insert(keyScalar.string).inserted else {
                    throw SyntaxError(line: key.mark?.line, message: "duplicate key '\(keyScalar.string)'")
                }
                pairs.append((keyScalar.string, try self.convert(value)))
            }
            return .mapping(pairs, line: line)
        case .sequence(let sequence):
            return .sequence(try sequence.map { try self.convert($0) }, line: line)
        case .alias:
            // Yams resolves aliases while composing; an alias node only comes from encoding.
            throw SyntaxError(line: node.mark?.line, message: "unexpected unresolved YAML alias")
        }
    }

    private static func describe(_ error: YamlError) -> SyntaxError {
        switch error {
        case .scanner(let context, let problem, let mark, _),
            .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let prefix = context.map { "\($0.text) " } ?? ""
            return SyntaxError(line: mark.line, message: "invalid YAML: \(prefix)\(problem) (line \(mark.line), column \(mark.column))")
        case .reader(let problem, _, _, _):
            return SyntaxError(line: nil, message: "invalid YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return SyntaxError(line: context.mark.line, message: "duplicate keys \(duplicates.joined(separator: ", "))")
        default:
            return SyntaxError(line: nil, message: "invalid YAML: \(error)")
        }
    }
}

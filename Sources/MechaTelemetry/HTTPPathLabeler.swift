public import MechaCore

/// The `path` label of the HTTP metrics, as daprd computes it (`http_monitoring.go`):
/// - `pathMatching` templates (`/v1.0/invoke/app/method/orders/{id}`): a matching path is labelled
///   with its template (the most specific wins: literal segments beat `{wildcards}`);
/// - otherwise, with `increasedCardinality`, the path with its unbounded parts cut (state and
///   secret keys, actor ids); without it, "" — except daprd's few static paths.
/// The metric's series budget bounds whatever gets through.
struct HTTPPathLabeler: Sendable {
    struct Template: Sendable {
        enum Segment: Sendable, Equatable {
            case literal(Substring)
            case wildcard
            case rest
        }

        var text: String
        var segments: [Segment]
        var literals: Int
    }

    let increasedCardinality: Bool
    let templates: [Template]
    /// Whether a client-side (app route) path can be anything but "".
    var labelsClientPaths: Bool { self.increasedCardinality || !self.templates.isEmpty }

    static let staticPaths = ["/dapr/config", "/dapr/metrics", "/dapr/subscribe", "/healthz"]

    /// One of daprd's static paths; compared byte by byte (every request comes here).
    static func isStatic(_ path: Substring) -> Bool {
        let utf8 = path.utf8
        guard utf8.count <= 15 else { return false }
        return Self.staticPaths.contains { utf8.elementsEqual($0.utf8) }
    }

    init(spec: MetricsSpec) {
        self.increasedCardinality = spec.increasedCardinality
        self.templates = Set(spec.pathMatching).sorted().map { text in
            let segments = text.split(separator: "/", omittingEmptySubsequences: true).map { part -> Template.Segment in
                guard part.hasPrefix("{"), part.hasSuffix("}") else { return .literal(part) }
                return part.hasSuffix("...}") ? .rest : .wildcard
            }
            return Template(text: text, segments: segments, literals: segments.filter { if case .literal = $0 { true } else { false } }.count)
        }
    }

    /// The label for a request path (server side), or a client-side path (`orders/1`, matched as
    /// `/orders/1`; for the sidecar → app metrics to come).
    func label(_ path: Substring, clientSide: Bool = false) -> String {
        if !self.templates.isEmpty {
            let matched = clientSide && !path.hasPrefix("/") ? self.match("/" + path) : self.match(path)
            if let matched { return matched }
        }
        if Self.isStatic(path) { return String(path) }
        guard self.increasedCardinality else { return "" }
        return clientSide ? String(path) : Self.legacy(path)
    }

    func match(_ path: some StringProtocol) -> String? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        var best: Template?
        for template in self.templates where Self.matches(template.segments, parts) {
            if best == nil || template.literals > best!.literals { best = template }
        }
        return best?.text
    }

    static func matches(_ segments: [Template.Segment], _ parts: [some StringProtocol]) -> Bool {
        var index = 0
        for segment in segments {
            switch segment {
            case .rest:
                return true
            case .wildcard:
                guard index < parts.count else { return false }
            case .literal(let text):
                guard index < parts.count, parts[index] == text else { return false }
            }
            index += 1
        }
        return index == parts.count
    }

    /// daprd's `convertPathToMetricLabel`: keys and ids cut from state, secrets and actor paths.
    static func legacy(_ path: Substring) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        // ["", "v1.0", "state", store, key…]
        guard parts.count >= 4, parts[0].isEmpty, parts[1].hasPrefix("v1") else { return String(path) }
        switch parts[2] {
        case "state", "secrets":
            if parts.count > 4, !["bulk", "transaction", "query"].contains(parts[4]) {
                return parts[0...3].joined(separator: "/")
            }
        case "actors":
            if parts.count > 4 {
                var kept = Array(parts[0...3]) + ["{id}"]
                if parts.count > 5 { kept.append(parts[5]) }
                return kept.joined(separator: "/")
            }
        default:
            break
        }
        return String(path)
    }
}

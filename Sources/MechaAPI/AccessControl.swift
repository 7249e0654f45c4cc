public import MechaCore

/// Who is calling, as the mTLS peer certificate says (`spiffe://<trust-domain>/ns/<namespace>/<app-id>`).
public struct CallerIdentity: Sendable, Hashable {
    public var trustDomain: String
    public var namespace: String
    public var appID: String

    public init(trustDomain: String, namespace: String, appID: String) {
        self.trustDomain = trustDomain
        self.namespace = namespace
        self.appID = appID
    }

    public var spiffeID: String { "spiffe://\(self.trustDomain)/ns/\(self.namespace)/\(self.appID)" }
}

/// A Configuration's `spec.accessControl`, compiled: decides whether a caller may invoke a method
/// of this app, as daprd's ACL does.
///
/// - No policy names the caller's app id and namespace (or its trust domain differs), or the
///   caller is unknown: the global default.
/// - Otherwise the policy's default (when it has one, else the global default), unless an
///   operation matches the method: then that operation's action — for an HTTP app only when its
///   `httpVerb` list holds the request's verb (exactly, upper case) or `*`; a gRPC app ignores verbs.
/// - Operations match per path segment: a segment literally or as a glob (`a*d`), `*` as the last
///   segment exactly one more segment (or none), `**` everything below; an operation also covers
///   the paths under it unless it ends in `*`. Entries are tried in the order written, the first
///   that matches a segment is followed (no backtracking), and a repeated name keeps its first entry.
/// - For an HTTP app names and methods compare case-insensitively; for a gRPC app, exactly.
public struct AccessControl: Sendable {
    public enum Decision: Sendable, Equatable {
        case allowed
        /// daprd's text, for the PermissionDenied status.
        case denied(String)
    }

    let spec: AccessControlSpec
    let lowercases: Bool
    /// Whether an operation's verbs must hold the call's verb (HTTP apps, AccessPolicy blocks).
    let checksVerbs: Bool
    /// The operation tree of each policy, by `appID||namespace`.
    let trees: [String: (policy: AccessControlSpec.AppPolicy, root: Node)]

    final class Node: Sendable {
        let segment: String
        let children: [Node]
        let operation: AccessControlSpec.Operation?

        init(segment: String, children: [Node], operation: AccessControlSpec.Operation?) {
            self.segment = segment
            self.children = children
            self.operation = operation
        }
    }

    /// - Parameter appProtocolIsHTTP: whether this app is served over HTTP (names then compare
    ///   case-insensitively and verbs apply).
    public init(spec: AccessControlSpec, appProtocolIsHTTP: Bool) {
        self.init(spec: spec, caseInsensitiveNames: appProtocolIsHTTP, checksVerbs: appProtocolIsHTTP)
    }

    /// The evaluator with its two switches set apart (`AccessPolicy`: exact names, block verbs).
    public init(spec: AccessControlSpec, caseInsensitiveNames: Bool, checksVerbs: Bool) {
        self.spec = spec
        self.lowercases = caseInsensitiveNames
        self.checksVerbs = checksVerbs
        var trees: [String: (AccessControlSpec.AppPolicy, Node)] = [:]
        for policy in spec.policies {
            let paths = policy.operations.map { operation in (Self.segments(operation.name, lowercase: caseInsensitiveNames), operation) }
            trees[policy.appID + "||" + policy.namespace] = (policy, Self.tree(segment: "", paths[...]))
        }
        self.trees = trees
    }

    /// Builds the subtree of `paths` (segments still to place, their operation), keeping the
    /// written order of siblings and the first operation of a repeated name.
    static func tree(segment: String, _ paths: ArraySlice<([Substring], AccessControlSpec.Operation)>) -> Node {
        var operation: AccessControlSpec.Operation?
        var order: [String] = []
        var groups: [String: [([Substring], AccessControlSpec.Operation)]] = [:]
        for (segments, entry) in paths {
            guard let first = segments.first else {
                if operation == nil { operation = entry }
                continue
            }
            let key = String(first)
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append((Array(segments.dropFirst()), entry))
        }
        return Node(segment: segment, children: order.map { Self.tree(segment: $0, groups[$0]![...]) }, operation: operation)
    }

    static func segments(_ path: String, lowercase: Bool) -> [Substring] {
        let text = lowercase ? path.lowercased() : path
        return text.split(separator: "/", omittingEmptySubsequences: true)
    }

    /// The decision for `caller` invoking `method` (already normalized, as the invocation path
    /// does) with `verb` (nil on gRPC).
    public func decide(caller: CallerIdentity?, method: String, verb: String?) -> Decision {
        let operationText = (method.hasPrefix("/") ? method : "/" + method)
        let operation = self.lowercases ? operationText.lowercased() : operationText
        var action = self.spec.defaultAction ?? .deny
        if let caller, let (policy, root) = self.trees[caller.appID + "||" + caller.namespace], policy.trustDomain == caller.trustDomain {
            if let own = policy.defaultAction { action = own }
            if let matched = Self.search(root, Self.segments(operation, lowercase: false)) {
                if !self.checksVerbs {
                    action = matched.action
                } else if let verb, matched.httpVerbs.contains(verb) || matched.httpVerbs.contains("*") {
                    action = matched.action
                }
            }
        }
        guard action == .deny else { return .allowed }
        return .denied("access control policy has denied access to id: \(caller?.spiffeID ?? "") operation: \(operation) verb: \(verb ?? "NONE")")
    }

    static func search(_ root: Node, _ segments: [Substring]) -> AccessControlSpec.Operation? {
        var node = root
        for segment in segments {
            guard let child = node.children.first(where: { Self.matches($0.segment, segment) }) else {
                // The input goes on below an operation: covered, unless that one ends in `*`.
                return node.segment == "*" ? nil : node.operation
            }
            if child.segment == "**" { return child.operation }
            node = child
        }
        if let operation = node.operation { return operation }
        // `/x/*` (or `/x/**`) also covers `/x`.
        return node.children.first(where: { ($0.segment == "*" || $0.segment == "**") && $0.operation != nil })?.operation
    }

    /// A segment pattern against a segment: `**` and `*` match any, else a glob where `*` stands
    /// for any run of characters.
    static func matches(_ pattern: String, _ segment: Substring) -> Bool {
        if pattern == "*" || pattern == "**" { return true }
        guard pattern.contains("*") else { return pattern == segment }
        let parts = pattern.split(separator: "*", omittingEmptySubsequences: false)
        var rest = segment[...]
        for (index, part) in parts.enumerated() {
            if index == 0 {
                guard rest.hasPrefix(part) else { return false }
                rest = rest.dropFirst(part.count)
            } else if index == parts.count - 1 {
                return part.isEmpty || rest.hasSuffix(part)
            } else if let range = rest.firstRange(of: part) {
                rest = rest[range.upperBound...]
            } else {
                return false
            }
        }
        return rest.isEmpty
    }
}

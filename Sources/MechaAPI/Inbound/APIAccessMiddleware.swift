public import MechaCore

/// Configuration `spec.api.allowed` / `spec.api.denied`, exactly as daprd applies them.
///
/// Each surface reads only the rules of its own protocol; a rule without `protocol` applies to
/// neither (daprd compares the protocol with `http` / `grpc`). A denied API is refused; when the
/// surface has allow rules, only what they name is served.
///
/// - HTTP (`pkg/api/http/server.go` `setupRoutes`, `endpoints/endpoint.go` `IsAllowed`): a rule
///   matches an API by name and version (`v1` ≡ `v1.0`, `v1alpha1` ≡ `v1.0-alpha1`), or when
///   `<rule version>/<rule name>` is a prefix of `<version>/<route>` (daprd's legacy form). The
///   health routes are always served. Refused APIs are left out of the router: `.unrouted`.
/// - gRPC (`pkg/api/grpc/endpoints.go`): a rule stands for the methods of `DaprGRPCEndpoints`;
///   only methods under `/dapr.proto.runtime.` are checked (proxied calls never are). Refused
///   calls end with `ErrorFromHTTPResponseCode(501, "requested endpoint is not available")`:
///   Unimplemented, message `Not Implemented`. An allow list none of whose rules daprd knows
///   allows everything, as daprd's empty method set does.
public struct APIAccessMiddleware: InboundMiddleware {
    /// HTTP allow rules; nil when there are none (everything not denied is served).
    let httpAllowed: [APIAccessRule]?
    let httpDenied: [APIAccessRule]
    let grpcAllowed: Set<String>
    let grpcDenied: Set<String>

    public init(allowed: [APIAccessRule]?, denied: [APIAccessRule]) {
        let httpAllowed = (allowed ?? []).filter { $0.apiProtocol == .http }
        self.httpAllowed = httpAllowed.isEmpty ? nil : httpAllowed
        self.httpDenied = denied.filter { $0.apiProtocol == .http }
        self.grpcAllowed = Self.grpcMethods(allowed ?? [])
        self.grpcDenied = Self.grpcMethods(denied)
    }

    /// Whether any rule applies to `surface`.
    public func hasRules(for surface: InboundOperation.Surface) -> Bool {
        switch surface {
        case .http: self.httpAllowed != nil || !self.httpDenied.isEmpty
        case .grpc: !self.grpcAllowed.isEmpty || !self.grpcDenied.isEmpty
        }
    }

    public func check(_ operation: InboundOperation) -> InboundRejection? {
        if self.exposes(operation) { return nil }
        switch operation.surface {
        case .http: return .unrouted
        case .grpc: return Self.grpcRejection
        }
    }

    static let grpcRejection = InboundRejection.status(httpStatus: 501, detail: "requested endpoint is not available")

    /// Whether the lists let this operation through.
    public func exposes(_ operation: InboundOperation) -> Bool {
        switch operation.surface {
        case .http:
            // Requests naming no API (unknown paths) and the health routes are never listed.
            if operation.api.isEmpty || operation.api == "healthz" { return true }
            if self.httpDenied.contains(where: { Self.matches($0, operation) }) { return false }
            if let allowed = self.httpAllowed { return allowed.contains(where: { Self.matches($0, operation) }) }
            return true
        case .grpc:
            guard operation.route.hasPrefix(DaprGRPCEndpoints.runtimePrefix) else { return true }
            if self.grpcDenied.contains(operation.route) { return false }
            if !self.grpcAllowed.isEmpty { return self.grpcAllowed.contains(operation.route) }
            return true
        }
    }

    static func matches(_ rule: APIAccessRule, _ operation: InboundOperation) -> Bool {
        if rule.name == operation.api && Self.normalizeVersion(rule.version) == Self.normalizeVersion(operation.version) { return true }
        // `<version>/<route>` starts with `<rule version>/<rule name>`, without building either.
        return SlashJoined(operation.version, operation.route).starts(with: SlashJoined(rule.version, rule.name))
    }

    /// The bytes of `first + "/" + second`.
    struct SlashJoined: Sequence, IteratorProtocol {
        var first: String.UTF8View.Iterator
        var second: String.UTF8View.Iterator
        var inSecond = false

        init(_ first: String, _ second: String) {
            self.first = first.utf8.makeIterator()
            self.second = second.utf8.makeIterator()
        }

        mutating func next() -> UInt8? {
            if self.inSecond { return self.second.next() }
            if let byte = self.first.next() { return byte }
            self.inSecond = true
            return UInt8(ascii: "/")
        }
    }

    static func normalizeVersion(_ version: String) -> String {
        switch version {
        case "v1", "v1.0": "v1"
        case "v1alpha1", "v1.0-alpha1": "v1alpha1"
        case "v1alpha2", "v1.0-alpha2": "v1alpha2"
        default: version
        }
    }

    static func grpcMethods(_ rules: [APIAccessRule]) -> Set<String> {
        var methods: Set<String> = []
        for rule in rules where rule.apiProtocol == .grpc {
            methods.formUnion(DaprGRPCEndpoints.methods(name: rule.name, version: rule.version))
        }
        return methods
    }
}

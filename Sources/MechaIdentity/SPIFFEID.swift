/// A workload's identity as Dapr writes it: `spiffe://<trust-domain>/ns/<namespace>/<app-id>`.
///
/// Parsed by the SPIFFE ID rules (SPIFFE-ID §2): scheme `spiffe`; a trust domain of lower-case
/// letters, digits, `.`, `-` and `_`; path segments of letters, digits, `.`, `-` and `_`, none
/// empty, `.` or `..`; no query, fragment, port or user info; at most 2048 bytes. Mecha only
/// issues and accepts the `ns/<namespace>/<app-id>` shape.
public struct SPIFFEID: Hashable, Sendable, CustomStringConvertible {
    public let trustDomain: String
    public let namespace: String
    public let appID: String

    /// Dapr's default trust domain.
    public static let defaultTrustDomain = "public"
    static let maxLength = 2048

    public init(trustDomain: String, namespace: String, appID: String) throws(IdentityError) {
        guard Self.isTrustDomain(trustDomain) else { throw .invalidID("trust domain '\(trustDomain)' may only hold a-z, 0-9, '.', '-' and '_'") }
        guard Self.isSegment(namespace) else { throw .invalidID("namespace '\(namespace)' may only hold letters, digits, '.', '-' and '_'") }
        guard Self.isSegment(appID) else { throw .invalidID("app id '\(appID)' may only hold letters, digits, '.', '-' and '_'") }
        self.trustDomain = trustDomain
        self.namespace = namespace
        self.appID = appID
        guard self.description.utf8.count <= Self.maxLength else { throw .invalidID("longer than \(Self.maxLength) bytes") }
    }

    /// Parses `spiffe://<trust-domain>/ns/<namespace>/<app-id>`.
    public init(parsing text: String) throws(IdentityError) {
        guard text.utf8.count <= Self.maxLength else { throw .invalidID("longer than \(Self.maxLength) bytes") }
        let scheme = "spiffe://"
        guard text.hasPrefix(scheme) else { throw .invalidID("'\(text)' does not start with spiffe://") }
        let rest = text.dropFirst(scheme.count)
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
        guard let domain = parts.first, !domain.isEmpty else { throw .invalidID("'\(text)' has no trust domain") }
        guard parts.count == 4, parts[1] == "ns" else { throw .invalidID("'\(text)' is not spiffe://<trust-domain>/ns/<namespace>/<app-id>") }
        try self.init(trustDomain: String(domain), namespace: String(parts[2]), appID: String(parts[3]))
    }

    public var description: String { "spiffe://\(self.trustDomain)/ns/\(self.namespace)/\(self.appID)" }

    /// The trust domain's own id (`spiffe://<trust-domain>`), carried by its root certificate.
    public static func trustDomainURI(_ trustDomain: String) -> String { "spiffe://\(trustDomain)" }

    public static func isTrustDomain(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 255
            && text.utf8.allSatisfy { byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                    || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
            }
    }

    static func isSegment(_ text: String) -> Bool {
        !text.isEmpty && text != "." && text != ".."
            && text.utf8.allSatisfy { byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                    || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
                    || byte == UInt8(ascii: "_")
            }
    }
}

/// Why an identity, a request for one or a peer's certificate was refused. The text names what
/// was wrong, for logs and for the refused caller.
public enum IdentityError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidID(String)
    /// A CSR that is malformed, badly signed or claims an identity the requester may not have.
    case refusedRequest(String)
    /// A peer chain that does not verify against the trust bundle (expired, other CA, no SPIFFE id…).
    case untrustedPeer(String)
    /// Unreadable or inconsistent certificate, key or bundle material.
    case invalidMaterial(String)

    public var description: String {
        switch self {
        case .invalidID(let text): "invalid SPIFFE id: \(text)"
        case .refusedRequest(let text): "certificate request refused: \(text)"
        case .untrustedPeer(let text): "peer not trusted: \(text)"
        case .invalidMaterial(let text): "invalid certificate material: \(text)"
        }
    }
}

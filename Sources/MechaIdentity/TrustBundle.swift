public import Foundation
import Crypto
import SwiftASN1
public import X509

/// The roots a workload trusts for one trust domain. During a root rollover a bundle holds the old
/// and the new root, so SVIDs of either verify until the old ones have expired.
public struct TrustBundle: Sendable {
    public let trustDomain: String
    public let roots: [Certificate]

    public init(trustDomain: String, roots: [Certificate]) throws {
        guard SPIFFEID.isTrustDomain(trustDomain) else { throw IdentityError.invalidID("trust domain '\(trustDomain)' may only hold a-z, 0-9, '.', '-' and '_'") }
        guard !roots.isEmpty else { throw IdentityError.invalidMaterial("a trust bundle needs at least one root") }
        self.trustDomain = trustDomain
        self.roots = roots
    }

    /// A bundle from concatenated PEM certificates (daprd's `--trust-anchors-file`); `origin` names
    /// the file in errors.
    public init(trustDomain: String, pem: String, origin: String = "the trust bundle") throws {
        let documents: [PEMDocument]
        do {
            documents = try PEMDocument.parseMultiple(pemString: pem)
        } catch {
            throw IdentityError.invalidMaterial("\(origin) is not PEM (\(error))")
        }
        var roots: [Certificate] = []
        for (index, document) in documents.enumerated() {
            guard document.discriminator == "CERTIFICATE" else {
                throw IdentityError.invalidMaterial("\(origin): block \(index + 1) is a \(document.discriminator), not a CERTIFICATE")
            }
            do {
                roots.append(try Certificate(pemDocument: document))
            } catch {
                throw IdentityError.invalidMaterial("\(origin): certificate \(index + 1) is malformed (\(error))")
            }
        }
        guard !roots.isEmpty else { throw IdentityError.invalidMaterial("\(origin) holds no certificate") }
        try self.init(trustDomain: trustDomain, roots: roots)
    }

    /// The trust domain the first root of a PEM text names (its `spiffe://<td>` URI SAN), if any.
    public static func trustDomain(ofRootsIn pem: String) -> String? {
        guard let documents = try? PEMDocument.parseMultiple(pemString: pem), let first = documents.first,
            let root = try? Certificate(pemDocument: first)
        else { return nil }
        return WorkloadCA.trustDomain(of: root)
    }

    /// Identifies the set of roots, whatever their order: SHA-256 over their sorted DER encodings.
    public var fingerprint: String {
        let encodings = self.roots.compactMap { root -> [UInt8]? in
            var serializer = DER.Serializer()
            guard (try? serializer.serialize(root)) != nil else { return nil }
            return serializer.serializedBytes
        }.sorted { $0.lexicographicallyPrecedes($1) }
        var hasher = SHA256()
        for encoding in encodings { hasher.update(data: encoding) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// The fingerprint (SHA-256 of the DER) of the root in this bundle that signed `certificate`.
    public func issuingRootFingerprint(of certificate: Certificate) -> String? {
        guard let root = self.roots.first(where: { $0.publicKey.isValidSignature(certificate.signature, for: certificate) }) else { return nil }
        return (try? TrustBundle(trustDomain: self.trustDomain, roots: [root]))?.fingerprint
    }

    /// The roots of both (a root in each is kept once).
    public func merged(with other: TrustBundle) -> TrustBundle {
        var roots = self.roots
        for root in other.roots where !roots.contains(root) { roots.append(root) }
        return (try? TrustBundle(trustDomain: self.trustDomain, roots: roots)) ?? self
    }

    public var pem: String { self.roots.compactMap { try? $0.serializeAsPEM().pemString }.joined(separator: "\n") + "\n" }

    /// The identity of a peer presenting `chain` (leaf first): the chain must lead to one of the
    /// roots and be valid at `now`, and the leaf must carry exactly one SPIFFE id, of this trust
    /// domain.
    public func verify(_ chain: [Certificate], now: Date = Date()) async throws -> SPIFFEID {
        guard let leaf = chain.first else { throw IdentityError.untrustedPeer("no certificate") }
        var verifier = Verifier(rootCertificates: CertificateStore(self.roots)) { RFC5280Policy(validationTime: now) }
        let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore(chain.dropFirst()))
        guard case .validCertificate = result else {
            let reason: String
            if now > leaf.notValidAfter {
                reason = "the certificate expired at \(leaf.notValidAfter)"
            } else if now < leaf.notValidBefore {
                reason = "the certificate is not valid before \(leaf.notValidBefore)"
            } else {
                reason = "the certificate is not issued by a root of trust domain '\(self.trustDomain)'"
            }
            throw IdentityError.untrustedPeer(reason)
        }
        let ids = Self.spiffeIDs(of: leaf)
        guard ids.count == 1, let id = ids.first else {
            throw IdentityError.untrustedPeer(ids.isEmpty ? "the certificate carries no SPIFFE id" : "the certificate carries several SPIFFE ids")
        }
        guard id.trustDomain == self.trustDomain else { throw IdentityError.untrustedPeer("\(id) is not of trust domain '\(self.trustDomain)'") }
        return id
    }

    /// The SPIFFE ids among a certificate's URI SANs (unparseable `spiffe://` URIs are skipped).
    public static func spiffeIDs(of certificate: Certificate) -> [SPIFFEID] {
        guard let names = try? certificate.extensions.subjectAlternativeNames else { return [] }
        return names.compactMap { name in
            guard case .uniformResourceIdentifier(let uri) = name else { return nil }
            return try? SPIFFEID(parsing: uri)
        }
    }
}

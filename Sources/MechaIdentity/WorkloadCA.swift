#if canImport(Glibc)
import Glibc
#endif
public import Crypto
public import Foundation
import SwiftASN1
public import X509

/// The certificate authority of a trust domain: a self-signed ECDSA P-256 root that issues
/// short-lived X.509 SVIDs to workloads that ask with a CSR. Used by `mecha control-plane`, and by
/// a sidecar on its own, whose CA lives in the Mecha home so that local sidecars share it.
///
/// An SVID carries its SPIFFE id as its only URI SAN, is no CA, and may serve both ends of a
/// TLS connection (server and client auth). It is valid from `now - skew` (clocks of other hosts
/// may lag) until `now + ttl`.
public struct WorkloadCA: Sendable {
    public let trustDomain: String
    public let root: Certificate
    let key: Certificate.PrivateKey

    /// Dapr's defaults: SVIDs live 24 h; 15 minutes of clock skew are allowed.
    public static let defaultTTL: Duration = .seconds(24 * 3600)
    public static let defaultSkew: Duration = .seconds(15 * 60)
    /// A new root's validity.
    public static let rootValidity: Duration = .seconds(365 * 24 * 3600)

    /// A new root for `trustDomain`.
    public static func create(trustDomain: String, validity: Duration = Self.rootValidity, now: Date = Date()) throws -> WorkloadCA {
        guard SPIFFEID.isTrustDomain(trustDomain) else { throw IdentityError.invalidID("trust domain '\(trustDomain)' may only hold a-z, 0-9, '.', '-' and '_'") }
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let name = try DistinguishedName {
            OrganizationName("Mecha")
            CommonName("Mecha CA \(trustDomain)")
        }
        let root = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: key.publicKey,
            notValidBefore: now - 60,
            notValidAfter: now + Self.seconds(validity),
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: key.publicKey)
                SubjectAlternativeNames([.uniformResourceIdentifier(SPIFFEID.trustDomainURI(trustDomain))])
            },
            issuerPrivateKey: key)
        return WorkloadCA(trustDomain: trustDomain, root: root, key: key)
    }

    /// The CA kept as `ca.crt.pem` and `ca.key.pem` (mode 0600) in `directory`: read when it is
    /// there, else created. Sidecars starting together agree on one CA: each writes a new one
    /// into a private directory and renames it into place; a rename that finds the directory
    /// already there loses, and that process reads the winner's.
    public static func loadOrCreate(directory: String, trustDomain: String) throws -> WorkloadCA {
        let files = FileManager.default
        if let existing = try Self.load(directory: directory, trustDomain: trustDomain) { return existing }
        let parent = (directory as NSString).deletingLastPathComponent
        try files.createDirectory(atPath: parent, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let staging = parent + "/.ca-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? files.removeItem(atPath: staging) }
        let ca = try Self.create(trustDomain: trustDomain)
        try files.createDirectory(atPath: staging, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        // The key is written with owner-only permissions before any content goes in.
        guard files.createFile(atPath: staging + "/ca.key.pem", contents: nil, attributes: [.posixPermissions: 0o600]) else {
            throw IdentityError.invalidMaterial("cannot create \(staging)/ca.key.pem")
        }
        try Data(try ca.key.serializeAsPEM().pemString.utf8).write(to: URL(fileURLWithPath: staging + "/ca.key.pem"))
        try Data(try ca.root.serializeAsPEM().pemString.utf8).write(to: URL(fileURLWithPath: staging + "/ca.crt.pem"))
        if rename(staging, directory) == 0 { return ca }
        // Another process created it first (or an empty directory is in the way).
        if let existing = try Self.load(directory: directory, trustDomain: trustDomain) { return existing }
        throw IdentityError.invalidMaterial("cannot create the CA in \(directory): \(String(cString: strerror(errno)))")
    }

    /// The CA in `directory`, or nil when its files are not both there.
    static func load(directory: String, trustDomain: String) throws -> WorkloadCA? {
        let certificatePath = directory + "/ca.crt.pem"
        let keyPath = directory + "/ca.key.pem"
        let files = FileManager.default
        guard files.fileExists(atPath: certificatePath), files.fileExists(atPath: keyPath) else { return nil }
        let ca = try WorkloadCA(
            certificatePEM: String(contentsOfFile: certificatePath, encoding: .utf8), keyPEM: String(contentsOfFile: keyPath, encoding: .utf8),
            origin: directory)
        guard ca.trustDomain == trustDomain else {
            throw IdentityError.invalidMaterial("\(certificatePath) is the CA of trust domain '\(ca.trustDomain)', not '\(trustDomain)'")
        }
        return ca
    }

    /// A CA from its PEM root certificate and key; `origin` names where they came from in errors.
    public init(certificatePEM: String, keyPEM: String, origin: String = "the CA") throws {
        let root: Certificate
        let key: Certificate.PrivateKey
        do {
            root = try Certificate(pemEncoded: certificatePEM)
        } catch {
            throw IdentityError.invalidMaterial("\(origin): the root certificate is not a PEM certificate (\(error))")
        }
        do {
            key = try Certificate.PrivateKey(pemEncoded: keyPEM)
        } catch {
            throw IdentityError.invalidMaterial("\(origin): the key is not a PEM private key (\(error))")
        }
        guard key.publicKey == root.publicKey else { throw IdentityError.invalidMaterial("\(origin): the key does not belong to the root certificate") }
        guard let constraints = try? root.extensions.basicConstraints, case .isCertificateAuthority = constraints else {
            throw IdentityError.invalidMaterial("\(origin): the root certificate is not a CA")
        }
        guard let domain = Self.trustDomain(of: root) else {
            throw IdentityError.invalidMaterial("\(origin): the root certificate names no trust domain (a spiffe://<trust-domain> URI SAN)")
        }
        self.init(trustDomain: domain, root: root, key: key)
    }

    init(trustDomain: String, root: Certificate, key: Certificate.PrivateKey) {
        self.trustDomain = trustDomain
        self.root = root
        self.key = key
    }

    /// The trust domain a root names with its `spiffe://<trust-domain>` URI SAN.
    static func trustDomain(of root: Certificate) -> String? {
        guard let names = try? root.extensions.subjectAlternativeNames else { return nil }
        for name in names {
            guard case .uniformResourceIdentifier(let uri) = name, uri.hasPrefix("spiffe://") else { continue }
            let domain = String(uri.dropFirst("spiffe://".count))
            if SPIFFEID.isTrustDomain(domain) { return domain }
        }
        return nil
    }

    /// The private key as PEM (for a store that keeps the CA; handle as a secret).
    public func keyPEM() throws -> String { try self.key.serializeAsPEM().pemString }

    /// The root as PEM (what peers put in their trust bundle).
    public var rootPEM: String { (try? self.root.serializeAsPEM().pemString) ?? "" }

    /// Issues `id`'s SVID for the key of `csr`. Refused when the CSR's signature does not verify,
    /// when `id` is of another trust domain, or when the CSR asks for any other name than `id`
    /// (a requester only gets the identity it was authenticated as).
    public func issue(
        csr: CertificateSigningRequest, for id: SPIFFEID, ttl: Duration = Self.defaultTTL, skew: Duration = Self.defaultSkew, now: Date = Date()
    ) throws -> Certificate {
        guard csr.publicKey.isValidSignature(csr.signature, for: csr) else { throw IdentityError.refusedRequest("the CSR's signature does not verify") }
        guard id.trustDomain == self.trustDomain else {
            throw IdentityError.refusedRequest("\(id) is not of trust domain '\(self.trustDomain)'")
        }
        let requested: Certificate.Extensions?
        do {
            requested = try csr.attributes.extensionRequest?.extensions
        } catch {
            throw IdentityError.refusedRequest("the CSR's extension request is malformed (\(error))")
        }
        if let names = try? requested?.subjectAlternativeNames {
            for name in names {
                guard case .uniformResourceIdentifier(let uri) = name, uri == id.description else {
                    throw IdentityError.refusedRequest("the CSR asks for \(name), but the requester may only have \(id)")
                }
            }
        }
        guard ttl > .zero else { throw IdentityError.refusedRequest("a certificate's lifetime must be positive") }
        return try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: csr.publicKey,
            notValidBefore: now - Self.seconds(skew),
            notValidAfter: min(now + Self.seconds(ttl), self.root.notValidAfter),
            issuer: self.root.subject,
            subject: try DistinguishedName { CommonName(id.appID) },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                KeyUsage(digitalSignature: true, keyEncipherment: true)
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectAlternativeNames([.uniformResourceIdentifier(id.description)])
                AuthorityKeyIdentifier(keyIdentifier: try? self.root.extensions.subjectKeyIdentifier?.keyIdentifier)
            },
            issuerPrivateKey: self.key)
    }

    static func seconds(_ duration: Duration) -> TimeInterval {
        let (seconds, attoseconds) = duration.components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}

public import Crypto
public import Foundation
import SwiftASN1
public import X509

/// A workload's X.509 SVID: its certificate (leaf first, then any intermediates), the private key,
/// and the identity the certificate carries.
public struct SVID: Sendable {
    public let id: SPIFFEID
    public let chain: [Certificate]
    public let privateKey: Certificate.PrivateKey

    public init(id: SPIFFEID, chain: [Certificate], privateKey: Certificate.PrivateKey) throws {
        guard let leaf = chain.first else { throw IdentityError.invalidMaterial("an SVID needs a certificate") }
        guard leaf.publicKey == privateKey.publicKey else { throw IdentityError.invalidMaterial("the key does not belong to the SVID's certificate") }
        guard TrustBundle.spiffeIDs(of: leaf) == [id] else { throw IdentityError.invalidMaterial("the certificate does not carry \(id)") }
        self.id = id
        self.chain = chain
        self.privateKey = privateKey
    }

    public var leaf: Certificate { self.chain[0] }
    public var notAfter: Date { self.leaf.notValidAfter }

    /// When to ask for the next one: at 70 % of the certificate's lifetime (as Dapr's sentry
    /// clients do), so a rotation has the remaining 30 % to succeed.
    public var renewAt: Date {
        let start = self.leaf.notValidBefore
        return start + self.leaf.notValidAfter.timeIntervalSince(start) * 0.7
    }

    /// A fresh P-256 key and the CSR asking for `id` with it.
    public static func request(for id: SPIFFEID) throws -> (key: Certificate.PrivateKey, csr: CertificateSigningRequest) {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let csr = try CertificateSigningRequest(
            version: .v1,
            subject: try DistinguishedName { CommonName(id.appID) },
            privateKey: key,
            attributes: try CertificateSigningRequest.Attributes([
                .init(ExtensionRequest(extensions: Certificate.Extensions { SubjectAlternativeNames([.uniformResourceIdentifier(id.description)]) }))
            ]),
            signatureAlgorithm: .ecdsaWithSHA256)
        return (key, csr)
    }
}

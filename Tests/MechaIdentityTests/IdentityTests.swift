import Crypto
import Foundation
import MechaIdentity
import SwiftASN1
import Testing
import X509

@Suite struct SPIFFEIDTests {
    @Test func parsesDaprsShape() throws {
        let id = try SPIFFEID(parsing: "spiffe://public/ns/default/orders")
        #expect(id.trustDomain == "public" && id.namespace == "default" && id.appID == "orders")
        #expect(id.description == "spiffe://public/ns/default/orders")
        #expect(try SPIFFEID(trustDomain: "example.org", namespace: "prod", appID: "Cart_2") == SPIFFEID(parsing: "spiffe://example.org/ns/prod/Cart_2"))
    }

    @Test(arguments: [
        "spiffe://Public/ns/default/orders", "spiffe:///ns/default/orders", "http://public/ns/default/orders", "spiffe://public/ns/default",
        "spiffe://public/ns/default/orders/extra", "spiffe://public/ns//orders", "spiffe://public/ns/../orders", "spiffe://public/xx/default/orders",
        "spiffe://public/ns/default/or ders", "spiffe://pub:443/ns/default/orders", "spiffe://public/ns/default/orders?x=1",
        "spiffe://public/ns/default/", "",
    ])
    func refusesAnythingElse(text: String) {
        #expect(throws: IdentityError.self) { try SPIFFEID(parsing: text) }
    }
}

@Suite struct WorkloadCATests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func svid(_ ca: WorkloadCA, _ id: SPIFFEID, ttl: Duration = WorkloadCA.defaultTTL, at now: Date? = nil) throws -> SVID {
        let (key, csr) = try SVID.request(for: id)
        let certificate = try ca.issue(csr: csr, for: id, ttl: ttl, now: now ?? self.now)
        return try SVID(id: id, chain: [certificate], privateKey: key)
    }

    @Test func issuesAnSVIDThatTheBundleVerifies() async throws {
        let ca = try WorkloadCA.create(trustDomain: "public", now: self.now - 3600)
        let id = try SPIFFEID(trustDomain: "public", namespace: "default", appID: "orders")
        let svid = try self.svid(ca, id)
        #expect(svid.leaf.notValidAfter == self.now + 24 * 3600)
        #expect(svid.leaf.notValidBefore == self.now - 15 * 60)
        #expect(try svid.leaf.extensions.basicConstraints == .notCertificateAuthority)
        #expect(try svid.leaf.extensions.extendedKeyUsage?.contains(.clientAuth) == true)
        let bundle = try TrustBundle(trustDomain: "public", roots: [ca.root])
        #expect(try await bundle.verify(svid.chain, now: self.now) == id)
        // 70 % of the lifetime from its start.
        #expect(abs(svid.renewAt.timeIntervalSince(svid.leaf.notValidBefore) - 0.7 * (24 * 3600 + 15 * 60)) < 1)
    }

    @Test func aRequesterOnlyGetsItsOwnIdentity() throws {
        let ca = try WorkloadCA.create(trustDomain: "public", now: self.now - 3600)
        let claimed = try SPIFFEID(trustDomain: "public", namespace: "default", appID: "payments")
        let requester = try SPIFFEID(trustDomain: "public", namespace: "default", appID: "orders")
        let (_, csr) = try SVID.request(for: claimed)
        #expect(throws: IdentityError.self) { try ca.issue(csr: csr, for: requester, now: self.now) }
        let other = try SPIFFEID(trustDomain: "elsewhere", namespace: "default", appID: "orders")
        let (_, own) = try SVID.request(for: other)
        #expect(throws: IdentityError.self) { try ca.issue(csr: own, for: other, now: self.now) }
    }

    @Test func aCSRSignedWithAnotherKeyIsRefused() throws {
        let ca = try WorkloadCA.create(trustDomain: "public", now: self.now - 3600)
        let id = try SPIFFEID(trustDomain: "public", namespace: "default", appID: "orders")
        let (_, first) = try SVID.request(for: id)
        let (_, second) = try SVID.request(for: id)
        let forged = try CertificateSigningRequest(
            version: .v1, subject: first.subject, publicKey: second.publicKey, attributes: first.attributes,
            signatureAlgorithm: first.signatureAlgorithm, signature: first.signature)
        #expect(throws: IdentityError.refusedRequest("the CSR's signature does not verify")) { try ca.issue(csr: forged, for: id, now: self.now) }
    }

    @Test func expiredOrForeignCertificatesAreRefused() async throws {
        let ca = try WorkloadCA.create(trustDomain: "public", now: self.now - 7 * 24 * 3600)
        let stranger = try WorkloadCA.create(trustDomain: "public", now: self.now - 3600)
        let id = try SPIFFEID(trustDomain: "public", namespace: "default", appID: "orders")
        let bundle = try TrustBundle(trustDomain: "public", roots: [ca.root])

        let old = try self.svid(ca, id, ttl: .seconds(3600), at: self.now - 2 * 24 * 3600)
        await #expect(throws: IdentityError.self) { try await bundle.verify(old.chain, now: self.now) }
        do {
            _ = try await bundle.verify(old.chain, now: self.now)
        } catch let error as IdentityError {
            #expect(error.description.contains("expired"))
        }
        let foreign = try self.svid(stranger, id)
        await #expect(throws: IdentityError.self) { try await bundle.verify(foreign.chain, now: self.now) }
        await #expect(throws: IdentityError.self) { try await bundle.verify([], now: self.now) }

        // A root of another trust domain, even trusted, does not make its ids ours.
        let other = try WorkloadCA.create(trustDomain: "other", now: self.now - 3600)
        let theirs = try self.svid(other, SPIFFEID(trustDomain: "other", namespace: "default", appID: "orders"))
        let mixed = try TrustBundle(trustDomain: "public", roots: [ca.root, other.root])
        await #expect(throws: IdentityError.self) { try await mixed.verify(theirs.chain, now: self.now) }
    }

    @Test func duringARolloverBothRootsAreTrusted() async throws {
        let old = try WorkloadCA.create(trustDomain: "public", now: self.now - 3600)
        let new = try WorkloadCA.create(trustDomain: "public", now: self.now - 60)
        let id = try SPIFFEID(trustDomain: "public", namespace: "default", appID: "orders")
        let before = try self.svid(old, id)
        let after = try self.svid(new, id)
        let overlap = try TrustBundle(trustDomain: "public", roots: [old.root, new.root])
        #expect(try await overlap.verify(before.chain, now: self.now) == id)
        #expect(try await overlap.verify(after.chain, now: self.now) == id)
        let done = try TrustBundle(trustDomain: "public", pem: new.rootPEM)
        #expect(try await done.verify(after.chain, now: self.now) == id)
        await #expect(throws: IdentityError.self) { try await done.verify(before.chain, now: self.now) }
        // The bundle's PEM reads back.
        let reread = try TrustBundle(trustDomain: "public", pem: overlap.pem)
        #expect(reread.roots == overlap.roots)
    }

    @Test func malformedMaterialIsNamed() throws {
        #expect(throws: IdentityError.invalidMaterial("anchors.pem holds no certificate")) {
            try TrustBundle(trustDomain: "public", pem: "not a certificate", origin: "anchors.pem")
        }
        let ca = try WorkloadCA.create(trustDomain: "public")
        let keyPEM = try Certificate.PrivateKey(P256.Signing.PrivateKey()).serializeAsPEM().pemString
        do {
            _ = try WorkloadCA(certificatePEM: ca.rootPEM, keyPEM: keyPEM, origin: "/home/ca")
            Issue.record("a key of another certificate was accepted")
        } catch let error as IdentityError {
            #expect(error == .invalidMaterial("/home/ca: the key does not belong to the root certificate"))
        }
        #expect(throws: IdentityError.self) { try WorkloadCA(certificatePEM: "garbage", keyPEM: keyPEM) }
    }

    @Test func theCAIsKeptInItsDirectory() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mecha-ca-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try WorkloadCA.loadOrCreate(directory: directory, trustDomain: "public")
        let again = try WorkloadCA.loadOrCreate(directory: directory, trustDomain: "public")
        #expect(first.root == again.root)
        let mode = try FileManager.default.attributesOfItem(atPath: directory + "/ca.key.pem")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(throws: IdentityError.self) { try WorkloadCA.loadOrCreate(directory: directory, trustDomain: "other") }
    }
}

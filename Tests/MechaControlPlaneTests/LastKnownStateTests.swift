import Foundation
import MechaControlPlane
import MechaCore
import MechaIdentity
import MechaTesting
import Testing

/// The sidecar's on-disk copy of what the control plane last gave.
struct LastKnownStateTests {
    static func fresh() throws -> LastKnownState {
        try LastKnownState(directory: TestEnvironment.temporaryDirectory("mecha-last-known") + "/default/orders")
    }

    @Test("a kept SVID comes back only for its own id, unexpired, under the same anchors")
    func svid() async throws {
        let state = try Self.fresh()
        let ca = try WorkloadCA.create(trustDomain: "public")
        let id = try SPIFFEID(trustDomain: "public", namespace: "default", appID: "orders")
        let tls = try await MeshTLS.start(id: id, issuer: LocalIssuer(ca: ca), ttl: .seconds(3600))
        try state.saveSVID(tls.svid, bundle: tls.bundle)
        let anchors = try TrustBundle(trustDomain: "public", pem: ca.rootPEM)

        let kept = try #require(await state.loadSVID(id: id, anchors: anchors))
        #expect(kept.svid.leaf == tls.svid.leaf)
        #expect(kept.bundle.roots == tls.bundle.roots)
        // Owner-only: it holds the private key.
        let mode = try FileManager.default.attributesOfItem(atPath: state.directory + "/svid.pem")[.posixPermissions] as? Int
        #expect(mode == 0o600)

        // Another app's id, another CA's anchors, a certificate about to expire: not trusted.
        #expect(await state.loadSVID(id: try SPIFFEID(trustDomain: "public", namespace: "default", appID: "shipping"), anchors: anchors) == nil)
        let foreign = try TrustBundle(trustDomain: "public", pem: try WorkloadCA.create(trustDomain: "public").rootPEM)
        #expect(await state.loadSVID(id: id, anchors: foreign) == nil)
        #expect(await state.loadSVID(id: id, anchors: anchors, margin: 7200) == nil)

        // Resumed from it, renewal is due at once.
        let resumed = try MeshTLS.resume(id: id, issuer: LocalIssuer(ca: ca), svid: kept.svid, bundle: kept.bundle)
        #expect(resumed.renewAt <= Date())
        try await resumed.renew()
        #expect(resumed.svid.leaf != kept.svid.leaf)

        // A damaged file is ignored.
        try "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n".write(toFile: state.directory + "/svid.pem", atomically: true, encoding: .utf8)
        #expect(await state.loadSVID(id: id, anchors: anchors) == nil)
    }

    @Test("resources and registry answers round-trip; damaged files read as nothing")
    func documents() throws {
        let state = try Self.fresh()
        #expect(state.loadResources() == nil)
        #expect(state.loadRegistry().isEmpty)
        try state.saveResources(version: "v7", documents: [(text: "kind: Component", file: "control-plane:a.yaml")])
        let resources = try #require(state.loadResources())
        #expect(resources.version == "v7")
        #expect(resources.documents.map(\.text) == ["kind: Component"])
        #expect(resources.documents.map(\.file) == ["control-plane:a.yaml"])

        let instance = AppInstance(
            appID: "shipping", namespace: "default", host: "10.0.0.2", internalPort: 5000, httpPort: 3500, grpcInternalPort: 5001,
            instanceID: "i-1", processID: 42, hostname: "b", metricsPort: 9090, mtls: true)
        try state.saveRegistry(["default/shipping": [instance]])
        #expect(state.loadRegistry() == ["default/shipping": [instance]])

        try "{not json".write(toFile: state.directory + "/registry.json", atomically: true, encoding: .utf8)
        #expect(state.loadRegistry().isEmpty)
    }
}

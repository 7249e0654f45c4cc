public import Foundation
public import MechaCore
public import MechaIdentity
import SwiftASN1
import X509

/// What a sidecar last received from the control plane — its SVID and trust bundle, the resources
/// pushed to it, the registry's answers — kept in a directory of its Mecha home
/// (`<home>/last-known/<namespace>/<app id>/`, owner-only), so that a sidecar restarted while the
/// control plane is away starts and serves on them, and says so in its health detail. Every file
/// is replaced atomically (written beside, then renamed); a damaged or foreign file is ignored,
/// never trusted: the SVID must still be valid, carry the sidecar's own id and chain to the trust
/// anchors it was started with.
public final class LastKnownState: Sendable {
    public let directory: String

    public init(directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        self.directory = directory
    }

    /// The directory for `appID` in `namespace` under the Mecha home.
    public static func directory(home: String, namespace: String, appID: String) -> String {
        "\(home)/last-known/\(namespace)/\(appID)"
    }

    func write(_ name: String, _ text: String) throws {
        let path = "\(self.directory)/\(name)"
        let staging = "\(path).\(ProcessInfo.processInfo.processIdentifier).tmp"
        guard FileManager.default.createFile(atPath: staging, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw IdentityError.invalidMaterial("cannot write \(staging)")
        }
        guard rename(staging, path) == 0 else {
            try? FileManager.default.removeItem(atPath: staging)
            throw IdentityError.invalidMaterial("cannot replace \(path): errno \(errno)")
        }
    }

    func read(_ name: String) -> String? {
        try? String(contentsOfFile: "\(self.directory)/\(name)", encoding: .utf8)
    }

    // MARK: The SVID

    /// Keeps the SVID (chain and key in one owner-only file) and the trust bundle.
    public func saveSVID(_ svid: SVID, bundle: TrustBundle) throws {
        let chain = try svid.chain.map { try $0.serializeAsPEM().pemString }.joined(separator: "\n")
        try self.write("svid.pem", chain + "\n" + (try svid.privateKey.serializeAsPEM().pemString) + "\n")
        try self.write("bundle.pem", bundle.pem)
    }

    /// The kept SVID of `id`, if it is still valid for at least `margin` and chains to `anchors`.
    public func loadSVID(id: SPIFFEID, anchors: TrustBundle, margin: TimeInterval = 5) async -> (svid: SVID, bundle: TrustBundle)? {
        guard let text = self.read("svid.pem"), let bundleText = self.read("bundle.pem"),
            let documents = try? PEMDocument.parseMultiple(pemString: text)
        else { return nil }
        let certificates = documents.filter { $0.discriminator == "CERTIFICATE" }.compactMap { try? Certificate(pemDocument: $0) }
        guard let keyDocument = documents.first(where: { $0.discriminator.hasSuffix("PRIVATE KEY") }),
            let key = try? Certificate.PrivateKey(pemDocument: keyDocument),
            let svid = try? SVID(id: id, chain: certificates, privateKey: key),
            svid.notAfter.timeIntervalSinceNow > margin,
            let bundle = try? TrustBundle(trustDomain: id.trustDomain, pem: bundleText, origin: "\(self.directory)/bundle.pem"),
            (try? await anchors.verify(certificates)) != nil
        else { return nil }
        return (svid, bundle)
    }

    // MARK: Resources

    /// Keeps the resource documents the control plane gave, with their version.
    public func saveResources(version: String, documents: [(text: String, file: String)]) throws {
        let list = documents.map { ["text": $0.text, "file": $0.file] }
        let data = try JSONSerialization.data(withJSONObject: ["version": version, "documents": list], options: [.sortedKeys])
        try self.write("resources.json", String(decoding: data, as: UTF8.self))
    }

    public func loadResources() -> (version: String, documents: [(text: String, file: String)])? {
        guard let text = self.read("resources.json"),
            let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any],
            let version = object["version"] as? String, let list = object["documents"] as? [[String: String]]
        else { return nil }
        return (version, list.compactMap { entry in entry["text"].map { ($0, entry["file"] ?? "control-plane:resources.yaml") } })
    }

    // MARK: The registry

    /// Keeps the registry's last answers, by `namespace/app id`.
    public func saveRegistry(_ answers: [String: [AppInstance]]) throws {
        let object = answers.mapValues { $0.map(ControlPlaneResolver.document) }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        try self.write("registry.json", String(decoding: data, as: UTF8.self))
    }

    public func loadRegistry() -> [String: [AppInstance]] {
        guard let text = self.read("registry.json"),
            let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: [[String: Any]]]
        else { return [:] }
        return object.mapValues { $0.compactMap(ControlPlaneResolver.instance) }
    }
}

public import Foundation
import NIOHTTP1
import Synchronization

/// The resources `mecha control-plane` holds for this sidecar's app (`GET /v1/resources`, with
/// the sidecar's SVID): fetched at startup and polled by hot reload, which applies them beside
/// the files of `--resources-path`. When the control plane cannot be reached the last documents
/// it gave stay in effect — kept on disk too (`LastKnownState`), so a sidecar restarted while it
/// is away starts with them.
public final class RemoteResources: Sendable {
    let client: ControlPlaneClient
    let lastKnown: LastKnownState?
    private let state = Mutex<(version: String?, documents: [(text: String, file: String)])>((nil, []))
    private let away = Atomic<Bool>(false)
    private let bundleFingerprint = Mutex<String?>(nil)
    /// The watch token of the last answer (`GET /v1/resources?wait=`).
    private let watchToken = Mutex<String?>(nil)

    /// The fingerprint of the trust bundle the control plane serves now (a sidecar whose bundle
    /// differs renews its certificate to get it).
    public var trustBundleFingerprint: String? { self.bundleFingerprint.withLock { $0 } }

    public init(client: ControlPlaneClient, lastKnown: LastKnownState? = nil) {
        self.client = client
        self.lastKnown = lastKnown
        if let kept = lastKnown?.loadResources() { self.state.withLock { $0 = (kept.version, kept.documents) } }
    }

    /// True while the control plane cannot be reached (the last documents it gave are in effect).
    public var runningOnLastKnownState: Bool { self.away.load(ordering: .relaxed) }

    /// The documents last received, each named `control-plane:<file it was applied from>`.
    public var documents: [(text: String, file: String)] { self.state.withLock { $0.documents } }

    /// Asks the control plane; true when the set of documents changed.
    @discardableResult
    public func fetch() async throws -> Bool {
        try await self.fetch(waiting: false)
    }

    /// Waits (up to the control plane's long poll, 8 s) for the documents or the trusted roots to
    /// differ from the last answer; true when the documents changed.
    @discardableResult
    public func watch() async throws -> Bool {
        try await self.fetch(waiting: true)
    }

    func fetch(waiting: Bool) async throws -> Bool {
        let status: Int
        let body: [UInt8]
        var uri = "/v1/resources"
        if waiting, let token = self.watchToken.withLock({ $0 }) {
            uri += "?wait=" + (token.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? token)
        }
        do {
            (status, body) = try await self.client.request(.GET, uri)
            self.away.store(false, ordering: .relaxed)
        } catch {
            self.away.store(true, ordering: .relaxed)
            throw error
        }
        guard status == 200, let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any],
            let version = object["version"] as? String, let list = object["documents"] as? [[String: String]]
        else {
            throw ControlPlaneIssuer.Refused(status: status, message: String(decoding: body, as: UTF8.self))
        }
        if let fingerprint = object["trustBundle"] as? String { self.bundleFingerprint.withLock { $0 = fingerprint } }
        if let token = object["watch"] as? String { self.watchToken.withLock { $0 = token } }
        let documents = list.compactMap { entry -> (text: String, file: String)? in
            guard let text = entry["text"] else { return nil }
            return (text, "control-plane:\(entry["source"] ?? "resources.yaml")")
        }
        let changed = self.state.withLock { state in
            guard state.version != version else { return false }
            state = (version, documents)
            return true
        }
        if changed { try? self.lastKnown?.saveResources(version: version, documents: documents) }
        return changed
    }
}

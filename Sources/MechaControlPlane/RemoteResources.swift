public import Foundation
import NIOHTTP1
import Synchronization

/// The resources `mecha control-plane` holds for this sidecar's app (`GET /v1/resources`, with
/// the sidecar's SVID): fetched at startup and polled by hot reload, which applies them beside
/// the files of `--resources-path`. When the control plane cannot be reached the last documents
/// it gave stay in effect.
public final class RemoteResources: Sendable {
    let client: ControlPlaneClient
    private let state = Mutex<(version: String?, documents: [(text: String, file: String)])>((nil, []))

    public init(client: ControlPlaneClient) {
        self.client = client
    }

    /// The documents last received, each named `control-plane:<file it was applied from>`.
    public var documents: [(text: String, file: String)] { self.state.withLock { $0.documents } }

    /// Asks the control plane; true when the set of documents changed.
    @discardableResult
    public func fetch() async throws -> Bool {
        let (status, body) = try await self.client.request(.GET, "/v1/resources")
        guard status == 200, let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any],
            let version = object["version"] as? String, let list = object["documents"] as? [[String: String]]
        else {
            throw ControlPlaneIssuer.Refused(status: status, message: String(decoding: body, as: UTF8.self))
        }
        let documents = list.compactMap { entry -> (text: String, file: String)? in
            guard let text = entry["text"] else { return nil }
            return (text, "control-plane:\(entry["source"] ?? "resources.yaml")")
        }
        return self.state.withLock { state in
            guard state.version != version else { return false }
            state = (version, documents)
            return true
        }
    }
}

public import Foundation
public import MechaIdentity
import MechaConfig
public import MechaCore
import SwiftASN1
public import X509

/// The control plane's endpoints, as a pure request → answer function.
///
/// - Certificate authority: `POST /v1/svid` with `Authorization: Bearer <join token>` and a JSON
///   body `{"csr": <PEM>, "appId": …, "namespace": …, "ttlSeconds": …}` answers
///   `{"certificateChain": <PEM>, "trustBundle": <PEM>}`. A token is good for the app id and
///   namespace it was made for only; the CSR must ask for exactly that SPIFFE id.
/// - Registry (callers present their SVID, so the control plane knows who they are):
///   `POST /v1/instances` registers or refreshes an instance of the caller's own app (a heartbeat),
///   `DELETE /v1/instances/<id>` removes one, `GET /v1/instances?appId=…&namespace=…` lists the
///   instances heard from in the last `freshness`.
/// - `GET /healthz` (no credentials): `{"status": "ok", "store": …, "leader": …}`.
public struct ControlPlaneAPI: Sendable {
    public let ca: WorkloadCA
    let store: ControlPlaneStore
    /// The longest lifetime granted; requests may ask for less.
    let maximumTTL: Duration
    let skew: Duration
    /// Checks a pushed component as a sidecar's loader would (its type is known, …); the reason
    /// when it is not loadable.
    let componentCheck: @Sendable (ComponentResource) -> String?
    /// Whether this control plane leads the ones sharing its store (`GET /healthz`).
    let leadership: ControlPlaneLeadership?
    /// How long a resource watch waits for a change (below the server's 10 s idle timeout).
    var longPoll: Duration = .seconds(8)

    /// The control plane's own SPIFFE id (its serving certificate carries it; sidecars check it).
    public static func controlPlaneID(trustDomain: String) throws -> SPIFFEID {
        try SPIFFEID(trustDomain: trustDomain, namespace: "mecha-system", appID: "control-plane")
    }

    public init(
        ca: WorkloadCA, store: ControlPlaneStore, maximumTTL: Duration = WorkloadCA.defaultTTL, skew: Duration = WorkloadCA.defaultSkew,
        componentCheck: @escaping @Sendable (ComponentResource) -> String? = { _ in nil }, leadership: ControlPlaneLeadership? = nil
    ) {
        self.leadership = leadership
        self.componentCheck = componentCheck
        self.ca = ca
        self.store = store
        self.maximumTTL = maximumTTL
        self.skew = skew
    }

    public struct Answer: Sendable, Equatable {
        public var status: Int
        public var body: [UInt8]
    }

    static func error(_ status: Int, _ code: String, _ message: String) -> Answer {
        let body = (try? JSONSerialization.data(withJSONObject: ["errorCode": code, "message": message], options: [.sortedKeys])) ?? Data()
        return Answer(status: status, body: Array(body))
    }

    /// How long an instance stays listed without a heartbeat.
    public static let freshness: Duration = .seconds(10)

    /// Answers one request; `peer` is the SPIFFE id of the client's verified certificate, if it
    /// presented one.
    public func handle(method: String, path: String, query: String = "", authorization: String?, peer: SPIFFEID? = nil, body: [UInt8]) async -> Answer {
        if path == "/v1/instances" || path.hasPrefix("/v1/instances/") {
            return await self.registry(method: method, path: path, query: query, peer: peer, body: body)
        }
        if path == "/v1/resources" || path.hasPrefix("/v1/resources/") {
            return await self.resources(method: method, path: path, query: query, authorization: authorization, peer: peer, body: body)
        }
        if path == "/healthz" {
            var status: [String: Any] = ["status": "ok", "trustDomain": self.ca.trustDomain, "store": self.store.kind]
            if let leadership = self.leadership {
                status["leader"] = leadership.isLeader
                if let since = leadership.leaderSince { status["leaderSince"] = ISO8601DateFormatter().string(from: since) }
            }
            let body = (try? JSONSerialization.data(withJSONObject: status, options: [.sortedKeys])) ?? Data()
            return Answer(status: 200, body: Array(body))
        }
        guard path == "/v1/svid" else { return Self.error(404, "ERR_NOT_FOUND", "no such endpoint: \(path)") }
        guard method == "POST" else { return Self.error(405, "ERR_METHOD_NOT_ALLOWED", "use POST") }
        guard let authorization, authorization.hasPrefix("Bearer "), case let token = String(authorization.dropFirst("Bearer ".count)), !token.isEmpty else {
            return Self.error(401, "ERR_UNAUTHENTICATED", "a join token is required (Authorization: Bearer <token>)")
        }
        let granted: (appID: String, namespace: String)?
        do {
            granted = try await self.store.identity(forToken: token)
        } catch {
            return Self.error(500, "ERR_INTERNAL", "the token store cannot be read: \(error)")
        }
        guard let granted else { return Self.error(401, "ERR_UNAUTHENTICATED", "unknown join token") }
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            return Self.error(400, "ERR_MALFORMED_REQUEST", "the body must be a JSON object with csr, appId and namespace")
        }
        guard let csrText = object["csr"] as? String, let appID = object["appId"] as? String, let namespace = object["namespace"] as? String else {
            return Self.error(400, "ERR_MALFORMED_REQUEST", "csr, appId and namespace are required strings")
        }
        guard appID == granted.appID, namespace == granted.namespace else {
            return Self.error(
                403, "ERR_PERMISSION_DENIED", "this join token is for app \(granted.appID) in namespace \(granted.namespace), not \(appID) in \(namespace)")
        }
        let id: SPIFFEID
        do {
            id = try SPIFFEID(trustDomain: self.ca.trustDomain, namespace: namespace, appID: appID)
        } catch {
            return Self.error(400, "ERR_MALFORMED_REQUEST", "\(error)")
        }
        let csr: CertificateSigningRequest
        do {
            csr = try CertificateSigningRequest(pemEncoded: csrText)
        } catch {
            return Self.error(400, "ERR_MALFORMED_REQUEST", "csr is not a PEM certificate signing request (\(error))")
        }
        var ttl = self.maximumTTL
        if let seconds = object["ttlSeconds"] as? Int, seconds > 0 { ttl = min(ttl, .seconds(seconds)) }
        do {
            // The signing root and the trusted ones are read from the store on each request: a
            // rollover made through any replica applies at once.
            let signing = try await self.store.certificateAuthority(trustDomain: self.ca.trustDomain)
            let roots = try await self.store.trustedRoots(trustDomain: self.ca.trustDomain)
            let leaf = try signing.issue(csr: csr, for: id, ttl: ttl, skew: self.skew)
            let answer: [String: String] = [
                "certificateChain": try leaf.serializeAsPEM().pemString + "\n", "trustBundle": roots.joined(separator: "\n") + "\n",
            ]
            return Answer(status: 200, body: Array(try JSONSerialization.data(withJSONObject: answer, options: [.sortedKeys])))
        } catch let error as IdentityError {
            return Self.error(403, "ERR_PERMISSION_DENIED", "\(error)")
        } catch {
            return Self.error(500, "ERR_INTERNAL", "\(error)")
        }
    }

    /// Resource distribution. `PUT /v1/resources` (administrator token; body: a YAML file, named by
    /// the `file` of `?file=`) validates every document as a sidecar would and stores them, or
    /// refuses the whole file naming the document and field; `DELETE /v1/resources/<kind>/<name>`
    /// (administrator) removes one; `GET /v1/resources` (a sidecar's SVID) lists the documents
    /// meant for the caller's app (their scopes include it, or they have none) with a version.
    ///
    /// A watch: `GET /v1/resources?wait=<watch>` (the `watch` of a previous answer) is answered as
    /// soon as the documents or the trusted roots differ from that answer, or after `longPoll` with
    /// the same ones — a sidecar learns of a change within half a second, with one request per
    /// `longPoll` while nothing changes.
    func resources(method: String, path: String, query: String = "", authorization: String?, peer: SPIFFEID?, body: [UInt8]) async -> Answer {
        do {
            if method == "GET" && path == "/v1/resources" {
                guard let peer, peer.trustDomain == self.ca.trustDomain else {
                    return Self.error(401, "ERR_UNAUTHENTICATED", "resources are served to sidecars presenting an SVID of trust domain \(self.ca.trustDomain)")
                }
                let waitFor = query.split(separator: "&").first { $0.hasPrefix("wait=") }.map { String($0.dropFirst(5)).removingPercentEncoding ?? "" }
                let deadline = ContinuousClock.now + self.longPoll
                var token = try await self.store.changeToken(trustDomain: self.ca.trustDomain)
                var answer = try await self.resourcesAnswer(for: peer)
                while let waitFor, answer.watch == waitFor, ContinuousClock.now < deadline, !Task.isCancelled {
                    try await Task.sleep(for: .milliseconds(500))
                    // Only a change anywhere in the store makes it worth building the app's answer.
                    let now = try await self.store.changeToken(trustDomain: self.ca.trustDomain)
                    guard now != token else { continue }
                    token = now
                    answer = try await self.resourcesAnswer(for: peer)
                }
                return Answer(status: 200, body: answer.body)
            }
            return try await self.changeResources(method: method, path: path, authorization: authorization, body: body)
        } catch {
            return Self.error(500, "ERR_INTERNAL", "the resource store cannot be read or written: \(error)")
        }
    }

    /// The documents meant for `peer`'s app, their version, the trusted roots' version, and the
    /// watch token made of both.
    func resourcesAnswer(for peer: SPIFFEID) async throws -> (watch: String, body: [UInt8]) {
        var documents: [[String: String]] = []
        var version: [String] = []
        for stored in try await self.store.resources() {
            guard let loaded = try? ResourceLoader.load(text: stored.text, file: stored.source), Self.isFor(peer.appID, loaded) else { continue }
            documents.append(["kind": stored.kind, "name": stored.name, "source": stored.source, "text": stored.text])
            version.append("\(stored.kind)/\(stored.name)\u{0}\(stored.text)")
        }
        // FNV-1a of every document: the same set gives the same version on every replica.
        let digest = version.joined(separator: "\u{1}").utf8.reduce(UInt64(14_695_981_039_346_656_037)) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 }
        // The trusted roots' version: a sidecar whose certificate or bundle differs renews at
        // once (a root rollover reaches every sidecar within seconds).
        let trust = try await self.store.trustVersion(trustDomain: self.ca.trustDomain)
        let watch = String(digest, radix: 16) + "-" + trust
        let answer: [String: Any] = ["version": String(digest, radix: 16), "documents": documents, "trustBundle": trust, "watch": watch]
        return (watch, Array(try JSONSerialization.data(withJSONObject: answer, options: [.sortedKeys])))
    }

    func changeResources(method: String, path: String, authorization: String?, body: [UInt8]) async throws -> Answer {
        do {
            guard let authorization, authorization.hasPrefix("Bearer "),
                try await self.store.isAdministrator(token: String(authorization.dropFirst("Bearer ".count)))
            else {
                return Self.error(401, "ERR_UNAUTHENTICATED", "changing resources needs an administrator token (mecha control-plane token --admin)")
            }
            switch method {
            case "PUT" where path.hasPrefix("/v1/resources"):
                let file = path.hasPrefix("/v1/resources/") ? String(path.dropFirst("/v1/resources/".count)).removingPercentEncoding ?? "resources.yaml" : "resources.yaml"
                let text = String(decoding: body, as: UTF8.self)
                var documents: [(kind: String, name: String, text: String, source: String)] = []
                var problems: [String] = []
                for document in ResourceLoader.splitDocuments(text) {
                    do {
                        let loaded = try ResourceLoader.load(text: document, file: file)
                        let unloadable = loaded.components.compactMap(self.componentCheck)
                        guard unloadable.isEmpty else {
                            problems += unloadable
                            continue
                        }
                        guard let (kind, name) = loaded.distributedNames.first else {
                            problems.append("\(file): a document is not a Component, Subscription, Resiliency, TrafficPolicy or AccessPolicy")
                            continue
                        }
                        documents.append((kind, name, document, file))
                    } catch {
                        problems += error.errors.map(\.description)
                    }
                }
                guard problems.isEmpty else { return Self.error(400, "ERR_MALFORMED_REQUEST", problems.joined(separator: "\n")) }
                guard !documents.isEmpty else { return Self.error(400, "ERR_MALFORMED_REQUEST", "\(file) holds no resource") }
                try await self.store.apply(documents)
                let names = documents.map { "\($0.kind)/\($0.name)" }
                return Answer(status: 200, body: Array(try JSONSerialization.data(withJSONObject: ["applied": names], options: [.sortedKeys])))
            case "DELETE":
                let parts = path.dropFirst("/v1/resources/".count).split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
                guard parts.count == 2 else { return Self.error(400, "ERR_MALFORMED_REQUEST", "use DELETE /v1/resources/<kind>/<name>") }
                guard try await self.store.delete(kind: parts[0], name: parts[1]) else {
                    return Self.error(404, "ERR_NOT_FOUND", "no \(parts[0])/\(parts[1]) in the control plane")
                }
                return Answer(status: 204, body: [])
            default:
                return Self.error(405, "ERR_METHOD_NOT_ALLOWED", "\(method) \(path) is not supported")
            }
        } catch {
            return Self.error(500, "ERR_INTERNAL", "the resource store cannot be read or written: \(error)")
        }
    }

    /// Whether every resource of a document is meant for `appID` (by its scopes).
    static func isFor(_ appID: String, _ loaded: LoadedResources) -> Bool {
        loaded.components.allSatisfy { $0.isInScope(appID: appID) } && loaded.subscriptions.allSatisfy { $0.isInScope(appID: appID) }
            && loaded.resiliencies.allSatisfy { $0.applies(to: appID) } && loaded.trafficPolicies.allSatisfy { $0.applies(to: appID) }
    }

    func registry(method: String, path: String, query: String, peer: SPIFFEID?, body: [UInt8]) async -> Answer {
        guard let peer, peer.trustDomain == self.ca.trustDomain else {
            return Self.error(401, "ERR_UNAUTHENTICATED", "the registry answers sidecars presenting an SVID of trust domain \(self.ca.trustDomain)")
        }
        do {
            switch (method, path) {
            case ("POST", "/v1/instances"):
                guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
                    let instanceID = object["instanceId"] as? String, !instanceID.isEmpty,
                    let appID = object["appId"] as? String, let namespace = object["namespace"] as? String
                else {
                    return Self.error(400, "ERR_MALFORMED_REQUEST", "an instance needs instanceId, appId and namespace")
                }
                guard appID == peer.appID, namespace == peer.namespace else {
                    return Self.error(403, "ERR_PERMISSION_DENIED", "\(peer) may only register instances of its own app, not \(appID) in \(namespace)")
                }
                try await self.store.register(instanceID: instanceID, appID: appID, namespace: namespace, document: String(decoding: body, as: UTF8.self))
                return Answer(status: 204, body: [])
            case ("DELETE", _) where path.hasPrefix("/v1/instances/"):
                try await self.store.deregister(instanceID: String(path.dropFirst("/v1/instances/".count)), appID: peer.appID)
                return Answer(status: 204, body: [])
            case ("GET", "/v1/instances"):
                var parameters: [String: String] = [:]
                for pair in query.split(separator: "&") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    if parts.count == 2 { parameters[String(parts[0])] = String(parts[1]).removingPercentEncoding ?? String(parts[1]) }
                }
                guard let appID = parameters["appId"], !appID.isEmpty else { return Self.error(400, "ERR_MALFORMED_REQUEST", "appId is required") }
                let documents = try await self.store.instances(appID: appID, namespace: parameters["namespace"] ?? "default", freshness: Self.freshness)
                return Answer(status: 200, body: Array(("[" + documents.joined(separator: ",") + "]").utf8))
            default:
                return Self.error(405, "ERR_METHOD_NOT_ALLOWED", "\(method) \(path) is not supported")
            }
        } catch {
            return Self.error(500, "ERR_INTERNAL", "the registry cannot be read or written: \(error)")
        }
    }
}

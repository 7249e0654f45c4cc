import MechaAPI
import MechaCore
import MechaIdentity
import MechaResiliency
import NIOHTTP1

/// The app the fast path may call directly (the HTTP app channel without a concurrency limit).
struct DirectAppTarget: Sendable {
    var host: String
    var port: Int
    /// `APP_API_TOKEN`, sent as `dapr-api-token`.
    var apiToken: String?
}

/// What the fast path does with one request: where it goes and the head it goes with.
struct FastInvokePlan {
    var host: String
    var port: Int
    /// The upstream request head (without `Content-Length`, which is added from the body).
    var head: HTTPRequestHead
    /// The target as named by the caller, for error messages.
    var targetForErrors: String
    /// The sidecar-to-sidecar listener passes `x-mecha-*` headers back to the calling sidecar.
    var keepsInternalHeaders: Bool
    /// The next hop is another sidecar: a misdirected answer (421 + `x-mecha-sidecar-error`)
    /// sends the call through the general path, which fails over to another instance.
    var isSidecarHop: Bool
    /// Reports the hop's outcome to the mesh (balancing, outlier ejection); called once.
    var finish: (@Sendable (_ success: Bool) -> Void)? = nil
    /// The target's Resiliency policy, run on the event loop; nil when it has none.
    var governance: FastGovernance? = nil
    /// Told of each attempt when the hop is this sidecar's own app (daprd's app channel metrics).
    var appCalls: (any OutboundObserver)? = nil
    /// The next sidecar listens with mTLS (`DirectHop.tls`): connect with `tls`.
    var secure = false
    /// This sidecar's mTLS identity, for secure hops (a retry may go to another instance).
    var tls: MeshTLS? = nil
    /// The app the next sidecar must prove to be (`MeshTLS.peer`), for secure hops.
    var peer: String? = nil
}

/// A fast request's Resiliency policy, applied by the handler on the event loop: the breaker is
/// asked before each attempt, the timeout is a scheduled task, retries re-send the buffered body
/// (to another instance for a sidecar hop).
struct FastGovernance {
    let policy: TargetPolicy
    /// The target endpoint's breaker (`app:method`), if the policy has one.
    let breaker: CircuitBreaker?
    /// Another hop for a retry; nil retries the same target (the local app).
    let rehop: (@Sendable () -> DirectHop?)?
}

/// An app answer outside 200-399, as the retry policy judges it.
struct FastStatusFailure: StatusCodedFailure {
    var httpStatusCode: Int?
    var grpcStatusCode: Int? { nil }
}

/// Decides, from a request head alone, whether a request can take the fast path. A nil answer
/// (anything unusual: streaming or large bodies, `Expect`, HTTP/1.0, `Connection: close`, a method
/// needing normalization, an unknown target, a concurrency limit…) leaves it to the general path,
/// which handles every case.
protocol FastInvokeRouter: Sendable {
    func plan(for head: HTTPRequestHead) -> FastInvokePlan?
    /// Error answers written by the fast path carry their code for the exchange observer.
    var marksErrorCodes: Bool { get }
}

extension FastInvokeRouter {
    var marksErrorCodes: Bool { false }
}

/// What the fast path needs to know of a request's headers, read in one pass.
struct RequestHeaderSummary {
    var contentLength: Int?
    var hasTransferEncoding = false
    var hasExpect = false
    var daprAppID: String?
    var hasBasicAuthorization = false
    var apiToken: String?
    var hasTraceParent = false
    var contentType: String?
    var internalTarget: String?
    var peerToken: String?
    /// An actor call forwarded by another sidecar (`x-mecha-actor-hops`): never a plain invocation.
    var isActorCall = false

    init?(_ headers: HTTPHeaders) {
        for (name, value) in headers {
            switch name.utf8.count {
            case 6 where HeaderNames.equals(name, "expect"): self.hasExpect = true
            case 11 where HeaderNames.equals(name, "dapr-app-id"):
                // Repeated identity or length headers: the general path decides.
                guard self.daprAppID == nil else { return nil }
                self.daprAppID = value
            case 11 where HeaderNames.equals(name, "traceparent"): self.hasTraceParent = true
            case 12 where HeaderNames.equals(name, "content-type"):
                guard self.contentType == nil else { return nil }
                self.contentType = value
            case 13 where HeaderNames.equals(name, "authorization"):
                if HeaderNames.hasPrefix(value, "basic ") { self.hasBasicAuthorization = true }
            case 14 where HeaderNames.equals(name, "content-length"):
                guard self.contentLength == nil, let length = Int(value), length >= 0 else { return nil }
                self.contentLength = length
            case 14 where HeaderNames.equals(name, "dapr-api-token"):
                guard self.apiToken == nil else { return nil }
                self.apiToken = value
            case 17 where HeaderNames.equals(name, "transfer-encoding"): self.hasTransferEncoding = true
            case 18 where HeaderNames.equals(name, "x-mecha-target-app"):
                guard self.internalTarget == nil else { return nil }
                self.internalTarget = value
            case 18 where HeaderNames.equals(name, "x-mecha-actor-hops"): self.isActorCall = true
            case 21 where HeaderNames.equals(name, "x-mecha-sidecar-token"):
                guard self.peerToken == nil else { return nil }
                self.peerToken = value
            default: break
            }
        }
    }

    /// A body the fast path reads whole before forwarding: known length within `limit`, or none.
    func hasSmallBody(limit: Int) -> Bool {
        if self.hasTransferEncoding || self.hasExpect { return false }
        return (self.contentLength ?? 0) <= limit
    }
}

enum FastInvoke {
    /// Methods the fast path forwards (HEAD and unusual verbs take the general path).
    static func isForwardedMethod(_ method: HTTPMethod) -> Bool {
        switch method {
        case .GET, .POST, .PUT, .DELETE, .PATCH, .OPTIONS: true
        default: false
        }
    }

    static func isPlainRequest(_ head: HTTPRequestHead) -> Bool {
        head.version == .http1_1 && head.isKeepAlive && self.isForwardedMethod(head.method)
    }

    static func authority(host: String, port: Int) -> String {
        port == 80 ? host : "\(host):\(port)"
    }

    /// The headers the HTTP app channel sends: the given ones minus hop-by-hop, `Content-Type` and
    /// `x-mecha-*`, then `Content-Type`, the app token and `Host` (as `HTTPAppChannel` +
    /// `HTTP1Client` do).
    static func finishAppHeaders(_ headers: inout HTTPHeaders, contentType: String?, app: DirectAppTarget) {
        if let contentType, !contentType.isEmpty { headers.add(name: "content-type", value: contentType) }
        if let token = app.apiToken { headers.replaceOrAdd(name: "dapr-api-token", value: token) }
        headers.add(name: "host", value: self.authority(host: app.host, port: app.port))
    }
}

/// The Dapr HTTP API's fast path: `/v1.0/invoke/<id>/method/<m>` and the `dapr-app-id` form, to
/// the local HTTP app or (with cached name resolution) to another app's sidecar. Produces exactly
/// the request the general path (`DaprHTTPServer.invoke` → `InvokeAPI` → `HTTPAppChannel` /
/// `SidecarInvoker`) would send.
struct PublicFastInvokeRouter: FastInvokeRouter {
    let appID: String
    let namespace: String
    let app: DirectAppTarget?
    let invoke: InvokeAPI
    /// The sidecar's inbound chain; never one that `readsClient` (the fast path has no caller
    /// address, and a request it hands back must not count twice).
    let inbound: InboundChain
    var marksErrorCodes: Bool { self.inbound.observersWantErrorCodes }
    let bodyLimit: Int
    /// The outbound seam's observer, read once when the listener starts (it is installed at
    /// assembly), not once per request.
    var appCalls: (any OutboundObserver)? = nil
    /// This sidecar's mTLS identity, for hops to sidecars that listen with mTLS.
    var tls: MeshTLS? = nil

    func plan(for head: HTTPRequestHead) -> FastInvokePlan? {
        guard FastInvoke.isPlainRequest(head), let summary = RequestHeaderSummary(head.headers),
            summary.hasSmallBody(limit: self.bodyLimit), !summary.hasBasicAuthorization
        else { return nil }
        let (path, query) = Self.split(head.uri)
        let target: String
        let method: Substring
        let operation: InboundOperation
        if let headerTarget = summary.daprAppID {
            // The header names the target; the whole path is the method.
            guard !headerTarget.isEmpty, path.first == "/" else { return nil }
            target = headerTarget
            method = path.dropFirst()
            operation = InboundOperation(surface: .http, api: "", version: "", route: "", apiToken: summary.apiToken)
        } else {
            guard case .invoke(let urlTarget, let urlMethod)? = DaprRoute.matchPlainInvoke(String(path)) else { return nil }
            target = urlTarget
            method = urlMethod[...]
            operation = InboundOperation(surface: .http, api: "invoke", version: "v1.0", route: "invoke", apiToken: summary.apiToken)
        }
        // Any refusal (or an invocation route the lists leave out) is the general path's to answer.
        guard self.inbound.check(operation) == nil else { return nil }
        let methodString = String(method)
        guard InvocationMethod.isClean(methodString) else { return nil }
        let parts = target.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return nil }
        let targetApp = String(parts[0])
        let targetNamespace = parts.count == 2 ? String(parts[1]) : self.namespace
        // A Resiliency policy on the target (timeout, retries, breaker) runs on the event loop.
        // The call begins under it (breaker picked, metrics told) only once the fast path takes it.
        let policy = self.invoke.outbound.policy(for: .app(targetApp))
        func governance() -> FastGovernance? {
            policy.isEmpty ? nil : FastGovernance(policy: policy, breaker: policy.begin(breakerKey: "\(targetApp):\(methodString)"), rehop: nil)
        }

        var uri = "/" + methodString
        if !query.isEmpty { uri += "?" + query }
        var headers = HTTPHeaders()
        headers.reserveCapacity(head.headers.count + 8)
        for (name, value) in head.headers where !self.dropsCallerHeader(name) {
            headers.add(name: name, value: value)
        }
        headers.add(name: "dapr-caller-app-id", value: self.appID)
        headers.add(name: "dapr-caller-namespace", value: self.namespace)
        headers.add(name: "dapr-callee-app-id", value: targetApp)
        if !summary.hasTraceParent { headers.add(name: "traceparent", value: TraceContext.newUnsampled()) }

        if targetApp == self.appID && targetNamespace == self.namespace {
            guard let app = self.app, self.invoke.isAppHealthy else { return nil }
            FastInvoke.finishAppHeaders(&headers, contentType: summary.contentType, app: app)
            return FastInvokePlan(
                host: app.host,
                port: app.port,
                head: HTTPRequestHead(version: .http1_1, method: head.method, uri: uri, headers: headers),
                targetForErrors: target,
                keepsInternalHeaders: false,
                isSidecarHop: false,
                governance: governance(),
                appCalls: self.appCalls
            )
        }
        guard let hop = self.invoke.directHops?.directHop(appID: targetApp, namespace: targetNamespace) else { return nil }
        guard !hop.tls || self.tls != nil else {
            hop.finish(true)
            return nil
        }
        for (name, value) in hop.headers { headers.add(name: name, value: value) }
        if let contentType = summary.contentType { headers.add(name: "content-type", value: contentType) }
        headers.add(name: "host", value: FastInvoke.authority(host: hop.host, port: hop.port))
        return FastInvokePlan(
            host: hop.host,
            port: hop.port,
            head: HTTPRequestHead(version: .http1_1, method: head.method, uri: uri, headers: headers),
            targetForErrors: target,
            keepsInternalHeaders: false,
            isSidecarHop: true,
            finish: hop.finish,
            governance: governance().map { governance in
                let hops = self.invoke.directHops
                return FastGovernance(policy: governance.policy, breaker: governance.breaker) {
                    hops?.directHop(appID: targetApp, namespace: targetNamespace)
                }
            },
            secure: hop.tls,
            tls: self.tls,
            peer: hop.tls ? MeshTLS.peer(appID: targetApp, namespace: targetNamespace) : nil
        )
    }

    /// What `DaprHTTPServer.invoke` and `InvokeAPI` drop from the caller's headers (and, for the
    /// local app, what `HTTPAppChannel` drops: the same set).
    func dropsCallerHeader(_ name: String) -> Bool {
        if HeaderNames.isHopByHop(name) || HeaderNames.isIdentity(name) || HeaderNames.isInternal(name) { return true }
        switch name.utf8.count {
        case 4: return HeaderNames.equals(name, "host")
        case 11: return HeaderNames.equals(name, "dapr-app-id")
        case 12: return HeaderNames.equals(name, "content-type")
        case 14: return HeaderNames.equals(name, "content-length") || (self.inbound.apiToken != nil && HeaderNames.equals(name, "dapr-api-token"))
        default: return false
        }
    }

    static func split(_ uri: String) -> (path: Substring, query: Substring) {
        guard let mark = uri.utf8.firstIndex(of: UInt8(ascii: "?")) else { return (uri[...], "") }
        return (uri[..<mark], uri[uri.utf8.index(after: mark)...])
    }
}

/// The sidecar-to-sidecar listener's fast path: a call for this sidecar's app goes straight to it,
/// as `InternalInvokeServer` → `InvokeAPI.invokeLocal` → `HTTPAppChannel` would send it.
struct InternalFastInvokeRouter: FastInvokeRouter {
    let appID: String
    let app: DirectAppTarget
    let peers: PeerAuthentication
    let invoke: InvokeAPI
    let bodyLimit: Int
    /// As `PublicFastInvokeRouter.appCalls`.
    var appCalls: (any OutboundObserver)? = nil

    func plan(for head: HTTPRequestHead) -> FastInvokePlan? {
        guard FastInvoke.isPlainRequest(head), let summary = RequestHeaderSummary(head.headers),
            summary.hasSmallBody(limit: self.bodyLimit), summary.internalTarget == self.appID, !summary.isActorCall, self.invoke.isAppHealthy,
            self.peers.accepts(summary.peerToken)
        else { return nil }
        var headers = HTTPHeaders()
        headers.reserveCapacity(head.headers.count + 3)
        for (name, value) in head.headers {
            if HeaderNames.isHopByHop(name) || HeaderNames.isInternal(name) { continue }
            if HeaderNames.equals(name, "host") || HeaderNames.equals(name, "content-length") || HeaderNames.equals(name, "content-type") { continue }
            headers.add(name: name, value: value)
        }
        FastInvoke.finishAppHeaders(&headers, contentType: summary.contentType, app: self.app)
        let (path, query) = PublicFastInvokeRouter.split(head.uri)
        guard path.first == "/" else { return nil }
        // A call the app's access control denies goes to the general path, which answers it.
        if self.invoke.accessControl != nil,
            self.invoke.authorize(
                callerAppID: head.headers.first(name: "dapr-caller-app-id"), callerNamespace: head.headers.first(name: "dapr-caller-namespace"),
                method: String(path.dropFirst()), verb: head.method.rawValue) != nil
        {
            return nil
        }
        var uri = String(path)
        if !query.isEmpty { uri += "?" + query }
        return FastInvokePlan(
            host: self.app.host,
            port: self.app.port,
            head: HTTPRequestHead(version: .http1_1, method: head.method, uri: uri, headers: headers),
            targetForErrors: self.appID,
            keepsInternalHeaders: true,
            isSidecarHop: false,
            appCalls: self.appCalls
        )
    }
}

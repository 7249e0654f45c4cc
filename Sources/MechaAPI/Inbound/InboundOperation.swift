/// One request to the Dapr API as the inbound chain sees it, whichever surface it came on.
///
/// Built by the surface adapters (the HTTP responder and its invocation fast path, the gRPC
/// interceptor and proxy router); read by `InboundMiddleware`s. Cheap to build: the hot path fills
/// it with string literals and values it already holds.
public struct InboundOperation: Sendable {
    /// The surface a request arrived on.
    public enum Surface: Sendable, Hashable {
        case http
        case grpc
    }

    public var surface: Surface
    /// The Dapr API's name as `spec.api` rules write it (`state`, `invoke`, `publish`, `bindings`,
    /// `secrets`, `actors`, `metadata`, `healthz`, `configuration`, `lock`, `unlock`, `crypto`,
    /// `conversation`, `workflows`, …); empty when the request names no Dapr API (an unknown HTTP
    /// path, a proxied gRPC call).
    public var api: String
    /// The API version as the surface writes it: `v1.0`, `v1.0-alpha1` on HTTP; `v1`, `v1alpha1`
    /// on gRPC. Empty when `api` is.
    public var version: String
    /// HTTP: the route daprd's legacy allow-list rules match by prefix after the version
    /// (`state`, `publish/bulk`). gRPC: the full method (`/dapr.proto.runtime.v1.Dapr/GetState`).
    public var route: String
    /// The `dapr-api-token` the caller sent (header or metadata), if any.
    public var apiToken: String?
    /// Who is calling, for rate limiting. Only filled when the chain `readsClient`.
    public var client: InboundClient?
    /// The request path without the query (HTTP), for rate limiting.
    public var path: String

    public init(
        surface: Surface,
        api: String,
        version: String,
        route: String,
        apiToken: String?,
        client: InboundClient? = nil,
        path: String = ""
    ) {
        self.surface = surface
        self.api = api
        self.version = version
        self.route = route
        self.apiToken = apiToken
        self.client = client
        self.path = path
    }

    /// A call to a gRPC method (`/package.Service/Method`), named after daprd's endpoint table
    /// when it is one of the Dapr API's.
    public init(grpcMethod method: String, apiToken: String?) {
        let endpoint = DaprGRPCEndpoints.endpoint(of: method)
        self.init(surface: .grpc, api: endpoint?.name ?? "", version: endpoint?.version ?? "", route: method, apiToken: apiToken)
    }
}

/// The caller of an HTTP request, as Go's server and the rate limiter see it.
public struct InboundClient: Sendable, Hashable {
    /// `host:port` of the peer, as Go's `Request.RemoteAddr` (`[::1]:5000` for IPv6).
    public var remoteAddress: String
    /// The first `X-Forwarded-For` header line, if any.
    public var forwardedFor: String?
    /// The first `X-Real-IP` header line, if any.
    public var realIP: String?

    public init(remoteAddress: String, forwardedFor: String? = nil, realIP: String? = nil) {
        self.remoteAddress = remoteAddress
        self.forwardedFor = forwardedFor
        self.realIP = realIP
    }
}

public import MechaCore

/// One stage of the inbound chain: looks at a request before any building block runs.
///
/// `check` is synchronous and must not block: the invocation fast path calls it on the NIO event
/// loop. Stages keep state behind a `Mutex` at most (never an actor, never an await).
///
/// What happens after the answer (metrics, API logs) belongs to `InboundObserver`s.
public protocol InboundMiddleware: Sendable {
    /// nil to let the request go on, or how the surface must refuse it.
    func check(_ operation: InboundOperation) -> InboundRejection?

    /// Whether `check` reads `operation.client` and `operation.path`. Surfaces that cannot supply
    /// them cheaply (the invocation fast path) leave every request to the general path when a
    /// stage of the chain needs them.
    var readsClient: Bool { get }
}

extension InboundMiddleware {
    public var readsClient: Bool { false }
}

/// How a surface must refuse a request.
public enum InboundRejection: Sendable {
    /// HTTP: a plain-text answer with exactly these headers (Go's `http.Error`, tollbooth's 429).
    case text(status: Int, body: String, headers: [(name: String, value: String)])
    /// HTTP: the API is not exposed. The request is routed as if its path were unknown, as daprd,
    /// which leaves denied endpoints out of its router.
    case unrouted
    /// gRPC: daprd's `invokev1.ErrorFromHTTPResponseCode(status, detail)`: the gRPC code for the
    /// HTTP status, Go's status text as the message, and an ErrorInfo (reason = status text,
    /// domain `dapr.io`) carrying `http.code` and `http.error_message` (detail, at most 63 bytes).
    case status(httpStatus: Int, detail: String)
    /// An API error, rendered by the surface (JSON on HTTP, status with details on gRPC).
    case error(APIError)
}

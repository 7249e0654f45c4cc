import MechaCore

/// `DAPR_API_TOKEN`: every request must carry it as `dapr-api-token` (header or metadata).
///
/// HTTP (daprd `pkg/api/http/middlewares.go`): 401 `invalid api token\n` as Go's `http.Error`
/// writes it; the health routes are exempt (the adapter names them `healthz` only when they are
/// served as health checks). gRPC (daprd `pkg/api/grpc/auth.go`): Unauthenticated through
/// `ErrorFromHTTPResponseCode(401, …)`, i.e. message `Unauthorized` with the reason in ErrorInfo.
/// Tokens are compared in constant time.
public struct APITokenMiddleware: InboundMiddleware {
    public let token: String

    public init(token: String) {
        self.token = token
    }

    public func check(_ operation: InboundOperation) -> InboundRejection? {
        switch operation.surface {
        case .http:
            if operation.api == "healthz" { return nil }
            if let sent = operation.apiToken, ConstantTime.equals(sent, self.token) { return nil }
            return Self.httpRejection
        case .grpc:
            guard let sent = operation.apiToken else {
                return .status(httpStatus: 401, detail: "missing api token in request metadata")
            }
            if ConstantTime.equals(sent, self.token) { return nil }
            return .status(httpStatus: 401, detail: "authentication error: api token mismatch")
        }
    }

    static let httpRejection = InboundRejection.text(
        status: 401,
        body: "invalid api token\n",
        headers: [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff")]
    )
}

import GRPCCore
import MechaCore

/// `DAPR_API_TOKEN` on the gRPC surface: every call must carry metadata `dapr-api-token` with the
/// token, as daprd requires (Unauthenticated otherwise, with daprd's messages).
struct APITokenInterceptor: ServerInterceptor {
    let token: String

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let sent = request.metadata[stringValues: "dapr-api-token"].first { _ in true }
        guard let sent else {
            throw RPCError(code: .unauthenticated, message: "missing api token in request metadata")
        }
        guard ConstantTime.equals(sent, self.token) else {
            throw RPCError(code: .unauthenticated, message: "authentication error: api token mismatch")
        }
        var request = request
        request.metadata.removeAllValues(forKey: "dapr-api-token")
        return try await next(request, context)
    }
}

import GRPCCore
import MechaAPI
import MechaCore

/// The inbound chain on the gRPC surface: every call to a served method (the Dapr API) runs the
/// sidecar's `InboundChain` first (allow/deny lists, `DAPR_API_TOKEN`), named by its full method.
/// A refusal ends the call with daprd's status; an accepted call goes on without `dapr-api-token`.
/// Proxied calls never reach here: `DaprGRPCServer` runs the same chain in its proxy route.
struct InboundInterceptor: ServerInterceptor {
    let chain: InboundChain

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let operation = InboundOperation(grpcMethod: context.descriptor.inboundMethod, apiToken: request.metadata.apiToken)
        if let rejection = self.chain.check(operation) { throw rejection.rpcError }
        guard self.chain.apiToken != nil else { return try await next(request, context) }
        var request = request
        request.metadata.removeAllValues(forKey: "dapr-api-token")
        return try await next(request, context)
    }
}

extension MethodDescriptor {
    /// `/package.Service/Method`, as daprd (grpc-go's `FullMethod`) names a method.
    var inboundMethod: String { "/" + self.fullyQualifiedMethod }
}

extension Metadata {
    /// The first `dapr-api-token` value.
    var apiToken: String? { self[stringValues: "dapr-api-token"].first { _ in true } }
}

extension InboundRejection {
    /// The gRPC status a refusal ends a call with.
    var rpcError: RPCError {
        switch self {
        case .status(let httpStatus, let detail):
            HTTPStatusMapping.rpcError(forHTTPStatus: httpStatus, body: Array(detail.utf8))
        case .error(let error):
            error.rpcError
        case .unrouted:
            HTTPStatusMapping.rpcError(forHTTPStatus: 501, body: Array("requested endpoint is not available".utf8))
        case .text(let status, let body, _):
            HTTPStatusMapping.rpcError(forHTTPStatus: status, body: Array(body.utf8))
        }
    }
}

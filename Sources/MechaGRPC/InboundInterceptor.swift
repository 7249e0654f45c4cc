import GRPCCore
import MechaAPI
import MechaCore
import MechaTelemetry

/// The inbound chain on the gRPC surface: every call to a served method (the Dapr API) runs the
/// sidecar's `InboundChain` first (allow/deny lists, `DAPR_API_TOKEN`), named by its full method.
/// A refusal ends the call with daprd's status; an accepted call goes on without `dapr-api-token`.
/// Proxied calls never reach here: `DaprGRPCServer` runs the same chain in its proxy route.
///
/// With tracing, each call gets daprd's span (named by its full method, CLIENT kind), whose context
/// replaces the call's `traceparent` metadata and is the current `TraceScope` while it is served.
struct InboundInterceptor: ServerInterceptor {
    let chain: InboundChain
    var tracer: SidecarTracer? = nil

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let method = context.descriptor.inboundMethod
        let operation = InboundOperation(grpcMethod: method, apiToken: request.metadata.apiToken)
        guard !self.chain.observers.isEmpty || self.tracer != nil else {
            return try await self.pass(request, context, operation, next)
        }
        // Observed: the call ends when its response stream does (the producer returns or throws).
        let start = ContinuousClock.now
        let chain = self.chain
        let wantsTrace = chain.observersWantDetails || self.tracer != nil
        let userAgent = chain.observersWantDetails ? request.metadata[stringValues: "user-agent"].first { _ in true } : nil
        let traceParent = wantsTrace ? request.metadata[stringValues: "traceparent"].first { _ in true } : nil
        var request = request
        var span: TracedSpan?
        if let tracer = self.tracer {
            let started = tracer.start(
                name: method, kind: .client, incoming: traceParent, traceState: request.metadata[stringValues: "tracestate"].first { _ in true })
            started.set("dapr.protocol", "grpc")
            started.set("dapr.api", method)
            started.set("rpc.service", context.descriptor.service.fullyQualifiedService.split(separator: ".").last.map(String.init) ?? "")
            request.metadata.replaceOrAddString(started.traceParent, forKey: "traceparent")
            span = started
        }
        let callSpan = span
        // With `recordErrorCodes`, the APIError the call is answered with notes its code here.
        let errorCodes: ErrorCodeSink? = chain.observersWantErrorCodes ? ErrorCodeSink() : nil
        let report: @Sendable (Int) -> Void = { code in
            if let callSpan {
                callSpan.set("rpc.grpc.status_code", code)
                callSpan.end(error: code == 0 ? nil : GRPCStatusCode(rawValue: code)?.goName ?? "Unknown")
            }
            if chain.observers.isEmpty { return }
            chain.completed(
                InboundExchange(
                    surface: .grpc, verb: "", path: method[...], status: code, elapsed: ContinuousClock.now - start,
                    userAgent: userAgent, traceParent: traceParent, errorCode: code == 0 ? nil : errorCodes?.code))
        }
        do {
            let traced = request
            var response: StreamingServerResponse<Output> =
                try await ErrorCodeScope.$sink.withValue(errorCodes) {
                    try await TraceScope.$traceParent.withValue(callSpan?.traceParent ?? traceParent) { try await self.pass(traced, context, operation, next) }
                }
            switch response.accepted {
            case .success(var contents):
                let producer = contents.producer
                contents.producer = { writer in
                    do {
                        let trailers = try await ErrorCodeScope.$sink.withValue(errorCodes) { try await producer(writer) }
                        report(0)
                        return trailers
                    } catch {
                        report((error as? RPCError)?.code.rawValue ?? GRPCStatusCode.unknown.rawValue)
                        throw error
                    }
                }
                response.accepted = .success(contents)
            case .failure(let error):
                report(error.code.rawValue)
            }
            return response
        } catch {
            report((error as? RPCError)?.code.rawValue ?? GRPCStatusCode.unknown.rawValue)
            throw error
        }
    }

    private func pass<Input: Sendable, Output: Sendable>(
        _ request: StreamingServerRequest<Input>,
        _ context: ServerContext,
        _ operation: InboundOperation,
        _ next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
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

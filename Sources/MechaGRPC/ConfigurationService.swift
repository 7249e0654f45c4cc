import GRPCCore
import GRPCProtobuf
import Logging
import MechaAPI
import MechaCore

typealias ConfigurationSubscribeRequest = Dapr_Proto_Runtime_V1_SubscribeConfigurationRequest
typealias ConfigurationSubscribeResponse = Dapr_Proto_Runtime_V1_SubscribeConfigurationResponse

/// The configuration methods of `dapr.proto.runtime.v1.Dapr` (stable and Alpha1 names alike).
extension DaprService {
    func registerConfiguration<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        Self.unary(&router, DaprMethod.GetConfiguration.descriptor, self.getConfiguration)
        Self.unary(&router, DaprMethod.GetConfigurationAlpha1.descriptor, self.getConfiguration)
        Self.unary(&router, DaprMethod.UnsubscribeConfiguration.descriptor, self.unsubscribeConfiguration)
        Self.unary(&router, DaprMethod.UnsubscribeConfigurationAlpha1.descriptor, self.unsubscribeConfiguration)
        for descriptor in [DaprMethod.SubscribeConfiguration.descriptor, DaprMethod.SubscribeConfigurationAlpha1.descriptor] {
            router.registerHandler(
                forMethod: descriptor,
                deserializer: ProtobufDeserializer<ConfigurationSubscribeRequest>(),
                serializer: ProtobufSerializer<ConfigurationSubscribeResponse>()
            ) { request, context in
                await self.subscribeConfiguration(request)
            }
        }
    }

    func getConfiguration(
        _ request: Dapr_Proto_Runtime_V1_GetConfigurationRequest,
        _ context: ServerContext,
        _ metadata: Metadata
    ) async throws -> Dapr_Proto_Runtime_V1_GetConfigurationResponse {
        let items = try await self.api.configuration.get(storeName: request.storeName, keys: request.keys, metadata: request.metadata)
        var response = Dapr_Proto_Runtime_V1_GetConfigurationResponse()
        response.items = items.mapValues(\.message)
        return response
    }

    /// daprd answers an unknown id with `ok: false` and a message, not an error status.
    func unsubscribeConfiguration(
        _ request: Dapr_Proto_Runtime_V1_UnsubscribeConfigurationRequest,
        _ context: ServerContext,
        _ metadata: Metadata
    ) async throws -> Dapr_Proto_Runtime_V1_UnsubscribeConfigurationResponse {
        var response = Dapr_Proto_Runtime_V1_UnsubscribeConfigurationResponse()
        do {
            try await self.api.configuration.unsubscribe(storeName: nil, id: request.id, origin: .grpc)
            response.ok = true
        } catch {
            response.message = error.message
        }
        return response
    }

    /// The first message carries only the subscription id; each change follows with the id and the
    /// changed items. The stream ends with OK on unsubscribe, and the subscription ends when the
    /// client goes away.
    func subscribeConfiguration(_ request: StreamingServerRequest<ConfigurationSubscribeRequest>) async -> StreamingServerResponse<ConfigurationSubscribeResponse> {
        do {
            let single = try await ServerRequest(stream: request)
            let message = single.message
            let (updates, continuation) = AsyncStream<[String: ConfigurationItem]>.makeStream()
            let api = self.api.configuration
            let id = try await api.subscribe(
                storeName: message.storeName,
                keys: message.keys,
                metadata: message.metadata,
                origin: .grpc,
                deliver: { _, items in continuation.yield(items) },
                ended: { continuation.finish() }
            )
            return StreamingServerResponse { writer in
                do {
                    var first = ConfigurationSubscribeResponse()
                    first.id = id
                    try await writer.write(first)
                    for await items in updates {
                        var update = ConfigurationSubscribeResponse()
                        update.id = id
                        update.items = items.mapValues(\.message)
                        try await writer.write(update)
                    }
                } catch {
                    self.logger.debug("configuration subscriber \(id) went away: \(error)")
                }
                try? await api.unsubscribe(storeName: nil, id: id)
                return [:]
            }
        } catch {
            return StreamingServerResponse(error: error.rpcErrorForStream)
        }
    }
}

extension ConfigurationItem {
    var message: Dapr_Proto_Common_V1_ConfigurationItem {
        var item = Dapr_Proto_Common_V1_ConfigurationItem()
        item.value = self.value
        item.version = self.version
        item.metadata = self.metadata
        return item
    }
}

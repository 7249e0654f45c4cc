import Foundation
public import GRPCCore
import GRPCProtobuf
public import Logging
public import MechaAPI
import MechaCore
import MechaResiliency
import NIOCore
import SwiftProtobuf

typealias DaprMethod = Dapr_Proto_Runtime_V1_Dapr.Method

/// `dapr.proto.runtime.v1.Dapr` over the same building blocks the HTTP API uses: each method
/// decodes its message, calls `DaprAPI`, and encodes the answer; errors render as daprd's gRPC
/// status with rich details. Methods not registered here answer UNIMPLEMENTED, which is what the
/// SDKs expect for APIs a sidecar does not offer (they fall back from stable to Alpha1 names).
public struct DaprService: RegistrableRPCService {
    let api: DaprAPI
    let maxBodySize: Int
    let streaming: StreamingSubscriptions
    let logger: Logger
    /// Whether apps may host actors over `SubscribeActorEventsAlpha1`.
    var actorStreamAllowed = true

    public init(api: DaprAPI, subscriptions: SubscriptionManager, maxBodySize: Int, logger: Logger) {
        self.api = api
        self.maxBodySize = maxBodySize
        self.streaming = StreamingSubscriptions(api: api, manager: subscriptions, logger: logger)
        self.logger = logger
    }

    public func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        // State
        Self.unary(&router, DaprMethod.GetState.descriptor, self.getState)
        Self.unary(&router, DaprMethod.GetBulkState.descriptor, self.getBulkState)
        Self.unary(&router, DaprMethod.SaveState.descriptor, self.saveState)
        Self.unary(&router, DaprMethod.DeleteState.descriptor, self.deleteState)
        Self.unary(&router, DaprMethod.DeleteBulkState.descriptor, self.deleteBulkState)
        Self.unary(&router, DaprMethod.ExecuteStateTransaction.descriptor, self.executeStateTransaction)
        // Pub/sub
        Self.unary(&router, DaprMethod.PublishEvent.descriptor, self.publishEvent)
        Self.unary(&router, DaprMethod.BulkPublishEvent.descriptor, self.bulkPublishEvent)
        Self.unary(&router, DaprMethod.BulkPublishEventAlpha1.descriptor, self.bulkPublishEvent)
        router.registerHandler(
            forMethod: DaprMethod.SubscribeTopicEventsAlpha1.descriptor,
            deserializer: ProtobufDeserializer<Dapr_Proto_Runtime_V1_SubscribeTopicEventsRequestAlpha1>(),
            serializer: ProtobufSerializer<Dapr_Proto_Runtime_V1_SubscribeTopicEventsResponseAlpha1>()
        ) { request, context in
            await self.streaming.subscribe(request, context: context)
        }
        // Invocation, bindings, secrets
        Self.unaryWithHeaders(&router, DaprMethod.InvokeService.descriptor, self.invokeService)
        Self.unary(&router, DaprMethod.InvokeBinding.descriptor, self.invokeBinding)
        Self.unary(&router, DaprMethod.GetSecret.descriptor, self.getSecret)
        Self.unary(&router, DaprMethod.GetBulkSecret.descriptor, self.getBulkSecret)
        // Configuration
        self.registerConfiguration(with: &router)
        // Distributed lock
        Self.unary(&router, DaprMethod.TryLockAlpha1.descriptor, self.tryLock)
        Self.unary(&router, DaprMethod.UnlockAlpha1.descriptor, self.unlock)
        // Conversation
        self.registerConversation(with: &router)
        // Cryptography
        self.registerCrypto(with: &router)
        // Actors
        self.registerActors(with: &router)
        self.registerActorStream(with: &router)
        // Metadata and lifecycle
        Self.unary(&router, DaprMethod.GetMetadata.descriptor, self.getMetadata)
        Self.unary(&router, DaprMethod.SetMetadata.descriptor, self.setMetadata)
        Self.unary(&router, DaprMethod.Shutdown.descriptor, self.shutdown)
    }

    /// Registers a unary method; `APIError`s become daprd's status with details.
    static func unary<Input: SwiftProtobuf.Message, Output: SwiftProtobuf.Message, Transport: ServerTransport>(
        _ router: inout RPCRouter<Transport>,
        _ descriptor: MethodDescriptor,
        _ body: @escaping @Sendable (Input, ServerContext, Metadata) async throws -> Output
    ) {
        Self.unaryWithHeaders(&router, descriptor) { input, context, metadata in
            (try await body(input, context, metadata), [:])
        }
    }

    /// Registers a unary method whose answer carries response headers (initial metadata);
    /// `APIError`s become daprd's status with details.
    static func unaryWithHeaders<Input: SwiftProtobuf.Message, Output: SwiftProtobuf.Message, Transport: ServerTransport>(
        _ router: inout RPCRouter<Transport>,
        _ descriptor: MethodDescriptor,
        _ body: @escaping @Sendable (Input, ServerContext, Metadata) async throws -> (Output, Metadata)
    ) {
        router.registerHandler(
            forMethod: descriptor,
            deserializer: ProtobufDeserializer<Input>(),
            serializer: ProtobufSerializer<Output>()
        ) { request, context in
            do {
                let single = try await ServerRequest(stream: request)
                let (output, headers) = try await body(single.message, context, single.metadata)
                return StreamingServerResponse(single: ServerResponse(message: output, metadata: headers))
            } catch {
                return StreamingServerResponse(error: error.rpcErrorForStream)
            }
        }
    }

    // MARK: State

    func getState(_ request: Dapr_Proto_Runtime_V1_GetStateRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Dapr_Proto_Runtime_V1_GetStateResponse {
        let item = try await self.api.state.get(
            storeName: request.storeName,
            key: request.key,
            consistency: request.consistency.daprName,
            metadata: request.metadata
        )
        var response = Dapr_Proto_Runtime_V1_GetStateResponse()
        if let item {
            response.data = Data(item.value)
            response.etag = item.etag ?? ""
            response.metadata = item.metadata
        }
        return response
    }

    func getBulkState(_ request: Dapr_Proto_Runtime_V1_GetBulkStateRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Dapr_Proto_Runtime_V1_GetBulkStateResponse {
        let items = try await self.api.state.bulkGet(storeName: request.storeName, keys: request.keys, metadata: request.metadata)
        var response = Dapr_Proto_Runtime_V1_GetBulkStateResponse()
        response.items = items.map { result in
            var item = Dapr_Proto_Runtime_V1_BulkStateItem()
            item.key = result.key
            if let error = result.error {
                item.error = error
            } else if let found = result.item {
                item.data = Data(found.value)
                item.etag = found.etag ?? ""
                item.metadata = found.metadata
            }
            return item
        }
        return response
    }

    func saveState(_ request: Dapr_Proto_Runtime_V1_SaveStateRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Google_Protobuf_Empty {
        var items: [SaveStateItem] = []
        for state in request.states {
            guard !state.key.isEmpty else { throw APIError.stateKeyEmpty }
            items.append(state.saveItem)
        }
        try await self.api.state.save(storeName: request.storeName, items: items)
        return Google_Protobuf_Empty()
    }

    func deleteState(_ request: Dapr_Proto_Runtime_V1_DeleteStateRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Google_Protobuf_Empty {
        try await self.api.state.delete(
            storeName: request.storeName,
            key: request.key,
            etag: request.hasEtag ? request.etag.value : nil,
            concurrency: request.hasOptions ? request.options.concurrency.daprName : nil,
            consistency: request.hasOptions ? request.options.consistency.daprName : nil,
            metadata: request.metadata
        )
        return Google_Protobuf_Empty()
    }

    func deleteBulkState(_ request: Dapr_Proto_Runtime_V1_DeleteBulkStateRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Google_Protobuf_Empty {
        for state in request.states {
            try await self.deleteOne(storeName: request.storeName, state)
        }
        return Google_Protobuf_Empty()
    }

    private func deleteOne(storeName: String, _ state: Dapr_Proto_Common_V1_StateItem) async throws {
        do {
            try await self.api.state.delete(
                storeName: storeName,
                key: state.key,
                etag: state.hasEtag ? state.etag.value : nil,
                concurrency: state.hasOptions ? state.options.concurrency.daprName : nil,
                consistency: state.hasOptions ? state.options.consistency.daprName : nil,
                metadata: state.metadata
            )
        } catch {
            // daprd reports a failed bulk delete as one ERR_STATE_BULK_DELETE for the store.
            throw error.errorCode == "ERR_STATE_DELETE" ? error.asBulkDelete(storeName: storeName, key: state.key) : error
        }
    }

    func executeStateTransaction(_ request: Dapr_Proto_Runtime_V1_ExecuteStateTransactionRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Google_Protobuf_Empty {
        var operations: [TransactionOperationRequest] = []
        for operation in request.operations {
            let item = operation.request
            switch operation.operationType {
            case "upsert":
                operations.append(.upsert(item.saveItem))
            case "delete":
                operations.append(
                    .delete(
                        key: item.key,
                        etag: item.hasEtag ? item.etag.value : nil,
                        metadata: item.metadata,
                        concurrency: item.hasOptions ? item.options.concurrency.daprName : nil,
                        consistency: item.hasOptions ? item.options.consistency.daprName : nil
                    )
                )
            default:
                // daprd's gRPC API answers UNIMPLEMENTED here (its HTTP API: 400).
                throw APIError.stateOperationNotSupported(operation.operationType).withGRPCStatus(.unimplemented)
            }
        }
        try await self.api.state.transact(storeName: request.storeName, operations: operations, metadata: request.metadata)
        return Google_Protobuf_Empty()
    }

    // MARK: Pub/sub

    func publishEvent(_ request: Dapr_Proto_Runtime_V1_PublishEventRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Google_Protobuf_Empty {
        try await self.api.pubsub.publish(
            pubsubName: request.pubsubName,
            topic: request.topic,
            data: [UInt8](request.data),
            contentType: request.dataContentType.isEmpty ? nil : request.dataContentType,
            metadata: request.metadata,
            traceParent: metadata.firstString("traceparent") ?? "",
            traceState: metadata.firstString("tracestate") ?? ""
        )
        return Google_Protobuf_Empty()
    }

    func bulkPublishEvent(_ request: Dapr_Proto_Runtime_V1_BulkPublishRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Dapr_Proto_Runtime_V1_BulkPublishResponse {
        let entries = request.entries.map { entry in
            BulkPublishRequestEntry(
                entryID: entry.entryID,
                event: .bytes([UInt8](entry.event)),
                contentType: entry.contentType,
                metadata: entry.metadata.isEmpty ? nil : entry.metadata
            )
        }
        let failed = try await self.api.pubsub.bulkPublish(
            pubsubName: request.pubsubName,
            topic: request.topic,
            entries: entries,
            metadata: request.metadata,
            traceParent: metadata.firstString("traceparent") ?? ""
        )
        var response = Dapr_Proto_Runtime_V1_BulkPublishResponse()
        response.failedEntries = failed.map { entry in
            var failure = Dapr_Proto_Runtime_V1_BulkPublishResponseFailedEntry()
            failure.entryID = entry.entryID
            failure.error = entry.error
            return failure
        }
        return response
    }

    // MARK: Invocation

    func invokeService(_ request: Dapr_Proto_Runtime_V1_InvokeServiceRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> (Dapr_Proto_Common_V1_InvokeResponse, Metadata) {
        guard !request.id.isEmpty else { throw APIError.directInvokeNoAppID }
        let message = request.message
        var headers = HeaderList()
        for (key, value) in metadata {
            let lowered = key.lowercased()
            // Pseudo-headers, transport metadata and sidecar-internal keys never reach the app.
            if lowered.hasPrefix(":") || lowered.hasPrefix("x-mecha-") || Self.skippedInvokeMetadata.contains(lowered) { continue }
            if case .string(let text) = value { headers.add(lowered.hasPrefix("grpc-") ? "dapr-\(lowered)" : key, text) }
        }
        if message.hasData, !message.data.typeURL.isEmpty {
            // The caller's Any type URL travels with the request so a gRPC app receives it intact.
            headers.add(AnyTypeURL.header, message.data.typeURL)
        }
        let invocation = InvocationRequest(
            method: message.method.hasPrefix("/") ? String(message.method.dropFirst()) : message.method,
            httpVerb: message.hasHTTPExtension ? message.httpExtension.verb.httpVerb : "POST",
            queryString: message.hasHTTPExtension ? message.httpExtension.querystring : "",
            headers: headers,
            contentType: message.contentType.isEmpty ? nil : message.contentType,
            body: BodyStream(buffer: ByteBuffer(bytes: message.data.value))
        )
        let maxBodySize = self.maxBodySize
        // The caller's side of the invocation metrics (the HTTP surface records its own).
        let observer = self.api.invoke.outbound.observer
        let start = ContinuousClock.now
        var answered: Int?
        defer { observer?.invoked(app: request.id, status: answered ?? 500, elapsed: ContinuousClock.now - start) }
        return try await self.api.invoke.invoke(target: request.id, request: invocation) { response in
            answered = response.status
            let body = try await response.body.collect(upTo: max(maxBodySize, 4 << 20))
            var result = Dapr_Proto_Common_V1_InvokeResponse()
            var any = Google_Protobuf_Any()
            any.value = Data(body.readableBytesView)
            if let typeURL = response.headers.first(AnyTypeURL.header) { any.typeURL = typeURL }
            result.data = any
            result.contentType = response.contentType ?? ""
            let fromGRPCApp = response.headers.first(AppProtocolMarker.header) == "grpc"
            guard (200..<300).contains(response.status) else {
                // A gRPC app's own status passes through unchanged; an HTTP app's error status
                // becomes daprd's status for it (code from its table, status text, ErrorInfo).
                if let status = AppRPCStatus.from(response.headers) { throw status.rpcError }
                throw HTTPStatusMapping.rpcError(forHTTPStatus: response.status, body: Array(body.readableBytesView))
            }
            return (result, Self.responseHeaders(response, fromGRPCApp: fromGRPCApp))
        }
    }

    /// The app's response headers as the caller's response metadata, as daprd sets them: names in
    /// lower case, HTTP headers that are HTTP/1-specific or reserved under a `dapr-` prefix, and
    /// `dapr-http-status` for an HTTP app. Sidecar-internal and tracing headers stay behind.
    static func responseHeaders(_ response: InvocationResponse, fromGRPCApp: Bool) -> Metadata {
        var headers = Metadata()
        for field in response.headers {
            var name = field.name.lowercased()
            if name.isEmpty || name.hasPrefix(":") || name.hasPrefix("x-mecha-") || name.hasPrefix("grpc-") { continue }
            if name == "traceparent" || name == "tracestate" || name == "dapr-callee-app-id" || name == "dapr-caller-app-id" { continue }
            // gRPC metadata carries printable ASCII only.
            guard field.value.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }), name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { continue }
            if !fromGRPCApp, Self.permanentHTTPHeaders.contains(name) { name = "dapr-" + name }
            if name == "content-type" || name == "te" { continue }
            headers.addString(field.value, forKey: name)
        }
        if !fromGRPCApp {
            if let contentType = response.contentType, headers.firstString("dapr-content-type") == nil, contentType.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) {
                headers.addString(contentType, forKey: "dapr-content-type")
            }
            headers.addString(String(response.status), forKey: "dapr-http-status")
        }
        return headers
    }

    /// HTTP headers daprd renames with a `dapr-` prefix on the way to gRPC callers.
    static let permanentHTTPHeaders: Set<String> = [
        "accept", "accept-charset", "accept-language", "accept-ranges", "connection", "keep-alive", "proxy-connection",
        "transfer-encoding", "upgrade", "cache-control", "content-type", "content-length", "cookie", "date", "expect",
        "from", "host", "if-match", "if-modified-since", "if-none-match", "if-schedule-tag-match", "if-unmodified-since",
        "max-forwards", "origin", "pragma", "referer", "via", "warning",
    ]

    /// gRPC metadata that is transport- or sidecar-internal and never forwarded to the app.
    static let skippedInvokeMetadata: Set<String> = ["content-type", "te", "user-agent", "grpc-accept-encoding", "grpc-encoding", "grpc-timeout", "dapr-api-token", ":authority"]

    func invokeBinding(_ request: Dapr_Proto_Runtime_V1_InvokeBindingRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Dapr_Proto_Runtime_V1_InvokeBindingResponse {
        let response = try await self.api.bindings.invoke(
            name: request.name,
            request: BindingInvokeRequest(operation: request.operation, data: [UInt8](request.data), metadata: request.metadata)
        )
        var result = Dapr_Proto_Runtime_V1_InvokeBindingResponse()
        result.data = Data(response.data)
        result.metadata = response.metadata
        return result
    }

    // MARK: Secrets

    func getSecret(_ request: Dapr_Proto_Runtime_V1_GetSecretRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Dapr_Proto_Runtime_V1_GetSecretResponse {
        var response = Dapr_Proto_Runtime_V1_GetSecretResponse()
        response.data = try await self.api.secrets.get(storeName: request.storeName, key: request.key, metadata: request.metadata)
        return response
    }

    func getBulkSecret(_ request: Dapr_Proto_Runtime_V1_GetBulkSecretRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Dapr_Proto_Runtime_V1_GetBulkSecretResponse {
        let secrets = try await self.api.secrets.bulk(storeName: request.storeName, metadata: request.metadata)
        var response = Dapr_Proto_Runtime_V1_GetBulkSecretResponse()
        response.data = secrets.mapValues { values in
            var secret = Dapr_Proto_Runtime_V1_SecretResponse()
            secret.secrets = values
            return secret
        }
        return response
    }

    // MARK: Distributed lock

    func tryLock(_ request: Dapr_Proto_Runtime_V1_TryLockRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Dapr_Proto_Runtime_V1_TryLockResponse {
        var response = Dapr_Proto_Runtime_V1_TryLockResponse()
        response.success = try await self.api.lock.tryLock(
            storeName: request.storeName,
            resourceID: request.resourceID,
            owner: request.lockOwner,
            expiryInSeconds: request.expiryInSeconds
        )
        return response
    }

    func unlock(_ request: Dapr_Proto_Runtime_V1_UnlockRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Dapr_Proto_Runtime_V1_UnlockResponse {
        let status = try await self.api.lock.unlock(storeName: request.storeName, resourceID: request.resourceID, owner: request.lockOwner)
        var response = Dapr_Proto_Runtime_V1_UnlockResponse()
        response.status = Dapr_Proto_Runtime_V1_UnlockResponse.Status(rawValue: status.rawValue) ?? .internalError
        return response
    }

    // MARK: Metadata and lifecycle

    func getMetadata(_ request: Dapr_Proto_Runtime_V1_GetMetadataRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Dapr_Proto_Runtime_V1_GetMetadataResponse {
        MetadataMessage.make(self.api.metadata)
    }

    func setMetadata(_ request: Dapr_Proto_Runtime_V1_SetMetadataRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Google_Protobuf_Empty {
        self.api.metadata.setExtended(request.key, request.value)
        return Google_Protobuf_Empty()
    }

    func shutdown(_ request: Dapr_Proto_Runtime_V1_ShutdownRequest, _ context: ServerContext, _ metadata: Metadata) async throws -> Google_Protobuf_Empty {
        self.api.shutdown()
        return Google_Protobuf_Empty()
    }
}

extension Dapr_Proto_Common_V1_StateItem {
    var saveItem: SaveStateItem {
        SaveStateItem(
            key: self.key,
            value: [UInt8](self.value),
            etag: self.hasEtag ? self.etag.value : nil,
            metadata: self.metadata,
            concurrency: self.hasOptions ? self.options.concurrency.daprName : nil,
            consistency: self.hasOptions ? self.options.consistency.daprName : nil,
            contentType: self.metadata["contentType"]
        )
    }
}

extension Dapr_Proto_Common_V1_StateOptions.StateConcurrency {
    var daprName: String? {
        switch self {
        case .concurrencyFirstWrite: "first-write"
        case .concurrencyLastWrite: "last-write"
        default: nil
        }
    }
}

extension Dapr_Proto_Common_V1_StateOptions.StateConsistency {
    var daprName: String? {
        switch self {
        case .consistencyEventual: "eventual"
        case .consistencyStrong: "strong"
        default: nil
        }
    }
}

extension Dapr_Proto_Common_V1_HTTPExtension.Verb {
    var httpVerb: String {
        switch self {
        case .get: "GET"
        case .head: "HEAD"
        case .post: "POST"
        case .put: "PUT"
        case .delete: "DELETE"
        case .connect: "CONNECT"
        case .options: "OPTIONS"
        case .trace: "TRACE"
        case .patch: "PATCH"
        default: "POST"
        }
    }
}

extension Metadata {
    /// The first string value for `key`.
    public func firstString(_ key: String) -> String? {
        for value in self[stringValues: key] { return value }
        return nil
    }
}

/// The protobuf `Any` type URL of an app's gRPC answer, carried in a sidecar-internal header
/// across the HTTP sidecar-to-sidecar hop and dropped before HTTP callers see it.
public enum AnyTypeURL {
    public static let header = "x-mecha-any-type-url"
}

/// Sidecar-internal response header marking an answer that came from a gRPC app (so the gRPC API
/// hands its metadata to gRPC callers as they are, without the HTTP renaming).
public enum AppProtocolMarker {
    public static let header = "x-mecha-app-protocol"
}

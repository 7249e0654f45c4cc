import GRPCCore
import MechaAPI
import MechaCore
import MechaRuntime
import SwiftProtobuf

/// `GetMetadataResponse` from the same facts `GET /v1.0/metadata` reports.
enum MetadataMessage {
    static func make(_ metadata: MetadataAPI) -> Dapr_Proto_Runtime_V1_GetMetadataResponse {
        var response = Dapr_Proto_Runtime_V1_GetMetadataResponse()
        response.id = metadata.identity.appID
        response.runtimeVersion = metadata.identity.runtimeVersion
        response.enabledFeatures = metadata.enabledFeatures
        response.extendedMetadata = metadata.extendedAttributes
        response.registeredComponents = metadata.componentStatuses.map { status in
            var component = Dapr_Proto_Runtime_V1_RegisteredComponents()
            component.name = status.name
            component.type = status.type.description
            component.version = status.version
            component.capabilities = status.capabilities
            return component
        }
        response.subscriptions = metadata.activeSubscriptions.map { spec in
            var subscription = Dapr_Proto_Runtime_V1_PubsubSubscription()
            subscription.pubsubName = spec.pubsubName
            subscription.topic = spec.topic
            subscription.metadata = spec.metadata
            subscription.deadLetterTopic = spec.deadLetterTopic ?? ""
            var rules = Dapr_Proto_Runtime_V1_PubsubSubscriptionRules()
            rules.rules = spec.routes.rules.map { rule in
                var entry = Dapr_Proto_Runtime_V1_PubsubSubscriptionRule()
                entry.match = rule.match
                entry.path = rule.path
                return entry
            }
            if let path = spec.routes.defaultPath {
                var entry = Dapr_Proto_Runtime_V1_PubsubSubscriptionRule()
                entry.path = path
                rules.rules.append(entry)
            }
            subscription.rules = rules
            switch spec.origin {
            case .declarative: subscription.type = .declarative
            case .programmatic: subscription.type = .programmatic
            case .streaming: subscription.type = .streaming
            }
            return subscription
        }
        if let app = metadata.appConnection {
            var connection = Dapr_Proto_Runtime_V1_AppConnectionProperties()
            connection.port = Int32(clamping: app.port)
            connection.protocol = app.protocol
            connection.channelAddress = app.channelAddress
            connection.maxConcurrency = Int32(clamping: max(0, app.maxConcurrency))
            if let interval = app.healthProbeInterval {
                var health = Dapr_Proto_Runtime_V1_AppConnectionHealthProperties()
                health.healthCheckPath = app.healthCheckPath ?? ""
                health.healthProbeInterval = GoDuration.format(interval)
                health.healthProbeTimeout = app.healthProbeTimeout.map(GoDuration.format) ?? ""
                health.healthThreshold = Int32(clamping: app.healthThreshold ?? 0)
                connection.health = health
            }
            response.appConnectionProperties = connection
        }
        var actors = Dapr_Proto_Runtime_V1_ActorRuntime()
        if let api = metadata.actors {
            let counts = api.activeCounts.map { count in
                var entry = Dapr_Proto_Runtime_V1_ActiveActorsCount()
                entry.type = count.type
                entry.count = Int32(clamping: count.count)
                return entry
            }
            response.activeActorsCount = counts
            actors.activeActors = counts
            actors.runtimeStatus = api.runtimeStatus == "RUNNING" ? .running : .disabled
            actors.hostReady = api.hostReady
            actors.placement = api.placementStatus
        } else {
            actors.runtimeStatus = .disabled
            actors.placement = "placement: disconnected"
        }
        response.actorRuntime = actors
        return response
    }
}

/// How HTTP statuses and gRPC codes translate when a call crosses protocols (daprd's table).
public enum HTTPStatusMapping {
    /// The HTTP status an HTTP caller sees for a gRPC app's error code.
    public static func httpStatus(forGRPCCode code: Int) -> Int {
        switch code {
        case 0: 200
        case 1: 408
        case 2: 500
        case 3: 400
        case 4: 504
        case 5: 404
        case 6: 409
        case 7: 403
        case 8: 429
        case 9: 400
        case 10: 409
        case 11: 400
        case 12: 501
        case 13: 500
        case 14: 503
        case 15: 500
        case 16: 401
        default: 500
        }
    }

    /// The gRPC code a gRPC caller sees for an HTTP app's error status (daprd's table, which is not
    /// the gRPC-over-HTTP one: 400 → INTERNAL, 404 → NOT_FOUND, 409 → ALREADY_EXISTS, …).
    static func grpcCode(forHTTPStatus status: Int) -> RPCError.Code {
        switch status {
        case 400: .internalError
        case 401: .unauthenticated
        case 403: .permissionDenied
        case 404: .notFound
        case 408: .cancelled
        case 409: .alreadyExists
        case 429: .resourceExhausted
        case 500: .unknown
        case 501: .unimplemented
        case 503: .unavailable
        case 504: .deadlineExceeded
        default: .unknown
        }
    }

    /// The error a gRPC caller gets when an HTTP app answers `status` (not 2xx), as daprd builds it:
    /// the message is the status text, and an ErrorInfo (reason = status text, domain `dapr.io`)
    /// carries `http.code` and the first 63 bytes of the body in `http.error_message`.
    static func rpcError(forHTTPStatus status: Int, body: [UInt8]) -> RPCError {
        let text = Self.statusText(status)
        var detail = body
        if detail.count >= 63 { detail = Array(detail.prefix(63)) }
        var info = Google_Rpc_ErrorInfo()
        info.reason = text
        info.domain = "dapr.io"
        info.metadata = ["http.code": String(status), "http.error_message": String(decoding: detail, as: UTF8.self)]
        var rpcStatus = Google_Rpc_Status()
        let code = Self.grpcCode(forHTTPStatus: status)
        rpcStatus.code = Int32(code.rawValue)
        rpcStatus.message = text
        if let any = try? Google_Protobuf_Any(message: info) { rpcStatus.details = [any] }
        var metadata = Metadata()
        if let bytes = try? rpcStatus.serializedBytes() as [UInt8] {
            metadata.addBinary(bytes, forKey: "grpc-status-details-bin")
        }
        return RPCError(code: code, message: text, metadata: metadata)
    }

    /// The status text Go's `http.StatusText` gives (empty for unknown codes).
    static func statusText(_ status: Int) -> String { HTTPStatusText.text(for: status) }
}

import GRPCCore

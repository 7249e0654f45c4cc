import MechaAPI
import MechaCore
import MechaRuntime

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
        actors.runtimeStatus = .disabled
        actors.placement = "placement: disconnected"
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

    /// The gRPC code a gRPC caller sees for an HTTP app's error status.
    static func grpcCode(forHTTPStatus status: Int) -> RPCError.Code {
        switch status {
        case 400: .internalError
        case 401: .unauthenticated
        case 403: .permissionDenied
        case 404: .unimplemented
        case 408: .deadlineExceeded
        case 409: .aborted
        case 429: .resourceExhausted
        case 501: .unimplemented
        case 503: .unavailable
        case 504: .deadlineExceeded
        default: .unknown
        }
    }
}

import GRPCCore

// The catalogue of Dapr API errors Mecha renders. Codes, statuses and message texts are part of the
// compatibility contract (daprd's `pkg/messages` and `pkg/api/errors`); tests pin them.

extension APIError {
    // MARK: General

    public static func badRequest(_ detail: String) -> APIError {
        .init(errorCode: "ERR_BAD_REQUEST", message: "invalid request: \(detail)", httpStatus: 400, grpcStatus: .invalidArgument)
    }

    public static func bodyRead(_ detail: String) -> APIError {
        .init(errorCode: "ERR_BODY_READ", message: "failed to read request body: \(detail)", httpStatus: 400, grpcStatus: .invalidArgument)
    }

    /// A body that could not be decoded (`failed deserializing HTTP body: …`).
    public static func malformedRequest(_ detail: String) -> APIError {
        .init(errorCode: "ERR_MALFORMED_REQUEST", message: "failed deserializing HTTP body: \(detail)", httpStatus: 400, grpcStatus: .invalidArgument)
    }

    /// `ERR_MALFORMED_REQUEST` with a message used verbatim.
    public static func malformedRequest(message: String) -> APIError {
        .init(errorCode: "ERR_MALFORMED_REQUEST", message: message, httpStatus: 400, grpcStatus: .invalidArgument)
    }

    public static let apiUnimplemented = APIError(
        errorCode: "ERR_API_UNIMPLEMENTED", message: "this API is currently not implemented", httpStatus: 501, grpcStatus: .unimplemented
    )

    public static func internalError(_ detail: String) -> APIError {
        .init(errorCode: "ERR_INTERNAL", message: detail, httpStatus: 500, grpcStatus: .internalError)
    }

    // MARK: Health

    public static func healthNotReady(_ targets: [String]) -> APIError {
        .init(
            errorCode: "ERR_HEALTH_NOT_READY",
            message: "dapr is not ready: [\(targets.joined(separator: " "))]",
            httpStatus: 500,
            grpcStatus: .internalError
        )
    }

    public static let outboundHealthNotReady = APIError(
        errorCode: "ERR_OUTBOUND_HEALTH_NOT_READY", message: "dapr outbound is not ready", httpStatus: 500, grpcStatus: .internalError
    )

    public static let healthAppIDNotMatch = APIError(
        errorCode: "ERR_HEALTH_APPID_NOT_MATCH", message: "dapr app-id does not match", httpStatus: 500, grpcStatus: .internalError
    )

    // MARK: Service invocation

    public static func directInvoke(appID: String, _ detail: String) -> APIError {
        .init(errorCode: "ERR_DIRECT_INVOKE", message: "failed to invoke, id: \(appID), err: \(detail)", httpStatus: 500, grpcStatus: .internalError)
    }

    public static let directInvokeNoAppID = APIError(
        errorCode: "ERR_DIRECT_INVOKE",
        message: "failed getting app id either from the URL path or the header dapr-app-id",
        httpStatus: 404,
        grpcStatus: .notFound
    )

    public static let directInvokeNotReady = APIError(
        errorCode: "ERR_DIRECT_INVOKE", message: "invoke API is not ready", httpStatus: 500, grpcStatus: .internalError
    )

    // MARK: State

    public static func stateStoreNotFound(_ name: String, appID: String) -> APIError {
        .init(
            errorCode: "ERR_STATE_STORE_NOT_FOUND",
            message: "state store \(name) is not found",
            httpStatus: 400,
            grpcStatus: .invalidArgument,
            details: .init(reason: "DAPR_STATE_NOT_FOUND", metadata: ["appID": appID])
        )
    }

    public static func stateStoreNotConfigured(_ name: String, appID: String) -> APIError {
        .init(
            errorCode: "ERR_STATE_STORE_NOT_CONFIGURED",
            message: "state store \(name) is not configured",
            httpStatus: 500,
            grpcStatus: .failedPrecondition,
            details: .init(reason: "DAPR_STATE_NOT_CONFIGURED", metadata: ["appID": appID])
        )
    }

    /// A state key with a NUL character: SQLite and PostgreSQL text cannot hold it as sent, and a
    /// store that truncated it would read or overwrite another key.
    public static func stateKeyNUL(store: String, key: String) -> APIError {
        self.illegalStateKey(
            store: store, field: NULText.escaped(key),
            message: "input key/keyPrefix \(NULText.quoted(key)) can't contain a NUL character")
    }

    /// A name, key or topic with a NUL character, refused before it reaches a component (C
    /// strings end at NUL: a truncated name is another name).
    public static func containsNUL(_ what: String, _ value: String) -> APIError {
        .init(
            errorCode: "ERR_MALFORMED_REQUEST",
            message: "\(what) \(NULText.quoted(value)) can't contain a NUL character",
            httpStatus: 400,
            grpcStatus: .invalidArgument
        )
    }

    /// A key (or key prefix) containing `||`.
    public static func stateIllegalKey(store: String, key: String) -> APIError {
        self.illegalStateKey(store: store, field: key, message: "input key/keyPrefix '\(key)' can't contain '||'")
    }

    /// daprd's `DAPR_STATE_ILLEGAL_KEY` error for `field`.
    private static func illegalStateKey(store: String, field: String, message: String) -> APIError {
        .init(
            errorCode: "ERR_MALFORMED_REQUEST",
            message: message,
            httpStatus: 400,
            grpcStatus: .invalidArgument,
            details: .init(
                reason: "DAPR_STATE_ILLEGAL_KEY",
                resourceType: "state",
                resourceName: store,
                fieldViolations: [.init(field: field, description: message)]
            )
        )
    }

    public static func stateTransactionsNotSupported(_ store: String) -> APIError {
        var details = APIErrorDetails(reason: "DAPR_STATE_TRANSACTIONS_NOT_SUPPORTED", resourceType: "state", resourceName: store)
        details.helpLinks = [
            (url: "https://docs.dapr.io/reference/components-reference/supported-state-stores/", description: "Check the list of state stores and the features they support")
        ]
        return .init(
            errorCode: "ERR_STATE_STORE_NOT_SUPPORTED",
            message: "state store \(store) doesn't support transactions",
            httpStatus: 500,
            grpcStatus: .unimplemented,
            details: details
        )
    }

    public static func stateTooManyTransactions(_ store: String, count: Int, max: Int) -> APIError {
        .init(
            errorCode: "ERR_STATE_STORE_TOO_MANY_TRANSACTIONS",
            message: "the transaction contains \(count) operations, which is more than what the state store supports: \(max)",
            httpStatus: 400,
            grpcStatus: .invalidArgument,
            details: .init(
                reason: "DAPR_STATE_TOO_MANY_TRANSACTIONS",
                metadata: ["currentOpsTransaction": String(count), "maxOpsPerTransaction": String(max)],
                resourceType: "state",
                resourceName: store
            )
        )
    }

    public static func stateGet(key: String, store: String, _ detail: String) -> APIError {
        .init(
            errorCode: "ERR_STATE_GET",
            message: "fail to get \(key) from state store \(store): \(detail)",
            httpStatus: 500,
            grpcStatus: .internalError
        )
    }

    public static func stateBulkGet(_ detail: String) -> APIError {
        .init(errorCode: "ERR_STATE_BULK_GET", message: detail, httpStatus: 500, grpcStatus: .internalError)
    }

    /// A save failure; ETag problems map to 409 (mismatch) and 400 (invalid) as daprd does.
    public static func stateSave(store: String, _ error: any Error) -> APIError {
        let (status, grpc) = Self.etagStatus(error)
        return .init(
            errorCode: "ERR_STATE_SAVE",
            message: "failed saving state in state store \(store): \(error)",
            httpStatus: status,
            grpcStatus: grpc
        )
    }

    public static func stateDelete(key: String, _ error: any Error) -> APIError {
        let (status, grpc) = Self.etagStatus(error)
        return .init(
            errorCode: "ERR_STATE_DELETE",
            message: "failed deleting state with key \(key): \(error)",
            httpStatus: status,
            grpcStatus: grpc
        )
    }

    /// The same error with another gRPC status (where daprd's two surfaces disagree).
    public func withGRPCStatus(_ status: GRPCStatusCode) -> APIError {
        var copy = self
        copy.grpcStatus = status
        return copy
    }

    /// A gRPC save of an item without a key (daprd: ERR_STATE_SAVE, InvalidArgument).
    public static var stateKeyEmpty: APIError {
        .init(errorCode: "ERR_STATE_SAVE", message: "state key cannot be empty", httpStatus: 400, grpcStatus: .invalidArgument)
    }

    /// A delete failure reported for a whole bulk delete, as daprd's gRPC `DeleteBulkState` does.
    public func asBulkDelete(storeName: String, key: String) -> APIError {
        var copy = self
        copy.errorCode = "ERR_STATE_BULK_DELETE"
        let prefix = "failed deleting state with key \(key): "
        let detail = self.message.hasPrefix(prefix) ? String(self.message.dropFirst(prefix.count)) : self.message
        copy.message = "failed deleting state in state store \(storeName): \(detail)"
        return copy
    }

    public static func stateTransaction(_ detail: String) -> APIError {
        .init(
            errorCode: "ERR_STATE_TRANSACTION",
            message: "error while executing state transaction: \(detail)",
            httpStatus: 500,
            grpcStatus: .internalError
        )
    }

    public static func stateOperationNotSupported(_ operation: String) -> APIError {
        .init(
            errorCode: "ERR_NOT_SUPPORTED_STATE_OPERATION",
            message: "operation type \(operation) not supported",
            httpStatus: 400,
            grpcStatus: .invalidArgument
        )
    }

    private static func etagStatus(_ error: any Error) -> (Int, GRPCStatusCode) {
        guard let error = error as? StateStoreError else { return (500, .internalError) }
        switch error.code {
        case .etagMismatch: return (409, .aborted)
        case .etagInvalid: return (400, .invalidArgument)
        case .invalidRequest: return (400, .invalidArgument)
        default: return (500, .internalError)
        }
    }

    // MARK: Secrets

    public static let secretStoresNotConfigured = APIError(
        errorCode: "ERR_SECRET_STORES_NOT_CONFIGURED", message: "secret store is not configured", httpStatus: 500, grpcStatus: .failedPrecondition
    )

    public static func secretStoreNotFound(_ name: String) -> APIError {
        .init(errorCode: "ERR_SECRET_STORE_NOT_FOUND", message: "failed finding secret store with key \(name)", httpStatus: 401, grpcStatus: .invalidArgument)
    }

    public static func secretPermissionDenied(key: String, store: String) -> APIError {
        .init(
            errorCode: "ERR_PERMISSION_DENIED",
            message: "access denied by policy to get \"\(key)\" from \"\(store)\"",
            httpStatus: 403,
            grpcStatus: .permissionDenied
        )
    }

    public static func secretGet(key: String, store: String, _ detail: String) -> APIError {
        .init(
            errorCode: "ERR_SECRET_GET",
            message: "failed getting secret with key \(key) from secret store \(store): \(detail)",
            httpStatus: 500,
            grpcStatus: .internalError
        )
    }

    public static func bulkSecretGet(store: String, _ detail: String) -> APIError {
        .init(
            errorCode: "ERR_SECRET_GET",
            message: "failed getting secrets from secret store \(store): \(detail)",
            httpStatus: 500,
            grpcStatus: .internalError
        )
    }

    // MARK: Bindings

    public static func invokeOutputBinding(_ name: String, _ detail: String) -> APIError {
        .init(
            errorCode: "ERR_INVOKE_OUTPUT_BINDING",
            message: "error invoking output binding \(name): \(detail)",
            httpStatus: 500,
            grpcStatus: .internalError
        )
    }

    // MARK: Pub/sub

    private static func pubsubDetails(_ reason: String, pubsub: String, message: String, metadata: [String: String]) -> APIErrorDetails {
        .init(reason: reason, metadata: metadata, resourceType: "pubsub", resourceName: pubsub, resourceDescription: message)
    }

    public static func pubsubNotConfigured(_ name: String) -> APIError {
        .init(
            errorCode: "ERR_PUBSUB_NOT_CONFIGURED",
            message: "pubsub \(name) is not configured",
            httpStatus: 400,
            grpcStatus: .failedPrecondition,
            details: .init(reason: "DAPR_PUBSUB_NOT_CONFIGURED")
        )
    }

    public static func pubsubEmpty(metadata: [String: String] = [:]) -> APIError {
        let message = "pubsub name is empty"
        return .init(
            errorCode: "ERR_PUBSUB_EMPTY",
            message: message,
            httpStatus: 404,
            grpcStatus: .invalidArgument,
            details: Self.pubsubDetails("DAPR_PUBSUB_NAME_EMPTY", pubsub: "", message: message, metadata: metadata)
        )
    }

    public static func pubsubNotFound(_ name: String, metadata: [String: String] = [:]) -> APIError {
        .init(
            errorCode: "ERR_PUBSUB_NOT_FOUND",
            message: "pubsub \(name) is not found",
            httpStatus: 404,
            grpcStatus: .invalidArgument,
            details: .init(reason: "DAPR_PUBSUB_NOT_FOUND", metadata: metadata)
        )
    }

    public static func pubsubTopicEmpty(_ pubsub: String, metadata: [String: String] = [:]) -> APIError {
        let message = "topic is empty in pubsub \(pubsub)"
        return .init(
            errorCode: "ERR_TOPIC_NAME_EMPTY",
            message: message,
            httpStatus: 404,
            grpcStatus: .invalidArgument,
            details: Self.pubsubDetails("DAPR_PUBSUB_TOPIC_NAME_EMPTY", pubsub: pubsub, message: message, metadata: metadata)
        )
    }

    public static func pubsubMetadata(_ pubsub: String, _ detail: String, metadata: [String: String] = [:]) -> APIError {
        let message = "failed deserializing metadata. Error: \(detail)"
        return .init(
            errorCode: "ERR_PUBSUB_REQUEST_METADATA",
            message: message,
            httpStatus: 400,
            grpcStatus: .invalidArgument,
            details: Self.pubsubDetails("DAPR_PUBSUB_METADATA_DESERIALIZATION", pubsub: pubsub, message: message, metadata: metadata)
        )
    }

    public static func pubsubCloudEventCreation(_ pubsub: String, metadata: [String: String] = [:]) -> APIError {
        let message = "cannot create cloudevent"
        return .init(
            errorCode: "ERR_PUBSUB_CLOUD_EVENTS_SER",
            message: message,
            httpStatus: 500,
            grpcStatus: .invalidArgument,
            details: Self.pubsubDetails("DAPR_PUBSUB_CLOUD_EVENT_CREATION", pubsub: pubsub, message: message, metadata: metadata)
        )
    }

    public static func pubsubMarshalEvents(topic: String, pubsub: String, _ detail: String, metadata: [String: String] = [:]) -> APIError {
        let message = "error marshaling events to bytes for topic \(topic) pubsub \(pubsub). error: \(detail)"
        return .init(
            errorCode: "ERR_PUBSUB_EVENTS_SER",
            message: message,
            httpStatus: 400,
            grpcStatus: .invalidArgument,
            details: Self.pubsubDetails("DAPR_PUBSUB_MARSHAL_EVENTS", pubsub: pubsub, message: message, metadata: metadata)
        )
    }

    public static func pubsubUnmarshalEvents(topic: String, pubsub: String, _ detail: String, metadata: [String: String] = [:]) -> APIError {
        let message = "error when unmarshaling the request for topic \(topic) pubsub \(pubsub): \(detail)"
        return .init(
            errorCode: "ERR_PUBSUB_EVENTS_SER",
            message: message,
            httpStatus: 400,
            grpcStatus: .invalidArgument,
            details: Self.pubsubDetails("DAPR_PUBSUB_UNMARSHAL_EVENTS", pubsub: pubsub, message: message, metadata: metadata)
        )
    }

    public static func pubsubForbidden(topic: String, pubsub: String, appID: String, metadata: [String: String] = [:]) -> APIError {
        let message = "topic \(topic) is not allowed for app id \(appID)"
        return .init(
            errorCode: "ERR_PUBSUB_FORBIDDEN",
            message: message,
            httpStatus: 403,
            grpcStatus: .permissionDenied,
            details: Self.pubsubDetails("DAPR_PUBSUB_FORBIDDEN", pubsub: pubsub, message: message, metadata: metadata)
        )
    }

    public static func pubsubPublish(topic: String, pubsub: String, _ detail: String, metadata: [String: String] = [:]) -> APIError {
        let message = "error when publishing to topic \(topic) in pubsub \(pubsub): \(detail)"
        return .init(
            errorCode: "ERR_PUBSUB_PUBLISH_MESSAGE",
            message: message,
            httpStatus: 500,
            grpcStatus: .internalError,
            details: Self.pubsubDetails("DAPR_PUBSUB_PUBLISH_MESSAGE", pubsub: pubsub, message: message, metadata: metadata)
        )
    }

    /// A transactional outbox message could not be published (daprd's `PubSubOutbox`: 500
    /// `ERR_PUBLISH_OUTBOX`, ErrorInfo `DAPR_PUBSUB_OUTBOX` with `appID` and `error`, no ResourceInfo).
    public static func pubsubOutbox(appID: String, _ detail: String) -> APIError {
        .init(
            errorCode: "ERR_PUBLISH_OUTBOX",
            message: "error while publishing outbox message: \(detail)",
            httpStatus: 500,
            grpcStatus: .internalError,
            details: .init(reason: "DAPR_PUBSUB_OUTBOX", metadata: ["appID": appID, "error": detail])
        )
    }
}

// MARK: Distributed lock

extension APIError {
    public static let lockStoreNotConfigured = APIError(
        errorCode: "ERR_LOCK_STORE_NOT_CONFIGURED", message: "lock store is not configured", httpStatus: 500, grpcStatus: .failedPrecondition
    )

    public static func lockStoreNotFound(_ name: String) -> APIError {
        .init(errorCode: "ERR_LOCK_STORE_NOT_FOUND", message: "lock store \(name) not found", httpStatus: 400, grpcStatus: .invalidArgument)
    }

    public static func tryLock(_ detail: String) -> APIError {
        .init(errorCode: "ERR_TRY_LOCK", message: "failed to try acquiring lock: \(detail)", httpStatus: 500, grpcStatus: .internalError)
    }

    public static func unlock(_ detail: String) -> APIError {
        .init(errorCode: "ERR_UNLOCK", message: "failed to release lock: \(detail)", httpStatus: 500, grpcStatus: .internalError)
    }
}

// MARK: Configuration

extension APIError {
    public static let configurationStoresNotConfigured = APIError(
        errorCode: "ERR_CONFIGURATION_STORE_NOT_CONFIGURED", message: "configuration stores not configured", httpStatus: 500, grpcStatus: .failedPrecondition
    )

    public static func configurationStoreNotFound(_ name: String) -> APIError {
        .init(errorCode: "ERR_CONFIGURATION_STORE_NOT_FOUND", message: "configuration store \(name) not found", httpStatus: 400, grpcStatus: .invalidArgument)
    }

    /// Keys as Go prints a `[]string` (`[a b]`).
    static func goList(_ keys: [String]) -> String { "[" + keys.joined(separator: " ") + "]" }

    public static func configurationGet(keys: [String], store: String, _ detail: String) -> APIError {
        .init(
            errorCode: "ERR_CONFIGURATION_GET",
            message: "failed to get \(goList(keys)) from Configuration store \(store): \(detail)",
            httpStatus: 500,
            grpcStatus: .internalError
        )
    }

    public static func configurationSubscribe(keys: [String], store: String, _ detail: String) -> APIError {
        .init(
            errorCode: "ERR_CONFIGURATION_SUBSCRIBE",
            message: "failed to subscribe \(goList(keys)) from Configuration store \(store): \(detail)",
            httpStatus: 500,
            grpcStatus: .invalidArgument
        )
    }

    public static func configurationUnsubscribe(id: String, _ detail: String) -> APIError {
        .init(
            errorCode: "ERR_CONFIGURATION_UNSUBSCRIBE",
            message: "failed to unsubscribe to configuration request \(id): \(detail)",
            httpStatus: 500,
            grpcStatus: .internalError
        )
    }

    public static let appChannelNil = APIError(
        errorCode: "ERR_APP_CHANNEL_NIL",
        message: "app channel is not initialized. cannot subscribe to configuration updates",
        httpStatus: 500,
        grpcStatus: .internalError
    )
}

/// Names that may hold a NUL character, shown in messages with it escaped.
public enum NULText {
    /// True when `text` has a NUL byte.
    @inlinable
    public static func contains(_ text: some StringProtocol) -> Bool {
        text.utf8.contains(0)
    }

    /// `'text'` with NUL written as `\x00`.
    public static func quoted(_ text: some StringProtocol) -> String {
        "'" + self.escaped(text) + "'"
    }

    /// `text` with NUL written as `\x00`.
    public static func escaped(_ text: some StringProtocol) -> String {
        var escaped = ""
        for character in text.unicodeScalars {
            if character == "\u{0}" { escaped += "\\x00" } else { escaped.unicodeScalars.append(character) }
        }
        return escaped
    }
}

// daprd's actor errors (`pkg/messages`): codes, statuses and texts are part of the contract.

extension APIError {
    public static let actorRuntimeNotFound = APIError(
        errorCode: "ERR_ACTOR_RUNTIME_NOT_FOUND",
        message: #"the state store is not configured to use the actor runtime. Have you set the - name: actorStateStore value: "true" in your state store component file?"#,
        httpStatus: 500, grpcStatus: .internalError)

    public static let actorReminderNotHosted = APIError(
        errorCode: "ERR_ACTOR_REMINDER_NON_HOSTED", message: "operations on actor reminders are only possible on hosted actor types", httpStatus: 403,
        grpcStatus: .permissionDenied)

    public static let actorNoAppChannel = APIError(
        errorCode: "ERR_ACTOR_NO_APP_CHANNEL", message: "app channel is not initialized", httpStatus: 400, grpcStatus: .unavailable)

    public static let actorInstanceMissing = APIError(
        errorCode: "ERR_ACTOR_INSTANCE_MISSING", message: "actor instance is missing", httpStatus: 400, grpcStatus: .internalError)

    public static let actorStackDepth = APIError(
        errorCode: "ERR_ACTOR_STACK_DEPTH", message: "maximum stack depth exceeded", httpStatus: 500, grpcStatus: .resourceExhausted)

    public static let actorRuntimeClosed = APIError(
        errorCode: "ERR_ACTOR_RUNTIME_CLOSED", message: "actor runtime is closed", httpStatus: 503, grpcStatus: .unavailable)

    public static func actorTypeReserved(_ type: String) -> APIError {
        .init(
            errorCode: "ERR_ACTOR_TYPE_RESERVED",
            message: "actor type \(GoQuote.strconv(type)) is reserved for the Dapr workflow runtime; direct actor API access is not permitted", httpStatus: 403,
            grpcStatus: .permissionDenied)
    }

    public static func actorInvoke(_ detail: String) -> APIError {
        .init(errorCode: "ERR_ACTOR_INVOKE_METHOD", message: "error invoke actor method: \(detail)", httpStatus: 500, grpcStatus: .internalError)
    }

    public static func actorNoAddress(_ actor: String) -> APIError {
        .init(errorCode: "ERR_ACTOR_NO_ADDRESS", message: "did not find address for actor '\(actor)'", httpStatus: 404, grpcStatus: .failedPrecondition)
    }

    public static func actorStateGet(_ detail: String) -> APIError {
        .init(errorCode: "ERR_ACTOR_STATE_GET", message: "error getting actor state: \(detail)", httpStatus: 500, grpcStatus: .internalError)
    }

    public static func actorStateTransaction(_ detail: String) -> APIError {
        .init(errorCode: "ERR_ACTOR_STATE_TRANSACTION_SAVE", message: "error saving actor transaction state: \(detail)", httpStatus: 500, grpcStatus: .internalError)
    }

    public static func actorReminderCreate(_ detail: String) -> APIError {
        .init(errorCode: "ERR_ACTOR_REMINDER_CREATE", message: "error creating actor reminder: \(detail)", httpStatus: 500, grpcStatus: .internalError)
    }

    public static func actorReminderGet(_ detail: String) -> APIError {
        .init(errorCode: "ERR_ACTOR_REMINDER_GET", message: "error getting actor reminder: \(detail)", httpStatus: 500, grpcStatus: .internalError)
    }

    public static func actorReminderDelete(_ detail: String) -> APIError {
        .init(errorCode: "ERR_ACTOR_REMINDER_DELETE", message: "error deleting actor reminder: \(detail)", httpStatus: 500, grpcStatus: .internalError)
    }

    public static func actorReminderNotFound(_ detail: String) -> APIError {
        .init(errorCode: "ERR_ACTOR_REMINDER_NOT_FOUND", message: "actor reminder not found: \(detail)", httpStatus: 404, grpcStatus: .notFound)
    }

    public static func actorTimerCreate(_ detail: String) -> APIError {
        .init(errorCode: "ERR_ACTOR_TIMER_CREATE", message: "error creating actor timer: \(detail)", httpStatus: 500, grpcStatus: .internalError)
    }
}

extension APIError {
    /// daprd's category of an error code (`dapr_error_code_total{category}`): the building block
    /// the code belongs to, `common` for the rest.
    public static func category(ofErrorCode code: String) -> String {
        func starts(_ prefixes: String...) -> Bool { prefixes.contains { code.hasPrefix($0) } }
        if starts("ERR_ACTOR_") { return "actor" }
        if code.contains("WORKFLOW") || starts("ERR_INSTANCE_ID_") { return "workflow" }
        if starts("ERR_STATE_", "ERR_NOT_SUPPORTED_STATE_OPERATION") { return "state" }
        if starts("ERR_CONFIGURATION_") { return "configuration" }
        if starts("ERR_CRYPTO") { return "crypto" }
        if starts("ERR_SECRET_", "ERR_PERMISSION_DENIED") { return "secret" }
        if starts("ERR_PUBSUB_", "ERR_TOPIC_NAME_EMPTY", "ERR_PUBLISH_OUTBOX") { return "pubsub" }
        if starts("ERR_CONVERSATION_") { return "conversation" }
        if starts("ERR_DIRECT_INVOKE") { return "service-invocation" }
        if starts("ERR_INVOKE_OUTPUT_BINDING") { return "binding" }
        if starts("ERR_LOCK_", "ERR_TRY_LOCK", "ERR_UNLOCK") { return "lock" }
        if starts("DAPR_SCHEDULER_") { return "job" }
        if starts("ERR_HEALTH_", "ERR_OUTBOUND_HEALTH_") { return "health" }
        return "common"
    }
}

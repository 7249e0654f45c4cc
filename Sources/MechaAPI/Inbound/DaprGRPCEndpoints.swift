/// daprd's table of gRPC methods per `spec.api` rule (`pkg/api/grpc/endpoints.go`, `endpoints`):
/// a `protocol: grpc` rule `name`/`version` stands for exactly these methods. Names and versions
/// are matched as written (`state` + `v1`, `lock` + `v1alpha1`); there is no `v1.0` on gRPC.
/// A Dapr method missing here matches no rule (so an allow list refuses it), as in daprd.
public enum DaprGRPCEndpoints {
    /// Methods of the Dapr runtime services start with this; only they are subject to the lists.
    public static let runtimePrefix = "/dapr.proto.runtime."

    static let dapr = "/dapr.proto.runtime.v1.Dapr/"

    /// `"<name>.<version>"` → full method names.
    public static let methodsByRule: [String: [String]] = [
        "invoke.v1": ["InvokeService"],
        "state.v1": ["GetState", "GetBulkState", "SaveState", "DeleteState", "DeleteBulkState", "ExecuteStateTransaction"],
        "state.v1alpha1": ["QueryStateAlpha1"],
        "publish.v1": ["PublishEvent", "BulkPublishEvent"],
        "publish.v1alpha1": ["BulkPublishEventAlpha1"],
        "bindings.v1": ["InvokeBinding"],
        "secrets.v1": ["GetSecret", "GetBulkSecret"],
        "actors.v1": [
            "RegisterActorTimer", "UnregisterActorTimer", "RegisterActorReminder", "GetActorReminder", "UnregisterActorReminder",
            "UnregisterActorRemindersByType", "ListActorReminders", "GetActorState", "ExecuteActorStateTransaction", "InvokeActor",
        ],
        "actors.v1alpha1": ["SubscribeActorEventsAlpha1"],
        "metadata.v1": ["GetMetadata", "SetMetadata"],
        "configuration.v1alpha1": ["GetConfigurationAlpha1", "SubscribeConfigurationAlpha1", "UnsubscribeConfigurationAlpha1"],
        "configuration.v1": ["GetConfiguration", "SubscribeConfiguration", "UnsubscribeConfiguration"],
        "lock.v1alpha1": ["TryLockAlpha1"],
        "unlock.v1alpha1": ["UnlockAlpha1"],
        "subtlecrypto.v1alpha1": [
            "SubtleGetKeyAlpha1", "SubtleEncryptAlpha1", "SubtleDecryptAlpha1", "SubtleSignAlpha1", "SubtleVerifyAlpha1",
            "SubtleWrapKeyAlpha1", "SubtleUnwrapKeyAlpha1",
        ],
        "crypto.v1alpha1": ["EncryptAlpha1", "DecryptAlpha1"],
        "workflows.v1alpha1": [
            "StartWorkflowAlpha1", "GetWorkflowAlpha1", "TerminateWorkflowAlpha1", "RaiseEventWorkflowAlpha1", "PurgeWorkflowAlpha1",
            "PauseWorkflowAlpha1", "ResumeWorkflowAlpha1",
        ],
        "workflows.v1beta1": [
            "StartWorkflowBeta1", "GetWorkflowBeta1", "TerminateWorkflowBeta1", "RaiseEventWorkflowBeta1", "PurgeWorkflowBeta1",
            "PauseWorkflowBeta1", "ResumeWorkflowBeta1",
        ],
        "jobs.v1alpha1": ["ScheduleJobAlpha1", "DeleteJobAlpha1", "GetJobAlpha1", "DeleteJobsByPrefixAlpha1", "ListJobsAlpha1"],
        "jobs.v1": ["ScheduleJob", "DeleteJob", "GetJob", "DeleteJobsByPrefix", "ListJobs"],
        "shutdown.v1": ["Shutdown"],
        "subscribe.v1alpha1": ["SubscribeTopicEventsAlpha1"],
        "conversation.v1alpha1": ["ConverseAlpha1"],
        "conversation.v1alpha2": ["ConverseAlpha2"],
    ].mapValues { $0.map { Self.dapr + $0 } }

    /// The full methods a rule stands for (none for a rule daprd does not know).
    public static func methods(name: String, version: String) -> [String] {
        self.methodsByRule[name + "." + version] ?? []
    }

    /// The rule (`name`, `version`) a full method belongs to, if any.
    public static func endpoint(of method: String) -> (name: String, version: String)? {
        self.ruleByMethod[method]
    }

    static let ruleByMethod: [String: (name: String, version: String)] = {
        var result: [String: (name: String, version: String)] = [:]
        for (rule, methods) in Self.methodsByRule {
            let dot = rule.lastIndex(of: ".")!
            let entry = (name: String(rule[..<dot]), version: String(rule[rule.index(after: dot)...]))
            for method in methods { result[method] = entry }
        }
        return result
    }()
}

import MechaCore

extension ResourceDecoders {
    /// `spec.accessControl` of a Configuration, checked as daprd checks it (every policy names
    /// its `appId`, `trustDomain` and `namespace`), and stricter where daprd is silent: an
    /// `action` or `defaultAction` other than allow/deny (any case) is an error naming its field
    /// instead of quietly denying. A missing `action` denies, as in daprd.
    static func accessControl(_ node: NodeReader) throws(ResourceError) -> AccessControlSpec? {
        try node.rejectUnknownKeys(["defaultAction", "trustDomain", "policies"])
        let defaultAction = try self.action(node.optional("defaultAction"))
        let trustDomainNode = try node.optional("trustDomain")
        let trustDomain = try trustDomainNode?.string() ?? ""
        let policiesNode = try node.optional("policies")
        let policyNodes = try policiesNode?.sequence() ?? []
        // daprd: an accessControl with nothing in it is no ACL at all.
        if defaultAction == nil, trustDomain.isEmpty, policyNodes.isEmpty, policiesNode == nil { return nil }
        var spec = AccessControlSpec(trustDomain: trustDomain.isEmpty ? AccessControlSpec.defaultTrustDomain : trustDomain)
        // daprd's default without `defaultAction`: deny once any policy exists (or `policies` is
        // absent); allow only with an explicit empty list.
        spec.defaultAction = defaultAction ?? (policiesNode != nil && policyNodes.isEmpty ? .allow : .deny)
        for policyNode in policyNodes {
            try policyNode.rejectUnknownKeys(["appId", "trustDomain", "namespace", "defaultAction", "operations"])
            let appID = try policyNode.required("appId").nonEmptyString()
            let policyDomain = try policyNode.required("trustDomain").nonEmptyString()
            let namespace = try policyNode.required("namespace").nonEmptyString()
            var policy = AccessControlSpec.AppPolicy(
                appID: appID, trustDomain: policyDomain, namespace: namespace, defaultAction: try self.action(policyNode.optional("defaultAction")))
            for operationNode in try policyNode.optional("operations")?.sequence() ?? [] {
                try operationNode.rejectUnknownKeys(["name", "httpVerb", "action"])
                let name = try operationNode.required("name").nonEmptyString()
                let verbs = try operationNode.optional("httpVerb")?.strings() ?? []
                // A missing action denies (daprd compares the action with "allow").
                let action = try self.action(operationNode.optional("action")) ?? .deny
                policy.operations.append(.init(name: name, httpVerbs: verbs, action: action))
            }
            // daprd keeps the last policy of an app id and namespace.
            spec.policies.removeAll { $0.appID == appID && $0.namespace == namespace }
            spec.policies.append(policy)
        }
        return spec
    }

    /// Mecha's `AccessPolicy`: the accessControl language for state, pub/sub and secrets. A
    /// policy names its app (`appId`; `namespace` defaults to `default`, `trustDomain` to
    /// `public`); an operation's `name` is `/state|pubsub|secrets/<component>[/<key, topic or
    /// secret>]` and its `verbs` the block's (default all). Without `defaultAction`, callers no
    /// policy names are denied once a policy exists, as in accessControl.
    static func accessPolicy(_ root: NodeReader) throws(ResourceError) -> AccessPolicySpec {
        let apiVersionNode = try root.optional("apiVersion")
        let apiVersion = try apiVersionNode?.string() ?? ""
        guard apiVersion == self.trafficPolicyAPIVersion else {
            throw (apiVersionNode ?? root).error("unsupported apiVersion '\(apiVersion)' for an AccessPolicy; expected \(self.trafficPolicyAPIVersion)")
        }
        try root.rejectUnknownKeys(["apiVersion", "kind", "metadata", "spec"])
        let name = try root.required("metadata").required("name").nonEmptyString()
        let node = try root.required("spec")
        try node.rejectUnknownKeys(["defaultAction", "policies"])
        let defaultAction = try self.action(node.optional("defaultAction"))
        let policiesNode = try node.optional("policies")
        let policyNodes = try policiesNode?.sequence() ?? []
        var access = AccessControlSpec()
        access.defaultAction = defaultAction ?? (policiesNode != nil && policyNodes.isEmpty ? .allow : .deny)
        for policyNode in policyNodes {
            try policyNode.rejectUnknownKeys(["appId", "trustDomain", "namespace", "defaultAction", "operations"])
            let appID = try policyNode.required("appId").nonEmptyString()
            let trustDomain = try policyNode.optional("trustDomain")?.nonEmptyString() ?? AccessControlSpec.defaultTrustDomain
            let namespace = try policyNode.optional("namespace")?.nonEmptyString() ?? "default"
            var policy = AccessControlSpec.AppPolicy(
                appID: appID, trustDomain: trustDomain, namespace: namespace, defaultAction: try self.action(policyNode.optional("defaultAction")))
            for operationNode in try policyNode.optional("operations")?.sequence() ?? [] {
                try operationNode.rejectUnknownKeys(["name", "verbs", "action"])
                let nameNode = try operationNode.required("name")
                let operation = try nameNode.nonEmptyString()
                let segments = operation.split(separator: "/", omittingEmptySubsequences: true)
                guard operation.hasPrefix("/"), segments.count >= 2, let verbs = AccessPolicySpec.verbs[String(segments[0])] else {
                    throw nameNode.error("must be /state/<store>[/<key>], /pubsub/<pubsub>[/<topic>] or /secrets/<store>[/<secret>], found '\(operation)'")
                }
                let block = String(segments[0])
                var listed = ["*"]
                if let verbsNode = try operationNode.optional("verbs") {
                    listed = try verbsNode.strings().map { $0.lowercased() }
                    for verb in listed where verb != "*" && !verbs.contains(verb) {
                        throw verbsNode.error("'\(verb)' is not a \(block) verb; use \(verbs.sorted().joined(separator: ", ")) or *")
                    }
                }
                let action = try self.action(operationNode.optional("action")) ?? .deny
                policy.operations.append(.init(name: operation, httpVerbs: listed, action: action))
            }
            // As in accessControl, the last policy of an app id and namespace counts.
            access.policies.removeAll { $0.appID == appID && $0.namespace == namespace }
            access.policies.append(policy)
        }
        return AccessPolicySpec(name: name, source: root.source, access: access)
    }

    private static func action(_ node: NodeReader?) throws(ResourceError) -> AccessControlSpec.Action? {
        guard let node else { return nil }
        let text = try node.string()
        if text.isEmpty { return nil }
        guard let action = AccessControlSpec.Action(rawValue: text.lowercased()) else {
            throw node.error("must be allow or deny, found '\(text)'")
        }
        return action
    }

    /// `spec.mtls` of a Configuration.
    static func mtls(_ node: NodeReader) throws(ResourceError) -> MTLSSpec {
        try node.rejectUnknownKeys(["enabled", "workloadCertTTL", "allowedClockSkew", "controlPlaneTrustDomain", "sentryAddress", "tokenValidators"])
        var spec = MTLSSpec()
        if let enabled = try node.optional("enabled") { spec.enabled = try enabled.bool() }
        if let ttl = try node.optional("workloadCertTTL") { spec.workloadCertTTL = try ttl.duration(range: .seconds(5) ... .seconds(365 * 24 * 3600)) }
        if let skew = try node.optional("allowedClockSkew") { spec.allowedClockSkew = try skew.duration(range: .zero ... .seconds(24 * 3600)) }
        return spec
    }
}

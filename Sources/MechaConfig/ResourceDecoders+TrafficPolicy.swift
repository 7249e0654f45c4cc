import MechaCore

/// Mecha's own `TrafficPolicy` resource. Being ours, it is strict: unknown keys are errors at every level.
extension ResourceDecoders {
    static let trafficPolicyAPIVersion = "mecha.dev/v1alpha1"

    static func trafficPolicy(_ root: NodeReader) throws(ResourceError) -> TrafficPolicySpec {
        let apiVersionNode = try root.optional("apiVersion")
        let apiVersion = try apiVersionNode?.string() ?? ""
        guard apiVersion == self.trafficPolicyAPIVersion else {
            throw (apiVersionNode ?? root).error("unsupported apiVersion '\(apiVersion)' for a TrafficPolicy; expected \(self.trafficPolicyAPIVersion)")
        }
        try root.rejectUnknownKeys(["apiVersion", "kind", "metadata", "scopes", "spec"])
        let name = try root.required("metadata").required("name").nonEmptyString()
        let spec = try root.required("spec")
        try spec.rejectUnknownKeys(["target", "component", "loadBalancer", "locality", "outlierDetection", "routes"])

        let target: TrafficPolicySpec.Target
        switch (try spec.optional("target"), try spec.optional("component")) {
        case (let app?, nil): target = .app(try app.nonEmptyString())
        case (nil, let component?): target = .component(try component.nonEmptyString())
        case (_?, let component?): throw component.error("set either target (an app id) or component, not both")
        case (nil, nil): throw spec.missing("target", "set target (an app id) or component")
        }

        var policy = TrafficPolicySpec(name: name, scopes: try root.optional("scopes")?.strings() ?? [], target: target, source: root.source)
        if let node = try spec.optional("loadBalancer") { policy.loadBalancer = try self.loadBalancer(node) }
        if let node = try spec.optional("locality") {
            try node.rejectUnknownKeys(["preferSameHost"])
            policy.locality.preferSameHost = try node.optional("preferSameHost")?.bool() ?? false
        }
        if let node = try spec.optional("outlierDetection") { policy.outlierDetection = try self.outlierDetection(node) }
        for routeNode in try spec.optional("routes")?.sequence() ?? [] {
            policy.routes.append(try self.trafficRoute(routeNode, target: target))
        }
        return policy
    }

    private static func loadBalancer(_ node: NodeReader) throws(ResourceError) -> LoadBalancerSpec {
        try node.rejectUnknownKeys(["policy", "hashOn"])
        var balancer = LoadBalancerSpec()
        if let policyNode = try node.optional("policy") {
            let text = try policyNode.string()
            guard let parsed = LoadBalancerSpec.Policy(rawValue: text) else {
                throw policyNode.error("unknown load-balancing policy '\(text)'; expected one of \(LoadBalancerSpec.Policy.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            balancer.policy = parsed
        }
        if let hashOn = try node.optional("hashOn") {
            guard balancer.policy == .ringHash else { throw hashOn.error("hashOn applies only to the ringHash policy") }
            try hashOn.rejectUnknownKeys(["header"])
            balancer.hashOnHeader = try hashOn.required("header").nonEmptyString().lowercased()
        } else if balancer.policy == .ringHash {
            throw node.missing("hashOn", "the ringHash policy needs hashOn.header")
        }
        return balancer
    }

    private static func outlierDetection(_ node: NodeReader) throws(ResourceError) -> OutlierDetectionSpec {
        try node.rejectUnknownKeys(["consecutiveFailures", "baseEjectionTime", "maxEjectionTime", "maxEjectionPercent"])
        var detection = OutlierDetectionSpec()
        if let failures = try node.optional("consecutiveFailures") {
            detection.consecutiveFailures = try failures.int(atLeast: 1)
        }
        if let base = try node.optional("baseEjectionTime") { detection.baseEjectionTime = try base.positiveDuration() }
        let maxNode = try node.optional("maxEjectionTime")
        if let maxNode { detection.maxEjectionTime = try maxNode.positiveDuration() }
        guard detection.maxEjectionTime >= detection.baseEjectionTime else {
            throw (maxNode ?? node).error("maxEjectionTime (\(GoDuration.format(detection.maxEjectionTime))) is shorter than baseEjectionTime (\(GoDuration.format(detection.baseEjectionTime)))")
        }
        if let percent = try node.optional("maxEjectionPercent") {
            detection.maxEjectionPercent = try percent.int(in: 0...100)
        }
        return detection
    }

    private static func trafficRoute(_ node: NodeReader, target: TrafficPolicySpec.Target) throws(ResourceError) -> TrafficRoute {
        try node.rejectUnknownKeys(["match", "split", "mirror", "fault", "rateLimit", "globalRateLimit"])
        let isApp: Bool
        if case .app = target { isApp = true } else { isApp = false }
        var route = TrafficRoute()

        if let match = try node.optional("match") {
            try match.rejectUnknownKeys(["pathPrefix", "path", "method", "headers", "operation"])
            for key in isApp ? ["operation"] : ["pathPrefix", "path", "method", "headers"] {
                if let misplaced = try match.optional(key) {
                    throw misplaced.error(isApp ? "operation applies only to a component target" : "\(key) applies only to an app target")
                }
            }
            for key in ["pathPrefix", "path"] {
                if let pathNode = try match.optional(key) {
                    let text = try pathNode.nonEmptyString()
                    guard text.hasPrefix("/") else { throw pathNode.error("must start with '/', found '\(text)'") }
                    if key == "path" { route.match.path = text } else { route.match.pathPrefix = text }
                }
            }
            route.match.method = try match.optional("method")?.nonEmptyString().uppercased()
            for (header, value) in try match.optional("headers")?.mapping() ?? [] {
                let lowered = header.lowercased()
                guard !header.isEmpty else { throw value.error("a header name must not be empty") }
                guard route.match.headers[lowered] == nil else { throw value.error("header '\(lowered)' is listed twice") }
                route.match.headers[lowered] = try value.string()
            }
            route.match.operation = try match.optional("operation")?.nonEmptyString()
        }

        if let split = try node.optional("split") {
            guard isApp else { throw split.error("split applies only to an app target") }
            var total = 0
            for entry in try split.sequence() {
                try entry.rejectUnknownKeys(["appId", "weight"])
                let appID = try entry.required("appId").nonEmptyString()
                guard !route.split.contains(where: { $0.appID == appID }) else { throw entry.error("appId '\(appID)' is listed twice") }
                let weight = try entry.required("weight").int(in: 0...100)
                total += weight
                route.split.append(WeightedTarget(appID: appID, weight: weight))
            }
            guard route.split.isEmpty || total == 100 else {
                throw split.error("weights must sum to 100, found \(total)")
            }
        }
        if let mirror = try node.optional("mirror") {
            guard isApp else { throw mirror.error("mirror applies only to an app target") }
            try mirror.rejectUnknownKeys(["appId", "percent"])
            route.mirror = MirrorSpec(appID: try mirror.required("appId").nonEmptyString(), percent: try mirror.optional("percent")?.percent() ?? 100)
        }
        if let fault = try node.optional("fault") {
            try fault.rejectUnknownKeys(["delay", "abort"])
            var spec = FaultSpec()
            if let delay = try fault.optional("delay") {
                try delay.rejectUnknownKeys(["fixed", "percent"])
                spec.delay = FaultSpec.Delay(fixed: try delay.required("fixed").positiveDuration(), percent: try delay.optional("percent")?.percent() ?? 100)
            }
            if let abort = try fault.optional("abort") {
                try abort.rejectUnknownKeys(["httpStatus", "percent"])
                spec.abort = FaultSpec.Abort(httpStatus: try abort.required("httpStatus").int(in: 200...599), percent: try abort.optional("percent")?.percent() ?? 100)
            }
            guard spec.delay != nil || spec.abort != nil else { throw fault.error("a fault needs delay or abort") }
            route.fault = spec
        }
        if let limit = try node.optional("rateLimit") {
            try limit.rejectUnknownKeys(["requestsPerSecond", "burst"])
            let rateNode = try limit.required("requestsPerSecond")
            let rate = try rateNode.double()
            guard rate > 0 else { throw rateNode.error("must be greater than zero, found \(try rateNode.string())") }
            route.rateLimit = RateLimitSpec(requestsPerSecond: rate, burst: try limit.optional("burst")?.int(atLeast: 1))
        }
        if let limit = try node.optional("globalRateLimit") {
            try limit.rejectUnknownKeys(["requestsPerSecond", "store"])
            route.globalRateLimit = GlobalRateLimitSpec(
                requestsPerSecond: try limit.required("requestsPerSecond").int(atLeast: 1),
                store: try limit.required("store").nonEmptyString()
            )
        }
        return route
    }
}

extension NodeReader {
    /// An error about the absent member `key` (its field path, this node's line).
    func missing(_ key: String, _ reason: String) -> ResourceError {
        var source = self.source
        source.line = self.node.line
        return ResourceError(source: source, field: self.path.isEmpty ? key : "\(self.path).\(key)", reason: reason)
    }

    func int(in range: ClosedRange<Int>) throws(ResourceError) -> Int {
        let value = try self.int()
        guard range.contains(value) else { throw self.error("must be from \(range.lowerBound) to \(range.upperBound), found \(value)") }
        return value
    }

    func int(atLeast minimum: Int) throws(ResourceError) -> Int {
        let value = try self.int()
        guard value >= minimum else { throw self.error("must be \(minimum) or more, found \(value)") }
        return value
    }

    /// A percentage, 0 to 100 (fractions allowed).
    func percent() throws(ResourceError) -> Double {
        let value = try self.double()
        guard (0...100).contains(value) else { throw self.error("must be from 0 to 100, found \(try self.string())") }
        return value
    }
}

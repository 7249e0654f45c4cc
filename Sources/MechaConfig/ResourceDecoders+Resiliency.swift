import MechaCore

/// Dapr's `Resiliency` resource. Policy names a target uses are checked after every resource is
/// loaded (`ResiliencyValidation`), because Dapr merges several resources into one set of policies.
extension ResourceDecoders {
    static let resiliencyAPIVersion = "dapr.io/v1alpha1"

    /// The five counters a circuit breaker's `trip` expression may read.
    static let tripVariables = ["requests", "totalSuccesses", "totalFailures", "consecutiveSuccesses", "consecutiveFailures"]

    static let defaultTrip = "consecutiveFailures > 5"

    static func resiliency(_ root: NodeReader) throws(ResourceError) -> ResiliencySpec {
        let apiVersionNode = try root.optional("apiVersion")
        let apiVersion = try apiVersionNode?.string() ?? ""
        guard apiVersion == self.resiliencyAPIVersion else {
            throw (apiVersionNode ?? root).error("unsupported apiVersion '\(apiVersion)' for a Resiliency; expected \(self.resiliencyAPIVersion)")
        }
        let name = try root.required("metadata").required("name").nonEmptyString()
        var resiliency = ResiliencySpec(name: name, scopes: try root.optional("scopes")?.strings() ?? [], source: root.source)

        let spec = try root.required("spec")
        try spec.rejectUnknownKeys(["policies", "targets"])
        if let policies = try spec.optional("policies") {
            try policies.rejectUnknownKeys(["timeouts", "retries", "circuitBreakers"])
            for (policyName, node) in try policies.optional("timeouts")?.mapping() ?? [] {
                resiliency.timeouts[policyName] = try node.positiveDuration()
            }
            for (policyName, node) in try policies.optional("retries")?.mapping() ?? [] {
                resiliency.retries[policyName] = try self.retry(node)
            }
            for (policyName, node) in try policies.optional("circuitBreakers")?.mapping() ?? [] {
                resiliency.circuitBreakers[policyName] = try self.circuitBreaker(node)
            }
        }
        if let targets = try spec.optional("targets") {
            try targets.rejectUnknownKeys(["apps", "actors", "components"])
            for (appID, node) in try targets.optional("apps")?.mapping() ?? [] {
                resiliency.apps[appID] = try self.targetPolicies(node, allowed: ["timeout", "retry", "circuitBreaker", "circuitBreakerCacheSize"])
            }
            for (actorType, node) in try targets.optional("actors")?.mapping() ?? [] {
                resiliency.actors[actorType] = try self.targetPolicies(
                    node, allowed: ["timeout", "retry", "circuitBreaker", "circuitBreakerScope", "circuitBreakerCacheSize"])
            }
            for (componentName, node) in try targets.optional("components")?.mapping() ?? [] {
                try node.rejectUnknownKeys(["outbound", "inbound"])
                let allowed: Set<String> = ["timeout", "retry", "circuitBreaker"]
                resiliency.components[componentName] = ComponentPolicyNames(
                    outbound: try node.optional("outbound").map { (direction: NodeReader) throws(ResourceError) in try self.targetPolicies(direction, allowed: allowed) },
                    inbound: try node.optional("inbound").map { (direction: NodeReader) throws(ResourceError) in try self.targetPolicies(direction, allowed: allowed) }
                )
            }
        }
        return resiliency
    }

    private static func retry(_ node: NodeReader) throws(ResourceError) -> RetrySpec {
        try node.rejectUnknownKeys(["policy", "duration", "maxInterval", "maxRetries", "matching"])
        var retry = RetrySpec()
        if let policyNode = try node.optional("policy") {
            let text = try policyNode.string()
            guard let policy = RetrySpec.Kind(rawValue: text) else {
                throw policyNode.error("retry policy must be constant or exponential, found '\(text)'")
            }
            retry.policy = policy
        }
        if let duration = try node.optional("duration") { retry.duration = try duration.positiveDuration() }
        if let maxInterval = try node.optional("maxInterval") { retry.maxInterval = try maxInterval.positiveDuration() }
        if let maxRetriesNode = try node.optional("maxRetries") {
            let maxRetries = try maxRetriesNode.int()
            guard maxRetries >= -1 else {
                throw maxRetriesNode.error("must be -1 (retry forever) or more, found \(maxRetries)")
            }
            retry.maxRetries = maxRetries == -1 ? nil : maxRetries
        }
        if let matching = try node.optional("matching") {
            try matching.rejectUnknownKeys(["httpStatusCodes", "gRPCStatusCodes"])
            retry.matching = StatusCodeMatching(
                httpStatusCodes: try matching.optional("httpStatusCodes")?.statusCodes(within: 100...599, kind: "HTTP status code") ?? [],
                grpcStatusCodes: try matching.optional("gRPCStatusCodes")?.statusCodes(within: 0...16, kind: "gRPC status code") ?? []
            )
        }
        return retry
    }

    private static func circuitBreaker(_ node: NodeReader) throws(ResourceError) -> CircuitBreakerSpec {
        try node.rejectUnknownKeys(["maxRequests", "interval", "timeout", "trip"])
        var maxRequests = 1
        if let maxRequestsNode = try node.optional("maxRequests") {
            let value = try maxRequestsNode.int()
            guard value >= 0 else { throw maxRequestsNode.error("must be 1 or more, found \(value)") }
            maxRequests = max(1, value)  // Dapr (gobreaker) lets one probe through for 0
        }
        let interval = try node.optional("interval")?.duration() ?? .zero
        let timeout = try node.optional("timeout")?.positiveDuration() ?? .seconds(60)
        let tripNode = try node.optional("trip")
        let tripText = try tripNode?.nonEmptyString() ?? self.defaultTrip
        let trip: CELExpression
        do throws(CELError) {
            trip = try self.checkedTrip(tripText)
        } catch {
            throw (tripNode ?? node).error("invalid trip expression '\(tripText)': \(error)")
        }
        return CircuitBreakerSpec(maxRequests: maxRequests, interval: interval, timeout: timeout, trip: trip)
    }

    /// Parses `trip` and evaluates it with the counters at a few trial values: an identifier other
    /// than the five counters, or a non-boolean result, is an error. Trials at several values reach
    /// both sides of `&&` / `||`; an arithmetic error at one value (division by zero) is tolerated
    /// when another trial succeeds.
    static func checkedTrip(_ text: String) throws(CELError) -> CELExpression {
        let expression = try CELExpression(parsing: text)
        var firstError: CELError?
        var succeeded = false
        for trial in [UInt64(0), 1, 1_000_000] {
            let variables = Dictionary(uniqueKeysWithValues: self.tripVariables.map { ($0, CELValue.uint(trial)) })
            let result: CELValue
            do throws(CELError) {
                result = try expression.evaluate(variables)
            } catch {
                if error.message.hasPrefix("undeclared reference") {
                    throw CELError("\(error.message); trip may use only \(self.tripVariables.joined(separator: ", "))", position: error.position)
                }
                firstError = firstError ?? error
                continue
            }
            guard case .bool = result else { throw CELError("the result is \(result.typeName), not bool") }
            succeeded = true
        }
        if !succeeded, let firstError { throw firstError }
        return expression
    }

    private static func targetPolicies(_ node: NodeReader, allowed: Set<String>) throws(ResourceError) -> TargetPolicyNames {
        try node.rejectUnknownKeys(allowed)
        var names = TargetPolicyNames(
            timeout: try node.optional("timeout")?.nonEmptyString(),
            retry: try node.optional("retry")?.nonEmptyString(),
            circuitBreaker: try node.optional("circuitBreaker")?.nonEmptyString()
        )
        if let cacheSizeNode = try node.optional("circuitBreakerCacheSize") {
            let cacheSize = try cacheSizeNode.int()
            guard cacheSize > 0 else { throw cacheSizeNode.error("must be greater than zero, found \(cacheSize)") }
            names.circuitBreakerCacheSize = cacheSize
        }
        if let scopeNode = try node.optional("circuitBreakerScope") {
            let scope = try scopeNode.string()
            guard ["id", "type", "both"].contains(scope) else {
                throw scopeNode.error("circuitBreakerScope must be id, type or both, found '\(scope)'")
            }
            names.circuitBreakerScope = scope
        }
        return names
    }
}

extension NodeReader {
    /// A Go duration (`5s`, `100ms`) that must be greater than zero.
    func positiveDuration() throws(ResourceError) -> Duration {
        let text = try self.string()
        guard let value = GoDuration.parse(text) else {
            throw self.error("expected a duration such as 5s, 500ms or 1m, found '\(text)'")
        }
        guard value > .zero else { throw self.error("must be greater than zero, found '\(text)'") }
        guard value <= .maximumInterval else {
            throw self.error("'\(text)' is out of range: must be at most \(GoDuration.format(.maximumInterval))")
        }
        return value
    }

    /// A number (`10`, `2.5`).
    func double() throws(ResourceError) -> Double {
        let text = try self.string()
        guard let value = Double(text.trimmingSpaces()), value.isFinite else { throw self.error("expected a number, found '\(text)'") }
        return value
    }

    /// Status codes and ranges, as Dapr's comma-separated string (`"429,500-599"`) or a YAML list
    /// of codes and range strings (`[429, "500-599"]`).
    func statusCodes(within bounds: ClosedRange<Int>, kind: String) throws(ResourceError) -> [ClosedRange<Int>] {
        var result: [ClosedRange<Int>] = []
        if case .sequence = self.node {
            for item in try self.sequence() {
                result += try item.statusCodeItems(try item.string(), within: bounds, kind: kind)
            }
        } else {
            result = try self.statusCodeItems(try self.string(), within: bounds, kind: kind)
        }
        return result
    }

    private func statusCodeItems(_ text: String, within bounds: ClosedRange<Int>, kind: String) throws(ResourceError) -> [ClosedRange<Int>] {
        if text.trimmingSpaces().isEmpty { return [] }
        var result: [ClosedRange<Int>] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let item = String(part).trimmingSpaces()
            let ends = item.split(separator: "-", omittingEmptySubsequences: false).map { String($0).trimmingSpaces() }
            guard (1...2).contains(ends.count), let low = Int(ends[0]), let high = Int(ends[ends.count - 1]) else {
                throw self.error("'\(item)' is not a \(kind) or a range such as \(bounds.lowerBound)-\(bounds.upperBound)")
            }
            for code in [low, high] where !bounds.contains(code) {
                throw self.error("\(kind) \(code) is outside \(bounds.lowerBound)-\(bounds.upperBound)")
            }
            guard low <= high else { throw self.error("range '\(item)' is reversed: \(low) is greater than \(high)") }
            result.append(low...high)
        }
        return result
    }
}

import MechaCore

extension ResourceDecoders {
    /// `spec.metrics` of a Configuration. Regular expressions are compiled here, so a bad one is a
    /// startup error naming its field.
    static func metrics(_ node: NodeReader) throws(ResourceError) -> MetricsSpec {
        var spec = MetricsSpec()
        try node.rejectUnknownKeys(["enabled", "http", "rules", "latencyDistributionBuckets", "recordErrorCodes", "seriesLimit"])
        if let enabled = try node.optional("enabled") { spec.enabled = try enabled.bool() }
        if let http = try node.optional("http") {
            try http.rejectUnknownKeys(["increasedCardinality", "pathMatching", "excludeVerbs"])
            if let value = try http.optional("increasedCardinality") { spec.increasedCardinality = try value.bool() }
            if let value = try http.optional("excludeVerbs") { spec.excludeVerbs = try value.bool() }
            for item in try http.optional("pathMatching")?.sequence() ?? [] {
                let template = try item.nonEmptyString()
                guard template.hasPrefix("/") else { throw item.error("a path template starts with '/', found '\(template)'") }
                spec.pathMatching.append(template)
            }
        }
        for ruleNode in try node.optional("rules")?.sequence() ?? [] {
            let name = try ruleNode.required("name").nonEmptyString()
            var labels: [MetricRule.Label] = []
            for labelNode in try ruleNode.optional("labels")?.sequence() ?? [] {
                let labelName = try labelNode.required("name").nonEmptyString()
                var rewrites: [MetricRule.Label.Rewrite] = []
                for (replacement, patternNode) in try labelNode.required("regex").mapping() {
                    let pattern = try patternNode.string()
                    do {
                        _ = try Regex(pattern)
                    } catch {
                        throw patternNode.error("not a valid regular expression: '\(pattern)'")
                    }
                    rewrites.append(.init(replacement: replacement, pattern: pattern))
                }
                labels.append(.init(name: labelName, rewrites: rewrites))
            }
            spec.rules.append(MetricRule(name: name, labels: labels))
        }
        if let buckets = try node.optional("latencyDistributionBuckets") {
            var bounds: [Double] = []
            for item in try buckets.sequence() {
                let text = try item.string()
                guard let value = Double(text.trimmingSpaces()), value > 0, value.isFinite else {
                    throw item.error("expected a positive number of milliseconds, found '\(text)'")
                }
                if let last = bounds.last, value <= last { throw item.error("bucket bounds must increase: \(text) follows \(last)") }
                bounds.append(value)
            }
            spec.latencyBuckets = bounds
        }
        if let value = try node.optional("recordErrorCodes") { spec.recordErrorCodes = try value.bool() }
        if let value = try node.optional("seriesLimit") {
            let limit = try value.int()
            guard (1...1_000_000).contains(limit) else { throw value.error("must be from 1 to 1000000, found \(limit)") }
            spec.seriesLimit = limit
        }
        return spec
    }

    /// `spec.logging` of a Configuration (its `apiLogging` part).
    static func apiLogging(_ node: NodeReader) throws(ResourceError) -> APILoggingSpec {
        var spec = APILoggingSpec()
        guard let api = try node.optional("apiLogging") else { return spec }
        try api.rejectUnknownKeys(["enabled", "obfuscateURLs", "omitHealthChecks"])
        spec.enabled = try api.optional("enabled")?.bool()
        spec.obfuscateURLs = try api.optional("obfuscateURLs")?.bool() ?? false
        spec.omitHealthChecks = try api.optional("omitHealthChecks")?.bool() ?? false
        return spec
    }
}

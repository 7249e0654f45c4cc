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

    /// `spec.tracing` of a Configuration. Addresses are checked here: a collector that is down is
    /// the exporter's problem later, a malformed address is a startup error now.
    static func tracing(_ node: NodeReader) throws(ResourceError) -> TracingSpec {
        try node.rejectUnknownKeys(["samplingRate", "stdout", "zipkin", "otel"])
        var spec = TracingSpec()
        if let rate = try node.optional("samplingRate") {
            let text = try rate.string().trimmingSpaces()
            guard let value = Double(text), value >= 0, value <= 1 else {
                throw rate.error("expected a number from 0 to 1, found '\(text)'")
            }
            spec.samplingRate = value
        }
        if let stdout = try node.optional("stdout") { spec.stdout = try stdout.bool() }
        if let zipkin = try node.optional("zipkin") {
            try zipkin.rejectUnknownKeys(["endpointAddress"])
            let address = try zipkin.required("endpointAddress")
            let text = try address.nonEmptyString()
            guard Self.isHTTPURL(text) else { throw address.error("expected an http:// or https:// URL, found '\(text)'") }
            spec.zipkinEndpoint = text
        }
        if let otel = try node.optional("otel") {
            try otel.rejectUnknownKeys(["endpointAddress", "isSecure", "protocol", "headers", "timeout"])
            let addressNode = try otel.required("endpointAddress")
            let address = try addressNode.nonEmptyString()
            var exporter = OTelExporterSpec(endpointAddress: address)
            if let value = try otel.optional("isSecure") { exporter.isSecure = try value.bool() }
            if let value = try otel.optional("protocol") {
                let text = try value.string()
                guard let parsed = OTelExporterSpec.TransportProtocol(rawValue: text.lowercased()) else {
                    throw value.error("protocol must be grpc or http, found '\(text)'")
                }
                exporter.transport = parsed
            }
            guard Self.isCollectorAddress(address, transport: exporter.transport) else {
                throw addressNode.error(
                    exporter.transport == .grpc
                        ? "expected host:port, found '\(address)'" : "expected host:port or an http(s):// URL, found '\(address)'")
            }
            if let headers = try otel.optional("headers") {
                if case .sequence = headers.node {
                    for item in try headers.sequence() {
                        exporter.headers.append((try item.required("name").nonEmptyString(), try item.required("value").string()))
                    }
                } else if case .scalar = headers.node {
                    // daprd also takes "key1=value1,key2=value2".
                    for pair in try headers.string().split(separator: ",") where !pair.isEmpty {
                        let parts = pair.split(separator: "=", maxSplits: 1)
                        guard parts.count == 2, !parts[0].isEmpty else { throw headers.error("expected name=value pairs, found '\(pair)'") }
                        exporter.headers.append((String(parts[0]).trimmingSpaces(), String(parts[1]).trimmingSpaces()))
                    }
                } else {
                    for (name, value) in try headers.mapping() { exporter.headers.append((name, try value.string())) }
                }
            }
            if let timeout = try otel.optional("timeout") {
                exporter.timeout = try timeout.duration(range: .milliseconds(1) ... .seconds(300))
            }
            spec.otel = exporter
        }
        return spec
    }

    static func isHTTPURL(_ text: String) -> Bool {
        let lowered = text.lowercased()
        let rest: Substring
        if lowered.hasPrefix("http://") { rest = text.dropFirst(7) } else if lowered.hasPrefix("https://") { rest = text.dropFirst(8) } else { return false }
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        return !authority.isEmpty && !authority.contains(" ") && !authority.hasPrefix(":")
    }

    static func isCollectorAddress(_ text: String, transport: OTelExporterSpec.TransportProtocol) -> Bool {
        if transport == .http, text.lowercased().hasPrefix("http") { return Self.isHTTPURL(text) }
        guard let colon = text.lastIndex(of: ":"), colon != text.startIndex else { return false }
        let host = text[..<colon]
        guard let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return false }
        return !host.contains("/") && !host.contains(" ")
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

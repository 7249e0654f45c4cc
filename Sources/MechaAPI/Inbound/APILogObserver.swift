public import Logging
public import MechaCore
import MechaTelemetry

/// daprd's API logging (`--enable-api-logging`, `spec.logging.apiLogging`): one info line per API
/// call — `HTTP API Called` on scope `dapr.runtime.http-info`, `gRPC API Called` on
/// `dapr.runtime.grpc-info` — with the method and path (or route template with `obfuscateURLs`),
/// user agent, status and duration, and the caller's trace and span ids when it sent a W3C
/// `traceparent`. Fed by the surfaces' exchange observers, so the fast path is logged too.
public struct APILogObserver: InboundObserver {
    let http: Logger
    let grpc: Logger
    let obfuscateURLs: Bool
    let omitHealthChecks: Bool

    public init(http: Logger, grpc: Logger, obfuscateURLs: Bool = false, omitHealthChecks: Bool = false) {
        self.http = http
        self.grpc = grpc
        self.obfuscateURLs = obfuscateURLs
        self.omitHealthChecks = omitHealthChecks
    }

    public var wantsDetails: Bool { true }

    public func completed(_ exchange: InboundExchange) {
        var metadata: Logger.Metadata = [
            "duration": .string(String(Self.milliseconds(exchange.elapsed))),
            "useragent": .string(exchange.userAgent ?? ""),
        ]
        if let traceParent = exchange.traceParent, let ids = Self.traceIDs(traceParent) {
            metadata["trace_id"] = .string(ids.trace)
            metadata["span_id"] = .string(ids.span)
        }
        switch exchange.surface {
        case .http:
            if self.omitHealthChecks && Self.isHealthCheck(exchange.path) { return }
            let path = self.obfuscateURLs ? Self.template(exchange.path) : String(exchange.path)
            metadata["method"] = .string("\(exchange.verb) \(path)")
            metadata["code"] = .string(String(exchange.status))
            self.http.info("HTTP API Called", metadata: metadata)
        case .grpc:
            if self.omitHealthChecks && exchange.path.hasPrefix("/grpc.health.") { return }
            metadata["method"] = .string(String(exchange.path))
            metadata["code"] = .string(GRPCStatusCode(rawValue: exchange.status)?.goName ?? "Unknown")
            self.grpc.info("gRPC API Called", metadata: metadata)
        }
    }

    static func milliseconds(_ elapsed: Duration) -> Int64 { Int64(DaprMetrics.milliseconds(elapsed)) }

    static func isHealthCheck(_ path: Substring) -> Bool {
        path == "/v1.0/healthz" || path == "/v1.0/healthz/outbound" || path.hasPrefix("/actuator/health")
    }

    /// The trace and span ids of a well-formed W3C `traceparent`.
    static func traceIDs(_ header: String) -> (trace: String, span: String)? {
        TraceParent(parsing: header).map { ($0.traceIDHex, $0.spanIDHex) }
    }

    /// The route a path matched, with its parameters as names (`/v1.0/state/{name}/{key}`):
    /// what `obfuscateURLs` logs instead of keys, ids and topics.
    static func template(_ path: Substring) -> String {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        guard segments.count >= 2, segments[0].hasPrefix("v1.0") else { return segments.isEmpty ? "/" : "/" + segments[0] + (segments.count > 1 ? "/{path}" : "") }
        let version = segments[0]
        let area = segments[1]
        let rest = segments.dropFirst(2)
        var tail: [String]
        switch area {
        case "invoke": tail = rest.count >= 2 ? ["{id}", "method", "{method}"] : ["{id}"]
        case "state", "secrets":
            let fixed: Set<Substring> = ["bulk", "transaction", "query"]
            tail = ["{name}"]
            if let second = rest.dropFirst().first { tail.append(fixed.contains(second) ? String(second) : "{key}") }
        case "publish": tail = rest.first == "bulk" ? ["bulk", "{pubsubname}", "{topic}"] : ["{pubsubname}", "{topic}"]
        case "configuration":
            tail = ["{storeName}"]
            if rest.count == 2, rest.last == "subscribe" { tail.append("subscribe") }
            if rest.count == 3 { tail += ["{configurationSubscribeID}", "unsubscribe"] }
        case "metadata": tail = rest.isEmpty ? [] : ["{key}"]
        case "healthz", "shutdown": tail = rest.map(String.init)
        case "actors": tail = rest.count >= 2 ? ["{actorType}", "{actorId}"] + rest.dropFirst(2).prefix(1).map(String.init) : ["{actorType}"]
        default: tail = rest.isEmpty ? [] : ["{name}"]
        }
        if rest.isEmpty { tail = [] }
        return "/" + ([String(version), String(area)] + tail).joined(separator: "/")
    }
}


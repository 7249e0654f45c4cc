import Synchronization
/// `spec.metrics` of a Configuration: what the sidecar records and how (daprd's fields, plus
/// Mecha's cardinality budget).
public struct MetricsSpec: Sendable, Hashable {
    /// `enabled`: false turns the metrics endpoint off, as `--enable-metrics=false`.
    public var enabled: Bool
    /// `http.increasedCardinality`: label HTTP server metrics with the request path (daprd's
    /// default is true; Mecha's is false, so a sidecar cannot be run out of memory by paths).
    public var increasedCardinality: Bool
    /// `http.pathMatching`: path templates (`/orders/{id}`); a matching path is recorded under
    /// its template, any other path under `_`.
    public var pathMatching: [String]
    /// `http.excludeVerbs`: leave the HTTP method out of the labels.
    public var excludeVerbs: Bool
    /// `rules[]`: label values rewritten by regular expression, per metric.
    public var rules: [MetricRule]
    /// `latencyDistributionBuckets`: histogram bucket bounds in milliseconds (empty: daprd's).
    public var latencyBuckets: [Double]
    /// `recordErrorCodes`: count every API error by its `errorCode` (`dapr_error_code_total`).
    public var recordErrorCodes: Bool
    /// `seriesLimit` (Mecha): the most label sets any one metric keeps; beyond it, the values of
    /// its unbounded labels fold into `_other`.
    public var seriesLimit: Int

    public static let defaultSeriesLimit = 1000

    public init(
        enabled: Bool = true,
        increasedCardinality: Bool = false,
        pathMatching: [String] = [],
        excludeVerbs: Bool = false,
        rules: [MetricRule] = [],
        latencyBuckets: [Double] = [],
        recordErrorCodes: Bool = false,
        seriesLimit: Int = MetricsSpec.defaultSeriesLimit
    ) {
        self.enabled = enabled
        self.increasedCardinality = increasedCardinality
        self.pathMatching = pathMatching
        self.excludeVerbs = excludeVerbs
        self.rules = rules
        self.latencyBuckets = latencyBuckets
        self.recordErrorCodes = recordErrorCodes
        self.seriesLimit = seriesLimit
    }
}

/// One entry of `spec.metrics.rules`: for the metric `name`, what matches a regular expression in
/// a label's value is replaced (daprd's `ReplaceAllString`).
public struct MetricRule: Sendable, Hashable {
    public struct Label: Sendable, Hashable {
        /// Every match of `pattern` in a label value becomes `replacement`.
        public struct Rewrite: Sendable, Hashable {
            public var replacement: String
            public var pattern: String
            public init(replacement: String, pattern: String) {
                self.replacement = replacement
                self.pattern = pattern
            }
        }

        public var name: String
        /// Applied in the order the resource lists them.
        public var rewrites: [Rewrite]
        public init(name: String, rewrites: [Rewrite]) {
            self.name = name
            self.rewrites = rewrites
        }
    }

    public var name: String
    public var labels: [Label]
    public init(name: String, labels: [Label]) {
        self.name = name
        self.labels = labels
    }
}

/// `spec.logging.apiLogging` of a Configuration.
public struct APILoggingSpec: Sendable, Hashable {
    /// `enabled`: the default of `--enable-api-logging` (the flag, when given, wins).
    public var enabled: Bool?
    /// `obfuscateURLs`: log the route template (`/v1.0/state/{storeName}/{key}`), not the path.
    public var obfuscateURLs: Bool
    /// `omitHealthChecks`: health probes are not logged.
    public var omitHealthChecks: Bool

    public init(enabled: Bool? = nil, obfuscateURLs: Bool = false, omitHealthChecks: Bool = false) {
        self.enabled = enabled
        self.obfuscateURLs = obfuscateURLs
        self.omitHealthChecks = omitHealthChecks
    }
}

/// `spec.tracing` of a Configuration (daprd's fields).
public struct TracingSpec: Sendable, Hashable {
    /// `samplingRate`: "0" (record nothing, still propagate) to "1" (record every trace); daprd's
    /// default when the field is absent is 1 in 10 000.
    public var samplingRate: Double
    /// `stdout`: every recorded span is also written to the log.
    public var stdout: Bool
    /// `zipkin.endpointAddress`: Zipkin v2 JSON collector, e.g. `http://localhost:9411/api/v2/spans`.
    public var zipkinEndpoint: String?
    /// `otel`: an OpenTelemetry collector.
    public var otel: OTelExporterSpec?

    public static let defaultSamplingRate = 0.0001

    public init(samplingRate: Double = TracingSpec.defaultSamplingRate, stdout: Bool = false, zipkinEndpoint: String? = nil, otel: OTelExporterSpec? = nil) {
        self.samplingRate = samplingRate
        self.stdout = stdout
        self.zipkinEndpoint = zipkinEndpoint
        self.otel = otel
    }
}

/// `spec.tracing.otel`.
public struct OTelExporterSpec: Sendable, Hashable {
    public enum TransportProtocol: String, Sendable, Hashable {
        /// OTLP over gRPC (`/opentelemetry.proto.collector.trace.v1.TraceService/Export`).
        case grpc
        /// OTLP over HTTP with protobuf bodies (`POST /v1/traces`).
        case http
    }

    /// `endpointAddress`: `host:port` (or a URL for http).
    public var endpointAddress: String
    /// `isSecure`: TLS to the collector.
    public var isSecure: Bool
    public var transport: TransportProtocol
    /// `headers`: sent with every export (authentication tokens).
    public var headers: [(name: String, value: String)]
    /// `timeout`: the most one export may take.
    public var timeout: Duration

    public init(endpointAddress: String, isSecure: Bool = false, transport: TransportProtocol = .grpc, headers: [(name: String, value: String)] = [], timeout: Duration = .seconds(10)) {
        self.endpointAddress = endpointAddress
        self.isSecure = isSecure
        self.transport = transport
        self.headers = headers
        self.timeout = timeout
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.endpointAddress == rhs.endpointAddress && lhs.isSecure == rhs.isSecure && lhs.transport == rhs.transport
            && lhs.headers.map(\.name) == rhs.headers.map(\.name) && lhs.headers.map(\.value) == rhs.headers.map(\.value) && lhs.timeout == rhs.timeout
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.endpointAddress)
        hasher.combine(self.transport)
    }
}

/// The trace context of the API call the current task serves, as a W3C `traceparent` header:
/// set by the surfaces around a request's handling, read where spans start (component calls).
public enum TraceScope {
    @TaskLocal public static var traceParent: String?
}

/// Where the Dapr error code a call ends with is noted (`spec.metrics.recordErrorCodes`): a
/// surface that records error codes sets a sink around the call; where an `APIError` becomes the
/// caller's answer, its code is noted. Without a sink nothing is noted.
public enum ErrorCodeScope {
    @TaskLocal public static var sink: ErrorCodeSink?

    /// Notes `code` in the current sink, if any.
    @inline(__always)
    public static func note(_ code: String) {
        Self.sink?.note(code)
    }
}

/// The error code noted for one call (the last one noted wins: it is the one answered).
public final class ErrorCodeSink: Sendable {
    private let noted = Mutex<String?>(nil)

    public init() {}

    public func note(_ code: String) {
        self.noted.withLock { $0 = code }
    }

    public var code: String? { self.noted.withLock { $0 } }
}

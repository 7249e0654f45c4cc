/// A finished span, ready for export: a plain value the exporters encode (Zipkin JSON, OTLP).
///
/// Times are Unix-epoch nanoseconds taken from the wall clock when the span started and ended.
/// Attributes keep their insertion order; a repeated key is kept as given (encoders decide: Zipkin
/// tags keep the last, OTLP sends all).
public struct SpanRecord: Sendable {
    /// The span's role, as OpenTelemetry defines it.
    public enum Kind: Sendable, Hashable {
        case server
        case client
        case producer
        case consumer
        case `internal`
    }

    /// An attribute value (OpenTelemetry's primitive types).
    public enum AttributeValue: Sendable, Hashable {
        case string(String)
        case int(Int64)
        case double(Double)
        case bool(Bool)

        /// The value as text, as Zipkin tags carry it.
        public var stringValue: String {
            switch self {
            case .string(let value): value
            case .int(let value): String(value)
            case .double(let value): String(value)
            case .bool(let value): value ? "true" : "false"
            }
        }
    }

    /// The span's outcome.
    public enum Status: Sendable, Hashable {
        case unset
        case ok
        /// A failure, with a description when one is known.
        case error(message: String?)
    }

    /// Where the span was recorded, beyond the service name (Zipkin's `localEndpoint`).
    public struct Endpoint: Sendable, Hashable {
        /// The sidecar's IPv4 address, dotted.
        public var ipv4: String?
        /// The sidecar's IPv6 address.
        public var ipv6: String?
        /// The port the span was served on (or sent from).
        public var port: Int?

        /// An endpoint; every part is optional.
        public init(ipv4: String? = nil, ipv6: String? = nil, port: Int? = nil) {
            self.ipv4 = ipv4
            self.ipv6 = ipv6
            self.port = port
        }
    }

    /// The trace this span belongs to.
    public var traceID: TraceID
    /// This span's id.
    public var spanID: SpanID
    /// `nil` for a root span.
    public var parentSpanID: SpanID?
    /// The W3C `tracestate` in force when the span ran (`""` for none).
    public var traceState: String
    /// W3C trace flags (a recorded span is normally sampled: `0x01`).
    public var traceFlags: UInt8
    /// The operation, e.g. `CallLocal/orders/neworder` or `/dapr.proto.runtime.v1.Dapr/GetState`.
    public var name: String
    /// The span's role (server for inbound calls, client for outbound).
    public var kind: Kind
    /// Start, in nanoseconds since the Unix epoch.
    public var startUnixNanos: UInt64
    /// End, in nanoseconds since the Unix epoch.
    public var endUnixNanos: UInt64
    /// Key/value attributes in the order they were set.
    public var attributes: [(String, AttributeValue)]
    /// The outcome; `.unset` unless the handler decided.
    public var status: Status
    /// The app id: Zipkin's `localEndpoint.serviceName`, OTLP's `service.name` resource attribute.
    public var serviceName: String
    /// Address details for Zipkin's `localEndpoint`; OTLP ignores them.
    public var localEndpoint: Endpoint?

    /// A finished span; the defaults describe a sampled root span with no attributes.
    public init(
        traceID: TraceID,
        spanID: SpanID,
        parentSpanID: SpanID? = nil,
        traceState: String = "",
        traceFlags: UInt8 = TraceParent.sampledFlag,
        name: String,
        kind: Kind,
        startUnixNanos: UInt64,
        endUnixNanos: UInt64,
        attributes: [(String, AttributeValue)] = [],
        status: Status = .unset,
        serviceName: String,
        localEndpoint: Endpoint? = nil
    ) {
        self.traceID = traceID
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.traceState = traceState
        self.traceFlags = traceFlags
        self.name = name
        self.kind = kind
        self.startUnixNanos = startUnixNanos
        self.endUnixNanos = endUnixNanos
        self.attributes = attributes
        self.status = status
        self.serviceName = serviceName
        self.localEndpoint = localEndpoint
    }

    /// The span's own context, as it would be sent to a callee.
    public var context: TraceParent {
        TraceParent(traceID: self.traceID, spanID: self.spanID, flags: self.traceFlags)
    }

    /// End minus start, zero if the clock stepped backwards.
    public var durationNanos: UInt64 {
        self.endUnixNanos >= self.startUnixNanos ? self.endUnixNanos - self.startUnixNanos : 0
    }
}

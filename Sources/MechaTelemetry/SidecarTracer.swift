#if canImport(Glibc)
import Glibc
#endif
public import MechaCore
public import MechaResiliency
import Synchronization

/// The sidecar's tracer (`spec.tracing`): starts spans at the seams, decides sampling (daprd's
/// parent-based ratio), and hands finished sampled spans to a bounded queue that an export loop
/// drains off the request path. A full queue drops spans (counted), never blocks a request.
///
/// Spans follow daprd's shapes: one per inbound API call (CLIENT kind, named by the path or
/// `CallLocal/<app>/<method>`), one per invocation received from another sidecar (SERVER,
/// `CallLocal/<app>/<method>`), one per pub/sub delivery (`pubsub/<topic>`), and one per component
/// call made for an API call (`<block>/<component>/<operation>`, with `db.*` or `messaging.*`).
public final class SidecarTracer: CallTracer {
    public let appID: String
    public let sampler: TraceSampler
    public let queue: SpanQueue
    /// The latest failed or slow API-level spans (what `mecha dashboard` lists per sidecar).
    private let problems = Mutex<[SpanRecord]>([])
    public static let slowSpan: UInt64 = 500_000_000
    static let keptProblems = 50

    public init(appID: String, samplingRate: Double, queue: SpanQueue = SpanQueue()) {
        self.appID = appID
        self.sampler = TraceSampler(rate: samplingRate)
        self.queue = queue
    }

    /// The latest failed or slow (≥ 500 ms) recorded spans of inbound calls, newest first, as
    /// JSON for the metrics port's `/debug/traces`.
    public func recentProblems() -> JSONValue {
        let spans = self.problems.withLock { $0 }
        return .array(
            spans.reversed().map { span in
                var message: JSONValue = .null
                var status = "ok"
                if case .error(let text) = span.status {
                    status = "error"
                    message = text.map { .string($0) } ?? .null
                }
                return .object([
                    ("traceID", .string(span.traceID.hex)), ("spanID", .string(span.spanID.hex)), ("name", .string(span.name)),
                    ("durationMs", .number(String(Double(span.durationNanos) / 1_000_000))), ("status", .string(status)), ("message", message),
                    ("time", .string(Timestamp(seconds: Int64(span.startUnixNanos / 1_000_000_000), nanoseconds: Int32(span.startUnixNanos % 1_000_000_000)).rfc3339Nano)),
                ])
            })
    }

    /// A span continuing `incoming` (a `traceparent` header, ignored unless valid) or starting a
    /// trace. Unsampled spans still carry a fresh context for propagation, and record nothing.
    /// The name is only made for a span that records.
    public func start(name: @autoclosure () -> String, kind: SpanRecord.Kind, incoming: String?, traceState: String? = nil) -> TracedSpan {
        let parent = incoming.flatMap { TraceParent(parsing: $0) }
        let context: TraceParent
        // Ids from MechaCore's fast generator: a system call per span would show on the hot path.
        var random = FastRandomGenerator()
        if let parent {
            context = parent.child(sampled: self.sampler.sample(parent: parent, traceID: parent.traceID), using: &random)
        } else {
            let fresh = TraceParent.random(sampled: false, using: &random)
            context = TraceParent(traceID: fresh.traceID, spanID: fresh.spanID, flags: self.sampler.sample(parent: nil, traceID: fresh.traceID) ? TraceParent.sampledFlag : 0)
        }
        guard context.isSampled else {
            return TracedSpan(tracer: self, context: context, parent: parent?.spanID, traceState: "", name: "", kind: kind)
        }
        let state = traceState.flatMap { TraceState(parsing: $0)?.header } ?? ""
        return TracedSpan(tracer: self, context: context, parent: parent?.spanID, traceState: state, name: name(), kind: kind)
    }

    // MARK: CallTracer (the outbound seam, deliveries)

    public func startCall(_ target: PolicyTarget, _ operation: OperationName) -> (any CallSpan)? {
        guard let header = TraceScope.traceParent, let parent = TraceParent(parsing: header), parent.isSampled else { return nil }
        guard case .component(let name, let category, .outbound) = target else { return nil }
        let span: TracedSpan
        if category == .pubsub {
            span = TracedSpan(tracer: self, context: parent.childSpan(), parent: parent.spanID, traceState: "", name: "pubsub/\(name)/\(operation.name)", kind: .producer)
            span.set("messaging.system", "pubsub")
            span.set("messaging.destination.name", operation.subject ?? "")
        } else {
            span = TracedSpan(tracer: self, context: parent.childSpan(), parent: parent.spanID, traceState: "", name: "\(category.rawValue)/\(name)/\(operation.name)", kind: .client)
            span.set("db.system", Self.dbSystem(category))
            span.set("db.name", name)
            span.set("db.operation", operation.subject ?? operation.name)
        }
        return span
    }

    public func startDelivery(name: String, traceParent: String?, attributes: [(String, String)]) -> (any CallSpan)? {
        let span = self.start(name: name, kind: .client, incoming: traceParent)
        for (key, value) in attributes { span.set(key, value) }
        return span
    }

    static func dbSystem(_ category: ComponentCategory) -> String {
        switch category {
        case .secretstores: "secrets"
        case .bindings: "bindings"
        default: category.rawValue
        }
    }

    /// Nanoseconds since the Unix epoch.
    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    func finish(_ record: SpanRecord) {
        _ = self.queue.enqueue(record)
        // Kept for the dashboard: failed or slow spans of inbound calls (the cheap tests first:
        // this runs for every recorded span).
        var failed = false
        if case .error = record.status { failed = true }
        guard failed || record.durationNanos >= Self.slowSpan else { return }
        guard record.kind == .server || record.kind == .client, record.parentSpanID == nil || record.name.hasPrefix("/") || record.name.hasPrefix("CallLocal/") else { return }
        self.problems.withLock { problems in
            problems.append(record)
            if problems.count > Self.keptProblems { problems.removeFirst(problems.count - Self.keptProblems) }
        }
    }
}

extension TraceParent {
    /// A sampled child with an id from the fast generator.
    fileprivate func childSpan() -> TraceParent {
        var random = FastRandomGenerator()
        return self.child(sampled: true, using: &random)
    }
}

/// One span in progress. Attributes may be added until it ends; it ends once.
public final class TracedSpan: CallSpan, @unchecked Sendable {
    private struct State {
        var attributes: [(String, SpanRecord.AttributeValue)]
        var name: String
        var ended = false

        init(name: String, recording: Bool) {
            self.name = name
            self.attributes = []
            // An API span carries about eight attributes: one allocation instead of four.
            if recording { self.attributes.reserveCapacity(8) }
        }
    }

    /// This span's own context (its id, the trace's id, the sampling decision).
    public let context: TraceParent
    let parent: SpanID?
    let traceState: String
    let kind: SpanRecord.Kind
    let start: UInt64
    private let tracer: SidecarTracer
    private let state: Mutex<State>

    init(tracer: SidecarTracer, context: TraceParent, parent: SpanID?, traceState: String, name: String, kind: SpanRecord.Kind) {
        self.tracer = tracer
        self.context = context
        self.parent = parent
        self.traceState = traceState
        self.kind = kind
        self.start = context.isSampled ? SidecarTracer.now() : 0
        self.state = Mutex(State(name: name, recording: context.isSampled))
    }

    /// Adds several attributes at once (one lock); nothing when the span is not recorded.
    public func set(_ attributes: KeyValuePairs<String, String>) {
        guard self.isRecording else { return }
        self.state.withLock { state in
            for (key, value) in attributes { state.attributes.append((key, .string(value))) }
        }
    }

    public var isRecording: Bool { self.context.isSampled }
    public var traceParent: String { self.context.header }

    public func set(_ key: String, _ value: String) {
        guard self.isRecording else { return }
        self.state.withLock { $0.attributes.append((key, .string(value))) }
    }

    public func set(_ key: String, _ value: Int) {
        guard self.isRecording else { return }
        self.state.withLock { $0.attributes.append((key, .int(Int64(value)))) }
    }

    public func rename(_ name: String) {
        self.state.withLock { $0.name = name }
    }

    public func end(error: String?) {
        self.end(status: error.map { .error(message: $0) } ?? .unset)
    }

    /// Ends with daprd's status for an HTTP answer: an error from 400 up.
    public func end(httpStatus: Int) {
        self.set("dapr.status_code", httpStatus)
        self.end(status: httpStatus >= 400 ? .error(message: "Code(\(httpStatus)): \(HTTPStatusText.text(for: httpStatus))") : .unset)
    }

    public func end(status: SpanRecord.Status) {
        // An unsampled span records nothing: no lock, no record.
        guard self.isRecording else { return }
        let taken = self.state.withLock { state -> State? in
            guard !state.ended else { return nil }
            state.ended = true
            return state
        }
        guard let state = taken else { return }
        self.tracer.finish(
            SpanRecord(
                traceID: self.context.traceID, spanID: self.context.spanID, parentSpanID: self.parent, traceState: self.traceState,
                traceFlags: self.context.flags, name: state.name, kind: self.kind, startUnixNanos: self.start,
                endUnixNanos: max(SidecarTracer.now(), self.start + 1000), attributes: state.attributes, status: status,
                serviceName: self.tracer.appID))
    }
}

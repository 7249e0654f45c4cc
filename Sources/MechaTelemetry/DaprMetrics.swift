public import CoreMetrics
public import Prometheus
public import MechaCore
public import MechaResiliency
import Synchronization

/// Dapr's metrics (names, label keys and units as daprd exports them: `pkg/diagnostics`), recorded
/// by the sidecar's seams: the HTTP and gRPC surfaces, the outbound seam (components, invocation),
/// the sidecar-to-sidecar listener and startup. Latencies are in milliseconds, sizes in bytes.
public final class DaprMetrics: Sendable {
    public let registry: MetricsRegistry
    public let appID: String
    public let namespace: String
    let spec: MetricsSpec
    let paths: HTTPPathLabeler

    // HTTP server (the Dapr HTTP API).
    let httpServerCount: MetricFamily<Prometheus.Counter>
    let httpServerResponseCount: MetricFamily<Prometheus.Counter>?
    let httpServerLatency: MetricFamily<LockFreeHistogram>
    let httpServerRequestBytes: LockFreeHistogram
    let httpServerResponseBytes: LockFreeHistogram
    // gRPC server (the Dapr gRPC API and proxied calls).
    let grpcServerCompleted: MetricFamily<Prometheus.Counter>
    let grpcServerLatency: MetricFamily<LockFreeHistogram>
    // HTTP client (the sidecar calling its app).
    let httpClientCompleted: MetricFamily<Prometheus.Counter>
    let httpClientLatency: MetricFamily<LockFreeHistogram>
    let httpClientSentBytes: LockFreeHistogram
    let httpClientReceivedBytes: LockFreeHistogram
    // Service invocation.
    let invocationRequestsSent: MetricFamily<Prometheus.Counter>
    let invocationResponsesReceived: MetricFamily<Prometheus.Counter>
    let invocationLatency: MetricFamily<LockFreeHistogram>
    let invocationRequestsReceived: MetricFamily<Prometheus.Counter>
    let invocationResponsesSent: MetricFamily<Prometheus.Counter>
    // Components.
    let componentCounts: [ComponentCategory: (count: MetricFamily<Prometheus.Counter>, latency: MetricFamily<LockFreeHistogram>)]
    let pubsubEgressCount: MetricFamily<Prometheus.Counter>
    let pubsubEgressLatency: MetricFamily<LockFreeHistogram>
    let pubsubEgressBulkCount: MetricFamily<Prometheus.Counter>
    let pubsubEgressBulkLatency: MetricFamily<LockFreeHistogram>
    let pubsubIngressCount: MetricFamily<Prometheus.Counter>
    let pubsubIngressLatency: MetricFamily<LockFreeHistogram>
    let inputBindingCount: MetricFamily<Prometheus.Counter>
    let inputBindingLatency: MetricFamily<LockFreeHistogram>
    // Runtime.
    let componentLoaded: MetricFamily<Prometheus.Counter>
    let actorActivations: MetricFamily<Prometheus.Counter>
    let actorDeactivations: MetricFamily<Prometheus.Counter>
    let actorRebalances: MetricFamily<Prometheus.Counter>
    let remindersFired: MetricFamily<Prometheus.Counter>
    let timersFired: MetricFamily<Prometheus.Counter>
    let componentInit: MetricFamily<Prometheus.Counter>
    let componentInitFail: MetricFamily<Prometheus.Counter>
    let resiliencyLoaded: MetricFamily<Prometheus.Counter>
    let resiliencyCount: MetricFamily<Prometheus.Counter>
    let resiliencyActivations: MetricFamily<Prometheus.Counter>
    let resiliencyBreakerState: MetricFamily<CoreMetrics.Gauge>
    let errorCodes: MetricFamily<Prometheus.Counter>?
    // Hot-path caches of series by a short key.
    let httpSeries: SeriesCache<ExchangeKey, HTTPServerSeries>
    let invocationSeries: SeriesCache<SeriesKey, InvocationSeries>
    let httpClientSeries: SeriesCache<SeriesKey, HTTPClientSeries>
    let resiliencySeries: SeriesCache<String, Prometheus.Counter>
    let hotReloads: MetricFamily<Prometheus.Counter>

    public init(appID: String, namespace: String, spec: MetricsSpec = MetricsSpec()) {
        let latency = spec.latencyBuckets.isEmpty ? DaprBuckets.latencyMilliseconds : spec.latencyBuckets
        let sizes = [
            "dapr_http_server_request_bytes", "dapr_http_server_response_bytes", "dapr_http_client_sent_bytes", "dapr_http_client_received_bytes",
        ]
        let registry = MetricsRegistry(
            seriesLimit: spec.seriesLimit,
            rules: spec.rules,
            histogramBuckets: Dictionary(uniqueKeysWithValues: sizes.map { ($0, DaprBuckets.sizeBytes) }),
            defaultBuckets: latency
        )
        self.registry = registry
        self.appID = appID
        self.namespace = namespace
        self.spec = spec
        self.paths = HTTPPathLabeler(spec: spec)

        let http = ["app_id", "method", "path", "status"]
        self.httpServerCount = registry.counter("dapr_http_server_request_count", labels: http, unbounded: ["path", "method"])
        self.httpServerResponseCount =
            spec.increasedCardinality ? registry.counter("dapr_http_server_response_count", labels: http, unbounded: ["path", "method"]) : nil
        self.httpServerLatency = registry.histogram("dapr_http_server_latency", labels: http, unbounded: ["path", "method"])
        self.httpServerRequestBytes = registry.histogram("dapr_http_server_request_bytes", labels: ["app_id"])([appID])
        self.httpServerResponseBytes = registry.histogram("dapr_http_server_response_bytes", labels: ["app_id"])([appID])

        let grpc = ["app_id", "grpc_server_method", "grpc_server_status"]
        self.grpcServerCompleted = registry.counter("dapr_grpc_io_server_completed_rpcs", labels: grpc, unbounded: ["grpc_server_method"])
        self.grpcServerLatency = registry.histogram("dapr_grpc_io_server_server_latency", labels: grpc, unbounded: ["grpc_server_method"])

        // daprd's labels for the app channel; `method` and `path` as on the server side.
        self.httpClientCompleted = registry.counter("dapr_http_client_completed_count", labels: http, unbounded: ["path", "method"])
        self.httpClientLatency = registry.histogram("dapr_http_client_roundtrip_latency", labels: http, unbounded: ["path", "method"])
        self.httpClientSentBytes = registry.histogram("dapr_http_client_sent_bytes", labels: ["app_id"])([appID])
        self.httpClientReceivedBytes = registry.histogram("dapr_http_client_received_bytes", labels: ["app_id"])([appID])

        self.invocationRequestsSent = registry.counter(
            "dapr_runtime_service_invocation_req_sent_total", labels: ["app_id", "dst_app_id", "type"], unbounded: ["dst_app_id"])
        self.invocationResponsesReceived = registry.counter(
            "dapr_runtime_service_invocation_res_recv_total", labels: ["app_id", "src_app_id", "status", "type"], unbounded: ["src_app_id"])
        self.invocationLatency = registry.histogram(
            "dapr_runtime_service_invocation_res_recv_latency_ms", labels: ["app_id", "src_app_id", "status"], unbounded: ["src_app_id"])
        self.invocationRequestsReceived = registry.counter(
            "dapr_runtime_service_invocation_req_recv_total", labels: ["app_id", "src_app_id"], unbounded: ["src_app_id"])
        self.invocationResponsesSent = registry.counter(
            "dapr_runtime_service_invocation_res_sent_total", labels: ["app_id", "dst_app_id", "status"], unbounded: ["dst_app_id"])

        let component = ["app_id", "component", "namespace", "operation", "success"]
        var counts: [ComponentCategory: (MetricFamily<Prometheus.Counter>, MetricFamily<LockFreeHistogram>)] = [:]
        for (category, name) in [
            (ComponentCategory.state, "state"), (.configuration, "configuration"), (.secretstores, "secret"), (.crypto, "crypto"),
            (.bindings, "output_binding"),
        ] {
            counts[category] = (
                registry.counter("dapr_component_\(name)_count", labels: component, unbounded: ["component"]),
                registry.histogram("dapr_component_\(name)_latencies", labels: component, unbounded: ["component"])
            )
        }
        let conversation = ["app_id", "component", "namespace", "success"]
        counts[.conversation] = (
            registry.counter("dapr_component_conversation_count", labels: conversation, unbounded: ["component"]),
            registry.histogram("dapr_component_conversation_latencies", labels: conversation, unbounded: ["component"])
        )
        self.componentCounts = counts
        let egress = ["app_id", "component", "namespace", "success", "topic"]
        self.pubsubEgressCount = registry.counter("dapr_component_pubsub_egress_count", labels: egress, unbounded: ["component", "topic"])
        self.pubsubEgressLatency = registry.histogram("dapr_component_pubsub_egress_latencies", labels: egress, unbounded: ["component", "topic"])
        self.pubsubEgressBulkCount = registry.counter("dapr_component_pubsub_egress_bulk_count", labels: egress, unbounded: ["component", "topic"])
        self.pubsubEgressBulkLatency = registry.histogram(
            "dapr_component_pubsub_egress_bulk_latencies", labels: egress, unbounded: ["component", "topic"])
        let ingress = ["app_id", "component", "namespace", "process_status", "topic", "status"]
        self.pubsubIngressCount = registry.counter("dapr_component_pubsub_ingress_count", labels: ingress, unbounded: ["component", "topic"])
        self.pubsubIngressLatency = registry.histogram(
            "dapr_component_pubsub_ingress_latencies", labels: ingress, unbounded: ["component", "topic"])
        let input = ["app_id", "component", "namespace", "success"]
        self.inputBindingCount = registry.counter("dapr_component_input_binding_count", labels: input, unbounded: ["component"])
        self.inputBindingLatency = registry.histogram("dapr_component_input_binding_latencies", labels: input, unbounded: ["component"])

        self.componentLoaded = registry.counter("dapr_runtime_component_loaded", labels: ["app_id"])
        self.actorActivations = registry.counter("mecha_actor_activated_total", labels: ["app_id", "actor_type"])
        self.actorDeactivations = registry.counter("dapr_runtime_actor_deactivated_total", labels: ["app_id", "actor_type"])
        self.actorRebalances = registry.counter("dapr_runtime_actor_rebalanced_total", labels: ["app_id", "actor_type"])
        self.remindersFired = registry.counter("dapr_runtime_actor_reminders_fired_total", labels: ["app_id", "actor_type", "success"])
        self.timersFired = registry.counter("dapr_runtime_actor_timers_fired_total", labels: ["app_id", "actor_type", "success"])
        self.componentInit = registry.counter("dapr_runtime_component_init_total", labels: ["app_id", "component"], unbounded: ["component"])
        self.componentInitFail = registry.counter(
            "dapr_runtime_component_init_fail_total", labels: ["app_id", "component", "reason", "componentName"], unbounded: ["component", "componentName"])
        self.resiliencyLoaded = registry.counter("dapr_resiliency_loaded", labels: ["app_id", "name", "namespace"], unbounded: ["name"])
        let resiliency = ["app_id", "name", "policy", "namespace", "flow_direction", "target", "status"]
        self.resiliencyCount = registry.counter("dapr_resiliency_count", labels: resiliency, unbounded: ["name", "target"])
        self.resiliencyActivations = registry.counter("dapr_resiliency_activations_total", labels: resiliency, unbounded: ["name", "target"])
        self.resiliencyBreakerState = registry.gauge("dapr_resiliency_cb_state", labels: resiliency, unbounded: ["name", "target"])
        self.errorCodes =
            spec.recordErrorCodes
            ? registry.counter("dapr_error_code_total", labels: ["app_id", "error_code", "category"], unbounded: ["error_code"]) : nil
        self.httpSeries = SeriesCache(limit: spec.seriesLimit * 2)
        self.invocationSeries = SeriesCache(limit: spec.seriesLimit * 2)
        self.httpClientSeries = SeriesCache(limit: spec.seriesLimit * 2)
        self.resiliencySeries = SeriesCache(limit: spec.seriesLimit * 2)
        self.hotReloads = registry.counter("mecha_hot_reloads_total", labels: ["app_id", "resource", "outcome"], unbounded: ["resource"])
        ProcessMetrics.install(on: registry)
    }

    /// The exposition in Prometheus's text format.
    public func scrape() -> [UInt8] { self.registry.scrape() }

    /// daprd truncates elapsed time to whole milliseconds.
    @inline(__always)
    public static func milliseconds(_ elapsed: Duration) -> Double {
        let (seconds, attoseconds) = elapsed.components
        return Double(seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }

    // MARK: Surfaces

    /// One answered request on the Dapr HTTP API; `invokeTarget`: the app it invoked (by URL or
    /// `dapr-app-id` header), for the caller's side of service invocation.
    public func httpServer(
        method: String, path: Substring, status: Int, elapsed: Duration, requestBytes: Int, responseBytes: Int, invokeTarget: String? = nil
    ) {
        let verb = self.verb(method)
        let pathLabel = self.paths.label(path)
        // One lookup of a short key finds the series of every metric the exchange feeds (the
        // families, with their budget, are only asked the first time).
        let series = self.httpSeries.get(ExchangeKey(verb: verb, status: status, path: pathLabel, target: invokeTarget)) {
            let labels = [self.appID, verb, pathLabel, String(status)]
            return HTTPServerSeries(
                count: self.httpServerCount(labels), response: self.httpServerResponseCount?(labels), latency: self.httpServerLatency(labels),
                invocation: invokeTarget.map { self.invocationSeries(to: $0, status: status, streaming: false) })
        }
        let milliseconds = Self.milliseconds(elapsed)
        series.count.increment()
        series.response?.increment()
        series.latency.record(milliseconds)
        self.httpServerRequestBytes.record(requestBytes)
        self.httpServerResponseBytes.record(responseBytes)
        if let invocation = series.invocation {
            invocation.sent.increment()
            invocation.received.increment()
            invocation.latency.record(milliseconds)
        }
    }

    /// The sidecar called its app over HTTP (daprd's app channel metrics): `status` is the
    /// answer's (500 when none came), `elapsed` runs until the answer's head arrived; `path` is the
    /// app's route without its leading slash (`orders/1`).
    public func httpClient(method: String, path: Substring, status: Int, elapsed: Duration, sentBytes: Int, receivedBytes: Int) {
        let verb = self.verb(method)
        // Without templates or increased cardinality the app's route is not a label: skip it.
        let pathLabel = self.paths.labelsClientPaths ? self.paths.label(path, clientSide: true) : ""
        let series = self.httpClientSeries.get(SeriesKey(verb, status, pathLabel)) {
            let labels = [self.appID, verb, pathLabel, String(status)]
            return HTTPClientSeries(completed: self.httpClientCompleted(labels), latency: self.httpClientLatency(labels))
        }
        series.completed.increment()
        series.latency.record(Self.milliseconds(elapsed))
        self.httpClientSentBytes.record(sentBytes)
        self.httpClientReceivedBytes.record(receivedBytes)
    }

    /// One finished call on the gRPC API (`method` is `/package.Service/Method`; `status` as gRPC
    /// writes the code: `OK`, `NotFound`, …).
    public func grpcServer(method: String, status: String, elapsed: Duration) {
        let labels = [self.appID, method, status]
        self.grpcServerCompleted(labels).increment()
        self.grpcServerLatency(labels).record(Self.milliseconds(elapsed))
    }

    /// Whether API errors are counted (`recordErrorCodes`).
    public var recordsErrorCodes: Bool { self.errorCodes != nil }

    /// An API error answered to a caller (only with `recordErrorCodes`).
    public func errorCode(_ code: String, category: String) {
        self.errorCodes?([self.appID, code, category]).increment()
    }

    // MARK: Service invocation

    /// The caller's side: a request sent to `target` and how it ended (`status` the HTTP status,
    /// or 500 when no answer came).
    public func invocationSent(to target: String, status: Int, elapsed: Duration, streaming: Bool = false) {
        let series = self.invocationSeries.get(SeriesKey(streaming ? "s" : "u", status, target)) {
            self.invocationSeries(to: target, status: status, streaming: streaming)
        }
        series.sent.increment()
        series.received.increment()
        series.latency.record(Self.milliseconds(elapsed))
    }

    private func invocationSeries(to target: String, status: Int, streaming: Bool) -> InvocationSeries {
        let type = streaming ? "streaming" : "unary"
        let code = String(status)
        return InvocationSeries(
            sent: self.invocationRequestsSent([self.appID, target, type]),
            received: self.invocationResponsesReceived([self.appID, target, code, type]),
            latency: self.invocationLatency([self.appID, target, code]))
    }

    /// The callee's side: a request from `caller`'s sidecar, answered with `status`.
    public func invocationReceived(from caller: String, status: Int) {
        self.invocationRequestsReceived([self.appID, caller]).increment()
        self.invocationResponsesSent([self.appID, caller, String(status)]).increment()
    }

    // MARK: Components and runtime

    /// A pub/sub delivery to the app ended with `processStatus` (`success`, `retry`, `drop`);
    /// `appDropped`: the app answered DROP (daprd's `status` is then `success`).
    public func pubsubIngress(component: String, topic: String, processStatus: String, appDropped: Bool = false, elapsed: Duration) {
        let labels = [self.appID, component, self.namespace, processStatus, topic, appDropped ? "success" : processStatus]
        self.pubsubIngressCount(labels).increment()
        self.pubsubIngressLatency(labels).record(Self.milliseconds(elapsed))
    }

    /// A component was built and initialised (`type` as `state.redis`).
    // MARK: Actors

    /// daprd's actor metrics: deactivations, rebalances, reminders and timers fired; Mecha adds
    /// activations.
    public func actorActivated(type: String) {
        self.actorActivations([self.appID, type]).increment()
    }

    public func actorDeactivated(type: String, rebalanced: Bool) {
        self.actorDeactivations([self.appID, type]).increment()
        if rebalanced { self.actorRebalances([self.appID, type]).increment() }
    }

    public func reminderFired(type: String, success: Bool) {
        self.remindersFired([self.appID, type, success ? "true" : "false"]).increment()
    }

    public func timerFired(type: String, success: Bool) {
        self.timersFired([self.appID, type, success ? "true" : "false"]).increment()
    }

    public func componentInitialized(type: String) {
        self.componentLoaded([self.appID]).increment()
        self.componentInit([self.appID, type]).increment()
    }

    /// A component failed to build (`reason` `creation`) or initialise (`init`).
    public func componentFailed(type: String, name: String, reason: String) {
        self.componentInitFail([self.appID, type, reason, name]).increment()
    }

    /// A Resiliency resource applies to this sidecar.
    public func resiliencyLoaded(name: String) {
        self.resiliencyLoaded([self.appID, name, self.namespace]).increment()
    }

    /// The tracing pipeline's figures, read at scrape time: spans dropped because the export
    /// queue was full, spans exported, exports that failed.
    public func tracingFigures(dropped: @escaping @Sendable () -> Int, exported: @escaping @Sendable () -> Int, failedExports: @escaping @Sendable () -> Int) {
        let droppedGauge = self.registry.gauge("mecha_tracing_spans_dropped_total", labels: ["app_id"])([self.appID])
        let exportedGauge = self.registry.gauge("mecha_tracing_spans_exported_total", labels: ["app_id"])([self.appID])
        let failedGauge = self.registry.gauge("mecha_tracing_export_failures_total", labels: ["app_id"])([self.appID])
        self.registry.onScrape {
            droppedGauge.record(dropped())
            exportedGauge.record(exported())
            failedGauge.record(failedExports())
        }
    }

    /// A hot reload of `resource` (`Component/<name>`, or `files` when the files could not be
    /// read) ended with `outcome`: `added`, `changed`, `removed` or `failed`.
    public func hotReload(resource: String, outcome: String) {
        self.hotReloads([self.appID, resource, outcome]).increment()
    }

    /// The mTLS figures, read at scrape time: handshakes the sidecar-to-sidecar listeners refused
    /// by reason (`no_certificate`, `untrusted_certificate`, `not_tls`, `handshake_failed`), and
    /// certificate renewals that failed.
    public func mtlsFigures(refused: @escaping @Sendable () -> [String: Int], renewalFailures: @escaping @Sendable () -> Int) {
        let refusedFamily = self.registry.gauge("mecha_mtls_refused_handshakes_total", labels: ["app_id", "reason"])
        let reasons = ["no_certificate", "untrusted_certificate", "not_tls", "handshake_failed", "wrong_server_identity"]
        let refusedGauges = Dictionary(uniqueKeysWithValues: reasons.map { ($0, refusedFamily([self.appID, $0])) })
        let renewalGauge = self.registry.gauge("mecha_mtls_renewal_failures_total", labels: ["app_id"])([self.appID])
        self.registry.onScrape {
            let counts = refused()
            for (reason, gauge) in refusedGauges { gauge.record(counts[reason] ?? 0) }
            renewalGauge.record(renewalFailures())
        }
    }

    // MARK: Labels

    /// daprd's `method` label: the verb, `UNKNOWN` for anything non-standard, "" with `excludeVerbs`.
    func verb(_ method: String) -> String {
        if self.spec.excludeVerbs { return "" }
        switch method {
        case "GET", "PUT", "POST", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE": return method
        default: return "UNKNOWN"
        }
    }
}

extension DaprMetrics: OutboundObserver {
    public func completed(_ target: PolicyTarget, _ operation: OperationName, elapsed: Duration, error: (any Error)?) {
        guard case .component(let name, let category, let direction) = target else { return }
        let success = error == nil ? "true" : "false"
        let milliseconds = Self.milliseconds(elapsed)
        switch (category, direction) {
        case (.pubsub, .outbound):
            let labels = [self.appID, name, self.namespace, success, operation.subject ?? ""]
            if operation.name == "bulkPublish" {
                self.pubsubEgressBulkCount(labels).increment()
                self.pubsubEgressBulkLatency(labels).record(milliseconds)
            } else {
                self.pubsubEgressCount(labels).increment()
                self.pubsubEgressLatency(labels).record(milliseconds)
            }
        case (.bindings, .inbound):
            let labels = [self.appID, name, self.namespace, success]
            self.inputBindingCount(labels).increment()
            self.inputBindingLatency(labels).record(milliseconds)
        case (.conversation, _):
            guard let (count, latency) = self.componentCounts[.conversation] else { return }
            let labels = [self.appID, name, self.namespace, success]
            count(labels).increment()
            latency(labels).record(milliseconds)
        case (_, .outbound):
            guard let (count, latency) = self.componentCounts[category] else { return }
            let labels = [self.appID, name, self.namespace, category == .bindings ? (operation.subject ?? operation.name) : Self.operationLabel(operation.name, category: category), success]
            count(labels).increment()
            latency(labels).record(milliseconds)
        default:
            return
        }
    }

    public func delivered(pubsub: String, topic: String, result: DeliveryVerdict, elapsed: Duration) {
        self.pubsubIngress(component: pubsub, topic: topic, processStatus: result.rawValue, appDropped: result == .drop, elapsed: elapsed)
    }

    public func invoked(app: String, status: Int, elapsed: Duration) {
        self.invocationSent(to: app, status: status, elapsed: elapsed)
    }

    public func appCalled(_ call: AppCall) {
        // The route is only worked out when it can be a label.
        self.httpClient(method: call.method, path: self.paths.labelsClientPaths ? call.path : "", status: call.status, elapsed: call.elapsed, sentBytes: call.sentBytes, receivedBytes: call.receivedBytes)
    }

    /// daprd's operation values (`bulk_get`, `transaction`, `crypto_op`, …).
    static func operationLabel(_ name: String, category: ComponentCategory) -> String {
        switch (category, name) {
        case (.state, "bulkGet"), (.secretstores, "bulkGet"): "bulk_get"
        case (.state, "transact"): "transaction"
        case (.state, "bulkDelete"): "bulk_delete"
        case (.crypto, "getKey"): "get"
        case (.crypto, _): "crypto_op"
        default: name
        }
    }
}

struct HTTPServerSeries: Sendable {
    var count: Prometheus.Counter
    var response: Prometheus.Counter?
    var latency: LockFreeHistogram
    /// The caller's side of service invocation, when the exchange invoked an app.
    var invocation: InvocationSeries?
}

/// The key of an API exchange's series: its labels, and the app it invoked if any.
struct ExchangeKey: Hashable, Sendable {
    var verb: String
    var status: Int
    var path: String
    var target: String?
}

struct HTTPClientSeries: Sendable {
    var completed: Prometheus.Counter
    var latency: LockFreeHistogram
}

struct InvocationSeries: Sendable {
    var sent: Prometheus.Counter
    var received: Prometheus.Counter
    var latency: LockFreeHistogram
}

/// What a hot-path series cache is keyed by: two texts and a status (no string built per request).
struct SeriesKey: Hashable, Sendable {
    var first: String
    var status: Int
    var second: String
    init(_ first: String, _ status: Int, _ second: String) {
        self.first = first
        self.status = status
        self.second = second
    }
}

/// Series bundles by a short key, so a request costs one lookup instead of one per metric.
/// Bounded: past `limit` keys, bundles are made each time (through the families, whose budget
/// then folds the labels) and not kept.
final class SeriesCache<Key: Hashable & Sendable, Bundle: Sendable>: Sendable {
    private let entries = Mutex<[Key: Bundle]>([:])
    let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    func get(_ key: Key, make: () -> Bundle) -> Bundle {
        if let found = self.entries.withLock({ $0[key] }) { return found }
        let made = make()
        self.entries.withLock { entries in
            if entries.count < self.limit { entries[key] = made }
        }
        return made
    }
}

extension DaprMetrics: ResiliencyObserver {
    /// daprd's breaker states, each a series of `dapr_resiliency_cb_state` (1 for the current one).
    static let breakerStates = ["closed", "half-open", "open", "unknown"]

    public func policyApplied(_ kind: ResiliencyPolicyKind, _ scope: ResiliencyScope, status: String) {
        self.resiliencyCounter(self.resiliencyCount, "c", kind, scope, status).increment()
        if kind == .circuitBreaker { self.breakerState(scope, status) }
    }

    public func policyActivated(_ kind: ResiliencyPolicyKind, _ scope: ResiliencyScope, status: String) {
        self.resiliencyCounter(self.resiliencyActivations, "a", kind, scope, status).increment()
        if kind == .circuitBreaker { self.breakerState(scope, status) }
    }

    private func resiliencyCounter(
        _ family: MetricFamily<Prometheus.Counter>, _ prefix: String, _ kind: ResiliencyPolicyKind, _ scope: ResiliencyScope, _ status: String
    ) -> Prometheus.Counter {
        self.resiliencySeries.get("\(prefix) \(kind.rawValue) \(status) \(scope.direction) \(scope.resource)\u{0}\(scope.target)") {
            family([self.appID, scope.resource, kind.rawValue, self.namespace, scope.direction, scope.target, status])
        }
    }

    /// One series per state, the current one at 1 (as daprd records it).
    private func breakerState(_ scope: ResiliencyScope, _ current: String) {
        for state in Self.breakerStates {
            let labels = [self.appID, scope.resource, ResiliencyPolicyKind.circuitBreaker.rawValue, self.namespace, scope.direction, scope.target, state]
            self.resiliencyBreakerState(labels).record(state == current ? 1 : 0)
        }
    }
}

extension DaprMetrics: ActorObserver {}

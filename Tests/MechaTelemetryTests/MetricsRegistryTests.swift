import CoreMetrics
import MechaCore
import MechaResiliency
import Prometheus
import Testing

@testable import MechaTelemetry

@Suite struct MetricsRegistryTests {
    func exposition(_ registry: MetricsRegistry) -> String {
        String(decoding: registry.scrape(), as: UTF8.self)
    }

    @Test func countersAndHistogramsUseTheirNamesAndLabels() {
        let registry = MetricsRegistry()
        let count = registry.counter("dapr_http_server_request_count", labels: ["app_id", "method", "status"])
        let latency = registry.histogram("dapr_http_server_latency", labels: ["app_id", "method", "status"])
        count(["orders", "GET", "200"]).increment()
        count(["orders", "GET", "200"]).increment()
        latency(["orders", "GET", "200"]).record(7.0)
        let text = self.exposition(registry)
        #expect(text.contains(#"dapr_http_server_request_count{app_id="orders",method="GET",status="200"} 2"#))
        #expect(text.contains(#"dapr_http_server_latency_bucket{app_id="orders",method="GET",status="200",le="8.0"} 1"#))
        #expect(text.contains(#"dapr_http_server_latency_bucket{app_id="orders",method="GET",status="200",le="6.0"} 0"#))
        #expect(text.contains(#"dapr_http_server_latency_count{app_id="orders",method="GET",status="200"} 1"#))
    }

    @Test func pastTheBudgetUnboundedLabelsFoldIntoOther() {
        let registry = MetricsRegistry(seriesLimit: 10)
        let count = registry.counter("dapr_http_server_request_count", labels: ["app_id", "path", "status"], unbounded: ["path"])
        for index in 0..<5000 { count(["orders", "/p/\(index)", index % 2 == 0 ? "200" : "500"]).increment() }
        // 10 real series, then one `_other` series per status.
        #expect(count.seriesCount == 12)
        let text = self.exposition(registry)
        #expect(text.contains(#"path="_other",status="200"} 2495"#))
        #expect(text.contains(#"mecha_metrics_folded_total{metric="dapr_http_server_request_count"} 4990"#))
        // A series that existed before the budget ran out keeps its own value.
        count(["orders", "/p/0", "200"]).increment()
        #expect(self.exposition(registry).contains(#"path="/p/0",status="200"} 2"#))
    }

    @Test func rulesRewriteLabelValuesBeforeTheBudget() {
        let rule = MetricRule(name: "dapr_runtime_service_invocation_req_sent_total", labels: [
            .init(name: "method", rewrites: [.init(replacement: "orders/{id}", pattern: "^orders/[0-9]+$"), .init(replacement: "items/", pattern: "items/.+")])
        ])
        let registry = MetricsRegistry(rules: [rule])
        let sent = registry.counter("dapr_runtime_service_invocation_req_sent_total", labels: ["app_id", "method"], unbounded: ["method"])
        sent(["a", "orders/1"]).increment()
        sent(["a", "orders/2"]).increment()
        sent(["a", "my-items/3"]).increment()
        sent(["a", "orders/x"]).increment()
        #expect(sent.seriesCount == 3)
        let text = self.exposition(registry)
        #expect(text.contains(#"method="orders/{id}"} 2"#))
        #expect(text.contains(#"method="my-items/"} 1"#))
        #expect(text.contains(#"method="orders/x"} 1"#))
    }

    @Test func histogramBucketsAreConfigurablePerMetric() {
        let registry = MetricsRegistry(histogramBuckets: ["sizes": [10, 100]])
        registry.histogram("sizes", labels: ["app_id"])(["a"]).record(50.0)
        let text = self.exposition(registry)
        #expect(text.contains(#"sizes_bucket{app_id="a",le="10.0"} 0"#))
        #expect(text.contains(#"sizes_bucket{app_id="a",le="100.0"} 1"#))
    }

    @Test func processFiguresAreReadAtScrapeTime() {
        let registry = MetricsRegistry()
        ProcessMetrics.install(on: registry)
        let text = self.exposition(registry)
        for name in ["process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds", "process_start_time_seconds", "process_max_fds"] {
            #expect(text.contains("\n\(name) ") || text.hasPrefix("\(name) ") || text.contains("# TYPE \(name)"), "\(name) missing")
        }
        let rss = text.split(separator: "\n").first { $0.hasPrefix("process_resident_memory_bytes ") }.flatMap { Double($0.split(separator: " ")[1]) } ?? 0
        #expect(rss > 1_000_000)
    }
}

@Suite struct DaprMetricsClientAndResiliencyTests {
    func exposition(_ metrics: DaprMetrics) -> String {
        String(decoding: metrics.scrape(), as: UTF8.self)
    }

    @Test func appCallsAreDaprsHTTPClientMetrics() {
        let metrics = DaprMetrics(appID: "orders", namespace: "default")
        metrics.appCalled(AppCall(method: "POST", uri: "/neworder", status: 200, elapsed: .milliseconds(7), sentBytes: 2000, receivedBytes: 10))
        metrics.appCalled(AppCall(method: "POST", uri: "/neworder", status: 500, elapsed: .milliseconds(300), sentBytes: 0, receivedBytes: 0))
        let text = self.exposition(metrics)
        #expect(text.contains(#"dapr_http_client_completed_count{app_id="orders",method="POST",path="",status="200"} 1"#))
        #expect(text.contains(#"dapr_http_client_completed_count{app_id="orders",method="POST",path="",status="500"} 1"#))
        #expect(text.contains(#"dapr_http_client_roundtrip_latency_bucket{app_id="orders",method="POST",path="",status="200",le="8.0"} 1"#))
        #expect(text.contains(#"dapr_http_client_roundtrip_latency_bucket{app_id="orders",method="POST",path="",status="500",le="250.0"} 0"#))
        #expect(text.contains(#"dapr_http_client_sent_bytes_bucket{app_id="orders",le="2048.0"} 2"#))
        #expect(text.contains(#"dapr_http_client_received_bytes_count{app_id="orders"} 2"#))
    }

    @Test func increasedCardinalityLabelsTheAppRoute() {
        let metrics = DaprMetrics(appID: "orders", namespace: "default", spec: MetricsSpec(increasedCardinality: true))
        metrics.appCalled(AppCall(method: "GET", uri: "/orders/1?x=2", status: 200, elapsed: .zero, sentBytes: 0, receivedBytes: 0))
        #expect(self.exposition(metrics).contains(#"dapr_http_client_completed_count{app_id="orders",method="GET",path="orders/1",status="200"} 1"#))
    }

    @Test func resiliencyEventsAreDaprsResiliencyMetrics() {
        let metrics = DaprMetrics(appID: "checkout", namespace: "default")
        let scope = ResiliencyScope(resource: "myresiliency", target: "app_orders", direction: "outbound")
        metrics.policyApplied(.retry, scope, status: "")
        metrics.policyApplied(.retry, scope, status: "")
        metrics.policyActivated(.retry, scope, status: "")
        metrics.policyApplied(.circuitBreaker, scope, status: "closed")
        metrics.policyActivated(.circuitBreaker, scope, status: "open")
        let text = self.exposition(metrics)
        let labels = #"app_id="checkout",name="myresiliency",policy="retry",namespace="default",flow_direction="outbound",target="app_orders",status="""#
        #expect(text.contains("dapr_resiliency_count{\(labels)} 2"))
        #expect(text.contains("dapr_resiliency_activations_total{\(labels)} 1"))
        let breaker = #"app_id="checkout",name="myresiliency",policy="circuitbreaker",namespace="default",flow_direction="outbound",target="app_orders",status="#
        #expect(text.contains("dapr_resiliency_count{\(breaker)\"closed\"} 1"))
        #expect(text.contains("dapr_resiliency_activations_total{\(breaker)\"open\"} 1"))
        // The gauge: the current state at 1, the others at 0.
        #expect(text.contains("dapr_resiliency_cb_state{\(breaker)\"open\"} 1"))
        #expect(text.contains("dapr_resiliency_cb_state{\(breaker)\"closed\"} 0"))
        #expect(text.contains("dapr_resiliency_cb_state{\(breaker)\"half-open\"} 0"))
    }
}

@Suite struct ErrorCodeMetricsTests {
    @Test(arguments: [
        ("ERR_STATE_STORE_NOT_FOUND", "state"), ("ERR_NOT_SUPPORTED_STATE_OPERATION", "state"), ("ERR_DIRECT_INVOKE", "service-invocation"),
        ("ERR_PUBSUB_NOT_FOUND", "pubsub"), ("ERR_TOPIC_NAME_EMPTY", "pubsub"), ("ERR_SECRET_GET", "secret"), ("ERR_PERMISSION_DENIED", "secret"),
        ("ERR_INVOKE_OUTPUT_BINDING", "binding"), ("ERR_TRY_LOCK", "lock"), ("ERR_LOCK_STORE_NOT_FOUND", "lock"), ("ERR_ACTOR_STATE_GET", "actor"),
        ("ERR_START_WORKFLOW", "workflow"), ("ERR_INSTANCE_ID_INVALID", "workflow"), ("ERR_CONFIGURATION_GET", "configuration"),
        ("ERR_CRYPTO_KEY", "crypto"), ("ERR_CONVERSATION_INVOKE", "conversation"), ("DAPR_SCHEDULER_GET_JOB", "job"),
        ("ERR_HEALTH_NOT_READY", "health"), ("ERR_MALFORMED_REQUEST", "common"), ("ERR_BODY_READ", "common"),
    ])
    func daprdsCategories(code: String, category: String) {
        #expect(APIError.category(ofErrorCode: code) == category)
    }

    @Test func onlyWithRecordErrorCodes() {
        let off = DaprMetrics(appID: "a", namespace: "default")
        off.errorCode("ERR_STATE_GET", category: "state")
        #expect(!off.recordsErrorCodes)
        #expect(!String(decoding: off.scrape(), as: UTF8.self).contains("dapr_error_code_total"))
        let on = DaprMetrics(appID: "a", namespace: "default", spec: MetricsSpec(recordErrorCodes: true))
        on.errorCode("ERR_STATE_GET", category: "state")
        #expect(String(decoding: on.scrape(), as: UTF8.self).contains(#"dapr_error_code_total{app_id="a",error_code="ERR_STATE_GET",category="state"} 1"#))
    }

    @Test func theSinkKeepsTheLastCodeNotedInItsScope() async {
        let sink = ErrorCodeSink()
        ErrorCodeScope.note("ERR_OUTSIDE")
        await ErrorCodeScope.$sink.withValue(sink) {
            ErrorCodeScope.note("ERR_FIRST")
            ErrorCodeScope.note("ERR_LAST")
        }
        #expect(sink.code == "ERR_LAST")
    }
}

@Suite struct LockFreeHistogramTests {
    func exposition(_ registry: MetricsRegistry) -> String {
        String(decoding: registry.scrape(), as: UTF8.self)
    }

    @Test func bucketsCountAndSumAreExactAtEveryScrape() {
        let registry = MetricsRegistry(histogramBuckets: ["h": [1, 5, 10]])
        let histogram = registry.histogram("h", labels: ["a"])(["x"])
        // On a bound, inside, past the last bound, zero.
        for value in [1.0, 5.0, 3.0, 7.0, 100.0, 0.0] { histogram.record(value) }
        var text = self.exposition(registry)
        #expect(text.contains(#"h_bucket{a="x",le="1.0"} 2"#))
        #expect(text.contains(#"h_bucket{a="x",le="5.0"} 4"#))
        #expect(text.contains(#"h_bucket{a="x",le="10.0"} 5"#))
        #expect(text.contains(#"h_bucket{a="x",le="+Inf"} 6"#))
        #expect(text.contains(#"h_sum{a="x"} 116.0"#))
        #expect(text.contains(#"h_count{a="x"} 6"#))
        // Later records add to what was scraped.
        histogram.record(2)
        text = self.exposition(registry)
        #expect(text.contains(#"h_bucket{a="x",le="5.0"} 5"#))
        #expect(text.contains(#"h_sum{a="x"} 118.0"#))
        #expect(text.contains(#"h_count{a="x"} 7"#))
    }

    @Test func concurrentRecordsLoseNothing() async {
        let registry = MetricsRegistry(histogramBuckets: ["h": [10, 100]])
        let histogram = registry.histogram("h", labels: [])([])
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    for index in 0..<5_000 { histogram.record(Double((index + task) % 150)) }
                }
            }
            // Scrapes while the records go on.
            group.addTask { for _ in 0..<20 { _ = registry.scrape() } }
        }
        let text = self.exposition(registry)
        var expected = (count: 0, sum: 0, le10: 0, le100: 0)
        for task in 0..<8 {
            for index in 0..<5_000 {
                let value = (index + task) % 150
                expected.count += 1
                expected.sum += value
                if value <= 10 { expected.le10 += 1 }
                if value <= 100 { expected.le100 += 1 }
            }
        }
        #expect(text.contains("h_count \(expected.count)"))
        #expect(text.contains("h_sum \(Double(expected.sum))"))
        #expect(text.contains(#"h_bucket{le="10.0"} "# + "\(expected.le10)"))
        #expect(text.contains(#"h_bucket{le="100.0"} "# + "\(expected.le100)"))
    }
}

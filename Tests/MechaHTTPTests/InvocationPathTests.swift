import MechaCore
import MechaTelemetry
import Testing

@testable import MechaAPI

/// How the observers read `/v1.0/invoke/<app>/method/<method>` (every request goes through it).
@Suite struct InvocationPathTests {
    @Test(arguments: [
        ("/v1.0/invoke/cart/method/items/42", "cart", "items/42"),
        ("/v1.0/invoke/cart.prod/method/", "cart.prod", ""),
        ("/v1.0/invoke/c/method/m", "c", "m"),
        ("/v1.0/invoke/caf\u{e9}/method/\u{1F600}", "caf\u{e9}", "\u{1F600}"),
    ])
    func splits(path: String, app: String, method: String) throws {
        let split = try #require(InvocationPath.split(path[...]))
        #expect(split.app == app[...])
        #expect(split.method == method[...])
        // A substring of a longer text (offsets are the substring's own).
        let longer = "GET " + path + "?q=1"
        let inner = longer.dropFirst(4).prefix(path.count)
        let again = try #require(InvocationPath.split(Substring(inner)))
        #expect(again.app == app[...] && again.method == method[...])
    }

    @Test(arguments: [
        "/v1.0/invoke//method/m", "/v1.0/invoke/cart", "/v1.0/invoke/cart/methods/x", "/v1.0/invoke/cart/method", "/v1.0/state/s/k", "", "/v1.0/invoke/",
        "/V1.0/invoke/cart/method/m",
    ])
    func refuses(path: String) {
        #expect(InvocationPath.split(path[...]) == nil)
    }

    @Test func anExchangeThatInvokesFeedsTheInvocationSeries() {
        let metrics = DaprMetrics(appID: "front", namespace: "default")
        let observer = MetricsObserver(metrics: metrics)
        for _ in 0..<3 {
            observer.completed(InboundExchange(surface: .http, verb: "POST", path: "/v1.0/invoke/cart/method/items", status: 200, elapsed: .milliseconds(2)))
        }
        observer.completed(InboundExchange(surface: .http, verb: "POST", path: "/items", status: 500, elapsed: .milliseconds(2), invokeTarget: "stock"))
        observer.completed(InboundExchange(surface: .http, verb: "GET", path: "/v1.0/state/s/k", status: 200, elapsed: .milliseconds(1)))
        let text = String(decoding: metrics.scrape(), as: UTF8.self)
        #expect(text.contains(#"dapr_runtime_service_invocation_req_sent_total{app_id="front",dst_app_id="cart",type="unary"} 3"#))
        #expect(text.contains(#"dapr_runtime_service_invocation_req_sent_total{app_id="front",dst_app_id="stock",type="unary"} 1"#))
        #expect(text.contains(#"dapr_runtime_service_invocation_res_recv_total{app_id="front",src_app_id="stock",status="500",type="unary"} 1"#))
        #expect(text.contains(#"dapr_http_server_request_count{app_id="front",method="POST",path="",status="200"} 3"#))
        #expect(text.contains(#"dapr_http_server_request_count{app_id="front",method="GET",path="",status="200"} 1"#))
        #expect(!text.contains(#"dst_app_id="""#))
    }
}

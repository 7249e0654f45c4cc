import Testing

@testable import MechaAPI

@Suite struct APILogObserverTests {
    @Test(arguments: [
        ("/v1.0/state/orders/key-1", "/v1.0/state/{name}/{key}"),
        ("/v1.0/state/orders", "/v1.0/state/{name}"),
        ("/v1.0/state/orders/bulk", "/v1.0/state/{name}/bulk"),
        ("/v1.0/secrets/vault/db-password", "/v1.0/secrets/{name}/{key}"),
        ("/v1.0/invoke/cart/method/items/42", "/v1.0/invoke/{id}/method/{method}"),
        ("/v1.0/publish/pubsub/orders", "/v1.0/publish/{pubsubname}/{topic}"),
        ("/v1.0-alpha1/publish/bulk/pubsub/orders", "/v1.0-alpha1/publish/bulk/{pubsubname}/{topic}"),
        ("/v1.0/bindings/mail", "/v1.0/bindings/{name}"),
        ("/v1.0/configuration/store/subscribe", "/v1.0/configuration/{storeName}/subscribe"),
        ("/v1.0/metadata", "/v1.0/metadata"),
        ("/v1.0/healthz/outbound", "/v1.0/healthz/outbound"),
        ("/other/path", "/other/{path}"),
    ])
    func obfuscatedURLsNameTheRouteNotTheValues(path: String, template: String) {
        #expect(APILogObserver.template(path[...]) == template)
    }

    @Test func traceIDsComeOnlyFromAWellFormedTraceparent() {
        #expect(APILogObserver.traceIDs("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")! == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"))
        #expect(APILogObserver.traceIDs("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01") == nil)
        #expect(APILogObserver.traceIDs("00-00000000000000000000000000000000-b7ad6b7169203331-01") == nil)
        #expect(APILogObserver.traceIDs("garbage") == nil)
    }
}

import MechaCore
import Testing

@testable import MechaTelemetry

@Suite struct HTTPPathLabelerTests {
    @Test func lowCardinalityKeepsOnlyStaticPaths() {
        let labeler = HTTPPathLabeler(spec: MetricsSpec())
        #expect(labeler.label("/v1.0/invoke/orders/method/items/1") == "")
        #expect(labeler.label("/v1.0/state/store/key") == "")
        #expect(labeler.label("/dapr/subscribe") == "/dapr/subscribe")
    }

    @Test func increasedCardinalityCutsKeysAndIDsAsDaprd() {
        let labeler = HTTPPathLabeler(spec: MetricsSpec(increasedCardinality: true))
        #expect(labeler.label("/v1.0/state/store/key-42") == "/v1.0/state/store")
        #expect(labeler.label("/v1.0/state/store/bulk") == "/v1.0/state/store/bulk")
        #expect(labeler.label("/v1.0/secrets/vault/db-password") == "/v1.0/secrets/vault")
        #expect(labeler.label("/v1.0/actors/Cart/c-1/method/add") == "/v1.0/actors/Cart/{id}/method")
        #expect(labeler.label("/v1.0/invoke/orders/method/items/1") == "/v1.0/invoke/orders/method/items/1")
    }

    @Test func templatesMatchWithTheMostSpecificWinning() {
        let labeler = HTTPPathLabeler(spec: MetricsSpec(pathMatching: [
            "/v1.0/invoke/orders/method/items/{id}", "/v1.0/invoke/orders/method/items/special", "/v1.0/invoke/{app}/method/{rest...}",
        ]))
        #expect(labeler.label("/v1.0/invoke/orders/method/items/7") == "/v1.0/invoke/orders/method/items/{id}")
        #expect(labeler.label("/v1.0/invoke/orders/method/items/special") == "/v1.0/invoke/orders/method/items/special")
        #expect(labeler.label("/v1.0/invoke/other/method/a/b/c") == "/v1.0/invoke/{app}/method/{rest...}")
        #expect(labeler.label("/v1.0/state/store/key") == "")
        #expect(labeler.label("items/7", clientSide: true) == "")
    }
}

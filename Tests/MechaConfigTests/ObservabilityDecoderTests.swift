import MechaCore
import Testing

@testable import MechaConfig

@Suite struct ObservabilityDecoderTests {
    @Test func metricsAndAPILoggingAsDaprWritesThem() throws {
        let loaded = try ResourceDecodersTests.load(
            ResourceDecodersTests.configurationYAML(
                """
                  metrics:
                    enabled: true
                    recordErrorCodes: true
                    latencyDistributionBuckets: [5, 50, 500]
                    seriesLimit: 250
                    http:
                      increasedCardinality: true
                      excludeVerbs: true
                      pathMatching: ["/orders/{id}"]
                    rules:
                      - name: dapr_http_server_request_count
                        labels:
                          - name: path
                            regex:
                              "/orders/": "/orders/.+"
                  logging:
                    apiLogging:
                      enabled: true
                      obfuscateURLs: true
                      omitHealthChecks: true
                """))
        let configuration = try #require(loaded.configurations.first)
        #expect(configuration.metrics == MetricsSpec(
            enabled: true, increasedCardinality: true, pathMatching: ["/orders/{id}"], excludeVerbs: true,
            rules: [MetricRule(name: "dapr_http_server_request_count", labels: [.init(name: "path", rewrites: [.init(replacement: "/orders/", pattern: "/orders/.+")])])],
            latencyBuckets: [5, 50, 500], recordErrorCodes: true, seriesLimit: 250))
        #expect(configuration.apiLogging == APILoggingSpec(enabled: true, obfuscateURLs: true, omitHealthChecks: true))
    }

    @Test func defaultsWithoutTheSections() throws {
        let loaded = try ResourceDecodersTests.load(ResourceDecodersTests.configurationYAML("  features: []"))
        let configuration = try #require(loaded.configurations.first)
        #expect(configuration.metrics == MetricsSpec())
        #expect(configuration.metrics.increasedCardinality == false)
        #expect(configuration.apiLogging.enabled == nil)
    }

    @Test(arguments: [
        ("  metrics:\n    rules:\n      - name: m\n        labels:\n          - name: path\n            regex:\n              x: '(a'", "spec.metrics.rules[0].labels[0].regex.x"),
        ("  metrics:\n    latencyDistributionBuckets: [10, -1]", "spec.metrics.latencyDistributionBuckets[1]"),
        ("  metrics:\n    seriesLimit: 0", "spec.metrics.seriesLimit"),
        ("  metrics:\n    http:\n      pathMatching: [orders]", "spec.metrics.http.pathMatching[0]"),
        ("  logging:\n    apiLogging:\n      enabled: perhaps", "spec.logging.apiLogging.enabled"),
    ])
    func badFieldsAreNamed(yaml: String, field: String) throws {
        let error = try ResourceDecodersTests.error(ResourceDecodersTests.configurationYAML(yaml))
        #expect(error.field == field)
        #expect(error.source.resource == "Configuration/appconfig")
    }
}

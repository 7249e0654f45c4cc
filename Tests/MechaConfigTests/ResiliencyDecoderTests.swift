import MechaCore
import Testing

@testable import MechaConfig

/// Dapr's `Resiliency` resource: policies, targets, defaults, and references checked across resources.
@Suite("Resiliency decoding")
struct ResiliencyDecoderTests {
    static let file = "/resources/resiliency.yaml"

    /// Dapr's documentation example. Its targets use `retry: important`, which only exists as a timeout.
    static let daprExample = Self.daprExample(extraRetry: "")

    static func daprExample(extraRetry: String) -> String {
        """
        apiVersion: dapr.io/v1alpha1
        kind: Resiliency
        metadata: {name: myresiliency}
        scopes: [app1]
        spec:
          policies:
            timeouts: {general: 5s, important: 60s}
            retries:\(extraRetry)
              pubsubRetry: {policy: constant, duration: 5s, maxRetries: 10}
              retryForever: {policy: exponential, maxInterval: 15s, maxRetries: -1}
              matched: {policy: constant, duration: 5s, maxRetries: 3, matching: {httpStatusCodes: "429,500-599", gRPCStatusCodes: "1-4,8-11,13,14"}}
            circuitBreakers:
              simpleCB: {maxRequests: 1, interval: 8s, timeout: 30s, trip: consecutiveFailures >= 5}
          targets:
            apps:
              appB: {timeout: general, retry: important, circuitBreaker: simpleCB, circuitBreakerCacheSize: 100}
            actors:
              myActorType: {timeout: general, retry: important, circuitBreaker: simpleCB, circuitBreakerScope: both, circuitBreakerCacheSize: 5000}
            components:
              statestore1:
                outbound: {timeout: general, retry: retryForever, circuitBreaker: simpleCB}
                inbound: {timeout: general, retry: important}
        """
    }

    /// A resource named `name` with `spec` lines (indented by two spaces) under `spec:`.
    static func yaml(name: String = "r", _ spec: String) -> String {
        """
        apiVersion: dapr.io/v1alpha1
        kind: Resiliency
        metadata:
          name: \(name)
        spec:
        \(spec)
        """
    }

    /// Decodes one document without the cross-resource reference check.
    static func decode(_ yaml: String) throws -> ResiliencySpec {
        let document = try #require(try YAMLDocuments.parse(yaml).first)
        let source = ResourceSource(file: self.file, resource: "Resiliency/test", line: document.line)
        return try ResourceDecoders.resiliency(NodeReader(document, path: "", source: source))
    }

    static func load(_ yaml: String) throws -> ResiliencySpec {
        let loaded = try ResourceLoader.load(text: yaml, file: self.file)
        #expect(loaded.resiliencies.count == 1)
        return try #require(loaded.resiliencies.first)
    }

    /// Every error loading `yaml` reports; each must name the file and the resource.
    static func errors(_ yaml: String, resource: String = "Resiliency/r", sourceLocation: SourceLocation = #_sourceLocation) throws -> [ResourceError] {
        let failure = try #require(throws: ResourceLoadError.self, sourceLocation: sourceLocation) {
            try ResourceLoader.load(text: yaml, file: self.file)
        }
        for error in failure.errors {
            #expect(error.description.contains(self.file), sourceLocation: sourceLocation)
            #expect(error.description.contains(resource), sourceLocation: sourceLocation)
        }
        return failure.errors
    }

    /// The single error loading `yaml` reports.
    static func error(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> ResourceError {
        let errors = try self.errors(yaml, sourceLocation: sourceLocation)
        #expect(errors.count == 1, "\(errors)", sourceLocation: sourceLocation)
        return try #require(errors.first, sourceLocation: sourceLocation)
    }

    // MARK: Decoding

    @Test func daprDocumentationExampleDecodesToExactValues() throws {
        let spec = try Self.decode(Self.daprExample)
        #expect(spec.name == "myresiliency")
        #expect(spec.scopes == ["app1"])
        #expect(spec.timeouts == ["general": .seconds(5), "important": .seconds(60)])
        #expect(
            spec.retries == [
                "pubsubRetry": RetrySpec(policy: .constant, duration: .seconds(5), maxRetries: 10),
                "retryForever": RetrySpec(policy: .exponential, maxInterval: .seconds(15), maxRetries: nil),
                "matched": RetrySpec(
                    policy: .constant, duration: .seconds(5), maxRetries: 3,
                    matching: StatusCodeMatching(httpStatusCodes: [429...429, 500...599], grpcStatusCodes: [1...4, 8...11, 13...13, 14...14])),
            ])
        let breaker = try #require(spec.circuitBreakers["simpleCB"])
        #expect(breaker.maxRequests == 1)
        #expect(breaker.interval == .seconds(8))
        #expect(breaker.timeout == .seconds(30))
        #expect(breaker.trip.source == "consecutiveFailures >= 5")
        #expect(spec.apps == ["appB": TargetPolicyNames(timeout: "general", retry: "important", circuitBreaker: "simpleCB", circuitBreakerCacheSize: 100)])
        #expect(
            spec.actors == [
                "myActorType": TargetPolicyNames(timeout: "general", retry: "important", circuitBreaker: "simpleCB", circuitBreakerCacheSize: 5000, circuitBreakerScope: "both")
            ])
        #expect(
            spec.components == [
                "statestore1": ComponentPolicyNames(
                    outbound: TargetPolicyNames(timeout: "general", retry: "retryForever", circuitBreaker: "simpleCB"),
                    inbound: TargetPolicyNames(timeout: "general", retry: "important"))
            ])
        #expect(spec.source.file == Self.file)
    }

    @Test func daprExampleLoadsOnceItsRetryPolicyExists() throws {
        // The example as published refers to a retry policy it never defines: all three uses are reported.
        let errors = try Self.errors(Self.daprExample, resource: "Resiliency/myresiliency")
        #expect(
            errors.map(\.field) == [
                "spec.targets.apps.appB.retry", "spec.targets.actors.myActorType.retry", "spec.targets.components.statestore1.inbound.retry",
            ])
        #expect(errors.allSatisfy { $0.reason == "unknown retry policy 'important'" })

        let fixed = Self.daprExample(extraRetry: "\n      important: {policy: constant, duration: 5s, maxRetries: 30}")
        let spec = try Self.load(fixed)
        #expect(spec.retries["important"] == RetrySpec(duration: .seconds(5), maxRetries: 30))
        #expect(spec.source.resource == "Resiliency/myresiliency")
    }

    @Test func defaults() throws {
        let spec = try Self.load(
            Self.yaml(
                """
                  policies:
                    retries:
                      plain: {}
                    circuitBreakers:
                      cb: {}
                      zeroProbes: {maxRequests: 0}
                """))
        #expect(spec.scopes.isEmpty)
        let retry = try #require(spec.retries["plain"])
        #expect(retry.policy == .constant)
        #expect(retry.duration == .seconds(5))
        #expect(retry.maxInterval == .seconds(60))
        #expect(retry.maxRetries == nil)
        #expect(retry.matching == nil)
        let breaker = try #require(spec.circuitBreakers["cb"])
        #expect(breaker.maxRequests == 1)
        #expect(breaker.interval == .zero)
        #expect(breaker.timeout == .seconds(60))
        #expect(breaker.trip.source == "consecutiveFailures > 5")
        #expect(spec.circuitBreakers["zeroProbes"]?.maxRequests == 1)
    }

    @Test func emptySpecIsAccepted() throws {
        let spec = try Self.load(Self.yaml("  {}"))
        #expect(spec.timeouts.isEmpty && spec.retries.isEmpty && spec.apps.isEmpty)
    }

    @Test func statusCodesAsAYAMLList() throws {
        let spec = try Self.load(
            Self.yaml(
                """
                  policies:
                    retries:
                      r:
                        matching:
                          httpStatusCodes: [429, "500-503", 504]
                          gRPCStatusCodes: [0, "14"]
                """))
        #expect(spec.retries["r"]?.matching == StatusCodeMatching(httpStatusCodes: [429...429, 500...503, 504...504], grpcStatusCodes: [0...0, 14...14]))
        #expect(spec.retries["r"]?.matching?.matchesHTTP(502) == true)
    }

    @Test func tripMayUseEveryCounterAndArithmeticThatFailsAtZero() throws {
        let spec = try Self.load(
            Self.yaml(
                """
                  policies:
                    circuitBreakers:
                      all: {trip: "requests > 10u && totalFailures * 2u > totalSuccesses || consecutiveSuccesses == 0u && consecutiveFailures > 3"}
                      ratio: {trip: "requests > 10u && totalFailures * 100u / requests > 50u"}
                """))
        #expect(spec.circuitBreakers.count == 2)
    }

    @Test func policiesDefinedInAnotherResourceAreFound() throws {
        let policies = Self.yaml(name: "policies", "  policies:\n    timeouts: {fast: 1s}\n    retries: {again: {maxRetries: 2}}")
        let targets = Self.yaml(name: "targets", "  targets:\n    apps:\n      b: {timeout: fast, retry: again}")
        let loaded = try ResourceLoader.load(text: targets + "\n---\n" + policies, file: Self.file)
        #expect(loaded.resiliencies.map(\.name) == ["targets", "policies"])
        try ResiliencyValidation.validateReferences(loaded.resiliencies)
    }

    // MARK: Errors

    @Test func unknownPolicyName() throws {
        let error = try Self.error(
            Self.yaml(
                """
                  policies:
                    retries: {important: {}}
                    circuitBreakers: {cb: {}}
                  targets:
                    apps:
                      appB: {retry: importan}
                    components:
                      store:
                        outbound: {circuitBreaker: cb}
                """))
        #expect(error.field == "spec.targets.apps.appB.retry")
        #expect(error.reason == "unknown retry policy 'importan'")
        #expect(error.source.resource == "Resiliency/r")
    }

    @Test func unknownTimeoutAndBreakerAcrossKinds() throws {
        let errors = try Self.errors(
            Self.yaml(
                """
                  targets:
                    actors:
                      a: {timeout: nope, circuitBreaker: gone}
                    components:
                      store:
                        inbound: {retry: missing}
                """))
        #expect(errors.map(\.field) == ["spec.targets.actors.a.timeout", "spec.targets.actors.a.circuitBreaker", "spec.targets.components.store.inbound.retry"])
        #expect(errors.map(\.reason) == ["unknown timeout policy 'nope'", "unknown circuit breaker policy 'gone'", "unknown retry policy 'missing'"])
    }

    @Test func validateReferencesOnSpecsBuiltInCode() throws {
        let spec = ResiliencySpec(name: "coded", apps: ["x": TargetPolicyNames(retry: "r")], source: ResourceSource(file: "a.yaml", resource: "Resiliency/coded"))
        let failure = try #require(throws: ResourceLoadError.self) { try ResiliencyValidation.validateReferences([spec]) }
        #expect(failure.errors.map(\.description) == ["a.yaml: Resiliency/coded: field spec.targets.apps.x.retry: unknown retry policy 'r'"])
    }

    @Test func duplicatePolicyNameAcrossResourcesNamesTheSecond() throws {
        let first = Self.yaml(name: "first", "  policies:\n    timeouts: {general: 5s}")
        let second = Self.yaml(name: "second", "  policies:\n    timeouts: {general: 9s}")
        let failure = try #require(throws: ResourceLoadError.self) {
            try ResourceLoader.load(text: first + "\n---\n" + second, file: Self.file)
        }
        let error = try #require(failure.errors.first)
        #expect(failure.errors.count == 1)
        #expect(error.field == "spec.policies.timeouts.general")
        #expect(error.source.resource == "Resiliency/second")
        #expect(error.description.contains(Self.file))
        #expect(error.reason.contains("Resiliency/first"))
    }

    @Test func sameNameForDifferentKindsIsFine() throws {
        let spec = try Self.load(Self.yaml("  policies:\n    timeouts: {x: 1s}\n    retries: {x: {}}\n    circuitBreakers: {x: {}}"))
        #expect(spec.timeouts.count == 1 && spec.retries.count == 1 && spec.circuitBreakers.count == 1)
    }

    @Test func badTripExpression() throws {
        let error = try Self.error(Self.yaml("  policies:\n    circuitBreakers:\n      cb: {trip: \"consecutiveFailures >\"}"))
        #expect(error.field == "spec.policies.circuitBreakers.cb.trip")
        #expect(error.reason.hasPrefix("invalid trip expression 'consecutiveFailures >'"))
    }

    @Test func tripWithUnknownVariable() throws {
        let error = try Self.error(Self.yaml("  policies:\n    circuitBreakers:\n      cb: {trip: \"consecutiveFailures > 5 && failureRate > 0.5\"}"))
        #expect(error.field == "spec.policies.circuitBreakers.cb.trip")
        #expect(error.reason.contains("undeclared reference to 'failureRate'"))
        #expect(error.reason.contains("consecutiveFailures"))
    }

    @Test func tripThatIsNotBoolean() throws {
        let error = try Self.error(Self.yaml("  policies:\n    circuitBreakers:\n      cb: {trip: consecutiveFailures + 1u}"))
        #expect(error.field == "spec.policies.circuitBreakers.cb.trip")
        #expect(error.reason.contains("not bool"))
    }

    @Test(arguments: [
        ("timeouts: {t: -5s}", "spec.policies.timeouts.t", "must be greater than zero"),
        ("timeouts: {t: 0s}", "spec.policies.timeouts.t", "must be greater than zero"),
        ("timeouts: {t: soon}", "spec.policies.timeouts.t", "expected a duration"),
        ("retries: {r: {duration: -1s}}", "spec.policies.retries.r.duration", "must be greater than zero"),
        ("retries: {r: {maxInterval: 10parsecs}}", "spec.policies.retries.r.maxInterval", "expected a duration"),
        ("circuitBreakers: {cb: {timeout: -30s}}", "spec.policies.circuitBreakers.cb.timeout", "must be greater than zero"),
        ("circuitBreakers: {cb: {interval: -1s}}", "spec.policies.circuitBreakers.cb.interval", "out of range"),
        ("circuitBreakers: {cb: {maxRequests: -1}}", "spec.policies.circuitBreakers.cb.maxRequests", "1 or more"),
        ("retries: {r: {maxRetries: -2}}", "spec.policies.retries.r.maxRetries", "-1"),
        ("retries: {r: {policy: linear}}", "spec.policies.retries.r.policy", "constant or exponential"),
        ("retries: {r: {matching: {httpStatusCodes: \"599-500\"}}}", "spec.policies.retries.r.matching.httpStatusCodes", "reversed"),
        ("retries: {r: {matching: {httpStatusCodes: \"429,600\"}}}", "spec.policies.retries.r.matching.httpStatusCodes", "600 is outside 100-599"),
        ("retries: {r: {matching: {httpStatusCodes: \"5xx\"}}}", "spec.policies.retries.r.matching.httpStatusCodes", "not a HTTP status code"),
        ("retries: {r: {matching: {httpStatusCodes: [429, 99]}}}", "spec.policies.retries.r.matching.httpStatusCodes[1]", "99 is outside"),
        ("retries: {r: {matching: {gRPCStatusCodes: \"1-17\"}}}", "spec.policies.retries.r.matching.gRPCStatusCodes", "17 is outside 0-16"),
        ("retries: {r: {matching: {gRPCStatusCodes: \"4-\"}}}", "spec.policies.retries.r.matching.gRPCStatusCodes", "not a gRPC status code"),
    ])
    func badPolicyValue(policy: String, field: String, reason: String) throws {
        let error = try Self.error(Self.yaml("  policies:\n    \(policy)"))
        #expect(error.field == field)
        #expect(error.reason.contains(reason), "\(error.reason)")
    }

    @Test(arguments: [
        ("  polices: {}", "spec.polices"),
        ("  policies:\n    timeout: {}", "spec.policies.timeout"),
        ("  policies:\n    retries: {r: {maxRetry: 3}}", "spec.policies.retries.r.maxRetry"),
        ("  policies:\n    retries: {r: {matching: {httpStatusCode: \"500\"}}}", "spec.policies.retries.r.matching.httpStatusCode"),
        ("  policies:\n    circuitBreakers: {cb: {tripp: x}}", "spec.policies.circuitBreakers.cb.tripp"),
        ("  targets:\n    app: {}", "spec.targets.app"),
        ("  targets:\n    apps: {a: {retries: r}}", "spec.targets.apps.a.retries"),
        ("  targets:\n    apps: {a: {circuitBreakerScope: id}}", "spec.targets.apps.a.circuitBreakerScope"),
        ("  targets:\n    components: {s: {outbund: {}}}", "spec.targets.components.s.outbund"),
        ("  targets:\n    components: {s: {outbound: {circuitBreakerCacheSize: 5}}}", "spec.targets.components.s.outbound.circuitBreakerCacheSize"),
    ])
    func unknownField(spec: String, field: String) throws {
        let error = try Self.error(Self.yaml(spec))
        #expect(error.field == field)
        #expect(error.reason.contains("unknown field"))
    }

    @Test(arguments: [
        ("apps: {a: {circuitBreakerCacheSize: 0}}", "spec.targets.apps.a.circuitBreakerCacheSize", "greater than zero"),
        ("actors: {a: {circuitBreakerScope: all}}", "spec.targets.actors.a.circuitBreakerScope", "id, type or both"),
        ("actors: {a: {timeout: \"\"}}", "spec.targets.actors.a.timeout", "must not be empty"),
    ])
    func badTargetValue(target: String, field: String, reason: String) throws {
        let error = try Self.error(Self.yaml("  targets:\n    \(target)"))
        #expect(error.field == field)
        #expect(error.reason.contains(reason))
    }

    @Test func wrongAPIVersionAndMissingName() throws {
        let version = try Self.error("apiVersion: dapr.io/v2\nkind: Resiliency\nmetadata: {name: r}\nspec: {}\n")
        #expect(version.field == "apiVersion")
        let name = try Self.errors("apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {}\nspec: {}\n", resource: "Resiliency/#1")
        #expect(name.map(\.field) == ["metadata.name"])
    }

    @Test func everyBadDocumentIsReportedTogetherWithReferenceErrors() throws {
        let bad = Self.yaml(name: "bad", "  policies:\n    timeouts: {t: -1s}")
        let dangling = Self.yaml(name: "dangling", "  targets:\n    apps: {a: {retry: none}}")
        let failure = try #require(throws: ResourceLoadError.self) {
            try ResourceLoader.load(text: bad + "\n---\n" + dangling, file: Self.file)
        }
        #expect(failure.errors.map(\.source.resource) == ["Resiliency/bad", "Resiliency/dangling"])
        #expect(failure.errors.map(\.field) == ["spec.policies.timeouts.t", "spec.targets.apps.a.retry"])
    }
}

@testable import MechaAPI
import MechaComponents
import MechaCore
@testable import MechaHTTP
import MechaRuntime
import MechaTesting
import Synchronization
import Testing

/// The inbound chain, stage by stage, as daprd behaves (token, allow/deny on both protocols,
/// `middleware.http.ratelimit`), with time injected.
@Suite("Inbound chain")
struct InboundChainTests {
    static func http(_ api: String, _ version: String = "v1.0", route: String? = nil, token: String? = nil) -> InboundOperation {
        InboundOperation(surface: .http, api: api, version: api.isEmpty ? "" : version, route: route ?? api, apiToken: token)
    }

    static func grpc(_ method: String, token: String? = nil) -> InboundOperation {
        InboundOperation(grpcMethod: "/dapr.proto.runtime.v1.Dapr/" + method, apiToken: token)
    }

    static func rule(_ name: String, _ version: String, _ proto: APIAccessRule.APIProtocol?) -> APIAccessRule {
        APIAccessRule(name: name, version: version, apiProtocol: proto)
    }

    // MARK: API token

    @Test func httpTokenIsRequiredButForHealth() throws {
        let chain = InboundChain(apiToken: "s3cr3t")
        #expect(chain.check(Self.http("state", token: "s3cr3t")) == nil)
        for sent in [nil, "wrong", "S3CR3T", ""] as [String?] {
            let rejection = try #require(chain.check(Self.http("state", token: sent)))
            guard case .text(let status, let body, let headers) = rejection else {
                Issue.record("expected a text answer, got \(rejection)")
                continue
            }
            #expect(status == 401)
            #expect(body == "invalid api token\n")
            #expect(headers.map { "\($0.name): \($0.value)" } == ["Content-Type: text/plain; charset=utf-8", "X-Content-Type-Options: nosniff"])
        }
        #expect(chain.check(Self.http("healthz")) == nil)
        // An unknown path (the invoke fallback) needs it too.
        #expect(chain.check(Self.http("")) != nil)
        #expect(chain.apiToken == "s3cr3t")
        #expect(InboundChain(apiToken: "").apiToken == nil)
        #expect(InboundChain(apiToken: "").isEmpty(for: .http))
    }

    @Test func grpcTokenAnswersAsDaprd() throws {
        let chain = InboundChain(apiToken: "s3cr3t")
        #expect(chain.check(Self.grpc("GetState", token: "s3cr3t")) == nil)
        guard case .status(401, let missing)? = chain.check(Self.grpc("GetState")) else { Issue.record("missing token"); return }
        #expect(missing == "missing api token in request metadata")
        guard case .status(401, let mismatch)? = chain.check(Self.grpc("GetState", token: "nope")) else { Issue.record("wrong token"); return }
        #expect(mismatch == "authentication error: api token mismatch")
        // Proxied calls (other services) need it as well.
        #expect(chain.check(InboundOperation(grpcMethod: "/test.Echo/Unary", apiToken: nil)) != nil)
    }

    // MARK: Allow / deny on HTTP (daprd pkg/api/http/endpoints)

    @Test func httpDenyRulesUnrouteByNameVersionOrPrefix() {
        for denied in [Self.rule("state", "v1.0", .http), Self.rule("state", "v1", .http), Self.rule("stat", "v1.0", .http)] {
            let chain = InboundChain(apiDenied: [denied])
            #expect(Self.isUnrouted(chain.check(Self.http("state"))), "\(denied)")
            #expect(chain.check(Self.http("metadata")) == nil, "\(denied)")
        }
        // Names compare exactly; rules of another protocol, or of none, do not apply to HTTP.
        for ignored in [Self.rule("STATE", "v1.0", .http), Self.rule("state", "v1", .grpc), Self.rule("state", "v1.0", nil)] {
            #expect(InboundChain(apiDenied: [ignored]).check(Self.http("state")) == nil, "\(ignored)")
        }
        // `publish/bulk` is matched by the legacy prefix `v1.0-alpha1/publish`.
        let bulk = InboundChain(apiDenied: [Self.rule("publish", "v1.0-alpha1", .http)])
        #expect(Self.isUnrouted(bulk.check(Self.http("publish", "v1.0-alpha1", route: "publish/bulk"))))
        #expect(bulk.check(Self.http("publish")) == nil)
    }

    @Test func httpAllowListServesOnlyItsEntriesAndDenyWins() {
        let chain = InboundChain(
            apiAllowed: [Self.rule("state", "v1.0", .http), Self.rule("metadata", "v1", .http), Self.rule("secrets", "v1", .grpc)],
            apiDenied: [Self.rule("metadata", "v1.0", .http)]
        )
        #expect(chain.check(Self.http("state")) == nil)
        #expect(Self.isUnrouted(chain.check(Self.http("metadata"))))
        #expect(Self.isUnrouted(chain.check(Self.http("secrets"))))
        #expect(!chain.access.exposes(DaprHTTPServer.invokeOperation))
        // Health checks and unknown paths are never listed.
        #expect(chain.check(Self.http("healthz")) == nil)
        #expect(chain.check(Self.http("")) == nil)
        // An allow list of gRPC rules only leaves HTTP open.
        let grpcOnly = InboundChain(apiAllowed: [Self.rule("state", "v1", .grpc)])
        #expect(grpcOnly.check(Self.http("metadata")) == nil)
        #expect(grpcOnly.access.exposes(DaprHTTPServer.invokeOperation))
    }

    @Test func httpChecksTheTokenBeforeTheLists() {
        let chain = InboundChain(apiToken: "t", apiDenied: [Self.rule("state", "v1.0", .http)])
        guard case .text(401, _, _)? = chain.check(Self.http("state")) else {
            Issue.record("daprd checks the token before routing")
            return
        }
        #expect(Self.isUnrouted(chain.check(Self.http("state", token: "t"))))
    }

    // MARK: Allow / deny on gRPC (daprd pkg/api/grpc/endpoints.go)

    @Test func grpcAllowListRefusesOtherMethodsAsUnimplemented() {
        let chain = InboundChain(apiAllowed: [Self.rule("state", "v1", .grpc)])
        for method in ["GetState", "GetBulkState", "SaveState", "DeleteState", "DeleteBulkState", "ExecuteStateTransaction"] {
            #expect(chain.check(Self.grpc(method)) == nil, "\(method)")
        }
        for method in ["QueryStateAlpha1", "GetMetadata", "PublishEvent", "InvokeService", "SomethingNew"] {
            guard case .status(501, let detail)? = chain.check(Self.grpc(method)) else {
                Issue.record("\(method) should be refused")
                continue
            }
            #expect(detail == "requested endpoint is not available")
        }
        // Calls of other services (gRPC proxying) are never checked.
        #expect(chain.check(InboundOperation(grpcMethod: "/test.Echo/Unary", apiToken: nil)) == nil)
        // HTTP rules do not apply to gRPC.
        #expect(InboundChain(apiAllowed: [Self.rule("metadata", "v1.0", .http)]).check(Self.grpc("GetState")) == nil)
        #expect(InboundChain(apiDenied: [Self.rule("state", "v1", nil)]).check(Self.grpc("GetState")) == nil)
    }

    @Test func grpcRulesNameDaprdsTableExactly() {
        // `v1.0` is no gRPC version: the rule stands for no method, so the allow list is empty and
        // daprd lets everything through.
        #expect(InboundChain(apiAllowed: [Self.rule("state", "v1.0", .grpc)]).check(Self.grpc("GetMetadata")) == nil)
        // Versions split the methods.
        let alpha = InboundChain(apiDenied: [Self.rule("lock", "v1alpha1", .grpc)])
        #expect(alpha.check(Self.grpc("TryLockAlpha1")) != nil)
        #expect(alpha.check(Self.grpc("UnlockAlpha1")) == nil)
        let configuration = InboundChain(apiDenied: [Self.rule("configuration", "v1", .grpc)])
        #expect(configuration.check(Self.grpc("GetConfiguration")) != nil)
        #expect(configuration.check(Self.grpc("GetConfigurationAlpha1")) == nil)
        // The operation carries the rule's name and version.
        let operation = Self.grpc("ConverseAlpha2")
        #expect(operation.api == "conversation" && operation.version == "v1alpha2")
    }

    @Test func grpcChecksTheListsBeforeTheToken() {
        let chain = InboundChain(apiToken: "t", apiDenied: [Self.rule("state", "v1", .grpc)])
        guard case .status(501, _)? = chain.check(Self.grpc("GetState")) else {
            Issue.record("daprd's allow-list interceptor runs before its token interceptor")
            return
        }
        guard case .status(401, _)? = chain.check(Self.grpc("GetMetadata")) else {
            Issue.record("the token is still required")
            return
        }
    }

    // MARK: Rate limit (middleware.http.ratelimit)

    final class TestClock: Sendable {
        let start = ContinuousClock.now
        let offset = Mutex(Duration.zero)
        var now: ContinuousClock.Instant { self.start + self.offset.withLock { $0 } }
        func advance(_ duration: Duration) { self.offset.withLock { $0 += duration } }
    }

    static func limited(_ path: String = "/v1.0/state/s/k", remote: String = "10.0.0.1:5000", forwardedFor: String? = nil, realIP: String? = nil) -> InboundOperation {
        var operation = Self.http("state")
        operation.path = path
        operation.client = InboundClient(remoteAddress: remote, forwardedFor: forwardedFor, realIP: realIP)
        return operation
    }

    @Test func rateLimitIsATokenBucketPerCallerAndPath() throws {
        let clock = TestClock()
        let limiter = RateLimitMiddleware(configuration: .init(maxRequestsPerSecond: 2), now: { clock.now })
        let chain = InboundChain(rateLimits: [limiter])
        #expect(chain.readsClient)
        // Burst 2, then nothing until tokens come back at 2 a second.
        #expect(chain.check(Self.limited()) == nil)
        #expect(chain.check(Self.limited()) == nil)
        let rejection = try #require(chain.check(Self.limited()))
        guard case .text(let status, let body, let headers) = rejection else {
            Issue.record("expected tollbooth's text answer")
            return
        }
        #expect(status == 429)
        #expect(body == "You have reached maximum request limit.")
        #expect(
            headers.map { "\($0.name): \($0.value)" } == [
                "X-Rate-Limit-Limit: 2.00", "X-Rate-Limit-Duration: 1", "X-Rate-Limit-Request-Remote-Addr: 10.0.0.1:5000",
                "RateLimit-Limit: 2", "RateLimit-Reset: 1", "RateLimit-Remaining: 0", "Content-Type: text/plain; charset=utf-8",
            ])
        // Another path, another caller: their own buckets.
        #expect(chain.check(Self.limited("/v1.0/metadata")) == nil)
        #expect(chain.check(Self.limited(remote: "10.0.0.2:5000")) == nil)
        // The same caller from another port is the same caller.
        #expect(chain.check(Self.limited(remote: "10.0.0.1:6000")) != nil)
        clock.advance(.milliseconds(499))
        #expect(chain.check(Self.limited()) != nil)
        clock.advance(.milliseconds(1))
        #expect(chain.check(Self.limited()) == nil)
        #expect(chain.check(Self.limited()) != nil)
        // Refills stop at the burst.
        clock.advance(.seconds(60))
        #expect(chain.check(Self.limited()) == nil)
        #expect(chain.check(Self.limited()) == nil)
        #expect(chain.check(Self.limited()) != nil)
        // gRPC is not rate limited.
        #expect(chain.check(Self.grpc("GetState")) == nil)
    }

    @Test func rateLimitFindsTheCallerAsTollbooth() {
        let clock = TestClock()
        let limiter = RateLimitMiddleware(configuration: .init(maxRequestsPerSecond: 0.5), now: { clock.now })
        // Burst max(1, Int(0.5)) = 1.
        #expect(limiter.check(Self.limited(forwardedFor: "1.1.1.1, 2.2.2.2")) == nil)
        // The last X-Forwarded-For entry is the caller, whatever the peer.
        #expect(limiter.check(Self.limited(remote: "9.9.9.9:1", forwardedFor: "3.3.3.3,2.2.2.2 ")) != nil)
        // Then X-Real-IP, then the peer.
        #expect(limiter.check(Self.limited(remote: "9.9.9.9:1", realIP: "2.2.2.2")) != nil)
        #expect(limiter.check(Self.limited(remote: "2.2.2.2:7")) != nil)
        #expect(limiter.check(Self.limited(remote: "4.4.4.4:7", realIP: "")) == nil)
        // IPv6 callers count by their /64.
        #expect(limiter.check(Self.limited(remote: "[2001:db8:1:2::1]:80")) == nil)
        #expect(limiter.check(Self.limited(remote: "[2001:db8:1:2:ffff::9]:81")) != nil)
        #expect(limiter.check(Self.limited(remote: "[2001:db8:1:3::1]:80")) == nil)
        // The path is compared decoded, as Go's URL.Path.
        #expect(limiter.check(Self.limited("/v1.0/state/a%62c")) == nil)
        #expect(limiter.check(Self.limited("/v1.0/state/abc")) != nil)
        clock.advance(.seconds(2))
        #expect(limiter.check(Self.limited(forwardedFor: "2.2.2.2")) == nil)
        if case .text(_, _, let headers)? = limiter.check(Self.limited(forwardedFor: "2.2.2.2")) {
            #expect(headers.first { $0.name == "X-Rate-Limit-Limit" }?.value == "0.50")
            #expect(headers.first { $0.name == "X-Rate-Limit-Request-Forwarded-For" }?.value == "2.2.2.2")
            #expect(headers.first { $0.name == "RateLimit-Limit" }?.value == "1")
        } else {
            Issue.record("expected a 429")
        }
    }

    @Test func rateLimitTracksABoundedNumberOfCallers() {
        let clock = TestClock()
        let limiter = RateLimitMiddleware(configuration: .init(maxRequestsPerSecond: 1), maxTrackedCallers: 2, now: { clock.now })
        #expect(limiter.check(Self.limited(remote: "1.0.0.1:1")) == nil)
        clock.advance(.milliseconds(100))
        #expect(limiter.check(Self.limited(remote: "1.0.0.2:1")) == nil)
        // A third caller evicts the one idle longest (no bucket has refilled yet).
        #expect(limiter.check(Self.limited(remote: "1.0.0.3:1")) == nil)
        #expect(limiter.trackedKeys == 2)
        #expect(limiter.check(Self.limited(remote: "1.0.0.2:1")) != nil)
        // Once buckets have refilled they are dropped first, which nobody can tell.
        clock.advance(.seconds(5))
        #expect(limiter.check(Self.limited(remote: "1.0.0.4:1")) == nil)
        #expect(limiter.trackedKeys == 1)
    }

    @Test(arguments: [
        ("::1", "v6/64:0000000000000000"), ("2001:db8::", "v6/64:20010db800000000"), ("1:2:3:4:5:6:7:8", "v6/64:0001000200030004"),
        ("::ffff:1.2.3.4", "v6/64:0000000000000000"), ("1.2.3.4", "1.2.3.4"), ("not-an-ip", "not-an-ip"), ("1:::2", "1:::2"),
        ("fe80::1%eth0", "fe80::1%eth0"),
    ])
    func ipv6CallersAreKeyedByTheirPrefix(ip: String, key: String) {
        #expect(RateLimitMiddleware.canonicalIP(ip) == key)
    }

    // MARK: The component and the chain built from a Configuration

    @Test func rateLimitMetadataIsCheckedAsComponentsContrib() async throws {
        #expect(try HTTPRateLimitConfiguration(metadata: ComponentMetadata()).maxRequestsPerSecond == 100)
        #expect(try HTTPRateLimitConfiguration(metadata: ComponentMetadata(["MaxRequestsPerSecond": "12.5"])).maxRequestsPerSecond == 12.5)
        for bad in ["0", "-1", "", "nan"] {
            let error = #expect(throws: ComponentConfigurationError.self, "\(bad)") {
                _ = try HTTPRateLimitConfiguration(metadata: ComponentMetadata(["maxRequestsPerSecond": bad]))
            }
            #expect(error?.reason == "metadata property maxRequestsPerSecond must be a positive value")
        }
        #expect(throws: ComponentConfigurationError.self) {
            _ = try HTTPRateLimitConfiguration(metadata: ComponentMetadata(["maxRequestsPerSecond": "ten"]))
        }
        let factory = try BuiltInComponents.registry.factory(for: ComponentType(.middleware, "http.ratelimit"), version: "v1").get()
        let spec = ComponentSpec(name: "limiter", type: factory.type, metadata: ComponentMetadata(["maxRequestsPerSecond": "3"]))
        let context = ComponentContext(appID: "app", dataDirectory: "/tmp", instanceID: "test")
        let component = try await factory.make(spec: spec, context: context)
        #expect((component as? HTTPRateLimitComponent)?.configuration.maxRequestsPerSecond == 3)
    }

    @Test func chainTakesTheLoadedRateLimitsOfTheHTTPPipeline() {
        let store = ComponentStore()
        let type = HTTPRateLimitConfiguration.componentType
        store.add(HTTPRateLimitComponent(configuration: .init(maxRequestsPerSecond: 1)), spec: ComponentSpec(name: "limiter", type: type))
        store.add(HTTPRateLimitComponent(configuration: .init(maxRequestsPerSecond: 1)), spec: ComponentSpec(name: "other", type: type))
        let configuration = ConfigurationSpec(
            apiDenied: [Self.rule("state", "v1", .grpc)],
            httpPipeline: [
                PipelineHandler(name: "limiter", type: "middleware.http.ratelimit"),
                // Not loaded, or loaded with another type: skipped, as daprd does.
                PipelineHandler(name: "missing", type: "middleware.http.ratelimit"),
                PipelineHandler(name: "other", type: "middleware.http.oauth2"),
            ]
        )
        #expect(InboundChain.rateLimits(configuration.httpPipeline, components: store).count == 1)
        let chain = InboundChain(apiToken: "t", configuration: configuration, components: store)
        #expect(chain.readsClient)
        #expect(chain.check(Self.grpc("GetState", token: "t")) != nil)
        var operation = Self.limited()
        operation.apiToken = "t"
        #expect(chain.check(operation) == nil)
        #expect(chain.check(operation) != nil)
        #expect(!InboundChain(apiToken: nil, configuration: nil, components: store).readsClient)
    }

    @Test func aSidecarLoadsARateLimitComponent() async throws {
        let component = """
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: limiter
            spec:
              type: middleware.http.ratelimit
              version: v1
              metadata:
              - name: maxRequestsPerSecond
                value: "10"

            """
        try await InProcessSidecar.with(resources: ["limiter.yaml": component]) { sidecar in
            try await TestHTTP.with { http in
                let metadata = try await http.get(port: sidecar.httpPort, "/v1.0/metadata")
                #expect(metadata.status == 200)
                #expect(metadata.text.contains(#""type":"middleware.http.ratelimit""#), "\(metadata.text)")
            }
        }
    }

    // MARK: Helpers

    static func isUnrouted(_ rejection: InboundRejection?) -> Bool {
        if case .unrouted? = rejection { return true }
        return false
    }
}

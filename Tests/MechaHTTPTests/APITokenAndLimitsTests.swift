import MechaCore
import MechaSidecar
import MechaTesting
import NIOHTTP1
import Testing

@Suite("HTTP API token")
struct APITokenTests {
    static let token = "s3cr3t-Token"

    static func withTokenSidecar<Output: Sendable>(_ body: (_ port: Int, _ http: TestHTTP) async throws -> Output) async throws -> Output {
        try await InProcessSidecar.with(resources: ["state.yaml": APIYAML.inMemory()], environment: ["DAPR_API_TOKEN": Self.token]) { sidecar in
            try await TestHTTP.with { http in try await body(sidecar.httpPort, http) }
        }
    }

    static func expectUnauthorized(_ response: TestHTTPResponse, _ label: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(response.status == 401, "\(label)", sourceLocation: sourceLocation)
        #expect(response.text == "invalid api token\n", "\(label)", sourceLocation: sourceLocation)
        #expect(response.header("content-type") == "text/plain; charset=utf-8", "\(label)", sourceLocation: sourceLocation)
        #expect(response.header("x-content-type-options") == "nosniff", "\(label)", sourceLocation: sourceLocation)
    }

    static let protectedRequests: [(HTTPMethod, String, String?)] = [
        (.GET, "/v1.0/state/statestore/k", nil),
        (.POST, "/v1.0/state/statestore", #"[{"key":"k","value":1}]"#),
        (.DELETE, "/v1.0/state/statestore/k", nil),
        (.POST, "/v1.0/state/statestore/bulk", #"{"keys":["k"]}"#),
        (.POST, "/v1.0/state/statestore/transaction", #"{"operations":[]}"#),
        (.GET, "/v1.0/metadata", nil),
        (.PUT, "/v1.0/metadata/k", "v"),
        (.GET, "/v1.0/secrets/store/key", nil),
        (.GET, "/v1.0/secrets/store/bulk", nil),
        (.POST, "/v1.0/bindings/files", #"{"operation":"list"}"#),
        (.POST, "/v1.0/publish/pubsub/topic", "{}"),
        (.POST, "/v1.0/shutdown", nil),
        (.GET, "/v1.0/invoke/other/method/healthz", nil),
        (.GET, "/some/app/path", nil),
        (.PUT, "/v1.0/healthz", nil),
        (.POST, "/v1.0/healthz/outbound", nil),
        (.GET, "/v1.0/healthzz", nil),
    ]

    @Test func everyRouteButHealthNeedsTheToken() async throws {
        try await Self.withTokenSidecar { port, http in
            for (method, path, body) in Self.protectedRequests {
                let label = "\(method) \(path)"
                let missing = try await http.request(method, port: port, path, body: body.map { Array($0.utf8) })
                Self.expectUnauthorized(missing, label + " without a token")
                let wrong = try await http.request(method, port: port, path, headers: [("dapr-api-token", "wrong")], body: body.map { Array($0.utf8) })
                Self.expectUnauthorized(wrong, label + " with a wrong token")
                let caseChanged = try await http.request(method, port: port, path, headers: [("dapr-api-token", Self.token.uppercased())], body: body.map { Array($0.utf8) })
                Self.expectUnauthorized(caseChanged, label + " with the token in another case")
            }
            // The refused shutdown did not stop anything.
            try await http.get(port: port, "/v1.0/healthz").expectNoContent()
        }
    }

    @Test func healthChecksAreExempt() async throws {
        try await Self.withTokenSidecar { port, http in
            _ = try await http.waitFor(port: port, "/v1.0/healthz", timeout: .seconds(10))
            try await http.get(port: port, "/v1.0/healthz").expectNoContent()
            try await http.get(port: port, "/v1.0/healthz?appid=testapp").expectNoContent()
            try await http.get(port: port, "/v1.0/healthz/outbound").expectNoContent()
            // A wrong token on an exempt route does not matter either.
            try await http.get(port: port, "/v1.0/healthz", headers: [("dapr-api-token", "wrong")]).expectNoContent()
        }
    }

    @Test func theRightTokenOpensTheAPI() async throws {
        try await Self.withTokenSidecar { port, http in
            let headers = [("dapr-api-token", Self.token)]
            let saved = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"k","value":"v"}]"#, headers: headers)
            saved.expectNoContent()
            // The header name is case-insensitive.
            let read = try await http.get(port: port, "/v1.0/state/statestore/k", headers: [("Dapr-Api-Token", Self.token)])
            #expect(read.status == 200)
            #expect(read.text == #""v""#)
            #expect(try await http.get(port: port, "/v1.0/metadata", headers: headers).status == 200)
            // Past the token check, routing works as usual.
            let unknown = try await http.get(port: port, "/v1.0/nothing", headers: headers)
            #expect(unknown.status == 404)
            #expect(unknown.text == apiNoAppIDBody)
        }
    }

    @Test func anEmptyTokenTurnsAuthenticationOff() async throws {
        try await InProcessSidecar.with(resources: [:], environment: ["DAPR_API_TOKEN": ""]) { sidecar in
            try await TestHTTP.with { http in
                let response = try await http.get(port: sidecar.httpPort, "/v1.0/metadata")
                #expect(response.status == 200)
            }
        }
    }
}

@Suite("HTTP request body limit")
struct BodyLimitTests {
    static func withLimit<Output: Sendable>(_ limit: Int, _ body: (_ port: Int, _ http: TestHTTP) async throws -> Output) async throws -> Output {
        try await withAPIScratchDirectory { directory in
            let resources = ["state.yaml": APIYAML.inMemory(), "files.yaml": APIYAML.localStorage("files", root: directory + "/files")]
            return try await InProcessSidecar.with(resources: resources, configure: { $0.maxBodySize = limit }) { sidecar in
                try await TestHTTP.with { http in try await body(sidecar.httpPort, http) }
            }
        }
    }

    /// A save body of exactly `size` bytes.
    static func saveBody(size: Int, key: String = "big") -> String {
        let head = #"[{"key":"\#(key)","value":""#
        let tail = #""}]"#
        return head + String(repeating: "x", count: size - head.utf8.count - tail.utf8.count) + tail
    }

    static let padding = String(repeating: "p", count: 2048)

    @Test func oversizedBodiesAreRefusedPerRoute() async throws {
        try await Self.withLimit(1024) { port, http in
            // Save reports the reader's text alone; bulk, transactions and bindings wrap it.
            let save = try await http.post(port: port, "/v1.0/state/statestore", json: Self.saveBody(size: 2048))
            #expect(save.text == #"{"errorCode":"ERR_MALFORMED_REQUEST","message":"stream too large"}"#)
            try save.expectError(400, "ERR_MALFORMED_REQUEST", "stream too large")
            #expect(try await http.get(port: port, "/v1.0/state/statestore/big").status == 204)

            let bulk = try await http.post(port: port, "/v1.0/state/statestore/bulk", json: #"{"keys":[],"pad":"\#(Self.padding)"}"#)
            try bulk.expectError(400, "ERR_MALFORMED_REQUEST", "failed deserializing HTTP body: stream too large")

            let transaction = try await http.post(port: port, "/v1.0/state/statestore/transaction", json: #"{"operations":[],"pad":"\#(Self.padding)"}"#)
            try transaction.expectError(400, "ERR_MALFORMED_REQUEST", "failed deserializing HTTP body: stream too large")

            let binding = try await http.post(port: port, "/v1.0/bindings/files", json: #"{"operation":"create","data":"\#(Self.padding)"}"#)
            try binding.expectError(400, "ERR_MALFORMED_REQUEST", "failed deserializing HTTP body: stream too large")
            // The body is read before the binding is looked up.
            let unknownBinding = try await http.post(port: port, "/v1.0/bindings/nope", json: #"{"operation":"create","data":"\#(Self.padding)"}"#)
            try unknownBinding.expectError(400, "ERR_MALFORMED_REQUEST", "failed deserializing HTTP body: stream too large")

            let metadata = try await http.putBytes(port: port, "/v1.0/metadata/big", body: Array(Self.padding.utf8))
            try metadata.expectError(400, "ERR_BODY_READ", "failed to read request body: stream too large")

            // The store is looked up before the body is read.
            let unknownStore = try await http.post(port: port, "/v1.0/state/nostore", json: Self.saveBody(size: 2048))
            #expect(unknownStore.status == 400)
            #expect(try unknownStore.daprError().errorCode == "ERR_STATE_STORE_NOT_FOUND")

            // The sidecar keeps serving normally afterwards.
            let small = try await http.post(port: port, "/v1.0/state/statestore", json: #"[{"key":"small","value":1}]"#)
            small.expectNoContent()
        }
    }

    @Test func theLimitIsInclusive() async throws {
        try await Self.withLimit(1024) { port, http in
            let exact = try await http.post(port: port, "/v1.0/state/statestore", json: Self.saveBody(size: 1024))
            exact.expectNoContent()
            let read = try await http.get(port: port, "/v1.0/state/statestore/big")
            #expect(read.status == 200)
            // The stored value is the body minus `[{"key":"big","value":` and `}]`.
            #expect(read.body.count == 1024 - #"[{"key":"big","value":"#.utf8.count - 2)

            let over = try await http.post(port: port, "/v1.0/state/statestore", json: Self.saveBody(size: 1025, key: "big2"))
            try over.expectError(400, "ERR_MALFORMED_REQUEST", "stream too large")
        }
    }

    /// The default limit is 4 MiB.
    @Test func defaultLimitIsFourMebibytes() async throws {
        try await InProcessSidecar.with(resources: ["state.yaml": APIYAML.inMemory()]) { sidecar in
            try await TestHTTP.with { http in
                let fits = try await http.post(port: sidecar.httpPort, "/v1.0/state/statestore", json: Self.saveBody(size: 4 << 20))
                fits.expectNoContent()
                let tooBig = try await http.post(port: sidecar.httpPort, "/v1.0/state/statestore", json: Self.saveBody(size: (4 << 20) + 1))
                try tooBig.expectError(400, "ERR_MALFORMED_REQUEST", "stream too large")
            }
        }
    }
}

@Suite("HTTP API allow and deny lists")
struct APIAccessListTests {
    static func withRules<Output: Sendable>(
        allowed: [(String, String, String)]? = nil,
        denied: [(String, String, String)]? = nil,
        _ body: (_ port: Int, _ http: TestHTTP) async throws -> Output
    ) async throws -> Output {
        try await withAPIScratchDirectory { directory in
            let secrets = directory + "/secrets.json"
            try TestEnvironment.write(#"{"s":"v"}"#, to: secrets)
            let resources = [
                "state.yaml": APIYAML.inMemory(),
                "secrets.yaml": APIYAML.localFileSecrets("local", file: secrets),
                "files.yaml": APIYAML.localStorage("files", root: directory + "/files"),
            ]
            return try await InProcessSidecar.with(resources: resources, configuration: APIYAML.apiRules(allowed: allowed, denied: denied)) { sidecar in
                try await TestHTTP.with { http in try await body(sidecar.httpPort, http) }
            }
        }
    }

    /// One request per API group, with the status it gets when the group is served (publish has
    /// no pub/sub here: any answer but the invoke fallback shows it is served).
    static let probes: [String: (HTTPMethod, String, String?, Int?)] = [
        "state": (.GET, "/v1.0/state/statestore/k", nil, 204),
        "metadata": (.GET, "/v1.0/metadata", nil, 200),
        "secrets": (.GET, "/v1.0/secrets/local/s", nil, 200),
        "bindings": (.POST, "/v1.0/bindings/files", #"{"operation":"list"}"#, 200),
        "publish": (.POST, "/v1.0/publish/nopubsub/topic", "{}", nil),
    ]

    static func probe(_ group: String, port: Int, http: TestHTTP) async throws -> TestHTTPResponse {
        let (method, path, body, _) = try #require(Self.probes[group])
        return try await http.request(method, port: port, path, body: body.map { Array($0.utf8) })
    }

    static func expectServed(_ group: String, port: Int, http: TestHTTP, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let response = try await Self.probe(group, port: port, http: http)
        if let status = Self.probes[group]?.3 {
            #expect(response.status == status, "\(group) should be served: \(response.status) \(response.text)", sourceLocation: sourceLocation)
        } else {
            #expect(try response.daprError(sourceLocation: sourceLocation).errorCode.hasPrefix("ERR_PUBSUB"), "\(group): \(response.text)", sourceLocation: sourceLocation)
        }
    }

    /// A route that is not registered falls through to invoke, which has no target.
    static func expectFallback(_ group: String, port: Int, http: TestHTTP, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let response = try await Self.probe(group, port: port, http: http)
        #expect(response.status == 404, "\(group)", sourceLocation: sourceLocation)
        #expect(response.text == apiNoAppIDBody, "\(group)", sourceLocation: sourceLocation)
    }

    /// With invoke not served either, the router's plain 404.
    static func expectPlainNotFound(_ response: TestHTTPResponse, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(response.status == 404, sourceLocation: sourceLocation)
        #expect(response.text == "404 page not found\n", sourceLocation: sourceLocation)
        #expect(response.header("content-type") == "text/plain; charset=utf-8", sourceLocation: sourceLocation)
    }

    @Test(arguments: ["state", "metadata", "secrets", "bindings", "publish"])
    func deniedGroupFallsThroughToInvoke(group: String) async throws {
        try await Self.withRules(denied: [(group, "v1.0", "http")]) { port, http in
            try await Self.expectFallback(group, port: port, http: http)
            for other in Self.probes.keys where other != group {
                try await Self.expectServed(other, port: port, http: http)
            }
            // Health checks are always served.
            _ = try await http.waitFor(port: port, "/v1.0/healthz", timeout: .seconds(10))
            try await http.get(port: port, "/v1.0/healthz/outbound").expectNoContent()
        }
    }

    /// Rules also match by group version (`v1`) and by route prefix.
    @Test(arguments: [("state", "v1"), ("STATE", "v1.0"), ("stat", "v1.0")])
    func ruleMatching(name: String, version: String) async throws {
        try await Self.withRules(denied: [(name, version, "http")]) { port, http in
            if name == "STATE" {
                // Names are compared exactly.
                try await Self.expectServed("state", port: port, http: http)
            } else {
                try await Self.expectFallback("state", port: port, http: http)
            }
            try await Self.expectServed("metadata", port: port, http: http)
        }
    }

    @Test func deniedShutdownIsNotServed() async throws {
        try await Self.withRules(denied: [("shutdown", "v1.0", "http")]) { port, http in
            let response = try await http.request(.POST, port: port, "/v1.0/shutdown")
            #expect(response.status == 404)
            #expect(response.text == apiNoAppIDBody)
            _ = try await http.waitFor(port: port, "/v1.0/healthz", timeout: .seconds(10))
        }
    }

    @Test func grpcRulesDoNotAffectHTTP() async throws {
        try await Self.withRules(allowed: [("metadata", "v1.0", "grpc")], denied: [("state", "v1.0", "grpc")]) { port, http in
            for group in Self.probes.keys { try await Self.expectServed(group, port: port, http: http) }
        }
    }

    @Test func ruleWithoutProtocolIsIgnoredByHTTP() async throws {
        try await Self.withRules(denied: [("state", "v1.0", "")]) { port, http in
            try await Self.expectServed("state", port: port, http: http)
        }
    }

    @Test func allowListServesOnlyItsEntries() async throws {
        try await Self.withRules(allowed: [("metadata", "v1.0", "http")]) { port, http in
            try await Self.expectServed("metadata", port: port, http: http)
            let put = try await http.putBytes(port: port, "/v1.0/metadata/k", body: Array("v".utf8))
            put.expectNoContent()
            // Invoke is not allowed, so there is no invoke fallback: the router's plain 404.
            for group in ["state", "secrets", "bindings", "publish"] {
                Self.expectPlainNotFound(try await Self.probe(group, port: port, http: http))
            }
            Self.expectPlainNotFound(try await http.get(port: port, "/v1.0/invoke/other/method/x"))
            Self.expectPlainNotFound(try await http.get(port: port, "/anything"))
            _ = try await http.waitFor(port: port, "/v1.0/healthz", timeout: .seconds(10))
        }
    }

    @Test func allowListWithInvokeKeepsTheFallback() async throws {
        try await Self.withRules(allowed: [("state", "v1.0", "http"), ("invoke", "v1.0", "http")]) { port, http in
            try await Self.expectServed("state", port: port, http: http)
            try await Self.expectFallback("metadata", port: port, http: http)
            try await Self.expectFallback("secrets", port: port, http: http)
        }
    }

    @Test func denyWinsOverAllow() async throws {
        try await Self.withRules(allowed: [("state", "v1.0", "http"), ("metadata", "v1", "http")], denied: [("state", "v1", "http")]) { port, http in
            Self.expectPlainNotFound(try await Self.probe("state", port: port, http: http))
            try await Self.expectServed("metadata", port: port, http: http)
        }
    }
}

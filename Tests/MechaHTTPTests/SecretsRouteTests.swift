import MechaCore
import MechaTesting
import NIOHTTP1
import Testing

@Suite("HTTP secrets API")
struct SecretsRouteTests {
    static let secretsJSON = #"{"token":"t0k","db":{"password":"pw","user":"admin"},"list":["a","b"],"shared":"s"}"#

    /// A sidecar with `secretstores.local.file` stores over one secrets file: `local`
    /// (single-valued), `multi` (multi-valued) and `open`, plus an optional Configuration.
    static func withSecrets<Output: Sendable>(
        configuration: String? = nil,
        _ body: (_ port: Int, _ http: TestHTTP) async throws -> Output
    ) async throws -> Output {
        try await withAPIScratchDirectory { directory in
            let file = directory + "/secrets.json"
            try TestEnvironment.write(Self.secretsJSON, to: file)
            let resources = [
                "local.yaml": APIYAML.localFileSecrets("local", file: file),
                "multi.yaml": APIYAML.localFileSecrets("multi", file: file, multiValued: true),
                "open.yaml": APIYAML.localFileSecrets("open", file: file),
            ]
            return try await InProcessSidecar.with(resources: resources, configuration: configuration) { sidecar in
                try await TestHTTP.with { http in try await body(sidecar.httpPort, http) }
            }
        }
    }

    static func scopes(_ lines: String) -> String {
        APIYAML.configuration(spec: "secrets:\n  scopes:\n" + lines.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
    }

    static func expectDenied(_ response: TestHTTPResponse, key: String, store: String = "local", sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(response.status == 403, sourceLocation: sourceLocation)
        #expect(
            response.text == #"{"errorCode":"ERR_PERMISSION_DENIED","message":"access denied by policy to get \"\#(key)\" from \"\#(store)\""}"#,
            sourceLocation: sourceLocation
        )
    }

    // MARK: Reading secrets

    @Test func getOneSecret() async throws {
        try await Self.withSecrets { port, http in
            let token = try await http.get(port: port, "/v1.0/secrets/local/token")
            #expect(token.status == 200)
            #expect(token.header("content-type") == "application/json")
            #expect(token.text == "{\"token\":\"t0k\"}\n")

            // Nested values are flattened with ":" (escaped or not in the URL).
            let nested = try await http.get(port: port, "/v1.0/secrets/local/db:password")
            #expect(nested.text == "{\"db:password\":\"pw\"}\n")
            let escaped = try await http.get(port: port, "/v1.0/secrets/local/db%3Auser?metadata.version_id=1")
            #expect(escaped.status == 200)
            #expect(escaped.text == "{\"db:user\":\"admin\"}\n")
            let item = try await http.get(port: port, "/v1.0/secrets/local/list:1")
            #expect(item.text == "{\"list:1\":\"b\"}\n")
        }
    }

    @Test func multiValuedSecretsReturnEveryKey() async throws {
        try await Self.withSecrets { port, http in
            let db = try await http.get(port: port, "/v1.0/secrets/multi/db")
            #expect(db.status == 200)
            #expect(db.text == "{\"password\":\"pw\",\"user\":\"admin\"}\n")
            let bulk = try await http.get(port: port, "/v1.0/secrets/multi/bulk")
            #expect(bulk.text == "{\"db\":{\"password\":\"pw\",\"user\":\"admin\"},\"shared\":{\"shared\":\"s\"},\"token\":{\"token\":\"t0k\"}}\n")
        }
    }

    /// `/bulk` is matched before `{key}`, so a secret named `bulk` is never read singly.
    @Test func bulkReturnsEverySecretSorted() async throws {
        try await Self.withSecrets { port, http in
            let bulk = try await http.get(port: port, "/v1.0/secrets/local/bulk")
            #expect(bulk.status == 200)
            #expect(bulk.header("content-type") == "application/json")
            #expect(
                bulk.text
                    == "{\"db:password\":{\"db:password\":\"pw\"},\"db:user\":{\"db:user\":\"admin\"},\"list:0\":{\"list:0\":\"a\"},\"list:1\":{\"list:1\":\"b\"},\"shared\":{\"shared\":\"s\"},\"token\":{\"token\":\"t0k\"}}\n"
            )
        }
    }

    // MARK: Errors

    @Test func secretErrors() async throws {
        try await Self.withSecrets { port, http in
            let missing = try await http.get(port: port, "/v1.0/secrets/local/nope")
            try missing.expectError(500, "ERR_SECRET_GET", "failed getting secret with key nope from secret store local: secret nope not found")
            // An object is not a secret once flattened.
            let object = try await http.get(port: port, "/v1.0/secrets/local/db")
            try object.expectError(500, "ERR_SECRET_GET", "failed getting secret with key db from secret store local: secret db not found")

            // An unknown store is 401 (daprd's code; its docs say 400).
            for path in ["/v1.0/secrets/nostore/token", "/v1.0/secrets/nostore/bulk"] {
                let response = try await http.get(port: port, path)
                try response.expectError(401, "ERR_SECRET_STORE_NOT_FOUND", "failed finding secret store with key nostore")
            }

            // Only GET is routed.
            for method in [HTTPMethod.POST, .PUT, .DELETE] {
                let response = try await http.request(method, port: port, "/v1.0/secrets/local/token")
                #expect(response.status == 404)
                #expect(response.text == apiNoAppIDBody)
            }
            let tooDeep = try await http.get(port: port, "/v1.0/secrets/local/a/b")
            #expect(tooDeep.text == apiNoAppIDBody)
        }
    }

    @Test func noSecretStoresConfigured() async throws {
        try await InProcessSidecar.with(resources: ["state.yaml": APIYAML.inMemory()]) { sidecar in
            try await TestHTTP.with { http in
                for path in ["/v1.0/secrets/local/token", "/v1.0/secrets/local/bulk"] {
                    let response = try await http.get(port: sidecar.httpPort, path)
                    #expect(response.text == #"{"errorCode":"ERR_SECRET_STORES_NOT_CONFIGURED","message":"secret store is not configured"}"#)
                    try response.expectError(500, "ERR_SECRET_STORES_NOT_CONFIGURED", "secret store is not configured")
                }
            }
        }
    }

    // MARK: Scopes

    @Test func allowListWithDefaultDeny() async throws {
        let configuration = Self.scopes(
            """
            - storeName: local
              defaultAccess: deny
              allowedSecrets: ["token", "db:user"]
            """
        )
        try await Self.withSecrets(configuration: configuration) { port, http in
            #expect(try await http.get(port: port, "/v1.0/secrets/local/token").text == "{\"token\":\"t0k\"}\n")
            #expect(try await http.get(port: port, "/v1.0/secrets/local/db:user").status == 200)
            Self.expectDenied(try await http.get(port: port, "/v1.0/secrets/local/shared"), key: "shared")
            // The policy is checked before the store: a denied secret that does not exist is 403, not 500.
            Self.expectDenied(try await http.get(port: port, "/v1.0/secrets/local/nope"), key: "nope")
            // Bulk silently leaves out what the policy denies.
            let bulk = try await http.get(port: port, "/v1.0/secrets/local/bulk")
            #expect(bulk.status == 200)
            #expect(bulk.text == "{\"db:user\":{\"db:user\":\"admin\"},\"token\":{\"token\":\"t0k\"}}\n")
            // Stores without a scope are not affected.
            #expect(try await http.get(port: port, "/v1.0/secrets/open/shared").status == 200)
        }
    }

    @Test func denyListWithDefaultAllow() async throws {
        let configuration = Self.scopes(
            """
            - storeName: local
              defaultAccess: allow
              deniedSecrets: ["token"]
            - storeName: multi
              defaultAccess: DENY
            """
        )
        try await Self.withSecrets(configuration: configuration) { port, http in
            Self.expectDenied(try await http.get(port: port, "/v1.0/secrets/local/token"), key: "token")
            #expect(try await http.get(port: port, "/v1.0/secrets/local/shared").text == "{\"shared\":\"s\"}\n")
            let bulk = try await http.get(port: port, "/v1.0/secrets/local/bulk")
            #expect(try !(bulk.parsedJSON.objectMembers ?? []).contains { $0.0 == "token" })
            #expect(try bulk.parsedJSON["shared"] == ["shared": "s"])

            // defaultAccess is case-insensitive; deny with no lists refuses everything.
            Self.expectDenied(try await http.get(port: port, "/v1.0/secrets/multi/db"), key: "db", store: "multi")
            let denied = try await http.get(port: port, "/v1.0/secrets/multi/bulk")
            #expect(denied.status == 200)
            #expect(denied.text == "{}\n")
        }
    }

    /// With a non-empty allow list, the deny list and the default are ignored (daprd's rule).
    @Test func allowListWinsOverDenyList() async throws {
        let configuration = Self.scopes(
            """
            - storeName: local
              defaultAccess: allow
              allowedSecrets: ["token", "shared"]
              deniedSecrets: ["token", "db:user"]
            """
        )
        try await Self.withSecrets(configuration: configuration) { port, http in
            #expect(try await http.get(port: port, "/v1.0/secrets/local/token").status == 200)
            #expect(try await http.get(port: port, "/v1.0/secrets/local/shared").status == 200)
            Self.expectDenied(try await http.get(port: port, "/v1.0/secrets/local/db:user"), key: "db:user")
            Self.expectDenied(try await http.get(port: port, "/v1.0/secrets/local/db:password"), key: "db:password")
            let bulk = try await http.get(port: port, "/v1.0/secrets/local/bulk")
            #expect(bulk.text == "{\"shared\":{\"shared\":\"s\"},\"token\":{\"token\":\"t0k\"}}\n")
        }
    }

    /// A scope naming a store that does not exist is only logged.
    @Test func scopeForUnknownStoreIsHarmless() async throws {
        let configuration = Self.scopes(
            """
            - storeName: ghost
              defaultAccess: deny
            """
        )
        try await Self.withSecrets(configuration: configuration) { port, http in
            #expect(try await http.get(port: port, "/v1.0/secrets/local/token").status == 200)
            try (try await http.get(port: port, "/v1.0/secrets/ghost/token")).expectError(401, "ERR_SECRET_STORE_NOT_FOUND", "failed finding secret store with key ghost")
        }
    }
}

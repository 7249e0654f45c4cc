import HTTPTypes
import Hummingbird
import MechaCore
import MechaSidecar
import MechaTesting
import NIOHTTP1
import Testing

/// Service invocation through the sidecar to its own app: `/v1.0/invoke/{id}/method/{method}`,
/// the `dapr-app-id` header and basic-auth forms, headers, statuses, bodies and errors.
@Suite struct InvocationRouteTests {
    /// The echo app answers `{"method","path","query","body","headers"}`.
    static func echo(_ response: TestHTTPResponse, sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONValue {
        #expect(response.status == 200, "\(response.status) \(response.text)", sourceLocation: sourceLocation)
        return try JSONValue(parsing: response.body)
    }

    static func withApp(
        environment: [String: String] = [:],
        configure: (inout SidecarOptions) -> Void = { _ in },
        _ body: (InProcessSidecar, TestApp, TestHTTP) async throws -> Void
    ) async throws {
        try await RouteTest.withSubscriber(environment: environment, configure: configure, body)
    }

    // MARK: Verbs, paths, queries, bodies

    @Test func everyVerbReachesTheApp() async throws {
        try await Self.withApp { sidecar, app, http in
            for verb in [HTTPMethod.GET, .POST, .PUT, .DELETE, .PATCH] {
                let response = try await http.request(
                    verb,
                    port: sidecar.httpPort,
                    "/v1.0/invoke/testapp/method/echo/items/7",
                    headers: [("content-type", "text/plain")],
                    body: verb == .GET ? nil : Array("body of \(verb.rawValue)".utf8)
                )
                let echo = try Self.echo(response)
                #expect(echo["method"]?.stringValue == verb.rawValue)
                #expect(echo["path"] == "/echo/items/7")
                #expect(echo["body"]?.stringValue == (verb == .GET ? "" : "body of \(verb.rawValue)"))
            }
            // OPTIONS reaches the app too (the test app answers it with its configured response).
            let options = try await http.request(.OPTIONS, port: sidecar.httpPort, "/v1.0/invoke/testapp/method/anything")
            #expect(options.status == 200)
            // An unknown verb is sent as POST.
            let custom = try await http.request(.RAW(value: "PROPFIND"), port: sidecar.httpPort, "/v1.0/invoke/testapp/method/echo/x", body: Array("p".utf8))
            #expect(try Self.echo(custom)["method"] == "POST")
        }
    }

    @Test func queryStringAndMethodPathArePassedOn() async throws {
        try await Self.withApp { sidecar, app, http in
            let query = try Self.echo(try await http.get(port: sidecar.httpPort, "/v1.0/invoke/testapp/method/echo/q?a=1&b=two%20words&a=3&empty="))
            #expect(query["query"] == "a=1&b=two%20words&a=3&empty=")
            #expect(query["path"] == "/echo/q")

            // The method is cleaned like Go's path.Clean.
            let cleaned = try Self.echo(try await http.get(port: sidecar.httpPort, "/v1.0/invoke/testapp/method/echo//a/./b/../c/"))
            #expect(cleaned["path"] == "/echo/a/c")

            // The app id runs up to the first "/method/"; later "/method/" segments belong to the method.
            let nested = try Self.echo(try await http.get(port: sidecar.httpPort, "/v1.0/invoke/testapp/method/echo/method/x"))
            #expect(nested["path"] == "/echo/method/x")

            // Escapes in the method are decoded first, as daprd reads the decoded URL path.
            let escaped = try Self.echo(try await http.get(port: sidecar.httpPort, "/v1.0/invoke/testapp/method/echo/a%2Fb"))
            #expect(escaped["path"] == "/echo/a/b")
            let space = try Self.echo(try await http.get(port: sidecar.httpPort, "/v1.0/invoke/testapp/method/echo/a%20b"))
            #expect(space["path"] == "/echo/a%20b")
            let kept = try Self.echo(try await http.get(port: sidecar.httpPort, "/v1.0/invoke/testapp/method/echo/x:y@z!(1)*;a=b,c&d+e$f~g"))
            #expect(kept["path"] == "/echo/x:y@z!(1)*;a=b,c&d+e$f~g")
            let unicode = try Self.echo(try await http.get(port: sidecar.httpPort, "/v1.0/invoke/testapp/method/echo/caf%C3%A9%25"))
            #expect(unicode["path"] == "/echo/caf%C3%A9%25")

            // An escaped app id is unescaped.
            let escapedID = try Self.echo(try await http.get(port: sidecar.httpPort, "/v1.0/invoke/test%61pp/method/echo/id"))
            #expect(escapedID["path"] == "/echo/id")

            // `<app>.<namespace>` with our own namespace is a call to ourselves.
            let namespaced = try Self.echo(try await http.get(port: sidecar.httpPort, "/v1.0/invoke/testapp.default/method/echo/ns"))
            #expect(namespaced["path"] == "/echo/ns")
        }
    }

    @Test func headersAreForwardedAndIdentityHeadersReplaced() async throws {
        try await Self.withApp { sidecar, app, http in
            let response = try await http.request(
                .POST,
                port: sidecar.httpPort,
                "/v1.0/invoke/testapp/method/echo/h",
                headers: [
                    ("content-type", "application/json; charset=utf-8"),
                    ("x-custom", "yes"),
                    ("x-multi", "one"),
                    ("dapr-caller-app-id", "spoofed"),
                    ("dapr-callee-app-id", "spoofed"),
                    ("dapr-caller-namespace", "spoofed"),
                    ("traceparent", RouteTest.sampleTraceParent),
                ],
                body: Array(#"{"k":"v"}"#.utf8)
            )
            let echo = try Self.echo(response)
            let headers = try #require(echo["headers"])
            #expect(headers["x-custom"] == "yes")
            #expect(headers["x-multi"] == "one")
            #expect(headers["content-type"] == "application/json; charset=utf-8")
            #expect(headers["dapr-caller-app-id"] == "testapp")
            #expect(headers["dapr-callee-app-id"] == "testapp")
            #expect(headers["dapr-caller-namespace"] == "default")
            #expect(headers["traceparent"]?.stringValue == RouteTest.sampleTraceParent)
            #expect(headers["content-length"] == "9")
            #expect(echo["body"] == #"{"k":"v"}"#)
            // No content type sent: none is made up.
            let bare = try Self.echo(try await http.request(.POST, port: sidecar.httpPort, "/v1.0/invoke/testapp/method/echo/bare", body: Array("x".utf8)))
            #expect(bare["headers"]?["content-type"] == nil)
        }
    }

    @Test func statusHeadersAndContentTypeComeBackUnchanged() async throws {
        try await Self.withApp { sidecar, app, http in
            for code in [200, 201, 299, 400, 404, 418, 500, 503] {
                let response = try await http.get(port: sidecar.httpPort, "/v1.0/invoke/testapp/method/status/\(code)")
                #expect(response.status == code)
                #expect(response.header("content-type") == "text/plain")
                // The app's own body, not a Dapr error envelope.
                #expect(response.text == "status \(code)")
            }
            // A JSON answer from a POST route.
            try await http.respond(app, "/created", status: 201, body: #"{"id":5}"#)
            let created = try await http.post(port: sidecar.httpPort, "/v1.0/invoke/testapp/method/created", json: "{}")
            #expect(created.status == 201)
            #expect(created.header("content-type") == "application/json")
            #expect(created.text == #"{"id":5}"#)
            #expect(created.header("content-length") == "8")
        }
    }

    @Test func responsesWithoutContentTypeAndOtherShapes() async throws {
        try await RouteTest.withInlineApp({ router in
            router.get("/fail") { _, _ in Response(status: .internalServerError, body: .init(byteBuffer: ByteBuffer(string: "plain failure"))) }
            router.get("/ok") { _, _ in Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "fine"))) }
            router.get("/cookies") { _, _ in
                var headers = HTTPFields()
                headers.append(HTTPField(name: .setCookie, value: "a=1"))
                headers.append(HTTPField(name: .setCookie, value: "b=2"))
                headers.append(HTTPField(name: HTTPField.Name("x-app-header")!, value: "from-app"))
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: "c")))
            }
            router.get("/chunked") { _, _ in
                Response(status: .ok, headers: [.contentType: "text/plain"], body: .init { writer in
                    for index in 0..<50 {
                        try await writer.write(ByteBuffer(string: String(repeating: Character(String(index % 10)), count: 1000)))
                    }
                    try await writer.finish(nil)
                })
            }
            router.on("/head", method: .head) { _, _ in
                Response(status: .ok, headers: [HTTPField.Name("x-head")!: "yes", .contentLength: "10"])
            }
        }) { port in
            try await InProcessSidecar.with(appID: "inline", appPort: port) { sidecar in
                try await TestHTTP.with { http in
                    // An error answer without a content type is labelled JSON, as daprd does.
                    let fail = try await http.get(port: sidecar.httpPort, "/v1.0/invoke/inline/method/fail")
                    #expect(fail.status == 500)
                    #expect(fail.text == "plain failure")
                    #expect(fail.header("content-type") == "application/json")
                    // A success keeps having none.
                    let ok = try await http.get(port: sidecar.httpPort, "/v1.0/invoke/inline/method/ok")
                    #expect(ok.status == 200)
                    #expect(ok.text == "fine")
                    #expect(ok.header("content-type") == nil)
                    // Repeated and custom headers come back.
                    let cookies = try await http.get(port: sidecar.httpPort, "/v1.0/invoke/inline/method/cookies")
                    #expect(cookies.headers["set-cookie"] == ["a=1", "b=2"])
                    #expect(cookies.header("x-app-header") == "from-app")
                    // A chunked answer streams through.
                    let chunked = try await http.get(port: sidecar.httpPort, "/v1.0/invoke/inline/method/chunked")
                    #expect(chunked.status == 200)
                    #expect(chunked.body.count == 50_000)
                    #expect(chunked.header("content-type") == "text/plain")
                    // HEAD: headers only.
                    let head = try await http.request(.HEAD, port: sidecar.httpPort, "/v1.0/invoke/inline/method/head")
                    #expect(head.status == 200)
                    #expect(head.header("x-head") == "yes")
                    #expect(head.body.isEmpty)
                }
            }
        }
    }

    // MARK: Other ways to name the target

    @Test func daprAppIDHeaderOnAnyPath() async throws {
        try await Self.withApp { sidecar, app, http in
            let echo = try Self.echo(try await http.request(
                .PUT,
                port: sidecar.httpPort,
                "/echo/via/header?x=1",
                headers: [("dapr-app-id", "testapp"), ("content-type", "text/plain")],
                body: Array("put-body".utf8)
            ))
            #expect(echo["method"] == "PUT")
            #expect(echo["path"] == "/echo/via/header")
            #expect(echo["query"] == "x=1")
            #expect(echo["body"] == "put-body")
            #expect(echo["headers"]?["dapr-app-id"] == nil)
            #expect(echo["headers"]?["dapr-caller-app-id"] == "testapp")

            // The path is cleaned.
            let cleaned = try await http.get(port: sidecar.httpPort, "/echo//a/../b", headers: [("dapr-app-id", "testapp")])
            #expect(try Self.echo(cleaned)["path"] == "/echo/b")

            // The header wins even on a /v1.0/invoke path: the method is then that literal path.
            let literal = try await http.post(port: sidecar.httpPort, "/v1.0/invoke/nobody/method/x", json: "{}", headers: [("dapr-app-id", "testapp")])
            #expect(literal.status == 200, "\(literal.text)")
            #expect(try await http.received(app, "/v1.0/invoke/nobody/method/x").count == 1)
        }
    }

    @Test func basicAuthFormNamesTheTarget() async throws {
        try await Self.withApp { sidecar, app, http in
            let credentials = "Basic " + Base64.encode(Array("dapr-app-id:testapp".utf8))
            let echo = try Self.echo(try await http.get(port: sidecar.httpPort, "/echo/basic?q=2", headers: [("authorization", credentials)]))
            #expect(echo["path"] == "/echo/basic")
            #expect(echo["query"] == "q=2")
            // The Authorization header is not removed.
            #expect(echo["headers"]?["authorization"]?.stringValue == credentials)

            // The user name is matched case-insensitively; any other user name is not a target.
            let upper = "Basic " + Base64.encode(Array("DAPR-APP-ID:testapp".utf8))
            #expect(try await http.get(port: sidecar.httpPort, "/echo/upper", headers: [("authorization", upper)]).status == 200)
            let other = "Basic " + Base64.encode(Array("someone:testapp".utf8))
            let refused = try await http.get(port: sidecar.httpPort, "/echo/other", headers: [("authorization", other)])
            #expect(refused.status == 404)
            #expect(refused.jsonBody["errorCode"] == "ERR_DIRECT_INVOKE")
        }
    }

    @Test func noTargetIs404() async throws {
        try await InProcessSidecar.with { sidecar in
            try await TestHTTP.with { http in
                for path in ["/echo/x", "/v1.0/invoke/", "/v1.0/invoke/testapp", "/v1.0/invoke//method/x"] {
                    let response = try await http.get(port: sidecar.httpPort, path)
                    #expect(response.status == 404, "\(path)")
                    #expect(response.jsonBody["errorCode"] == "ERR_DIRECT_INVOKE", "\(path)")
                    #expect(response.jsonBody["message"] == "failed getting app id either from the URL path or the header dapr-app-id", "\(path)")
                }
            }
        }
    }

    // MARK: Errors

    @Test func unknownAppIDIs500() async throws {
        try await InProcessSidecar.with { sidecar in
            try await TestHTTP.with { http in
                let response = try await http.get(port: sidecar.httpPort, "/v1.0/invoke/nobody/method/x")
                #expect(response.status == 500)
                #expect(response.header("content-type") == "application/json")
                #expect(response.jsonBody["errorCode"] == "ERR_DIRECT_INVOKE")
                #expect(response.jsonBody["message"]?.stringValue?.hasPrefix("failed to invoke, id: nobody, err: couldn't find service: nobody") == true, "\(response.text)")
                let viaHeader = try await http.get(port: sidecar.httpPort, "/anything", headers: [("dapr-app-id", "nobody")])
                #expect(viaHeader.status == 500)
                #expect(viaHeader.jsonBody["errorCode"] == "ERR_DIRECT_INVOKE")
            }
        }
    }

    @Test func invalidAppIDIs500() async throws {
        try await InProcessSidecar.with { sidecar in
            try await TestHTTP.with { http in
                let response = try await http.get(port: sidecar.httpPort, "/v1.0/invoke/a.b.c/method/x")
                #expect(response.status == 500)
                #expect(response.jsonBody["errorCode"] == "ERR_DIRECT_INVOKE")
                #expect(response.jsonBody["message"] == "failed to invoke, id: a.b.c, err: invalid app id a.b.c")
            }
        }
    }

    @Test func appDownIs500() async throws {
        let port = TestEnvironment.refusingPort()
        try await InProcessSidecar.with(appID: "lonely", appPort: port) { sidecar in
            try await TestHTTP.with { http in
                let response = try await http.post(port: sidecar.httpPort, "/v1.0/invoke/lonely/method/work", json: "{}")
                #expect(response.status == 500)
                #expect(response.jsonBody["errorCode"] == "ERR_DIRECT_INVOKE")
                let message = response.jsonBody["message"]?.stringValue ?? ""
                #expect(message.hasPrefix("failed to invoke, id: lonely, err: error invoking app channel: "), "\(message)")
            }
        }
    }

    @Test func noAppPortIs500() async throws {
        try await InProcessSidecar.with(appID: "headless") { sidecar in
            try await TestHTTP.with { http in
                let response = try await http.get(port: sidecar.httpPort, "/v1.0/invoke/headless/method/x")
                #expect(response.status == 500)
                #expect(response.jsonBody["errorCode"] == "ERR_DIRECT_INVOKE")
                #expect(response.jsonBody["message"] == "failed to invoke, id: headless, err: cannot invoke local endpoint: app channel not initialized")
            }
        }
    }

    @Test func invalidMethodIs500() async throws {
        try await Self.withApp { sidecar, app, http in
            // A "?" or "#" inside the (decoded) method is refused, as daprd does.
            let cases = [
                ("/v1.0/invoke/testapp/method/echo/a%3Fb", #"method contains forbidden character: "echo/a?b""#),
                ("/v1.0/invoke/testapp/method/echo/a%23b", #"method contains forbidden character: "echo/a#b""#),
                ("/v1.0/invoke/testapp/method/echo/a%00b", #"method contains forbidden character: "echo/a\x00b""#),
                ("/v1.0/invoke/testapp/method/echo/a%0Ab", #"method contains control character at position 6: "echo/a\nb""#),
                ("/v1.0/invoke/testapp/method/echo/a%7F", #"method contains control character at position 6: "echo/a\x7f""#),
            ]
            for (path, reason) in cases {
                let response = try await http.get(port: sidecar.httpPort, path)
                #expect(response.status == 500, "\(path): \(response.text)")
                #expect(response.jsonBody["errorCode"] == "ERR_DIRECT_INVOKE", "\(path)")
                #expect(response.jsonBody["message"]?.stringValue == "failed to invoke, id: testapp, err: rpc error: code = InvalidArgument desc = invalid method: \(reason)")
            }
            // Nothing reached the app.
            #expect(try await http.received(app, "/echo/a").isEmpty)
        }
    }

    // MARK: Tokens

    @Test func appAPITokenIsSentToTheApp() async throws {
        try await Self.withApp(environment: ["APP_API_TOKEN": "app-token"]) { sidecar, app, http in
            let echo = try Self.echo(try await http.get(port: sidecar.httpPort, "/v1.0/invoke/testapp/method/echo/t", headers: [("dapr-api-token", "caller-value")]))
            #expect(echo["headers"]?["dapr-api-token"] == "app-token")
        }
    }

    @Test func daprAPITokenIsNotForwarded() async throws {
        try await Self.withApp(environment: ["DAPR_API_TOKEN": "sidecar-token"]) { sidecar, app, http in
            let refused = try await http.get(port: sidecar.httpPort, "/v1.0/invoke/testapp/method/echo/t")
            #expect(refused.status == 401)
            let echo = try Self.echo(try await http.get(port: sidecar.httpPort, "/v1.0/invoke/testapp/method/echo/t", headers: [("dapr-api-token", "sidecar-token")]))
            #expect(echo["headers"]?["dapr-api-token"] == nil)
        }
    }

    // MARK: Large bodies

    @Test func largeBodiesStreamBothWays() async throws {
        try await Self.withApp(configure: { $0.maxBodySize = 8 << 20 }) { sidecar, app, http in
            let upload = [UInt8](repeating: UInt8(ascii: "u"), count: 5 << 20)
            let counted = try await http.request(.POST, port: sidecar.httpPort, "/v1.0/invoke/testapp/method/count", headers: [("content-type", "application/octet-stream")], body: upload)
            #expect(counted.status == 200)
            #expect(counted.text == String(5 << 20))

            let download = try await http.get(port: sidecar.httpPort, "/v1.0/invoke/testapp/method/bytes/\(20 << 20)")
            #expect(download.status == 200)
            #expect(download.body.count == 20 << 20)
            #expect(download.body.allSatisfy { $0 == UInt8(ascii: "x") })
            #expect(download.header("content-length") == String(20 << 20))
            #expect(download.header("content-type") == "application/octet-stream")
        }
    }

    @Test func bodiesOverTheLimitAreRefused() async throws {
        try await Self.withApp { sidecar, app, http in
            let upload = [UInt8](repeating: 0, count: (4 << 20) + 1)
            let response = try await http.request(.POST, port: sidecar.httpPort, "/v1.0/invoke/testapp/method/count", body: upload)
            #expect(response.status == 500, "\(response.status) \(response.text)")
            #expect(response.jsonBody["errorCode"] == "ERR_DIRECT_INVOKE")
            // Exactly at the limit is fine.
            let atLimit = try await http.request(.POST, port: sidecar.httpPort, "/v1.0/invoke/testapp/method/count", body: [UInt8](repeating: 0, count: 4 << 20))
            #expect(atLimit.status == 200)
            #expect(atLimit.text == String(4 << 20))
        }
    }
}

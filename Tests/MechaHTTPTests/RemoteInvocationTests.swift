import MechaCore
import MechaSidecar
import MechaTesting
import NIOHTTP1
import Testing

/// Service invocation from one sidecar (`alpha`) to another (`beta`) and its app. Both sidecars run
/// in this process and share one home directory, so name resolution (the shared SQLite database)
/// finds each from the other.
@Suite struct RemoteInvocationTests {
    struct Mesh {
        var alpha: InProcessSidecar
        var beta: InProcessSidecar
        var appA: TestApp
        var appB: TestApp?
        var http: TestHTTP
    }

    /// `alpha` (with its app) calls `beta`; with `betaAppDown` nothing listens on beta's app port.
    static func withMesh(
        maxBodySize: Int? = nil,
        alphaEnvironment: [String: String] = [:],
        betaEnvironment: [String: String] = [:],
        betaAppDown: Bool = false,
        _ body: (Mesh) async throws -> Void
    ) async throws {
        let home = TestEnvironment.temporaryDirectory("mecha-mesh")
        defer { TestEnvironment.remove(home) }
        func configure(_ options: inout SidecarOptions) {
            options.mechaHome = home
            if let maxBodySize { options.maxBodySize = maxBodySize }
        }
        try await RouteTest.withApp { appA in
            try await RouteTest.withApp { appB in
                let betaPort = betaAppDown ? TestEnvironment.refusingPort() : appB.port
                try await InProcessSidecar.with(appID: "beta", appPort: betaPort, environment: betaEnvironment, configure: configure) { beta in
                    try await InProcessSidecar.with(appID: "alpha", appPort: appA.port, environment: alphaEnvironment, configure: configure) { alpha in
                        try await TestHTTP.with { http in
                            // Wait until alpha resolves beta.
                            let deadline = ContinuousClock.now + .seconds(10)
                            while ContinuousClock.now < deadline {
                                let probe = try await http.get(port: alpha.httpPort, "/v1.0/invoke/beta/method/status/200")
                                if probe.jsonBody["errorCode"] != "ERR_DIRECT_INVOKE" || betaAppDown && probe.jsonBody["message"]?.stringValue?.contains("couldn't find service") == false {
                                    break
                                }
                                try await Task.sleep(for: .milliseconds(50))
                            }
                            try await body(Mesh(alpha: alpha, beta: beta, appA: appA, appB: betaAppDown ? nil : appB, http: http))
                        }
                    }
                }
            }
        }
    }

    static func echo(_ response: TestHTTPResponse, sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONValue {
        #expect(response.status == 200, "\(response.status) \(response.text)", sourceLocation: sourceLocation)
        return try JSONValue(parsing: response.body)
    }

    @Test func requestReachesTheOtherApp() async throws {
        try await Self.withMesh { mesh in
            let http = mesh.http
            for verb in [HTTPMethod.GET, .POST, .PUT, .DELETE, .PATCH] {
                let response = try await http.request(
                    verb,
                    port: mesh.alpha.httpPort,
                    "/v1.0/invoke/beta/method/echo/remote/\(verb.rawValue)?x=1&y=two%20words",
                    headers: [
                        ("content-type", "application/json"),
                        ("x-custom", "yes"),
                        ("dapr-caller-app-id", "spoofed"),
                        ("dapr-callee-app-id", "spoofed"),
                        ("traceparent", RouteTest.sampleTraceParent),
                    ],
                    body: verb == .GET ? nil : Array(#"{"n":42}"#.utf8)
                )
                let echo = try Self.echo(response)
                #expect(echo["method"]?.stringValue == verb.rawValue)
                #expect(echo["path"]?.stringValue == "/echo/remote/\(verb.rawValue)")
                #expect(echo["query"] == "x=1&y=two%20words")
                #expect(echo["body"]?.stringValue == (verb == .GET ? "" : #"{"n":42}"#))
                let headers = echo["headers"]?.objectMembers ?? []
                func values(_ name: String) -> [String] { headers.filter { $0.0 == name }.compactMap { $0.1.stringValue } }
                #expect(values("x-custom") == ["yes"])
                #expect(values("content-type") == ["application/json"])
                // Identity headers are set by the sidecars; what the caller sent is gone.
                #expect(values("dapr-caller-app-id") == ["alpha"])
                #expect(values("dapr-callee-app-id") == ["beta"])
                #expect(values("dapr-caller-namespace") == ["default"])
                #expect(values("traceparent") == [RouteTest.sampleTraceParent])
                // Nothing internal to the sidecars leaks to the app.
                #expect(headers.allSatisfy { !$0.0.hasPrefix("x-mecha") }, "\(headers.map(\.0))")
                #expect(values("destination-app-id").isEmpty)
            }
            // `beta.default` is the same app in our namespace.
            let namespaced = try Self.echo(try await http.get(port: mesh.alpha.httpPort, "/v1.0/invoke/beta.default/method/echo/ns"))
            #expect(namespaced["path"] == "/echo/ns")
            // And the other way round: beta calls alpha.
            let back = try Self.echo(try await http.get(port: mesh.beta.httpPort, "/v1.0/invoke/alpha/method/echo/back"))
            #expect(back["headers"]?["dapr-caller-app-id"] == "beta")
            #expect(back["headers"]?["dapr-callee-app-id"] == "alpha")
        }
    }

    @Test func headerAndBasicAuthForms() async throws {
        try await Self.withMesh { mesh in
            let http = mesh.http
            let viaHeader = try Self.echo(try await http.request(
                .POST,
                port: mesh.alpha.httpPort,
                "/echo/header/form?q=1",
                headers: [("dapr-app-id", "beta"), ("content-type", "text/plain")],
                body: Array("hello".utf8)
            ))
            #expect(viaHeader["path"] == "/echo/header/form")
            #expect(viaHeader["query"] == "q=1")
            #expect(viaHeader["body"] == "hello")
            #expect(viaHeader["headers"]?["dapr-app-id"] == nil)
            #expect(viaHeader["headers"]?["dapr-caller-app-id"] == "alpha")

            let credentials = "Basic " + Base64.encode(Array("dapr-app-id:beta".utf8))
            let viaBasic = try Self.echo(try await http.get(port: mesh.alpha.httpPort, "/echo/basic", headers: [("authorization", credentials)]))
            #expect(viaBasic["path"] == "/echo/basic")
            #expect(viaBasic["headers"]?["authorization"]?.stringValue == credentials)
            #expect(viaBasic["headers"]?["dapr-callee-app-id"] == "beta")
        }
    }

    @Test func statusAndContentTypeComeBack() async throws {
        try await Self.withMesh { mesh in
            let http = mesh.http
            for code in [200, 202, 301, 400, 404, 418, 500, 503] {
                let response = try await http.get(port: mesh.alpha.httpPort, "/v1.0/invoke/beta/method/status/\(code)")
                #expect(response.status == code)
                #expect(response.header("content-type") == "text/plain", "\(code)")
                #expect(response.text == "status \(code)")
            }
            let appB = try #require(mesh.appB)
            try await http.respond(appB, "/created", status: 201, body: #"{"id":7}"#)
            let created = try await http.post(port: mesh.alpha.httpPort, "/v1.0/invoke/beta/method/created", json: #"{"name":"x"}"#)
            #expect(created.status == 201)
            #expect(created.header("content-type") == "application/json")
            #expect(created.text == #"{"id":7}"#)
            #expect(try await http.received(appB, "/created") == [#"{"name":"x"}"#])
        }
    }

    @Test func largeBodiesStreamThroughBothSidecars() async throws {
        try await Self.withMesh(maxBodySize: 8 << 20) { mesh in
            let http = mesh.http
            let upload = [UInt8](repeating: UInt8(ascii: "u"), count: 5 << 20)
            let counted = try await http.request(.POST, port: mesh.alpha.httpPort, "/v1.0/invoke/beta/method/count", headers: [("content-type", "application/octet-stream")], body: upload)
            #expect(counted.status == 200, "\(counted.text)")
            #expect(counted.text == String(5 << 20))

            let download = try await http.get(port: mesh.alpha.httpPort, "/v1.0/invoke/beta/method/bytes/\(20 << 20)")
            #expect(download.status == 200)
            #expect(download.body.count == 20 << 20)
            #expect(download.header("content-type") == "application/octet-stream")
        }
    }

    @Test func appAPITokenOfTheReceivingSidecarIsUsed() async throws {
        try await Self.withMesh(betaEnvironment: ["APP_API_TOKEN": "beta-token"]) { mesh in
            let echo = try Self.echo(try await mesh.http.get(port: mesh.alpha.httpPort, "/v1.0/invoke/beta/method/echo/token", headers: [("dapr-api-token", "from-caller")]))
            let tokens = (echo["headers"]?.objectMembers ?? []).filter { $0.0 == "dapr-api-token" }.compactMap { $0.1.stringValue }
            #expect(tokens == ["beta-token"])
        }
    }

    @Test func remoteAppDownIs500() async throws {
        try await Self.withMesh(betaAppDown: true) { mesh in
            let response = try await mesh.http.post(port: mesh.alpha.httpPort, "/v1.0/invoke/beta/method/work", json: "{}")
            #expect(response.status == 500)
            #expect(response.header("content-type") == "application/json")
            #expect(response.jsonBody["errorCode"] == "ERR_DIRECT_INVOKE")
            let message = response.jsonBody["message"]?.stringValue ?? ""
            #expect(message.hasPrefix("failed to invoke, id: beta, err: "), "\(message)")
            #expect(message.contains("error invoking app channel"), "\(message)")
        }
    }
}

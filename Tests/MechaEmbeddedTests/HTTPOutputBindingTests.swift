import MechaCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import MechaTesting
import Testing

@testable import MechaEmbedded

// MARK: - A tiny HTTP server for the tests

/// An HTTP/1.1 server on 127.0.0.1 (ephemeral port) with a few fixed routes:
/// - `/status/<code>`: that status, body `status <code>`;
/// - `/big/<n>`: `n` bytes of `x`;
/// - `/slow`: answers after 30 s;
/// - `/multi`: a repeated `x-multi` header;
/// - anything else: 200 echoing the request as JSON `{"method","uri","headers":{lowercased: value},"body"}`.
private final class EchoServer: Sendable {
    let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    var port: Int { self.channel.localAddress!.port! }
    var baseURL: String { "http://127.0.0.1:\(self.port)" }

    /// With `tls`, the server speaks HTTPS.
    static func start(tls: NIOSSLContext? = nil) async throws -> EchoServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(EchoHandler())
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return EchoServer(channel: channel)
    }

    func stop() async {
        try? await self.channel.close()
    }
}

private final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private var head: HTTPRequestHead?
    private var body: [UInt8] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.body = []
        case .body(var buffer):
            self.body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            guard let head = self.head else { return }
            self.route(head, body: self.body, context: context)
        }
    }

    private func route(_ head: HTTPRequestHead, body: [UInt8], context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        var headers = HTTPHeaders()
        if path.hasPrefix("/status/"), let code = Int(path.dropFirst("/status/".count)) {
            headers.add(name: "content-type", value: "text/plain")
            self.respond(context, head, HTTPResponseStatus(statusCode: code), headers, Array("status \(code)".utf8))
        } else if path.hasPrefix("/big/"), let count = Int(path.dropFirst("/big/".count)) {
            self.respond(context, head, .ok, headers, [UInt8](repeating: UInt8(ascii: "x"), count: count))
        } else if path == "/slow" {
            context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(30)) {
                self.respond(context, head, .ok, headers, Array("late".utf8))
            }
        } else if path == "/multi" {
            headers.add(name: "x-multi", value: "a")
            headers.add(name: "X-Multi", value: "b")
            headers.add(name: "x-lower-case", value: "yes")
            self.respond(context, head, .created, headers, [])
        } else {
            var echoedHeaders: [(String, JSONValue)] = []
            for (name, value) in head.headers { echoedHeaders.append((name.lowercased(), .string(value))) }
            let echo = JSONValue.object([
                ("method", .string(head.method.rawValue)),
                ("uri", .string(head.uri)),
                ("headers", .object(echoedHeaders)),
                ("body", .string(String(decoding: body, as: UTF8.self))),
            ])
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "x-echo", value: "yes")
            self.respond(context, head, .ok, headers, echo.serialized)
        }
    }

    private func respond(
        _ context: ChannelHandlerContext,
        _ request: HTTPRequestHead,
        _ status: HTTPResponseStatus,
        _ headers: HTTPHeaders,
        _ body: [UInt8]
    ) {
        var headers = headers
        headers.replaceOrAdd(name: "content-length", value: String(body.count))
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        if request.method != .HEAD && !body.isEmpty {
            context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
        }
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
    }
}

// MARK: - Tests

@Suite("bindings.http")
struct HTTPOutputBindingTests {
    private static let context = ComponentContext(appID: "test", dataDirectory: "/tmp", instanceID: "test")

    private static func make(_ metadata: [String: String]) async throws -> HTTPOutputBinding {
        let spec = ComponentSpec(name: "web", type: ComponentType(.bindings, "http"), metadata: ComponentMetadata(metadata))
        let component = try await HTTPOutputBindingFactory().make(spec: spec, context: self.context)
        return try #require(component as? HTTPOutputBinding)
    }

    /// A running binding against a fresh echo server; everything is stopped afterwards.
    private static func withBinding(
        _ metadata: [String: String] = [:],
        url template: String = "http://127.0.0.1:{port}",
        tls: NIOSSLContext? = nil,
        _ body: (HTTPOutputBinding, EchoServer) async throws -> Void
    ) async throws {
        let server = try await EchoServer.start(tls: tls)
        var metadata = metadata
        metadata["url"] = template.replacing("{port}", with: String(server.port))
        let binding = try await Self.make(metadata)
        let stop = StopSignal()
        let runner = Task { try await binding.run(until: stop) }
        do {
            try await body(binding, server)
        } catch {
            stop.stop()
            try? await runner.value
            try? await binding.close()
            await server.stop()
            throw error
        }
        stop.stop()
        try await runner.value
        try await binding.close()
        await server.stop()
    }

    /// The echo server's view of the request.
    private struct Echo {
        var method: String
        var uri: String
        var headers: [String: String]
        var body: String

        init(_ response: BindingInvokeResponse) throws {
            let json = try JSONValue(parsing: response.data)
            self.method = try #require(json["method"]?.stringValue)
            self.uri = try #require(json["uri"]?.stringValue)
            self.headers = try #require(json["headers"]?.stringDictionary)
            self.body = try #require(json["body"]?.stringValue)
        }
    }

    private static func invoke(
        _ binding: HTTPOutputBinding,
        _ operation: String,
        data: String = "",
        metadata: [String: String] = [:]
    ) async throws -> BindingInvokeResponse {
        try await binding.invoke(BindingInvokeRequest(operation: operation, data: Array(data.utf8), metadata: metadata))
    }

    // MARK: Requests

    @Test func getSendsDefaultsAndReturnsStatusAndHeaders() async throws {
        try await Self.withBinding { binding, server async throws in
            let response = try await Self.invoke(binding, "get")
            let echo = try Echo(response)
            #expect(echo.method == "GET")
            #expect(echo.uri == "/")
            #expect(echo.body == "")
            #expect(echo.headers["accept"] == "application/json; charset=utf-8")
            #expect(echo.headers["content-type"] == nil)
            #expect(echo.headers["host"] == "127.0.0.1:\(server.port)")
            #expect(response.metadata["statusCode"] == "200")
            #expect(response.metadata["status"] == "200 OK")
            #expect(response.metadata["Content-Type"] == "application/json")
            #expect(response.metadata["X-Echo"] == "yes")
            #expect(response.metadata["Content-Length"] == String(response.data.count))
        }
    }

    @Test func createPostsTheDataWithItsQuotes() async throws {
        try await Self.withBinding { binding, _ async throws in
            let echo = try Echo(try await Self.invoke(binding, "create", data: #""hello""#))
            #expect(echo.method == "POST")
            #expect(echo.body == #""hello""#)
            #expect(echo.headers["content-type"] == "application/json; charset=utf-8")
            #expect(echo.headers["content-length"] == "7")
        }
    }

    @Test(arguments: [
        ("post", "POST", true), ("put", "PUT", true), ("patch", "PATCH", true), ("delete", "DELETE", false),
        ("options", "OPTIONS", false), ("trace", "TRACE", false), ("get", "GET", false), ("PUT", "PUT", true),
    ])
    func everyOperationMapsToItsMethod(operation: String, method: String, sendsBody: Bool) async throws {
        try await Self.withBinding { binding, _ async throws in
            let echo = try Echo(try await Self.invoke(binding, operation, data: #"{"k":"v"}"#))
            #expect(echo.method == method)
            #expect(echo.body == (sendsBody ? #"{"k":"v"}"# : ""))
            #expect((echo.headers["content-type"] != nil) == sendsBody)
        }
    }

    @Test func headReturnsMetadataAndNoBody() async throws {
        try await Self.withBinding { binding, _ async throws in
            let response = try await Self.invoke(binding, "head")
            #expect(response.data.isEmpty)
            #expect(response.metadata["statusCode"] == "200")
            #expect(response.metadata["X-Echo"] == "yes")
            // The connection stays usable after a HEAD.
            #expect(try Echo(try await Self.invoke(binding, "get")).method == "GET")
        }
    }

    @Test func pathIsAppendedToTheURL() async throws {
        try await Self.withBinding(url: "http://127.0.0.1:{port}/api/") { binding, _ async throws in
            #expect(try Echo(try await Self.invoke(binding, "get", metadata: ["path": "/orders?id=1&x=y"])).uri == "/api/orders?id=1&x=y")
            #expect(try Echo(try await Self.invoke(binding, "get", metadata: ["path": "items"])).uri == "/api/items")
            #expect(try Echo(try await Self.invoke(binding, "get", metadata: ["path": "a b"])).uri == "/api/a%20b")
            #expect(try Echo(try await Self.invoke(binding, "get")).uri == "/api/")
        }
    }

    @Test func baseURLQueryIsKept() async throws {
        try await Self.withBinding(url: "http://127.0.0.1:{port}/search?q=1") { binding, _ async throws in
            #expect(try Echo(try await Self.invoke(binding, "get")).uri == "/search?q=1")
        }
    }

    @Test func uppercaseMetadataKeysBecomeHeaders() async throws {
        try await Self.withBinding { binding, _ async throws in
            let echo = try Echo(
                try await Self.invoke(
                    binding,
                    "post",
                    data: "plain",
                    metadata: [
                        "X-Custom": "custom", "Content-Type": "text/plain", "Accept": "text/html",
                        "Authorization": "Bearer abc", "lowercase": "not-a-header", "path": "/p",
                        "errorIfNot2XX": "true", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                    ]
                )
            )
            #expect(echo.headers["x-custom"] == "custom")
            #expect(echo.headers["content-type"] == "text/plain")
            #expect(echo.headers["accept"] == "text/html")
            #expect(echo.headers["authorization"] == "Bearer abc")
            #expect(echo.headers["lowercase"] == nil)
            #expect(echo.headers["path"] == nil)
            #expect(echo.headers["errorifnot2xx"] == nil)
            #expect(echo.headers["traceparent"] == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            #expect(echo.uri == "/p")
        }
    }

    @Test func invalidHeaderValuesAreRefused() async throws {
        try await Self.withBinding { binding, _ async throws in
            let error = await #expect(throws: BindingError.self) {
                try await Self.invoke(binding, "get", metadata: ["X-Evil": "a\r\nInjected: yes"])
            }
            #expect(error?.reason.contains("invalid header field value") == true)
        }
    }

    @Test func securityTokenIsSentWhenBothAreSet() async throws {
        try await Self.withBinding(["securityToken": "tok", "securityTokenHeader": "X-Token"]) { binding, _ async throws in
            #expect(try Echo(try await Self.invoke(binding, "get")).headers["x-token"] == "tok")
        }
        try await Self.withBinding(["securityToken": "tok"]) { binding, _ async throws in
            #expect(try Echo(try await Self.invoke(binding, "get")).headers.values.contains("tok") == false)
        }
    }

    @Test func userInfoBecomesBasicAuth() async throws {
        try await Self.withBinding(url: "http://user:p%40ss@127.0.0.1:{port}/") { binding, server async throws in
            let echo = try Echo(try await Self.invoke(binding, "get"))
            #expect(echo.headers["authorization"] == "Basic " + Base64.encode(Array("user:p@ss".utf8)))
            #expect(echo.headers["host"] == "127.0.0.1:\(server.port)")
        }
    }

    // MARK: Responses

    @Test func non2xxIsAnErrorByDefault() async throws {
        try await Self.withBinding { binding, _ async throws in
            let error = await #expect(throws: BindingError.self) {
                try await Self.invoke(binding, "get", metadata: ["path": "status/404"])
            }
            #expect(error?.reason == "received status code 404")
            let server = await #expect(throws: BindingError.self) {
                try await Self.invoke(binding, "post", data: "{}", metadata: ["path": "status/503"])
            }
            #expect(server?.reason == "received status code 503")
            // Any 2xx is fine.
            let accepted = try await Self.invoke(binding, "get", metadata: ["path": "status/202"])
            #expect(accepted.metadata["statusCode"] == "202")
            #expect(accepted.metadata["status"] == "202 Accepted")
        }
    }

    @Test func errorIfNot2XXCanBeTurnedOffPerRequest() async throws {
        try await Self.withBinding { binding, _ async throws in
            let response = try await Self.invoke(binding, "get", metadata: ["path": "status/404", "errorIfNot2XX": "false"])
            #expect(response.data == Array("status 404".utf8))
            #expect(response.metadata["statusCode"] == "404")
            #expect(response.metadata["status"] == "404 Not Found")
            #expect(response.metadata["Content-Type"] == "text/plain")
            // Anything that is not truthy counts as false, as in Dapr.
            let other = try await Self.invoke(binding, "get", metadata: ["path": "status/500", "errorIfNot2XX": "nope"])
            #expect(other.metadata["statusCode"] == "500")
        }
    }

    @Test func errorIfNot2XXCanBeTurnedOffForTheComponent() async throws {
        try await Self.withBinding(["errorIfNot2XX": "false"]) { binding, _ async throws in
            let response = try await Self.invoke(binding, "get", metadata: ["path": "status/418"])
            #expect(response.metadata["statusCode"] == "418")
            // …and back on per request.
            await #expect(throws: BindingError.self) {
                try await Self.invoke(binding, "get", metadata: ["path": "status/418", "errorIfNot2XX": "yes"])
            }
        }
    }

    @Test func repeatedResponseHeadersAreJoinedUnderCanonicalNames() async throws {
        try await Self.withBinding { binding, _ async throws in
            let response = try await Self.invoke(binding, "get", metadata: ["path": "multi"])
            #expect(response.metadata["X-Multi"] == "a, b")
            #expect(response.metadata["X-Lower-Case"] == "yes")
            #expect(response.metadata["statusCode"] == "201")
            #expect(response.metadata["status"] == "201 Created")
        }
    }

    @Test func responseBodyIsCutAtTheLimit() async throws {
        try await Self.withBinding(["maxResponseBodySize": "10"]) { binding, _ async throws in
            let response = try await Self.invoke(binding, "get", metadata: ["path": "big/100000"])
            #expect(response.data == [UInt8](repeating: UInt8(ascii: "x"), count: 10))
            // The binding keeps working afterwards.
            #expect(try await Self.invoke(binding, "get", metadata: ["path": "big/5"]).data.count == 5)
        }
        try await Self.withBinding(["maxResponseBodySize": "1Ki"]) { binding, _ async throws in
            #expect(try await Self.invoke(binding, "get", metadata: ["path": "big/5000"]).data.count == 1024)
        }
        try await Self.withBinding(["maxResponseBodySize": "0"]) { binding, _ async throws in
            #expect(try await Self.invoke(binding, "get", metadata: ["path": "big/300000"]).data.count == 300_000)
        }
    }

    @Test func responseTimeoutFailsSlowRequests() async throws {
        // 3 s: a fast request meets it even while the whole suite loads the machine; the slow
        // endpoint answers after 30 s, so a cut well before that proves the timeout even when the
        // machine stalls for seconds.
        try await Self.withBinding(["responseTimeout": "3s"]) { binding, server async throws in
            let started = ContinuousClock.now
            let error = await #expect(throws: BindingError.self) {
                try await Self.invoke(binding, "get", metadata: ["path": "slow"])
            }
            #expect(ContinuousClock.now - started < .seconds(20), "the slow request (30 s) was cut at the timeout")
            #expect(error?.reason == "Get \"\(server.baseURL)/slow\": context deadline exceeded")
            // Fast requests still work on the same binding (retried: a loaded machine may stall one).
            var echoed: Echo?
            for _ in 0..<3 where echoed == nil { echoed = try? Echo(try await Self.invoke(binding, "get")) }
            #expect(echoed?.method == "GET")
        }
    }

    @Test func transportErrorsNameTheRequest() async throws {
        let server = try await EchoServer.start()
        let url = server.baseURL
        await server.stop()
        let binding = try await Self.make(["url": url])
        let stop = StopSignal()
        let runner = Task { try await binding.run(until: stop) }
        let error = await #expect(throws: BindingError.self) {
            try await Self.invoke(binding, "post", data: "{}", metadata: ["path": "x"])
        }
        #expect(error?.reason.hasPrefix("Post \"\(url)/x\": ") == true)
        stop.stop()
        try await runner.value
        try await binding.close()
    }

    @Test func invalidOperation() async throws {
        try await Self.withBinding { binding, _ async throws in
            let error = await #expect(throws: BindingError.self) { try await Self.invoke(binding, "connect") }
            #expect(error?.reason == "invalid operation: connect")
            #expect(binding.operations == ["create", "get", "head", "post", "put", "patch", "delete", "options", "trace"])
        }
    }

    // MARK: Lifecycle

    @Test func requestsMadeBeforeRunStartsWaitForIt() async throws {
        let server = try await EchoServer.start()
        let binding = try await Self.make(["url": server.baseURL])
        let request = Task { try await Self.invoke(binding, "get") }
        try await Task.sleep(for: .milliseconds(50))
        let stop = StopSignal()
        let runner = Task { try await binding.run(until: stop) }
        #expect(try Echo(try await request.value).method == "GET")
        stop.stop()
        try await runner.value
        try await binding.close()
        await server.stop()
    }

    @Test func requestsAfterCloseFail() async throws {
        let server = try await EchoServer.start()
        let binding = try await Self.make(["url": server.baseURL])
        let stop = StopSignal()
        let runner = Task { try await binding.run(until: stop) }
        _ = try await Self.invoke(binding, "get")
        stop.stop()
        try await runner.value
        try await binding.close()
        await #expect(throws: BindingError.self) { try await Self.invoke(binding, "get") }
        await server.stop()
    }

    // MARK: Metadata

    @Test func factoryType() {
        #expect(HTTPOutputBindingFactory().type.description == "bindings.http")
    }

    @Test func missingURLNamesTheKey() async {
        let error = await #expect(throws: ComponentConfigurationError.self) { try await Self.make([:]) }
        #expect(error?.key == "url")
    }

    // MARK: TLS

    @Test(arguments: [false, true])
    func httpsWithMTLSRootCA(inlinePEM: Bool) async throws {
        let authority = try await TestCertificateAuthority.make()
        defer { authority.remove() }
        let rootCA = inlinePEM ? try authority.caCertificatePEM() : authority.caCertificatePath
        try await Self.withBinding(["MTLSRootCA": rootCA], url: "https://localhost:{port}/base", tls: try authority.serverContext()) { binding, server in
            let response = try await Self.invoke(binding, "post", data: #"{"secure":true}"#, metadata: ["path": "orders"])
            #expect(response.metadata["statusCode"] == "200")
            let echo = try Echo(response)
            #expect(echo.method == "POST" && echo.uri == "/base/orders" && echo.body == #"{"secure":true}"#)
            #expect(echo.headers["host"] == "localhost:\(server.port)")
        }
    }

    @Test func httpsToAnUntrustedServerFailsTheRequestClearly() async throws {
        let authority = try await TestCertificateAuthority.make()
        defer { authority.remove() }
        try await Self.withBinding(url: "https://localhost:{port}", tls: try authority.serverContext()) { binding, server in
            await #expect(throws: BindingError("Get \"https://localhost:\(server.port)\": TLS handshake with localhost:\(server.port) failed: certificate verify failed")) {
                try await Self.invoke(binding, "get")
            }
        }
    }

    @Test func mutualTLSWithMTLSClientCertAndKey() async throws {
        let authority = try await TestCertificateAuthority.make()
        defer { authority.remove() }
        let client = try authority.clientPEM()
        let metadata = [
            "MTLSRootCA": authority.caCertificatePath, "MTLSClientCert": client.certificate, "MTLSClientKey": authority.clientKeyPath,
            "MTLSRenegotiation": "RenegotiateOnceAsClient",
        ]
        try await Self.withBinding(metadata, url: "https://127.0.0.1:{port}", tls: try authority.serverContext(requireClientCertificate: true)) { binding, _ in
            let response = try await Self.invoke(binding, "get")
            #expect(response.metadata["statusCode"] == "200")
        }
    }

    @Test func tlsMetadataErrorsNameTheirKey() async throws {
        let authority = try await TestCertificateAuthority.make()
        defer { authority.remove() }
        let cases: [([String: String], String)] = [
            (["MTLSRootCA": "/nonexistent/ca.pem"], "MTLSRootCA"),
            (["MTLSRootCA": authority.clientKeyPath], "MTLSRootCA"),
            (["MTLSClientCert": authority.clientCertificatePath], "MTLSClientKey"),
            (["MTLSClientKey": authority.clientKeyPath], "MTLSClientCert"),
            (["MTLSClientCert": authority.clientCertificatePath, "MTLSClientKey": authority.serverKeyPath], "MTLSClientKey"),
            (["MTLSClientCert": "/nonexistent/client.pem", "MTLSClientKey": authority.clientKeyPath], "MTLSClientCert"),
            (["MTLSRenegotiation": "Sometimes"], "MTLSRenegotiation"),
        ]
        for (metadata, key) in cases {
            var metadata = metadata
            metadata["url"] = "https://example.com"
            let error = await #expect(throws: ComponentConfigurationError.self, "\(metadata)") { try await Self.make(metadata) }
            #expect(error?.key == key, "\(metadata)")
        }
        let missing = await #expect(throws: ComponentConfigurationError.self) {
            try await Self.make(["url": "https://example.com", "mtlsRootCA": "/nonexistent/ca.pem"])
        }
        #expect(missing?.reason == "provided \"MTLSRootCA\" value is neither a valid file path nor a valid PEM-encoded string (No such file or directory)")
    }

    @Test(arguments: ["example.com", "ftp://example.com", "http://", "http://:80/x", "http://host:99999", "http://host:abc", "http://[::1"])
    func malformedURLsFailInit(url: String) async {
        let error = await #expect(throws: ComponentConfigurationError.self) { try await Self.make(["url": url]) }
        #expect(error?.key == "url")
    }

    @Test func badValuesNameTheirKey() async {
        for (key, value) in [("maxResponseBodySize", "lots"), ("responseTimeout", "soon"), ("errorIfNot2XX", "perhaps")] {
            let error = await #expect(throws: ComponentConfigurationError.self) {
                try await Self.make(["url": "http://127.0.0.1:1", key: value])
            }
            #expect(error?.key == key)
        }
    }

    @Test func metadataDefaultsAndParsing() async throws {
        let defaults = try await Self.make(["url": "http://127.0.0.1:1"])
        #expect(defaults.options.maxResponseBodySize == 100 * 1024 * 1024)
        #expect(defaults.options.responseTimeout == nil)
        #expect(defaults.options.errorIfNot2XX)
        let custom = try await Self.make([
            "url": "http://127.0.0.1:1", "maxResponseBodySize": "20Ki", "responseTimeout": "1m30s", "errorIfNot2XX": "off",
        ])
        #expect(custom.options.maxResponseBodySize == 20 * 1024)
        #expect(custom.options.responseTimeout == .seconds(90))
        #expect(!custom.options.errorIfNot2XX)
        try await defaults.close()
        try await custom.close()
    }

    @Test func byteQuantities() {
        #expect(HTTPOutputBinding.parseByteQuantity("100Mi") == 104_857_600)
        #expect(HTTPOutputBinding.parseByteQuantity("20Ki") == 20_480)
        #expect(HTTPOutputBinding.parseByteQuantity("1Gi") == 1_073_741_824)
        #expect(HTTPOutputBinding.parseByteQuantity("1024") == 1024)
        #expect(HTTPOutputBinding.parseByteQuantity("1M") == 1_000_000)
        #expect(HTTPOutputBinding.parseByteQuantity("1.5k") == 1500)
        #expect(HTTPOutputBinding.parseByteQuantity("1e3") == 1000)
        #expect(HTTPOutputBinding.parseByteQuantity("0.5Ki") == 512)
        #expect(HTTPOutputBinding.parseByteQuantity("-1") == -1)
        #expect(HTTPOutputBinding.parseByteQuantity("abc") == nil)
        #expect(HTTPOutputBinding.parseByteQuantity("10Xi") == nil)
        #expect(HTTPOutputBinding.parseByteQuantity("") == nil)
    }

    @Test func urlParsing() throws {
        let plain = try HTTPBindingURL.parse("http://example.com").get()
        #expect(plain.host == "example.com" && plain.port == 80 && plain.requestURI == "/" && plain.hostHeader == "example.com")
        let full = try HTTPBindingURL.parse("HTTP://u:p@[::1]:8080/a/b?c=d#frag").get()
        #expect(full.host == "::1" && full.port == 8080 && full.requestURI == "/a/b?c=d" && full.hostHeader == "[::1]:8080")
        #expect(full.basicCredentials == "u:p")
        let queryOnly = try HTTPBindingURL.parse("http://h:81?x=1").get()
        #expect(queryOnly.requestURI == "/?x=1" && queryOnly.port == 81)
        #expect(!plain.tls)
        let secure = try HTTPBindingURL.parse("HTTPS://example.com/x").get()
        #expect(secure.tls && secure.port == 443 && secure.hostHeader == "example.com")
    }

    @Test func headerNameCanonicalisation() {
        #expect(HTTPOutputBinding.canonicalHeaderName("content-type") == "Content-Type")
        #expect(HTTPOutputBinding.canonicalHeaderName("X-MULTI") == "X-Multi")
        #expect(HTTPOutputBinding.canonicalHeaderName("etag") == "Etag")
        #expect(HTTPOutputBinding.canonicalHeaderName("bad header") == "bad header")
    }
}

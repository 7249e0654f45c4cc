import MechaCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import MechaTesting
import Synchronization
import Testing

@testable import MechaEmbedded

// MARK: - A fake chat completions server

/// A real HTTP/1.1 server on 127.0.0.1 (ephemeral port) speaking OpenAI's chat completions API as
/// far as the tests need: it records every request and answers with what `reply` returns for it.
private final class FakeChatServer: Sendable {
    struct Recorded: Sendable {
        var method: String
        var uri: String
        var headers: [String: String]
        var body: JSONValue
    }

    typealias Reply = @Sendable (Recorded) -> (status: Int, body: String)

    let channel: any Channel
    let recorder: Recorder

    final class Recorder: Sendable {
        let requests = Mutex<[Recorded]>([])
        let reply: Reply
        init(reply: @escaping Reply) { self.reply = reply }
    }

    private init(channel: any Channel, recorder: Recorder) {
        self.channel = channel
        self.recorder = recorder
    }

    var port: Int { self.channel.localAddress!.port! }
    var requests: [Recorded] { self.recorder.requests.withLock { $0 } }

    /// With `tls`, the server speaks HTTPS.
    static func start(tls: NIOSSLContext? = nil, reply: @escaping Reply) async throws -> FakeChatServer {
        let recorder = Recorder(reply: reply)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(ChatHandler(recorder: recorder))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return FakeChatServer(channel: channel, recorder: recorder)
    }

    func stop() async {
        try? await self.channel.close()
    }
}

private final class ChatHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let recorder: FakeChatServer.Recorder
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []

    init(recorder: FakeChatServer.Recorder) { self.recorder = recorder }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.body = []
        case .body(var buffer):
            self.body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            guard let head = self.head else { return }
            var headers: [String: String] = [:]
            for (name, value) in head.headers { headers[name.lowercased()] = value }
            let recorded = FakeChatServer.Recorded(
                method: head.method.rawValue,
                uri: head.uri,
                headers: headers,
                body: (try? JSONValue(parsing: self.body)) ?? .null
            )
            self.recorder.requests.withLock { $0.append(recorded) }
            let (status, text) = self.recorder.reply(recorded)
            var responseHeaders = HTTPHeaders()
            responseHeaders.add(name: "content-type", value: "application/json")
            responseHeaders.add(name: "content-length", value: String(text.utf8.count))
            context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: HTTPResponseStatus(statusCode: status), headers: responseHeaders))), promise: nil)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}

/// A chat completion answer as OpenAI writes it.
private func completion(content: String?, finishReason: String = "stop", toolCalls: String? = nil, usage: String? = nil) -> String {
    let contentJSON = content.map { JSONValue.string($0).jsonString } ?? "null"
    let calls = toolCalls.map { #","tool_calls":\#($0)"# } ?? ""
    let usageJSON = usage ?? #"{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}"#
    return #"""
    {"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18",
     "choices":[{"index":0,"message":{"role":"assistant","content":\#(contentJSON)\#(calls),"refusal":null},"logprobs":null,"finish_reason":"\#(finishReason)"}],
     "usage":\#(usageJSON),"system_fingerprint":"fp_1"}
    """#
}

/// A test clock that only moves when told.
private final class ConversationTestClock: Sendable {
    let offset = Mutex(Duration.zero)
    let start = ContinuousClock.now
    var now: @Sendable () -> ContinuousClock.Instant { { self.start + self.offset.withLock { $0 } } }
    func advance(_ by: Duration) { self.offset.withLock { $0 += by } }
}

@Suite("conversation components")
struct ConversationTests {
    private static let context = ComponentContext(appID: "test", dataDirectory: "/tmp", instanceID: "test")

    private static func make(
        _ factory: some ComponentFactory,
        _ metadata: [String: String]
    ) async throws -> OpenAIConversation {
        let spec = ComponentSpec(name: "llm", type: factory.type, metadata: ComponentMetadata(metadata))
        return try #require(try await factory.make(spec: spec, context: self.context) as? OpenAIConversation)
    }

    /// Runs `component` (its HTTP client) around `body`.
    private static func running(_ component: OpenAIConversation, _ body: () async throws -> Void) async throws {
        let stop = StopSignal()
        let runner = Task { try await component.run(until: stop) }
        defer {
            stop.stop()
        }
        do {
            try await body()
        } catch {
            stop.stop()
            _ = try? await runner.value
            throw error
        }
        stop.stop()
        try await runner.value
        try await component.close()
    }

    private static let noEnvironment: @Sendable (String) -> String? = { _ in nil }

    // MARK: conversation.echo

    @Test func echoJoinsEveryTextIntoOneChoice() async throws {
        let answer = try await EchoConversation().converse(ConversationRequest(messages: [.text(.user, "one"), .text(.user, "two")]))
        #expect(answer.outputs.count == 1)
        #expect(answer.outputs[0].choices == [ConversationChoice(finishReason: "stop", content: "one\ntwo")])
        #expect(answer.usage == ConversationUsage(completionTokens: 2, promptTokens: 2, totalTokens: 4))
        #expect(answer.model == "")

        let mixed = try await EchoConversation().converse(ConversationRequest(messages: [
            .text(.system, "be brief"), .text(.user, "hi"), .text(.assistant, "hello"),
        ]))
        #expect(mixed.outputs[0].choices[0].content == "be brief\nhi\nhello")
        #expect(mixed.outputs[0].choices[0].finishReason == "stop")
    }

    @Test func echoCallsEveryOfferedToolThenTheReplayedOnes() async throws {
        let weather = ConversationTool(
            name: "get_weather",
            parameters: .object([("type", .string("object")), ("properties", .object([("unit", .object([])), ("city", .object([]))]))])
        )
        let answer = try await EchoConversation().converse(ConversationRequest(
            messages: [
                ConversationMessage(role: .assistant, parts: [.text("calling"), .toolCall(ConversationToolCall(id: "call_9", name: "lookup", arguments: "{}"))]),
                ConversationMessage(role: .tool, parts: [.toolResult(toolCallID: "call_9", name: "lookup", content: "42")]),
            ],
            tools: [weather, ConversationTool(name: "now")]
        ))
        let choice = answer.outputs[0].choices[0]
        #expect(choice.finishReason == "tool_calls")
        #expect(choice.content == "calling\nTool Response for tool ID 'call_9' with name 'lookup': 42")
        #expect(choice.toolCalls == [
            ConversationToolCall(id: "0", name: "get_weather", arguments: "city,unit"),
            ConversationToolCall(id: "1", name: "now", arguments: ""),
            ConversationToolCall(id: "call_9", name: "lookup", arguments: "{}"),
        ])
        // Words of the answer, counted as Go's strings.Fields does.
        #expect(answer.usage?.promptTokens == 11)
        #expect(answer.usage?.totalTokens == 22)
    }

    @Test func echoRefusesPropertiesThatAreNotAnObject() async {
        let tool = ConversationTool(name: "bad", parameters: .object([("properties", .array([]))]))
        await #expect(throws: ConversationError("tool function properties must be a map[string]any, got []interface {}")) {
            try await EchoConversation().converse(ConversationRequest(messages: [], tools: [tool]))
        }
    }

    // MARK: conversation.openai

    @Test func openAIRequestAndToolCallAnswerMapping() async throws {
        let toolCalls = #"[{"id":"call_abc","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]"#
        let usage = #"{"prompt_tokens":50,"completion_tokens":17,"total_tokens":67,"prompt_tokens_details":{"cached_tokens":32,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":5,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}"#
        let server = try await FakeChatServer.start { _ in (200, completion(content: nil, finishReason: "tool_calls", toolCalls: toolCalls, usage: usage)) }
        let component = try await Self.make(
            OpenAIConversationFactory(environment: Self.noEnvironment),
            ["key": "sk-test", "model": "gpt-4o-mini", "endpoint": "http://127.0.0.1:\(server.port)/v1/"]
        )
        try await Self.running(component) {
            let answer = try await component.converse(ConversationRequest(
                messages: [.text(.system, "be brief"), .text(.user, "weather in Paris?")],
                tools: [ConversationTool(
                    name: "get_weather",
                    description: "Current weather",
                    parameters: .object([("type", .string("object")), ("properties", .object([("city", .object([("type", .string("string"))]))]))])
                )],
                toolChoice: "auto",
                temperature: 0.5,
                metadata: ["team": "a"],
                promptCacheRetention: .seconds(86_400)
            ))
            #expect(answer.model == "gpt-4o-mini")
            #expect(answer.outputs.count == 1)
            let choice = answer.outputs[0].choices[0]
            #expect(choice.finishReason == "tool_calls")
            #expect(choice.content == "")
            #expect(choice.toolCalls == [ConversationToolCall(id: "call_abc", name: "get_weather", arguments: #"{"city":"Paris"}"#)])
            #expect(answer.usage == ConversationUsage(
                completionTokens: 17, promptTokens: 50, totalTokens: 67,
                completionDetails: .init(reasoningTokens: 5),
                promptDetails: .init(cachedTokens: 32)
            ))
        }
        let request = try #require(server.requests.first)
        #expect(request.method == "POST")
        #expect(request.uri == "/v1/chat/completions")
        #expect(request.headers["authorization"] == "Bearer sk-test")
        #expect(request.headers["content-type"] == "application/json")
        let body = request.body
        #expect(body["model"] == .string("gpt-4o-mini"))
        #expect(body["temperature"] == .number("0.5"))
        #expect(body["messages"] == .array([
            .object([("role", .string("system")), ("content", .string("be brief"))]),
            .object([("role", .string("user")), ("content", .string("weather in Paris?"))]),
        ]))
        #expect(body["tools"] == .array([.object([
            ("type", .string("function")),
            ("function", .object([
                ("name", .string("get_weather")),
                ("description", .string("Current weather")),
                ("parameters", .object([("type", .string("object")), ("properties", .object([("city", .object([("type", .string("string"))]))]))])),
            ])),
        ])]))
        #expect(body["tool_choice"] == .string("auto"))
        #expect(body["metadata"] == .object([("prompt_cache_retention", .string("24h0m0s")), ("team", .string("a"))]))
    }

    @Test func toolResultsAndReplayedCallsGoBackToTheModel() async throws {
        let server = try await FakeChatServer.start { _ in (200, completion(content: "It is sunny in Paris.")) }
        let component = try await Self.make(
            OpenAIConversationFactory(environment: Self.noEnvironment),
            ["key": "k", "model": "gpt-4o-mini", "endpoint": "http://127.0.0.1:\(server.port)/v1"]
        )
        try await Self.running(component) {
            let answer = try await component.converse(ConversationRequest(messages: [
                .text(.user, "weather in Paris?"),
                ConversationMessage(role: .assistant, parts: [.toolCall(ConversationToolCall(id: "call_abc", name: "get_weather", arguments: #"{"city":"Paris"}"#))]),
                ConversationMessage(role: .tool, parts: [.toolResult(toolCallID: "call_abc", name: "get_weather", content: "sunny, 21C")]),
                ConversationMessage(role: .user, parts: [.text("first"), .text("second")]),
            ]))
            #expect(answer.outputs[0].choices == [ConversationChoice(finishReason: "stop", content: "It is sunny in Paris.")])
        }
        let messages = try #require(server.requests.first?.body["messages"])
        #expect(messages == .array([
            .object([("role", .string("user")), ("content", .string("weather in Paris?"))]),
            .object([
                ("role", .string("assistant")), ("content", .string("")),
                ("tool_calls", .array([.object([
                    ("id", .string("call_abc")), ("type", .string("function")),
                    ("function", .object([("name", .string("get_weather")), ("arguments", .string(#"{"city":"Paris"}"#))])),
                ])])),
            ]),
            .object([("role", .string("tool")), ("content", .string("sunny, 21C")), ("tool_call_id", .string("call_abc"))]),
            .object([
                ("role", .string("user")),
                ("content", .array([
                    .object([("type", .string("text")), ("text", .string("first"))]),
                    .object([("type", .string("text")), ("text", .string("second"))]),
                ])),
            ]),
        ]))
    }

    @Test func aNamedToolChoiceAndReasoningModels() throws {
        let body = try OpenAIConversation.requestBody(
            ConversationRequest(messages: [.text(.user, "x")], tools: [ConversationTool(name: "f")], toolChoice: "f", temperature: 0.2, maxTokens: 64),
            model: "gpt-5-nano"
        )
        #expect(body["temperature"] == nil)
        #expect(body["max_completion_tokens"] == .number("64"))
        #expect(body["tool_choice"] == .object([("type", .string("function")), ("function", .object([("name", .string("f"))]))]))
        #expect(try OpenAIConversation.requestBody(ConversationRequest(messages: []), model: "gpt-4o")["temperature"] == .number("0"))
    }

    @Test func aToolMessageNeedsExactlyOneResult() {
        #expect(throws: ConversationError("expected exactly one part for role tool, got 0")) {
            try OpenAIConversation.requestBody(ConversationRequest(messages: [ConversationMessage(role: .tool, parts: [])]), model: "m")
        }
    }

    @Test func providerErrorsReadAsDaprsClientReportsThem() async throws {
        let server = try await FakeChatServer.start { request in
            request.uri.hasPrefix("/bad")
                ? (401, #"{"error":{"message":"Incorrect API key provided: sk-x.","type":"invalid_request_error","code":"invalid_api_key"}}"#)
                : (200, #"{"id":"x","choices":[]}"#)
        }
        let bad = try await Self.make(OpenAIConversationFactory(environment: Self.noEnvironment), ["key": "sk-x", "endpoint": "http://127.0.0.1:\(server.port)/bad"])
        try await Self.running(bad) {
            await #expect(throws: ConversationError("API returned unexpected status code: 401: Incorrect API key provided: sk-x.")) {
                try await bad.converse(ConversationRequest(messages: [.text(.user, "hi")]))
            }
        }
        let empty = try await Self.make(OpenAIConversationFactory(environment: Self.noEnvironment), ["key": "k", "endpoint": "http://127.0.0.1:\(server.port)/v1"])
        try await Self.running(empty) {
            await #expect(throws: ConversationError("no response")) {
                try await empty.converse(ConversationRequest(messages: [.text(.user, "hi")]))
            }
        }
    }

    @Test func anUnreachableServerFailsTheCallNotTheLoad() async throws {
        // A port nobody listens on: bind one, note it, close it.
        let probe = try await FakeChatServer.start { _ in (200, "{}") }
        let port = probe.port
        await probe.stop()
        let component = try await Self.make(OllamaConversationFactory(environment: Self.noEnvironment), ["endpoint": "http://127.0.0.1:\(port)/v1"])
        try await Self.running(component) {
            await #expect(throws: ConversationError("Post \"http://127.0.0.1:\(port)/v1/chat/completions\": dial tcp 127.0.0.1:\(port): connect: connection refused")) {
                try await component.converse(ConversationRequest(messages: [.text(.user, "hi")]))
            }
        }
    }

    @Test func theDefaultEndpointIsOpenAIOverHTTPS() async throws {
        let component = try await Self.make(OpenAIConversationFactory(environment: Self.noEnvironment), ["key": "k"])
        #expect(component.configuration.endpoint == "https://api.openai.com/v1")
        #expect(component.configuration.model == "gpt-5-nano")
        #expect(component.configuration.trustedCertificatesFile == nil)
        try await component.close()
    }

    @Test func anHTTPSEndpointWithItsCATrustedThroughSSLCertFile() async throws {
        let authority = try await TestCertificateAuthority.make()
        defer { authority.remove() }
        let server = try await FakeChatServer.start(tls: try authority.serverContext()) { _ in (200, completion(content: "over TLS")) }
        let environment: @Sendable (String) -> String? = { $0 == "SSL_CERT_FILE" ? authority.caCertificatePath : nil }
        let component = try await Self.make(
            OpenAIConversationFactory(environment: environment),
            ["key": "k", "model": "gpt-4o", "endpoint": "https://localhost:\(server.port)/v1"]
        )
        #expect(component.configuration.trustedCertificatesFile == authority.caCertificatePath)
        try await Self.running(component) {
            let response = try await component.converse(ConversationRequest(messages: [.text(.user, "hi")]))
            #expect(response.outputs.first?.choices.first?.content == "over TLS")
        }
        await server.stop()
        #expect(server.requests.count == 1)
        #expect(server.requests.first?.uri == "/v1/chat/completions")
    }

    @Test func anUntrustedHTTPSEndpointFailsTheCallNamingIt() async throws {
        let authority = try await TestCertificateAuthority.make()
        defer { authority.remove() }
        let server = try await FakeChatServer.start(tls: try authority.serverContext()) { _ in (200, completion(content: "unreachable")) }
        let endpoint = "https://localhost:\(server.port)/v1"
        let component = try await Self.make(OllamaConversationFactory(environment: Self.noEnvironment), ["endpoint": endpoint])
        try await Self.running(component) {
            await #expect(throws: ConversationError("Post \"\(endpoint)/chat/completions\": TLS handshake with localhost:\(server.port) failed: certificate verify failed")) {
                try await component.converse(ConversationRequest(messages: [.text(.user, "hi")]))
            }
        }
        await server.stop()
        #expect(server.requests.isEmpty)
    }

    @Test func anUnreadableSSLCertFileFailsTheLoad() async {
        let environment: @Sendable (String) -> String? = { $0 == "SSL_CERT_FILE" ? "/nonexistent/ca.pem" : nil }
        let error = await #expect(throws: ComponentConfigurationError.self) {
            try await Self.make(OpenAIConversationFactory(environment: environment), ["key": "k"])
        }
        #expect(error?.key == "SSL_CERT_FILE")
        #expect(error?.reason.contains("/nonexistent/ca.pem") == true)
    }

    // MARK: conversation.ollama

    @Test func ollamaDefaultsAndItsOpenAICompatibleAPI() async throws {
        let defaults = try await Self.make(OllamaConversationFactory(environment: Self.noEnvironment), ["model": "llama3.2:latest"])
        #expect(defaults.configuration == .init(endpoint: "http://localhost:11434/v1", key: "ollama", model: "llama3.2:latest"))
        let fromEnvironment = try await Self.make(OllamaConversationFactory(environment: { $0 == "OLLAMA_MODEL" ? "qwen3:0.6b" : nil }), ["model": "llama3.2:latest"])
        #expect(fromEnvironment.configuration.model == "qwen3:0.6b")

        let server = try await FakeChatServer.start { _ in (200, completion(content: "4", usage: #"{"prompt_tokens":30,"completion_tokens":2,"total_tokens":32}"#)) }
        let component = try await Self.make(OllamaConversationFactory(environment: Self.noEnvironment), ["endpoint": "http://127.0.0.1:\(server.port)/v1"])
        try await Self.running(component) {
            let answer = try await component.converse(ConversationRequest(messages: [.text(.user, "What is 2 plus 2?")]))
            #expect(answer.outputs[0].choices == [ConversationChoice(finishReason: "stop", content: "4")])
            #expect(answer.model == "llama3.2:latest")
            #expect(answer.usage == ConversationUsage(completionTokens: 2, promptTokens: 30, totalTokens: 32))
        }
        #expect(server.requests.first?.headers["authorization"] == "Bearer ollama")
        #expect(server.requests.first?.uri == "/v1/chat/completions")
    }

    // MARK: cacheTTL

    @Test func theSameRequestWithinTheTTLIsAnsweredFromTheCache() async throws {
        let calls = Mutex(0)
        let server = try await FakeChatServer.start { _ in
            let n = calls.withLock { $0 += 1; return $0 }
            return (200, completion(content: "answer \(n)"))
        }
        let clock = ConversationTestClock()
        let component = try OpenAIConversation(
            configuration: .init(endpoint: "http://127.0.0.1:\(server.port)/v1", key: "k", model: "m", cacheTTL: .seconds(600)),
            now: clock.now
        )
        try await Self.running(component) {
            let hi = ConversationRequest(messages: [.text(.user, "hi")])
            var other = hi
            other.temperature = 0.9
            func content(_ request: ConversationRequest) async throws -> String {
                try await component.converse(request).outputs[0].choices[0].content
            }
            let first = try await content(hi)
            let again = try await content(hi)
            let different = try await content(other)
            clock.advance(.seconds(601))
            let expired = try await content(hi)
            #expect([first, again, different, expired] == ["answer 1", "answer 1", "answer 2", "answer 3"])
        }
        #expect(server.requests.count == 3)
    }

    @Test func theCacheKeepsOnlyLiveEntries() {
        let clock = ConversationTestClock()
        let cache = ConversationResponseCache(ttl: .seconds(10), now: clock.now)
        let answer = ConversationResponse(outputs: [], model: "m")
        cache.store(answer, for: [1])
        clock.advance(.seconds(9))
        #expect(cache.lookup([1]) == answer)
        cache.store(answer, for: [2])
        clock.advance(.seconds(2))
        #expect(cache.lookup([1]) == nil)
        #expect(cache.lookup([2]) == answer)
        cache.store(answer, for: [3])
        #expect(cache.count == 2)
    }

    // MARK: Metadata

    @Test func metadataErrorsNameTheirKey() async {
        let openAI = OpenAIConversationFactory(environment: Self.noEnvironment)
        await #expect(throws: ComponentConfigurationError(key: "key", reason: "missing the OpenAI API key, set it in the OPENAI_API_KEY environment variable")) {
            _ = try await Self.make(openAI, [:])
        }
        await #expect(throws: ComponentConfigurationError(key: "apiVersion", reason: "endpoint and apiVersion must be provided when apiType is set to 'azure'")) {
            _ = try await Self.make(openAI, ["key": "k", "apiType": "Azure", "endpoint": "http://x"])
        }
        await #expect(throws: ComponentConfigurationError(key: "cacheTTL", reason: "cannot parse 'soon' as a duration (e.g. 5s, 250ms, 1m)")) {
            _ = try await Self.make(openAI, ["key": "k", "cacheTTL": "soon"])
        }
        await #expect(throws: ComponentConfigurationError.self) {
            _ = try await Self.make(OllamaConversationFactory(environment: Self.noEnvironment), ["endpoint": "ftp://x"])
        }
    }

    @Test func metadataIsRead() async throws {
        let fromEnvironment = try await Self.make(
            OpenAIConversationFactory(environment: { ["OPENAI_API_KEY": "env-key", "OPENAI_MODEL": "gpt-4.1"][$0] }),
            ["model": "gpt-4o", "responseCacheTTL": "10m"]
        )
        #expect(fromEnvironment.configuration == .init(endpoint: "https://api.openai.com/v1", key: "env-key", model: "gpt-4.1", cacheTTL: .seconds(600)))
        let azure = try await Self.make(
            OpenAIConversationFactory(environment: Self.noEnvironment),
            ["key": "k", "apiType": "azure", "endpoint": "http://azure.local", "apiVersion": "2025-01-01-preview"]
        )
        #expect(azure.configuration == .init(endpoint: "http://azure.local", key: "k", model: "gpt-4.1-nano", azureAPIVersion: "2025-01-01-preview"))
    }
}

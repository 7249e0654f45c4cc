#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import HTTP1Client
public import Logging
public import MechaCore
import NIOCore
import NIOHTTP1
import Synchronization

/// `conversation.openai` and `conversation.ollama`: a model behind OpenAI's chat completions API
/// (`POST <endpoint>/chat/completions`; Ollama serves the same API under `/v1`).
///
/// Requests are translated as Dapr's components do: roles `system`/`user`/`assistant`/`tool`
/// (`developer` and `generic` are `user`), one text part as a `content` string and several as
/// content parts, replayed tool calls as `tool_calls`, a tool result as a `tool` message with its
/// `tool_call_id`, `temperature` (left out for reasoning models), `tools`, `tool_choice`, request
/// `metadata` (with `prompt_cache_retention`) and a JSON Schema `response_format`. Answers become
/// one output per choice, with tool calls, the finish reason (`unknown` when none is sent) and
/// usage; the reported model is the configured one. With `cacheTTL` the same request within the
/// TTL is answered from a cache.
///
/// An `https://` endpoint (OpenAI's default) is reached over TLS, verifying the server against the
/// system roots plus `trustedCertificatesFile` (Dapr has no metadata for TLS here; like Go, the
/// factories honour `SSL_CERT_FILE`). A refused certificate fails the call, naming the endpoint.
public final class OpenAIConversation: Conversation {
    /// Typed configuration, parsed from metadata by the factories.
    public struct Configuration: Sendable, Hashable {
        /// The API base, e.g. `https://api.openai.com/v1` or `http://localhost:11434/v1`.
        public var endpoint: String
        public var key: String
        public var model: String
        /// `nil`: no response cache.
        public var cacheTTL: Duration?
        /// Azure OpenAI: the deployment URL form and the `api-key` header.
        public var azureAPIVersion: String?
        /// A PEM file of CA certificates trusted besides the system roots for an `https` endpoint.
        public var trustedCertificatesFile: String?

        public init(
            endpoint: String,
            key: String,
            model: String,
            cacheTTL: Duration? = nil,
            azureAPIVersion: String? = nil,
            trustedCertificatesFile: String? = nil
        ) {
            self.endpoint = endpoint
            self.key = key
            self.model = model
            self.cacheTTL = cacheTTL
            self.azureAPIVersion = azureAPIVersion
            self.trustedCertificatesFile = trustedCertificatesFile
        }
    }

    public let configuration: Configuration
    private let url: Endpoint
    private let client: HTTP1Client
    private let cache: ConversationResponseCache?
    private let stopped = Mutex(false)
    private let logger: Logger

    /// Throws `ComponentConfigurationError` (key `endpoint`) for an endpoint that is not an
    /// `http://` or `https://` URL with a host, and (key `SSL_CERT_FILE`) for a
    /// `trustedCertificatesFile` that cannot be read or holds no certificate.
    public init(
        configuration: Configuration,
        logger: Logger = Logger(label: "mecha.conversation"),
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) throws(ComponentConfigurationError) {
        guard let url = Endpoint(configuration.endpoint) else {
            throw ComponentConfigurationError(key: "endpoint", reason: "invalid endpoint '\(configuration.endpoint)': expected http(s)://host[:port][/path]")
        }
        self.configuration = configuration
        self.url = url
        self.logger = logger
        var tls = HTTP1TLSConfiguration()
        if let file = configuration.trustedCertificatesFile {
            tls.additionalTrustRoots = [.file(file)]
            do {
                try tls.validate()
            } catch {
                throw ComponentConfigurationError(key: "SSL_CERT_FILE", reason: error.reason)
            }
        }
        self.client = HTTP1Client(configuration: .init(connectTimeout: .seconds(15), tls: tls))
        self.cache = configuration.cacheTTL.flatMap { $0 > .zero ? ConversationResponseCache(ttl: $0, now: now) : nil }
    }

    public func run(until stop: StopSignal) async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.client.run() }
            await stop.wait()
            self.client.shutdown()
        }
    }

    public func close() async throws {
        self.stopped.withLock { $0 = true }
        self.client.shutdown()
    }

    public func converse(_ request: ConversationRequest) async throws -> ConversationResponse {
        let body = try Self.requestBody(request, model: self.configuration.model).serialized
        if let cached = self.cache?.lookup(body) { return cached }
        let response = try Self.response(from: try await self.post(body), model: self.configuration.model)
        if let choice = request.toolChoice, choice == "required" || choice == "any", !request.tools.isEmpty {
            let useful = response.outputs.contains { output in
                output.choices.contains { !$0.content.isEmpty || !$0.toolCalls.isEmpty }
            }
            guard useful else {
                throw ConversationError("LLM returned empty response with no tool calls despite \(request.tools.count) tools being available")
            }
        }
        self.cache?.store(response, for: body)
        return response
    }

    // MARK: Request

    /// The chat completions request body for `request` (pure; the cache key too).
    static func requestBody(_ request: ConversationRequest, model: String) throws -> JSONValue {
        var members: [(String, JSONValue)] = [("model", .string(model))]
        var messages: [JSONValue] = []
        for message in request.messages { messages.append(try Self.message(message)) }
        members.append(("messages", .array(messages)))
        if !Self.isReasoningModel(model) { members.append(("temperature", .double(request.temperature))) }
        if let maxTokens = request.maxTokens, maxTokens > 0 { members.append(("max_completion_tokens", .int(maxTokens))) }
        if let schema = request.responseFormat, case .string? = schema["type"] {
            var definition: [(String, JSONValue)] = [("name", Self.nonEmptyString(schema["name"]) ?? .string("response"))]
            if let description = Self.nonEmptyString(schema["description"]) { definition.append(("description", description)) }
            definition.append(("schema", schema))
            if case .bool(true)? = schema["strict"] { definition.append(("strict", .bool(true))) }
            members.append(("response_format", .object([("type", .string("json_schema")), ("json_schema", .object(definition))])))
        }
        if !request.tools.isEmpty {
            members.append(("tools", .array(request.tools.map { tool in
                var function: [(String, JSONValue)] = [("name", .string(tool.name))]
                if !tool.description.isEmpty { function.append(("description", .string(tool.description))) }
                function.append(("parameters", tool.parameters))
                return .object([("type", .string("function")), ("function", .object(function))])
            })))
        }
        if let choice = request.toolChoice, !choice.isEmpty {
            switch choice {
            case "auto", "none", "required": members.append(("tool_choice", .string(choice)))
            case "any": members.append(("tool_choice", .string("required")))
            default:
                members.append(("tool_choice", .object([("type", .string("function")), ("function", .object([("name", .string(choice))]))])))
            }
        }
        var metadata = request.metadata
        if let retention = request.promptCacheRetention { metadata["prompt_cache_retention"] = GoDuration.format(retention) }
        if !metadata.isEmpty { members.append(("metadata", .stringMap(metadata))) }
        return .object(members)
    }

    private static func message(_ message: ConversationMessage) throws -> JSONValue {
        switch message.role {
        case .tool:
            guard message.parts.count == 1 else {
                throw ConversationError("expected exactly one part for role tool, got \(message.parts.count)")
            }
            guard case .toolResult(let id, _, let content) = message.parts[0] else {
                throw ConversationError("expected part of type ToolCallResponse for role tool, got llms.TextContent")
            }
            return .object([("role", .string("tool")), ("content", .string(content)), ("tool_call_id", .string(id))])
        case .function:
            if message.parts.count == 1, case .toolResult(_, let name, let content) = message.parts[0] {
                return .object([("role", .string("function")), ("content", .string(content)), ("name", .string(name))])
            }
        default:
            break
        }
        let role = switch message.role {
        case .system: "system"
        case .assistant: "assistant"
        case .function: "function"
        case .user, .generic, .tool: "user"
        }
        var texts: [String] = []
        var calls: [JSONValue] = []
        for part in message.parts {
            switch part {
            case .text(let text): texts.append(text)
            case .toolResult(_, _, let content): texts.append(content)
            case .toolCall(let call):
                calls.append(.object([
                    ("id", .string(call.id)),
                    ("type", .string(call.type.isEmpty ? "function" : call.type)),
                    ("function", .object([("name", .string(call.name)), ("arguments", .string(call.arguments))])),
                ]))
            }
        }
        var members: [(String, JSONValue)] = [("role", .string(role))]
        if texts.count > 1 {
            members.append(("content", .array(texts.map { .object([("type", .string("text")), ("text", .string($0))]) })))
        } else {
            members.append(("content", .string(texts.first ?? "")))
        }
        if !calls.isEmpty { members.append(("tool_calls", .array(calls))) }
        return .object(members)
    }

    /// Models that accept only the default temperature (langchaingo leaves it out for them).
    static func isReasoningModel(_ model: String) -> Bool {
        let lowered = model.lowercased()
        return ["o1", "o3", "o4", "gpt-5"].contains { lowered.hasPrefix($0) }
    }

    private static func nonEmptyString(_ value: JSONValue?) -> JSONValue? {
        guard case .string(let text)? = value, !text.isEmpty else { return nil }
        return .string(text)
    }

    // MARK: Response

    /// The answer of a chat completions response body (pure).
    static func response(from json: JSONValue, model: String) throws -> ConversationResponse {
        guard case .array(let choices)? = json["choices"], !choices.isEmpty else { throw ConversationError("no response") }
        var outputs: [ConversationResult] = []
        for (index, choice) in choices.enumerated() {
            let message = choice["message"]
            var finishReason = Self.string(choice["finish_reason"])
            if finishReason.isEmpty { finishReason = "unknown" }
            var calls: [ConversationToolCall] = []
            if case .array(let items)? = message?["tool_calls"] {
                for item in items {
                    calls.append(ConversationToolCall(
                        id: Self.string(item["id"]),
                        type: Self.string(item["type"]),
                        name: Self.string(item["function"]?["name"]),
                        arguments: Self.string(item["function"]?["arguments"])
                    ))
                }
            }
            let converted = ConversationChoice(
                finishReason: finishReason,
                index: Int64(index),
                content: Self.string(message?["content"]),
                toolCalls: calls
            )
            outputs.append(ConversationResult(stopReason: finishReason, choices: [converted]))
        }
        return ConversationResponse(outputs: outputs, model: model, usage: Self.usage(json["usage"]))
    }

    private static func usage(_ json: JSONValue?) -> ConversationUsage? {
        func count(_ value: JSONValue?) -> UInt64 {
            guard case .number(let text)? = value else { return 0 }
            return UInt64(text) ?? Double(text).flatMap { $0 >= 0 ? UInt64(exactly: $0.rounded(.down)) : nil } ?? 0
        }
        let completion = json?["completion_tokens_details"]
        let prompt = json?["prompt_tokens_details"]
        var usage = ConversationUsage(
            completionTokens: count(json?["completion_tokens"]),
            promptTokens: count(json?["prompt_tokens"]),
            totalTokens: count(json?["total_tokens"])
        )
        let completionDetails = ConversationUsage.CompletionDetails(
            acceptedPredictionTokens: count(completion?["accepted_prediction_tokens"]),
            audioTokens: count(completion?["audio_tokens"]),
            reasoningTokens: count(completion?["reasoning_tokens"]),
            rejectedPredictionTokens: count(completion?["rejected_prediction_tokens"])
        )
        if completionDetails != ConversationUsage.CompletionDetails() { usage.completionDetails = completionDetails }
        let promptDetails = ConversationUsage.PromptDetails(audioTokens: count(prompt?["audio_tokens"]), cachedTokens: count(prompt?["cached_tokens"]))
        if promptDetails != ConversationUsage.PromptDetails() { usage.promptDetails = promptDetails }
        guard usage.completionTokens > 0 || usage.promptTokens > 0 || usage.totalTokens > 0 else { return nil }
        return usage
    }

    private static func string(_ value: JSONValue?) -> String {
        guard case .string(let text)? = value else { return "" }
        return text
    }

    // MARK: Exchange

    private func post(_ body: [UInt8]) async throws -> JSONValue {
        var uri = self.url.path + "/chat/completions"
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: self.url.hostHeader)
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Accept", value: "application/json")
        if let version = self.configuration.azureAPIVersion {
            uri = self.url.path + "/openai/deployments/\(self.configuration.model)/chat/completions?api-version=\(version)"
            headers.add(name: "api-key", value: self.configuration.key)
        } else if !self.configuration.key.isEmpty {
            headers.add(name: "Authorization", value: "Bearer \(self.configuration.key)")
        }
        let location = "\(self.url.tls ? "https" : "http")://\(self.url.hostHeader)\(uri)"
        let request = HTTP1Request(
            target: HTTP1Target(host: self.url.host, port: self.url.port, tls: self.url.tls),
            method: .POST,
            uri: uri,
            headers: headers,
            body: .bytes(ByteBuffer(bytes: body))
        )
        let (status, answer): (UInt, [UInt8])
        do {
            (status, answer) = try await self.execute(request) { response in
                let body = try await response.collect(upTo: 64 * 1024 * 1024)
                return (response.status.code, Array(body.readableBytesView))
            }
        } catch let error as ConversationError {
            throw error
        } catch {
            throw ConversationError("Post \"\(location)\": \(Self.goDialError(error, host: self.url.host, port: self.url.port))")
        }
        guard status == 200 else {
            var message = "API returned unexpected status code: \(status)"
            if let json = try? JSONValue(parsing: answer) {
                message += ": " + Self.string(json["error"]?["message"])
            }
            throw ConversationError(message)
        }
        do {
            return try JSONValue(parsing: answer)
        } catch {
            throw ConversationError("invalid chat completion response: \(error)")
        }
    }

    /// `execute`, tolerating the moment between the component being built and its client running.
    private func execute<T: Sendable>(_ request: HTTP1Request, _ handler: (HTTP1Response) async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + .seconds(5)
        while true {
            do {
                return try await self.client.execute(request, handler)
            } catch let error as HTTP1ClientError where error == .shutDown {
                guard !self.stopped.withLock({ $0 }) else { throw ConversationError("the conversation component is closed") }
                guard ContinuousClock.now < deadline else { throw ConversationError("the conversation component is not running") }
                try await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    /// A refused connection in Go's words, so errors read as daprd's do.
    private static func goDialError(_ error: any Error, host: String, port: Int) -> String {
        let text = "\(error)"
        if text.lowercased().contains("connection refused") {
            let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            return "dial tcp \(address): connect: connection refused"
        }
        return text
    }

    typealias Endpoint = HTTPEndpoint
}

// MARK: - Factories

/// Builds `conversation.openai`. Metadata: `key` (required unless `OPENAI_API_KEY` is set),
/// `model` (default `gpt-5-nano`; the `OPENAI_MODEL` environment variable wins, as in Dapr),
/// `endpoint` (default `OPENAI_BASE_URL` or `https://api.openai.com/v1`), `cacheTTL` (alias
/// `responseCacheTTL`, a Go duration), `apiType` (`open_ai` or `azure`) and `apiVersion` (required
/// with `azure`, as is `endpoint`; the model then defaults to `gpt-4.1-nano`, `AZURE_OPENAI_MODEL`).
/// `SSL_CERT_FILE`, when set, names CA certificates trusted besides the system roots.
public struct OpenAIConversationFactory: ComponentFactory {
    let environment: @Sendable (String) -> String?

    public init(environment: @escaping @Sendable (String) -> String? = ConversationEnvironment.process) {
        self.environment = environment
    }

    public var type: ComponentType { ComponentType(.conversation, "openai") }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        let metadata = spec.metadata
        let azure = metadata.string("apiType")?.lowercased() == "azure"
        var key = metadata.string("key") ?? ""
        if key.isEmpty { key = self.environment("OPENAI_API_KEY") ?? "" }
        guard !key.isEmpty else {
            throw ComponentConfigurationError(key: "key", reason: "missing the OpenAI API key, set it in the OPENAI_API_KEY environment variable")
        }
        let model = ConversationEnvironment.model(
            environment: self.environment(azure ? "AZURE_OPENAI_MODEL" : "OPENAI_MODEL"),
            metadata: metadata.string("model"),
            default: azure ? "gpt-4.1-nano" : "gpt-5-nano"
        )
        var endpoint = metadata.string("endpoint") ?? ""
        var apiVersion: String?
        if azure {
            guard !endpoint.isEmpty, let version = metadata.string("apiVersion") else {
                throw ComponentConfigurationError(key: "apiVersion", reason: "endpoint and apiVersion must be provided when apiType is set to 'azure'")
            }
            apiVersion = version
        }
        if endpoint.isEmpty { endpoint = self.environment("OPENAI_BASE_URL").flatMap { $0.isEmpty ? nil : $0 } ?? "https://api.openai.com/v1" }
        return try OpenAIConversation(
            configuration: .init(
                endpoint: endpoint,
                key: key,
                model: model,
                cacheTTL: try ConversationEnvironment.cacheTTL(metadata),
                azureAPIVersion: apiVersion,
                trustedCertificatesFile: ConversationEnvironment.trustedCertificatesFile(self.environment)
            ),
            logger: context.logger
        )
    }
}

/// Builds `conversation.ollama`: Ollama's OpenAI-compatible API. Metadata: `model` (default
/// `llama3.2:latest`; `OLLAMA_MODEL` wins), `endpoint` (default `http://localhost:11434/v1`),
/// `key` (default `ollama`; Ollama ignores it) and `cacheTTL`. Loading never contacts the server:
/// a missing Ollama shows on the first call. An `https` endpoint is trusted as with
/// `conversation.openai` (system roots plus `SSL_CERT_FILE`).
public struct OllamaConversationFactory: ComponentFactory {
    let environment: @Sendable (String) -> String?

    public init(environment: @escaping @Sendable (String) -> String? = ConversationEnvironment.process) {
        self.environment = environment
    }

    public var type: ComponentType { ComponentType(.conversation, "ollama") }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        let metadata = spec.metadata
        return try OpenAIConversation(
            configuration: .init(
                endpoint: metadata.string("endpoint") ?? "http://localhost:11434/v1",
                key: metadata.string("key") ?? "ollama",
                model: ConversationEnvironment.model(
                    environment: self.environment("OLLAMA_MODEL"),
                    metadata: metadata.string("model"),
                    default: "llama3.2:latest"
                ),
                cacheTTL: try ConversationEnvironment.cacheTTL(metadata),
                trustedCertificatesFile: ConversationEnvironment.trustedCertificatesFile(self.environment)
            ),
            logger: context.logger
        )
    }
}

/// What the LLM components read from outside their metadata.
public enum ConversationEnvironment {
    /// The process environment.
    public static let process: @Sendable (String) -> String? = { name in
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }

    /// Dapr's order: the environment variable, then metadata, then the default.
    static func model(environment: String?, metadata: String?, default defaultModel: String) -> String {
        if let environment, !environment.isEmpty { return environment }
        if let metadata, !metadata.isEmpty { return metadata }
        return defaultModel
    }

    /// `SSL_CERT_FILE`: Go's TLS stack (and so daprd) trusts the CA certificates in that file too.
    static func trustedCertificatesFile(_ environment: (String) -> String?) -> String? {
        guard let path = environment("SSL_CERT_FILE"), !path.isEmpty else { return nil }
        return path
    }

    /// `cacheTTL` (or `responseCacheTTL`): a Go duration; absent or zero means no cache.
    static func cacheTTL(_ metadata: ComponentMetadata) throws(ComponentConfigurationError) -> Duration? {
        let key = metadata.string("cacheTTL") != nil ? "cacheTTL" : "responseCacheTTL"
        guard metadata.string(key) != nil else { return nil }
        let ttl = try metadata.duration(key, default: .zero)
        return ttl > .zero ? ttl : nil
    }
}

public import MechaCore
import MechaResiliency
public import MechaRuntime

/// The conversation building block (`/v1.0-alpha1|alpha2/conversation/{name}/converse`,
/// `ConverseAlpha1`, `ConverseAlpha2`), daprd's checks in daprd's order: component, inputs, message
/// types, tool calls, tool choice; then the component; then PII scrubbing of the answer.
///
/// Both versions become one `ConversationRequest`. Alpha1 roles map as daprd maps them (`human` and
/// unknown roles are `user`, `ai` is `assistant`); Alpha2's `developer` is `user`. Alpha1 answers
/// carry the first choice's text of each output and echo the request's `parameters`.
public struct ConversationAPI: Sendable {
    let components: ComponentStore

    public init(components: ComponentStore) {
        self.components = components
    }

    // MARK: Alpha1

    public func converseAlpha1(_ request: ConverseAlpha1Request) async throws(APIError) -> ConverseAlpha1Response {
        let component = try self.component(named: request.name)
        guard !request.inputs.isEmpty else { throw .conversationMissingInputs(request.name) }
        let scrubber = PIIScrubber.standard
        let messages = request.inputs.map { input in
            ConversationMessage.text(Self.alpha1Role(input.role), input.scrubPII ? scrubber.scrub(input.content) : input.content)
        }
        let response = try await self.call(component, name: request.name, ConversationRequest(messages: messages, temperature: request.temperature))
        var answer = ConverseAlpha1Response(contextID: request.contextID.isEmpty ? nil : request.contextID, outputs: [])
        for output in response.outputs {
            let content = output.choices.first?.content ?? ""
            answer.outputs.append(.init(result: request.scrubPII ? scrubber.scrub(content) : content, parameters: request.parameters))
        }
        return answer
    }

    /// daprd's `mapRoleToChatMessageType`.
    static func alpha1Role(_ role: String) -> ConversationMessage.Role {
        switch role {
        case "system": .system
        case "assistant", "ai": .assistant
        case "tool": .tool
        case "function": .function
        case "generic": .generic
        default: .user
        }
    }

    // MARK: Alpha2

    public func converseAlpha2(_ request: ConverseAlpha2Request) async throws(APIError) -> ConverseAlpha2Response {
        let component = try self.component(named: request.name)
        guard !request.inputs.isEmpty else { throw .conversationMissingInputs(request.name) }
        let scrubber = PIIScrubber.standard

        var messages: [ConversationMessage] = []
        for input in request.inputs {
            func texts(_ texts: [String]) -> [String] {
                input.scrubPII ? texts.map(scrubber.scrub) : texts
            }
            for message in input.messages {
                switch message {
                case .unset:
                    throw .conversationInvalidParams(request.name, "message type cannot be nil")
                case .developer(let content), .user(let content):
                    messages.append(ConversationMessage(role: .user, parts: texts(content).map(ConversationPart.text)))
                case .system(let content):
                    messages.append(ConversationMessage(role: .system, parts: texts(content).map(ConversationPart.text)))
                case .assistant(let content, let calls):
                    var parts = texts(content).map(ConversationPart.text)
                    for call in calls {
                        guard let function = call.function else {
                            throw .conversationInvalidParams(request.name, "tool types cannot be nil")
                        }
                        parts.append(.toolCall(ConversationToolCall(id: call.id, name: function.name, arguments: function.arguments)))
                    }
                    messages.append(ConversationMessage(role: .assistant, parts: parts))
                case .tool(let toolID, let name, let content):
                    let parts = texts(content).map { ConversationPart.toolResult(toolCallID: toolID, name: name, content: $0) }
                    messages.append(ConversationMessage(role: .tool, parts: parts))
                }
            }
        }

        var toolChoice = request.toolChoice
        if toolChoice.isEmpty, !request.tools.isEmpty { toolChoice = "auto" }
        switch toolChoice {
        case "auto", "none", "":
            break
        case "required":
            if request.tools.isEmpty {
                throw .conversationInvalidParams(
                    request.name,
                    "tool choice must be 'auto', 'none', 'required', or a specific tool name matching the tools available to be used"
                )
            }
        default:
            // As daprd: a named tool is only checked when tools were sent.
            if !request.tools.isEmpty, !request.tools.contains(where: { $0?.name == toolChoice }) {
                throw .conversationInvalidParams(
                    request.name,
                    "tool choice selected was not found. Must be 'auto', 'none', 'required', or a specific tool name matching the tools available to be used"
                )
            }
        }

        let call = ConversationRequest(
            messages: messages,
            tools: request.tools.compactMap { $0 },
            toolChoice: toolChoice.isEmpty ? nil : toolChoice,
            temperature: request.temperature,
            metadata: request.metadata,
            responseFormat: request.responseFormat,
            promptCacheRetention: request.promptCacheRetention,
            maxTokens: request.maxTokens
        )
        let response = try await self.call(component, name: request.name, call)

        var answer = ConverseAlpha2Response(contextID: request.contextID.isEmpty ? nil : request.contextID, outputs: [])
        for output in response.outputs {
            var choices = output.choices
            if request.scrubPII {
                for index in choices.indices where !choices[index].content.isEmpty {
                    choices[index].content = scrubber.scrub(choices[index].content)
                }
            }
            answer.outputs.append(.init(choices: choices, model: response.model.isEmpty ? nil : response.model, usage: response.usage))
        }
        return answer
    }

    // MARK: Shared

    private func component(named name: String) throws(APIError) -> any Conversation {
        guard let component = self.components.entry(named: name)?.component as? any Conversation else {
            throw .conversationNotFound(name)
        }
        return component
    }

    private func call(_ component: any Conversation, name: String, _ request: ConversationRequest) async throws(APIError) -> ConversationResponse {
        do {
            return try await self.components.call(name, .conversation, "converse") { try await component.converse(request) }
        } catch {
            throw .conversationInvoke(name, "\(error)")
        }
    }
}

// MARK: - Requests and answers (surface-neutral)

/// A value of the `parameters` map (`google.protobuf.Any`): kept as received and echoed back in
/// Alpha1 answers, never interpreted.
public enum ConversationParameter: Sendable, Hashable {
    /// From gRPC: the type URL and the packed bytes.
    case any(typeURL: String, value: [UInt8])
    /// From HTTP: the protojson object (`{"@type": …, …}`).
    case json(JSONValue)
}

/// `ConversationRequest` (Alpha1).
public struct ConverseAlpha1Request: Sendable, Hashable {
    public struct Input: Sendable, Hashable {
        public var content: String
        public var role: String
        public var scrubPII: Bool

        public init(content: String, role: String = "", scrubPII: Bool = false) {
            self.content = content
            self.role = role
            self.scrubPII = scrubPII
        }
    }

    public var name: String
    public var contextID: String
    public var inputs: [Input]
    public var parameters: [String: ConversationParameter]
    public var metadata: [String: String]
    public var scrubPII: Bool
    public var temperature: Double

    public init(
        name: String,
        contextID: String = "",
        inputs: [Input] = [],
        parameters: [String: ConversationParameter] = [:],
        metadata: [String: String] = [:],
        scrubPII: Bool = false,
        temperature: Double = 0
    ) {
        self.name = name
        self.contextID = contextID
        self.inputs = inputs
        self.parameters = parameters
        self.metadata = metadata
        self.scrubPII = scrubPII
        self.temperature = temperature
    }
}

/// `ConversationResponse` (Alpha1).
public struct ConverseAlpha1Response: Sendable, Hashable {
    public struct Output: Sendable, Hashable {
        public var result: String
        public var parameters: [String: ConversationParameter]
    }

    public var contextID: String?
    public var outputs: [Output]
}

/// `ConversationRequestAlpha2`.
public struct ConverseAlpha2Request: Sendable, Hashable {
    /// One message; `unset` is a message whose type oneof was empty (refused, as daprd does).
    public enum Message: Sendable, Hashable {
        case developer([String])
        case system([String])
        case user([String])
        case assistant([String], toolCalls: [ToolCall])
        case tool(toolID: String, name: String, [String])
        case unset
    }

    /// A tool call replayed in an assistant message; `function` is `nil` when its oneof was empty.
    public struct ToolCall: Sendable, Hashable {
        public var id: String
        public var function: (name: String, arguments: String)?

        public init(id: String, function: (name: String, arguments: String)?) {
            self.id = id
            self.function = function
        }

        public static func == (lhs: ToolCall, rhs: ToolCall) -> Bool {
            lhs.id == rhs.id && lhs.function?.name == rhs.function?.name && lhs.function?.arguments == rhs.function?.arguments
        }

        public func hash(into hasher: inout Hasher) {
            hasher.combine(self.id)
            hasher.combine(self.function?.name)
            hasher.combine(self.function?.arguments)
        }
    }

    public struct Input: Sendable, Hashable {
        public var messages: [Message]
        public var scrubPII: Bool

        public init(messages: [Message], scrubPII: Bool = false) {
            self.messages = messages
            self.scrubPII = scrubPII
        }
    }

    public var name: String
    public var contextID: String
    public var inputs: [Input]
    public var parameters: [String: ConversationParameter]
    public var metadata: [String: String]
    public var scrubPII: Bool
    public var temperature: Double
    /// `nil` entries are tools whose type oneof was empty: they count for the tool choice but are
    /// not sent, as daprd does.
    public var tools: [ConversationTool?]
    public var toolChoice: String
    public var responseFormat: JSONValue?
    public var promptCacheRetention: Duration?
    public var maxTokens: Int64?

    public init(
        name: String,
        contextID: String = "",
        inputs: [Input] = [],
        parameters: [String: ConversationParameter] = [:],
        metadata: [String: String] = [:],
        scrubPII: Bool = false,
        temperature: Double = 0,
        tools: [ConversationTool?] = [],
        toolChoice: String = "",
        responseFormat: JSONValue? = nil,
        promptCacheRetention: Duration? = nil,
        maxTokens: Int64? = nil
    ) {
        self.name = name
        self.contextID = contextID
        self.inputs = inputs
        self.parameters = parameters
        self.metadata = metadata
        self.scrubPII = scrubPII
        self.temperature = temperature
        self.tools = tools
        self.toolChoice = toolChoice
        self.responseFormat = responseFormat
        self.promptCacheRetention = promptCacheRetention
        self.maxTokens = maxTokens
    }
}

/// `ConversationResponseAlpha2`.
public struct ConverseAlpha2Response: Sendable, Hashable {
    public struct Output: Sendable, Hashable {
        public var choices: [ConversationChoice]
        public var model: String?
        public var usage: ConversationUsage?
    }

    public var contextID: String?
    public var outputs: [Output]
}

// MARK: - Errors

extension APIError {
    /// No conversation component of that name (400, InvalidArgument).
    public static func conversationNotFound(_ name: String) -> APIError {
        .init(errorCode: "ERR_CONVERSATION_NOT_FOUND", message: "failed finding conversation component \(name)", httpStatus: 400, grpcStatus: .invalidArgument)
    }

    /// A request daprd refuses before calling the component (400, InvalidArgument).
    public static func conversationInvalidParams(_ name: String, _ detail: String) -> APIError {
        .init(
            errorCode: "ERR_CONVERSATION_INVALID_PARMS",
            message: "failed conversing with component \(name): invalid params: \(detail)",
            httpStatus: 400,
            grpcStatus: .invalidArgument
        )
    }

    /// The component failed (500, Internal).
    public static func conversationInvoke(_ name: String, _ detail: String) -> APIError {
        .init(errorCode: "ERR_CONVERSATION_INVOKE", message: "failed conversing with component \(name): \(detail)", httpStatus: 500, grpcStatus: .internalError)
    }

    /// A request without inputs (400, InvalidArgument).
    public static func conversationMissingInputs(_ name: String) -> APIError {
        .init(
            errorCode: "ERR_CONVERSATION_MISSING_INPUTS",
            message: "failed conversing with component \(name): missing inputs in request",
            httpStatus: 400,
            grpcStatus: .invalidArgument
        )
    }
}

/// The conversation building block's component contract (Dapr's `conversation.*`): one call to a
/// large language model.
///
/// The conversation API has already validated the request, scrubbed PII from its inputs and folded
/// both API versions into this one shape, so a component only translates it to its provider and
/// back. A component throws for anything the provider refuses or cannot be reached for; the API
/// reports it as `ERR_CONVERSATION_INVOKE` with the error's description.
public protocol Conversation: Component {
    /// Sends the messages (with tools, tool choice, temperature, …) and returns the model's answer.
    func converse(_ request: ConversationRequest) async throws -> ConversationResponse
}

/// One conversation turn as a component receives it.
public struct ConversationRequest: Sendable, Hashable {
    /// The history, oldest first.
    public var messages: [ConversationMessage]
    /// Functions the model may call. Empty: none offered.
    public var tools: [ConversationTool]
    /// `auto`, `none`, `required` or a tool name; `nil` leaves the provider's default.
    public var toolChoice: String?
    /// Zero means "the provider's default" (Dapr sends no temperature then, except to OpenAI).
    public var temperature: Double
    /// Request metadata passed through to the provider (OpenAI's `metadata`).
    public var metadata: [String: String]
    /// A JSON Schema the answer must follow (OpenAI's structured output).
    public var responseFormat: JSONValue?
    /// How long the provider should keep the prompt cached.
    public var promptCacheRetention: Duration?
    /// Upper bound on generated tokens, when the caller set one.
    public var maxTokens: Int64?

    public init(
        messages: [ConversationMessage],
        tools: [ConversationTool] = [],
        toolChoice: String? = nil,
        temperature: Double = 0,
        metadata: [String: String] = [:],
        responseFormat: JSONValue? = nil,
        promptCacheRetention: Duration? = nil,
        maxTokens: Int64? = nil
    ) {
        self.messages = messages
        self.tools = tools
        self.toolChoice = toolChoice
        self.temperature = temperature
        self.metadata = metadata
        self.responseFormat = responseFormat
        self.promptCacheRetention = promptCacheRetention
        self.maxTokens = maxTokens
    }
}

/// One message of the history: who said it and its parts.
public struct ConversationMessage: Sendable, Hashable {
    /// Roles as Dapr hands them to components (langchaingo's chat message types). Alpha2's
    /// `developer` arrives as `user`, as daprd maps it.
    public enum Role: String, Sendable, Hashable, CaseIterable {
        case system
        case user
        case assistant
        case tool
        case function
        case generic
    }

    public var role: Role
    public var parts: [ConversationPart]

    public init(role: Role, parts: [ConversationPart]) {
        self.role = role
        self.parts = parts
    }

    /// A message of one text part.
    public static func text(_ role: Role, _ text: String) -> ConversationMessage {
        ConversationMessage(role: role, parts: [.text(text)])
    }
}

/// A piece of a message.
public enum ConversationPart: Sendable, Hashable {
    case text(String)
    /// A call the assistant made earlier in the conversation (multi-turn tool use).
    case toolCall(ConversationToolCall)
    /// The result of running a tool, answering the call `toolCallID`.
    case toolResult(toolCallID: String, name: String, content: String)
}

/// A function the model may call; `parameters` is a JSON Schema object.
public struct ConversationTool: Sendable, Hashable {
    public var name: String
    public var description: String
    public var parameters: JSONValue

    public init(name: String, description: String = "", parameters: JSONValue = .object([])) {
        self.name = name
        self.description = description
        self.parameters = parameters
    }
}

/// A call of a function: requested by the model in an answer, or replayed in the history.
public struct ConversationToolCall: Sendable, Hashable {
    public var id: String
    /// Always `function` today.
    public var type: String
    public var name: String
    /// The arguments as the model wrote them (usually a JSON object in text).
    public var arguments: String

    public init(id: String, type: String = "function", name: String, arguments: String) {
        self.id = id
        self.type = type
        self.name = name
        self.arguments = arguments
    }
}

/// A component's answer.
public struct ConversationResponse: Sendable, Hashable {
    public var outputs: [ConversationResult]
    /// The model that answered; empty when the component has none (echo).
    public var model: String
    public var usage: ConversationUsage?

    public init(outputs: [ConversationResult], model: String = "", usage: ConversationUsage? = nil) {
        self.outputs = outputs
        self.model = model
        self.usage = usage
    }
}

/// One output: Dapr components put one choice in each.
public struct ConversationResult: Sendable, Hashable {
    public var stopReason: String
    public var choices: [ConversationChoice]

    public init(stopReason: String, choices: [ConversationChoice]) {
        self.stopReason = stopReason
        self.choices = choices
    }
}

public struct ConversationChoice: Sendable, Hashable {
    /// `stop`, `tool_calls`, `length`, … (`unknown` when the provider sent none).
    public var finishReason: String
    public var index: Int64
    public var content: String
    public var toolCalls: [ConversationToolCall]

    public init(finishReason: String, index: Int64 = 0, content: String, toolCalls: [ConversationToolCall] = []) {
        self.finishReason = finishReason
        self.index = index
        self.content = content
        self.toolCalls = toolCalls
    }
}

/// Token counts of one call, with OpenAI's breakdowns when the provider reports them.
public struct ConversationUsage: Sendable, Hashable {
    public var completionTokens: UInt64
    public var promptTokens: UInt64
    public var totalTokens: UInt64
    public var completionDetails: CompletionDetails?
    public var promptDetails: PromptDetails?

    public struct CompletionDetails: Sendable, Hashable {
        public var acceptedPredictionTokens: UInt64
        public var audioTokens: UInt64
        public var reasoningTokens: UInt64
        public var rejectedPredictionTokens: UInt64

        public init(acceptedPredictionTokens: UInt64 = 0, audioTokens: UInt64 = 0, reasoningTokens: UInt64 = 0, rejectedPredictionTokens: UInt64 = 0) {
            self.acceptedPredictionTokens = acceptedPredictionTokens
            self.audioTokens = audioTokens
            self.reasoningTokens = reasoningTokens
            self.rejectedPredictionTokens = rejectedPredictionTokens
        }
    }

    public struct PromptDetails: Sendable, Hashable {
        public var audioTokens: UInt64
        public var cachedTokens: UInt64

        public init(audioTokens: UInt64 = 0, cachedTokens: UInt64 = 0) {
            self.audioTokens = audioTokens
            self.cachedTokens = cachedTokens
        }
    }

    public init(
        completionTokens: UInt64,
        promptTokens: UInt64,
        totalTokens: UInt64,
        completionDetails: CompletionDetails? = nil,
        promptDetails: PromptDetails? = nil
    ) {
        self.completionTokens = completionTokens
        self.promptTokens = promptTokens
        self.totalTokens = totalTokens
        self.completionDetails = completionDetails
        self.promptDetails = promptDetails
    }
}

/// A conversation component's failure; `description` is what the API reports after
/// `failed conversing with component <name>: `.
public struct ConversationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { self.reason }
}

public import MechaCore

/// `conversation.echo`: Dapr's test model. It answers every request with one output of one choice
/// whose content is every text of the history joined by newlines (tool results read
/// `Tool Response for tool ID '<id>' with name '<name>': <content>`), and asks to call every offered
/// tool (ids `0`, `1`, … in offer order, arguments the sorted names of the tool's `properties`
/// joined by commas) followed by the tool calls replayed in the history. With any tool call the
/// finish reason is `tool_calls`, otherwise `stop`. Usage counts the answer's whitespace-separated
/// words as both prompt and completion tokens.
public struct EchoConversation: Conversation {
    public init() {}

    public func converse(_ request: ConversationRequest) async throws -> ConversationResponse {
        var toolCalls: [ConversationToolCall] = []
        for (index, tool) in request.tools.enumerated() {
            var names: [String] = []
            switch tool.parameters {
            case .object:
                if let properties = tool.parameters["properties"] {
                    guard case .object(let fields) = properties else {
                        throw ConversationError("tool function properties must be a map[string]any, got \(Self.goType(properties))")
                    }
                    names = Set(fields.map(\.0)).sorted()
                }
            case .null:
                break
            default:
                throw ConversationError("tool function parameters must be a map[string]any, got \(Self.goType(tool.parameters))")
            }
            toolCalls.append(ConversationToolCall(id: String(index), name: tool.name, arguments: names.joined(separator: ",")))
        }

        var texts: [String] = []
        for message in request.messages {
            for part in message.parts {
                switch part {
                case .text(let text): texts.append(text)
                case .toolCall(let call): toolCalls.append(call)
                case .toolResult(let id, let name, let content):
                    texts.append("Tool Response for tool ID '\(id)' with name '\(name)': \(content)")
                }
            }
        }
        let content = texts.joined(separator: "\n")
        let finishReason = toolCalls.isEmpty ? "stop" : "tool_calls"
        let tokens = UInt64(Self.words(in: content))
        return ConversationResponse(
            outputs: [
                ConversationResult(
                    stopReason: finishReason,
                    choices: [ConversationChoice(finishReason: finishReason, content: content, toolCalls: toolCalls)]
                )
            ],
            usage: ConversationUsage(completionTokens: tokens, promptTokens: tokens, totalTokens: tokens * 2)
        )
    }

    /// Go's `len(strings.Fields(text))`: runs of non-space characters (Unicode white space).
    static func words(in text: String) -> Int {
        var count = 0
        var inWord = false
        for scalar in text.unicodeScalars {
            if scalar.properties.isWhitespace {
                inWord = false
            } else if !inWord {
                inWord = true
                count += 1
            }
        }
        return count
    }

    private static func goType(_ value: JSONValue) -> String {
        switch value {
        case .null: "<nil>"
        case .bool: "bool"
        case .number: "float64"
        case .string: "string"
        case .array: "[]interface {}"
        case .object: "map[string]interface {}"
        }
    }
}

/// Builds `conversation.echo`; it has no metadata (any given is ignored, as Dapr does).
public struct EchoConversationFactory: ComponentFactory {
    public init() {}
    public var type: ComponentType { ComponentType(.conversation, "echo") }

    public func make(spec: ComponentSpec, context: ComponentContext) async throws -> any Component {
        EchoConversation()
    }
}

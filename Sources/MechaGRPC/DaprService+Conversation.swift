import Foundation
import GRPCCore
import MechaAPI
import MechaCore
import SwiftProtobuf

/// `ConverseAlpha1` and `ConverseAlpha2`: the messages turned into `ConversationAPI` requests and
/// its answers back into messages, field for field as daprd fills them (optional fields set only
/// when daprd sets them).
extension DaprService {
    func registerConversation<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        Self.unary(&router, DaprMethod.ConverseAlpha1.descriptor, self.converseAlpha1)
        Self.unary(&router, DaprMethod.ConverseAlpha2.descriptor, self.converseAlpha2)
    }

    func converseAlpha1(
        _ request: Dapr_Proto_Runtime_V1_ConversationRequest,
        _ context: ServerContext,
        _ metadata: Metadata
    ) async throws -> Dapr_Proto_Runtime_V1_ConversationResponse {
        let answer = try await self.api.conversation.converseAlpha1(ConverseAlpha1Request(
            name: request.name,
            contextID: request.contextID,
            inputs: request.inputs.map { .init(content: $0.content, role: $0.role, scrubPII: $0.scrubPii) },
            parameters: request.parameters.mapValues(ConversationMessages.parameter),
            metadata: request.metadata,
            scrubPII: request.scrubPii,
            temperature: request.temperature
        ))
        var response = Dapr_Proto_Runtime_V1_ConversationResponse()
        if let contextID = answer.contextID { response.contextID = contextID }
        response.outputs = answer.outputs.map { output in
            var result = Dapr_Proto_Runtime_V1_ConversationResult()
            result.result = output.result
            result.parameters = output.parameters.compactMapValues(ConversationMessages.any)
            return result
        }
        return response
    }

    func converseAlpha2(
        _ request: Dapr_Proto_Runtime_V1_ConversationRequestAlpha2,
        _ context: ServerContext,
        _ metadata: Metadata
    ) async throws -> Dapr_Proto_Runtime_V1_ConversationResponseAlpha2 {
        let answer = try await self.api.conversation.converseAlpha2(ConversationMessages.request(request))
        var response = Dapr_Proto_Runtime_V1_ConversationResponseAlpha2()
        if let contextID = answer.contextID { response.contextID = contextID }
        response.outputs = answer.outputs.map(ConversationMessages.output)
        return response
    }
}

/// Conversions between the conversation messages and `MechaAPI`'s values.
enum ConversationMessages {
    static func request(_ request: Dapr_Proto_Runtime_V1_ConversationRequestAlpha2) -> ConverseAlpha2Request {
        ConverseAlpha2Request(
            name: request.name,
            contextID: request.contextID,
            inputs: request.inputs.map { input in
                .init(messages: input.messages.map(Self.message), scrubPII: input.scrubPii)
            },
            parameters: request.parameters.mapValues(Self.parameter),
            metadata: request.metadata,
            scrubPII: request.scrubPii,
            temperature: request.temperature,
            tools: request.tools.map { tool in
                guard case .function(let function)? = tool.toolTypes else { return nil }
                return ConversationTool(
                    name: function.name,
                    description: function.description_p,
                    parameters: Self.json(function.parameters)
                )
            },
            toolChoice: request.toolChoice,
            responseFormat: request.hasResponseFormat ? Self.json(request.responseFormat) : nil,
            promptCacheRetention: request.hasPromptCacheRetention
                ? .seconds(request.promptCacheRetention.seconds) + .nanoseconds(Int64(request.promptCacheRetention.nanos))
                : nil,
            maxTokens: request.hasMaxTokens ? request.maxTokens : nil
        )
    }

    static func message(_ message: Dapr_Proto_Runtime_V1_ConversationMessage) -> ConverseAlpha2Request.Message {
        switch message.messageTypes {
        case .ofDeveloper(let developer)?: .developer(developer.content.map(\.text))
        case .ofSystem(let system)?: .system(system.content.map(\.text))
        case .ofUser(let user)?: .user(user.content.map(\.text))
        case .ofAssistant(let assistant)?:
            .assistant(
                assistant.content.map(\.text),
                toolCalls: assistant.toolCalls.map { call in
                    guard case .function(let function)? = call.toolTypes else { return .init(id: call.id, function: nil) }
                    return .init(id: call.id, function: (function.name, function.arguments))
                }
            )
        case .ofTool(let tool)?: .tool(toolID: tool.toolID, name: tool.name, tool.content.map(\.text))
        case nil: .unset
        }
    }

    static func output(_ output: ConverseAlpha2Response.Output) -> Dapr_Proto_Runtime_V1_ConversationResultAlpha2 {
        var result = Dapr_Proto_Runtime_V1_ConversationResultAlpha2()
        result.choices = output.choices.map { choice in
            var message = Dapr_Proto_Runtime_V1_ConversationResultMessage()
            message.content = choice.content
            message.toolCalls = choice.toolCalls.map { call in
                var toolCall = Dapr_Proto_Runtime_V1_ConversationToolCalls()
                if !call.id.isEmpty { toolCall.id = call.id }
                var function = Dapr_Proto_Runtime_V1_ConversationToolCallsOfFunction()
                function.name = call.name
                function.arguments = call.arguments
                toolCall.toolTypes = .function(function)
                return toolCall
            }
            var converted = Dapr_Proto_Runtime_V1_ConversationResultChoices()
            converted.finishReason = choice.finishReason
            converted.index = choice.index
            converted.message = message
            return converted
        }
        if let model = output.model { result.model = model }
        if let usage = output.usage {
            var converted = Dapr_Proto_Runtime_V1_ConversationResultAlpha2CompletionUsage()
            converted.completionTokens = usage.completionTokens
            converted.promptTokens = usage.promptTokens
            converted.totalTokens = usage.totalTokens
            if let details = usage.completionDetails {
                converted.completionTokensDetails.acceptedPredictionTokens = details.acceptedPredictionTokens
                converted.completionTokensDetails.audioTokens = details.audioTokens
                converted.completionTokensDetails.reasoningTokens = details.reasoningTokens
                converted.completionTokensDetails.rejectedPredictionTokens = details.rejectedPredictionTokens
            }
            if let details = usage.promptDetails {
                converted.promptTokensDetails.audioTokens = details.audioTokens
                converted.promptTokensDetails.cachedTokens = details.cachedTokens
            }
            result.usage = converted
        }
        return result
    }

    static func parameter(_ any: Google_Protobuf_Any) -> ConversationParameter {
        .any(typeURL: any.typeURL, value: [UInt8](any.value))
    }

    static func any(_ parameter: ConversationParameter) -> Google_Protobuf_Any? {
        guard case .any(let typeURL, let value) = parameter else { return nil }
        var any = Google_Protobuf_Any()
        any.typeURL = typeURL
        any.value = Data(value)
        return any
    }

    /// A `google.protobuf.Struct` as JSON (numbers are doubles, as in the Struct).
    static func json(_ value: Google_Protobuf_Struct) -> JSONValue {
        .object(value.fields.sorted { $0.key < $1.key }.map { ($0.key, Self.json($0.value)) })
    }

    static func json(_ value: Google_Protobuf_Value) -> JSONValue {
        switch value.kind {
        case .nullValue?, nil: .null
        case .numberValue(let number)?: .double(number)
        case .stringValue(let text)?: .string(text)
        case .boolValue(let flag)?: .bool(flag)
        case .structValue(let object)?: Self.json(object)
        case .listValue(let list)?: .array(list.values.map(Self.json))
        }
    }
}

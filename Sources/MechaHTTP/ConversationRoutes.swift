import MechaAPI
import MechaCore

/// `POST /v1.0-alpha1/conversation/{name}/converse` and `POST /v1.0-alpha2/conversation/{name}/converse`.
///
/// daprd serves these with protojson over the gRPC messages, so bodies are read as protojson reads
/// `ConversationRequest` / `ConversationRequestAlpha2` (JSON or proto field names, unknown fields
/// ignored, `null` as absent, the name from the path) and answers are written as protojson writes
/// the responses: default values left out, 64-bit integers as strings, `message` always present.
struct ConversationRoutes {
    let api: ConversationAPI

    func converse(name: String, alpha2: Bool, body: [UInt8]) async throws(APIError) -> HTTPReply {
        let root = try ProtoJSONMessage(body: body)
        if alpha2 {
            let answer = try await self.api.converseAlpha2(try Self.alpha2Request(name: name, root))
            return .json(Self.json(answer))
        }
        let answer = try await self.api.converseAlpha1(try Self.alpha1Request(name: name, root))
        return .json(Self.json(answer))
    }

    // MARK: Requests

    static func alpha1Request(name: String, _ message: ProtoJSONMessage) throws(APIError) -> ConverseAlpha1Request {
        var inputs: [ConverseAlpha1Request.Input] = []
        for input in try message.messages("inputs") {
            inputs.append(.init(
                content: try input.string("content"),
                role: try input.string("role"),
                scrubPII: try input.bool("scrubPII")
            ))
        }
        return ConverseAlpha1Request(
            name: name,
            contextID: try message.string("contextID"),
            inputs: inputs,
            parameters: try message.anyMap("parameters"),
            metadata: try message.stringMap("metadata"),
            scrubPII: try message.bool("scrubPII"),
            temperature: try message.double("temperature")
        )
    }

    static func alpha2Request(name: String, _ message: ProtoJSONMessage) throws(APIError) -> ConverseAlpha2Request {
        var inputs: [ConverseAlpha2Request.Input] = []
        for input in try message.messages("inputs") {
            var messages: [ConverseAlpha2Request.Message] = []
            for entry in try input.messages("messages") {
                messages.append(try Self.alpha2Message(entry))
            }
            inputs.append(.init(messages: messages, scrubPII: try input.bool("scrubPii", "scrub_pii")))
        }
        var tools: [ConversationTool?] = []
        for tool in try message.messages("tools") {
            guard let function = try tool.message("function") else {
                tools.append(nil)
                continue
            }
            tools.append(ConversationTool(
                name: try function.string("name"),
                description: try function.string("description"),
                parameters: try function.structure("parameters") ?? .object([])
            ))
        }
        let maxTokens = try message.has("maxTokens", "max_tokens") ? try message.int64("maxTokens", "max_tokens") : nil
        return ConverseAlpha2Request(
            name: name,
            contextID: try message.string("contextId", "context_id"),
            inputs: inputs,
            parameters: try message.anyMap("parameters"),
            metadata: try message.stringMap("metadata"),
            scrubPII: try message.bool("scrubPii", "scrub_pii"),
            temperature: try message.double("temperature"),
            tools: tools,
            toolChoice: try message.string("toolChoice", "tool_choice"),
            responseFormat: try message.structure("responseFormat", "response_format"),
            promptCacheRetention: try message.duration("promptCacheRetention", "prompt_cache_retention"),
            maxTokens: maxTokens
        )
    }

    static func alpha2Message(_ message: ProtoJSONMessage) throws(APIError) -> ConverseAlpha2Request.Message {
        let kinds: [(json: String, proto: String)] = [
            ("ofDeveloper", "of_developer"), ("ofSystem", "of_system"), ("ofUser", "of_user"),
            ("ofAssistant", "of_assistant"), ("ofTool", "of_tool"),
        ]
        var chosen: (String, ProtoJSONMessage)?
        for kind in kinds {
            guard let body = try message.message(kind.json, kind.proto) else { continue }
            if chosen != nil {
                throw .malformedRequest(
                    "proto: error parsing \"\(kind.json)\", oneof dapr.proto.runtime.v1.ConversationMessage.message_types is already set"
                )
            }
            chosen = (kind.json, body)
        }
        guard let (kind, body) = chosen else { return .unset }
        var texts: [String] = []
        for content in try body.messages("content") { texts.append(try content.string("text")) }
        switch kind {
        case "ofDeveloper": return .developer(texts)
        case "ofSystem": return .system(texts)
        case "ofUser": return .user(texts)
        case "ofTool": return .tool(toolID: try body.string("toolId", "tool_id"), name: try body.string("name"), texts)
        default:
            var calls: [ConverseAlpha2Request.ToolCall] = []
            for call in try body.messages("toolCalls", "tool_calls") {
                let function = try call.message("function")
                calls.append(.init(
                    id: try call.string("id"),
                    function: try function.map { fn throws(APIError) in (try fn.string("name"), try fn.string("arguments")) }
                ))
            }
            return .assistant(texts, toolCalls: calls)
        }
    }

    // MARK: Answers

    static func json(_ answer: ConverseAlpha1Response) -> JSONValue {
        var members: [(String, JSONValue)] = []
        if let contextID = answer.contextID { members.append(("contextID", .string(contextID))) }
        if !answer.outputs.isEmpty {
            members.append(("outputs", .array(answer.outputs.map { output in
                var result: [(String, JSONValue)] = []
                if !output.result.isEmpty { result.append(("result", .string(output.result))) }
                let parameters = output.parameters.compactMapValues { parameter -> JSONValue? in
                    guard case .json(let value) = parameter else { return nil }
                    return value
                }
                if !parameters.isEmpty { result.append(("parameters", .object(sorted: parameters))) }
                return .object(result)
            })))
        }
        return .object(members)
    }

    static func json(_ answer: ConverseAlpha2Response) -> JSONValue {
        var members: [(String, JSONValue)] = []
        if let contextID = answer.contextID { members.append(("contextId", .string(contextID))) }
        if !answer.outputs.isEmpty {
            members.append(("outputs", .array(answer.outputs.map(Self.json))))
        }
        return .object(members)
    }

    static func json(_ output: ConverseAlpha2Response.Output) -> JSONValue {
        var members: [(String, JSONValue)] = []
        if !output.choices.isEmpty {
            members.append(("choices", .array(output.choices.map { choice in
                var message: [(String, JSONValue)] = []
                if !choice.content.isEmpty { message.append(("content", .string(choice.content))) }
                if !choice.toolCalls.isEmpty {
                    message.append(("toolCalls", .array(choice.toolCalls.map { call in
                        var function: [(String, JSONValue)] = []
                        if !call.name.isEmpty { function.append(("name", .string(call.name))) }
                        if !call.arguments.isEmpty { function.append(("arguments", .string(call.arguments))) }
                        var members: [(String, JSONValue)] = []
                        if !call.id.isEmpty { members.append(("id", .string(call.id))) }
                        members.append(("function", .object(function)))
                        return .object(members)
                    })))
                }
                var converted: [(String, JSONValue)] = []
                if !choice.finishReason.isEmpty { converted.append(("finishReason", .string(choice.finishReason))) }
                if choice.index != 0 { converted.append(("index", .string(String(choice.index)))) }
                converted.append(("message", .object(message)))
                return .object(converted)
            })))
        }
        if let model = output.model { members.append(("model", .string(model))) }
        if let usage = output.usage {
            var converted: [(String, JSONValue)] = []
            func count(_ key: String, _ value: UInt64, into members: inout [(String, JSONValue)]) {
                if value != 0 { members.append((key, .string(String(value)))) }
            }
            count("completionTokens", usage.completionTokens, into: &converted)
            count("promptTokens", usage.promptTokens, into: &converted)
            count("totalTokens", usage.totalTokens, into: &converted)
            if let details = usage.completionDetails {
                var detail: [(String, JSONValue)] = []
                count("acceptedPredictionTokens", details.acceptedPredictionTokens, into: &detail)
                count("audioTokens", details.audioTokens, into: &detail)
                count("reasoningTokens", details.reasoningTokens, into: &detail)
                count("rejectedPredictionTokens", details.rejectedPredictionTokens, into: &detail)
                converted.append(("completionTokensDetails", .object(detail)))
            }
            if let details = usage.promptDetails {
                var detail: [(String, JSONValue)] = []
                count("audioTokens", details.audioTokens, into: &detail)
                count("cachedTokens", details.cachedTokens, into: &detail)
                converted.append(("promptTokensDetails", .object(detail)))
            }
            members.append(("usage", .object(converted)))
        }
        return .object(members)
    }
}

extension DaprRoute {
    /// `/v1.0-alpha1|alpha2/conversation/{name}/converse` (POST only, as daprd routes it).
    static func matchConverse(method: String, segments: [String]) -> DaprRoute? {
        guard method == "POST", segments.count == 4, segments[1] == "conversation", segments[3] == "converse",
            segments[0] == "v1.0-alpha1" || segments[0] == "v1.0-alpha2",
            let name = PercentDecoding.queryUnescape(segments[2])
        else { return nil }
        return .converse(name: name, alpha2: segments[0] == "v1.0-alpha2")
    }
}

/// A JSON object read as protojson reads a message: fields by JSON or proto name (the last one
/// written wins), `null` as absent, numbers also as strings, unknown fields ignored.
struct ProtoJSONMessage {
    let members: [(String, JSONValue)]

    init(members: [(String, JSONValue)]) {
        self.members = members
    }

    /// The request body: empty is the empty message.
    init(body: [UInt8]) throws(APIError) {
        guard !body.isEmpty else {
            self.members = []
            return
        }
        let json: JSONValue
        do {
            json = try JSONValue(parsing: body)
        } catch {
            throw .malformedRequest("proto: syntax error: \(error)")
        }
        guard case .object(let members) = json else {
            throw .malformedRequest("proto: syntax error: unexpected token \(Self.excerpt(json))")
        }
        self.members = members
    }

    private func value(_ names: [String]) -> JSONValue? {
        guard let value = self.members.last(where: { names.contains($0.0) })?.1, !value.isNull else { return nil }
        return value
    }

    private static func excerpt(_ value: JSONValue) -> String {
        String(decoding: value.serialized.prefix(40), as: UTF8.self)
    }

    private static func invalid(_ kind: String, _ name: String, _ value: JSONValue) -> APIError {
        .malformedRequest("proto: invalid value for \(kind) field \(name): \(Self.excerpt(value))")
    }

    func has(_ names: String...) throws(APIError) -> Bool { self.value(names) != nil }

    func string(_ names: String...) throws(APIError) -> String {
        guard let value = self.value(names) else { return "" }
        guard case .string(let text) = value else { throw Self.invalid("string", names[0], value) }
        return text
    }

    func bool(_ names: String...) throws(APIError) -> Bool {
        guard let value = self.value(names) else { return false }
        guard case .bool(let flag) = value else { throw Self.invalid("bool", names[0], value) }
        return flag
    }

    func double(_ names: String...) throws(APIError) -> Double {
        guard let value = self.value(names) else { return 0 }
        switch value {
        case .number(let text), .string(let text):
            switch text {
            case "NaN": return .nan
            case "Infinity": return .infinity
            case "-Infinity": return -.infinity
            default: if let number = Double(text) { return number }
            }
        default: break
        }
        throw Self.invalid("double", names[0], value)
    }

    func int64(_ names: String...) throws(APIError) -> Int64 {
        guard let value = self.value(names) else { return 0 }
        switch value {
        case .number(let text), .string(let text):
            if let number = Int64(text) { return number }
            if let number = Double(text), number == number.rounded(), let exact = Int64(exactly: number) { return exact }
        default: break
        }
        throw Self.invalid("int64", names[0], value)
    }

    func message(_ names: String...) throws(APIError) -> ProtoJSONMessage? {
        guard let value = self.value(names) else { return nil }
        guard case .object(let members) = value else { throw Self.invalid("message", names[0], value) }
        return ProtoJSONMessage(members: members)
    }

    func messages(_ names: String...) throws(APIError) -> [ProtoJSONMessage] {
        guard let value = self.value(names) else { return [] }
        guard case .array(let items) = value else { throw Self.invalid("repeated", names[0], value) }
        var result: [ProtoJSONMessage] = []
        for item in items {
            guard case .object(let members) = item else { throw Self.invalid("message", names[0], item) }
            result.append(ProtoJSONMessage(members: members))
        }
        return result
    }

    func stringMap(_ names: String...) throws(APIError) -> [String: String] {
        guard let value = self.value(names) else { return [:] }
        guard case .object(let members) = value else { throw Self.invalid("map", names[0], value) }
        var result: [String: String] = [:]
        for (key, item) in members {
            guard case .string(let text) = item else { throw Self.invalid("string", names[0], item) }
            result[key] = text
        }
        return result
    }

    /// A `map<string, google.protobuf.Any>`: each value an object naming its `@type`.
    func anyMap(_ names: String...) throws(APIError) -> [String: ConversationParameter] {
        guard let value = self.value(names) else { return [:] }
        guard case .object(let members) = value else { throw Self.invalid("map", names[0], value) }
        var result: [String: ConversationParameter] = [:]
        for (key, item) in members {
            guard case .string = item["@type"] else {
                throw .malformedRequest("proto: missing \"@type\" field in parameter \(key)")
            }
            result[key] = .json(item)
        }
        return result
    }

    /// A `google.protobuf.Struct`: any JSON object.
    func structure(_ names: String...) throws(APIError) -> JSONValue? {
        guard let value = self.value(names) else { return nil }
        guard case .object = value else { throw Self.invalid("google.protobuf.Struct", names[0], value) }
        return value
    }

    /// A `google.protobuf.Duration` in protojson's form: `"3.5s"`, at most nine fraction digits.
    func duration(_ names: String...) throws(APIError) -> Duration? {
        guard let value = self.value(names) else { return nil }
        guard case .string(let text) = value, text.hasSuffix("s") else { throw Self.invalid("google.protobuf.Duration", names[0], value) }
        var number = text.dropLast()
        let negative = number.hasPrefix("-")
        if negative { number = number.dropFirst() }
        let parts = number.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let digits: (Substring) -> Bool = { !$0.isEmpty && $0.utf8.allSatisfy { (0x30...0x39).contains($0) } }
        guard digits(parts[0]), let seconds = Int64(parts[0]) else { throw Self.invalid("google.protobuf.Duration", names[0], value) }
        var nanos: Int64 = 0
        if parts.count == 2 {
            guard digits(parts[1]), parts[1].count <= 9 else { throw Self.invalid("google.protobuf.Duration", names[0], value) }
            nanos = Int64(parts[1] + String(repeating: "0", count: 9 - parts[1].count)) ?? 0
        }
        let duration = Duration.seconds(seconds) + .nanoseconds(nanos)
        return negative ? .zero - duration : duration
    }
}

import Foundation
import MechaAPI
import MechaCore
import SwiftProtobuf

/// `TopicEventRequest` for a delivery: the CloudEvent's fields, its data as bytes, and every
/// other attribute (topic and pubsub name included) in `extensions`, as daprd sends it to gRPC
/// apps and streaming subscribers.
enum TopicEventMessage {
    static let mappedAttributes: Set<String> = ["id", "source", "type", "specversion", "datacontenttype", "data", "data_base64"]

    static func make(_ delivery: TopicEventDelivery) -> Dapr_Proto_Runtime_V1_TopicEventRequest {
        let event = delivery.event
        var message = Dapr_Proto_Runtime_V1_TopicEventRequest()
        message.id = event["id"]?.stringValue ?? ""
        message.source = event["source"]?.stringValue ?? ""
        message.type = event["type"]?.stringValue ?? ""
        message.specVersion = event["specversion"]?.stringValue ?? ""
        message.dataContentType = event["datacontenttype"]?.stringValue ?? ""
        message.topic = delivery.topic
        message.pubsubName = delivery.pubsubName
        message.path = delivery.path
        message.data = Data(self.data(of: event))
        var extensions = Google_Protobuf_Struct()
        for (key, value) in event.objectMembers ?? [] where !self.mappedAttributes.contains(key) {
            extensions.fields[key] = self.protobufValue(value)
        }
        message.extensions = extensions
        return message
    }

    /// The event's data as bytes: base64 data decoded; JSON data as JSON text for JSON content
    /// types; text data as its UTF-8 bytes.
    static func data(of event: JSONValue) -> [UInt8] {
        if let encoded = event["data_base64"]?.stringValue { return Base64.decode(encoded) ?? Array(encoded.utf8) }
        guard let data = event["data"], !data.isNull else { return [] }
        let contentType = event["datacontenttype"]?.stringValue ?? "application/json"
        if case .string(let text) = data, !CloudEvent.isJSON(contentType) { return Array(text.utf8) }
        return data.serialized
    }

    static func protobufValue(_ json: JSONValue) -> Google_Protobuf_Value {
        switch json {
        case .null:
            var value = Google_Protobuf_Value()
            value.nullValue = .nullValue
            return value
        case .bool(let flag): return Google_Protobuf_Value(boolValue: flag)
        case .number(let text): return Google_Protobuf_Value(numberValue: Double(text) ?? 0)
        case .string(let text): return Google_Protobuf_Value(stringValue: text)
        case .array(let values): return Google_Protobuf_Value(listValue: Google_Protobuf_ListValue(values: values.map(self.protobufValue)))
        case .object(let members):
            var structure = Google_Protobuf_Struct()
            for (key, value) in members { structure.fields[key] = self.protobufValue(value) }
            return Google_Protobuf_Value(structValue: structure)
        }
    }
}

extension Dapr_Proto_Runtime_V1_TopicEventResponse.TopicEventResponseStatus {
    /// The app's verdict as the runtime understands it.
    var result: TopicEventResult {
        switch self {
        case .success: .success
        case .drop: .drop("DROP status returned from app")
        case .retry: .retry("RETRY status returned from app")
        case .UNRECOGNIZED(let value): .retry("unknown status \(value) returned from app")
        }
    }
}

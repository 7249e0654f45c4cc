import MechaAPI
import MechaCore

/// `/v1.0-alpha1/lock/{store}` and `/v1.0-alpha1/unlock/{store}`. Bodies are read the way daprd's
/// protojson does: camelCase or proto names, unknown fields ignored, an empty body is an empty
/// message (which then fails validation). Unlock answers the status as a number, as daprd.
struct LockRoutes {
    let api: LockAPI

    func tryLock(store: String, body: [UInt8]) async throws(APIError) -> HTTPReply {
        let message = try ProtoJSONObject(body, message: "TryLockRequest")
        let success = try await self.api.tryLock(
            storeName: store,
            resourceID: try message.string("resourceId", "resource_id"),
            owner: try message.string("lockOwner", "lock_owner"),
            expiryInSeconds: try message.int32("expiryInSeconds", "expiry_in_seconds")
        )
        return .json(.object([("success", .bool(success))]))
    }

    func unlock(store: String, body: [UInt8]) async throws(APIError) -> HTTPReply {
        let message = try ProtoJSONObject(body, message: "UnlockRequest")
        let status = try await self.api.unlock(
            storeName: store,
            resourceID: try message.string("resourceId", "resource_id"),
            owner: try message.string("lockOwner", "lock_owner")
        )
        return .json(.object([("status", .number(String(status.rawValue)))]))
    }
}

/// A JSON request body read as protojson reads a message: fields by JSON (camelCase) or proto name,
/// `null` as absent, numbers also as strings.
struct ProtoJSONObject {
    let members: [(String, JSONValue)]
    let message: String

    init(_ body: [UInt8], message: String) throws(APIError) {
        self.message = message
        guard !body.isEmpty else {
            self.members = []
            return
        }
        let json: JSONValue
        do {
            json = try JSONValue(parsing: body)
        } catch {
            throw .malformedRequest("\(error)")
        }
        guard case .object(let members) = json else {
            throw .malformedRequest("proto: syntax error: unexpected token \(String(decoding: json.serialized.prefix(20), as: UTF8.self))")
        }
        self.members = members
    }

    func string(_ names: String...) throws(APIError) -> String {
        guard let value = self.members.last(where: { names.contains($0.0) })?.1, !value.isNull else { return "" }
        guard case .string(let text) = value else {
            throw .malformedRequest("proto: (line 1): invalid value for string field \(names[0]): \(String(decoding: value.serialized.prefix(20), as: UTF8.self))")
        }
        return text
    }

    func int32(_ names: String...) throws(APIError) -> Int32 {
        guard let value = self.members.last(where: { names.contains($0.0) })?.1, !value.isNull else { return 0 }
        let text: String? = switch value {
        case .number(let digits), .string(let digits): digits
        default: nil
        }
        guard let text, let number = Int32(text) ?? Double(text).flatMap({ $0 == $0.rounded() ? Int32(exactly: $0) : nil }) else {
            throw .malformedRequest("proto: (line 1): invalid value for int32 field \(names[0]): \(String(decoding: value.serialized.prefix(20), as: UTF8.self))")
        }
        return number
    }
}

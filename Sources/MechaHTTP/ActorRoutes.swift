import HTTPTypes
public import MechaAPI
public import MechaCore
import NIOCore

/// `/v1.0/actors/{type}/{id}/…`, as daprd routes it.
public enum ActorRoute: Equatable, Sendable {
    case method(type: String, id: String, method: String)
    case getState(type: String, id: String, key: String)
    case stateTransaction(type: String, id: String)
    case createReminder(type: String, id: String, name: String)
    case getReminder(type: String, id: String, name: String)
    case deleteReminder(type: String, id: String, name: String)
    case createTimer(type: String, id: String, name: String)
    case deleteTimer(type: String, id: String, name: String)

    /// `segments` start with `actors`.
    static func match(method: String, segments: [String]) -> ActorRoute? {
        guard segments.count >= 4 else { return nil }
        func param(_ index: Int) -> String { PercentDecoding.queryUnescape(segments[index]) ?? segments[index] }
        let type = param(1)
        let id = param(2)
        let isPostOrPut = method == "POST" || method == "PUT"
        switch segments[3] {
        case "method":
            guard segments.count >= 5, ["GET", "POST", "PUT", "DELETE"].contains(method) else { return nil }
            return .method(type: type, id: id, method: segments[4...].joined(separator: "/"))
        case "state":
            if segments.count == 4, isPostOrPut { return .stateTransaction(type: type, id: id) }
            if segments.count == 5, method == "GET" { return .getState(type: type, id: id, key: param(4)) }
        case "reminders":
            guard segments.count == 5 else { return nil }
            if isPostOrPut { return .createReminder(type: type, id: id, name: param(4)) }
            if method == "GET" { return .getReminder(type: type, id: id, name: param(4)) }
            if method == "DELETE" { return .deleteReminder(type: type, id: id, name: param(4)) }
        case "timers":
            guard segments.count == 5 else { return nil }
            if isPostOrPut { return .createTimer(type: type, id: id, name: param(4)) }
            if method == "DELETE" { return .deleteTimer(type: type, id: id, name: param(4)) }
        default:
            break
        }
        return nil
    }

    /// Matches a raw path (`/v1.0/actors/...`), for the sidecar-to-sidecar listener.
    public static func match(method: String, path: String) -> ActorRoute? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard segments.first == "v1.0", segments.count > 1, segments[1] == "actors" else { return nil }
        return self.match(method: method, segments: Array(segments.dropFirst()))
    }
}

/// The actor routes' work, shared by the public HTTP API and the sidecar-to-sidecar listener.
public struct ActorRoutes: Sendable {
    let api: ActorsAPI

    public init(api: ActorsAPI) { self.api = api }

    /// Answers one actor route. `headers` are the request's, `body` its whole body.
    func respond(_ route: ActorRoute, verb: String, headers: HeaderList, contentType: String?, body: [UInt8], hops: Int) async -> HTTPReply {
        do {
            switch route {
            case .method(let type, let id, let method):
                var forwarded = HeaderList()
                for field in headers where ActorsAPI.forwardable(field.name) && field.name.lowercased() != "content-type" {
                    forwarded.add(field.name, field.value)
                }
                let reply = try await self.api.invoke(
                    ActorKey(type: type, id: id), method: method, verb: verb,
                    call: ActorCall(path: "", headers: forwarded, contentType: contentType, body: body), hops: hops)
                var fields = HTTPFields()
                for field in reply.headers where ActorsAPI.forwardable(field.name) && field.name.lowercased() != "content-type" {
                    if let name = HTTPField.Name(field.name) { fields.append(HTTPField(name: name, value: field.value)) }
                }
                return .bytes(reply.body, status: reply.status, contentType: reply.contentType ?? "application/json", headers: fields)
            case .getState(let type, let id, let key):
                guard let item = try await self.api.getState(ActorKey(type: type, id: id), name: key), !item.value.isEmpty else { return .noContent() }
                var fields = HTTPFields()
                for (name, value) in item.metadata.sorted(by: { $0.key < $1.key }) {
                    if let field = HTTPField.Name("metadata.\(name)") { fields[field] = value }
                }
                return .bytes(item.value, headers: fields)
            case .stateTransaction(let type, let id):
                try await self.api.transaction(ActorKey(type: type, id: id), try Self.transactionOperations(body))
                return .noContent()
            case .createReminder(let type, let id, let name):
                let json = try Self.object(body)
                try await self.api.createReminder(
                    ActorKey(type: type, id: id), name: name,
                    ReminderRegistration(
                        dueTime: try Self.text(json, "dueTime"), period: try Self.text(json, "period"), ttl: try Self.text(json, "ttl"),
                        data: json["data"] ?? .null))
                return .noContent()
            case .getReminder(let type, let id, let name):
                let reminder = try await self.api.getReminder(ActorKey(type: type, id: id), name: name)
                return .json(Self.reminderDocument(reminder))
            case .deleteReminder(let type, let id, let name):
                try await self.api.deleteReminder(ActorKey(type: type, id: id), name: name)
                return .noContent()
            case .createTimer(let type, let id, let name):
                let json = try Self.object(body)
                try await self.api.createTimer(
                    ActorKey(type: type, id: id), name: name,
                    TimerRegistration(
                        dueTime: try Self.text(json, "dueTime"), period: try Self.text(json, "period"), ttl: try Self.text(json, "ttl"),
                        callback: try Self.text(json, "callback"), data: json["data"] ?? .null))
                return .noContent()
            case .deleteTimer(let type, let id, let name):
                try self.api.deleteTimer(ActorKey(type: type, id: id), name: name)
                return .noContent()
            }
        } catch let error as APIError {
            return .error(error)
        } catch {
            return .error(.internalError("\(error)"))
        }
    }

    /// The reminder as `GET …/reminders/{name}` answers it.
    static func reminderDocument(_ reminder: ActorReminder) -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("actorID", .string(reminder.actor.id)), ("actorType", .string(reminder.actor.type)),
        ]
        if !reminder.data.isNull { members.append(("data", reminder.data)) }
        members.append(("dueTime", .string(reminder.dueTime)))
        members.append(("period", .string(reminder.period)))
        if !reminder.ttl.isEmpty { members.append(("ttl", .string(reminder.ttl))) }
        return .object(members)
    }

    static func object(_ body: [UInt8]) throws(APIError) -> JSONValue {
        let json: JSONValue
        do {
            json = try JSONValue(parsing: body.isEmpty ? Array("{}".utf8) : body)
        } catch {
            throw .malformedRequest("\(error)")
        }
        guard json.objectMembers != nil else { throw .malformedRequest("json: cannot unmarshal \(json.typeName) into an object") }
        return json
    }

    /// A string field; null and absent are empty.
    static func text(_ json: JSONValue, _ name: String) throws(APIError) -> String {
        guard let value = json[name], !value.isNull else { return "" }
        guard let text = value.stringValue else { throw .malformedRequest("json: cannot unmarshal \(value.typeName) into field \(name) of type string") }
        return text
    }

    /// `[{"operation":"upsert"|"delete","request":{"key":…,"value":…,"metadata":{…}}}]`.
    static func transactionOperations(_ body: [UInt8]) throws(APIError) -> [ActorStateOperation] {
        let json: JSONValue
        do {
            json = try JSONValue(parsing: body)
        } catch {
            throw .malformedRequest("\(error)")
        }
        guard let entries = json.arrayValues else { throw .malformedRequest("json: cannot unmarshal \(json.typeName) into a list of operations") }
        var operations: [ActorStateOperation] = []
        for entry in entries {
            guard let operation = entry["operation"]?.stringValue else { throw .actorStateTransaction("missing operation") }
            let request = entry["request"] ?? .null
            guard let key = request["key"]?.stringValue, !key.isEmpty else { throw .actorStateTransaction("missing key in \(operation) operation") }
            switch operation.lowercased() {
            case "upsert":
                let value = request["value"].map { $0.isNull ? [] : $0.serialized } ?? []
                operations.append(.upsert(key: key, value: value, metadata: request["metadata"]?.stringDictionary ?? [:]))
            case "delete":
                operations.append(.delete(key: key))
            default:
                throw .actorStateTransaction("operation type \(operation) not supported")
            }
        }
        return operations
    }
}

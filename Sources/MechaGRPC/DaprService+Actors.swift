import Foundation
import GRPCCore
import MechaAPI
import MechaCore
import SwiftProtobuf

/// The actors API over gRPC: the same `ActorsAPI` as HTTP.
extension DaprService {
    func registerActors<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        Self.unary(&router, DaprMethod.InvokeActor.descriptor, self.invokeActor)
        Self.unary(&router, DaprMethod.GetActorState.descriptor, self.getActorState)
        Self.unary(&router, DaprMethod.ExecuteActorStateTransaction.descriptor, self.executeActorStateTransaction)
        Self.unary(&router, DaprMethod.RegisterActorTimer.descriptor, self.registerActorTimer)
        Self.unary(&router, DaprMethod.UnregisterActorTimer.descriptor, self.unregisterActorTimer)
        Self.unary(&router, DaprMethod.RegisterActorReminder.descriptor, self.registerActorReminder)
        Self.unary(&router, DaprMethod.UnregisterActorReminder.descriptor, self.unregisterActorReminder)
        Self.unary(&router, DaprMethod.GetActorReminder.descriptor, self.getActorReminder)
        Self.unary(&router, DaprMethod.ListActorReminders.descriptor, self.listActorReminders)
        Self.unary(&router, DaprMethod.UnregisterActorRemindersByType.descriptor, self.unregisterActorRemindersByType)
    }

    func invokeActor(_ request: Dapr_Proto_Runtime_V1_InvokeActorRequest, _ context: ServerContext, _ metadata: Metadata) async throws
        -> Dapr_Proto_Runtime_V1_InvokeActorResponse
    {
        var headers = HeaderList()
        for (key, value) in request.metadata.sorted(by: { $0.key < $1.key }) where ActorsAPI.forwardable(key) {
            headers.add(key, value)
        }
        if headers.first(ActorsAPI.reentrancyHeader) == nil, let chain = metadata[stringValues: "dapr-reentrancy-id"].first(where: { _ in true }) {
            headers.add(ActorsAPI.reentrancyHeader, chain)
        }
        let reply = try await self.api.actors.invoke(
            ActorKey(type: request.actorType, id: request.actorID), method: request.method, verb: "POST",
            call: ActorCall(path: "", headers: headers, contentType: "application/json", body: Array(request.data)))
        guard (200..<300).contains(reply.status) else {
            throw APIError.actorInvoke("error from actor service: (\(reply.status)) \(String(decoding: reply.body.prefix(1024), as: UTF8.self))")
        }
        var response = Dapr_Proto_Runtime_V1_InvokeActorResponse()
        response.data = Data(reply.body)
        return response
    }

    func getActorState(_ request: Dapr_Proto_Runtime_V1_GetActorStateRequest, _ context: ServerContext, _ metadata: Metadata) async throws
        -> Dapr_Proto_Runtime_V1_GetActorStateResponse
    {
        var response = Dapr_Proto_Runtime_V1_GetActorStateResponse()
        if let item = try await self.api.actors.getState(ActorKey(type: request.actorType, id: request.actorID), name: request.key) {
            response.data = Data(item.value)
            response.metadata = item.metadata
        }
        return response
    }

    func executeActorStateTransaction(
        _ request: Dapr_Proto_Runtime_V1_ExecuteActorStateTransactionRequest, _ context: ServerContext, _ metadata: Metadata
    ) async throws -> Google_Protobuf_Empty {
        var operations: [ActorStateOperation] = []
        for operation in request.operations {
            switch operation.operationType.lowercased() {
            case "upsert":
                // The value's bytes as sent (the SDKs send JSON in an Any without a type).
                operations.append(.upsert(key: operation.key, value: Array(operation.value.value), metadata: operation.metadata))
            case "delete":
                operations.append(.delete(key: operation.key))
            default:
                throw APIError.actorStateTransaction("operation type \(operation.operationType) not supported")
            }
        }
        try await self.api.actors.transaction(ActorKey(type: request.actorType, id: request.actorID), operations)
        return Google_Protobuf_Empty()
    }

    func registerActorTimer(_ request: Dapr_Proto_Runtime_V1_RegisterActorTimerRequest, _ context: ServerContext, _ metadata: Metadata) async throws
        -> Google_Protobuf_Empty
    {
        try await self.api.actors.createTimer(
            ActorKey(type: request.actorType, id: request.actorID), name: request.name,
            TimerRegistration(
                dueTime: request.dueTime, period: request.period, ttl: request.ttl, callback: request.callback, data: Self.jsonData(request.data)))
        return Google_Protobuf_Empty()
    }

    func unregisterActorTimer(_ request: Dapr_Proto_Runtime_V1_UnregisterActorTimerRequest, _ context: ServerContext, _ metadata: Metadata) async throws
        -> Google_Protobuf_Empty
    {
        try self.api.actors.deleteTimer(ActorKey(type: request.actorType, id: request.actorID), name: request.name)
        return Google_Protobuf_Empty()
    }

    func registerActorReminder(_ request: Dapr_Proto_Runtime_V1_RegisterActorReminderRequest, _ context: ServerContext, _ metadata: Metadata) async throws
        -> Google_Protobuf_Empty
    {
        // Bytes become a base64 JSON string, as daprd stores them (and HTTP callers send them).
        let data: JSONValue = request.data.isEmpty ? .null : .string(Base64.encode(Array(request.data)))
        let key = ActorKey(type: request.actorType, id: request.actorID)
        if request.hasOverwrite, !request.overwrite, (try? await self.api.actors.getReminder(key, name: request.name)) != nil {
            throw APIError(
                errorCode: "ERR_ACTOR_REMINDER_ALREADY_EXISTS", message: "actor reminder already exists: \(request.name)", httpStatus: 409,
                grpcStatus: .alreadyExists)
        }
        try await self.api.actors.createReminder(
            key, name: request.name, ReminderRegistration(dueTime: request.dueTime, period: request.period, ttl: request.ttl, data: data))
        return Google_Protobuf_Empty()
    }

    func unregisterActorReminder(_ request: Dapr_Proto_Runtime_V1_UnregisterActorReminderRequest, _ context: ServerContext, _ metadata: Metadata)
        async throws -> Google_Protobuf_Empty
    {
        try await self.api.actors.deleteReminder(ActorKey(type: request.actorType, id: request.actorID), name: request.name)
        return Google_Protobuf_Empty()
    }

    func getActorReminder(_ request: Dapr_Proto_Runtime_V1_GetActorReminderRequest, _ context: ServerContext, _ metadata: Metadata) async throws
        -> Dapr_Proto_Runtime_V1_GetActorReminderResponse
    {
        let reminder = try await self.api.actors.getReminder(ActorKey(type: request.actorType, id: request.actorID), name: request.name)
        var response = Dapr_Proto_Runtime_V1_GetActorReminderResponse()
        response.actorType = reminder.actor.type
        response.actorID = reminder.actor.id
        response.dueTime = reminder.dueTime
        response.period = reminder.period
        if !reminder.ttl.isEmpty { response.ttl = reminder.ttl }
        if !reminder.data.isNull { response.data = Self.anyData(reminder.data) }
        return response
    }

    func listActorReminders(_ request: Dapr_Proto_Runtime_V1_ListActorRemindersRequest, _ context: ServerContext, _ metadata: Metadata) async throws
        -> Dapr_Proto_Runtime_V1_ListActorRemindersResponse
    {
        let reminders = try await self.api.actors.listReminders(type: request.actorType, id: request.hasActorID ? request.actorID : nil)
        var response = Dapr_Proto_Runtime_V1_ListActorRemindersResponse()
        response.reminders = reminders.map { reminder in
            var named = Dapr_Proto_Runtime_V1_NamedActorReminder()
            named.name = reminder.name
            var entry = Dapr_Proto_Runtime_V1_ActorReminder()
            entry.actorType = reminder.actor.type
            entry.actorID = reminder.actor.id
            entry.dueTime = reminder.dueTime
            entry.period = reminder.period
            if !reminder.ttl.isEmpty { entry.ttl = reminder.ttl }
            if !reminder.data.isNull { entry.data = Self.anyData(reminder.data) }
            named.reminder = entry
            return named
        }
        return response
    }

    func unregisterActorRemindersByType(
        _ request: Dapr_Proto_Runtime_V1_UnregisterActorRemindersByTypeRequest, _ context: ServerContext, _ metadata: Metadata
    ) async throws -> Dapr_Proto_Runtime_V1_UnregisterActorRemindersByTypeResponse {
        if request.hasActorID {
            for reminder in try await self.api.actors.listReminders(type: request.actorType, id: request.actorID) {
                try await self.api.actors.deleteReminder(reminder.actor, name: reminder.name)
            }
        } else {
            try await self.api.actors.deleteReminders(type: request.actorType)
        }
        return Dapr_Proto_Runtime_V1_UnregisterActorRemindersByTypeResponse()
    }

    /// Timer data as JSON when it is JSON, else a base64 string of the bytes; none: null.
    static func jsonData(_ data: Data) -> JSONValue {
        guard !data.isEmpty else { return .null }
        if let json = try? JSONValue(parsing: Array(data)) { return json }
        return .string(Base64.encode(Array(data)))
    }

    /// Stored reminder data in an Any: `BytesValue` of its JSON, as daprd answers.
    static func anyData(_ value: JSONValue) -> Google_Protobuf_Any {
        var bytes = Google_Protobuf_BytesValue()
        bytes.value = Data(value.serialized)
        return (try? Google_Protobuf_Any(message: bytes)) ?? Google_Protobuf_Any()
    }
}

import Foundation
import GRPCCore
import GRPCProtobuf
import Logging
import MechaAPI
import MechaCore
import SwiftProtobuf
import Synchronization

/// `SubscribeActorEventsAlpha1`: a gRPC app hosts actors over a stream it opens to its sidecar.
/// The first message declares the types (`initial_request`); the sidecar acknowledges
/// (`initial_response`) and then sends invoke, reminder, timer and deactivate requests, each
/// answered by id. A stream declaring no types (a support probe) is acknowledged and never serves.
final class ActorCallbackStream: ActorAppTransport, Sendable {
    typealias Request = Dapr_Proto_Runtime_V1_SubscribeActorEventsRequestAlpha1
    typealias Response = Dapr_Proto_Runtime_V1_SubscribeActorEventsResponseAlpha1

    private struct State {
        var nextID: UInt64 = 0
        var pending: [String: CheckedContinuation<Request, any Error>] = [:]
        var closed = false
    }

    private let state = Mutex(State())
    let outbox: SerialWriter<Response>

    init(outbox: SerialWriter<Response>) {
        self.outbox = outbox
    }

    struct Closed: Error, CustomStringConvertible {
        var description: String { "actor host disconnected before responding" }
    }

    struct Failed: Error, CustomStringConvertible {
        var code: UInt32
        var message: String
        var description: String { self.code == 5 ? "actor method not found: \(self.message)" : "error from actor service: \(self.message)" }
    }

    /// Sends the request `build(id)` makes and waits for the app's reply to that id.
    func request(_ build: @Sendable (String) -> Response) async throws -> Request {
        let id = self.state.withLock { state -> String? in
            guard !state.closed else { return nil }
            state.nextID += 1
            return String(state.nextID)
        }
        guard let id else { throw Closed() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Request, any Error>) in
                let accepted = self.state.withLock { state -> Bool in
                    guard !state.closed, !Task.isCancelled else { return false }
                    state.pending[id] = continuation
                    return true
                }
                guard accepted else {
                    continuation.resume(throwing: Task.isCancelled ? CancellationError() : Closed())
                    return
                }
                let message = build(id)
                Task {
                    do {
                        try await self.outbox.write(message)
                    } catch {
                        self.state.withLock { $0.pending.removeValue(forKey: id) }?.resume(throwing: Closed())
                    }
                }
            }
        } onCancel: {
            self.state.withLock { $0.pending.removeValue(forKey: id) }?.resume(throwing: CancellationError())
        }
    }

    /// A reply from the app.
    func deliver(_ message: Request) {
        let id: String
        switch message.requestType {
        case .invokeResponse(let reply): id = reply.id
        case .reminderResponse(let reply): id = reply.id
        case .timerResponse(let reply): id = reply.id
        case .deactivateResponse(let reply): id = reply.id
        case .requestFailed(let reply): id = reply.id
        case .initialRequest, nil: return
        }
        self.state.withLock { $0.pending.removeValue(forKey: id) }?.resume(returning: message)
    }

    /// The stream ended: waiting calls fail.
    func close() {
        let pending = self.state.withLock { state -> [CheckedContinuation<Request, any Error>] in
            state.closed = true
            defer { state.pending = [:] }
            return Array(state.pending.values)
        }
        for continuation in pending { continuation.resume(throwing: Closed()) }
    }

    // MARK: ActorAppTransport

    func call(_ key: ActorKey, _ call: ActorCall, maxBodySize: Int) async throws -> ActorReply {
        if call.path.hasPrefix("method/remind/") || call.path.hasPrefix("method/timer/") {
            let isTimer = call.path.hasPrefix("method/timer/")
            let name = String(call.path.dropFirst(isTimer ? 13 : 14))
            let body = (try? JSONValue(parsing: call.body)) ?? .null
            let data = Self.any(body["data"] ?? .null)
            let reply = try await self.request { id in
                var response = Response()
                if isTimer {
                    var timer = Dapr_Proto_Runtime_V1_SubscribeActorEventsResponseTimerRequestAlpha1()
                    timer.id = id
                    timer.actorType = key.type
                    timer.actorID = key.id
                    timer.name = name
                    timer.dueTime = body["dueTime"]?.stringValue ?? ""
                    timer.period = body["period"]?.stringValue ?? ""
                    timer.callback = body["callback"]?.stringValue ?? ""
                    timer.data = data
                    response.timerRequest = timer
                } else {
                    var reminder = Dapr_Proto_Runtime_V1_SubscribeActorEventsResponseReminderRequestAlpha1()
                    reminder.id = id
                    reminder.actorType = key.type
                    reminder.actorID = key.id
                    reminder.name = name
                    reminder.dueTime = body["dueTime"]?.stringValue ?? ""
                    reminder.period = body["period"]?.stringValue ?? ""
                    reminder.data = data
                    response.reminderRequest = reminder
                }
                return response
            }
            switch reply.requestType {
            case .reminderResponse, .timerResponse: return ActorReply(status: 200)
            case .requestFailed(let failed): throw Failed(code: failed.code, message: failed.message)
            default: throw Failed(code: 13, message: "actor host returned an unexpected response type for \(isTimer ? "timer" : "reminder")")
            }
        }
        let method = call.path.hasPrefix("method/") ? String(call.path.dropFirst(7)) : call.path
        var metadata: [String: String] = [:]
        for field in call.headers where metadata[field.name] == nil { metadata[field.name] = field.value }
        if let contentType = call.contentType { metadata["content-type"] = contentType }
        let frozen = metadata
        let reply = try await self.request { id in
            var invoke = Dapr_Proto_Runtime_V1_SubscribeActorEventsResponseInvokeRequestAlpha1()
            invoke.id = id
            invoke.actorType = key.type
            invoke.actorID = key.id
            invoke.method = method
            invoke.data = Data(call.body)
            invoke.metadata = frozen
            var response = Response()
            response.invokeRequest = invoke
            return response
        }
        switch reply.requestType {
        case .invokeResponse(let answer):
            var headers = HeaderList()
            // An actor error travels as the body with daprd's marker header.
            if answer.error { headers.add("X-Daprerrorresponseheader", "true") }
            let contentType = answer.metadata["content-type"] ?? answer.metadata["Content-Type"] ?? "application/json"
            return ActorReply(status: 200, headers: headers, contentType: contentType, body: Array(answer.data))
        case .requestFailed(let failed):
            if failed.code == 5 {
                return ActorReply(
                    status: 404, contentType: "application/json",
                    body: APIError.actorInvoke("actor method not found: \(method)").jsonBody.serialized)
            }
            throw Failed(code: failed.code, message: failed.message)
        default:
            throw Failed(code: 13, message: "actor host returned an unexpected response type for invoke")
        }
    }

    func deactivate(_ key: ActorKey) async throws -> Int {
        let reply = try await self.request { id in
            var deactivate = Dapr_Proto_Runtime_V1_SubscribeActorEventsResponseDeactivateRequestAlpha1()
            deactivate.id = id
            deactivate.actorType = key.type
            deactivate.actorID = key.id
            var response = Response()
            response.deactivateRequest = deactivate
            return response
        }
        if case .requestFailed(let failed) = reply.requestType { throw Failed(code: failed.code, message: failed.message) }
        return 200
    }

    /// Stored reminder or timer data as daprd sends it: a `BytesValue` of its JSON.
    static func any(_ value: JSONValue) -> Google_Protobuf_Any {
        guard !value.isNull else { return Google_Protobuf_Any() }
        var bytes = Google_Protobuf_BytesValue()
        bytes.value = Data(value.serialized)
        return (try? Google_Protobuf_Any(message: bytes)) ?? Google_Protobuf_Any()
    }

    /// The app's declaration as the actor runtime's configuration.
    static func config(_ initial: Dapr_Proto_Runtime_V1_SubscribeActorEventsRequestInitialAlpha1) -> ActorAppConfig {
        var config = ActorAppConfig(entities: initial.entities.filter { !$0.isEmpty })
        func duration(_ value: Google_Protobuf_Duration) -> Duration? {
            let duration = Duration.seconds(value.seconds) + .nanoseconds(Int64(value.nanos))
            return duration > .zero ? duration : nil
        }
        if initial.hasActorIdleTimeout, let idle = duration(initial.actorIdleTimeout) {
            config.idleTimeout = idle
            // No scan interval travels on the stream: scan often enough for the idle timeout.
            config.scanInterval = min(config.scanInterval, max(idle / 2, .milliseconds(500)))
        }
        if initial.hasDrainOngoingCallTimeout, let drain = duration(initial.drainOngoingCallTimeout) { config.drainOngoingCallTimeout = drain }
        if initial.hasDrainRebalancedActors { config.drainRebalancedActors = initial.drainRebalancedActors }
        if initial.hasReentrancy {
            config.reentrancy = initial.reentrancy.enabled
            if initial.reentrancy.hasMaxStackDepth, initial.reentrancy.maxStackDepth > 0 { config.maxStackDepth = Int(initial.reentrancy.maxStackDepth) }
        }
        for entry in initial.entitiesConfig {
            var settings = config.settings(for: "")
            if entry.hasActorIdleTimeout, let idle = duration(entry.actorIdleTimeout) {
                settings.idleTimeout = idle
                config.scanInterval = min(config.scanInterval, max(idle / 2, .milliseconds(500)))
            }
            if entry.hasDrainOngoingCallTimeout, let drain = duration(entry.drainOngoingCallTimeout) { settings.drainOngoingCallTimeout = drain }
            if entry.hasDrainRebalancedActors { settings.drainRebalancedActors = entry.drainRebalancedActors }
            if entry.hasReentrancy {
                settings.reentrancy = entry.reentrancy.enabled
                if entry.reentrancy.hasMaxStackDepth, entry.reentrancy.maxStackDepth > 0 { settings.maxStackDepth = Int(entry.reentrancy.maxStackDepth) }
            }
            for type in entry.entities { config.perType[type] = settings }
        }
        return config
    }
}

extension DaprService {
    func registerActorStream<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: DaprMethod.SubscribeActorEventsAlpha1.descriptor,
            deserializer: ProtobufDeserializer<ActorCallbackStream.Request>(),
            serializer: ProtobufSerializer<ActorCallbackStream.Response>()
        ) { request, context in
            StreamingServerResponse { writer in
                guard self.actorStreamAllowed else {
                    throw RPCError(code: .failedPrecondition, message: "actor callback streaming requires a gRPC app channel")
                }
                var messages = request.messages.makeAsyncIterator()
                guard let first = try await messages.next(), case .initialRequest(let initial)? = first.requestType else {
                    throw RPCError(code: .invalidArgument, message: "first message must be SubscribeActorEventsRequestInitialAlpha1")
                }
                let outbox = SerialWriter(writer)
                let stream = ActorCallbackStream(outbox: outbox)
                let config = ActorCallbackStream.config(initial)
                var acknowledgement = ActorCallbackStream.Response()
                acknowledgement.initialResponse = Dapr_Proto_Runtime_V1_SubscribeActorEventsResponseInitialAlpha1()
                try await outbox.write(acknowledgement)
                let identity = ObjectIdentifier(stream)
                let serving = self.api.actors.startHosting(config, transport: stream, stream: identity)
                if serving { self.logger.info("actors: the app hosts \(config.entities.joined(separator: ", ")) over the gRPC actor stream") }
                defer {
                    stream.close()
                    if serving { self.api.actors.stopHosting(stream: identity) }
                }
                while let message = try await messages.next() {
                    stream.deliver(message)
                }
                return [:]
            }
        }
    }
}

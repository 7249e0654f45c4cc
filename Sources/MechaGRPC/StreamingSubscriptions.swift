import GRPCCore
import Logging
import MechaAPI
import MechaCore
import Synchronization

/// `SubscribeTopicEventsAlpha1`: a subscription held open by the client. The first message names
/// the topic; the sidecar answers `initial_response`, then sends each event and waits for the
/// client's `event_processed` with the same id. The usual machinery applies (scopes, expiry,
/// dead letters, redelivery of what was not processed); when the stream ends, in-flight events
/// are handed back to the broker.
struct StreamingSubscriptions: Sendable {
    typealias Request = Dapr_Proto_Runtime_V1_SubscribeTopicEventsRequestAlpha1
    typealias Response = Dapr_Proto_Runtime_V1_SubscribeTopicEventsResponseAlpha1

    let api: DaprAPI
    let manager: SubscriptionManager
    let logger: Logger

    func subscribe(_ request: StreamingServerRequest<Request>, context: ServerContext) async -> StreamingServerResponse<Response> {
        StreamingServerResponse { writer in
            var messages = request.messages.makeAsyncIterator()
            guard let first = try await messages.next(), case .initialRequest(let initial)? = first.subscribeTopicEventsRequestType else {
                throw RPCError(code: .invalidArgument, message: "unexpected message: expected initial request")
            }
            guard !initial.pubsubName.isEmpty else { throw APIError.pubsubEmpty().rpcError }
            guard !initial.topic.isEmpty else { throw APIError.pubsubTopicEmpty(initial.pubsubName).rpcError }
            guard !NULText.contains(initial.topic) else { throw APIError.containsNUL("topic", initial.topic).rpcError }
            let spec = SubscriptionSpec(
                pubsubName: initial.pubsubName,
                topic: initial.topic,
                routes: SubscriptionRoutes(defaultPath: ""),
                metadata: initial.metadata,
                deadLetterTopic: initial.hasDeadLetterTopic && !initial.deadLetterTopic.isEmpty ? initial.deadLetterTopic : nil,
                origin: .streaming
            )
            let pending = PendingEvents()
            let stop = StopSignal()
            var response = Response()
            response.initialResponse = Dapr_Proto_Runtime_V1_SubscribeTopicEventsResponseInitialAlpha1()
            try await writer.write(response)
            self.logger.info("streaming subscription to topic \(spec.topic) on pubsub \(spec.pubsubName) started")

            // Writes from several deliveries are serialized: the writer is not safe to share.
            let outbox = SerialWriter(writer)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        try await self.manager.runStreaming(spec, until: stop) { delivery in
                            var message = TopicEventMessage.make(delivery)
                            if message.id.isEmpty { message.id = RandomID.uuid() }
                            let id = message.id
                            let waiter = pending.register(id)
                            var event = Response()
                            event.eventMessage = message
                            do {
                                try await outbox.write(event)
                            } catch {
                                pending.resolve(id, with: .retry("the subscriber stream is closed"))
                            }
                            return await waiter.result()
                        }
                    } catch {
                        // Unknown pubsub or forbidden topic: end the stream with that error.
                        stop.stop()
                        throw error.rpcErrorForStream
                    }
                }
                // Statuses from the client until it closes its side (or the RPC is cancelled).
                do {
                    while let message = try await messages.next() {
                        if case .eventProcessed(let processed)? = message.subscribeTopicEventsRequestType {
                            pending.resolve(processed.id, with: processed.hasStatus ? processed.status.status.result : .success)
                        }
                    }
                } catch {
                    self.logger.debug("streaming subscriber went away: \(error)")
                }
                stop.stop()
                pending.failAll(.retry("the subscriber stream closed before answering"))
                try await group.waitForAll()
            }
            self.logger.info("streaming subscription to topic \(spec.topic) on pubsub \(spec.pubsubName) ended")
            return [:]
        }
    }
}

extension Error {
    /// The gRPC status for an error: daprd's for an `APIError`, as is for an `RPCError`, INTERNAL otherwise.
    var rpcErrorForStream: RPCError {
        if let api = self as? APIError { return api.rpcError }
        if let rpc = self as? RPCError { return rpc }
        return RPCError(code: .internalError, message: "\(self)")
    }
}

/// Events sent to a streaming subscriber and waiting for its verdict.
final class PendingEvents: Sendable {
    private struct State {
        var waiting: [String: Verdict] = [:]
        var closed = false
    }

    private let state = Mutex(State())

    /// Registers `id` before its event is sent, so a fast answer cannot be missed.
    func register(_ id: String) -> Verdict {
        let verdict = Verdict()
        let closed = self.state.withLock { state -> Bool in
            if state.closed { return true }
            state.waiting[id] = verdict
            return false
        }
        if closed { verdict.set(.retry("the subscriber stream is closed")) }
        return verdict
    }

    func resolve(_ id: String, with result: TopicEventResult) {
        self.state.withLock { $0.waiting.removeValue(forKey: id) }?.set(result)
    }

    func failAll(_ result: TopicEventResult) {
        let all = self.state.withLock { state -> [Verdict] in
            state.closed = true
            defer { state.waiting = [:] }
            return Array(state.waiting.values)
        }
        for verdict in all { verdict.set(result) }
    }
}

/// A one-shot result that one task sets and another awaits.
final class Verdict: Sendable {
    private struct State {
        var result: TopicEventResult?
        var waiter: CheckedContinuation<TopicEventResult, Never>?
    }

    private let state = Mutex(State())

    func set(_ result: TopicEventResult) {
        let waiter = self.state.withLock { state -> CheckedContinuation<TopicEventResult, Never>? in
            guard state.result == nil else { return nil }
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: result)
    }

    func result() async -> TopicEventResult {
        await withCheckedContinuation { continuation in
            let ready = self.state.withLock { state -> TopicEventResult? in
                if let result = state.result { return result }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

/// Serializes writes to a response stream shared by concurrent deliveries.
actor SerialWriter<Message: Sendable> {
    private var writer: RPCWriter<Message>

    init(_ writer: RPCWriter<Message>) {
        self.writer = writer
    }

    func write(_ message: Message) async throws {
        try await self.writer.write(message)
    }
}

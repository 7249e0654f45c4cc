import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
public import Logging
public import MechaAPI
public import MechaCore
import NIOCore
import SwiftProtobuf
import Synchronization

/// The gRPC app channel: how the sidecar calls an app started with `--app-protocol grpc`, through
/// `dapr.proto.runtime.v1.AppCallback` (and `AppCallbackHealthCheck`, `AppCallbackAlpha`) over h2c.
///
/// Semantics follow daprd's gRPC channel and postman:
/// - invocation: the body becomes `InvokeRequest.data`; an app's gRPC error becomes an answer with
///   the mapped HTTP status and the status as JSON (`{"code":5,"message":"…"}`), like daprd's
///   HTTP API renders it;
/// - topic events: SUCCESS/RETRY/DROP; any error is RETRY except UNIMPLEMENTED, which daprd
///   acknowledges without a dead letter (the app does not handle events);
/// - bulk: `OnBulkTopicEvent`, then `OnBulkTopicEventAlpha1` when that is UNIMPLEMENTED;
/// - `ListTopicSubscriptions` / `ListInputBindings`: UNIMPLEMENTED means none;
/// - the app token goes with invocations, events and binding events, not with the listing calls
///   nor the health probe.
public final class GRPCAppChannel: AppChannel {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        public var appID: String
        public var apiToken: String?
        public var healthProbeTimeout: Duration
        public var bindingOptionsTimeout: Duration
        /// Upper bound on concurrent invocations of the app; nil for unlimited.
        public var maxConcurrency: Int?
        /// The largest request body sent to the app and the largest answer accepted from it.
        public var maxBodySize: Int
        /// How long a call waits for the connection to the app while it is (re)connecting.
        public var connectRetryWindow: Duration

        public init(
            host: String,
            port: Int,
            appID: String,
            apiToken: String? = nil,
            healthProbeTimeout: Duration = .milliseconds(500),
            bindingOptionsTimeout: Duration = .seconds(3),
            maxConcurrency: Int? = nil,
            maxBodySize: Int = 4 << 20,
            connectRetryWindow: Duration = .seconds(2)
        ) {
            self.host = host
            self.port = port
            self.appID = appID
            self.apiToken = apiToken
            self.healthProbeTimeout = healthProbeTimeout
            self.bindingOptionsTimeout = bindingOptionsTimeout
            self.maxConcurrency = maxConcurrency
            self.maxBodySize = maxBodySize
            self.connectRetryWindow = connectRetryWindow
        }
    }

    typealias Transport = HTTP2ClientTransport.Posix

    let configuration: Configuration
    let logger: Logger
    let client: GRPCClient<Transport>
    let limiter: ConcurrencyLimiter?
    /// `ListInputBindings`, asked once (as daprd does) and shared by every binding.
    private let inputBindings = Mutex<Task<[String], any Error>?>(nil)

    public init(configuration: Configuration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        self.limiter = ConcurrencyLimiter.forMaxConcurrency(configuration.maxConcurrency)
        var config = Transport.Config.defaults
        // Reconnect quickly: the app may start after the sidecar, or restart.
        config.backoff = .init(initial: .milliseconds(100), max: .seconds(1), multiplier: 1.6, jitter: 0.2)
        let transport = try Transport(
            target: Self.target(host: configuration.host, port: configuration.port),
            transportSecurity: .plaintext,
            config: config
        )
        self.client = GRPCClient(transport: transport)
    }

    static func target(host: String, port: Int) -> any ResolvableTarget {
        if host.contains(":") { return .ipv6(address: host, port: port) }
        if !host.isEmpty, host.allSatisfy({ $0 == "." || $0.isASCII && $0.isNumber }) { return .ipv4(address: host, port: port) }
        return .dns(host: host, port: port)
    }

    // MARK: Lifecycle

    public func run(until stop: StopSignal) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    try await self.client.runConnections()
                } catch {
                    self.logger.error("gRPC app channel to \(self.configuration.host):\(self.configuration.port) stopped: \(error)")
                }
            }
            await stop.wait()
            self.client.beginGracefulShutdown()
            // In-flight calls get a moment to finish; then the connections are cut.
            group.addTask { try? await Task.sleep(for: .seconds(5)) }
            _ = await group.next()
            group.cancelAll()
        }
    }

    public func waitUntilReachable(until stop: StopSignal) async {
        var attempts = 0
        while !stop.isStopped {
            if await TCPConnectProbe.canConnect(host: self.configuration.host, port: self.configuration.port) { return }
            attempts += 1
            if attempts == 1 {
                self.logger.info("application protocol: grpc. waiting on port \(self.configuration.port).  This will block until the app is listening on that port.")
            } else if attempts % 100 == 0 {
                self.logger.info("waiting for application to listen on port \(self.configuration.port)")
            }
            if await stop.sleep(for: .milliseconds(100)) { return }
        }
    }

    public func probeHealth() async -> Bool {
        // Like daprd: no app token on health probes.
        do {
            let response: ClientResponse<Dapr_Proto_Runtime_V1_HealthCheckResponse> = try await self.call(
                Dapr_Proto_Runtime_V1_AppCallbackHealthCheck.Method.HealthCheck.descriptor,
                Google_Protobuf_Empty(),
                timeout: self.configuration.healthProbeTimeout
            )
            if case .success = response.accepted { return true }
            return false
        } catch {
            return false
        }
    }

    // MARK: Invocation

    public func invoke<Output: Sendable>(_ request: InvocationRequest, _ handler: (InvocationResponse) async throws -> Output) async throws -> Output {
        let body = try await request.body.collect(upTo: self.configuration.maxBodySize)
        var message = Dapr_Proto_Common_V1_InvokeRequest()
        message.method = request.method
        var data = Google_Protobuf_Any()
        data.value = Data(body.readableBytesView)
        data.typeURL = request.headers.first(AnyTypeURL.header) ?? ""
        message.data = data
        message.contentType = request.contentType ?? ""
        var httpExtension = Dapr_Proto_Common_V1_HTTPExtension()
        httpExtension.verb = .init(httpVerb: request.httpVerb)
        httpExtension.querystring = request.queryString
        message.httpExtension = httpExtension
        let metadata = AppMetadata.outgoing(request.headers, apiToken: self.configuration.apiToken)

        let result: ClientResponse<Dapr_Proto_Common_V1_InvokeResponse>
        do {
            result = try await self.limited {
                try await self.call(Dapr_Proto_Runtime_V1_AppCallback.Method.OnInvoke.descriptor, message, metadata: metadata)
            }
        } catch {
            throw InvocationError("error invoking app channel: \(error)")
        }
        return try await handler(Self.invocationResponse(result))
    }

    /// The app's answer as an invocation response: the data with its content type (protobuf when
    /// the `Any` has a type URL, as daprd reports it), or, for a gRPC error, the mapped HTTP status
    /// and the status as JSON.
    static func invocationResponse(_ result: ClientResponse<Dapr_Proto_Common_V1_InvokeResponse>) -> InvocationResponse {
        switch result.accepted {
        case .success(let contents):
            switch contents.message {
            case .success(let answer):
                var headers = AppMetadata.incoming(contents.metadata)
                headers.set(AppProtocolMarker.header, "grpc")
                let data = answer.data
                var contentType: String? = answer.contentType.isEmpty ? nil : answer.contentType
                if !data.typeURL.isEmpty {
                    headers.set(AnyTypeURL.header, data.typeURL)
                    contentType = "application/x-protobuf"
                }
                let bytes = ByteBuffer(bytes: data.value)
                return InvocationResponse(status: 200, headers: headers, contentType: contentType, body: BodyStream(buffer: bytes))
            case .failure(let error):
                return self.errorResponse(error)
            }
        case .failure(let error):
            return self.errorResponse(error)
        }
    }

    static func errorResponse(_ error: RPCError) -> InvocationResponse {
        let status = AppRPCStatus(error)
        var headers = HeaderList()
        headers.set(AppRPCStatus.header, status.encoded)
        let body = ByteBuffer(bytes: status.json)
        return InvocationResponse(
            status: HTTPStatusMapping.httpStatus(forGRPCCode: error.code.rawValue),
            headers: headers,
            contentType: "application/json",
            body: BodyStream(buffer: body)
        )
    }

    // MARK: Pub/sub

    public func deliverTopicEvent(_ delivery: TopicEventDelivery) async -> TopicEventResult {
        let message = TopicEventMessage.make(delivery)
        let metadata = AppMetadata.outgoing(delivery.headers, apiToken: self.configuration.apiToken)
        let eventID = message.id
        let response: ClientResponse<Dapr_Proto_Runtime_V1_TopicEventResponse>
        do {
            response = try await self.call(Dapr_Proto_Runtime_V1_AppCallback.Method.OnTopicEvent.descriptor, message, metadata: metadata)
        } catch {
            return .retry("error returned from app while processing pub/sub event \(eventID): \(error)")
        }
        switch response.accepted.flatMap({ $0.message }) {
        case .success(let answer):
            return answer.status.result
        case .failure(let error) where error.code == .unimplemented:
            // daprd: the app does not handle topic events; the message is acknowledged.
            self.logger.warning("non-retriable error returned from app while processing pub/sub event \(eventID): \(AppRPCStatus.goDescription(error))")
            return .success
        case .failure(let error):
            return .retry("error returned from app while processing pub/sub event \(eventID): \(AppRPCStatus.goDescription(error))")
        }
    }

    public func deliverBulkTopicEvent(_ delivery: BulkTopicEventDelivery) async -> [String: TopicEventResult] {
        var request = Dapr_Proto_Runtime_V1_TopicEventBulkRequest()
        request.id = RandomID.uuid()
        request.topic = delivery.topic
        request.pubsubName = delivery.pubsubName
        request.type = "com.dapr.event.sent.bulk"
        request.path = delivery.path
        request.entries = delivery.entries.map(Self.bulkEntry)
        var headers = HeaderList()
        if let first = delivery.entries.first {
            for field in first.delivery.headers where field.name.lowercased() == "traceparent" || field.name.lowercased() == "tracestate" {
                headers.add(field.name, field.value)
            }
        }
        let metadata = AppMetadata.outgoing(headers, apiToken: self.configuration.apiToken)
        var outcome: Result<Dapr_Proto_Runtime_V1_TopicEventBulkResponse, RPCError>
        do {
            let stable: ClientResponse<Dapr_Proto_Runtime_V1_TopicEventBulkResponse> = try await self.call(
                Dapr_Proto_Runtime_V1_AppCallback.Method.OnBulkTopicEvent.descriptor,
                request,
                metadata: metadata
            )
            outcome = stable.accepted.flatMap { $0.message }
            if case .failure(let error) = outcome, error.code == .unimplemented {
                let alpha: ClientResponse<Dapr_Proto_Runtime_V1_TopicEventBulkResponse> = try await self.call(
                    Dapr_Proto_Runtime_V1_AppCallbackAlpha.Method.OnBulkTopicEventAlpha1.descriptor,
                    request,
                    metadata: metadata
                )
                outcome = alpha.accepted.flatMap { $0.message }
            }
        } catch {
            let reason = "error returned from app while processing bulk pub/sub event: \(error)"
            return Dictionary(uniqueKeysWithValues: delivery.entries.map { ($0.entryID, TopicEventResult.retry(reason)) })
        }
        var results: [String: TopicEventResult] = [:]
        switch outcome {
        case .success(let answer):
            let known = Set(delivery.entries.map(\.entryID))
            for status in answer.statuses {
                guard known.contains(status.entryID) else {
                    self.logger.warning("Invalid entry id received from app while processing pub/sub event \(status.entryID)")
                    continue
                }
                results[status.entryID] = status.status.result
            }
            for entry in delivery.entries where results[entry.entryID] == nil {
                results[entry.entryID] = .retry("response not received, RETRY required while processing bulk subscribe event for entry id: \(entry.entryID)")
            }
        case .failure(let error) where error.code == .unimplemented:
            // daprd: neither bulk method exists; every entry is acknowledged.
            self.logger.warning("non-retriable error returned from app while processing bulk pub/sub event: \(AppRPCStatus.goDescription(error))")
            for entry in delivery.entries { results[entry.entryID] = .success }
        case .failure(let error):
            let reason = "error returned from app while processing bulk pub/sub event: \(AppRPCStatus.goDescription(error))"
            for entry in delivery.entries { results[entry.entryID] = .retry(reason) }
        }
        return results
    }

    /// A bulk entry: the CloudEvent's fields, or the raw bytes for raw-payload subscriptions.
    static func bulkEntry(_ entry: BulkTopicEventDelivery.Entry) -> Dapr_Proto_Runtime_V1_TopicEventBulkRequestEntry {
        var item = Dapr_Proto_Runtime_V1_TopicEventBulkRequestEntry()
        item.entryID = entry.entryID
        item.contentType = entry.contentType
        item.metadata = entry.metadata
        if entry.raw {
            item.bytes = Data(entry.data)
        } else {
            let single = TopicEventMessage.make(entry.delivery)
            var event = Dapr_Proto_Runtime_V1_TopicEventCERequest()
            event.id = single.id
            event.source = single.source
            event.type = single.type
            event.specVersion = single.specVersion
            event.dataContentType = single.dataContentType
            event.data = single.data
            event.extensions = single.extensions
            item.cloudEvent = event
        }
        return item
    }

    public func listSubscriptions() async throws -> [SubscriptionSpec] {
        let response: ClientResponse<Dapr_Proto_Runtime_V1_ListTopicSubscriptionsResponse> = try await self.call(
            Dapr_Proto_Runtime_V1_AppCallback.Method.ListTopicSubscriptions.descriptor,
            Google_Protobuf_Empty()
        )
        switch response.accepted.flatMap({ $0.message }) {
        case .success(let answer):
            return answer.subscriptions.compactMap(\.spec)
        case .failure(let error) where error.code == .unimplemented:
            self.logger.info("pubsub subscriptions: gRPC app does not implement ListTopicSubscriptions")
            return []
        case .failure(let error):
            throw SubscriptionListError(description: "error getting topics from app: \(AppRPCStatus.goDescription(error))")
        }
    }

    struct SubscriptionListError: Error, CustomStringConvertible {
        var description: String
    }

    // MARK: Bindings

    public func acceptsInputBinding(name: String, route: String) async throws -> Bool {
        let listing = self.inputBindings.withLock { current -> Task<[String], any Error> in
            if let current { return current }
            let task = Task { try await self.listInputBindings() }
            current = task
            return task
        }
        do {
            return try await listing.value.contains(name)
        } catch {
            // Not answered (no connection): ask again next time.
            self.inputBindings.withLock { if $0 == listing { $0 = nil } }
            throw error
        }
    }

    /// `ListInputBindings`; daprd treats any error from the app as "no bindings".
    private func listInputBindings() async throws -> [String] {
        let response: ClientResponse<Dapr_Proto_Runtime_V1_ListInputBindingsResponse> = try await self.call(
            Dapr_Proto_Runtime_V1_AppCallback.Method.ListInputBindings.descriptor,
            Google_Protobuf_Empty(),
            timeout: self.configuration.bindingOptionsTimeout
        )
        switch response.accepted.flatMap({ $0.message }) {
        case .success(let answer):
            return answer.bindings
        case .failure(let error) where Self.isNotConnected(error):
            throw InvocationError("could not list the app's input bindings: \(AppRPCStatus.goDescription(error))")
        case .failure(let error):
            if error.code != .unimplemented {
                self.logger.warning("listing the app's input bindings failed: \(AppRPCStatus.goDescription(error))")
            }
            return []
        }
    }

    public func deliverBindingEvent(name: String, route: String, event: BindingEvent) async throws -> BindingEventReply? {
        var request = Dapr_Proto_Runtime_V1_BindingEventRequest()
        request.name = name
        request.data = Data(event.data)
        request.metadata = event.metadata
        var headers = HeaderList()
        if let traceParent = event.metadata["traceparent"], !traceParent.isEmpty {
            headers.add("traceparent", traceParent)
            if let traceState = event.metadata["tracestate"], !traceState.isEmpty { headers.add("tracestate", traceState) }
        }
        let metadata = AppMetadata.outgoing(headers, apiToken: self.configuration.apiToken)
        let response: ClientResponse<Dapr_Proto_Runtime_V1_BindingEventResponse>
        do {
            response = try await self.call(Dapr_Proto_Runtime_V1_AppCallback.Method.OnBindingEvent.descriptor, request, metadata: metadata)
        } catch {
            throw BindingError("error invoking app: \(error)")
        }
        switch response.accepted.flatMap({ $0.message }) {
        case .success(let answer):
            return answer.reply
        case .failure(let error):
            throw BindingError("error invoking app: \(AppRPCStatus.goDescription(error))")
        }
    }

    // MARK: Calls

    private func limited<Output: Sendable>(_ body: () async throws -> Output) async throws -> Output {
        guard let limiter = self.limiter else { return try await body() }
        return try await limiter.withSlot(body)
    }

    /// One unary call; the response (or the app's error) comes back as a `ClientResponse`. While
    /// the connection to the app is being (re)established the call is retried for a moment; errors
    /// that reached the app are never retried.
    func call<Request: SwiftProtobuf.Message & Sendable, Response: SwiftProtobuf.Message & Sendable>(
        _ descriptor: MethodDescriptor,
        _ message: Request,
        metadata: Metadata = [:],
        timeout: Duration? = nil
    ) async throws -> ClientResponse<Response> {
        var options = CallOptions.defaults
        options.timeout = timeout
        options.maxRequestMessageBytes = max(self.configuration.maxBodySize, 4 << 20) + 1024
        options.maxResponseMessageBytes = max(self.configuration.maxBodySize, 4 << 20) + 1024
        let request = ClientRequest(message: message, metadata: metadata)
        let start = ContinuousClock.now
        let window = min(self.configuration.connectRetryWindow, timeout ?? self.configuration.connectRetryWindow)
        while true {
            let response: ClientResponse<Response>
            do {
                response = try await self.client.unary(
                    request: request,
                    descriptor: descriptor,
                    serializer: ProtobufSerializer<Request>(),
                    deserializer: ProtobufDeserializer<Response>(),
                    options: options
                ) { response in response }
            } catch let error as RPCError {
                response = ClientResponse(of: Response.self, error: error)
            }
            if case .failure(let error) = response.accepted, Self.isNotConnected(error), ContinuousClock.now - start < window {
                try await Task.sleep(for: .milliseconds(50))
                continue
            }
            return response
        }
    }

    /// Errors raised by the client before the call reached the app (no connection yet).
    static func isNotConnected(_ error: RPCError) -> Bool {
        guard error.code == .unavailable else { return false }
        return Self.notConnectedMessages.contains { error.message.hasPrefix($0) }
    }

    static let notConnectedMessages = [
        "Channel is in a transient failure state",
        "Channel isn't ready",
        "Could not establish a connection",
        "subchannel isn't ready",
        "subchannel is unavailable",
        "Subchannel shutdown",
        "The server accepted the TCP connection but closed",
    ]
}

// MARK: - Conversions

extension Dapr_Proto_Common_V1_HTTPExtension.Verb {
    init(httpVerb: String) {
        switch httpVerb.uppercased() {
        case "GET": self = .get
        case "HEAD": self = .head
        case "POST": self = .post
        case "PUT": self = .put
        case "DELETE": self = .delete
        case "CONNECT": self = .connect
        case "OPTIONS": self = .options
        case "TRACE": self = .trace
        case "PATCH": self = .patch
        default: self = .none
        }
    }
}

extension Dapr_Proto_Runtime_V1_TopicSubscription {
    /// daprd's reading of a gRPC subscription: rules in order, then the default route; with
    /// neither, one rule with an empty path (every event goes to the app with path "").
    var spec: SubscriptionSpec? {
        guard !self.pubsubName.isEmpty, !self.topic.isEmpty else { return nil }
        var routes = SubscriptionRoutes()
        if self.hasRoutes {
            routes.rules = self.routes.rules.map { RouteRule(match: $0.match, path: $0.path) }
            if !self.routes.default.isEmpty { routes.defaultPath = self.routes.default }
        }
        if routes.rules.isEmpty && routes.defaultPath == nil {
            routes.rules = [RouteRule(match: "", path: "")]
        }
        var bulk: BulkSubscribeOptions?
        if self.hasBulkSubscribe {
            let config = self.bulkSubscribe
            bulk = BulkSubscribeOptions(
                enabled: config.enabled,
                maxMessagesCount: config.maxMessagesCount > 0 ? Int(config.maxMessagesCount) : 100,
                maxAwaitDurationMs: config.maxAwaitDurationMs > 0 ? Int(config.maxAwaitDurationMs) : 1000
            )
        }
        return SubscriptionSpec(
            pubsubName: self.pubsubName,
            topic: self.topic,
            routes: routes,
            metadata: self.metadata,
            deadLetterTopic: self.deadLetterTopic.isEmpty ? nil : self.deadLetterTopic,
            bulkSubscribe: bulk,
            origin: .programmatic
        )
    }
}

extension Dapr_Proto_Runtime_V1_BindingEventResponse {
    /// What the app asked for: states to save, output bindings to call with `data` (which daprd
    /// re-encodes as JSON, `null` when it is not JSON).
    var reply: BindingEventReply? {
        guard !self.states.isEmpty || !self.to.isEmpty else { return nil }
        var data = Array("null".utf8)
        if !self.data.isEmpty, let json = try? JSONValue(parsing: [UInt8](self.data)) { data = json.serialized }
        return BindingEventReply(
            storeName: self.storeName,
            states: self.states.map(\.saveItem),
            outputBindings: self.to,
            data: data,
            parallel: self.concurrency == .parallel
        )
    }
}

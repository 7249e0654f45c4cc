import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import Logging
import MechaComponents
import MechaCore
import MechaGRPC
import MechaRuntime
import MechaSidecar
import MechaTesting
import NIOHTTP1
import SwiftProtobuf
import Synchronization
import Testing

/// Runs a real sidecar inside the test process on free ports, with its own home directory, and
/// shuts it down gracefully after `body` (the shape of MechaHTTPTests' `InProcessSidecar`).
struct InProcessSidecar {
    let httpPort: Int
    let grpcPort: Int
    let internalPort: Int
    let home: String
    let sidecar: Sidecar

    static func with<Output: Sendable>(
        appID: String = "testapp",
        appPort: Int? = nil,
        appProtocol: SidecarOptions.AppProtocol = .grpc,
        resources: [String: String]? = nil,
        environment: [String: String] = [:],
        configure: (inout SidecarOptions) -> Void = { _ in },
        _ body: (InProcessSidecar) async throws -> Output
    ) async throws -> Output {
        let home = TestEnvironment.temporaryDirectory("mecha-grpc-inproc")
        defer { TestEnvironment.remove(home) }
        var options = SidecarOptions(appID: appID, mechaHome: home)
        options.httpPort = 0
        options.grpcPort = 0
        options.internalPort = 0
        options.appPort = appPort
        options.appProtocol = appProtocol
        options.gracefulShutdownTimeout = .seconds(2)
        if let resources {
            let directory = TestEnvironment.makeDirectory(home + "/resources")
            for (name, text) in resources { try TestEnvironment.write(text, to: directory + "/" + name) }
            options.resourcesPaths = [directory]
        }
        configure(&options)
        var logger = Logger(label: "test.sidecar")
        logger.logLevel = .warning
        let sidecar = Sidecar(options: options, registry: BuiltInComponents.registry, environment: environment, logger: logger)
        return try await withThrowingTaskGroup(of: Output?.self) { group in
            group.addTask {
                try await sidecar.run(gracefulShutdownSignals: [])
                return nil
            }
            let ports = try await sidecar.listeningPorts()
            do {
                let output = try await body(InProcessSidecar(httpPort: ports.http, grpcPort: ports.grpc, internalPort: ports.internal, home: home, sidecar: sidecar))
                await sidecar.shutdown()
                try await group.waitForAll()
                return output
            } catch {
                await sidecar.shutdown()
                try? await group.waitForAll()
                throw error
            }
        }
    }

    /// Runs `body` with a client of the sidecar's Dapr gRPC API.
    func withDaprClient<Output: Sendable>(_ body: (Dapr_Proto_Runtime_V1_Dapr.Client<HTTP2ClientTransport.Posix>) async throws -> Output) async throws -> Output {
        try await withGRPCClient(
            transport: try HTTP2ClientTransport.Posix(target: .ipv4(address: "127.0.0.1", port: self.grpcPort), transportSecurity: .plaintext)
        ) { client in
            try await body(Dapr_Proto_Runtime_V1_Dapr.Client(wrapping: client))
        }
    }
}

/// Resource YAML for the tests.
enum Resources {
    static func component(name: String, type: String, metadata: [String: String] = [:]) -> String {
        var yaml = """
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: \(name)
            spec:
              type: \(type)
              version: v1

            """
        if metadata.isEmpty {
            yaml += "  metadata: []\n"
        } else {
            yaml += "  metadata:\n"
            for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
                yaml += "  - name: \(key)\n    value: \"\(value)\"\n"
            }
        }
        return yaml
    }

    /// `pubsub.sqlite` in the sidecar's home with fast redelivery.
    static func sqlitePubSub(name: String = "pubsub") -> String {
        self.component(name: name, type: "pubsub.sqlite", metadata: ["redeliveryDelay": "100ms", "maxRedeliveryDelay": "400ms"])
    }

    static func stateStore(name: String = "statestore") -> String {
        self.component(name: name, type: "state.in-memory")
    }

    static func cron(name: String, schedule: String = "@every 1s") -> String {
        self.component(name: name, type: "bindings.cron", metadata: ["schedule": schedule])
    }
}

/// A gRPC app inside the test process serving `AppCallback`, `AppCallbackHealthCheck` and
/// `AppCallbackAlpha`: it records every call with its metadata and answers as configured.
final class FakeGRPCApp: Sendable {
    /// A recorded call: the message and its metadata (lower-case keys, text values).
    struct Call<Message: Sendable>: Sendable {
        var message: Message
        var metadata: [String: String]
    }

    struct Behaviour: Sendable {
        var invoke: @Sendable (Dapr_Proto_Common_V1_InvokeRequest) async throws -> Dapr_Proto_Common_V1_InvokeResponse = { request in
            var response = Dapr_Proto_Common_V1_InvokeResponse()
            response.data = request.data
            response.contentType = request.contentType
            return response
        }
        var subscriptions: [Dapr_Proto_Runtime_V1_TopicSubscription]? = []
        /// Statuses answered to topic events, in order; SUCCESS once they run out.
        var topicStatuses: [Dapr_Proto_Runtime_V1_TopicEventResponse.TopicEventResponseStatus] = []
        /// Topics whose events the app fails with this error.
        var topicErrors: [String: RPCError] = [:]
        var bulk: @Sendable (Dapr_Proto_Runtime_V1_TopicEventBulkRequest) async throws -> Dapr_Proto_Runtime_V1_TopicEventBulkResponse = { _ in
            throw RPCError(code: .unimplemented, message: "no bulk")
        }
        var bulkAlpha: @Sendable (Dapr_Proto_Runtime_V1_TopicEventBulkRequest) async throws -> Dapr_Proto_Runtime_V1_TopicEventBulkResponse = { _ in
            throw RPCError(code: .unimplemented, message: "no bulk alpha")
        }
        /// nil: ListInputBindings answers UNIMPLEMENTED.
        var inputBindings: [String]? = nil
        var bindingReply: Dapr_Proto_Runtime_V1_BindingEventResponse = .init()
        var healthy = true
    }

    struct Recorded: Sendable {
        var invocations: [Call<Dapr_Proto_Common_V1_InvokeRequest>] = []
        var topicEvents: [Call<Dapr_Proto_Runtime_V1_TopicEventRequest>] = []
        var bulkEvents: [Call<Dapr_Proto_Runtime_V1_TopicEventBulkRequest>] = []
        var bindingEvents: [Call<Dapr_Proto_Runtime_V1_BindingEventRequest>] = []
        var listSubscriptionsCalls: [[String: String]] = []
        var listInputBindingsCalls = 0
        var healthChecks: [[String: String]] = []
        var concurrentInvocations = 0
        var maxConcurrentInvocations = 0
    }

    let behaviour: Mutex<Behaviour>
    let recorded = Mutex(Recorded())
    let port: Int

    private init(behaviour: Behaviour, port: Int) {
        self.behaviour = Mutex(behaviour)
        self.port = port
    }

    /// Starts the app on 127.0.0.1 (`port`, or a free one), runs `body`, and stops it.
    static func with<Output: Sendable>(
        port: Int = 0,
        _ behaviour: Behaviour = Behaviour(),
        _ body: (FakeGRPCApp) async throws -> Output
    ) async throws -> Output {
        let transport = HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: port), transportSecurity: .plaintext)
        let holder = Mutex<FakeGRPCApp?>(nil)
        let services: [any RegistrableRPCService] = [
            CallbackService(app: { holder.withLock { $0! } }),
            HealthService(app: { holder.withLock { $0! } }),
            AlphaService(app: { holder.withLock { $0! } }),
        ]
        let server = GRPCServer(transport: transport, services: services)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            let address = try await transport.listeningAddress
            let app = FakeGRPCApp(behaviour: behaviour, port: address.ipv4?.port ?? port)
            holder.withLock { $0 = app }
            defer { server.beginGracefulShutdown() }
            do {
                let output = try await body(app)
                server.beginGracefulShutdown()
                group.cancelAll()
                return output
            } catch {
                group.cancelAll()
                throw error
            }
        }
    }

    func configure(_ change: (inout Behaviour) -> Void) {
        self.behaviour.withLock { change(&$0) }
    }

    var calls: Recorded { self.recorded.withLock { $0 } }

    /// Polls until `predicate` holds for what was recorded; records an issue when `timeout`
    /// passes first.
    @discardableResult
    func waitFor(
        _ what: String,
        timeout: Duration = .seconds(15),
        sourceLocation: SourceLocation = #_sourceLocation,
        _ predicate: (Recorded) -> Bool
    ) async throws -> Recorded {
        let deadline = ContinuousClock.now + timeout
        while true {
            let calls = self.calls
            if predicate(calls) { return calls }
            if ContinuousClock.now >= deadline {
                Issue.record("timed out waiting for \(what)", sourceLocation: sourceLocation)
                return calls
            }
            try await Task.sleep(for: .milliseconds(25))
        }
    }

    static func metadata(_ metadata: Metadata) -> [String: String] {
        var result: [String: String] = [:]
        for (key, value) in metadata {
            if case .string(let text) = value { result[key.lowercased()] = text }
        }
        return result
    }

    // MARK: Handlers

    func onInvoke(_ request: ServerRequest<Dapr_Proto_Common_V1_InvokeRequest>) async throws -> Dapr_Proto_Common_V1_InvokeResponse {
        self.recorded.withLock { recorded in
            recorded.invocations.append(Call(message: request.message, metadata: Self.metadata(request.metadata)))
            recorded.concurrentInvocations += 1
            recorded.maxConcurrentInvocations = max(recorded.maxConcurrentInvocations, recorded.concurrentInvocations)
        }
        defer { self.recorded.withLock { $0.concurrentInvocations -= 1 } }
        let answer = self.behaviour.withLock { $0.invoke }
        return try await answer(request.message)
    }

    func onTopicEvent(_ request: ServerRequest<Dapr_Proto_Runtime_V1_TopicEventRequest>) throws -> Dapr_Proto_Runtime_V1_TopicEventResponse {
        self.recorded.withLock { $0.topicEvents.append(Call(message: request.message, metadata: Self.metadata(request.metadata))) }
        let outcome = self.behaviour.withLock { behaviour -> Result<Dapr_Proto_Runtime_V1_TopicEventResponse.TopicEventResponseStatus, RPCError> in
            if let error = behaviour.topicErrors[request.message.topic] { return .failure(error) }
            return .success(behaviour.topicStatuses.isEmpty ? .success : behaviour.topicStatuses.removeFirst())
        }
        var response = Dapr_Proto_Runtime_V1_TopicEventResponse()
        response.status = try outcome.get()
        return response
    }

    func listTopicSubscriptions(_ request: ServerRequest<Google_Protobuf_Empty>) throws -> Dapr_Proto_Runtime_V1_ListTopicSubscriptionsResponse {
        self.recorded.withLock { $0.listSubscriptionsCalls.append(Self.metadata(request.metadata)) }
        guard let subscriptions = self.behaviour.withLock({ $0.subscriptions }) else {
            throw RPCError(code: .unimplemented, message: "ListTopicSubscriptions is not implemented")
        }
        var response = Dapr_Proto_Runtime_V1_ListTopicSubscriptionsResponse()
        response.subscriptions = subscriptions
        return response
    }

    func listInputBindings() throws -> Dapr_Proto_Runtime_V1_ListInputBindingsResponse {
        self.recorded.withLock { $0.listInputBindingsCalls += 1 }
        guard let bindings = self.behaviour.withLock({ $0.inputBindings }) else {
            throw RPCError(code: .unimplemented, message: "ListInputBindings is not implemented")
        }
        var response = Dapr_Proto_Runtime_V1_ListInputBindingsResponse()
        response.bindings = bindings
        return response
    }

    func onBindingEvent(_ request: ServerRequest<Dapr_Proto_Runtime_V1_BindingEventRequest>) -> Dapr_Proto_Runtime_V1_BindingEventResponse {
        self.recorded.withLock { $0.bindingEvents.append(Call(message: request.message, metadata: Self.metadata(request.metadata))) }
        return self.behaviour.withLock { $0.bindingReply }
    }

    func onBulk(_ request: ServerRequest<Dapr_Proto_Runtime_V1_TopicEventBulkRequest>, alpha: Bool) async throws -> Dapr_Proto_Runtime_V1_TopicEventBulkResponse {
        self.recorded.withLock { $0.bulkEvents.append(Call(message: request.message, metadata: Self.metadata(request.metadata).merging(["method": alpha ? "alpha" : "stable"]) { $1 })) }
        let handler = self.behaviour.withLock { alpha ? $0.bulkAlpha : $0.bulk }
        return try await handler(request.message)
    }

    func healthCheck(_ request: ServerRequest<Google_Protobuf_Empty>) throws -> Dapr_Proto_Runtime_V1_HealthCheckResponse {
        self.recorded.withLock { $0.healthChecks.append(Self.metadata(request.metadata)) }
        guard self.behaviour.withLock({ $0.healthy }) else { throw RPCError(code: .unavailable, message: "not healthy") }
        return Dapr_Proto_Runtime_V1_HealthCheckResponse()
    }
}

private struct CallbackService: Dapr_Proto_Runtime_V1_AppCallback.ServiceProtocol {
    let app: @Sendable () -> FakeGRPCApp

    func onInvoke(request: ServerRequest<Dapr_Proto_Common_V1_InvokeRequest>, context: ServerContext) async throws -> ServerResponse<Dapr_Proto_Common_V1_InvokeResponse> {
        ServerResponse(message: try await self.app().onInvoke(request), metadata: ["x-app-header": "from-app"])
    }

    func listTopicSubscriptions(request: ServerRequest<Google_Protobuf_Empty>, context: ServerContext) async throws -> ServerResponse<Dapr_Proto_Runtime_V1_ListTopicSubscriptionsResponse> {
        ServerResponse(message: try self.app().listTopicSubscriptions(request))
    }

    func onTopicEvent(request: ServerRequest<Dapr_Proto_Runtime_V1_TopicEventRequest>, context: ServerContext) async throws -> ServerResponse<Dapr_Proto_Runtime_V1_TopicEventResponse> {
        ServerResponse(message: try self.app().onTopicEvent(request))
    }

    func listInputBindings(request: ServerRequest<Google_Protobuf_Empty>, context: ServerContext) async throws -> ServerResponse<Dapr_Proto_Runtime_V1_ListInputBindingsResponse> {
        ServerResponse(message: try self.app().listInputBindings())
    }

    func onBindingEvent(request: ServerRequest<Dapr_Proto_Runtime_V1_BindingEventRequest>, context: ServerContext) async throws -> ServerResponse<Dapr_Proto_Runtime_V1_BindingEventResponse> {
        ServerResponse(message: self.app().onBindingEvent(request))
    }

    func onBulkTopicEvent(request: ServerRequest<Dapr_Proto_Runtime_V1_TopicEventBulkRequest>, context: ServerContext) async throws -> ServerResponse<Dapr_Proto_Runtime_V1_TopicEventBulkResponse> {
        ServerResponse(message: try await self.app().onBulk(request, alpha: false))
    }

    func onJobEvent(request: ServerRequest<Dapr_Proto_Runtime_V1_JobEventRequest>, context: ServerContext) async throws -> ServerResponse<Dapr_Proto_Runtime_V1_JobEventResponse> {
        throw RPCError(code: .unimplemented, message: "no jobs")
    }
}

private struct HealthService: Dapr_Proto_Runtime_V1_AppCallbackHealthCheck.ServiceProtocol {
    let app: @Sendable () -> FakeGRPCApp

    func healthCheck(request: ServerRequest<Google_Protobuf_Empty>, context: ServerContext) async throws -> ServerResponse<Dapr_Proto_Runtime_V1_HealthCheckResponse> {
        ServerResponse(message: try self.app().healthCheck(request))
    }
}

private struct AlphaService: Dapr_Proto_Runtime_V1_AppCallbackAlpha.ServiceProtocol {
    let app: @Sendable () -> FakeGRPCApp

    func onBulkTopicEventAlpha1(request: ServerRequest<Dapr_Proto_Runtime_V1_TopicEventBulkRequest>, context: ServerContext) async throws -> ServerResponse<Dapr_Proto_Runtime_V1_TopicEventBulkResponse> {
        ServerResponse(message: try await self.app().onBulk(request, alpha: true))
    }

    func onJobEventAlpha1(request: ServerRequest<Dapr_Proto_Runtime_V1_JobEventRequest>, context: ServerContext) async throws -> ServerResponse<Dapr_Proto_Runtime_V1_JobEventResponse> {
        throw RPCError(code: .unimplemented, message: "no jobs")
    }
}

extension TestHTTP {
    /// Publishes `body` to `pubsub/topic` through the sidecar's HTTP API.
    func publish(
        _ sidecar: InProcessSidecar,
        pubsub: String = "pubsub",
        topic: String,
        body: String,
        contentType: String = "application/json",
        headers: [(String, String)] = []
    ) async throws -> TestHTTPResponse {
        try await self.request(
            .POST,
            port: sidecar.httpPort,
            "/v1.0/publish/\(pubsub)/\(topic)",
            headers: [("content-type", contentType)] + headers,
            body: Array(body.utf8)
        )
    }
}

extension Dapr_Proto_Runtime_V1_TopicSubscription {
    static func make(
        pubsub: String = "pubsub",
        topic: String,
        rules: [(match: String, path: String)] = [],
        defaultPath: String? = nil,
        deadLetterTopic: String = "",
        metadata: [String: String] = [:]
    ) -> Self {
        var subscription = Self()
        subscription.pubsubName = pubsub
        subscription.topic = topic
        if !rules.isEmpty || defaultPath != nil {
            var routes = Dapr_Proto_Runtime_V1_TopicRoutes()
            routes.rules = rules.map { rule in
                var item = Dapr_Proto_Runtime_V1_TopicRule()
                item.match = rule.match
                item.path = rule.path
                return item
            }
            routes.default = defaultPath ?? ""
            subscription.routes = routes
        }
        subscription.deadLetterTopic = deadLetterTopic
        subscription.metadata = metadata
        return subscription
    }
}

enum Samples {
    static let traceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
}

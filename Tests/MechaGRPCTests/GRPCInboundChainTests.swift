import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import MechaAPI
import MechaCore
import MechaEmbedded
import MechaGRPC
import MechaRuntime
import MechaTesting
import ServiceLifecycle
import SwiftProtobuf
import Testing

/// The inbound chain on the gRPC surface: a real `DaprGRPCServer` on a free port, called by a real
/// client. `spec.api` rules for `grpc` refuse what daprd refuses, with daprd's status; the API
/// token is checked after the lists, as daprd's interceptors are ordered.
@Suite struct GRPCInboundChainTests {
    static let state = APIAccessRule(name: "state", version: "v1", apiProtocol: .grpc)

    @Test func anAllowListRefusesOtherMethodsAsDaprd() async throws {
        let configuration = ConfigurationSpec(apiAllowed: [Self.state, APIAccessRule(name: "metadata", version: "v1", apiProtocol: .http)])
        let chain = InboundChain(apiToken: "t", configuration: configuration, components: ComponentStore())
        try await Self.withServer(chain) { dapr in
            var get = Dapr_Proto_Runtime_V1_GetStateRequest()
            get.storeName = "statestore"
            get.key = "k"
            #expect(try await dapr.getState(get, metadata: ["dapr-api-token": "t"]).data.isEmpty)

            // Not allowed: refused before the token is even looked at.
            for metadata: Metadata in [["dapr-api-token": "t"], [:]] {
                let refused = await #expect(throws: RPCError.self) {
                    _ = try await dapr.getMetadata(Dapr_Proto_Runtime_V1_GetMetadataRequest(), metadata: metadata)
                }
                #expect(refused?.code == .unimplemented)
                #expect(refused?.message == "Not Implemented")
                let info = try Self.errorInfo(refused)
                #expect(info.reason == "Not Implemented")
                #expect(info.domain == "dapr.io")
                #expect(info.metadata == ["http.code": "501", "http.error_message": "requested endpoint is not available"])
            }

            // Allowed, without the token: daprd's Unauthenticated.
            let unauthenticated = await #expect(throws: RPCError.self) { _ = try await dapr.getState(get) }
            #expect(unauthenticated?.code == .unauthenticated)
            #expect(unauthenticated?.message == "Unauthorized")
            #expect(try Self.errorInfo(unauthenticated).metadata == ["http.code": "401", "http.error_message": "missing api token in request metadata"])
            let mismatch = await #expect(throws: RPCError.self) { _ = try await dapr.getState(get, metadata: ["dapr-api-token": "T"]) }
            #expect(try Self.errorInfo(mismatch).metadata["http.error_message"] == "authentication error: api token mismatch")
        }
    }

    @Test func aDenyListRefusesItsMethodsOnly() async throws {
        let chain = InboundChain(apiDenied: [Self.state, APIAccessRule(name: "metadata", version: "v1")])
        try await Self.withServer(chain) { dapr in
            var get = Dapr_Proto_Runtime_V1_GetStateRequest()
            get.storeName = "statestore"
            get.key = "k"
            let refused = await #expect(throws: RPCError.self) { _ = try await dapr.getState(get) }
            #expect(refused?.code == .unimplemented)
            // A rule without a protocol applies to neither surface.
            let metadata = try await dapr.getMetadata(Dapr_Proto_Runtime_V1_GetMetadataRequest())
            #expect(metadata.id == "inbound-app")
        }
    }

    @Test func callsForOtherServicesNeedTheTokenToo() async throws {
        try await Self.withServerAndClient(InboundChain(apiToken: "t")) { _, client in
            let refused = await #expect(throws: RPCError.self) {
                try await client.unary(
                    request: ClientRequest(message: [UInt8](), metadata: ["dapr-app-id": "elsewhere"]),
                    descriptor: MethodDescriptor(fullyQualifiedService: "test.Echo", method: "Unary"),
                    serializer: RawBytes(),
                    deserializer: RawBytes(),
                    options: .defaults
                ) { response in _ = try response.message }
            }
            #expect(refused?.code == .unauthenticated)
            #expect(refused?.message == "Unauthorized")
            let info = try Self.errorInfo(refused)
            #expect(info.metadata["http.error_message"] == "missing api token in request metadata")
        }
    }

    // MARK: Helpers

    static func errorInfo(_ error: RPCError?) throws -> Google_Rpc_ErrorInfo {
        let bytes = try #require(error?.metadata[binaryValues: "grpc-status-details-bin"].first(where: { _ in true }))
        let status = try Google_Rpc_Status(serializedBytes: bytes)
        return try Google_Rpc_ErrorInfo(unpackingAny: try #require(status.details.first))
    }

    static func withServer(
        _ chain: InboundChain,
        _ body: (Dapr_Proto_Runtime_V1_Dapr.Client<HTTP2ClientTransport.Posix>) async throws -> Void
    ) async throws {
        try await self.withServerAndClient(chain) { dapr, _ in try await body(dapr) }
    }

    /// A `DaprGRPCServer` with an in-memory state store and no app, with `chain` as its inbound chain.
    static func withServerAndClient(
        _ chain: InboundChain,
        _ body: (Dapr_Proto_Runtime_V1_Dapr.Client<HTTP2ClientTransport.Posix>, GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Void
    ) async throws {
        var logger = Logger(label: "test.inbound")
        logger.logLevel = .critical
        let identity = SidecarIdentity(appID: "inbound-app", namespace: "default", instanceID: "test", runtimeVersion: "test")
        let components = ComponentStore()
        components.add(InMemoryStateStore(), spec: ComponentSpec(name: "statestore", type: ComponentType(.state, "in-memory")))
        let readiness = Readiness()
        let subscriptions = SubscriptionManager(
            components: components, identity: identity, appChannel: nil, readiness: readiness, declarative: [], logger: logger, now: { WallClock.now() })
        let pubsub = PubSubAPI(components: components, identity: identity, now: { WallClock.now() })
        let api = DaprAPI(
            identity: identity,
            state: StateAPI(components: components, identity: identity, pubsub: pubsub),
            pubsub: pubsub,
            invoke: InvokeAPI(identity: identity, appChannel: nil, remote: NoRemote()),
            bindings: BindingsAPI(components: components),
            secrets: SecretsAPI(components: components, scopes: []),
            lock: LockAPI(components: components, identity: identity),
            conversation: ConversationAPI(components: components),
            configuration: ConfigurationAPI(components: components, appChannel: nil, logger: logger),
            metadata: MetadataAPI(
                identity: identity, components: components, subscriptions: subscriptions, enabledFeatures: [],
                appConnection: AppConnectionProperties(port: 0, protocol: "grpc", channelAddress: "127.0.0.1", maxConcurrency: -1)),
            readiness: readiness,
            shutdown: {}
        )
        let server = DaprGRPCServer(
            api: api, subscriptions: subscriptions, configuration: .init(port: 0, inbound: chain), proxy: nil, logger: logger)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let services = server.makeServices { continuation.yield($0) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for service in services { group.addTask { try await service.run() } }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            defer { group.cancelAll() }
            try await withGRPCClient(
                transport: try HTTP2ClientTransport.Posix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
            ) { client in
                try await body(Dapr_Proto_Runtime_V1_Dapr.Client(wrapping: client), client)
            }
        }
    }
}

/// Remote invocation is not part of these tests.
private struct NoRemote: RemoteInvoker {
    struct NotCalled: Error {}

    func invoke<Output: Sendable>(
        appID: String, namespace: String, request: InvocationRequest, context: InvocationContext, _ handler: (InvocationResponse) async throws -> Output
    ) async throws -> Output {
        throw NotCalled()
    }
}

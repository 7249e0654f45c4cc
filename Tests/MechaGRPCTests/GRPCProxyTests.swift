import GRPCCore
import GRPCNIOTransportHTTP2
import MechaSidecar
import MechaTesting
import Synchronization
import Testing

/// gRPC proxying: any call an app sends to its sidecar with metadata `dapr-app-id` for a service
/// that is not Dapr's reaches the target app through the target's sidecar, unchanged and
/// streaming, with no stubs for the app's service anywhere in the sidecars.
@Suite struct GRPCProxyTests {
    static let chat = MethodDescriptor(fullyQualifiedService: "test.Echo", method: "Chat")
    static let unary = MethodDescriptor(fullyQualifiedService: "test.Echo", method: "Unary")

    @Test func streamingCallReachesTheTargetAppThroughBothSidecars() async throws {
        let home = TestEnvironment.temporaryDirectory("mecha-grpc-proxy")
        defer { TestEnvironment.remove(home) }
        try await RawEchoApp.with { app in
            try await InProcessSidecar.with(appID: "beta", appPort: app.port, configure: { $0.mechaHome = home }) { beta in
                try await InProcessSidecar.with(appID: "alpha", appProtocol: .http, configure: { $0.mechaHome = home }) { alpha in
                    try await Self.withClient(port: alpha.grpcPort) { client in
                        // Name resolution may need a moment to see beta's registration.
                        var replies: [String] = []
                        var trailers: Metadata = [:]
                        let deadline = ContinuousClock.now + .seconds(10)
                        repeat {
                            do {
                                (replies, trailers) = try await Self.chat(client, target: "beta", messages: ["one", "two", "three"])
                            } catch {
                                try await Task.sleep(for: .milliseconds(100))
                            }
                        } while replies.isEmpty && ContinuousClock.now < deadline
                        #expect(replies == ["ONE", "TWO", "THREE"])
                        #expect(trailers[stringValues: "x-echo-count"].first { _ in true } == "3")
                        let call = try #require(app.calls.last)
                        #expect(call.metadata[stringValues: "dapr-caller-app-id"].first { _ in true } == "alpha")
                        #expect(call.metadata[stringValues: "x-user"].first { _ in true } == "kept")
                        #expect(call.metadata[stringValues: "x-mecha-target-app"].first { _ in true } == nil)

                        // The app's own error status comes back unchanged.
                        let error = await #expect(throws: RPCError.self) {
                            _ = try await Self.unaryCall(client, target: "beta", body: "fail")
                        }
                        #expect(error?.code == .failedPrecondition)
                        #expect(error?.message == "refused by the app")
                    }
                    // The target's own sidecar proxies to its app too.
                    let direct = try await Self.withClient(port: beta.grpcPort) { client in
                        try await Self.unaryCall(client, target: "beta", body: "self")
                    }
                    #expect(direct == "SELF")
                }
            }
        }
    }

    @Test func unknownTargetsAndNonGRPCAppsAreRefused() async throws {
        try await InProcessSidecar.with(appID: "lonely", appProtocol: .http) { sidecar in
            try await Self.withClient(port: sidecar.grpcPort) { client in
                let unknown = await #expect(throws: RPCError.self) { _ = try await Self.unaryCall(client, target: "nobody", body: "x") }
                #expect(unknown?.code == .unavailable)
                #expect(unknown?.message.contains("couldn't find service: nobody") == true)
                let notGRPC = await #expect(throws: RPCError.self) { _ = try await Self.unaryCall(client, target: "lonely", body: "x") }
                #expect(notGRPC?.code == .unavailable)
                #expect(notGRPC?.message.contains("--app-protocol grpc") == true)
            }
        }
    }

    @Test func theAPITokenIsRequiredForProxiedCalls() async throws {
        try await RawEchoApp.with { app in
            try await InProcessSidecar.with(appID: "guarded", appPort: app.port, environment: ["DAPR_API_TOKEN": "secret"]) { sidecar in
                try await Self.withClient(port: sidecar.grpcPort) { client in
                    let refused = await #expect(throws: RPCError.self) { _ = try await Self.unaryCall(client, target: "guarded", body: "x") }
                    #expect(refused?.code == .unauthenticated)
                    #expect(try await Self.unaryCall(client, target: "guarded", body: "ok", token: "secret") == "OK")
                    let call = try #require(app.calls.last)
                    #expect(call.metadata[stringValues: "dapr-api-token"].first { _ in true } == nil, "the caller's token stays at the sidecar")
                }
            }
        }
    }

    // MARK: Helpers

    static func withClient<Output: Sendable>(port: Int, _ body: (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Output) async throws -> Output {
        try await withGRPCClient(
            transport: try HTTP2ClientTransport.Posix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext),
            handleClient: body
        )
    }

    static func chat(_ client: GRPCClient<HTTP2ClientTransport.Posix>, target: String, messages: [String]) async throws -> ([String], Metadata) {
        var metadata = Metadata()
        metadata.addString(target, forKey: "dapr-app-id")
        metadata.addString("kept", forKey: "x-user")
        let request = StreamingClientRequest<[UInt8]>(metadata: metadata) { writer in
            for message in messages { try await writer.write(Array(message.utf8)) }
        }
        return try await client.bidirectionalStreaming(
            request: request,
            descriptor: Self.chat,
            serializer: RawBytes(),
            deserializer: RawBytes(),
            options: .defaults
        ) { response in
            var replies: [String] = []
            var trailers: Metadata = [:]
            for try await part in response.bodyParts {
                switch part {
                case .message(let bytes): replies.append(String(decoding: bytes, as: UTF8.self))
                case .trailingMetadata(let metadata): trailers = metadata
                }
            }
            return (replies, trailers)
        }
    }

    static func unaryCall(_ client: GRPCClient<HTTP2ClientTransport.Posix>, target: String, body: String, token: String? = nil) async throws -> String {
        var metadata = Metadata()
        metadata.addString(target, forKey: "dapr-app-id")
        if let token { metadata.addString(token, forKey: "dapr-api-token") }
        return try await client.unary(
            request: ClientRequest(message: Array(body.utf8), metadata: metadata),
            descriptor: Self.unary,
            serializer: RawBytes(),
            deserializer: RawBytes(),
            options: .defaults
        ) { response in String(decoding: try response.message, as: UTF8.self) }
    }
}

/// Messages as raw bytes: the proxy must not need to know them, and neither does this test.
struct RawBytes: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}

/// A gRPC app with a service no sidecar has stubs for: `test.Echo/Chat` (bidirectional, upper-cases
/// each message, trailer `x-echo-count`) and `test.Echo/Unary` (upper-cases; "fail" fails).
final class RawEchoApp: Sendable {
    struct Call: Sendable {
        var method: String
        var metadata: Metadata
    }

    let port: Int
    private let recorded = Mutex<[Call]>([])

    init(port: Int) {
        self.port = port
    }

    var calls: [Call] { self.recorded.withLock { $0 } }

    func record(_ method: String, _ metadata: Metadata) {
        self.recorded.withLock { $0.append(Call(method: method, metadata: metadata)) }
    }

    struct Service: RegistrableRPCService {
        let app: @Sendable () -> RawEchoApp

        func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
            let app = self.app
            router.registerHandler(forMethod: GRPCProxyTests.chat, deserializer: RawBytes(), serializer: RawBytes()) { request, _ in
                app().record("Chat", request.metadata)
                return StreamingServerResponse { writer in
                    var count = 0
                    for try await message in request.messages {
                        count += 1
                        try await writer.write(Array(String(decoding: message, as: UTF8.self).uppercased().utf8))
                    }
                    var trailers = Metadata()
                    trailers.addString("\(count)", forKey: "x-echo-count")
                    return trailers
                }
            }
            router.registerHandler(forMethod: GRPCProxyTests.unary, deserializer: RawBytes(), serializer: RawBytes()) { request, _ in
                app().record("Unary", request.metadata)
                guard let single = try? await ServerRequest(stream: request) else {
                    return StreamingServerResponse(error: RPCError(code: .invalidArgument, message: "expected one message"))
                }
                let text = String(decoding: single.message, as: UTF8.self)
                if text == "fail" {
                    return StreamingServerResponse(error: RPCError(code: .failedPrecondition, message: "refused by the app"))
                }
                return StreamingServerResponse(single: ServerResponse(message: Array(text.uppercased().utf8)))
            }
        }
    }

    static func with<Output: Sendable>(_ body: (RawEchoApp) async throws -> Output) async throws -> Output {
        let transport = HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext)
        let holder = Mutex<RawEchoApp?>(nil)
        let server = GRPCServer(transport: transport, services: [Service(app: { holder.withLock { $0! } })])
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            let address = try await transport.listeningAddress
            let app = RawEchoApp(port: address.ipv4?.port ?? 0)
            holder.withLock { $0 = app }
            defer {
                server.beginGracefulShutdown()
                group.cancelAll()
            }
            return try await body(app)
        }
    }
}

public import MechaAPI
import MechaCore
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// The HTTP front door as one function of bytes, for the fuzzer (`Fuzz/`, `scripts/fuzz`): NIO's
/// HTTP/1.1 request parser, the conversion to HTTP types, the Dapr route table, both fast-path
/// routers and the method normalization, each checked against what must always hold.
@_spi(Fuzzing)
public enum HTTPFuzzEntry {
    /// Feeds `bytes` to a server-side HTTP/1.1 pipeline and runs every request head it yields
    /// through the routing code. Traps when an invariant breaks.
    public static func run(_ bytes: UnsafeRawBufferPointer) {
        let channel = EmbeddedChannel()
        let heads = HeadCollector()
        do {
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
            try channel.pipeline.syncOperations.addHandler(heads)
            try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
        } catch {
            preconditionFailure("pipeline setup: \(error)")
        }
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        _ = try? channel.writeInbound(buffer)
        while (try? channel.readInbound(as: NIOHTTPTypes.HTTPRequestPart.self)) != nil {}
        _ = try? channel.finish(acceptAlreadyClosed: true)
        for head in heads.heads { self.route(head) }
    }

    static let identity = SidecarIdentity(appID: "app", namespace: "default", instanceID: "fuzz", runtimeVersion: "fuzz")
    static let invoke = InvokeAPI(identity: identity, appChannel: nil, remote: FuzzRemote())
    static let publicRouter = PublicFastInvokeRouter(
        appID: "app", namespace: "default", app: DirectAppTarget(host: "127.0.0.1", port: 1, apiToken: "app-token"),
        invoke: invoke, inbound: InboundChain(apiToken: "api-token"), bodyLimit: 4 << 20)
    static let internalRouter = InternalFastInvokeRouter(
        appID: "app", app: DirectAppTarget(host: "127.0.0.1", port: 1, apiToken: nil), peers: .token(PeerToken("peer-token")),
        invoke: invoke, bodyLimit: 4 << 20)

    static func route(_ head: HTTPRequestHead) {
        let target = DaprHTTPServer.originForm(head.uri)
        let (path, _) = DaprHTTPServer.split(target)
        let route = DaprRoute.match(method: head.method.rawValue, path: String(path))
        if case .invoke(_, let method) = route { self.checkNormalization(method) }
        if head.uri.first == "/" { self.checkNormalization(String(path.dropFirst())) }

        if let plan = self.publicRouter.plan(for: head) {
            precondition(head.headers["dapr-api-token"].contains("api-token"), "fast path taken without the API token")
            self.checkUpstream(plan.head)
            precondition(!plan.head.headers.contains(where: { HeaderNames.isInternal($0.name) }) || plan.isSidecarHop,
                "a caller's x-mecha-* header reached the app")
        }
        if let plan = self.internalRouter.plan(for: head) {
            precondition(head.headers[PeerToken.header].contains("peer-token"), "internal fast path taken without the peer token")
            precondition(!plan.head.headers.contains(where: { HeaderNames.isInternal($0.name) }), "x-mecha-* header reached the app")
        }
    }

    /// The method an upstream request carries is normalized: no dot segments, one leading slash.
    static func checkUpstream(_ head: HTTPRequestHead) {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        precondition(path.first == "/", "upstream path \(head.uri) is not absolute")
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        precondition(!segments.contains(".."), "upstream path \(head.uri) climbs out of the app")
    }

    static func checkNormalization(_ raw: String) {
        guard case .success(let once) = InvocationMethod.normalize(raw) else { return }
        precondition(!once.split(separator: "/").contains(".."), "normalized method \(once) keeps ..")
        precondition(once.first != "/", "normalized method \(once) starts with a slash")
        guard case .success(let twice) = InvocationMethod.normalize(once) else {
            preconditionFailure("normalized method \(once) is refused when normalized again")
        }
        precondition(once == twice, "normalization is not idempotent: \(raw) → \(once) → \(twice)")
    }
}

/// Keeps the NIO request heads as they pass.
private final class HeadCollector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    var heads: [HTTPRequestHead] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = self.unwrapInboundIn(data) { self.heads.append(head) }
        context.fireChannelRead(data)
    }
}

/// Knows one other app ("other") on a fixed hop; never sends anything.
private struct FuzzRemote: RemoteInvoker, DirectHopProvider {
    struct NotCalled: Error {}

    func invoke<Output: Sendable>(
        appID: String, namespace: String, request: InvocationRequest, context: InvocationContext, _ handler: (InvocationResponse) async throws -> Output
    ) async throws -> Output {
        throw NotCalled()
    }

    func directHop(appID: String, namespace: String) -> DirectHop? {
        appID == "other" && namespace == "default" ? DirectHop(host: "127.0.0.1", port: 2, headers: [("x-mecha-hop", "1")]) : nil
    }
}

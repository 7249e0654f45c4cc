public import Logging
public import MechaIdentity
public import NIOCore
import NIOHTTP1
public import NIOPosix
import NIOSSL

/// `mecha control-plane`'s listener: HTTP/1.1 over TLS 1.3 with the control plane's own SVID
/// (`spiffe://<trust domain>/ns/mecha-system/control-plane`, renewed like a sidecar's). A client
/// certificate is asked for but optional: sidecars come without one to get their first (with a
/// join token), and present it for the registry.
public final class ControlPlaneServer: Sendable {
    let service: ControlPlaneAPI
    let tls: MeshTLS
    let logger: Logger
    /// Largest request body accepted (a CSR is well under 2 KiB).
    static let maximumBody = 64 * 1024

    public init(service: ControlPlaneAPI, tls: MeshTLS, logger: Logger) {
        self.service = service
        self.tls = tls
        self.logger = logger
    }

    /// Binds `host:port`; the returned channel's close future ends the server.
    public func bind(host: String, port: Int) async throws -> any Channel {
        let tls = self.tls
        let service = self.service
        return try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // A client that sends nothing for 10 s (a slow or stuck one) is cut off.
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .seconds(10)))
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.serverContextWithOptionalClientAuth))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(SigningHandler(service: service, tls: tls))
                }
            }
            .bind(host: host, port: port).get()
    }
}

/// One request at a time per connection: collects it (bounded), answers it, closes.
final class SigningHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let service: ControlPlaneAPI
    let tls: MeshTLS
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false

    init(service: ControlPlaneAPI, tls: MeshTLS) {
        self.service = service
        self.tls = tls
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.body = []
        case .body(var buffer):
            if self.body.count + buffer.readableBytes > ControlPlaneServer.maximumBody {
                self.tooLarge = true
            } else if let bytes = buffer.readBytes(length: buffer.readableBytes) {
                self.body += bytes
            }
        case .end:
            guard let head = self.head else { return }
            let loop = context.eventLoop
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            if self.tooLarge {
                self.respond(ControlPlaneAPI.error(413, "ERR_REQUEST_TOO_LARGE", "the request body is over 64 KiB"), context: context)
                return
            }
            let service = self.service
            let body = self.body
            let parts = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
            let path = String(parts.first ?? "")
            let query = parts.count > 1 ? String(parts[1]) : ""
            let peer = (try? context.pipeline.syncOperations.nioSSL_peerCertificate()).flatMap { $0 }.flatMap(self.tls.peerID(of:))
            Task {
                let answer = await service.handle(
                    method: head.method.rawValue, path: path, query: query, authorization: head.headers.first(name: "authorization"), peer: peer, body: body)
                loop.execute {
                    let (handler, context) = bound.value
                    handler.respond(answer, context: context)
                }
            }
        }
    }

    func respond(_ answer: ControlPlaneAPI.Answer, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(answer.body.count))
        headers.add(name: "connection", value: "close")
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: answer.status), headers: headers))), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: answer.body)))), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

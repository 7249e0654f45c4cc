import MechaIdentity
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// Keep-alive HTTP/1.1 connections from the fast path to apps and other sidecars. One pool per
/// event loop, used only on that loop: a request is proxied without leaving the thread its caller's
/// connection lives on, and without locks.
final class UpstreamPool {
    struct Key: Hashable {
        var host: String
        var port: Int
        /// Mutual TLS with the sidecar's SVID (a sidecar that listens with mTLS).
        var secure = false
        /// The app the server must prove to be (`MeshTLS.peer`), for a secure key.
        var peer: String? = nil
    }

    let eventLoop: any EventLoop
    private var idle: [Key: [UpstreamConnection]] = [:]
    private var sweeping = false
    static let maxIdlePerKey = 256
    static let idleTimeout: TimeAmount = .seconds(60)
    static let connectTimeout: TimeAmount = .seconds(5)

    private init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    private static let pools = Mutex<[ObjectIdentifier: NIOLoopBound<UpstreamPool>]>([:])

    /// The pool of `eventLoop` (created on first use). Call on that loop.
    static func forLoop(_ eventLoop: any EventLoop) -> UpstreamPool {
        eventLoop.preconditionInEventLoop()
        let key = ObjectIdentifier(eventLoop)
        return self.pools.withLock { pools in
            if let pool = pools[key] { return pool.value }
            let pool = UpstreamPool(eventLoop: eventLoop)
            pools[key] = NIOLoopBound(pool, eventLoop: eventLoop)
            return pool
        }
    }

    /// An idle connection to `key` (the most recently used), if there is one.
    func takeIdle(_ key: Key) -> UpstreamConnection? {
        while var list = self.idle[key], let connection = list.popLast() {
            self.idle[key] = list.isEmpty ? nil : list
            if connection.channel.isActive {
                connection.uses += 1
                return connection
            }
        }
        return nil
    }

    /// A new connection to `key`; a secure key's connection presents `tls`'s SVID.
    func connect(_ key: Key, tls: MeshTLS? = nil) -> EventLoopFuture<UpstreamConnection> {
        if key.secure && tls == nil { return self.eventLoop.makeFailedFuture(NoIdentity()) }
        let secureTLS = key.secure ? tls : nil
        let bootstrap = ClientBootstrap(group: self.eventLoop)
            .connectTimeout(Self.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // The request waits in the TLS handler until the handshake is over.
                    if let secureTLS { try channel.pipeline.syncOperations.addHandler(try secureTLS.makeClientHandler(expecting: key.peer)) }
                    // Headers come from a parsed request and our own names: validated already.
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(enableOutboundHeaderValidation: false)
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler())
                }
            }
        let connected: EventLoopFuture<any Channel>
        if let address = try? SocketAddress(ipAddress: key.host, port: key.port) {
            connected = bootstrap.connect(to: address)
        } else {
            connected = bootstrap.connect(host: key.host, port: key.port)
        }
        return connected.flatMapThrowing { channel in
            let handler = try channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
            let connection = UpstreamConnection(key: key, channel: channel, handler: handler)
            handler.connection = connection
            return connection
        }
    }

    struct NoIdentity: Error, CustomStringConvertible {
        var description: String { "the target sidecar requires mTLS and this sidecar has no identity" }
    }

    /// Takes back a connection whose exchange completed cleanly.
    func release(_ connection: UpstreamConnection) {
        guard connection.channel.isActive else { return }
        var list = self.idle[connection.key, default: []]
        guard list.count < Self.maxIdlePerKey else {
            connection.channel.close(promise: nil)
            return
        }
        connection.idleSince = .now()
        list.append(connection)
        self.idle[connection.key] = list
        self.scheduleSweep()
    }

    /// An idle connection the server closed.
    func forget(_ connection: UpstreamConnection) {
        guard var list = self.idle[connection.key], let index = list.firstIndex(where: { $0 === connection }) else { return }
        list.remove(at: index)
        self.idle[connection.key] = list.isEmpty ? nil : list
    }

    private func scheduleSweep() {
        guard !self.sweeping else { return }
        self.sweeping = true
        let bound = NIOLoopBound(self, eventLoop: self.eventLoop)
        self.eventLoop.scheduleTask(in: .seconds(5)) {
            bound.value.sweep()
        }
    }

    private func sweep() {
        self.sweeping = false
        let cutoff = NIODeadline.now() - Self.idleTimeout
        for (key, list) in self.idle {
            let (expired, kept) = (list.filter { $0.idleSince < cutoff }, list.filter { $0.idleSince >= cutoff })
            for connection in expired { connection.channel.close(promise: nil) }
            self.idle[key] = kept.isEmpty ? nil : kept
        }
        if !self.idle.isEmpty { self.scheduleSweep() }
    }
}

/// One upstream connection and the exchange it serves.
final class UpstreamConnection {
    let key: UpstreamPool.Key
    let channel: any Channel
    let handler: UpstreamHandler
    /// Requests sent before the current one (0 on a fresh connection).
    var uses = 0
    var idleSince = NIODeadline.now()

    init(key: UpstreamPool.Key, channel: any Channel, handler: UpstreamHandler) {
        self.key = key
        self.channel = channel
        self.handler = handler
    }
}

/// Receives what an upstream exchange produces.
protocol UpstreamDelegate: AnyObject {
    func upstreamHead(_ head: HTTPResponseHead)
    func upstreamBody(_ body: ByteBuffer)
    func upstreamEnd()
    func upstreamReadComplete()
    /// The connection failed or closed before the exchange ended; `responseStarted` tells whether
    /// any of the response had arrived.
    func upstreamFailed(_ error: any Error, responseStarted: Bool)
}

/// The last handler of an upstream connection: hands response parts to the current exchange.
final class UpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    weak var connection: UpstreamConnection?
    /// The exchange in progress; nil while the connection is idle in the pool.
    var delegate: (any UpstreamDelegate)?
    private var responseStarted = false
    private var lastError: (any Error)?

    struct ClosedByServer: Error, CustomStringConvertible {
        var description: String { "connection closed by the server" }
    }

    func begin(_ delegate: any UpstreamDelegate) {
        self.delegate = delegate
        self.responseStarted = false
        self.lastError = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let delegate = self.delegate else { return }
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            // 1xx answers precede the real one.
            if head.status.code >= 100 && head.status.code < 200 && head.status != .switchingProtocols { return }
            self.responseStarted = true
            delegate.upstreamHead(head)
        case .body(let body):
            delegate.upstreamBody(body)
        case .end:
            self.delegate = nil
            delegate.upstreamEnd()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.delegate?.upstreamReadComplete()
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.lastError = error
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let delegate = self.delegate {
            self.delegate = nil
            delegate.upstreamFailed(self.lastError ?? ClosedByServer(), responseStarted: self.responseStarted)
        } else if let connection = self.connection {
            UpstreamPool.forLoop(context.eventLoop).forget(connection)
        }
        context.fireChannelInactive()
    }
}

public import GRPCCore
public import GRPCNIOTransportHTTP2
public import MechaIdentity
import NIOCore
import NIOSSL
import Synchronization

/// HTTP/2 client transports by address, shared by everything that calls out over gRPC (proxied
/// calls to other sidecars and to the app). Each transport's connections live in `run()`; a
/// transport asked for before `run()` starts waits until it does.
public final class GRPCTransportPool: Sendable {
    private struct State {
        var transports: [String: HTTP2ClientTransport.Posix] = [:]
        var running = false
        var stopped = false
    }

    private let state = Mutex(State())
    private let starts: AsyncStream<HTTP2ClientTransport.Posix>
    private let startContinuation: AsyncStream<HTTP2ClientTransport.Posix>.Continuation
    let maxMessageSize: Int
    /// The sidecar's mTLS identity, for `secure` transports (to sidecars that listen with mTLS).
    let tls: MeshTLS?

    public init(maxMessageSize: Int = 4 << 20, tls: MeshTLS? = nil) {
        self.maxMessageSize = maxMessageSize
        self.tls = tls
        (self.starts, self.startContinuation) = AsyncStream.makeStream(of: HTTP2ClientTransport.Posix.self)
    }

    /// The transport for `host:port`, created (and connected in the background) on first use.
    /// A `secure` one speaks mutual TLS with the sidecar's SVID (each new connection takes the
    /// current one).
    /// `peer` (`MeshTLS.peer`): the app a secure transport's server must prove to be; transports
    /// are kept per peer.
    public func transport(host: String, port: Int, secure: Bool = false, peer: String? = nil) throws -> HTTP2ClientTransport.Posix {
        let key = "\(secure ? "mtls" : "plain")://\(host):\(port)/\(peer ?? "")"
        let tls = self.tls
        if secure && tls == nil {
            throw RPCError(code: .unavailable, message: "the target sidecar accepts only mTLS connections, and this sidecar runs with mTLS disabled")
        }
        return try self.state.withLock { state in
            guard !state.stopped else { throw RPCError(code: .unavailable, message: "the sidecar is shutting down") }
            if let existing = state.transports[key] { return existing }
            var config = HTTP2ClientTransport.Posix.Config.defaults
            config.http2.maxFrameSize = 1 << 20
            if secure, let tls {
                config.channelDebuggingCallbacks.onCreateTCPConnection = { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(try tls.makeClientHandler(expecting: peer), position: .first)
                    }
                }
            }
            let transport = try HTTP2ClientTransport.Posix(
                target: host.contains(":") ? .ipv6(host: host, port: port) : .ipv4(host: host, port: port),
                transportSecurity: secure ? .customSecure : .plaintext,
                config: config
            )
            state.transports[key] = transport
            self.startContinuation.yield(transport)
            return transport
        }
    }

    /// Hosts the transports' connections until `shutdown()`.
    public func run() async {
        await withDiscardingTaskGroup { group in
            for await transport in self.starts {
                group.addTask { try? await transport.connect() }
            }
        }
    }

    /// Closes every transport gracefully; `run()` returns once their calls have ended.
    public func shutdown() {
        let transports = self.state.withLock { state -> [HTTP2ClientTransport.Posix] in
            state.stopped = true
            return Array(state.transports.values)
        }
        for transport in transports { transport.beginGracefulShutdown() }
        self.startContinuation.finish()
    }
}

import MechaIdentity
import NIOCore
import NIOHTTP1
import NIOSSL

/// On the mTLS sidecar-to-sidecar listener, right after the HTTP/1 decoder: every request's
/// `dapr-caller-app-id` and `dapr-caller-namespace` are set from the peer's verified SVID, never
/// taken from the caller (whatever it sent is dropped). A certificate without a usable SPIFFE id
/// leaves them absent, so access control sees an unknown caller.
final class PeerIdentityHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    static let callerAppHeader = "dapr-caller-app-id"
    static let callerNamespaceHeader = "dapr-caller-namespace"

    let tls: MeshTLS
    /// Worked out on the connection's first request (the handshake is over by then).
    private var peer: SPIFFEID??

    init(tls: MeshTLS) {
        self.tls = tls
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var head) = self.unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        let peer: SPIFFEID?
        if let known = self.peer {
            peer = known
        } else {
            peer = (try? context.pipeline.syncOperations.nioSSL_peerCertificate()).flatMap { $0.flatMap(self.tls.peerID(of:)) }
            self.peer = .some(peer)
        }
        Self.stamp(&head.headers, with: peer)
        context.fireChannelRead(self.wrapInboundOut(.head(head)))
    }

    /// Replaces the caller headers with `peer`'s app id and namespace.
    static func stamp(_ headers: inout HTTPHeaders, with peer: SPIFFEID?) {
        headers.remove(name: Self.callerAppHeader)
        headers.remove(name: Self.callerNamespaceHeader)
        if let peer {
            headers.add(name: Self.callerAppHeader, value: peer.appID)
            headers.add(name: Self.callerNamespaceHeader, value: peer.namespace)
        }
    }
}

import Foundation
@testable import MechaIdentity
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization
import Testing
import X509

/// Real TLS 1.3 handshakes over 127.0.0.1 between `MeshTLS` identities: who gets through, what
/// the server learns about the peer, and what it counts when it refuses one.
@Suite struct MeshTLSTests {
    static func identity(_ app: String, ca: WorkloadCA) async throws -> MeshTLS {
        try await MeshTLS.start(id: SPIFFEID(trustDomain: ca.trustDomain, namespace: "default", appID: app), issuer: LocalIssuer(ca: ca))
    }

    /// Issues certificates that expired an hour ago.
    struct ExpiredIssuer: SVIDIssuer {
        let ca: WorkloadCA
        func issue(csr: CertificateSigningRequest, for id: SPIFFEID, ttl: Duration) async throws -> (chain: [Certificate], bundle: TrustBundle) {
            let leaf = try self.ca.issue(csr: csr, for: id, ttl: .seconds(60), skew: .zero, now: Date() - 3600)
            return ([leaf], try TrustBundle(trustDomain: self.ca.trustDomain, roots: [self.ca.root]))
        }
    }

    /// A server that answers each handshake with the peer's SPIFFE id (or "-") and closes.
    final class Server: Sendable {
        let channel: any Channel
        init(tls: MeshTLS) async throws {
            self.channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try tls.addServerHandlers(to: channel)
                        try channel.pipeline.syncOperations.addHandler(AnnouncePeer(tls: tls))
                    }
                }
                .bind(host: "127.0.0.1", port: 0).get()
        }
        var port: Int { self.channel.localAddress?.port ?? 0 }
        func close() async { try? await self.channel.close() }
    }

    final class AnnouncePeer: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let tls: MeshTLS
        init(tls: MeshTLS) { self.tls = tls }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            guard case .handshakeCompleted? = event as? TLSUserEvent else { return }
            let peer = (try? context.pipeline.syncOperations.nioSSL_peerCertificate()).flatMap { $0.flatMap(self.tls.peerID(of:)) }
            let text = peer.map(\.description) ?? "-"
            context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: text))).whenComplete { _ in context.close(promise: nil) }
        }
    }

    /// Collects what the server sends until it closes.
    final class Collect: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let text = Mutex("")
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = self.unwrapInboundIn(data)
            let chunk = buffer.readString(length: buffer.readableBytes) ?? ""
            self.text.withLock { $0 += chunk }
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }

    /// Connects with `context` and returns what the server said ("" when it refused us).
    static func call(_ port: Int, context: NIOSSLContext?) async throws -> String {
        let collect = Collect()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context { try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil)) }
                    try channel.pipeline.syncOperations.addHandler(collect)
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        if context == nil {
            // Plaintext: say something that is not a ClientHello.
            try await channel.writeAndFlush(channel.allocator.buffer(string: "GET / HTTP/1.1\r\nhost: x\r\n\r\n"))
        }
        try await channel.closeFuture.get()
        return collect.text.withLock { $0 }
    }

    static func waitForRefusal(_ tls: MeshTLS, _ reason: String, count: Int = 1) async -> Bool {
        for _ in 0..<100 {
            if tls.refusedHandshakes[reason, default: 0] >= count { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    @Test func peersOfOneCAKnowEachOtherByTheirCertificates() async throws {
        let ca = try WorkloadCA.create(trustDomain: "public")
        let shipping = try await Self.identity("shipping", ca: ca)
        let orders = try await Self.identity("orders", ca: ca)
        let server = try await Server(tls: shipping)
        #expect(try await Self.call(server.port, context: orders.clientContext) == "spiffe://public/ns/default/orders")
        #expect(shipping.refusedHandshakes.isEmpty)
        await server.close()
    }

    @Test func aPeerWithoutACertificateIsRefusedAndCounted() async throws {
        let ca = try WorkloadCA.create(trustDomain: "public")
        let shipping = try await Self.identity("shipping", ca: ca)
        let server = try await Server(tls: shipping)
        var anonymous = TLSConfiguration.makeClientConfiguration()
        anonymous.certificateVerification = .none
        #expect(try await Self.call(server.port, context: NIOSSLContext(configuration: anonymous)) == "")
        #expect(await Self.waitForRefusal(shipping, "no_certificate"))
        // Plaintext is refused too.
        #expect(try await Self.call(server.port, context: nil) == "")
        #expect(await Self.waitForRefusal(shipping, "not_tls"))
        await server.close()
    }

    @Test func aPeerOfAnotherCAIsRefusedAndCounted() async throws {
        let shipping = try await Self.identity("shipping", ca: WorkloadCA.create(trustDomain: "public"))
        // Same trust domain name, same app id, another root: not trusted.
        let impostor = try await Self.identity("orders", ca: WorkloadCA.create(trustDomain: "public"))
        let server = try await Server(tls: shipping)
        #expect(try await Self.call(server.port, context: impostor.clientContext) == "")
        #expect(await Self.waitForRefusal(shipping, "untrusted_certificate"))
        await server.close()
    }

    @Test func anExpiredCertificateIsRefused() async throws {
        let ca = try WorkloadCA.create(trustDomain: "public", now: Date() - 86_400)
        let shipping = try await Self.identity("shipping", ca: ca)
        let expired = try await MeshTLS.start(id: SPIFFEID(trustDomain: "public", namespace: "default", appID: "orders"), issuer: ExpiredIssuer(ca: ca))
        #expect(expired.svid.notAfter < Date())
        let server = try await Server(tls: shipping)
        #expect(try await Self.call(server.port, context: expired.clientContext) == "")
        #expect(await Self.waitForRefusal(shipping, "untrusted_certificate"))
        await server.close()
    }

    @Test func aRenewedCertificateServesNewConnections() async throws {
        let ca = try WorkloadCA.create(trustDomain: "public")
        let shipping = try await Self.identity("shipping", ca: ca)
        let orders = try await Self.identity("orders", ca: ca)
        let before = shipping.svid.leaf.serialNumber
        let server = try await Server(tls: shipping)
        try await shipping.renew()
        try await orders.renew()
        #expect(shipping.svid.leaf.serialNumber != before)
        #expect(try await Self.call(server.port, context: orders.clientContext) == "spiffe://public/ns/default/orders")
        await server.close()
    }

    @Test func sidecarsStartingTogetherAgreeOnOneCA() async throws {
        let home = FileManager.default.temporaryDirectory.path + "/mecha-ca-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: home) }
        let directory = home + "/ca/public"
        let roots = await withTaskGroup(of: String?.self) { group in
            for _ in 0..<8 {
                group.addTask { try? WorkloadCA.loadOrCreate(directory: directory, trustDomain: "public").rootPEM }
            }
            var roots: [String?] = []
            for await root in group { roots.append(root) }
            return roots
        }
        #expect(roots.allSatisfy { $0 != nil })
        #expect(Set(roots.compactMap { $0 }).count == 1)
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/ca.key.pem")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        // Nothing left behind by the losers.
        #expect(try FileManager.default.contentsOfDirectory(atPath: home + "/ca") == ["public"])
    }
}

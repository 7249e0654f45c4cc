public import Foundation
public import MechaIdentity
import MechaCore
public import NIOCore
public import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization
import SwiftASN1
public import X509

/// A sidecar's SVIDs from `mecha control-plane` (`--control-plane-address`, daprd's
/// `--sentry-address`): each request goes over TLS to the control plane, whose certificate must
/// chain to the trust anchors (`--trust-anchors-file` / `DAPR_TRUST_ANCHORS`) and carry the
/// control plane's SPIFFE id — checked before the join token is sent.
public struct ControlPlaneIssuer: SVIDIssuer {
    /// The control planes to ask, in order (`host:port[,host:port…]`: replicas on one store).
    public let endpoints: [ControlPlaneClient.Endpoint]
    /// The trust anchors, plus the roots of every bundle the control plane has given since (a
    /// root rollover's new root is learnt before it signs anything).
    public let trust: TrustAnchors
    public var anchors: TrustBundle { self.trust.current }
    let token: String
    let timeout: TimeAmount

    public init(address: String, anchors: TrustBundle, token: String, timeout: Duration = .seconds(10)) throws(IdentityError) {
        var endpoints: [ControlPlaneClient.Endpoint] = []
        for part in address.split(separator: ",").map({ $0.trimmingSpaces() }) where !part.isEmpty {
            guard let colon = part.lastIndex(of: ":"), let port = Int(part[part.index(after: colon)...]), (1...65535).contains(port) else {
                throw IdentityError.invalidMaterial("the control plane address must be host:port[,host:port…], found '\(address)'")
            }
            var host = String(part[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            endpoints.append(.init(host: host.isEmpty ? "127.0.0.1" : host, port: port))
        }
        guard !endpoints.isEmpty else { throw IdentityError.invalidMaterial("the control plane address is empty") }
        self.endpoints = endpoints
        self.trust = TrustAnchors(anchors)
        self.token = token
        let (seconds, attoseconds) = timeout.components
        self.timeout = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// A client of the same control planes; with `identity`, the sidecar presents its SVID.
    public func client(identity: MeshTLS? = nil) -> ControlPlaneClient {
        ControlPlaneClient(endpoints: self.endpoints, trust: self.trust, identity: identity, timeout: self.timeout)
    }

    public struct Refused: Error, CustomStringConvertible {
        public var status: Int
        public var message: String
        public var description: String { "the control plane refused the certificate request (\(self.status)): \(self.message)" }
    }

    public func issue(csr: CertificateSigningRequest, for id: SPIFFEID, ttl: Duration) async throws -> (chain: [Certificate], bundle: TrustBundle) {
        let body = try JSONSerialization.data(
            withJSONObject: [
                "csr": try csr.serializeAsPEM().pemString, "appId": id.appID, "namespace": id.namespace, "ttlSeconds": Int(ttl.components.seconds),
            ], options: [.sortedKeys])
        let (status, answer) = try await self.client()
            .request(.POST, "/v1/svid", headers: [("authorization", "Bearer \(self.token)")], body: Array(body))
        let object = (try? JSONSerialization.jsonObject(with: Data(answer))) as? [String: Any]
        guard status == 200 else {
            throw Refused(status: status, message: object?["message"] as? String ?? String(decoding: answer, as: UTF8.self))
        }
        guard let chainText = object?["certificateChain"] as? String, let bundleText = object?["trustBundle"] as? String else {
            throw IdentityError.invalidMaterial("the control plane's answer has no certificateChain or trustBundle")
        }
        let chain = try PEMDocument.parseMultiple(pemString: chainText).map { try Certificate(pemDocument: $0) }
        let bundle = try TrustBundle(trustDomain: id.trustDomain, pem: bundleText, origin: "the control plane's trust bundle")
        // The certificate must verify against the anchors this sidecar was given (or roots the
        // control plane announced since, over a connection verified with them).
        _ = try await self.anchors.verify(chain)
        self.trust.learn(bundle)
        return (chain, bundle)
    }

}

/// One HTTPS request at a time to the control plane: its certificate must chain to `anchors` and
/// carry the control plane's SPIFFE id, checked after the handshake and before anything is sent.
/// With `identity`, the sidecar presents its SVID (the registry).
public final class ControlPlaneClient: Sendable {
    public struct Endpoint: Sendable, Hashable {
        public var host: String
        public var port: Int
    }

    let endpoints: [Endpoint]
    let trust: TrustAnchors
    var anchors: TrustBundle { self.trust.current }
    let identity: MeshTLS?
    let timeout: TimeAmount
    /// The endpoint that answered last: tried first next time.
    private let preferred = Mutex(0)

    public convenience init(endpoints: [Endpoint], anchors: TrustBundle, identity: MeshTLS? = nil, timeout: TimeAmount = .seconds(10)) {
        self.init(endpoints: endpoints, trust: TrustAnchors(anchors), identity: identity, timeout: timeout)
    }

    public init(endpoints: [Endpoint], trust: TrustAnchors, identity: MeshTLS? = nil, timeout: TimeAmount = .seconds(10)) {
        self.endpoints = endpoints
        self.trust = trust
        self.identity = identity
        self.timeout = timeout
    }

    /// Sends the request to the control planes in turn, from the one that answered last, until one
    /// answers (any HTTP status counts as an answer).
    public func request(_ method: HTTPMethod, _ uri: String, headers extra: [(String, String)] = [], body: [UInt8] = []) async throws -> (Int, [UInt8]) {
        let first = self.preferred.withLock { $0 }
        var lastError: (any Error)?
        for offset in 0..<self.endpoints.count {
            let index = (first + offset) % self.endpoints.count
            do {
                let answer = try await self.request(self.endpoints[index], method, uri, headers: extra, body: body)
                self.preferred.withLock { $0 = index }
                return answer
            } catch {
                lastError = error
            }
        }
        throw lastError ?? IdentityError.invalidMaterial("no control plane address")
    }

    func request(_ endpoint: Endpoint, _ method: HTTPMethod, _ uri: String, headers extra: [(String, String)], body: [UInt8]) async throws -> (Int, [UInt8]) {
        let (host, port) = (endpoint.host, endpoint.port)
        let context: NIOSSLContext
        if let identity = self.identity {
            context = identity.clientContext
        } else {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.minimumTLSVersion = .tlsv13
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .certificates(try self.anchors.roots.map(MeshTLS.nioCertificate))
            context = try NIOSSLContext(configuration: configuration)
        }
        let expected = try ControlPlaneAPI.controlPlaneIDText(trustDomain: self.anchors.trustDomain)
        let promise = OnceResult(MultiThreadedEventLoopGroup.singleton.next().makePromise(of: (Int, [UInt8]).self))
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: uri)
        head.headers.add(name: "host", value: "\(host):\(port)")
        for (name, value) in extra { head.headers.add(name: name, value: value) }
        head.headers.add(name: "content-type", value: "application/json")
        head.headers.add(name: "content-length", value: String(body.count))
        let exchange = OneShotExchange(request: head, body: body, expectedPeer: expected, promise: promise)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(self.timeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(exchange)
                    }
                }
                .connect(host: host, port: port).get()
        } catch {
            promise.fail(error)
            throw error
        }
        let timeout = self.timeout
        let timer = channel.eventLoop.scheduleTask(in: timeout) {
            promise.fail(IdentityError.invalidMaterial("the control plane at \(host):\(port) did not answer within \(timeout)"))
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        // A cancelled caller (a watch when the sidecar stops) ends the exchange at once.
        return try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: {
            promise.fail(CancellationError())
            channel.close(promise: nil)
        }
    }
}

/// The roots a sidecar trusts for the control plane and its certificates: the trust anchors it
/// was started with, and the roots of the bundles the control plane gave it since.
public final class TrustAnchors: Sendable {
    private let bundle: Mutex<TrustBundle>

    public init(_ anchors: TrustBundle) {
        self.bundle = Mutex(anchors)
    }

    public var current: TrustBundle { self.bundle.withLock { $0 } }

    func learn(_ other: TrustBundle) {
        guard other.trustDomain == self.current.trustDomain else { return }
        self.bundle.withLock { $0 = $0.merged(with: other) }
    }
}

/// A promise completed once, whoever comes first (the answer, an error, the timer).
final class OnceResult: Sendable {
    let promise: EventLoopPromise<(Int, [UInt8])>
    private let done = Mutex(false)

    init(_ promise: EventLoopPromise<(Int, [UInt8])>) {
        self.promise = promise
    }

    var futureResult: EventLoopFuture<(Int, [UInt8])> { self.promise.futureResult }

    private func claim() -> Bool {
        self.done.withLock { done in
            defer { done = true }
            return !done
        }
    }

    func succeed(_ value: (Int, [UInt8])) { if self.claim() { self.promise.succeed(value) } }
    func fail(_ error: any Error) { if self.claim() { self.promise.fail(error) } }
}

extension ControlPlaneAPI {
    static func controlPlaneIDText(trustDomain: String) throws -> String {
        try Self.controlPlaneID(trustDomain: trustDomain).description
    }
}

/// Sends the request once the handshake succeeded and the server proved it is the control plane;
/// collects the answer.
final class OneShotExchange: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    let request: HTTPRequestHead
    let body: [UInt8]
    let expectedPeer: String
    let promise: OnceResult
    private var status = 0
    private var answer: [UInt8] = []

    init(request: HTTPRequestHead, body: [UInt8], expectedPeer: String, promise: OnceResult) {
        self.request = request
        self.body = body
        self.expectedPeer = expectedPeer
        self.promise = promise
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case .handshakeCompleted? = event as? TLSUserEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        let peer = (try? context.pipeline.syncOperations.nioSSL_peerCertificate()).flatMap { $0 }
        let ids = peer.flatMap { try? $0.toDERBytes() }.flatMap { try? Certificate(derEncoded: $0) }.map(TrustBundle.spiffeIDs(of:)) ?? []
        guard ids.map(\.description) == [self.expectedPeer] else {
            self.promise.fail(IdentityError.untrustedPeer("the server is not the control plane (expected \(self.expectedPeer), found \(ids.map(\.description)))"))
            context.close(promise: nil)
            return
        }
        context.write(self.wrapOutboundOut(.head(self.request)), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: self.body)))), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head): self.status = Int(head.status.code)
        case .body(var buffer): self.answer += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            self.promise.succeed((self.status, self.answer))
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.promise.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.promise.fail(IdentityError.invalidMaterial("the control plane closed the connection before answering"))
        context.fireChannelInactive()
    }
}

public import Foundation
public import NIOCore
public import NIOSSL
public import MechaCore
import NIOTLS
import SwiftASN1
import Synchronization
public import X509

/// Where a sidecar gets its SVIDs: the CA kept in the Mecha home (`LocalIssuer`), or a control
/// plane.
public protocol SVIDIssuer: Sendable {
    /// A certificate chain (leaf first) for the key of `csr`, as `id`, valid for `ttl`; and the
    /// bundle to verify peers with.
    func issue(csr: CertificateSigningRequest, for id: SPIFFEID, ttl: Duration) async throws -> (chain: [Certificate], bundle: TrustBundle)
}

/// Issues SVIDs with a CA the sidecar holds itself (the one in its Mecha home, shared by the
/// sidecars of that home).
public struct LocalIssuer: SVIDIssuer {
    public let ca: WorkloadCA
    public let skew: Duration

    public init(ca: WorkloadCA, skew: Duration = WorkloadCA.defaultSkew) {
        self.ca = ca
        self.skew = skew
    }

    public func issue(csr: CertificateSigningRequest, for id: SPIFFEID, ttl: Duration) async throws -> (chain: [Certificate], bundle: TrustBundle) {
        let leaf = try self.ca.issue(csr: csr, for: id, ttl: ttl, skew: self.skew)
        return ([leaf], try TrustBundle(trustDomain: self.ca.trustDomain, roots: [self.ca.root]))
    }
}

/// A sidecar's mTLS identity for sidecar-to-sidecar traffic: its current SVID and trust bundle
/// as ready-made TLS contexts, renewed before they expire.
///
/// Both ends present their SVID and verify the other's chain against the bundle (TLS 1.3,
/// BoringSSL's verification: a peer without a certificate, with an expired one or one another CA
/// issued fails the handshake). Names are not checked: a peer is known by the SPIFFE id in its
/// certificate (`peerID(of:)`), which must be of this trust domain. Contexts are read per new
/// connection, so a renewed SVID serves new connections while existing ones finish.
public final class MeshTLS: Sendable {
    public let id: SPIFFEID
    let issuer: any SVIDIssuer
    let ttl: Duration

    struct Material: Sendable {
        var svid: SVID
        var bundle: TrustBundle
        /// When it was obtained: renewal is due at 70 % of the time from here to expiry (the
        /// certificate's own start is back-dated by the allowed clock skew).
        var obtained = Date()
        var server: NIOSSLContext
        var client: NIOSSLContext
        /// Serves with the SVID; asks the client for a certificate and verifies it if one comes,
        /// but lets clients without one in (the control plane: sidecars call it before they have one).
        var serverWithOptionalClientAuth: NIOSSLContext
    }

    private let material: Mutex<Material>
    /// Handshakes refused on this sidecar's listeners, by reason (`noteRefused`).
    private let refusals = Mutex<[String: Int]>([:])
    /// Renewals that failed (retried with backoff while the current SVID is valid).
    private let failedRenewals = Atomic<Int>(0)
    /// Called with each new SVID (a sidecar keeps the last one on disk).
    private let renewalObservers = Mutex<[@Sendable (SVID, TrustBundle) -> Void]>([])

    init(id: SPIFFEID, issuer: any SVIDIssuer, ttl: Duration, material: Material) {
        self.id = id
        self.issuer = issuer
        self.ttl = ttl
        self.material = Mutex(material)
    }

    /// Resumes with an SVID obtained earlier (kept on disk while the issuer is away); it is renewed
    /// from `issuer` at once, retried with backoff until the issuer answers.
    public static func resume(id: SPIFFEID, issuer: any SVIDIssuer, ttl: Duration = WorkloadCA.defaultTTL, svid: SVID, bundle: TrustBundle) throws -> MeshTLS {
        guard svid.id == id else { throw IdentityError.invalidMaterial("the kept SVID is for \(svid.id), not \(id)") }
        var material = try Self.material(svid: svid, bundle: bundle)
        // Renewal due now: the kept certificate serves only until a fresh one arrives.
        // (`renewAt` = obtained + 0.7 × (expiry − obtained), solved for a second ago.)
        let expiry = svid.leaf.notValidAfter
        material.obtained = expiry.addingTimeInterval(-(expiry.timeIntervalSince(Date()) + 1) / 0.3)
        return MeshTLS(id: id, issuer: issuer, ttl: ttl, material: material)
    }

    /// How a caller names the app a connection is for (`peer` of `makeClientHandler`).
    public static func peer(appID: String, namespace: String) -> String { "\(namespace)/\(appID)" }

    /// The TLS handler for a connection to another sidecar: presents this SVID, verifies the
    /// server's chain against the bundle, then — secure naming — requires the server's SPIFFE id to
    /// be the app the connection is for (`peer`, from `MeshTLS.peer`), as name resolution named
    /// it. A sidecar answering at an address announced for another app (a stale or forged registry
    /// entry; with mDNS anyone on the LAN can announce) fails the handshake before any request
    /// byte is written, and is counted (`wrong_server_identity`).
    public func makeClientHandler(expecting peer: String?) throws -> NIOSSLClientHandler {
        guard let peer else { return try NIOSSLClientHandler(context: self.clientContext, serverHostname: nil) }
        return try NIOSSLClientHandler._makeSSLClientHandler(context: self.clientContext, serverHostname: nil) { [self] certificate, channel in
            let found = self.peerID(of: certificate)
            guard let found, Self.peer(appID: found.appID, namespace: found.namespace) == peer else {
                self.noteRefused("wrong_server_identity")
                let address = channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
                let parts = peer.split(separator: "/", maxSplits: 1)
                return channel.eventLoop.makeFailedFuture(
                    IdentityError.untrustedPeer(
                        "the sidecar at \(address) is \(found?.description ?? "not of trust domain \(self.id.trustDomain)"), not app \(parts.last ?? "") in namespace \(parts.first ?? "") as name resolution said"))
            }
            return channel.eventLoop.makeSucceededVoidFuture()
        }
    }

    /// Calls `observer` with every SVID obtained from now on.
    public func onRenewal(_ observer: @escaping @Sendable (SVID, TrustBundle) -> Void) {
        self.renewalObservers.withLock { $0.append(observer) }
    }

    /// Asks `issuer` for a first SVID for `id`.
    public static func start(id: SPIFFEID, issuer: any SVIDIssuer, ttl: Duration = WorkloadCA.defaultTTL) async throws -> MeshTLS {
        MeshTLS(id: id, issuer: issuer, ttl: ttl, material: try await Self.obtain(id: id, issuer: issuer, ttl: ttl))
    }

    static func obtain(id: SPIFFEID, issuer: any SVIDIssuer, ttl: Duration) async throws -> Material {
        let (key, csr) = try SVID.request(for: id)
        let (chain, bundle) = try await issuer.issue(csr: csr, for: id, ttl: ttl)
        guard bundle.trustDomain == id.trustDomain else {
            throw IdentityError.invalidMaterial("the issuer's trust bundle is for trust domain '\(bundle.trustDomain)', not '\(id.trustDomain)'")
        }
        let svid = try SVID(id: id, chain: chain, privateKey: key)
        return try Self.material(svid: svid, bundle: bundle)
    }

    static func material(svid: SVID, bundle: TrustBundle) throws -> Material {
        let chain = try svid.chain.map { NIOSSLCertificateSource.certificate(try Self.nioCertificate($0)) }
        let key = try NIOSSLPrivateKey(bytes: Array(try svid.privateKey.serializeAsPEM().pemString.utf8), format: .pem)
        let roots = try bundle.roots.map(Self.nioCertificate)
        var server = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        var client = TLSConfiguration.makeClientConfiguration()
        client.certificateChain = chain
        client.privateKey = .privateKey(key)
        server.minimumTLSVersion = .tlsv13
        client.minimumTLSVersion = .tlsv13
        // Chains are checked against the bundle only; names are SPIFFE ids, checked after.
        server.certificateVerification = .noHostnameVerification
        client.certificateVerification = .noHostnameVerification
        server.trustRoots = .certificates(roots)
        client.trustRoots = .certificates(roots)
        var open = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        open.minimumTLSVersion = .tlsv13
        open.certificateVerification = .optionalVerification
        open.trustRoots = .certificates(roots)
        return Material(
            svid: svid, bundle: bundle, server: try NIOSSLContext(configuration: server), client: try NIOSSLContext(configuration: client),
            serverWithOptionalClientAuth: try NIOSSLContext(configuration: open))
    }

    public static func nioCertificate(_ certificate: Certificate) throws -> NIOSSLCertificate {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der)
    }

    /// For accepted connections (requires and verifies the client's certificate).
    public var serverContext: NIOSSLContext { self.material.withLock { $0.server } }
    /// For accepted connections whose clients may have no certificate yet (one that comes is verified).
    public var serverContextWithOptionalClientAuth: NIOSSLContext { self.material.withLock { $0.serverWithOptionalClientAuth } }
    /// For connections to other sidecars (presents this sidecar's SVID, verifies the server's).
    public var clientContext: NIOSSLContext { self.material.withLock { $0.client } }
    /// The SVID in use.
    public var svid: SVID { self.material.withLock { $0.svid } }
    /// When to renew it: at 70 % of its remaining lifetime when it was obtained.
    public var renewAt: Date {
        self.material.withLock { material in
            material.obtained + max(0, material.svid.notAfter.timeIntervalSince(material.obtained)) * 0.7
        }
    }
    public var bundle: TrustBundle { self.material.withLock { $0.bundle } }

    /// The identity a verified peer certificate carries: its one SPIFFE id, of this trust domain;
    /// nil otherwise.
    public func peerID(of certificate: NIOSSLCertificate) -> SPIFFEID? {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der) else { return nil }
        return self.peerID(of: parsed)
    }

    public func peerID(of certificate: Certificate) -> SPIFFEID? {
        let ids = TrustBundle.spiffeIDs(of: certificate)
        guard ids.count == 1, let id = ids.first, id.trustDomain == self.id.trustDomain else { return nil }
        return id
    }

    /// A renewal was due and has not succeeded yet (the SVID in use is older than planned).
    public var renewalOverdue: Bool { self.renewalFailures > 0 && self.renewAt < Date() }

    /// Replaces the SVID with a new one now.
    public func renew() async throws {
        let fresh = try await Self.obtain(id: self.id, issuer: self.issuer, ttl: self.ttl)
        self.material.withLock { $0 = fresh }
        for observer in self.renewalObservers.withLock({ $0 }) { observer(fresh.svid, fresh.bundle) }
    }

    /// Renews the SVID at 70 % of its lifetime until cancelled; a failed renewal is retried with
    /// backoff (1 s doubling to 1 min) while the current SVID is still valid.
    public func run(logger: (@Sendable (String) -> Void)? = nil) async {
        var backoff: Duration = .seconds(1)
        while !Task.isCancelled {
            let wait = max(0, self.renewAt.timeIntervalSinceNow)
            do {
                try await Task.sleep(for: .milliseconds(Int64(min(wait, 86_400 * 365) * 1000)))
            } catch {
                return
            }
            do {
                try await self.renew()
                backoff = .seconds(1)
                logger?("renewed the workload certificate of \(self.id); valid until \(self.svid.notAfter)")
            } catch {
                self.failedRenewals.add(1, ordering: .relaxed)
                logger?("cannot renew the workload certificate of \(self.id) (\(error)); retrying in \(backoff)")
                do { try await Task.sleep(for: backoff) } catch { return }
                backoff = min(backoff * 2, .seconds(60))
            }
        }
    }

    /// Counts a connection refused during the handshake (no certificate, untrusted, expired…).
    public func noteRefused(_ reason: String) {
        self.refusals.withLock { $0[reason, default: 0] += 1 }
    }

    /// Refused handshakes so far, by reason.
    public var refusedHandshakes: [String: Int] { self.refusals.withLock { $0 } }
    public var renewalFailures: Int { self.failedRenewals.load(ordering: .relaxed) }
}

extension MeshTLS {
    /// Puts TLS in front of an accepted connection: the server handshake with the current SVID,
    /// then a handler that counts and logs refused handshakes. Call from the channel initializer.
    public func addServerHandlers(to channel: any Channel) throws {
        let tls = NIOSSLServerHandler(context: self.serverContext)
        try channel.pipeline.syncOperations.addHandler(tls, position: .first)
        try channel.pipeline.syncOperations.addHandler(HandshakeRefusalHandler(tls: self), position: .after(tls))
    }

    /// A short reason for a refused handshake, from BoringSSL's error text.
    static func refusalReason(_ error: any Error) -> String {
        let text = "\(error)".uppercased()
        if text.contains("PEER_DID_NOT_RETURN_A_CERTIFICATE") || text.contains("NO_CERTIFICATE") { return "no_certificate" }
        if text.contains("CERTIFICATE_VERIFY_FAILED") || text.contains("CERTIFICATE_EXPIRED") || text.contains("UNKNOWN_CA") || text.contains("BAD_CERTIFICATE") {
            return "untrusted_certificate"
        }
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("HTTP_REQUEST") || text.contains("PACKET_LENGTH_TOO_LONG") { return "not_tls" }
        return "handshake_failed"
    }
}

/// Behind `NIOSSLServerHandler` until the handshake ends: a failed handshake is counted in
/// `MeshTLS.refusedHandshakes` and the connection closed; a completed one removes this handler.
final class HandshakeRefusalHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let tls: MeshTLS
    private var done = false

    init(tls: MeshTLS) {
        self.tls = tls
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event, !self.done {
            self.done = true
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !self.done else {
            context.fireErrorCaught(error)
            return
        }
        self.done = true
        self.tls.noteRefused(MeshTLS.refusalReason(error))
        context.close(promise: nil)
    }
}

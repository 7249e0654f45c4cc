#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOSSL

/// How an ``HTTP1Client`` secures connections to `https` targets: which roots it trusts, whether it
/// verifies the server at all, an optional client certificate and renegotiation.
///
/// The default trusts the system roots and verifies the server's certificate chain and name
/// (TLS 1.2 or later). The client turns this value into a TLS context once, on its first `https`
/// connection; call ``validate()`` when the configuration is made to report bad material early.
public struct HTTP1TLSConfiguration: Sendable, Hashable {
    /// PEM-encoded material, given inline or as a file path.
    public enum PEM: Sendable, Hashable {
        case inline(String)
        case file(String)
    }

    /// A client certificate chain (leaf first) and its private key, for mutual TLS.
    public struct ClientIdentity: Sendable, Hashable {
        public var certificateChain: PEM
        public var privateKey: PEM

        public init(certificateChain: PEM, privateKey: PEM) {
            self.certificateChain = certificateChain
            self.privateKey = privateKey
        }
    }

    /// Whether the server may renegotiate (Go's `RenegotiateNever`, `…OnceAsClient`, `…FreelyAsClient`).
    public enum Renegotiation: Sendable, Hashable {
        case never
        case once
        case freely
    }

    /// What was wrong with the material, and in which part.
    public struct Problem: Error, Sendable, Hashable, CustomStringConvertible {
        public enum Field: Sendable, Hashable {
            case trustRoots
            case clientCertificate
            case clientKey
        }

        public var field: Field
        public var reason: String

        public var description: String { self.reason }
    }

    /// The CA certificates to trust instead of the system roots; `nil` trusts the system roots.
    public var trustRoots: PEM?
    /// CA certificates trusted besides `trustRoots` (Go's `SSL_CERT_FILE` next to the system roots).
    public var additionalTrustRoots: [PEM]
    /// Accept any server certificate and name. For tests and trusted networks only.
    public var insecureSkipVerify: Bool
    public var clientIdentity: ClientIdentity?
    public var renegotiation: Renegotiation

    public init(
        trustRoots: PEM? = nil,
        additionalTrustRoots: [PEM] = [],
        insecureSkipVerify: Bool = false,
        clientIdentity: ClientIdentity? = nil,
        renegotiation: Renegotiation = .never
    ) {
        self.trustRoots = trustRoots
        self.additionalTrustRoots = additionalTrustRoots
        self.insecureSkipVerify = insecureSkipVerify
        self.clientIdentity = clientIdentity
        self.renegotiation = renegotiation
    }

    /// Reads and parses every certificate and key now (without loading the system roots).
    ///
    /// - Throws: ``Problem`` naming the part that cannot be read or parsed, or a key that does not
    ///   match its certificate.
    public func validate() throws(Problem) {
        _ = try self.makeContext(systemRoots: false)
    }

    /// The TLS context for client connections.
    func makeSSLContext() throws(Problem) -> NIOSSLContext {
        try self.makeContext(systemRoots: true)
    }

    private func makeContext(systemRoots: Bool) throws(Problem) -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.certificateVerification = self.insecureSkipVerify ? .none : .fullVerification
        tls.renegotiationSupport = switch self.renegotiation {
        case .never: .none
        case .once: .once
        case .freely: .always
        }
        if let roots = self.trustRoots {
            let certificates = try Self.certificates(roots, field: .trustRoots)
            guard !certificates.isEmpty else {
                throw Problem(field: .trustRoots, reason: "no CA certificate found in \(roots.origin)")
            }
            tls.trustRoots = .certificates(certificates)
        } else if !systemRoots {
            tls.trustRoots = .certificates([])
        }
        for roots in self.additionalTrustRoots {
            let certificates = try Self.certificates(roots, field: .trustRoots)
            guard !certificates.isEmpty else {
                throw Problem(field: .trustRoots, reason: "no CA certificate found in \(roots.origin)")
            }
            tls.additionalTrustRoots.append(.certificates(certificates))
        }
        if let identity = self.clientIdentity {
            let chain = try Self.certificates(identity.certificateChain, field: .clientCertificate)
            guard !chain.isEmpty else {
                throw Problem(field: .clientCertificate, reason: "no certificate found in \(identity.certificateChain.origin)")
            }
            let key: NIOSSLPrivateKey
            do {
                switch identity.privateKey {
                case .inline(let text): key = try NIOSSLPrivateKey(bytes: Array(text.utf8), format: .pem)
                case .file(let path):
                    try Self.checkReadable(path, field: .clientKey)
                    key = try NIOSSLPrivateKey(file: path, format: .pem)
                }
            } catch let problem as Problem {
                throw problem
            } catch {
                throw Problem(field: .clientKey, reason: "cannot parse the private key in \(identity.privateKey.origin) (expected an unencrypted PEM key)")
            }
            tls.certificateChain = chain.map { .certificate($0) }
            tls.privateKey = .privateKey(key)
        }
        do {
            return try NIOSSLContext(configuration: tls)
        } catch {
            // Loading the chosen material succeeded, so what is left is the key/certificate pairing
            // (or the system roots, which are not the caller's fault but still must be reported).
            let field: Problem.Field = self.clientIdentity == nil ? .trustRoots : .clientKey
            let reason = self.clientIdentity == nil
                ? "cannot load the trusted certificates: \(error)"
                : "the private key does not match the client certificate (\(error))"
            throw Problem(field: field, reason: reason)
        }
    }

    private static func certificates(_ pem: PEM, field: Problem.Field) throws(Problem) -> [NIOSSLCertificate] {
        do {
            switch pem {
            case .inline(let text): return try NIOSSLCertificate.fromPEMBytes(Array(text.utf8))
            case .file(let path):
                try self.checkReadable(path, field: field)
                return try NIOSSLCertificate.fromPEMFile(path)
            }
        } catch let problem as Problem {
            throw problem
        } catch {
            throw Problem(field: field, reason: "cannot parse the PEM certificates in \(pem.origin)")
        }
    }

    /// NIOSSL reports a missing file only as "no such filesystem object": say which and why.
    private static func checkReadable(_ path: String, field: Problem.Field) throws(Problem) {
        guard access(path, R_OK) == 0 else {
            throw Problem(field: field, reason: "cannot read '\(path)': \(String(cString: strerror(errno)))")
        }
    }
}

extension HTTP1TLSConfiguration.PEM {
    /// Where the material came from, for messages (never the material itself).
    fileprivate var origin: String {
        switch self {
        case .inline: "the inline PEM value"
        case .file(let path): "'\(path)'"
        }
    }
}

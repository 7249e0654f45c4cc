import HTTP1Client
import MechaTesting
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization
import Testing

/// `https` targets against `TestHTTPServer` speaking TLS with a CA made by openssl for the test.
@Suite("HTTP1Client TLS")
struct HTTP1ClientTLSTests {
    typealias Reply = HTTP1ClientTests.Reply

    static func get(_ client: HTTP1Client, host: String = "localhost", port: Int, tls: Bool = true, _ uri: String = "/hello") async throws -> Reply {
        let request = HTTP1Request(target: HTTP1Target(host: host, port: port, tls: tls), method: .GET, uri: uri)
        return try await client.execute(request) { response in
            let buffer = try await response.collect(upTo: 1 << 20)
            return Reply(status: response.status, headers: response.headers, body: String(buffer: buffer))
        }
    }

    /// Runs `body` with a fresh CA; its files are removed afterwards.
    static func withAuthority<Output>(_ body: (TestCertificateAuthority) async throws -> Output) async throws -> Output {
        let authority = try await TestCertificateAuthority.make()
        defer { authority.remove() }
        return try await body(authority)
    }

    static func trusting(_ authority: TestCertificateAuthority) -> HTTP1Client.Configuration {
        .init(tls: HTTP1TLSConfiguration(trustRoots: .file(authority.caCertificatePath)))
    }

    @Test func httpsWithTheTestCATrustedSendsSNIAndReusesTheConnection() async throws {
        try await Self.withAuthority { authority in
            let names = Mutex<[String?]>([])
            let context = try authority.serverContext(serverName: { name in names.withLock { $0.append(name) } })
            try await TestHTTPServer.with(tls: context) { server in
                try await HTTP1ClientTests.withClient(Self.trusting(authority)) { client in
                    let first = try await Self.get(client, port: server.port)
                    let second = try await Self.get(client, port: server.port, "/echo")
                    #expect(first.status == .ok && first.body == "hello")
                    #expect(second.status == .ok)
                    #expect(first.connection == second.connection)
                }
                #expect(server.acceptedConnections == 1)
                #expect(names.withLock { $0 } == ["localhost"])
                #expect(server.requests.first?.headers.first(name: "host") == "localhost:\(server.port)")
            }
        }
    }

    @Test func anIPAddressTargetSendsNoSNIAndIsCheckedAgainstTheCertificatesAddresses() async throws {
        try await Self.withAuthority { authority in
            let names = Mutex<[String?]>([])
            let context = try authority.serverContext(serverName: { name in names.withLock { $0.append(name) } })
            try await TestHTTPServer.with(tls: context) { server in
                let reply = try await HTTP1ClientTests.withClient(Self.trusting(authority)) { client in
                    try await Self.get(client, host: "127.0.0.1", port: server.port)
                }
                #expect(reply.body == "hello")
                #expect(names.withLock { $0 } == [nil])
            }
        }
    }

    @Test func anUntrustedCertificateFailsWithAClearError() async throws {
        try await Self.withAuthority { authority in
            try await TestHTTPServer.with(tls: try authority.serverContext()) { server in
                // The default configuration trusts the system roots only.
                try await HTTP1ClientTests.withClient { client in
                    let error = await #expect(throws: HTTP1ClientError.self) { try await Self.get(client, port: server.port) }
                    #expect(error == .tlsHandshakeFailed(target: "localhost:\(server.port)", reason: "certificate verify failed"))
                    #expect(error?.description == "TLS handshake with localhost:\(server.port) failed: certificate verify failed")
                }
                #expect(server.requests.isEmpty)
            }
        }
    }

    @Test func insecureSkipVerifyAcceptsAnUntrustedCertificate() async throws {
        try await Self.withAuthority { authority in
            try await TestHTTPServer.with(tls: try authority.serverContext()) { server in
                let reply = try await HTTP1ClientTests.withClient(.init(tls: .init(insecureSkipVerify: true))) { client in
                    try await Self.get(client, port: server.port)
                }
                #expect(reply.body == "hello")
            }
        }
    }

    @Test func inlinePEMTrustRootsWork() async throws {
        try await Self.withAuthority { authority in
            try await TestHTTPServer.with(tls: try authority.serverContext()) { server in
                let tls = HTTP1TLSConfiguration(trustRoots: .inline(try authority.caCertificatePEM()))
                let reply = try await HTTP1ClientTests.withClient(.init(tls: tls)) { client in
                    try await Self.get(client, port: server.port)
                }
                #expect(reply.body == "hello")
            }
        }
    }

    @Test func httpAndHTTPSToTheSameHostAndPortNeverShareAConnection() async throws {
        try await TestHTTPServer.with { server in
            try await HTTP1ClientTests.withClient(.init(tls: .init(insecureSkipVerify: true))) { client in
                let plain = try await Self.get(client, host: "127.0.0.1", port: server.port, tls: false)
                #expect(plain.body == "hello")
                // An idle plain connection to this host:port is pooled; https must not take it.
                let error = await #expect(throws: HTTP1ClientError.self) {
                    try await Self.get(client, host: "127.0.0.1", port: server.port, tls: true)
                }
                guard case .tlsHandshakeFailed(let target, _)? = error else {
                    Issue.record("expected a handshake failure, got \(String(describing: error))")
                    return
                }
                #expect(target == "127.0.0.1:\(server.port)")
                let again = try await Self.get(client, host: "127.0.0.1", port: server.port, tls: false)
                #expect(again.connection == plain.connection)
            }
            #expect(server.acceptedConnections == 2)
        }
    }

    @Test func aClientCertificateForMutualTLS() async throws {
        try await Self.withAuthority { authority in
            try await TestHTTPServer.with(tls: try authority.serverContext(requireClientCertificate: true)) { server in
                let identity = HTTP1TLSConfiguration.ClientIdentity(
                    certificateChain: .file(authority.clientCertificatePath),
                    privateKey: .file(authority.clientKeyPath)
                )
                var tls = HTTP1TLSConfiguration(trustRoots: .file(authority.caCertificatePath), clientIdentity: identity)
                try tls.validate()
                let reply = try await HTTP1ClientTests.withClient(.init(tls: tls)) { client in
                    try await Self.get(client, port: server.port)
                }
                #expect(reply.body == "hello")

                tls.clientIdentity = nil
                try await HTTP1ClientTests.withClient(.init(tls: tls)) { client in
                    // TLS 1.3: the server checks the client's certificate after the client's handshake
                    // ended, so the refusal may show on the exchange instead.
                    await #expect(throws: (any Error).self) { try await Self.get(client, port: server.port) }
                }
            }
        }
    }

    @Test func badMaterialIsReportedByField() async throws {
        try await Self.withAuthority { authority in
            let missing = #expect(throws: HTTP1TLSConfiguration.Problem.self) {
                try HTTP1TLSConfiguration(trustRoots: .file("\(authority.directory)/nope.pem")).validate()
            }
            #expect(missing?.field == .trustRoots)
            #expect(missing?.reason.contains("cannot read '\(authority.directory)/nope.pem'") == true)

            let empty = #expect(throws: HTTP1TLSConfiguration.Problem.self) {
                try HTTP1TLSConfiguration(trustRoots: .inline("not a certificate")).validate()
            }
            #expect(empty?.field == .trustRoots)

            // The server's key does not belong to the client certificate.
            let mismatch = #expect(throws: HTTP1TLSConfiguration.Problem.self) {
                try HTTP1TLSConfiguration(clientIdentity: .init(
                    certificateChain: .file(authority.clientCertificatePath),
                    privateKey: .file(authority.serverKeyPath)
                )).validate()
            }
            #expect(mismatch?.field == .clientKey)

            let badKey = #expect(throws: HTTP1TLSConfiguration.Problem.self) {
                try HTTP1TLSConfiguration(clientIdentity: .init(
                    certificateChain: .file(authority.clientCertificatePath),
                    privateKey: .inline("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                )).validate()
            }
            #expect(badKey?.field == .clientKey)

            // The client surfaces the same problem on its first https connection.
            let tls = HTTP1TLSConfiguration(trustRoots: .file("\(authority.directory)/nope.pem"))
            try await HTTP1ClientTests.withClient(.init(tls: tls)) { client in
                let error = await #expect(throws: HTTP1ClientError.self) { try await Self.get(client, port: 1) }
                guard case .invalidTLSConfiguration? = error else {
                    Issue.record("expected invalidTLSConfiguration, got \(String(describing: error))")
                    return
                }
            }
        }
    }

    @Test func aSilentServerTimesTheHandshakeOut() async throws {
        // Accepts connections and never answers the ClientHello.
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.eventLoop.makeSucceededVoidFuture() }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        let port = try #require(listener.localAddress?.port)
        defer { listener.close(promise: nil) }
        // 2 s, not less: the TCP connect shares the timeout, and a loaded machine (the whole suite
        // in parallel on two cores) once took more than 300 ms to accept on loopback.
        try await HTTP1ClientTests.withClient(.init(connectTimeout: .seconds(2))) { client in
            let error = await #expect(throws: HTTP1ClientError.self) {
                try await Self.get(client, host: "127.0.0.1", port: port)
            }
            #expect(error == .tlsHandshakeFailed(target: "127.0.0.1:\(port)", reason: "timed out after 2.0 seconds"))
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
import NIOCore
public import NIOSSL

/// A throw-away CA with a server certificate (for `localhost` and `127.0.0.1`) and a client
/// certificate, made by `openssl` in a temporary directory, for tests of TLS clients against
/// servers started in the test.
///
/// ```swift
/// let ca = try await TestCertificateAuthority.make()
/// defer { ca.remove() }
/// let context = try ca.serverContext()  // add NIOSSLServerHandler(context:) to the server's pipeline
/// ```
public struct TestCertificateAuthority: Sendable {
    public let directory: String

    public var caCertificatePath: String { "\(self.directory)/ca.pem" }
    public var serverCertificatePath: String { "\(self.directory)/server.pem" }
    public var serverKeyPath: String { "\(self.directory)/server.key" }
    public var clientCertificatePath: String { "\(self.directory)/client.pem" }
    public var clientKeyPath: String { "\(self.directory)/client.key" }

    /// Makes the CA and both certificates (EC P-256, valid two days).
    ///
    /// - Throws: ``HarnessError`` saying to install openssl when it is missing or fails.
    public static func make(_ prefix: String = "mecha-tls") async throws -> TestCertificateAuthority {
        let authority = TestCertificateAuthority(directory: TestEnvironment.temporaryDirectory(prefix))
        let dir = authority.directory
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        try TestEnvironment.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n", to: "\(dir)/server.ext")
        try TestEnvironment.write("extendedKeyUsage=clientAuth\n", to: "\(dir)/client.ext")
        try await self.openssl(["req", "-x509"] + key + ["-keyout", "\(dir)/ca.key", "-out", "\(dir)/ca.pem", "-days", "2", "-subj", "/CN=Mecha Test CA"], in: dir)
        for (name, subject) in [("server", "/CN=localhost"), ("client", "/CN=mecha-client")] {
            try await self.openssl(["req", "-new"] + key + ["-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).csr", "-subj", subject], in: dir)
            try await self.openssl([
                "x509", "-req", "-in", "\(dir)/\(name).csr", "-CA", "\(dir)/ca.pem", "-CAkey", "\(dir)/ca.key", "-CAcreateserial",
                "-out", "\(dir)/\(name).pem", "-days", "2", "-extfile", "\(dir)/\(name).ext",
            ], in: dir)
        }
        return authority
    }

    private static func openssl(_ arguments: [String], in directory: String) async throws {
        let process = try TestProcess("openssl", arguments, logPath: "\(directory)/openssl.log")
        let status = await process.waitForExit(timeout: .seconds(30))
        guard status == 0 else {
            throw HarnessError("openssl could not make the test certificates (install openssl): openssl \(arguments.joined(separator: " "))\n\(process.output)")
        }
    }

    /// The CA certificate as PEM text.
    public func caCertificatePEM() throws -> String {
        try Self.read(self.caCertificatePath)
    }

    /// The client certificate and key as PEM text.
    public func clientPEM() throws -> (certificate: String, key: String) {
        (try Self.read(self.clientCertificatePath), try Self.read(self.clientKeyPath))
    }

    /// A server context presenting the server certificate; with `requireClientCertificate`,
    /// clients must present a certificate signed by this CA. `serverName` is told each client's
    /// SNI name (nil when none was sent).
    public func serverContext(
        requireClientCertificate: Bool = false,
        serverName: (@Sendable (String?) -> Void)? = nil
    ) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(self.serverCertificatePath).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: self.serverKeyPath, format: .pem))
        )
        if let serverName {
            configuration.sslContextCallback = { values, promise in
                serverName(values.serverHostname)
                promise.succeed(.noChanges)
            }
        }
        if requireClientCertificate {
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .file(self.caCertificatePath)
        }
        return try NIOSSLContext(configuration: configuration)
    }

    public func remove() {
        TestEnvironment.remove(self.directory)
    }

    private static func read(_ path: String) throws -> String {
        guard let file = fopen(path, "r") else { throw HarnessError("cannot read \(path)") }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes += buffer[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

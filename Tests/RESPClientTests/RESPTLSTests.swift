import MechaTesting
import RESPClient
import RESPWire
import Testing

/// redis-server's TLS port with a self-signed certificate made by openssl for the test.
struct RESPTLSTests {
    static func selfSignedCertificate(in directory: String) async throws {
        let openssl = try TestProcess(
            "openssl",
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(directory)/key.pem", "-out", "\(directory)/cert.pem",
             "-days", "1", "-subj", "/CN=localhost"],
            logPath: "\(directory)/openssl.log"
        )
        let status = await openssl.waitForExit(timeout: .seconds(30))
        guard status == 0 else { throw HarnessError("openssl could not make a certificate (install openssl):\n\(openssl.output)") }
    }

    @Test func connectsOverTLS() async throws {
        let certificates = TestEnvironment.temporaryDirectory("mecha-redis-tls")
        defer { TestEnvironment.remove(certificates) }
        try await Self.selfSignedCertificate(in: certificates)
        let tlsPort = TestEnvironment.freePort()
        try await RedisServerHarness.withServer(extraArguments: [
            "--tls-port", String(tlsPort), "--tls-cert-file", "\(certificates)/cert.pem", "--tls-key-file", "\(certificates)/key.pem",
            "--tls-auth-clients", "no",
        ]) { redis in
            var configuration = redis.configuration
            configuration.port = tlsPort
            configuration.enableTLS = true
            configuration.tlsInsecureSkipVerify = true
            let pool = try RESPConnectionPool(configuration: configuration)
            _ = try await pool.send(["SET", "secure", "yes"])
            #expect(try await pool.send(["GET", "secure"]) == "yes")
            await pool.shutdown()

            // Verification is on by default: a self-signed server is refused.
            configuration.tlsInsecureSkipVerify = false
            configuration.maxRetries = 0
            let error = await #expect(throws: RESPError.self) { try await RESPConnection.connect(configuration: configuration) }
            #expect(error?.code == .connectionFailed)
        }
    }
}

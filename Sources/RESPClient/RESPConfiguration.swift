public import NIOSSL
public import RESPWire

/// Where and how to connect to Redis, and how the pool behaves. Field names follow Dapr's redis
/// component metadata (`redisHost`, `redisPassword`, `redisDB`, `enableTLS`, `poolSize`, …) so a
/// component can fill it field by field.
public struct RESPConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// ACL user (Redis 6+); nil authenticates as `default` when a password is set.
    public var username: String?
    public var password: String?
    /// `SELECT`ed after connecting when not 0.
    public var database: Int
    /// `CLIENT SETNAME` (or `HELLO … SETNAME`) when set.
    public var clientName: String?
    /// TLS through swift-nio-ssl, verifying the server's certificate against the system roots.
    public var enableTLS: Bool
    /// Accept any server certificate (Dapr's `enableTLS` with a self-signed server).
    public var tlsInsecureSkipVerify: Bool
    /// Full control over TLS (trust roots, client certificates); replaces the two flags above when set.
    public var tlsConfiguration: TLSConfiguration?
    /// `.resp3` tries `HELLO 3` and falls back to RESP2; `.resp2` never sends `HELLO`.
    public var preferredProtocol: RESPProtocolVersion
    /// Connections a ``RESPConnectionPool`` keeps; commands are pipelined over them.
    public var poolSize: Int
    /// TCP connect plus handshake.
    public var dialTimeout: Duration
    /// How long a command waits for its reply before its connection is declared dead; nil waits forever.
    public var readTimeout: Duration?
    /// Pool connections unused this long are closed (and reopened when needed); nil keeps them.
    public var idleTimeout: Duration?
    /// How often the pool's `run()` pings connections that were idle since the last check.
    public var healthCheckInterval: Duration
    /// Retries of a command that failed with a connection error (not an error reply). A command
    /// that reached the server before its connection broke may therefore run twice, as with go-redis.
    public var maxRetries: Int
    /// The first retry waits this long; each further retry doubles it up to `maxRetryBackoff`.
    public var minRetryBackoff: Duration
    public var maxRetryBackoff: Duration

    public init(
        host: String = "127.0.0.1",
        port: Int = 6379,
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        clientName: String? = nil,
        enableTLS: Bool = false,
        tlsInsecureSkipVerify: Bool = false,
        tlsConfiguration: TLSConfiguration? = nil,
        preferredProtocol: RESPProtocolVersion = .resp3,
        poolSize: Int = 10,
        dialTimeout: Duration = .seconds(5),
        readTimeout: Duration? = .seconds(3),
        idleTimeout: Duration? = .seconds(300),
        healthCheckInterval: Duration = .seconds(30),
        maxRetries: Int = 3,
        minRetryBackoff: Duration = .milliseconds(8),
        maxRetryBackoff: Duration = .milliseconds(512)
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.clientName = clientName
        self.enableTLS = enableTLS
        self.tlsInsecureSkipVerify = tlsInsecureSkipVerify
        self.tlsConfiguration = tlsConfiguration
        self.preferredProtocol = preferredProtocol
        self.poolSize = poolSize
        self.dialTimeout = dialTimeout
        self.readTimeout = readTimeout
        self.idleTimeout = idleTimeout
        self.healthCheckInterval = healthCheckInterval
        self.maxRetries = maxRetries
        self.minRetryBackoff = minRetryBackoff
        self.maxRetryBackoff = maxRetryBackoff
    }

    var handshake: RESPHandshake {
        .init(username: self.username, password: self.password, database: self.database, clientName: self.clientName, preferredProtocol: self.preferredProtocol)
    }

    /// The wait before retry number `attempt` (1-based): min, 2·min, 4·min, … capped at max.
    func retryBackoff(attempt: Int) -> Duration {
        guard attempt > 1 else { return self.minRetryBackoff }
        let factor = 1 << min(attempt - 1, 20)
        return min(self.maxRetryBackoff, self.minRetryBackoff * factor)
    }

    /// The TLS context to use, or nil without TLS.
    func makeSSLContext() throws -> NIOSSLContext? {
        guard self.enableTLS || self.tlsConfiguration != nil else { return nil }
        var tls = self.tlsConfiguration ?? TLSConfiguration.makeClientConfiguration()
        if self.tlsConfiguration == nil && self.tlsInsecureSkipVerify { tls.certificateVerification = .none }
        do {
            return try NIOSSLContext(configuration: tls)
        } catch {
            throw RESPError(.connectionFailed, "invalid TLS configuration: \(error)")
        }
    }
}

public import MechaCore
public import RESPClient

/// The connection metadata every Redis component shares, with Dapr's names, turned into a
/// `RESPConfiguration`.
///
/// - `redisHost` (required): `host:port`, or a host with `redisPort` (default 6379).
/// - `redisUsername`, `redisPassword`, `redisDB` (default 0).
/// - `enableTLS`, `insecureSkipTLSVerify` (TLS with the system's trust roots).
/// - `redisMaxRetries` (alias `maxRetries`; default 3, -1 disables), `redisMinRetryInterval`
///   (default 8ms), `redisMaxRetryInterval` (alias `maxRetryBackoff`; default 512ms).
/// - `poolSize` (default 10), `dialTimeout` (5s), `readTimeout` (3s, -1 none), `writeTimeout`,
///   `idleTimeout` (5m, -1 keeps connections), `idleCheckFrequency` (1m).
///
/// Durations are Go durations, or integers in milliseconds (Dapr's reading). Cluster and Sentinel
/// (`redisType: cluster`, `failover: true`) and client certificates are refused with an error naming
/// the field rather than silently connecting to a single node.
public struct RedisClientSettings: Sendable {
    public var configuration: RESPConfiguration
    /// `host:port`, for messages.
    public var address: String { "\(self.configuration.host):\(self.configuration.port)" }

    public init(_ metadata: ComponentMetadata) throws(ComponentConfigurationError) {
        var configuration = RESPConfiguration()
        let (host, port) = try Self.address(metadata)
        configuration.host = host
        configuration.port = port
        configuration.username = metadata.string("redisUsername")
        configuration.password = metadata.string("redisPassword")
        configuration.database = try metadata.int("redisDB", default: 0, range: 0...100_000)
        configuration.enableTLS = try metadata.bool("enableTLS", default: false)
        configuration.tlsInsecureSkipVerify = try metadata.bool("insecureSkipTLSVerify", default: false)
        for key in ["clientCert", "clientKey"] where metadata.string(key) != nil {
            throw ComponentConfigurationError(key: key, reason: "TLS client certificates are not supported by Mecha's Redis components yet")
        }
        let redisType = try metadata.choice("redisType", of: ["node", "cluster"], default: "node")
        if redisType == "cluster" {
            throw ComponentConfigurationError(key: "redisType", reason: "Redis Cluster is not supported yet; use a single node (redisType: node)")
        }
        if try metadata.bool("failover", default: false) {
            throw ComponentConfigurationError(key: "failover", reason: "Redis Sentinel failover is not supported yet")
        }
        for key in ["useEntraID", "useAzureAD", "useOIDC"] {
            if try metadata.bool(key, default: false) {
                throw ComponentConfigurationError(key: key, reason: "token authentication is not supported; use redisUsername/redisPassword")
            }
        }

        let retriesKey = metadata["redisMaxRetries"] == nil && metadata["maxRetries"] != nil ? "maxRetries" : "redisMaxRetries"
        let retries = try metadata.int(retriesKey, default: 3, range: -1...1000)
        configuration.maxRetries = max(0, retries)
        if let minimum = try Self.duration(metadata, "redisMinRetryInterval", default: .milliseconds(8)) {
            configuration.minRetryBackoff = minimum
        } else {
            configuration.minRetryBackoff = .zero
        }
        let maxBackoffKey = metadata["redisMaxRetryInterval"] == nil && metadata["maxRetryBackoff"] != nil ? "maxRetryBackoff" : "redisMaxRetryInterval"
        configuration.maxRetryBackoff = try Self.duration(metadata, maxBackoffKey, default: .milliseconds(512)) ?? .zero
        configuration.minRetryBackoff = min(configuration.minRetryBackoff, configuration.maxRetryBackoff)

        configuration.poolSize = try metadata.int("poolSize", default: 10, range: 1...10_000)
        configuration.dialTimeout = try Self.duration(metadata, "dialTimeout", default: .seconds(5)) ?? .seconds(5)
        // -1 waits forever; 0 is the default (Dapr's go-redis reading).
        configuration.readTimeout = try Self.duration(metadata, "readTimeout", default: .seconds(3))
        // Writes go out with the command; its reply is bounded by readTimeout. Validated only.
        _ = try Self.duration(metadata, "writeTimeout", default: .seconds(3))
        configuration.idleTimeout = try Self.duration(metadata, "idleTimeout", default: .seconds(300))
        if let frequency = try Self.duration(metadata, "idleCheckFrequency", default: .seconds(60)) {
            configuration.healthCheckInterval = frequency
        }
        // Accepted for compatibility; the pool opens connections on demand and never waits for one.
        _ = try metadata.int("minIdleConns", default: 0, range: 0...10_000)
        _ = try Self.duration(metadata, "poolTimeout", default: .seconds(4))
        _ = try Self.duration(metadata, "maxConnAge", default: .zero)
        self.configuration = configuration
    }

    /// `redisHost` (`host:port`, `[v6]:port` or a bare host) with `redisPort`.
    static func address(_ metadata: ComponentMetadata) throws(ComponentConfigurationError) -> (String, Int) {
        let raw = try metadata.require("redisHost")
        if raw.contains(",") {
            throw ComponentConfigurationError(key: "redisHost", reason: "several addresses (\(raw)) need Redis Cluster or Sentinel, which are not supported yet")
        }
        let separatePort = try metadata.int("redisPort", default: 0, range: 0...65535)
        var host = raw
        var port: Int?
        if raw.hasPrefix("[") {
            guard let close = raw.firstIndex(of: "]") else {
                throw ComponentConfigurationError(key: "redisHost", reason: "cannot parse '\(raw)' as host:port")
            }
            host = String(raw[raw.index(after: raw.startIndex)..<close])
            let rest = raw[raw.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let value = Int(rest.dropFirst()) else {
                    throw ComponentConfigurationError(key: "redisHost", reason: "cannot parse '\(raw)' as host:port")
                }
                port = value
            }
        } else if let colon = raw.lastIndex(of: ":"), raw.firstIndex(of: ":") == colon {
            host = String(raw[..<colon])
            guard let value = Int(raw[raw.index(after: colon)...]) else {
                throw ComponentConfigurationError(key: "redisHost", reason: "cannot parse '\(raw)' as host:port: the port is not a number")
            }
            port = value
        }
        guard !host.isEmpty else {
            throw ComponentConfigurationError(key: "redisHost", reason: "'\(raw)' has no host name")
        }
        if let port, separatePort != 0, separatePort != port {
            throw ComponentConfigurationError(
                key: "redisPort",
                reason: "redisHost '\(raw)' already contains port \(port), but redisPort is \(separatePort); remove one of them"
            )
        }
        let resolved = port ?? (separatePort != 0 ? separatePort : 6379)
        guard (1...65535).contains(resolved) else {
            throw ComponentConfigurationError(key: "redisHost", reason: "port \(resolved) is out of range 1...65535")
        }
        return (host, resolved)
    }

    /// Dapr's redis duration: a Go duration, or an integer in milliseconds. A negative value means
    /// "disabled" (`nil`); zero or absent means the default.
    static func duration(_ metadata: ComponentMetadata, _ key: String, default defaultValue: Duration) throws(ComponentConfigurationError) -> Duration? {
        let value = try metadata.duration(key, default: defaultValue, integerUnit: .milliseconds(1), range: (.zero - Duration.maximumInterval) ... .maximumInterval)
        if value < .zero { return nil }
        return value == .zero ? defaultValue : value
    }
}

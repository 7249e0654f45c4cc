/// `middleware.http.ratelimit`'s metadata, as components-contrib reads it
/// (`middleware/http/ratelimit/ratelimit_middleware.go`).
///
/// `maxRequestsPerSecond` is a float, 100 when absent, and must be positive. An empty value is read
/// as 0 (and refused), as Go's weakly typed decoder does. Mecha also refuses NaN and infinity,
/// which daprd would accept and then misbehave on.
public struct HTTPRateLimitConfiguration: Sendable, Hashable {
    /// The component type these settings belong to.
    public static let componentType = ComponentType(.middleware, "http.ratelimit")
    public static let maxRequestsPerSecondKey = "maxRequestsPerSecond"
    public static let defaultMaxRequestsPerSecond = 100.0

    /// Requests each caller (client IP and URL path) may make per second; also the burst.
    public var maxRequestsPerSecond: Double

    public init(maxRequestsPerSecond: Double = Self.defaultMaxRequestsPerSecond) {
        self.maxRequestsPerSecond = maxRequestsPerSecond
    }

    /// Parses the component's metadata; the error names the key.
    public init(metadata: ComponentMetadata) throws(ComponentConfigurationError) {
        let key = Self.maxRequestsPerSecondKey
        guard let text = metadata[key] else {
            self.init()
            return
        }
        let value: Double
        if text.isEmpty {
            value = 0
        } else if let parsed = Double(text) {
            value = parsed
        } else {
            throw ComponentConfigurationError(key: key, reason: "cannot parse '\(key)' as float: \"\(text)\"")
        }
        guard value > 0, value.isFinite else {
            throw ComponentConfigurationError(key: key, reason: "metadata property \(key) must be a positive value")
        }
        self.init(maxRequestsPerSecond: value)
    }
}

/// A loaded `middleware.http.ratelimit` component. It does no work itself: the sidecar reads its
/// settings when it builds the inbound chain from `spec.httpPipeline` of its Configuration.
public struct HTTPRateLimitComponent: Component {
    public let configuration: HTTPRateLimitConfiguration

    public init(configuration: HTTPRateLimitConfiguration) {
        self.configuration = configuration
    }
}

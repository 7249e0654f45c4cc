/// A Dapr `Configuration` resource (`kind: Configuration`): the parts the sidecar enforces.
public struct ConfigurationSpec: Sendable, Hashable {
    public var name: String
    /// `spec.secrets.scopes`: which secrets each store exposes to this app.
    public var secretScopes: [SecretScope]
    /// `spec.api.allowed`: when non-nil, only these APIs are served.
    public var apiAllowed: [APIAccessRule]?
    /// `spec.api.denied`: these APIs are refused.
    public var apiDenied: [APIAccessRule]
    /// `spec.features[]`: preview features by name.
    public var features: [String: Bool]
    /// `spec.nameResolution.component`, when set.
    public var nameResolutionComponent: String?
    /// `spec.nameResolution.configuration` as string pairs.
    public var nameResolutionConfiguration: [String: String]
    /// `spec.httpPipeline.handlers[]`: middleware components applied to the app's inbound HTTP calls.
    public var httpPipeline: [PipelineHandler]
    /// `spec.metrics`.
    public var metrics: MetricsSpec
    /// `spec.logging.apiLogging`.
    public var apiLogging: APILoggingSpec
    /// `spec.tracing`; nil when absent (no spans, trace context passed through untouched).
    public var tracing: TracingSpec?
    /// `spec.accessControl`; nil when absent (every caller may invoke everything).
    public var accessControl: AccessControlSpec?
    /// `spec.mtls`; nil when absent (the defaults apply).
    public var mtls: MTLSSpec?
    public var source: ResourceSource

    public init(
        name: String = "",
        secretScopes: [SecretScope] = [],
        apiAllowed: [APIAccessRule]? = nil,
        apiDenied: [APIAccessRule] = [],
        features: [String: Bool] = [:],
        nameResolutionComponent: String? = nil,
        nameResolutionConfiguration: [String: String] = [:],
        httpPipeline: [PipelineHandler] = [],
        metrics: MetricsSpec = MetricsSpec(),
        apiLogging: APILoggingSpec = APILoggingSpec(),
        tracing: TracingSpec? = nil,
        accessControl: AccessControlSpec? = nil,
        mtls: MTLSSpec? = nil,
        source: ResourceSource? = nil
    ) {
        self.accessControl = accessControl
        self.mtls = mtls
        self.tracing = tracing
        self.metrics = metrics
        self.apiLogging = apiLogging
        self.httpPipeline = httpPipeline
        self.name = name
        self.secretScopes = secretScopes
        self.apiAllowed = apiAllowed
        self.apiDenied = apiDenied
        self.features = features
        self.nameResolutionComponent = nameResolutionComponent
        self.nameResolutionConfiguration = nameResolutionConfiguration
        self.source = source ?? .builtIn("Configuration/\(name)")
    }

    /// Names of enabled preview features, sorted.
    public var enabledFeatures: [String] {
        self.features.filter(\.value).keys.sorted()
    }
}

/// `spec.secrets.scopes[]`: the access rule for one secret store.
public struct SecretScope: Sendable, Hashable {
    public enum Access: String, Sendable, Hashable {
        case allow
        case deny
    }

    public var storeName: String
    public var defaultAccess: Access
    public var allowedSecrets: [String]
    public var deniedSecrets: [String]

    public init(storeName: String, defaultAccess: Access = .allow, allowedSecrets: [String] = [], deniedSecrets: [String] = []) {
        self.storeName = storeName
        self.defaultAccess = defaultAccess
        self.allowedSecrets = allowedSecrets
        self.deniedSecrets = deniedSecrets
    }

    /// daprd's rule: a non-empty allowed list alone decides; otherwise a denied secret is refused;
    /// otherwise the default access decides.
    public func isAllowed(_ key: String) -> Bool {
        if !self.allowedSecrets.isEmpty { return self.allowedSecrets.contains(key) }
        if self.deniedSecrets.contains(key) { return false }
        return self.defaultAccess == .allow
    }
}

/// One entry of `spec.api.allowed` / `spec.api.denied`.
public struct APIAccessRule: Sendable, Hashable {
    public enum APIProtocol: String, Sendable, Hashable {
        case http
        case grpc
    }

    /// Building-block name as Dapr writes it (`state`, `publish`, `invoke`, `bindings`, `secrets`, …).
    public var name: String
    /// API version (`v1.0`, `v1.0-alpha1`, `v1`, `v1alpha1`).
    public var version: String
    /// Protocol the rule applies to. A rule without one applies to neither surface, as in daprd.
    public var apiProtocol: APIProtocol?

    public init(name: String, version: String, apiProtocol: APIProtocol? = nil) {
        self.name = name
        self.version = version
        self.apiProtocol = apiProtocol
    }
}

/// One entry of `spec.httpPipeline.handlers` / `spec.appHttpPipeline.handlers`: a middleware
/// component by name and type (`middleware.http.ratelimit`).
public struct PipelineHandler: Sendable, Hashable {
    public var name: String
    public var type: String

    public init(name: String, type: String) {
        self.name = name
        self.type = type
    }
}

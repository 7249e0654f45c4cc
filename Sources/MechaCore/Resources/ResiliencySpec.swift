/// A Dapr `Resiliency` resource (`apiVersion: dapr.io/v1alpha1`, `kind: Resiliency`): named
/// policies and the targets they apply to. Several resources merge (see `ResiliencySpec.merged`).
public struct ResiliencySpec: Sendable, Hashable {
    public var name: String
    /// App ids this resource applies to; empty means every app.
    public var scopes: [String]
    /// `spec.policies.timeouts`: name → duration.
    public var timeouts: [String: Duration]
    /// `spec.policies.retries`: name → retry policy.
    public var retries: [String: RetrySpec]
    /// `spec.policies.circuitBreakers`: name → breaker.
    public var circuitBreakers: [String: CircuitBreakerSpec]
    /// `spec.targets.apps`: app id → policy names.
    public var apps: [String: TargetPolicyNames]
    /// `spec.targets.actors`: actor type → policy names (kept for actors).
    public var actors: [String: TargetPolicyNames]
    /// `spec.targets.components`: component name → outbound / inbound policy names.
    public var components: [String: ComponentPolicyNames]
    public var source: ResourceSource

    public init(
        name: String = "",
        scopes: [String] = [],
        timeouts: [String: Duration] = [:],
        retries: [String: RetrySpec] = [:],
        circuitBreakers: [String: CircuitBreakerSpec] = [:],
        apps: [String: TargetPolicyNames] = [:],
        actors: [String: TargetPolicyNames] = [:],
        components: [String: ComponentPolicyNames] = [:],
        source: ResourceSource? = nil
    ) {
        self.name = name
        self.scopes = scopes
        self.timeouts = timeouts
        self.retries = retries
        self.circuitBreakers = circuitBreakers
        self.apps = apps
        self.actors = actors
        self.components = components
        self.source = source ?? .builtIn("Resiliency/\(name)")
    }

    /// Whether the resource applies to `appID` (no scopes: every app).
    public func applies(to appID: String) -> Bool {
        self.scopes.isEmpty || self.scopes.contains(appID)
    }
}

/// `spec.policies.retries.<name>`.
public struct RetrySpec: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case constant
        case exponential
    }

    public var policy: Kind
    /// Delay between attempts of a `constant` policy (Dapr's default 5s).
    public var duration: Duration
    /// Cap of an `exponential` policy's delay (Dapr's default 60s).
    public var maxInterval: Duration
    /// Retries after the first attempt; `nil` (Dapr's `-1`, the default) retries forever.
    public var maxRetries: Int?
    /// `matching`: which failures are retried; `nil` when absent.
    public var matching: StatusCodeMatching?

    public init(policy: Kind = .constant, duration: Duration = .seconds(5), maxInterval: Duration = .seconds(60), maxRetries: Int? = nil, matching: StatusCodeMatching? = nil) {
        self.policy = policy
        self.duration = duration
        self.maxInterval = maxInterval
        self.maxRetries = maxRetries
        self.matching = matching
    }
}

/// `matching.httpStatusCodes` / `matching.gRPCStatusCodes`: codes and ranges (`429,500-599`).
public struct StatusCodeMatching: Sendable, Hashable {
    public var httpStatusCodes: [ClosedRange<Int>]
    public var grpcStatusCodes: [ClosedRange<Int>]

    public init(httpStatusCodes: [ClosedRange<Int>] = [], grpcStatusCodes: [ClosedRange<Int>] = []) {
        self.httpStatusCodes = httpStatusCodes
        self.grpcStatusCodes = grpcStatusCodes
    }

    public func matchesHTTP(_ status: Int) -> Bool { self.httpStatusCodes.contains { $0.contains(status) } }
    public func matchesGRPC(_ code: Int) -> Bool { self.grpcStatusCodes.contains { $0.contains(code) } }
}

/// `spec.policies.circuitBreakers.<name>`.
public struct CircuitBreakerSpec: Sendable, Hashable {
    /// Probes let through while half-open (default 1).
    public var maxRequests: Int
    /// Closed-state counting window; zero (the default) never resets the counts.
    public var interval: Duration
    /// How long the breaker stays open (default 60s).
    public var timeout: Duration
    /// When to trip, over `requests`, `totalSuccesses`, `totalFailures`, `consecutiveSuccesses`,
    /// `consecutiveFailures` (default `consecutiveFailures > 5`).
    public var trip: CELExpression

    public init(maxRequests: Int = 1, interval: Duration = .zero, timeout: Duration = .seconds(60), trip: CELExpression) {
        self.maxRequests = maxRequests
        self.interval = interval
        self.timeout = timeout
        self.trip = trip
    }
}

/// The policy names one target uses (`targets.apps.<id>`, `targets.actors.<type>`,
/// `targets.components.<name>.outbound|inbound`).
public struct TargetPolicyNames: Sendable, Hashable {
    public var timeout: String?
    public var retry: String?
    public var circuitBreaker: String?
    /// `circuitBreakerCacheSize` (apps and actors).
    public var circuitBreakerCacheSize: Int?
    /// `circuitBreakerScope` (actors: `id`, `type` or `both`).
    public var circuitBreakerScope: String?

    public init(timeout: String? = nil, retry: String? = nil, circuitBreaker: String? = nil, circuitBreakerCacheSize: Int? = nil, circuitBreakerScope: String? = nil) {
        self.timeout = timeout
        self.retry = retry
        self.circuitBreaker = circuitBreaker
        self.circuitBreakerCacheSize = circuitBreakerCacheSize
        self.circuitBreakerScope = circuitBreakerScope
    }
}

/// `targets.components.<name>`: calls to the component and deliveries from it.
public struct ComponentPolicyNames: Sendable, Hashable {
    public var outbound: TargetPolicyNames?
    public var inbound: TargetPolicyNames?

    public init(outbound: TargetPolicyNames? = nil, inbound: TargetPolicyNames? = nil) {
        self.outbound = outbound
        self.inbound = inbound
    }
}

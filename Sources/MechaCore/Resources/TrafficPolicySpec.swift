/// Mecha's mesh resource (`apiVersion: mecha.dev/v1alpha1`, `kind: TrafficPolicy`): how calls to one
/// app id (or one component) are balanced, ejected, routed, split, mirrored, faulted and limited.
public struct TrafficPolicySpec: Sendable, Hashable {
    public enum Target: Sendable, Hashable {
        /// `spec.target: <app id>`: service invocation to that app.
        case app(String)
        /// `spec.component: <name>`: calls to that component.
        case component(String)
    }

    public var name: String
    public var scopes: [String]
    public var target: Target
    public var loadBalancer: LoadBalancerSpec
    public var locality: LocalitySpec
    public var outlierDetection: OutlierDetectionSpec?
    /// Tried in order; the first whose `match` fits the call applies.
    public var routes: [TrafficRoute]
    public var source: ResourceSource

    public init(
        name: String = "",
        scopes: [String] = [],
        target: Target,
        loadBalancer: LoadBalancerSpec = LoadBalancerSpec(),
        locality: LocalitySpec = LocalitySpec(),
        outlierDetection: OutlierDetectionSpec? = nil,
        routes: [TrafficRoute] = [],
        source: ResourceSource? = nil
    ) {
        self.name = name
        self.scopes = scopes
        self.target = target
        self.loadBalancer = loadBalancer
        self.locality = locality
        self.outlierDetection = outlierDetection
        self.routes = routes
        self.source = source ?? .builtIn("TrafficPolicy/\(name)")
    }

    public func applies(to appID: String) -> Bool {
        self.scopes.isEmpty || self.scopes.contains(appID)
    }
}

/// `spec.loadBalancer`.
public struct LoadBalancerSpec: Sendable, Hashable {
    public enum Policy: String, Sendable, Hashable, CaseIterable {
        case peakEWMA
        case leastRequest
        case roundRobin
        case random
        case ringHash
    }

    public var policy: Policy
    /// `hashOn.header` for `ringHash`: the request header whose value picks the instance.
    public var hashOnHeader: String?

    public init(policy: Policy = .peakEWMA, hashOnHeader: String? = nil) {
        self.policy = policy
        self.hashOnHeader = hashOnHeader
    }
}

/// `spec.locality`.
public struct LocalitySpec: Sendable, Hashable {
    /// Prefer instances on this host; other hosts only when none here is available.
    public var preferSameHost: Bool

    public init(preferSameHost: Bool = false) {
        self.preferSameHost = preferSameHost
    }
}

/// `spec.outlierDetection`: eject an instance after consecutive failures, for a growing time.
public struct OutlierDetectionSpec: Sendable, Hashable {
    /// Connect errors, 5xx answers or timeouts in a row that eject an instance (default 5).
    public var consecutiveFailures: Int
    /// The first ejection's length; the n-th ejection lasts n × this (default 10s).
    public var baseEjectionTime: Duration
    /// The longest an ejection may last (default 300s).
    public var maxEjectionTime: Duration
    /// Never eject more than this share of the instances (default 50, percent).
    public var maxEjectionPercent: Int

    public init(consecutiveFailures: Int = 5, baseEjectionTime: Duration = .seconds(10), maxEjectionTime: Duration = .seconds(300), maxEjectionPercent: Int = 50) {
        self.consecutiveFailures = consecutiveFailures
        self.baseEjectionTime = baseEjectionTime
        self.maxEjectionTime = maxEjectionTime
        self.maxEjectionPercent = maxEjectionPercent
    }
}

/// One entry of `spec.routes`.
public struct TrafficRoute: Sendable, Hashable {
    public var match: RouteMatch
    /// Weighted targets; empty means the policy's own target. Weights sum to 100.
    public var split: [WeightedTarget]
    public var mirror: MirrorSpec?
    public var fault: FaultSpec?
    public var rateLimit: RateLimitSpec?
    public var globalRateLimit: GlobalRateLimitSpec?

    public init(match: RouteMatch = RouteMatch(), split: [WeightedTarget] = [], mirror: MirrorSpec? = nil, fault: FaultSpec? = nil, rateLimit: RateLimitSpec? = nil, globalRateLimit: GlobalRateLimitSpec? = nil) {
        self.match = match
        self.split = split
        self.mirror = mirror
        self.fault = fault
        self.rateLimit = rateLimit
        self.globalRateLimit = globalRateLimit
    }
}

/// `routes[].match`: every field given must fit (all optional).
public struct RouteMatch: Sendable, Hashable {
    /// The invoked method (path after `/method/`, with a leading `/`) starts with this.
    public var pathPrefix: String?
    /// The invoked method equals this exactly.
    public var path: String?
    /// HTTP verb (gRPC invocation counts as POST), case-insensitive.
    public var method: String?
    /// Header name (lowercased) → exact value.
    public var headers: [String: String]
    /// For component targets: the operation (`get`, `set`, `delete`, `publish`, …).
    public var operation: String?

    public init(pathPrefix: String? = nil, path: String? = nil, method: String? = nil, headers: [String: String] = [:], operation: String? = nil) {
        self.pathPrefix = pathPrefix
        self.path = path
        self.method = method
        self.headers = headers
        self.operation = operation
    }
}

public struct WeightedTarget: Sendable, Hashable {
    public var appID: String
    public var weight: Int

    public init(appID: String, weight: Int) {
        self.appID = appID
        self.weight = weight
    }
}

/// `routes[].mirror`: a fire-and-forget copy of a share of the calls.
public struct MirrorSpec: Sendable, Hashable {
    public var appID: String
    /// 0...100 (default 100).
    public var percent: Double

    public init(appID: String, percent: Double = 100) {
        self.appID = appID
        self.percent = percent
    }
}

/// `routes[].fault`: injected before the call leaves the sidecar.
public struct FaultSpec: Sendable, Hashable {
    public struct Delay: Sendable, Hashable {
        public var fixed: Duration
        public var percent: Double
        public init(fixed: Duration, percent: Double = 100) {
            self.fixed = fixed
            self.percent = percent
        }
    }

    public struct Abort: Sendable, Hashable {
        /// Status answered to HTTP callers (gRPC callers get the matching gRPC code).
        public var httpStatus: Int
        public var percent: Double
        public init(httpStatus: Int, percent: Double = 100) {
            self.httpStatus = httpStatus
            self.percent = percent
        }
    }

    public var delay: Delay?
    public var abort: Abort?

    public init(delay: Delay? = nil, abort: Abort? = nil) {
        self.delay = delay
        self.abort = abort
    }
}

/// `routes[].rateLimit`: a token bucket local to this sidecar.
public struct RateLimitSpec: Sendable, Hashable {
    public var requestsPerSecond: Double
    /// Bucket size (default: one second's worth, at least 1).
    public var burst: Int

    public init(requestsPerSecond: Double, burst: Int? = nil) {
        self.requestsPerSecond = requestsPerSecond
        self.burst = burst ?? max(1, Int(requestsPerSecond.rounded(.up)))
    }
}

/// `routes[].globalRateLimit`: one budget shared by every sidecar through a state store.
public struct GlobalRateLimitSpec: Sendable, Hashable {
    public var requestsPerSecond: Int
    /// The state store holding the shared counters.
    public var store: String

    public init(requestsPerSecond: Int, store: String) {
        self.requestsPerSecond = requestsPerSecond
        self.store = store
    }
}

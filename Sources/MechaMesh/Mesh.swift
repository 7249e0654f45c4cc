public import MechaCore
public import MechaResiliency
import NIOCore
import Synchronization

/// Sidecar-to-sidecar traffic, one stack for every path (the general invocation path, the
/// invocation fast path, the gRPC proxy): resolve an app id to instances → route (TrafficPolicy
/// matches, splits, mirrors, faults, local rate limits) → balance over the instances that are not
/// ejected → report how the call went (latency for peakEWMA, failures for outlier ejection).
/// One `MeshTarget` per app id holds that state, built on first use.
public final class Mesh: Sendable {
    let resolver: any NameResolver
    /// This sidecar's app id: TrafficPolicies apply when their scopes include it.
    let appID: String
    /// This host's name: `locality.preferSameHost` prefers instances registered with it.
    let hostname: String

    struct State {
        /// TrafficPolicies by target app id (already filtered to those scoped to this app).
        var policies: [String: TrafficPolicySpec]
        var targets: [String: MeshTarget] = [:]
    }

    private let state: Mutex<State>

    public init(resolver: any NameResolver, trafficPolicies: [TrafficPolicySpec] = [], appID: String = "", hostname: String = "") {
        self.resolver = resolver
        self.appID = appID
        self.hostname = hostname
        self.state = Mutex(State(policies: Self.byTarget(trafficPolicies, appID: appID)))
    }

    static func byTarget(_ trafficPolicies: [TrafficPolicySpec], appID: String) -> [String: TrafficPolicySpec] {
        var byTarget: [String: TrafficPolicySpec] = [:]
        for policy in trafficPolicies where policy.applies(to: appID) {
            if case .app(let target) = policy.target, byTarget[target] == nil { byTarget[target] = policy }
        }
        return byTarget
    }

    /// Hot reload: new TrafficPolicies apply to new calls. Every target starts again (new
    /// balancers, limiters and outlier state); calls in flight finish on the old ones.
    public func replace(trafficPolicies: [TrafficPolicySpec]) {
        let policies = Self.byTarget(trafficPolicies, appID: self.appID)
        self.state.withLock { state in
            state.policies = policies
            state.targets = [:]
        }
    }

    /// The TrafficPolicy of `appID`, if any.
    public func trafficPolicy(for appID: String) -> TrafficPolicySpec? { self.state.withLock { $0.policies[appID] } }

    /// Most app ids whose state is kept at once: callers choose the ids, so a stream of made-up
    /// ones must not grow the table without end. Past it, targets without a TrafficPolicy are
    /// forgotten (they start again with fresh statistics).
    static let maximumTargets = 4_096

    /// The state of `appID` in `namespace` (created on first use, without instances).
    public func target(appID: String, namespace: String) -> MeshTarget {
        self.target(appID: appID, namespace: namespace, onlyWithPolicy: false)!
    }

    private func target(appID: String, namespace: String, onlyWithPolicy: Bool) -> MeshTarget? {
        let key = namespace.isEmpty ? appID : "\(appID).\(namespace)"
        return self.state.withLock { state -> MeshTarget? in
            let policy = state.policies[appID]
            if onlyWithPolicy && policy == nil { return nil }
            if let found = state.targets[key] { return found }
            let made = MeshTarget(appID: appID, namespace: namespace, policy: policy, hostname: self.hostname)
            if state.targets.count >= Self.maximumTargets { state.targets = state.targets.filter { $0.value.policy != nil } }
            state.targets[key] = made
            return made
        }
    }

    /// The target of `appID` when it has a TrafficPolicy (routes, limits); nil otherwise.
    public func policyTarget(appID: String, namespace: String) -> MeshTarget? {
        self.target(appID: appID, namespace: namespace, onlyWithPolicy: true)
    }

    /// Resolves `appID` and refreshes its instance set (the general path). An app without
    /// instances gets no state here: `MeshError.noInstances`.
    public func resolved(appID: String, namespace: String) async throws -> MeshTarget {
        let instances = try await self.resolver.resolve(appID: appID, namespace: namespace)
        guard !instances.isEmpty else { throw MeshError.noInstances(appID) }
        let target = self.target(appID: appID, namespace: namespace)
        target.refresh(instances)
        return target
    }

    public enum MeshError: Error, CustomStringConvertible {
        case noInstances(String)
        public var description: String {
            switch self {
            case .noInstances(let appID): "no instances of app \(appID)"
            }
        }
    }

    /// The target with its instances refreshed from the resolver's cache, or nil when the cache
    /// has nothing fresh (the fast path then takes the general path, which resolves).
    public func cached(appID: String, namespace: String) -> MeshTarget? {
        guard let instances = self.resolver.cachedInstances(appID: appID, namespace: namespace), !instances.isEmpty else { return nil }
        let target = self.target(appID: appID, namespace: namespace)
        target.refresh(instances)
        return target
    }
}

/// One app id's traffic state. Every method is synchronous and holds a lock only for the state
/// transition, so the event loop can call it per request.
public final class MeshTarget: Sendable {
    public let appID: String
    public let namespace: String
    public let policy: TrafficPolicySpec?
    let hostname: String

    struct State: Sendable {
        var balancer: Balancer
        var outlier: OutlierDetector?
        var instances: [String: AppInstance] = [:]
        /// The instance ids last given to the balancer, to skip rebuilding for the same set.
        var signature: [String] = []
        /// Local rate limiters by route index.
        var limiters: [Int: TokenBucket] = [:]
        var random = FastRandomGenerator()
    }

    private let state: Mutex<State>

    init(appID: String, namespace: String, policy: TrafficPolicySpec?, hostname: String) {
        self.appID = appID
        self.namespace = namespace
        self.policy = policy
        self.hostname = hostname
        var state = State(balancer: Balancer(policy?.loadBalancer ?? LoadBalancerSpec()), outlier: policy?.outlierDetection.map(OutlierDetector.init))
        for (index, route) in (policy?.routes ?? []).enumerated() {
            if let limit = route.rateLimit { state.limiters[index] = TokenBucket(limit) }
        }
        self.state = Mutex(state)
    }

    /// Whether calls to this target need more than balancing (routes: splits, mirrors, faults, limits).
    public var hasRoutes: Bool { !(self.policy?.routes.isEmpty ?? true) }

    /// The header whose value `ringHash` hashes, if the policy balances that way.
    public var hashOnHeader: String? { self.policy?.loadBalancer.policy == .ringHash ? self.policy?.loadBalancer.hashOnHeader : nil }

    /// Installs the instances name resolution returned (no work when the set did not change).
    public func refresh(_ instances: [AppInstance]) {
        self.state.withLock { state in
            // The usual case, per request on the fast path: the same set, nothing to rebuild.
            if instances.count == state.signature.count, instances.indices.allSatisfy({ instances[$0].instanceID == state.signature[$0] }) {
                for instance in instances where state.instances[instance.instanceID] != instance {
                    state.instances[instance.instanceID] = instance
                }
                return
            }
            let ids = instances.map(\.instanceID)
            state.signature = ids
            state.instances = Dictionary(instances.map { ($0.instanceID, $0) }, uniquingKeysWith: { _, last in last })
            let preferred: Set<String> =
                self.policy?.locality.preferSameHost == true
                ? Set(instances.filter { $0.hostname == self.hostname }.map(\.instanceID)) : []
            state.balancer.update(endpoints: ids, preferred: preferred)
            state.outlier?.update(endpoints: ids)
        }
    }

    /// A call in progress on one instance: report its end with `finish`.
    public struct Lease: Sendable {
        public let instance: AppInstance
        let started: UInt64
    }

    /// Picks an instance for one call: not ejected, not in `excluding`, passing `filter`. The call
    /// counts as outstanding until `finish`. Nil when no instance is available.
    public func pick(hashKey: String? = nil, excluding: [String] = [], filter: (AppInstance) -> Bool = { _ in true }) -> Lease? {
        let now = NIODeadline.now().uptimeNanoseconds
        return self.state.withLock { state -> Lease? in
            let instances = state.instances
            let outlier = state.outlier
            var random = state.random
            defer { state.random = random }
            let key = state.balancer.pick(now: now, hashKey: hashKey, random: &random) { key in
                if excluding.contains(key) { return true }
                if let outlier, outlier.isEjected(key: key, now: now) { return true }
                guard let instance = instances[key] else { return true }
                return !filter(instance)
            }
            guard let key, let instance = instances[key] else { return nil }
            state.balancer.started(key: key)
            return Lease(instance: instance, started: now)
        }
    }

    /// How a call ended, for the balancer and outlier detection: a failure is a connect error, a
    /// timeout or a 5xx answer.
    public func finish(_ lease: Lease, success: Bool) {
        let now = NIODeadline.now().uptimeNanoseconds
        let latency = now >= lease.started ? now - lease.started : 0
        self.state.withLock { state in
            state.balancer.finished(key: lease.instance.instanceID, latency: latency, success: success, now: now)
            state.outlier?.record(key: lease.instance.instanceID, success: success, now: now)
        }
    }

    /// Routes one call by the TrafficPolicy's routes (`.unmatched` without routes).
    public func route(path: String, verb: String, header: (String) -> String?) -> RouteDecision {
        guard let routes = self.policy?.routes, !routes.isEmpty else { return .unmatched }
        let draws = self.state.withLock { state in RouteDraws(using: &state.random) }
        return TrafficRouter.route(routes, path: path, verb: verb, draws: draws, header: header)
    }

    /// Takes a token from the route's local limiter; true when the call may go (or there is none).
    public func admit(route index: Int?) -> Bool {
        guard let index else { return true }
        let now = NIODeadline.now().uptimeNanoseconds
        return self.state.withLock { state in
            guard var bucket = state.limiters[index] else { return true }
            defer { state.limiters[index] = bucket }
            return bucket.tryTake(now: now)
        }
    }

    /// The ids of the instances currently ejected (for tests and metadata).
    public var ejected: Set<String> {
        let now = NIODeadline.now().uptimeNanoseconds
        return self.state.withLock { $0.outlier?.ejected(now: now) ?? [] }
    }
}

public import MechaCore
import Synchronization

/// Every Resiliency resource that applies to this app, merged, with each target's policies built
/// once on first use and cached (so a breaker's counts belong to its target). A new instance is
/// built when the resources change.
public final class ResiliencyPolicies: Sendable {
    /// No resources: every target has no policies, at the cost of one branch.
    public static let empty = ResiliencyPolicies(specs: [], appID: "")

    let timeouts: [String: Duration]
    let retries: [String: RetrySpec]
    let breakers: [String: CircuitBreakerSpec]
    let apps: [String: TargetPolicyNames]
    let actors: [String: TargetPolicyNames]
    let components: [String: ComponentPolicyNames]
    /// Which resource defined each policy and each target (the `name` label of the metrics).
    let policyResources: [String: String]
    let targetResources: [String: String]
    /// Told when policies apply and act (metrics); nil: not observed.
    let observer: (any ResiliencyObserver)?
    /// True when no resource applies: lookups return `TargetPolicy.none` without a lock.
    public let isEmpty: Bool
    private let cache = Mutex<[PolicyTarget: TargetPolicy]>([:])
    let now: @Sendable () -> ContinuousClock.Instant
    let sleep: @Sendable (Duration) async throws -> Void
    let jitter: @Sendable () -> Double

    /// Merges the resources scoped to `appID` (a resource without scopes applies to every app).
    /// Names are unique across resources (the loader refuses duplicates); the first wins otherwise.
    public init(
        specs: [ResiliencySpec],
        appID: String,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { .now },
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
        jitter: @escaping @Sendable () -> Double = { Double.random(in: 0...1) },
        observer: (any ResiliencyObserver)? = nil
    ) {
        var timeouts: [String: Duration] = [:]
        var retries: [String: RetrySpec] = [:]
        var breakers: [String: CircuitBreakerSpec] = [:]
        var apps: [String: TargetPolicyNames] = [:]
        var actors: [String: TargetPolicyNames] = [:]
        var components: [String: ComponentPolicyNames] = [:]
        let applicable = specs.filter { $0.applies(to: appID) }
        var policyResources: [String: String] = [:]
        var targetResources: [String: String] = [:]
        for spec in applicable {
            for name in [Array(spec.timeouts.keys), Array(spec.retries.keys), Array(spec.circuitBreakers.keys)].joined() where policyResources[name] == nil {
                policyResources[name] = spec.name
            }
            for key in spec.apps.keys.map({ "app:\($0)" }) + spec.actors.keys.map({ "actor:\($0)" }) + spec.components.keys.map({ "component:\($0)" })
            where targetResources[key] == nil {
                targetResources[key] = spec.name
            }
            timeouts.merge(spec.timeouts) { first, _ in first }
            retries.merge(spec.retries) { first, _ in first }
            breakers.merge(spec.circuitBreakers) { first, _ in first }
            apps.merge(spec.apps) { first, _ in first }
            actors.merge(spec.actors) { first, _ in first }
            components.merge(spec.components) { first, _ in first }
        }
        self.timeouts = timeouts
        self.retries = retries
        self.breakers = breakers
        self.apps = apps
        self.actors = actors
        self.components = components
        self.policyResources = policyResources
        self.targetResources = targetResources
        self.observer = observer
        self.isEmpty = applicable.isEmpty
        self.now = now
        self.sleep = sleep
        self.jitter = jitter
    }

    /// Most targets whose policies are kept at once.
    static let maximumCachedTargets = 10_000

    /// Names of the loaded resources' policies, for logs and metadata.
    public var policyCount: Int { self.timeouts.count + self.retries.count + self.breakers.count }

    /// Whether `appID` is named under `targets.apps`: then its policies replace Dapr's built-in
    /// service invocation retries (default policies do not).
    public func namesApp(_ appID: String) -> Bool {
        self.apps[appID] != nil
    }

    public func app(_ appID: String) -> TargetPolicy {
        self.policy(for: .app(appID))
    }

    public func component(_ name: String, _ category: ComponentCategory, _ direction: PolicyTarget.Direction) -> TargetPolicy {
        self.policy(for: .component(name, category, direction))
    }

    public func actor(_ type: String) -> TargetPolicy {
        self.policy(for: .actor(type))
    }

    /// The cached policy of `target`, built on first use.
    public func policy(for target: PolicyTarget) -> TargetPolicy {
        if self.isEmpty { return .none }
        if let cached = self.cache.withLock({ $0[target] }) { return cached }
        let built = self.build(target)
        return self.cache.withLock { cache in
            if let raced = cache[target] { return raced }
            // Callers choose app ids: the cache is bounded so a stream of made-up targets cannot
            // grow it without end (an evicted target starts with fresh breakers).
            if cache.count >= Self.maximumCachedTargets, let victim = cache.keys.first { cache[victim] = nil }
            cache[target] = built
            return built
        }
    }

    /// The names a target uses. As in daprd, a target named under `targets` uses exactly the
    /// policies it names (a missing kind stays unset); only targets not named at all fall back to
    /// Dapr's default policies, each kind separately, most specific name first.
    func names(for target: PolicyTarget) -> (timeout: String?, retry: String?, breaker: String?, cacheSize: Int?, explicit: Bool) {
        let explicit: TargetPolicyNames?
        let scopes: [String]
        switch target {
        case .app(let id):
            explicit = self.apps[id]
            scopes = ["App", ""]
        case .actor(let type):
            explicit = self.actors[type]
            scopes = ["Actor", ""]
        case .component(let name, let category, let direction):
            let entry = self.components[name]
            explicit = direction == .outbound ? entry?.outbound : entry?.inbound
            var list: [String] = []
            if let typeName = category.defaultPolicyTypeName { list.append("\(typeName)Component\(direction.rawValue)") }
            list += ["Component\(direction.rawValue)", "Component", ""]
            scopes = list
        }
        if let explicit {
            return (explicit.timeout, explicit.retry, explicit.circuitBreaker, explicit.circuitBreakerCacheSize, true)
        }
        func fallback(_ kind: String, _ known: (String) -> Bool) -> String? {
            scopes.lazy.map { "Default\($0)\(kind)Policy" }.first(where: known)
        }
        return (
            fallback("Timeout") { self.timeouts[$0] != nil },
            fallback("Retry") { self.retries[$0] != nil },
            fallback("CircuitBreaker") { self.breakers[$0] != nil },
            nil,
            false
        )
    }

    /// The resource that defined `target` under `targets` (explicit) or the default policy `name`.
    func resource(of target: PolicyTarget, policy name: String, explicit: Bool) -> String {
        guard explicit else { return self.policyResources[name] ?? "" }
        let key =
            switch target {
            case .app(let id): "app:\(id)"
            case .actor(let type): "actor:\(type)"
            case .component(let component, _, _): "component:\(component)"
            }
        return self.targetResources[key] ?? self.policyResources[name] ?? ""
    }

    /// The monitor of `target`'s policies, when observed.
    func monitor(_ target: PolicyTarget, timeout: String?, retry: String?, breaker: String?, explicit: Bool) -> PolicyMonitor? {
        guard let observer = self.observer else { return nil }
        func scope(_ name: String?) -> ResiliencyScope? {
            name.map { ResiliencyScope(resource: self.resource(of: target, policy: $0, explicit: explicit), target: target.metricsLabel, direction: target.flowDirection) }
        }
        return PolicyMonitor(observer: observer, timeout: scope(timeout), retry: scope(retry), breaker: scope(breaker))
    }

    func build(_ target: PolicyTarget) -> TargetPolicy {
        let names = self.names(for: target)
        let timeout = names.timeout.flatMap { name in self.timeouts[name].map { (name: name, duration: $0) } }
        let retry = names.retry.flatMap { name in
            self.retries[name].map { spec in (name: name, backoff: Self.backoff(spec), matching: Self.matching(spec)) }
        }
        let breakerName = names.breaker.flatMap { self.breakers[$0] == nil ? nil : $0 }
        let monitor = self.monitor(
            target, timeout: timeout?.name, retry: retry?.name, breaker: breakerName, explicit: names.explicit)
        var breaker: BreakerTemplate?
        if let name = breakerName, let spec = self.breakers[name] {
            let now = self.now
            // daprd keeps one breaker per endpoint of an app (`app:method`, LRU of
            // `circuitBreakerCacheSize`, default 100) and one per component or actor type.
            let perKey: Int? = if case .app = target { names.cacheSize ?? 100 } else { nil }
            var onStateChange: (@Sendable (String) -> Void)?
            if let monitor { onStateChange = { state in monitor.breakerChanged(to: state) } }
            let notify = onStateChange
            breaker = BreakerTemplate(name: name, cacheSize: perKey) {
                CircuitBreaker(name: name, machine: Self.machine(spec), now: now, onStateChange: notify)
            }
        }
        if timeout == nil && retry == nil && breaker == nil { return .none }
        return TargetPolicy(
            target: target, timeout: timeout, retry: retry, breakers: breaker, sleep: self.sleep, jitter: self.jitter, monitor: monitor)
    }

    static func backoff(_ spec: RetrySpec) -> Backoff {
        switch spec.policy {
        case .constant: Backoff(.constant(spec.duration), maxRetries: spec.maxRetries)
        case .exponential: Backoff.exponential(maxRetries: spec.maxRetries, maxInterval: spec.maxInterval)
        }
    }

    static func matching(_ spec: RetrySpec) -> RetryMatching {
        RetryMatching(httpStatusCodes: spec.matching?.httpStatusCodes ?? [], grpcStatusCodes: spec.matching?.grpcStatusCodes ?? [])
    }

    /// The breaker machine a spec builds (for tests).
    public static func machineForTests(_ spec: CircuitBreakerSpec) -> CircuitBreakerStateMachine { self.machine(spec) }

    /// Dapr evaluates `trip` as CEL over the breaker's counts; an evaluation error does not trip.
    static func machine(_ spec: CircuitBreakerSpec) -> CircuitBreakerStateMachine {
        let trip = spec.trip
        return CircuitBreakerStateMachine(maxRequests: spec.maxRequests, interval: spec.interval, timeout: spec.timeout) { counts in
            let variables: [String: CELValue] = [
                "requests": .int(Int64(counts.requests)),
                "totalSuccesses": .int(Int64(counts.totalSuccesses)),
                "totalFailures": .int(Int64(counts.totalFailures)),
                "consecutiveSuccesses": .int(Int64(counts.consecutiveSuccesses)),
                "consecutiveFailures": .int(Int64(counts.consecutiveFailures)),
            ]
            return (try? trip.evaluateBool(variables)) ?? false
        }
    }
}

import MechaCore

/// The kind of policy daprd's resiliency metrics name in their `policy` label.
public enum ResiliencyPolicyKind: String, Sendable, Hashable, CaseIterable {
    case timeout
    case retry
    case circuitBreaker = "circuitbreaker"
}

/// Where a policy applies, as daprd's resiliency metrics label it: the Resiliency resource that
/// gave the policy (`name`), the target (`app_<id>`, `<Type>_<component>` as `Statestore_orders`,
/// `actor_<type>`) and the flow direction (`outbound`, `inbound`).
public struct ResiliencyScope: Sendable, Hashable {
    public var resource: String
    public var target: String
    public var direction: String

    public init(resource: String, target: String, direction: String) {
        self.resource = resource
        self.target = target
        self.direction = direction
    }
}

/// Told when a target's policies apply to a call and when one of them acts — daprd's
/// `dapr_resiliency_count`, `dapr_resiliency_activations_total` and `dapr_resiliency_cb_state`.
/// Called on the caller's task or event loop; must not block.
public protocol ResiliencyObserver: Sendable {
    /// A call runs under a policy of `kind`; `status` is the breaker's state for breakers, "" otherwise.
    func policyApplied(_ kind: ResiliencyPolicyKind, _ scope: ResiliencyScope, status: String)
    /// A policy acted: a timeout fired (once per call), a retry is made, a breaker changed state
    /// (`status` its new state).
    func policyActivated(_ kind: ResiliencyPolicyKind, _ scope: ResiliencyScope, status: String)
}

/// One target's policies as the observer sees them: the scope of each kind the target has
/// (each kind may come from a different resource).
public struct PolicyMonitor: Sendable {
    let observer: any ResiliencyObserver
    let timeout: ResiliencyScope?
    let retry: ResiliencyScope?
    let breaker: ResiliencyScope?

    public init(observer: any ResiliencyObserver, timeout: ResiliencyScope?, retry: ResiliencyScope?, breaker: ResiliencyScope?) {
        self.observer = observer
        self.timeout = timeout
        self.retry = retry
        self.breaker = breaker
    }

    /// A call begins under the target's policies (daprd counts at policy lookup, once per call).
    func began(breakerState: String?) {
        if let scope = self.timeout { self.observer.policyApplied(.timeout, scope, status: "") }
        if let scope = self.retry { self.observer.policyApplied(.retry, scope, status: "") }
        if let scope = self.breaker, let breakerState { self.observer.policyApplied(.circuitBreaker, scope, status: breakerState) }
    }

    func timedOut() {
        if let scope = self.timeout { self.observer.policyActivated(.timeout, scope, status: "") }
    }

    func retried() {
        if let scope = self.retry { self.observer.policyActivated(.retry, scope, status: "") }
    }

    func breakerChanged(to state: String) {
        if let scope = self.breaker { self.observer.policyActivated(.circuitBreaker, scope, status: state) }
    }
}

extension PolicyTarget {
    /// daprd's `target` label: `app_<id>`, `<Type>_<name>` for components (`Statestore_orders`,
    /// `Pubsub_events`), `actor_<type>`.
    public var metricsLabel: String {
        switch self {
        case .app(let id): "app_\(id)"
        case .actor(let type): "actor_\(type)"
        case .component(let name, let category, _): "\(category.defaultPolicyTypeName ?? category.rawValue)_\(name)"
        }
    }

    /// daprd's `flow_direction` label.
    public var flowDirection: String {
        if case .component(_, _, .inbound) = self { return "inbound" }
        return "outbound"
    }
}

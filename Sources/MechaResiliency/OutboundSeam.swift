public import MechaCore
import Synchronization

/// The one place every call the sidecar makes goes through — to a component, to its own app, to
/// another sidecar: it runs the target's policy pipeline, then the call. Metrics, spans and error
/// mapping attach here once. The policies are replaced as a whole when the resources change.
public final class OutboundSeam: Sendable {
    private let current: Mutex<ResiliencyPolicies>
    /// TrafficPolicies on components (faults, local rate limits), by component name.
    let gates: [String: ComponentTrafficGate]

    /// `trafficPolicies`: those targeting components are applied here (app targets belong to the mesh).
    public init(_ policies: ResiliencyPolicies = .empty, trafficPolicies: [TrafficPolicySpec] = [], appID: String = "") {
        self.current = Mutex(policies)
        var gates: [String: ComponentTrafficGate] = [:]
        for policy in trafficPolicies where policy.applies(to: appID) && !policy.routes.isEmpty {
            if case .component(let name) = policy.target, gates[name] == nil {
                gates[name] = ComponentTrafficGate(component: name, routes: policy.routes)
            }
        }
        self.gates = gates
    }

    public var policies: ResiliencyPolicies { self.current.withLock { $0 } }

    /// Installs freshly built policies (new breakers; calls in flight finish under the old ones).
    public func replace(_ policies: ResiliencyPolicies) {
        self.current.withLock { $0 = policies }
    }

    /// The policy of `target` (for callers that drive attempts themselves, like the fast path).
    public func policy(for target: PolicyTarget) -> TargetPolicy {
        let policies = self.policies
        return policies.isEmpty ? .none : policies.policy(for: target)
    }

    /// Runs `body` under `target`'s policies. `operation` names the call (`get`, `publish`,
    /// `invoke`, …) for what attaches here later (metrics, spans). The body receives the attempt
    /// number, 0 for the first.
    /// `fallback` is a built-in policy used only when the resources give the target none (Dapr's
    /// built-in service invocation retries, the transactional outbox's publish retries).
    public func call<Output: Sendable>(
        _ target: PolicyTarget,
        _ operation: OperationName,
        fallback: TargetPolicy? = nil,
        _ body: @Sendable (Int) async throws -> Output
    ) async throws -> Output {
        var policy = self.policy(for: target)
        if policy.isEmpty, let fallback { policy = fallback }
        if !self.gates.isEmpty, case .component(let name, _, .outbound) = target, let gate = self.gates[name] {
            try await gate.pass(operation)
        }
        return try await policy.execute(body)
    }
}

/// The name of an outbound operation (`get`, `set`, `publish`, `invoke`, …).
public struct OperationName: Sendable, Hashable, ExpressibleByStringLiteral, CustomStringConvertible {
    public let name: String
    public init(_ name: String) { self.name = name }
    public init(stringLiteral name: String) { self.name = name }
    public var description: String { self.name }
}

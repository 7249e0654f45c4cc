public import MechaCore
import Synchronization

/// Mecha `AccessPolicy` resources, enforced for this sidecar's own app: may it read or write a
/// state key, publish or subscribe to a topic, read a secret? The same evaluator as invocation
/// access control (`AccessControl`), with names compared exactly (keys are case-sensitive) and
/// the block's verbs. Without any AccessPolicy nothing is checked (one atomic load per call).
/// Replaced as a whole on hot reload.
public final class BlockAccess: Sendable {
    public enum Block: String, Sendable {
        case state
        case pubsub
        case secrets
    }

    /// This app, as the policies name callers.
    let caller: CallerIdentity
    private let compiled = Mutex<[(name: String, control: AccessControl)]>([])
    private let active = Atomic<Bool>(false)

    public init(caller: CallerIdentity, policies: [AccessPolicySpec] = []) {
        self.caller = caller
        self.replace(policies)
    }

    /// Installs `policies` (all must allow a call).
    public func replace(_ policies: [AccessPolicySpec]) {
        let compiled = policies.map { (name: $0.name, control: AccessControl(spec: $0.access, caseInsensitiveNames: false, checksVerbs: true)) }
        self.compiled.withLock { $0 = compiled }
        self.active.store(!compiled.isEmpty, ordering: .releasing)
    }

    /// Whether any policy is installed.
    public var isActive: Bool { self.active.load(ordering: .acquiring) }

    /// Nil when this app may `verb` the `resource` (key, topic, secret; empty for the component
    /// as a whole) of `component`; else why not, naming the policy.
    public func denial(_ block: Block, component: String, resource: String, verb: String) -> String? {
        guard self.isActive else { return nil }
        let path = resource.isEmpty ? "/\(block.rawValue)/\(component)" : "/\(block.rawValue)/\(component)/\(resource)"
        for (name, control) in self.compiled.withLock({ $0 }) {
            if case .denied = control.decide(caller: self.caller, method: path, verb: verb) {
                return "access policy \(name) denies \(self.caller.spiffeID) to \(verb) \(path)"
            }
        }
        return nil
    }

    /// The error a denied state operation answers: 403 / PERMISSION_DENIED.
    public func stateError(component: String, keys: [String], verb: String) -> APIError? {
        guard self.isActive else { return nil }
        for key in keys {
            if let reason = self.denial(.state, component: component, resource: key, verb: verb) {
                return APIError(errorCode: "ERR_PERMISSION_DENIED", message: reason, httpStatus: 403, grpcStatus: .permissionDenied)
            }
        }
        return nil
    }
}

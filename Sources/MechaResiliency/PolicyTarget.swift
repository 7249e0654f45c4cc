public import MechaCore

/// What a call is aimed at, as Dapr's Resiliency `targets` name it.
public enum PolicyTarget: Sendable, Hashable, CustomStringConvertible {
    /// Calls flowing out of or into a component.
    public enum Direction: String, Sendable, Hashable {
        /// The sidecar calls the component (get, save, publish, invoke a binding, …).
        case outbound = "Outbound"
        /// The component delivers to the app (pub/sub messages, input binding events).
        case inbound = "Inbound"
    }

    /// Service invocation of an app id (its sidecar, or this sidecar's own app).
    case app(String)
    /// A component by name and building block.
    case component(String, ComponentCategory, Direction)
    /// An actor type.
    case actor(String)

    public var description: String {
        switch self {
        case .app(let id): "app \(id)"
        case .component(let name, _, let direction): "component \(name) (\(direction.rawValue.lowercased()))"
        case .actor(let type): "actor type \(type)"
        }
    }
}

extension ComponentCategory {
    /// The name Dapr's default policies use for the building block (`DefaultStatestoreComponent…`).
    var defaultPolicyTypeName: String? {
        switch self {
        case .state: "Statestore"
        case .pubsub: "Pubsub"
        case .bindings: "Binding"
        case .secretstores: "Secretstore"
        case .configuration: "Configuration"
        case .lock: "Lock"
        case .crypto: "Crypto"
        case .conversation: "Conversation"
        default: nil
        }
    }
}

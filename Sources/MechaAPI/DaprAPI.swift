public import MechaRuntime
import Logging

/// Every building block, built once per sidecar and shared by the HTTP and gRPC surfaces.
public struct DaprAPI: Sendable {
    public var identity: SidecarIdentity
    public var state: StateAPI
    public var pubsub: PubSubAPI
    public var invoke: InvokeAPI
    public var bindings: BindingsAPI
    public var secrets: SecretsAPI
    public var lock: LockAPI
    public var conversation: ConversationAPI
    public var configuration: ConfigurationAPI
    public var metadata: MetadataAPI
    /// Virtual actors (off, answering ERR_ACTOR_RUNTIME_NOT_FOUND, without an actor state store).
    public var actors: ActorsAPI
    public var readiness: Readiness
    /// Component health as calls show it (`GET /v1.0/healthz?detail`).
    public var health: ComponentHealth
    /// Starts a graceful shutdown (`POST /v1.0/shutdown`).
    public var shutdown: @Sendable () -> Void

    public init(
        identity: SidecarIdentity,
        state: StateAPI,
        pubsub: PubSubAPI,
        invoke: InvokeAPI,
        bindings: BindingsAPI,
        secrets: SecretsAPI,
        lock: LockAPI,
        conversation: ConversationAPI,
        configuration: ConfigurationAPI,
        metadata: MetadataAPI,
        readiness: Readiness,
        health: ComponentHealth = ComponentHealth(),
        actors: ActorsAPI? = nil,
        shutdown: @escaping @Sendable () -> Void
    ) {
        self.actors = actors ?? ActorsAPI(
            identity: identity, components: ComponentStore(), stateStoreName: nil, placement: nil, forwarder: nil, logger: Logger(label: "mecha.actors"))
        self.health = health
        self.identity = identity
        self.state = state
        self.pubsub = pubsub
        self.invoke = invoke
        self.bindings = bindings
        self.secrets = secrets
        self.lock = lock
        self.conversation = conversation
        self.configuration = configuration
        self.metadata = metadata
        self.readiness = readiness
        self.shutdown = shutdown
    }
}

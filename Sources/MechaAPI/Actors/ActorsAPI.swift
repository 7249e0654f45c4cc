import MechaResiliency
public import Logging
public import MechaCore
public import MechaRuntime
import Synchronization

/// Sends an actor call to the sidecar that hosts the actor (the mesh's sidecar-to-sidecar hop).
public protocol ActorForwarder: Sendable {
    /// Sends `request` (a Dapr actor API path such as `v1.0/actors/T/I/method/M`) to `host` and
    /// returns its answer whole.
    func forward(_ request: ActorForwardRequest, to host: ActorHost) async throws -> ActorReply
}

/// An actor API call on its way to the hosting sidecar.
public struct ActorForwardRequest: Sendable {
    public var verb: String
    /// Without the leading slash.
    public var path: String
    public var headers: HeaderList
    public var contentType: String?
    public var body: [UInt8]
    /// How many sidecars forwarded it already (a stale table may send it on once more).
    public var hops: Int
}

/// One operation of an actor state transaction.
public enum ActorStateOperation: Sendable, Hashable {
    case upsert(key: String, value: [UInt8], metadata: [String: String])
    case delete(key: String)

    var key: String {
        switch self {
        case .upsert(let key, _, _), .delete(let key): key
        }
    }
}

/// A reminder as the API registers it.
public struct ReminderRegistration: Sendable {
    public var dueTime: String
    public var period: String
    public var ttl: String
    public var data: JSONValue

    public init(dueTime: String = "", period: String = "", ttl: String = "", data: JSONValue = .null) {
        self.dueTime = dueTime
        self.period = period
        self.ttl = ttl
        self.data = data
    }
}

/// A timer as the API registers it.
public struct TimerRegistration: Sendable {
    public var dueTime: String
    public var period: String
    public var ttl: String
    public var callback: String
    public var data: JSONValue

    public init(dueTime: String = "", period: String = "", ttl: String = "", callback: String = "", data: JSONValue = .null) {
        self.dueTime = dueTime
        self.period = period
        self.ttl = ttl
        self.callback = callback
        self.data = data
    }
}

/// The actors building block, written once for both surfaces and the sidecar-to-sidecar hop:
/// routing by placement, turns, state, reminders and timers, and daprd's errors.
public final class ActorsAPI: Sendable {
    public static let reentrancyHeader = "Dapr-Reentrancy-Id"
    /// Forwarded calls carry their hop count here (the receiving sidecar's loop guard).
    public static let hopsHeader = "x-mecha-actor-hops"
    static let maxHops = 3

    let identity: SidecarIdentity
    let components: ComponentStore
    /// The state store marked `actorStateStore: "true"` (nil: none, and the actor runtime is off).
    public let stateStoreName: String?
    let placement: ActorPlacement?
    let forwarder: (any ActorForwarder)?
    let reminderStore: ActorReminderStore?
    let lookupTimeout: Duration
    let logger: Logger
    private let runtimeBox = Mutex<ActorRuntime?>(nil)
    struct Hosting {
        /// This sidecar as a member (types filled from the app's configuration).
        var template: ActorHost?
        var maxBodySize = 4 << 20
        var observer: (any ActorObserver)?
        /// The app hosts actors now.
        var active = false
        /// The gRPC actor stream serving them (nil: HTTP).
        var stream: ObjectIdentifier?
    }
    let hosting = Mutex(Hosting())
    private let closed = Mutex(false)

    public init(
        identity: SidecarIdentity, components: ComponentStore, stateStoreName: String?, placement: ActorPlacement?, forwarder: (any ActorForwarder)?,
        lookupTimeout: Duration = .seconds(10), logger: Logger
    ) {
        self.identity = identity
        self.components = components
        self.stateStoreName = stateStoreName
        self.placement = placement
        self.forwarder = forwarder
        self.reminderStore = stateStoreName.map { ActorReminderStore(components: components, storeName: $0) }
        self.lookupTimeout = lookupTimeout
        self.logger = logger
    }

    /// The runtime hosting this app's actors, once the app declared some.
    public var runtime: ActorRuntime? { self.runtimeBox.withLock { $0 } }

    func install(_ runtime: ActorRuntime?) { self.runtimeBox.withLock { $0 = runtime } }

    /// The sidecar stops: calls get ERR_ACTOR_RUNTIME_CLOSED.
    func close() { self.closed.withLock { $0 = true } }

    /// The actor state store named by the components (first marked `actorStateStore: "true"`).
    public static func actorStateStoreName(in components: ComponentStore) -> String? {
        components.entries(in: .state).first { entry in
            (entry.spec.metadata["actorStateStore"] ?? "").lowercased() == "true"
        }?.spec.name
    }

    /// Headers the app should not see from the caller (hop-by-hop, framing, Dapr's own).
    public static func forwardable(_ name: String) -> Bool {
        let lowered = name.lowercased()
        return !(lowered == "connection" || lowered == "keep-alive" || lowered == "transfer-encoding" || lowered == "upgrade" || lowered == "te"
            || lowered == "trailer" || lowered == "proxy-connection" || lowered == "host" || lowered == "content-length" || lowered == "dapr-api-token"
            || lowered.hasPrefix("x-mecha-") || lowered.hasPrefix(":"))
    }

    // MARK: Checks

    func requireRuntime() throws(APIError) -> ActorPlacement {
        if self.closed.withLock({ $0 }) { throw .actorRuntimeClosed }
        guard self.stateStoreName != nil, let placement = self.placement else { throw .actorRuntimeNotFound }
        return placement
    }

    /// Workflow engines own `dapr.internal.*` types; the user API may not touch them.
    func rejectReserved(_ type: String) throws(APIError) {
        if type.hasPrefix("dapr.internal.") { throw .actorTypeReserved(type) }
    }

    /// daprd's `ValidateName` for actor types, ids, reminder and timer names: no `#`, `?`, NUL,
    /// `/`, `\\`, control bytes, and not `.` or `..` (they would travel in the app's URL).
    static func validateName(_ value: String, _ what: String) throws(APIError) {
        guard !value.isEmpty else { throw .badRequest("invalid \(what): name cannot be empty") }
        if value.utf8.contains(where: { $0 == 0x23 || $0 == 0x3F || $0 == 0 || $0 == 0x2F || $0 == 0x5C }) {
            throw .badRequest("invalid \(what): name contains forbidden character: \(GoQuote.strconv(value))")
        }
        if let index = value.utf8.firstIndex(where: { $0 < 0x20 || $0 == 0x7F }) {
            let position = value.utf8.distance(from: value.utf8.startIndex, to: index)
            throw .badRequest("invalid \(what): name contains control character at position \(position): \(GoQuote.strconv(value))")
        }
        if value == "." || value == ".." {
            throw .badRequest("invalid \(what): name is a path traversal sequence: \(GoQuote.strconv(value))")
        }
    }

    /// Whether this sidecar serves `key` now: placement gives it here under a table every member
    /// applied (or it is already active here under the current table) and the lease holds.
    func servesHere(_ key: ActorKey, placement: ActorPlacement) -> Bool {
        guard let runtime = self.runtime, runtime.hosts(type: key.type), self.hosting.withLock({ $0.active }), placement.holdsLease() else { return false }
        let table = placement.table
        guard table.host(type: key.type, id: key.id)?.instanceID == self.identity.instanceID else { return false }
        return placement.isSettled || runtime.isActive(key)
    }

    // MARK: Invocation

    /// Calls `method` of the actor wherever it lives; the app's answer comes back as it gave it.
    /// The first sidecar runs Resiliency `targets.actors.<type>` (or the default actor policies)
    /// around the whole call, as daprd's pre-lock policy.
    public func invoke(_ key: ActorKey, method: String, verb: String, call: ActorCall, hops: Int = 0) async throws(APIError) -> ActorReply {
        _ = try self.requireRuntime()
        guard hops == 0 else { return try await self.route(key, method: method, verb: verb, call: call, hops: hops) }
        do {
            return try await self.components.outbound.call(.actor(key.type), "InvokeActor") { _ in
                try await self.route(key, method: method, verb: verb, call: call, hops: hops)
            }
        } catch let error as APIError {
            throw error
        } catch {
            throw .actorInvoke("\(error)")
        }
    }

    func route(_ key: ActorKey, method: String, verb: String, call: ActorCall, hops: Int) async throws(APIError) -> ActorReply {
        let placement = try self.requireRuntime()
        try Self.validateName(key.type, "actorType")
        try Self.validateName(key.id, "actorId")
        // daprd's NormalizeMethod: no way out of the actor's URL on the app.
        let normalized: String
        switch InvocationMethod.normalize(method) {
        case .success(let value): normalized = value
        case .failure(let error): throw .badRequest(error.description)
        }
        var call = call
        call.path = "method/" + normalized
        for attempt in 0..<6 {
            if attempt > 0 { try? await Task.sleep(for: .milliseconds(Int64(50 * attempt))) }
            let host: ActorHost
            if self.servesHere(key, placement: placement), let me = placement.table.host(type: key.type, id: key.id) {
                host = me
            } else {
                do {
                    // A type no host serves yet: its host may be starting; look again for a while.
                    var found = try await placement.lookup(type: key.type, id: key.id, timeout: self.lookupTimeout)
                    let deadline = ContinuousClock.now + .seconds(3)
                    while found == nil, ContinuousClock.now < deadline {
                        try? await Task.sleep(for: .milliseconds(250))
                        found = try await placement.lookup(type: key.type, id: key.id, timeout: self.lookupTimeout)
                    }
                    guard let found else {
                        throw APIError(
                            errorCode: "ERR_ACTOR_INVOKE_METHOD", message: "error invoke actor method: did not find address for actor '\(key.type)/\(key.id)'",
                            httpStatus: 500, grpcStatus: .failedPrecondition)
                    }
                    host = found
                } catch let error as APIError {
                    throw error
                } catch {
                    throw .actorInvoke("\(error)")
                }
            }
            if host.instanceID == self.identity.instanceID {
                guard let runtime = self.runtime else { throw .actorNoAppChannel }
                let settings = runtime.config.settings(for: key.type)
                var chain = call.headers.first(Self.reentrancyHeader)
                if settings.reentrancy && chain == nil {
                    chain = RandomID.uuid()
                }
                do {
                    return try await runtime.call(key, call, chain: chain) { self.servesHere(key, placement: placement) }
                } catch .notHere {
                    continue
                } catch .stackDepth {
                    throw .actorStackDepth
                } catch .app(let detail) {
                    throw .actorInvoke(detail)
                } catch {
                    throw .actorInvoke("the call was cancelled")
                }
            }
            guard hops < Self.maxHops, let forwarder = self.forwarder else {
                throw .actorInvoke("the actor \(key) moved between sidecars \(hops) times in a row; placement is settling")
            }
            var headers = call.headers
            headers.remove(Self.hopsHeader)
            let request = ActorForwardRequest(
                verb: verb, path: "v1.0/actors/\(key.type)/\(key.id)/method/\(method)", headers: headers, contentType: call.contentType, body: call.body,
                hops: hops + 1)
            do {
                return try await forwarder.forward(request, to: host)
            } catch let error as APIError {
                throw error
            } catch {
                // The host went away (or placement is stale): look it up again.
                self.logger.debug("actor \(key): the sidecar at \(host.host):\(host.internalPort) did not answer (\(error)); looking the actor up again")
                if attempt == 5 { throw .actorInvoke("\(error)") }
            }
        }
        throw .actorInvoke("the actor \(key) could not be placed")
    }

    // MARK: State

    /// `<appID>||<type>||<id>||<key>`, daprd's layout.
    func stateKey(_ key: ActorKey, _ name: String) -> String {
        "\(self.identity.appID)||\(key.type)||\(key.id)||\(name)"
    }

    func actorStore() throws(APIError) -> any StateStore {
        _ = try self.requireRuntime()
        guard let name = self.stateStoreName, let store = self.components.stateStore(named: name) else { throw .actorRuntimeNotFound }
        return store
    }

    public func getState(_ key: ActorKey, name: String) async throws(APIError) -> StateItem? {
        try self.rejectReserved(key.type)
        let store = try self.actorStore()
        let stored = self.stateKey(key, name)
        do {
            return try await self.components.call(self.stateStoreName!, .state, "get") { try await store.get(StateGetRequest(key: stored)) }
        } catch {
            throw .actorStateGet("\(error)")
        }
    }

    /// Applies `operations` atomically in the actor state store.
    public func transaction(_ key: ActorKey, _ operations: [ActorStateOperation]) async throws(APIError) {
        try self.rejectReserved(key.type)
        let store = try self.actorStore()
        guard !operations.isEmpty else { return }
        var converted: [StateOperation] = []
        for operation in operations {
            guard !operation.key.isEmpty else { throw .actorStateTransaction("missing key in operation") }
            switch operation {
            case .upsert(let name, let value, let metadata):
                var ttl: Duration?
                if let seconds = metadata["ttlInSeconds"] {
                    guard let value = Int64(seconds) else { throw .actorStateTransaction("invalid ttlInSeconds \(seconds)") }
                    if value > 0 { ttl = .seconds(value) }
                }
                converted.append(.set(StateSetRequest(key: self.stateKey(key, name), value: value, ttl: ttl, metadata: metadata.filter { $0.key != "ttlInSeconds" })))
            case .delete(let name):
                converted.append(.delete(StateDeleteRequest(key: self.stateKey(key, name))))
            }
        }
        guard let transactional = store as? any TransactionalStateStore else {
            throw .actorStateTransaction("the actor state store \(self.stateStoreName!) does not support transactions")
        }
        if let max = transactional.maxOperationsPerTransaction, converted.count > max {
            throw .actorStateTransaction("the transaction contains \(converted.count) operations, more than the maximum of \(max) of the state store")
        }
        let operations = converted
        do {
            try await self.components.call(self.stateStoreName!, .state, "transaction") { try await transactional.transact(operations, metadata: [:]) }
        } catch {
            throw .actorStateTransaction("\(error)")
        }
    }

    // MARK: Reminders

    /// Reminders are kept for the types this app hosts (daprd's rule).
    func reminderStoreForHostedType(_ type: String) throws(APIError) -> ActorReminderStore {
        _ = try self.requireRuntime()
        try self.rejectReserved(type)
        guard let runtime = self.runtime, runtime.hosts(type: type), let store = self.reminderStore else { throw .actorReminderNotHosted }
        return store
    }

    public func createReminder(_ key: ActorKey, name: String, _ registration: ReminderRegistration) async throws(APIError) {
        let store = try self.reminderStoreForHostedType(key.type)
        try Self.validateName(key.id, "actorId")
        try Self.validateName(name, "name")
        let reminder: ActorReminder
        do {
            reminder = try ActorReminder(
                actor: key, name: name, data: registration.data, dueTime: registration.dueTime, period: registration.period, ttl: registration.ttl,
                registered: WallClock.now())
        } catch {
            throw .actorReminderCreate(error.description)
        }
        do {
            try await store.update(type: key.type) { reminders in
                reminders.removeAll { $0.actor == key && $0.name == name }
                reminders.append(reminder)
            }
        } catch {
            throw .actorReminderCreate("\(error)")
        }
        self.reminderDoorbell.ring()
    }

    public func getReminder(_ key: ActorKey, name: String) async throws(APIError) -> ActorReminder {
        let store = try self.reminderStoreForHostedType(key.type)
        let reminders: [ActorReminder]
        do {
            reminders = try await store.list(type: key.type)
        } catch {
            throw .actorReminderGet("\(error)")
        }
        guard let reminder = reminders.first(where: { $0.actor == key && $0.name == name }) else {
            throw .actorReminderNotFound(name)
        }
        return reminder
    }

    public func deleteReminder(_ key: ActorKey, name: String) async throws(APIError) {
        let store = try self.reminderStoreForHostedType(key.type)
        do {
            try await store.update(type: key.type) { reminders in reminders.removeAll { $0.actor == key && $0.name == name } }
        } catch {
            throw .actorReminderDelete("\(error)")
        }
    }

    /// The reminders of `type` (of one actor when `id` is given).
    public func listReminders(type: String, id: String?) async throws(APIError) -> [ActorReminder] {
        let store = try self.reminderStoreForHostedType(type)
        do {
            return try await store.list(type: type).filter { id == nil || $0.actor.id == id }
        } catch {
            throw .actorReminderGet("\(error)")
        }
    }

    public func deleteReminders(type: String) async throws(APIError) {
        let store = try self.reminderStoreForHostedType(type)
        do {
            try await store.update(type: type) { reminders in reminders.removeAll() }
        } catch {
            throw .actorReminderDelete("\(error)")
        }
    }

    let reminderDoorbell = Doorbell()

    // MARK: Timers

    /// Starts a timer of an actor this sidecar hosts (activating it); timers live in memory and
    /// end with the activation, as daprd's.
    public func createTimer(_ key: ActorKey, name: String, _ registration: TimerRegistration) async throws(APIError) {
        let placement = try self.requireRuntime()
        try self.rejectReserved(key.type)
        try Self.validateName(key.id, "actorId")
        try Self.validateName(name, "name")
        guard let runtime = self.runtime, runtime.hosts(type: key.type) else { throw .actorTimerCreate("actor type \(key.type) is not hosted by this app") }
        let schedule: ActorSchedule
        do {
            schedule = try ActorSchedule.parse(dueTime: registration.dueTime, period: registration.period, ttl: registration.ttl, now: WallClock.now())
        } catch {
            throw .actorTimerCreate(error.description)
        }
        if !self.servesHere(key, placement: placement) {
            let host = try? await placement.lookup(type: key.type, id: key.id, timeout: self.lookupTimeout)
            guard host?.instanceID == self.identity.instanceID else { throw .actorInstanceMissing }
        }
        runtime.startTimer(
            key, name: name, schedule: schedule, dueTime: registration.dueTime, period: registration.period, callback: registration.callback,
            data: registration.data
        ) { self.servesHere(key, placement: placement) }
    }

    public func deleteTimer(_ key: ActorKey, name: String) throws(APIError) {
        _ = try self.requireRuntime()
        try self.rejectReserved(key.type)
        self.runtime?.stopTimer(key, name: name)
    }

    // MARK: Metadata

    /// `actorRuntime.runtimeStatus`: RUNNING once the runtime serves, DISABLED without an actor
    /// state store.
    public var runtimeStatus: String {
        guard self.stateStoreName != nil, self.placement != nil else { return "DISABLED" }
        return self.closed.withLock { $0 } ? "DISABLED" : "RUNNING"
    }

    /// `placement: connected` / `placement: disconnected`.
    public var placementStatus: String {
        self.placement?.isConnected == true ? "placement: connected" : "placement: disconnected"
    }

    public var hostReady: Bool { self.runtime != nil && self.placement?.isConnected == true }

    public var activeCounts: [(type: String, count: Int)] { self.runtime?.activeCounts ?? [] }
}

import MechaResiliency
import Logging
public import MechaCore
public import MechaRuntime
import Synchronization

/// A durable reminder: registered through the API, kept in the actor state store, fired by the
/// sidecar that hosts its actor (at least once, also after every sidecar restarted).
public struct ActorReminder: Sendable, Hashable {
    public var actor: ActorKey
    public var name: String
    public var data: JSONValue
    /// As registered (the app hears them back in the reminder call).
    public var dueTime: String
    public var period: String
    public var ttl: String
    public var registered: Timestamp
    /// The next firing; firings done so far.
    public var nextFire: Timestamp
    public var fired: Int

    public init(actor: ActorKey, name: String, data: JSONValue, dueTime: String, period: String, ttl: String, registered: Timestamp) throws(ActorScheduleError) {
        self.actor = actor
        self.name = name
        self.data = data
        self.dueTime = dueTime
        self.period = period
        self.ttl = ttl
        self.registered = registered
        self.nextFire = try ActorSchedule.parse(dueTime: dueTime, period: period, ttl: ttl, now: registered).dueTime
        self.fired = 0
    }

    /// The schedule, recomputed from what was registered (deterministic).
    public var schedule: ActorSchedule? {
        try? ActorSchedule.parse(dueTime: self.dueTime, period: self.period, ttl: self.ttl, now: self.registered)
    }

    /// After a firing: the next one, skipping those missed while no sidecar ran (they fire once,
    /// not once each), or nil when the reminder is over.
    public func advanced(now: Timestamp) -> ActorReminder? {
        guard let schedule = self.schedule else { return nil }
        var copy = self
        copy.fired += 1
        guard var next = schedule.next(after: self.nextFire, fired: copy.fired) else { return nil }
        var steps = 0
        while next <= now, steps < 100_000 {
            guard let later = schedule.next(after: next, fired: copy.fired) else { return nil }
            next = later
            steps += 1
        }
        copy.nextFire = next
        return copy
    }

    var json: JSONValue {
        .object([
            ("actorID", .string(self.actor.id)), ("actorType", .string(self.actor.type)), ("name", .string(self.name)), ("data", self.data),
            ("dueTime", .string(self.dueTime)), ("period", .string(self.period)), ("ttl", .string(self.ttl)),
            ("registeredTime", .string(self.registered.rfc3339Nano)), ("nextFireTime", .string(self.nextFire.rfc3339Nano)), ("fired", .int(self.fired)),
        ])
    }

    init?(json: JSONValue) {
        guard let id = json["actorID"]?.stringValue, let type = json["actorType"]?.stringValue, let name = json["name"]?.stringValue,
            let registered = json["registeredTime"]?.stringValue.flatMap({ Timestamp(rfc3339: $0) })
        else { return nil }
        self.actor = ActorKey(type: type, id: id)
        self.name = name
        self.data = json["data"] ?? .null
        self.dueTime = json["dueTime"]?.stringValue ?? ""
        self.period = json["period"]?.stringValue ?? ""
        self.ttl = json["ttl"]?.stringValue ?? ""
        self.registered = registered
        self.nextFire = json["nextFireTime"]?.stringValue.flatMap { Timestamp(rfc3339: $0) } ?? registered
        self.fired = json["fired"]?.intValue ?? 0
    }
}

/// The reminders of each actor type, one document per type (`actors||<type>`) in the actor state
/// store, changed with ETag concurrency so that sidecars firing different actors never lose each
/// other's updates.
public final class ActorReminderStore: Sendable {
    let components: ComponentStore
    let storeName: String
    /// Documents read recently, per type (the firing loop reads them often).
    private let cache = Mutex<[String: (reminders: [ActorReminder], at: ContinuousClock.Instant)]>([:])
    let cacheTTL: Duration

    public init(components: ComponentStore, storeName: String, cacheTTL: Duration = .seconds(1)) {
        self.components = components
        self.storeName = storeName
        self.cacheTTL = cacheTTL
    }

    static func key(_ type: String) -> String { "actors||\(type)" }

    func document(_ type: String) -> ETaggedList { ETaggedList(components: self.components, storeName: self.storeName, key: Self.key(type)) }

    /// The reminders of `type` (from a cache younger than `cacheTTL` when `cached`).
    public func list(type: String, cached: Bool = false) async throws -> [ActorReminder] {
        if cached, let entry = self.cache.withLock({ $0[type] }), ContinuousClock.now - entry.at < self.cacheTTL { return entry.reminders }
        let reminders = try await self.document(type).read().0.compactMap(ActorReminder.init(json:))
        self.cache.withLock { $0[type] = (reminders, .now) }
        return reminders
    }

    /// Changes the reminders of `type` with `change`, retrying on a concurrent update. Returns
    /// what `change` returned.
    @discardableResult
    public func update<Output: Sendable>(type: String, _ change: @Sendable (inout [ActorReminder]) throws -> Output) async throws -> Output {
        let (reminders, output) = try await self.document(type).update(
            decode: ActorReminder.init(json:), encode: \.json, deleteWhenEmpty: true, change)
        self.cache.withLock { $0[type] = (reminders, .now) }
        return output
    }
}

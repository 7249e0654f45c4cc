public import Logging
public import MechaCore
import NIOCore
import Synchronization

/// An actor: its type and id.
public struct ActorKey: Sendable, Hashable, CustomStringConvertible {
    public var type: String
    public var id: String
    public init(type: String, id: String) {
        self.type = type
        self.id = id
    }
    public var description: String { "\(self.type)/\(self.id)" }
}

/// A call to an actor, as it reaches the app: `PUT /actors/<type>/<id>/<path>`.
public struct ActorCall: Sendable {
    /// After the actor's id: `method/<m>`, `method/remind/<name>`, `method/timer/<name>`.
    public var path: String
    public var headers: HeaderList
    public var contentType: String?
    public var body: [UInt8]

    public init(path: String, headers: HeaderList = [:], contentType: String? = nil, body: [UInt8] = []) {
        self.path = path
        self.headers = headers
        self.contentType = contentType
        self.body = body
    }
}

/// The app's answer to an actor call.
public struct ActorReply: Sendable {
    public var status: Int
    public var headers: HeaderList
    public var contentType: String?
    public var body: [UInt8]

    public init(status: Int, headers: HeaderList = [:], contentType: String? = nil, body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.contentType = contentType
        self.body = body
    }
}

/// An activated actor on this sidecar.
final class ActiveActor: Sendable {
    let key: ActorKey
    let turns = ActorTurns()
    let lastUsed: Mutex<ContinuousClock.Instant>
    let timers = Mutex<[String: Task<Void, Never>]>([:])

    init(key: ActorKey) {
        self.key = key
        self.lastUsed = Mutex(.now)
    }

    func touch() { self.lastUsed.withLock { $0 = .now } }

    func cancelTimers() {
        let timers = self.timers.withLock { timers -> [Task<Void, Never>] in
            defer { timers = [:] }
            return Array(timers.values)
        }
        for timer in timers { timer.cancel() }
    }
}

/// Why a call did not reach the actor here.
public enum ActorCallFailure: Error, Sendable {
    /// Placement gives the actor to another host now: look it up again.
    case notHere
    /// Reentrant calls nested deeper than the limit.
    case stackDepth(Int)
    /// The app could not be called.
    case app(String)
    case cancelled
}

/// Hosts this app's actors: activation on first call, one turn at a time (reentrancy when the app
/// asks), calls to the app, timers, idle deactivation, and deactivation of the actors placement
/// moves away.
public final class ActorRuntime: Sendable {
    private let transportBox: Mutex<any ActorAppTransport>
    var transport: any ActorAppTransport { self.transportBox.withLock { $0 } }
    public let config: ActorAppConfig
    let hosted: Set<String>
    let logger: Logger
    /// Largest app answer read (the sidecar's body limit).
    let maxBodySize: Int
    private let actors = Mutex<[ActorKey: ActiveActor]>([:])
    /// Activations and deactivations, for metrics.
    let observer: (any ActorObserver)?

    public init(transport: any ActorAppTransport, config: ActorAppConfig, maxBodySize: Int, observer: (any ActorObserver)? = nil, logger: Logger) {
        self.transportBox = Mutex(transport)
        self.config = config
        self.hosted = Set(config.entities)
        self.maxBodySize = maxBodySize
        self.observer = observer
        self.logger = logger
    }

    public func hosts(type: String) -> Bool { self.hosted.contains(type) }

    /// The app reconnected (a newer gRPC actor stream): calls go to it from now on.
    public func replace(transport: any ActorAppTransport) { self.transportBox.withLock { $0 = transport } }

    /// Active actors per type, sorted by type.
    public var activeCounts: [(type: String, count: Int)] {
        let keys = self.actors.withLock { Array($0.keys) }
        var counts: [String: Int] = [:]
        for type in self.hosted { counts[type] = 0 }
        for key in keys { counts[key.type, default: 0] += 1 }
        return counts.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    public var activeCount: Int { self.actors.withLock { $0.count } }

    public func isActive(_ key: ActorKey) -> Bool { self.actors.withLock { $0[key] != nil } }

    private func activate(_ key: ActorKey) -> ActiveActor {
        let (actor, created) = self.actors.withLock { actors -> (ActiveActor, Bool) in
            if let existing = actors[key] { return (existing, false) }
            let actor = ActiveActor(key: key)
            actors[key] = actor
            return (actor, true)
        }
        if created { self.observer?.actorActivated(type: key.type) }
        return actor
    }

    /// Runs `call` in the actor's turn (activating it); `owned` is asked once the turn starts, so
    /// a call that waited while placement moved the actor goes elsewhere.
    public func call(_ key: ActorKey, _ call: ActorCall, chain: String?, owned: @Sendable () -> Bool) async throws(ActorCallFailure) -> ActorReply {
        let settings = self.config.settings(for: key.type)
        for _ in 0..<8 {
            guard owned() else { throw .notHere }
            let actor = self.activate(key)
            do {
                try await actor.turns.enter(chain: settings.reentrancy ? chain : nil, maxStackDepth: settings.maxStackDepth)
            } catch .retired {
                continue
            } catch .stackDepth(let depth) {
                throw .stackDepth(depth)
            } catch {
                throw .cancelled
            }
            defer {
                actor.touch()
                actor.turns.leave()
            }
            guard owned() else { throw .notHere }
            return try await self.send(key, call, chain: settings.reentrancy ? chain : nil)
        }
        throw .notHere
    }

    /// `PUT /actors/<type>/<id>/<path>` to the app, its answer read whole.
    func send(_ key: ActorKey, _ call: ActorCall, chain: String?) async throws(ActorCallFailure) -> ActorReply {
        var call = call
        if let chain { call.headers.set("Dapr-Reentrancy-Id", chain) }
        do {
            return try await self.transport.call(key, call, maxBodySize: self.maxBodySize)
        } catch {
            throw .app("\(error)")
        }
    }

    /// Deactivates `actor`: no new turns, the running one finishes (at most `drain`), timers stop,
    /// and the app hears `DELETE /actors/<type>/<id>` when `tellApp`.
    func deactivate(_ actor: ActiveActor, drain: Duration, tellApp: Bool, rebalanced: Bool = false) async {
        actor.turns.retire()
        _ = await actor.turns.drain(timeout: drain)
        actor.cancelTimers()
        let removed = self.actors.withLock { actors -> Bool in
            guard actors[actor.key] === actor else { return false }
            actors[actor.key] = nil
            return true
        }
        guard removed else { return }
        self.observer?.actorDeactivated(type: actor.key.type, rebalanced: rebalanced)
        guard tellApp else { return }
        do {
            let status = try await self.transport.deactivate(actor.key)
            if status >= 300 { self.logger.debug("deactivating actor \(actor.key): the app answered \(status)") }
        } catch {
            self.logger.debug("deactivating actor \(actor.key): \(error)")
        }
    }

    /// Deactivates the actors `owned` no longer gives to this host (placement moved them), in
    /// parallel, each drained within its type's `drainOngoingCallTimeout`.
    public func apply(owned: @escaping @Sendable (ActorKey) -> Bool) async {
        let moving = self.actors.withLock { actors in actors.values.filter { !owned($0.key) } }
        guard !moving.isEmpty else { return }
        self.logger.debug("placement changed: deactivating \(moving.count) actor(s) that moved")
        await withDiscardingTaskGroup { group in
            for actor in moving {
                let settings = self.config.settings(for: actor.key.type)
                group.addTask {
                    await self.deactivate(actor, drain: settings.drainOngoingCallTimeout, tellApp: settings.drainRebalancedActors, rebalanced: true)
                }
            }
        }
    }

    /// Deactivates every actor (shutdown, or a lost lease).
    public func deactivateAll(drain: Duration? = nil) async {
        await self.apply { _ in false }
        _ = drain
    }

    /// Deactivates actors idle longer than their type's `actorIdleTimeout`, every
    /// `actorScanInterval`, until `stop`.
    public func runIdleScan(until stop: StopSignal) async {
        let interval = min(self.config.scanInterval, self.config.perType.values.map(\.idleTimeout).min() ?? self.config.scanInterval)
        while !(await stop.sleep(for: max(interval, .milliseconds(100)))) {
            let now = ContinuousClock.now
            let idle = self.actors.withLock { actors in
                actors.values.filter { actor in
                    now - actor.lastUsed.withLock({ $0 }) >= self.config.settings(for: actor.key.type).idleTimeout && actor.turns.isIdle
                }
            }
            for actor in idle where actor.turns.retireIfIdle() {
                await self.deactivate(actor, drain: .zero, tellApp: true)
            }
        }
    }

    // MARK: Timers

    /// Starts timer `name` of the actor (activating it); a timer of that name is replaced. It fires
    /// `PUT …/method/timer/<name>` in the actor's turn and dies with the activation.
    public func startTimer(
        _ key: ActorKey, name: String, schedule: ActorSchedule, dueTime: String, period: String, callback: String, data: JSONValue, owned: @escaping @Sendable () -> Bool
    ) {
        let actor = self.activate(key)
        actor.touch()
        let body = JSONValue.object([
            ("data", data), ("callback", .string(callback)), ("dueTime", .string(dueTime)), ("period", .string(period)),
        ]).serialized
        let task = Task { [weak actor] in
            var due = schedule.dueTime
            var fired = 0
            while !Task.isCancelled {
                let wait = due.nanoseconds(since: WallClock.now())
                if wait > 0 { try? await Task.sleep(for: .nanoseconds(wait)) }
                guard !Task.isCancelled, let actor, schedule.isLive(at: due) else { break }
                guard owned() else { break }
                do {
                    try await actor.turns.enter(chain: nil, maxStackDepth: Int.max)
                } catch {
                    break  // deactivated: the timer dies with the activation
                }
                do {
                    let reply = try await self.send(key, ActorCall(path: "method/timer/\(name)", body: body), chain: nil)
                    if reply.status >= 300 { self.logger.debug("timer \(name) of actor \(key): the app answered \(reply.status)") }
                    self.observer?.timerFired(type: key.type, success: reply.status < 300)
                } catch {
                    self.logger.debug("timer \(name) of actor \(key) failed: \(error)")
                    self.observer?.timerFired(type: key.type, success: false)
                }
                actor.touch()
                actor.turns.leave()
                fired += 1
                guard let next = schedule.next(after: due, fired: fired) else { break }
                due = next
            }
            if let actor { _ = actor.timers.withLock { $0.removeValue(forKey: name) } }
        }
        let replaced = actor.timers.withLock { timers -> Task<Void, Never>? in
            defer { timers[name] = task }
            return timers[name]
        }
        replaced?.cancel()
    }

    /// Stops timer `name` of the actor, if it is active and has one.
    public func stopTimer(_ key: ActorKey, name: String) {
        guard let actor = self.actors.withLock({ $0[key] }) else { return }
        actor.timers.withLock { $0.removeValue(forKey: name) }?.cancel()
    }
}

extension Timestamp {
    /// Nanoseconds from `other` to this instant (negative when before).
    func nanoseconds(since other: Timestamp) -> Int64 {
        (self.seconds - other.seconds) * 1_000_000_000 + Int64(self.nanoseconds - other.nanoseconds)
    }
}

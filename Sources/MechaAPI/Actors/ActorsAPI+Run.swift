import MechaResiliency
import Logging
public import MechaCore
import NIOCore
import Synchronization

extension ActorsAPI {
    /// Runs the actor runtime until `stop`: asks the app for its actor types (`GET /dapr/config`),
    /// keeps placement membership (`host` with those types; a sidecar without actors only reads
    /// the table when it calls one), deactivates idle actors and fires the reminders of the actors
    /// this sidecar hosts. On stop every actor is deactivated and the membership left.
    /// `appChannel` is the HTTP app channel (nil without an app, or for a gRPC app, whose actors
    /// register over `SubscribeActorEventsAlpha1`).
    public func run(appChannel: (any AppChannel)?, host: ActorHost, maxBodySize: Int, observer: (any ActorObserver)? = nil, until stop: StopSignal) async {
        guard self.stateStoreName != nil, let placement = self.placement else {
            if appChannel != nil, let config = await self.fetchConfig(appChannel, until: stop), !config.entities.isEmpty {
                self.logger.warning("the app hosts actors (\(config.entities.joined(separator: ", "))) but no state store is marked actorStateStore: \"true\": actors are off")
            }
            return
        }
        self.hosting.withLock { state in
            state.template = host
            state.maxBodySize = maxBodySize
            state.observer = observer
        }
        if let appChannel, let config = await self.fetchConfig(appChannel, until: stop), !config.entities.isEmpty {
            _ = self.startHosting(config, transport: HTTPActorTransport(appChannel: appChannel), stream: nil)
        }
        let me = self.identity.instanceID
        await withDiscardingTaskGroup { group in
            group.addTask {
                await placement.run(
                    hostedBy: { self.member },
                    until: stop,
                    apply: { table in
                        await self.runtime?.apply { key in table.host(type: key.type, id: key.id)?.instanceID == me }
                    },
                    surrender: {
                        self.logger.warning("actors: the placement lease could not be renewed in time; deactivating every actor until it is back")
                        await self.runtime?.deactivateAll()
                    })
            }
            group.addTask {
                guard let runtime = await self.waitForRuntime(until: stop) else { return }
                await runtime.runIdleScan(until: stop)
            }
            group.addTask {
                guard let runtime = await self.waitForRuntime(until: stop) else { return }
                await self.runReminders(runtime, placement: placement, until: stop)
            }
        }
        self.close()
    }

    /// The runtime once the app declared actor types (at once for HTTP apps, when a gRPC app's
    /// stream registers otherwise); nil on stop.
    func waitForRuntime(until stop: StopSignal) async -> ActorRuntime? {
        while !stop.isStopped {
            if let runtime = self.runtime { return runtime }
            _ = await stop.sleep(for: .milliseconds(100))
        }
        return nil
    }

    /// This sidecar as a placement member while its app hosts actors.
    var member: ActorHost? {
        guard let runtime = self.runtime else { return nil }
        return self.hosting.withLock { state in
            guard state.active, var host = state.template else { return nil }
            host.types = runtime.config.entities
            return host
        }
    }

    /// The app hosts `config.entities` through `transport`: the runtime is created (or, for a
    /// reconnected gRPC app, told the new transport) and the sidecar joins placement.
    @discardableResult
    public func startHosting(_ config: ActorAppConfig, transport: any ActorAppTransport, stream: ObjectIdentifier?) -> Bool {
        guard !config.entities.isEmpty, self.stateStoreName != nil, self.placement != nil else { return false }
        let (maxBodySize, observer) = self.hosting.withLock { state in
            state.active = true
            state.stream = stream
            return (state.maxBodySize, state.observer)
        }
        if let runtime = self.runtime {
            runtime.replace(transport: transport)
        } else {
            self.install(ActorRuntime(transport: transport, config: config, maxBodySize: maxBodySize, observer: observer, logger: self.logger))
            self.logger.info(
                "actors: hosting \(config.entities.joined(separator: ", ")) (idle timeout \(GoDuration.format(config.idleTimeout)), reentrancy \(config.reentrancy ? "on" : "off")), state in \(self.stateStoreName ?? "")"
            )
        }
        return true
    }

    /// The gRPC actor stream `stream` ended: if it was the one serving, the sidecar stops hosting
    /// (its actors are deactivated and placement moves them) until the app registers again.
    public func stopHosting(stream: ObjectIdentifier) {
        let stopped = self.hosting.withLock { state -> Bool in
            guard state.stream == stream else { return false }
            state.active = false
            state.stream = nil
            return true
        }
        if stopped { self.logger.info("actors: the app's actor stream ended; its actors move to other hosts until it registers again") }
    }

    /// The app's `/dapr/config`; nil when it has none (404, not JSON) or could not answer.
    func fetchConfig(_ appChannel: (any AppChannel)?, until stop: StopSignal) async -> ActorAppConfig? {
        guard let appChannel else { return nil }
        for attempt in 0..<5 {
            if stop.isStopped { return nil }
            do {
                let (status, body) = try await appChannel.invoke(InvocationRequest(method: "dapr/config", httpVerb: "GET")) { response in
                    (response.status, Array(try await response.body.collect(upTo: 1 << 20).readableBytesView))
                }
                guard (200..<300).contains(status), !body.isEmpty else { return nil }
                let json = try JSONValue(parsing: body)
                let (config, warnings) = ActorAppConfig.parse(json)
                for warning in warnings { self.logger.warning("the app's /dapr/config: \(warning)") }
                return config
            } catch is JSONParseError {
                return nil
            } catch {
                self.logger.debug("reading the app's /dapr/config failed (\(error)); attempt \(attempt + 1)")
                _ = await stop.sleep(for: .milliseconds(200 * Int64(attempt + 1)))
            }
        }
        return nil
    }

    /// Fires due reminders of the actors placement gives this sidecar, each in its actor's turn,
    /// then records the firing (the next one, or removes a finished reminder).
    func runReminders(_ runtime: ActorRuntime, placement: ActorPlacement, until stop: StopSignal) async {
        guard let store = self.reminderStore else { return }
        let inFlight = FiringSet()
        let types = runtime.config.entities
        await withDiscardingTaskGroup { group in
            while !stop.isStopped {
                await self.reminderDoorbell.wait(timeout: .milliseconds(250))
                if stop.isStopped { break }
                guard placement.isSettled, placement.holdsLease() else { continue }
                let now = WallClock.now()
                for type in types {
                    guard let reminders = try? await store.list(type: type, cached: true) else { continue }
                    for reminder in reminders where reminder.nextFire <= now {
                        let key = reminder.actor
                        guard self.servesHere(key, placement: placement) else { continue }
                        let id = "\(key.type)||\(key.id)||\(reminder.name)"
                        guard inFlight.insert(id) else { continue }
                        group.addTask {
                            defer { inFlight.remove(id) }
                            await self.fire(reminder, runtime: runtime, placement: placement, store: store)
                        }
                    }
                }
            }
        }
    }

    func fire(_ reminder: ActorReminder, runtime: ActorRuntime, placement: ActorPlacement, store: ActorReminderStore) async {
        let key = reminder.actor
        let body = JSONValue.object([("data", reminder.data), ("dueTime", .string(reminder.dueTime)), ("period", .string(reminder.period))]).serialized
        do {
            let reply = try await runtime.call(key, ActorCall(path: "method/remind/\(reminder.name)", contentType: "application/json", body: body), chain: nil) {
                self.servesHere(key, placement: placement)
            }
            if reply.status >= 300 {
                self.logger.debug("reminder \(reminder.name) of actor \(key): the app answered \(reply.status)")
            }
            runtime.observer?.reminderFired(type: key.type, success: reply.status < 300)
        } catch .notHere {
            return
        } catch {
            runtime.observer?.reminderFired(type: key.type, success: false)
            // The app could not be reached: the reminder stays due and fires again shortly.
            self.logger.debug("reminder \(reminder.name) of actor \(key) failed: \(error)")
            try? await Task.sleep(for: .seconds(1))
            return
        }
        let now = WallClock.now()
        do {
            try await store.update(type: key.type) { reminders in
                guard let index = reminders.firstIndex(where: { $0.actor == key && $0.name == reminder.name && $0.registered == reminder.registered })
                else { return }  // deleted or registered again meanwhile
                if let next = reminders[index].advanced(now: now) {
                    reminders[index] = next
                } else {
                    reminders.remove(at: index)
                }
            }
        } catch {
            self.logger.warning("reminder \(reminder.name) of actor \(key) fired but its next firing could not be recorded: \(error)")
        }
    }
}

/// Reminders being fired (one firing of a reminder at a time).
final class FiringSet: Sendable {
    private let ids = Mutex<Set<String>>([])
    func insert(_ id: String) -> Bool { self.ids.withLock { $0.insert(id).inserted } }
    func remove(_ id: String) { _ = self.ids.withLock { $0.remove(id) } }
}

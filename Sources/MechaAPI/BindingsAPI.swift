public import Logging
public import MechaCore
import Synchronization
import MechaResiliency
public import MechaRuntime

/// Output bindings (`POST /v1.0/bindings/{name}`).
public struct BindingsAPI: Sendable {
    let components: ComponentStore

    public init(components: ComponentStore) {
        self.components = components
    }

    /// daprd's order: the operation is required before the binding is looked up; operation names
    /// match exactly (case-sensitive).
    public func invoke(name: String, request: BindingInvokeRequest) async throws(APIError) -> BindingInvokeResponse {
        guard !request.operation.isEmpty else {
            throw .invokeOutputBinding(name, "operation field is missing from request")
        }
        guard let binding = self.components.outputBinding(named: name), Self.allowsOutput(self.components.entry(named: name)?.spec) else {
            throw .invokeOutputBinding(name, "couldn't find output binding \(name)")
        }
        let operations = binding.operations
        guard operations.contains(request.operation) else {
            throw .invokeOutputBinding(name, "binding \(name) does not support operation \(request.operation). supported operations:\(operations.joined(separator: " "))")
        }
        // The call's trace context travels to the binding's target (daprd's `traceparent`
        // metadata), unless the caller set one itself.
        var request = request
        if request.metadata["traceparent"] == nil, let traceParent = TraceScope.traceParent { request.metadata["traceparent"] = traceParent }
        let outgoing = request
        do {
            return try await self.components.call(name, .bindings, OperationName("invoke", subject: request.operation)) { try await binding.invoke(outgoing) }
        } catch {
            throw .invokeOutputBinding(name, "\(error)")
        }
    }

    /// `direction` metadata: absent means both directions.
    static func directions(_ spec: ComponentSpec?) -> Set<String>? {
        guard let raw = spec?.metadata["direction"], !raw.trimmingSpaces().isEmpty else { return nil }
        return Set(raw.split(separator: ",").map { $0.trimmingSpaces().lowercased() })
    }

    static func allowsOutput(_ spec: ComponentSpec?) -> Bool {
        self.directions(spec)?.contains("output") ?? true
    }
}

/// Reads every input binding and delivers its events to the app at `POST /<route>`. Hot reload
/// (`reconcile`) starts readers for bindings added since; a reader whose component is replaced
/// reads from the replacement, and ends when its component is removed.
public final class InputBindingManager: Sendable {
    let components: ComponentStore
    let appChannel: (any AppChannel)?
    let readiness: Readiness
    let state: StateAPI?
    let bindings: BindingsAPI?
    let logger: Logger
    /// Names of the bindings being read.
    private let reading = Mutex<Set<String>>([])
    private let started = Mutex(false)
    private let launches: AsyncStream<String>
    private let launch: AsyncStream<String>.Continuation

    public init(components: ComponentStore, appChannel: (any AppChannel)?, readiness: Readiness, state: StateAPI? = nil, bindings: BindingsAPI? = nil, logger: Logger) {
        self.components = components
        self.appChannel = appChannel
        self.readiness = readiness
        self.state = state
        self.bindings = bindings
        self.logger = logger
        (self.launches, self.launch) = AsyncStream.makeStream(of: String.self)
    }

    public func run(until stop: StopSignal) async {
        guard let appChannel = self.appChannel else {
            self.launch.finish()
            return
        }
        await withDiscardingTaskGroup { group in
            for entry in self.components.entries(in: .bindings) where self.claim(entry.spec.name) {
                group.addTask { await self.serve(entry.spec.name, appChannel: appChannel, until: stop) }
            }
            self.started.withLock { $0 = true }
            group.addTask {
                await stop.wait()
                self.launch.finish()
            }
            for await name in self.launches {
                group.addTask { await self.serve(name, appChannel: appChannel, until: stop) }
            }
        }
    }

    /// Hot reload: starts reading the input bindings that are loaded and not read yet.
    public func reconcile() {
        guard self.appChannel != nil, self.started.withLock({ $0 }) else { return }
        for entry in self.components.entries(in: .bindings) where self.claim(entry.spec.name) {
            self.launch.yield(entry.spec.name)
        }
    }

    /// Marks `name` as read; false when a reader has it already.
    private func claim(_ name: String) -> Bool {
        self.reading.withLock { $0.insert(name).inserted }
    }

    /// Reads binding `name` (whatever component holds the name now) until `stop`, or until it is
    /// removed or stops being an input binding.
    func serve(_ name: String, appChannel: any AppChannel, until stop: StopSignal) async {
        defer { self.reading.withLock { _ = $0.remove(name) } }
        while !stop.isStopped {
            guard let entry = self.components.entry(named: name), let binding = entry.component as? any InputBinding else { return }
            let directions = BindingsAPI.directions(entry.spec)
            if let directions, !directions.contains("input") { return }
            let route = entry.spec.metadata.properties.first { $0.key == "route" }?.value ?? "/\(entry.spec.name)"
            if directions == nil {
                do {
                    guard try await appChannel.acceptsInputBinding(name: entry.spec.name, route: route) else {
                        self.logger.info("app has not subscribed to binding \(entry.spec.name).")
                        return
                    }
                } catch {
                    self.logger.error("could not invoke OPTIONS method on input binding subscription endpoint \"\(route)\": \(error)")
                    return
                }
            }
            await self.read(binding, name: name, route: route, appChannel: appChannel, until: StopSignal.either(stop, entry.retired))
            // Replaced by hot reload: read the new component (removed: the lookup ends the loop).
            guard entry.retired.isStopped else { return }
        }
    }

    /// Saves the states and calls the output bindings an app asked for in its answer.
    func apply(_ reply: BindingEventReply, from name: String) async {
        if !reply.storeName.isEmpty, !reply.states.isEmpty, let state = self.state {
            do {
                try await state.save(storeName: reply.storeName, items: reply.states)
            } catch {
                self.logger.error("saving the state returned for binding \(name) failed: \(error)")
            }
        }
        guard !reply.outputBindings.isEmpty, let bindings = self.bindings else { return }
        let request = BindingInvokeRequest(operation: "create", data: reply.data)
        if reply.parallel {
            await withDiscardingTaskGroup { group in
                for target in reply.outputBindings {
                    group.addTask { await self.send(request, to: target, bindings: bindings, from: name) }
                }
            }
        } else {
            for target in reply.outputBindings { await self.send(request, to: target, bindings: bindings, from: name) }
        }
    }

    func send(_ request: BindingInvokeRequest, to target: String, bindings: BindingsAPI, from name: String) async {
        do {
            _ = try await bindings.invoke(name: target, request: request)
        } catch {
            self.logger.error("sending the output of binding \(name) to \(target) failed: \(error)")
        }
    }

    /// How a failed input binding is restarted: 500 ms, doubling, at most 30 s apart, forever.
    static let restart = Backoff(.exponential(initial: .milliseconds(500), multiplier: 2, maxInterval: .seconds(30)), maxRetries: nil)

    func read(_ binding: any InputBinding, name: String, route: String, appChannel: any AppChannel, until stop: StopSignal) async {
        var restarts = 0
        while !stop.isStopped {
            do {
                try await binding.read(until: stop) { event in
                    guard self.readiness.isAppHealthy else { throw BindingError("app is not in a healthy state") }
                    // daprd's delivery span `bindings/<name>`, continuing the event's trace context
                    // if it brought one; the app sees the span's context.
                    var event = event
                    let span = self.components.outbound.tracer?.startDelivery(
                        name: "bindings/\(name)", traceParent: event.metadata["traceparent"],
                        attributes: [("db.system", "bindings"), ("db.name", name), ("rpc.service", "Dapr")])
                    if let span { event.metadata["traceparent"] = span.traceParent }
                    let delivered = event
                    let reply: BindingEventReply?
                    do {
                        // Resiliency `targets.components.<binding>.inbound` governs the delivery.
                        reply = try await self.components.outbound.call(.component(name, .bindings, .inbound), "deliver") { _ in
                            try await appChannel.deliverBindingEvent(name: name, route: route, event: delivered)
                        }
                        span?.end(error: nil)
                    } catch {
                        span?.end(error: "\(error)")
                        self.logger.debug("error from app consumer for binding [\(name)]: \(error)")
                        throw error
                    }
                    if let reply { await self.apply(reply, from: name) }
                }
                return
            } catch {
                restarts += 1
                let delay = Self.restart.delay(beforeRetry: restarts, jitter: 0.5) ?? .seconds(30)
                self.logger.error("input binding \(name) failed: \(error); restarting in \(GoDuration.format(delay))")
                if await stop.sleep(for: delay) { return }
            }
        }
    }
}


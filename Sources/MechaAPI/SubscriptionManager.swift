public import Logging
public import MechaCore
import MechaResiliency
public import MechaRuntime
import Synchronization

/// Delivers subscribed topics to the app: one pump per (pubsub, topic) pulls from the component,
/// unwraps/wraps CloudEvents, applies routing rules, posts to the app, and acknowledges only after
/// the app's verdict. Dead-letter topics take what cannot be delivered. Subscriptions with
/// `bulkSubscribe.enabled` deliver in batches (`BulkBatcher`, `AppChannel.deliverBulkTopicEvent`).
public final class SubscriptionManager: Sendable {
    /// A subscription with its compiled routing rules.
    struct ActiveSubscription: Sendable {
        var spec: SubscriptionSpec
        var rules: [(expression: CELExpression?, path: String)]
    }

    private let components: ComponentStore
    private let identity: SidecarIdentity
    private let appChannel: (any AppChannel)?
    private let readiness: Readiness
    /// Declarative subscriptions in scope (replaced by `reconcile` on hot reload).
    private let declarative: Mutex<[SubscriptionSpec]>
    /// What the app asked for at startup (`GET /dapr/subscribe`).
    private let programmatic = Mutex<[SubscriptionSpec]>([])
    /// The running pumps by pubsub and topic, each with the signal that stops it alone.
    private let pumps = Mutex<[String: (spec: SubscriptionSpec, stop: StopSignal)]>([:])
    /// Pumps started after `run` began (hot reload), hosted by `run`'s task group.
    private let launches: AsyncStream<@Sendable (StopSignal) async -> Void>
    private let launch: AsyncStream<@Sendable (StopSignal) async -> Void>.Continuation
    private let logger: Logger
    private let now: @Sendable () -> Timestamp
    /// Mecha AccessPolicies: which topics this app may subscribe to.
    private let access: BlockAccess?
    private let active = Mutex<[SubscriptionSpec]>([])
    private let streaming = Mutex<[ObjectIdentifier: SubscriptionSpec]>([:])
    private let started = Mutex(false)
    private let startedWaiters = Mutex<[CheckedContinuation<Void, Never>]>([])

    public init(
        components: ComponentStore,
        identity: SidecarIdentity,
        appChannel: (any AppChannel)?,
        readiness: Readiness,
        declarative: [SubscriptionSpec],
        logger: Logger,
        now: @escaping @Sendable () -> Timestamp,
        access: BlockAccess? = nil
    ) {
        self.access = access
        self.components = components
        self.identity = identity
        self.appChannel = appChannel
        self.readiness = readiness
        self.declarative = Mutex(declarative.filter { $0.isInScope(appID: identity.appID) })
        (self.launches, self.launch) = AsyncStream.makeStream(of: (@Sendable (StopSignal) async -> Void).self)
        self.logger = logger
        self.now = now
    }

    /// The subscriptions in effect, for the metadata API (declarative first, one per pubsub+topic).
    public var subscriptions: [SubscriptionSpec] {
        let active = self.active.withLock { $0 }
        let streams = self.streaming.withLock { Array($0.values) }.sorted { ($0.pubsubName, $0.topic) < ($1.pubsubName, $1.topic) }
        return (active.isEmpty ? self.declarative.withLock { $0 } : active) + streams
    }

    /// Returns once subscriptions have been loaded and their pumps started (or there is nothing to do).
    public func waitUntilStarted() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = self.started.withLock { started -> Bool in
                if !started { self.startedWaiters.withLock { $0.append(continuation) } }
                return started
            }
            if done { continuation.resume() }
        }
    }

    private func markStarted() {
        let waiters = self.started.withLock { started -> [CheckedContinuation<Void, Never>] in
            started = true
            return self.startedWaiters.withLock { waiters in
                defer { waiters = [] }
                return waiters
            }
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Loads programmatic subscriptions from the app, merges them with declarative ones and runs a
    /// pump per subscription until `stop` fires; each pump drains its in-flight deliveries.
    public func run(until stop: StopSignal) async {
        guard let appChannel = self.appChannel else {
            self.active.withLock { $0 = self.declarative.withLock { $0 } }
            self.markStarted()
            if !self.declarative.withLock({ $0.isEmpty }) {
                self.logger.info("no app port: subscriptions are not started")
            }
            self.launch.finish()
            return
        }
        if self.components.count(in: .pubsub) > 0 {
            let loaded = await self.loadProgrammatic(appChannel, until: stop)
            self.programmatic.withLock { $0 = loaded }
        }
        let merged = self.merged()
        self.active.withLock { $0 = merged }
        let runnable = self.runnable(merged)
        await withDiscardingTaskGroup { group in
            for subscription in runnable {
                group.addTask { await self.host(subscription, until: stop) }
            }
            self.markStarted()
            group.addTask {
                await stop.wait()
                self.launch.finish()
            }
            for await work in self.launches {
                group.addTask { await work(stop) }
            }
        }
    }

    /// Declarative subscriptions overlaid by the programmatic ones (same pubsub and topic: the
    /// app's wins), one per pubsub and topic.
    func merged() -> [SubscriptionSpec] {
        var merged = self.declarative.withLock { $0 }
        for programmatic in self.programmatic.withLock({ $0 }) {
            if let index = merged.firstIndex(where: { $0.pubsubName == programmatic.pubsubName && $0.topic == programmatic.topic }) {
                merged[index] = programmatic
            } else {
                merged.append(programmatic)
            }
        }
        var seen: Set<String> = []
        return merged.filter { seen.insert(Self.key($0)).inserted }
    }

    static func key(_ spec: SubscriptionSpec) -> String { "\(spec.pubsubName)\u{0}\(spec.topic)" }

    /// Runs one pump with its own stop signal (so `reconcile` can stop it alone).
    func host(_ subscription: ActiveSubscription, until stop: StopSignal) async {
        let own = StopSignal()
        let key = Self.key(subscription.spec)
        self.pumps.withLock { $0[key] = (subscription.spec, own) }
        await self.pump(subscription, until: StopSignal.either(stop, own))
        self.pumps.withLock { pumps in
            if pumps[key]?.stop === own { pumps[key] = nil }
        }
    }

    /// Hot reload: the declarative subscriptions are now `declarative`. Pumps of removed or
    /// changed subscriptions stop (draining what they have in flight); new or changed ones start.
    /// Programmatic subscriptions (asked for by the app at startup) keep precedence.
    public func reconcile(declarative: [SubscriptionSpec]) {
        let inScope = declarative.filter { $0.isInScope(appID: self.identity.appID) }
        self.declarative.withLock { $0 = inScope }
        guard self.appChannel != nil, self.started.withLock({ $0 }) else { return }
        let merged = self.merged()
        self.active.withLock { $0 = merged }
        let wanted = Dictionary(merged.map { (Self.key($0), $0) }, uniquingKeysWith: { first, _ in first })
        let running = self.pumps.withLock { $0 }
        for (key, pump) in running where wanted[key] != pump.spec {
            self.logger.info("subscription to topic '\(pump.spec.topic)' on pubsub '\(pump.spec.pubsubName)' \(wanted[key] == nil ? "removed" : "changed"): stopping its pump")
            pump.stop.stop()
        }
        let starting = merged.filter { running[Self.key($0)]?.spec != $0 }
        for subscription in self.runnable(starting) {
            self.logger.info("subscription to topic '\(subscription.spec.topic)' on pubsub '\(subscription.spec.pubsubName)' starting")
            self.launch.yield { [self] stop in await self.host(subscription, until: stop) }
        }
    }

    /// The subscriptions of `specs` that can run: their pubsub is loaded and lets this app
    /// subscribe, and their routes compile (the others are logged).
    func runnable(_ specs: [SubscriptionSpec]) -> [ActiveSubscription] {
        var runnable: [ActiveSubscription] = []
        for spec in specs {
            guard let entry = self.components.entry(named: spec.pubsubName), entry.component is any PubSub else {
                self.logger.warning("subscription to topic '\(spec.topic)' refers to pubsub '\(spec.pubsubName)', which is not loaded; not started")
                continue
            }
            guard self.maySubscribe(spec, entry: entry) else {
                self.logger.warning("subscription to topic '\(spec.topic)' on pubsub '\(spec.pubsubName)' is not allowed; not started")
                continue
            }
            if spec.routes.rules.isEmpty && spec.routes.defaultPath == nil {
                self.logger.warning("subscription to topic '\(spec.topic)' on pubsub '\(spec.pubsubName)' has no route: every message is dropped\(spec.deadLetterTopic.map { " to the dead-letter topic \($0)" } ?? "")")
            }
            do {
                runnable.append(try Self.compile(spec))
            } catch {
                self.logger.error("subscription to topic '\(spec.topic)' on pubsub '\(spec.pubsubName)' has an invalid route: \(error); not started")
            }
        }
        return runnable
    }

    /// The pubsub's topic scopes and Mecha AccessPolicies (verb `subscribe`) both allow it.
    func maySubscribe(_ spec: SubscriptionSpec, entry: ComponentStore.Entry) -> Bool {
        guard TopicScopes(metadata: entry.spec.metadata, appID: self.identity.appID).maySubscribe(spec.topic) else { return false }
        return self.access?.denial(.pubsub, component: spec.pubsubName, resource: spec.topic, verb: "subscribe") == nil
    }

    static func compile(_ spec: SubscriptionSpec) throws -> ActiveSubscription {
        var rules: [(CELExpression?, String)] = []
        for rule in spec.routes.rules {
            let match = rule.match.trimmingSpaces()
            rules.append((match.isEmpty ? nil : try CELExpression(parsing: match), rule.path))
        }
        if let path = spec.routes.defaultPath, !path.isEmpty { rules.append((nil, path)) }
        return ActiveSubscription(spec: spec, rules: rules)
    }

    /// Runs a streaming subscription (gRPC `SubscribeTopicEventsAlpha1`) until `stop`: events go to
    /// `deliver`; scopes, dead letters and expiry apply as for any subscription. Listed in metadata
    /// as STREAMING while it runs.
    public func runStreaming(_ spec: SubscriptionSpec, until stop: StopSignal, deliver: @escaping Deliver) async throws(APIError) {
        guard let entry = self.components.entry(named: spec.pubsubName), entry.component is any PubSub else {
            throw APIError.pubsubNotFound(spec.pubsubName)
        }
        guard self.maySubscribe(spec, entry: entry) else {
            throw APIError.pubsubForbidden(topic: spec.topic, pubsub: spec.pubsubName, appID: self.identity.appID)
        }
        let subscription = ActiveSubscription(spec: spec, rules: [(nil, "")])
        let key = ObjectIdentifier(stop)
        self.streaming.withLock { $0[key] = spec }
        defer { self.streaming.withLock { _ = $0.removeValue(forKey: key) } }
        await self.pump(subscription, until: stop, deliver: deliver)
    }

    /// `GET /dapr/subscribe`, retried briefly while the app starts.
    func loadProgrammatic(_ channel: any AppChannel, until stop: StopSignal) async -> [SubscriptionSpec] {
        var delay: Duration = .milliseconds(200)
        for attempt in 1...4 {
            do {
                return try await channel.listSubscriptions().filter { !$0.routes.rules.isEmpty || $0.routes.defaultPath != nil }
            } catch {
                self.logger.warning("error getting topics from app (attempt \(attempt)): \(error)")
                if await stop.sleep(for: delay) { return [] }
                delay *= 3
            }
        }
        return []
    }

    /// Where a subscription's events go: the app channel, or a streaming subscriber.
    public typealias Deliver = @Sendable (TopicEventDelivery) async -> TopicEventResult

    /// Runs one subscription until `stop`, resubscribing with backoff if the component fails.
    func pump(_ subscription: ActiveSubscription, until stop: StopSignal, deliver overriding: Deliver? = nil) async {
        let deliver: Deliver
        if let overriding {
            deliver = overriding
        } else if let channel = self.appChannel {
            deliver = { @Sendable delivery in await channel.deliverTopicEvent(delivery) }
        } else {
            return
        }
        let spec = subscription.spec
        // Bulk subscribe (app channel only): messages wait in a batcher and go to the app together.
        let batcher: BulkBatcher?
        if overriding == nil, let channel = self.appChannel, let bulk = spec.bulkSubscribe, bulk.enabled {
            batcher = BulkBatcher(
                maxCount: bulk.maxMessagesCount > 0 ? bulk.maxMessagesCount : 100,
                maxAwait: .milliseconds(bulk.maxAwaitDurationMs > 0 ? bulk.maxAwaitDurationMs : 1000),
                pubsubName: spec.pubsubName,
                topic: spec.topic,
                stop: stop,
                deliver: { @Sendable delivery in await channel.deliverBulkTopicEvent(delivery) }
            )
        } else {
            batcher = nil
        }
        var restarts = 0
        // The component the pump works on, and a signal that also fires when hot reload replaces it.
        var current: (entry: ComponentStore.Entry, until: StopSignal)?
        while !stop.isStopped {
            guard let entry = self.components.entry(named: spec.pubsubName), let pubsub = entry.component as? any PubSub else { return }
            if current?.entry.retired !== entry.retired { current = (entry, StopSignal.either(stop, entry.retired)) }
            let until = current?.until ?? stop
            let group = entry.spec.metadata["consumerID"].flatMap { $0.isEmpty ? nil : $0 } ?? self.identity.appID
            var requestMetadata = spec.metadata
            requestMetadata["rawPayload"] = nil
            var request = SubscribeRequest(topic: spec.topic, consumerGroup: group, metadata: requestMetadata)
            if let batcher {
                // A batch can only fill with messages the component hands over concurrently: ask
                // for up to a batch in flight; the component caps it by its own setting
                // (pubsub.sqlite: `concurrency`, default 10; pubsub.in-memory: 1).
                request.maxConcurrency = batcher.maxCount
            }
            self.logger.debug("subscribing to topic \(spec.topic) on pubsub \(spec.pubsubName)")
            do {
                try await pubsub.subscribe(request, until: until) { message in
                    if let batcher {
                        return await self.handleBulk(message, subscription: subscription, pubsub: pubsub, batcher: batcher)
                    }
                    return await self.handle(message, subscription: subscription, pubsub: pubsub, deliver: deliver)
                }
                // Hot reload replaced or removed the component: subscribe to what the name is now.
                if entry.retired.isStopped && !stop.isStopped {
                    restarts = 0
                    continue
                }
                return
            } catch {
                if entry.retired.isStopped && !stop.isStopped { continue }
                restarts += 1
                let delay = Self.resubscribe.delay(beforeRetry: restarts, jitter: 0.5) ?? .seconds(30)
                self.logger.error("subscription to topic \(spec.topic) on pubsub \(spec.pubsubName) failed: \(error); retrying in \(GoDuration.format(delay))")
                if await stop.sleep(for: delay) { return }
            }
        }
    }

    /// How a failed subscription is restarted: 250 ms, doubling, at most 30 s apart, forever.
    static let resubscribe = Backoff(.exponential(initial: .milliseconds(250), multiplier: 2, maxInterval: .seconds(30)), maxRetries: nil)

    /// One message: everything between the component handing it over and the acknowledgement.
    func handle(_ message: ReceivedMessage, subscription: ActiveSubscription, pubsub: any PubSub, deliver: Deliver) async -> MessageDisposition {
        switch await self.prepare(message, subscription: subscription, pubsub: pubsub) {
        case .settled(let disposition):
            return disposition
        case .deliver(var delivery, let eventID):
            // daprd's delivery span `pubsub/<topic>`, a child of the event's trace context; the
            // app sees the span's context.
            let topic = subscription.spec.topic
            let span = self.components.outbound.tracer?.startDelivery(
                name: "pubsub/\(topic)", traceParent: delivery.headers.first("traceparent"),
                attributes: [("messaging.system", "pubsub"), ("messaging.destination.name", topic)])
            if let span { delivery.headers.set("traceparent", span.traceParent) }
            let prepared = delivery
            let result = await self.deliverInbound(pubsubName: subscription.spec.pubsubName, topic: topic) { await deliver(prepared) }
            span?.end(error: result == .success ? nil : "\(result)")
            return await self.settle(result, eventID: eventID, message, subscription.spec, pubsub)
        }
    }

    /// A RETRY verdict, as an error the pub/sub's inbound retry policy sees.
    struct RetryVerdict: Error, CustomStringConvertible {
        var reason: String
        var description: String { self.reason }
    }

    /// Delivers under the pub/sub's inbound policy (Resiliency `targets.components.<pubsub>.inbound`):
    /// a RETRY verdict or a timeout is retried as the policy says; when it gives up, the last
    /// verdict stands (RETRY: redelivered or dead-lettered).
    /// The outcome goes to the outbound seam's observer (pub/sub ingress metrics).
    func deliverInbound(pubsubName: String, topic: String, _ deliver: @Sendable () async -> TopicEventResult) async -> TopicEventResult {
        let start = ContinuousClock.now
        let result = await self.deliverUnderPolicy(pubsubName: pubsubName, deliver)
        self.components.outbound.observer?.delivered(pubsub: pubsubName, topic: topic, result: result.observed, elapsed: ContinuousClock.now - start)
        return result
    }

    private func deliverUnderPolicy(pubsubName: String, _ deliver: @Sendable () async -> TopicEventResult) async -> TopicEventResult {
        let policy = self.components.outbound.policy(for: .component(pubsubName, .pubsub, .inbound))
        if policy.isEmpty { return await deliver() }
        do {
            return try await policy.execute { _ in
                let result = await deliver()
                if case .retry(let reason) = result { throw RetryVerdict(reason: reason) }
                return result
            }
        } catch let verdict as RetryVerdict {
            return .retry(verdict.reason)
        } catch {
            return .retry("\(error)")
        }
    }

    /// One message of a bulk subscription: prepared as a single one (an expired, unroutable or
    /// unreadable message is settled at once, without waiting for a batch), then handed to the
    /// batcher; the call returns when its batch has been delivered, with this entry's disposition.
    /// A missing verdict is a RETRY; dead-letter topics apply per entry.
    func handleBulk(_ message: ReceivedMessage, subscription: ActiveSubscription, pubsub: any PubSub, batcher: BulkBatcher) async -> MessageDisposition {
        switch await self.prepare(message, subscription: subscription, pubsub: pubsub) {
        case .settled(let disposition):
            return disposition
        case .deliver(let delivery, let eventID):
            let raw = subscription.spec.rawPayload
            let contentType = message.contentType.flatMap { $0.isEmpty ? nil : $0 } ?? (raw ? "application/octet-stream" : CloudEvent.contentType)
            let entry = BulkTopicEventDelivery.Entry(
                entryID: RandomID.uuid(),
                delivery: delivery,
                contentType: contentType,
                metadata: message.metadata,
                raw: raw,
                data: message.data
            )
            let result = await self.deliverInbound(pubsubName: subscription.spec.pubsubName, topic: subscription.spec.topic) { await batcher.submit(entry) }
            return await self.settle(result, eventID: eventID, message, subscription.spec, pubsub)
        }
    }

    /// A message either settled before reaching the app, or ready to deliver.
    enum Prepared: Sendable {
        case settled(MessageDisposition)
        case deliver(TopicEventDelivery, eventID: String)
    }

    /// Everything before the app sees a message: health, parsing or wrapping, expiry, routing,
    /// headers. Dead letters apply to what is settled here.
    func prepare(_ message: ReceivedMessage, subscription: ActiveSubscription, pubsub: any PubSub) async -> Prepared {
        let spec = subscription.spec
        guard spec.origin == .streaming || self.readiness.isAppHealthy else { return .settled(.redeliver) }

        var headers = HeaderList()
        for (key, value) in message.metadata.sorted(by: { $0.key < $1.key }) {
            let lowered = key.lowercased()
            if Self.skippedMetadataHeaders.contains(lowered) || lowered.hasSuffix("-bin") || lowered.hasPrefix("cloudevent.") { continue }
            headers.add(lowered.hasPrefix("grpc-") ? "dapr-\(lowered)" : lowered, value)
        }
        headers.set("pubsubname", spec.pubsubName)

        let body: [UInt8]
        let event: JSONValue
        if spec.rawPayload {
            event = CloudEvent.rawPayloadWrapper(
                message.data,
                topic: spec.topic,
                pubsubName: spec.pubsubName,
                traceParent: message.metadata["traceparent"],
                traceState: message.metadata["tracestate"]
            )
            body = event.serialized
        } else {
            guard let parsed = try? JSONValue(parsing: message.data), case .object = parsed else {
                self.logger.error("error deserializing cloud event in pubsub \(spec.pubsubName) and topic \(spec.topic): not a JSON object")
                return .settled(await self.deadLetterOr(.redeliver, message, spec, pubsub))
            }
            event = parsed
            body = message.data
        }
        let eventID = event["id"]?.stringValue ?? message.messageID

        if let expiration = event["expiration"]?.stringValue, let expiry = Timestamp(rfc3339: expiration), expiry < self.now() {
            self.logger.warning("dropping expired pub/sub event \(eventID) as of \(expiration)")
            return .settled(await self.deadLetterOr(.acknowledge, message, spec, pubsub))
        }

        let path: String
        switch self.route(event, subscription) {
        case .success(let matched?):
            path = matched
        case .success(nil):
            self.logger.debug("no matching route for event \(eventID) in pubsub \(spec.pubsubName) and topic \(spec.topic); skipping")
            return .settled(await self.deadLetterOr(.acknowledge, message, spec, pubsub))
        case .failure(let error):
            self.logger.error("error finding matching route for event \(eventID) in pubsub \(spec.pubsubName) and topic \(spec.topic): \(error)")
            return .settled(await self.deadLetterOr(.redeliver, message, spec, pubsub))
        }
        // daprd continues the event's trace: a valid W3C traceparent (else traceid) is passed on;
        // a missing or invalid one becomes the all-zero context, without tracestate.
        let traceParent = [event["traceparent"]?.stringValue, event["traceid"]?.stringValue].compactMap { $0 }.first { !$0.isEmpty } ?? ""
        if Self.isValidTraceParent(traceParent) {
            headers.set("traceparent", traceParent)
            if let state = event["tracestate"]?.stringValue, !state.isEmpty { headers.set("tracestate", state) }
        } else {
            headers.set("traceparent", "00-00000000000000000000000000000000-0000000000000000-00")
        }

        return .deliver(TopicEventDelivery(path: path, body: body, headers: headers, pubsubName: spec.pubsubName, topic: spec.topic, event: event), eventID: eventID)
    }

    /// The disposition for the app's verdict on one event.
    func settle(_ result: TopicEventResult, eventID: String, _ message: ReceivedMessage, _ spec: SubscriptionSpec, _ pubsub: any PubSub) async -> MessageDisposition {
        switch result {
        case .success:
            return .acknowledge
        case .drop(let reason):
            self.logger.warning("DROP status returned from app while processing pub/sub event \(eventID): \(reason)")
            return await self.deadLetterOr(.acknowledge, message, spec, pubsub)
        case .retry(let reason):
            self.logger.warning("retriable error returned from app while processing pub/sub event \(eventID), topic: \(spec.topic): \(reason)")
            return await self.deadLetterOr(.redeliver, message, spec, pubsub)
        }
    }

    /// `version-traceid-spanid-flags` in lower-case hex, version not `ff`, ids not all zero.
    static func isValidTraceParent(_ value: String) -> Bool {
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 4, parts[0].utf8.count == 2, parts[1].utf8.count == 32, parts[2].utf8.count == 16, parts[3].utf8.count == 2 else {
            return false
        }
        let isHex: (Substring) -> Bool = { $0.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) } }
        guard parts.prefix(4).allSatisfy(isHex), parts[0] != "ff" else { return false }
        if parts[0] == "00" && parts.count != 4 { return false }
        return parts[1].contains { $0 != "0" } && parts[2].contains { $0 != "0" }
    }

    static let skippedMetadataHeaders: Set<String> = [
        "content-type", "content-length", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
        "te", "trailer", "traceparent", "tracestate", "destination-app-id", "pubsubname", "rawpayload",
    ]

    /// The first rule that matches (empty match always matches), or nil when none does.
    func route(_ event: JSONValue, _ subscription: ActiveSubscription) -> Result<String?, CELError> {
        var variables: [String: CELValue]?
        for (expression, path) in subscription.rules {
            guard let expression else { return .success(path) }
            if variables == nil { variables = ["event": CELValue(json: event)] }
            do {
                if try expression.evaluateBool(variables!) { return .success(path) }
            } catch {
                return .failure(error)
            }
        }
        return .success(nil)
    }

    /// Publishes the original message to the dead-letter topic when one is set (then acknowledges,
    /// or redelivers when that publish fails or is not allowed); otherwise returns `fallback`.
    func deadLetterOr(_ fallback: MessageDisposition, _ message: ReceivedMessage, _ spec: SubscriptionSpec, _ pubsub: any PubSub) async -> MessageDisposition {
        guard let deadLetterTopic = spec.deadLetterTopic, !deadLetterTopic.isEmpty else { return fallback }
        if let entry = self.components.entry(named: spec.pubsubName),
            !TopicScopes(metadata: entry.spec.metadata, appID: self.identity.appID).mayPublish(deadLetterTopic)
                || self.access?.denial(.pubsub, component: spec.pubsubName, resource: deadLetterTopic, verb: "publish") != nil
        {
            // A refused dead-letter publish is a failed one: daprd hands the error to the component.
            self.logger.error("publishing to dead letter topic \(deadLetterTopic) is not allowed for app \(self.identity.appID)")
            return .redeliver
        }
        do {
            let request = PublishRequest(topic: deadLetterTopic, data: message.data, contentType: message.contentType, metadata: message.metadata)
            try await self.components.call(spec.pubsubName, .pubsub, OperationName("publish", subject: deadLetterTopic)) { try await pubsub.publish(request) }
            return .acknowledge
        } catch {
            self.logger.error("failed to publish to dead letter topic \(deadLetterTopic): \(error)")
            return .redeliver
        }
    }
}

/// The batching of one bulk subscription (daprd's default bulk subscriber): entries collect until
/// `maxCount` are waiting, or `maxAwait` has passed since the first entry of the batch (or `stop`
/// fires), then go to the app grouped by route path, one `deliverBulkTopicEvent` per path. Each
/// submitter waits for its own entry's verdict; an entry the app did not answer is a RETRY.
///
/// A batch only holds messages the component hands over concurrently, so its size is at most the
/// component's in-flight limit (`SubscribeRequest.maxConcurrency`, which the subscription sets to
/// `maxCount` and the component may lower: pubsub.sqlite's `concurrency`, pubsub.in-memory's 1).
/// Below `maxCount`, batches are flushed by time.
final class BulkBatcher: Sendable {
    typealias DeliverBulk = @Sendable (BulkTopicEventDelivery) async -> [String: TopicEventResult]

    private struct Waiting: Sendable {
        var entry: BulkTopicEventDelivery.Entry
        var continuation: CheckedContinuation<TopicEventResult, Never>
    }

    private struct State {
        var pending: [Waiting] = []
        /// Incremented at every flush, so a timer only flushes the batch it was started for.
        var batch = 0
    }

    private enum Action {
        case none
        case startTimer(batch: Int)
        case flush([Waiting])
    }

    let maxCount: Int
    let maxAwait: Duration
    let pubsubName: String
    let topic: String
    private let stop: StopSignal
    private let deliver: DeliverBulk
    private let state = Mutex(State())

    init(maxCount: Int, maxAwait: Duration, pubsubName: String, topic: String, stop: StopSignal, deliver: @escaping DeliverBulk) {
        self.maxCount = max(1, maxCount)
        self.maxAwait = maxAwait
        self.pubsubName = pubsubName
        self.topic = topic
        self.stop = stop
        self.deliver = deliver
    }

    /// Adds an entry to the current batch; returns the app's verdict on it once the batch is delivered.
    func submit(_ entry: BulkTopicEventDelivery.Entry) async -> TopicEventResult {
        await withCheckedContinuation { (continuation: CheckedContinuation<TopicEventResult, Never>) in
            let action = self.state.withLock { state -> Action in
                state.pending.append(Waiting(entry: entry, continuation: continuation))
                if state.pending.count >= self.maxCount { return .flush(Self.take(&state)) }
                return state.pending.count == 1 ? .startTimer(batch: state.batch) : .none
            }
            switch action {
            case .none:
                break
            case .startTimer(let batch):
                Task { await self.flushWhenDue(batch) }
            case .flush(let waiting):
                Task { await self.deliverBatch(waiting) }
            }
        }
    }

    private static func take(_ state: inout State) -> [Waiting] {
        defer {
            state.pending = []
            state.batch += 1
        }
        return state.pending
    }

    /// The await window of batch `batch`: flushes it when the window ends or `stop` fires, unless
    /// it was already flushed by count.
    private func flushWhenDue(_ batch: Int) async {
        await self.stop.sleep(for: self.maxAwait)
        let waiting = self.state.withLock { state -> [Waiting] in
            guard state.batch == batch, !state.pending.isEmpty else { return [] }
            return Self.take(&state)
        }
        if !waiting.isEmpty { await self.deliverBatch(waiting) }
    }

    /// One app call per route path, in order of first appearance; every waiter gets its verdict.
    private func deliverBatch(_ waiting: [Waiting]) async {
        var paths: [String] = []
        var groups: [String: [Waiting]] = [:]
        for item in waiting {
            let path = item.entry.delivery.path
            if groups[path] == nil { paths.append(path) }
            groups[path, default: []].append(item)
        }
        for path in paths {
            let group = groups[path] ?? []
            let results = await self.deliver(BulkTopicEventDelivery(path: path, pubsubName: self.pubsubName, topic: self.topic, entries: group.map(\.entry)))
            for item in group {
                let result =
                    results[item.entry.entryID]
                    ?? .retry("response not received, RETRY required while processing bulk subscribe event for entry id: \(item.entry.entryID)")
                item.continuation.resume(returning: result)
            }
        }
    }
}

public import MechaCore
import Synchronization

/// The one place every call the sidecar makes goes through — to a component, to its own app, to
/// another sidecar: it runs the target's policy pipeline, then the call. Metrics, spans and error
/// mapping attach here once. The policies are replaced as a whole when the resources change.
public final class OutboundSeam: Sendable {
    private let current: Mutex<ResiliencyPolicies>
    /// TrafficPolicies on components (faults, local rate limits), by component name.
    private let gates: Mutex<[String: ComponentTrafficGate]>
    private let hasGates = Atomic<Bool>(false)
    let appID: String
    /// Told how every call went (metrics, component health; spans later). Installed at assembly,
    /// before the first call.
    private let observerBox = Mutex<(any OutboundObserver)?>(nil)
    private let observed = Atomic<Bool>(false)
    /// Starts a span per call (tracing); nil: calls are not traced.
    private let tracerBox = Mutex<(any CallTracer)?>(nil)
    private let traced = Atomic<Bool>(false)

    /// `trafficPolicies`: those targeting components are applied here (app targets belong to the mesh).
    public init(_ policies: ResiliencyPolicies = .empty, trafficPolicies: [TrafficPolicySpec] = [], appID: String = "") {
        self.current = Mutex(policies)
        self.appID = appID
        let gates = Self.gates(trafficPolicies, appID: appID)
        self.gates = Mutex(gates)
        self.hasGates.store(!gates.isEmpty, ordering: .relaxed)
    }

    static func gates(_ trafficPolicies: [TrafficPolicySpec], appID: String) -> [String: ComponentTrafficGate] {
        var gates: [String: ComponentTrafficGate] = [:]
        for policy in trafficPolicies where policy.applies(to: appID) && !policy.routes.isEmpty {
            if case .component(let name) = policy.target, gates[name] == nil {
                gates[name] = ComponentTrafficGate(component: name, routes: policy.routes)
            }
        }
        return gates
    }

    /// Hot reload: the TrafficPolicies on components are now these (fresh limiters).
    public func replace(trafficPolicies: [TrafficPolicySpec]) {
        let gates = Self.gates(trafficPolicies, appID: self.appID)
        self.gates.withLock { $0 = gates }
        self.hasGates.store(!gates.isEmpty, ordering: .relaxed)
    }

    public var policies: ResiliencyPolicies { self.current.withLock { $0 } }

    /// Adds an observer every call reports to.
    public func observe(with observer: any OutboundObserver) {
        self.observerBox.withLock { current in
            current = current.map { OutboundObservers(members: [$0, observer]) } ?? observer
        }
        self.observed.store(true, ordering: .releasing)
    }

    /// Installs the tracer every call starts its span with.
    public func trace(with tracer: any CallTracer) {
        self.tracerBox.withLock { $0 = tracer }
        self.traced.store(true, ordering: .releasing)
    }

    public var tracer: (any CallTracer)? {
        guard self.traced.load(ordering: .acquiring) else { return nil }
        return self.tracerBox.withLock { $0 }
    }

    public var observer: (any OutboundObserver)? {
        guard self.observed.load(ordering: .acquiring) else { return nil }
        return self.observerBox.withLock { $0 }
    }

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
        let span = self.tracer?.startCall(target, operation)
        let observer = self.observer
        if observer == nil && span == nil { return try await self.run(policy, target, operation, body) }
        let start = ContinuousClock.now
        do {
            let output = try await self.run(policy, target, operation, body)
            observer?.completed(target, operation, elapsed: ContinuousClock.now - start, error: nil)
            span?.end(error: nil)
            return output
        } catch {
            observer?.completed(target, operation, elapsed: ContinuousClock.now - start, error: error)
            span?.end(error: "\(error)")
            throw error
        }
    }

    private func run<Output: Sendable>(
        _ policy: TargetPolicy, _ target: PolicyTarget, _ operation: OperationName, _ body: @Sendable (Int) async throws -> Output
    ) async throws -> Output {
        if self.hasGates.load(ordering: .relaxed), case .component(let name, _, .outbound) = target, let gate = self.gates.withLock({ $0[name] }) {
            try await gate.pass(operation)
        }
        return try await policy.execute(body)
    }
}

/// The name of an outbound operation (`get`, `set`, `publish`, `invoke`, …), and what it acts on
/// when metrics label it.
public struct OperationName: Sendable, Hashable, ExpressibleByStringLiteral, CustomStringConvertible {
    public let name: String
    /// What metrics label the call with besides its name: the topic of a publish, the operation
    /// of an output binding (`create`); nil otherwise.
    public let subject: String?
    public init(_ name: String, subject: String? = nil) {
        self.name = name
        self.subject = subject
    }
    public init(stringLiteral name: String) {
        self.name = name
        self.subject = nil
    }
    public var description: String { self.name }
}

/// Told how each call through the outbound seam went (after its policies: retries, timeout and
/// breaker included). Called on the caller's task; must not block.
public protocol OutboundObserver: Sendable {
    func completed(_ target: PolicyTarget, _ operation: OperationName, elapsed: Duration, error: (any Error)?)
    /// A pub/sub message was delivered to the app (under the pub/sub's inbound policy).
    func delivered(pubsub: String, topic: String, result: DeliveryVerdict, elapsed: Duration)
    /// The sidecar called its app over HTTP (each attempt, whatever it was for).
    func appCalled(_ call: AppCall)
    /// A service invocation asked on the gRPC API (`InvokeService`) ended: the answer's status
    /// (HTTP's numbering; 500 when none came). HTTP invocations are seen by the HTTP surface.
    func invoked(app: String, status: Int, elapsed: Duration)
}

extension OutboundObserver {
    public func delivered(pubsub: String, topic: String, result: DeliveryVerdict, elapsed: Duration) {}
    public func appCalled(_ call: AppCall) {}
    public func invoked(app: String, status: Int, elapsed: Duration) {}
}

/// One HTTP request from the sidecar to its app: the app channel's (invocations, pub/sub and
/// binding deliveries, subscriptions) and the invocation fast path's direct hop.
public struct AppCall: Sendable {
    public var method: String
    /// The request target as sent (`/orders/1?x=1`).
    public var uri: String
    /// The answer's status; 500 when none came (daprd's value).
    public var status: Int
    /// Until the answer's head arrived (or the call failed).
    public var elapsed: Duration
    public var sentBytes: Int
    /// The answer's `content-length`, 0 when absent.
    public var receivedBytes: Int

    public init(method: String, uri: String, status: Int, elapsed: Duration, sentBytes: Int, receivedBytes: Int) {
        self.method = method
        self.uri = uri
        self.status = status
        self.elapsed = elapsed
        self.sentBytes = sentBytes
        self.receivedBytes = receivedBytes
    }

    /// The route without its leading slash or query (`orders/1`): worked out only when an
    /// observer reads it (the metrics label it only with templates or increased cardinality).
    public var path: Substring { Self.path(ofURI: self.uri) }

    /// The route of a request URI (`/orders/1?x=1` → `orders/1`).
    public static func path(ofURI uri: String) -> Substring {
        // Byte by byte: this runs for every call to the app.
        var utf8 = Substring(uri).utf8
        if let query = utf8.firstIndex(of: UInt8(ascii: "?")) { utf8 = utf8[..<query] }
        while utf8.first == UInt8(ascii: "/") { utf8 = utf8.dropFirst() }
        return Substring(utf8)
    }
}

/// Several observers as one.
struct OutboundObservers: OutboundObserver {
    let members: [any OutboundObserver]

    init(members: [any OutboundObserver]) {
        self.members = members.flatMap { ($0 as? OutboundObservers)?.members ?? [$0] }
    }

    func completed(_ target: PolicyTarget, _ operation: OperationName, elapsed: Duration, error: (any Error)?) {
        for member in self.members { member.completed(target, operation, elapsed: elapsed, error: error) }
    }

    func delivered(pubsub: String, topic: String, result: DeliveryVerdict, elapsed: Duration) {
        for member in self.members { member.delivered(pubsub: pubsub, topic: topic, result: result, elapsed: elapsed) }
    }

    func appCalled(_ call: AppCall) {
        for member in self.members { member.appCalled(call) }
    }

    func invoked(app: String, status: Int, elapsed: Duration) {
        for member in self.members { member.invoked(app: app, status: status, elapsed: elapsed) }
    }
}

/// Starts spans for the sidecar's own calls (tracing). Implemented by the telemetry module; the
/// parent is the trace context of the API call the current task serves (`TraceScope`).
public protocol CallTracer: Sendable {
    /// A span for a call through the outbound seam; nil when the call is not recorded.
    func startCall(_ target: PolicyTarget, _ operation: OperationName) -> (any CallSpan)?
    /// A span continuing `traceParent` (a pub/sub message's, an input binding event's), named
    /// `name` (`pubsub/orders`, `bindings/queue`); nil when not recorded. Its `traceParent` is what
    /// the app must see.
    func startDelivery(name: String, traceParent: String?, attributes: [(String, String)]) -> (any CallSpan)?
}

/// A span in progress.
public protocol CallSpan: Sendable {
    /// This span's context as a W3C `traceparent` header, for whatever it calls next.
    var traceParent: String { get }
    /// Ends the span (with an error status when `error` is given); once.
    func end(error: String?)
}

/// How the app answered a pub/sub delivery.
public enum DeliveryVerdict: String, Sendable {
    case success
    case retry
    case drop
}

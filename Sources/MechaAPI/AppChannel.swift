public import MechaCore
public import MechaResiliency
import Synchronization

/// A call to a method of an app (service invocation).
public struct InvocationRequest: Sendable {
    /// The method path without the leading slash (`api/orders/7`).
    public var method: String
    /// Upper-case HTTP verb.
    public var httpVerb: String
    /// Raw query string without `?`; empty when none.
    public var queryString: String
    /// Headers to pass to the app (hop-by-hop and Dapr-internal ones already removed).
    public var headers: HeaderList
    public var contentType: String?
    public var body: BodyStream

    public init(method: String, httpVerb: String = "POST", queryString: String = "", headers: HeaderList = [:], contentType: String? = nil, body: BodyStream = .empty) {
        self.method = method
        self.httpVerb = httpVerb
        self.queryString = queryString
        self.headers = headers
        self.contentType = contentType
        self.body = body
    }
}

/// An app's answer to an invocation; the body streams.
public struct InvocationResponse: Sendable {
    public var status: Int
    public var headers: HeaderList
    public var contentType: String?
    public var body: BodyStream

    public init(status: Int, headers: HeaderList = [:], contentType: String? = nil, body: BodyStream = .empty) {
        self.status = status
        self.headers = headers
        self.contentType = contentType
        self.body = body
    }
}

/// A topic event on its way to the app.
public struct TopicEventDelivery: Sendable {
    /// The route path from the subscription (`/orders`).
    public var path: String
    /// The bytes to send (the CloudEvent JSON, or the raw-payload wrapper).
    public var body: [UInt8]
    /// Headers derived from message metadata (`pubsubname`, …).
    public var headers: HeaderList
    public var pubsubName: String
    public var topic: String
    /// The parsed event, for protocols that send fields rather than bytes.
    public var event: JSONValue

    public init(path: String, body: [UInt8], headers: HeaderList, pubsubName: String, topic: String, event: JSONValue) {
        self.path = path
        self.body = body
        self.headers = headers
        self.pubsubName = pubsubName
        self.topic = topic
        self.event = event
    }
}

/// Several topic events delivered together (bulk subscribe): one request to the app, one verdict
/// per entry.
public struct BulkTopicEventDelivery: Sendable {
    public struct Entry: Sendable {
        /// A fresh id the app's answer refers to.
        public var entryID: String
        /// The single-event form of this entry (body, headers, parsed event).
        public var delivery: TopicEventDelivery
        /// `application/cloudevents+json`, or the raw payload's type for raw subscriptions.
        public var contentType: String
        /// The message's metadata.
        public var metadata: [String: String]
        /// True for raw-payload subscriptions: the event is the raw bytes, not a CloudEvent.
        public var raw: Bool
        /// The message bytes as the pub/sub delivered them: the CloudEvent JSON, or for raw entries
        /// the raw payload (HTTP sends it base64-encoded as `event`, gRPC as `bytes`). `delivery`
        /// keeps the single-event form (for raw entries, the wrapper CloudEvent).
        public var data: [UInt8]

        /// `data` defaults to `delivery.body`.
        public init(entryID: String, delivery: TopicEventDelivery, contentType: String, metadata: [String: String], raw: Bool, data: [UInt8]? = nil) {
            self.entryID = entryID
            self.delivery = delivery
            self.contentType = contentType
            self.metadata = metadata
            self.raw = raw
            self.data = data ?? delivery.body
        }
    }

    public var path: String
    public var pubsubName: String
    public var topic: String
    public var entries: [Entry]

    public init(path: String, pubsubName: String, topic: String, entries: [Entry]) {
        self.path = path
        self.pubsubName = pubsubName
        self.topic = topic
        self.entries = entries
    }
}

/// The app's verdict on a topic event.
public enum TopicEventResult: Sendable, Hashable {
    case success
    /// Try again later (app said RETRY, failed, or could not be reached).
    case retry(String)
    /// Do not deliver again (app said DROP or answered 404).
    case drop(String)

    /// The verdict as the outbound seam's observer sees it.
    var observed: DeliveryVerdict {
        switch self {
        case .success: .success
        case .retry: .retry
        case .drop: .drop
        }
    }
}

/// How the sidecar talks to its app. HTTP today (`MechaHTTP`), gRPC later; building blocks only
/// see this protocol.
public protocol AppChannel: Sendable {
    /// Calls a method on the app; `handler` receives the streaming response.
    func invoke<Output: Sendable>(
        _ request: InvocationRequest,
        _ handler: (InvocationResponse) async throws -> Output
    ) async throws -> Output

    /// Delivers one topic event and interprets the app's answer.
    func deliverTopicEvent(_ delivery: TopicEventDelivery) async -> TopicEventResult

    /// Delivers several events in one request (bulk subscribe) and returns the verdict per entry
    /// id; an entry the app did not answer counts as RETRY. The default delivers them one by one.
    func deliverBulkTopicEvent(_ delivery: BulkTopicEventDelivery) async -> [String: TopicEventResult]

    /// Asks the app which topics it subscribes to (`GET /dapr/subscribe`).
    func listSubscriptions() async throws -> [SubscriptionSpec]

    /// Whether the app accepts events for the input binding `name` (HTTP: `OPTIONS /route`; gRPC:
    /// the name is in `ListInputBindings`).
    func acceptsInputBinding(name: String, route: String) async throws -> Bool

    /// Delivers an input binding event; throws when the app does not accept it. A gRPC app may
    /// answer with state to save and output bindings to call (`BindingEventReply`).
    func deliverBindingEvent(name: String, route: String, event: BindingEvent) async throws -> BindingEventReply?

    /// One health probe (`GET <app-health-check-path>`).
    func probeHealth() async -> Bool

    /// Returns once the app accepts connections (or `stop` fires).
    func waitUntilReachable(until stop: StopSignal) async

    /// Background work the channel needs while the sidecar runs (e.g. a gRPC client's connections).
    /// Returns when `stop` fires. The default returns at once.
    func run(until stop: StopSignal) async
}

extension AppChannel {
    public func run(until stop: StopSignal) async {}

    public func deliverBulkTopicEvent(_ delivery: BulkTopicEventDelivery) async -> [String: TopicEventResult] {
        var results: [String: TopicEventResult] = [:]
        for entry in delivery.entries {
            results[entry.entryID] = await self.deliverTopicEvent(entry.delivery)
        }
        return results
    }
}

/// Invocations that could not reach the app or its sidecar.
public struct InvocationError: Error, Sendable, CustomStringConvertible {
    public var description: String
    /// HTTP status to report (500, or 403 for access denied).
    public var status: Int

    public init(_ description: String, status: Int = 500) {
        self.description = description
        self.status = status
    }
}

/// Sends invocations to another app's sidecar. Each call is one attempt (with Dapr's built-in
/// failover when `context.builtInRetries`); the target's policy drives further attempts, sharing
/// `context` so that a retry can avoid the instances that already failed.
public protocol RemoteInvoker: Sendable {
    func invoke<Output: Sendable>(
        appID: String,
        namespace: String,
        request: InvocationRequest,
        context: InvocationContext,
        _ handler: (InvocationResponse) async throws -> Output
    ) async throws -> Output
}

/// What the attempts of one invocation share.
public final class InvocationContext: Sendable {
    /// Dapr's built-in service invocation retries (connection failures only); off when a
    /// Resiliency resource names the target app.
    public let builtInRetries: Bool
    private let tried = Mutex<[String]>([])

    public init(builtInRetries: Bool = true) {
        self.builtInRetries = builtInRetries
    }

    /// Instances earlier attempts used, oldest first.
    public var triedInstances: [String] { self.tried.withLock { $0 } }

    public func markTried(_ instanceID: String) {
        self.tried.withLock { $0.append(instanceID) }
    }

    private let decided = Mutex<(any Sendable)?>(nil)

    /// A decision taken once per call and reused by its retries (the mesh's route: split target,
    /// fault, mirror, rate limit). `decide` runs on the first attempt only.
    public func once<Value: Sendable>(_ decide: () throws -> Value) rethrows -> Value {
        if let value = self.decided.withLock({ $0 }) as? Value { return value }
        let value = try decide()
        self.decided.withLock { $0 = value }
        return value
    }
}

/// What an app may ask for in answer to an input binding event (gRPC `BindingEventResponse`):
/// states to save in a store, and output bindings to send `data` to.
public struct BindingEventReply: Sendable {
    public var storeName: String
    public var states: [SaveStateItem]
    public var outputBindings: [String]
    public var data: [UInt8]
    /// Send to the output bindings one after another (false) or all at once (true).
    public var parallel: Bool

    public init(storeName: String = "", states: [SaveStateItem] = [], outputBindings: [String] = [], data: [UInt8] = [], parallel: Bool = false) {
        self.storeName = storeName
        self.states = states
        self.outputBindings = outputBindings
        self.data = data
        self.parallel = parallel
    }
}

/// A sidecar-to-sidecar hop the invocation fast path can take without waiting: the instance's
/// internal listener and the headers the hop adds (as `RemoteInvoker.invoke` would send them).
public struct DirectHop: Sendable {
    public var host: String
    public var port: Int
    public var headers: [(name: String, value: String)]
    /// The next sidecar listens with mTLS: connect with this sidecar's SVID.
    public var tls: Bool
    /// Reports how the hop went (false: connect error, 5xx, misdirected), for balancing and
    /// outlier ejection. Called once.
    public var finish: @Sendable (_ success: Bool) -> Void

    public init(
        host: String, port: Int, headers: [(name: String, value: String)], tls: Bool = false, finish: @escaping @Sendable (_ success: Bool) -> Void = { _ in }
    ) {
        self.tls = tls
        self.host = host
        self.port = port
        self.headers = headers
        self.finish = finish
    }
}

/// A call refused before it left the sidecar (a rate limit): answered with `error`, never retried.
public struct InvocationRejected: PermanentFailure, CustomStringConvertible {
    public var error: APIError
    public init(_ error: APIError) { self.error = error }
    public var description: String { self.error.message }
}

/// A remote invoker that can name the next hop synchronously when it already knows the target's
/// instances (cached name resolution). Returning nil sends the call through the general path.
public protocol DirectHopProvider: Sendable {
    func directHop(appID: String, namespace: String) -> DirectHop?
}

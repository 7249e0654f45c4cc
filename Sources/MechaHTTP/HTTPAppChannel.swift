public import HTTP1Client
public import Logging
public import MechaAPI
public import MechaCore
public import MechaResiliency
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The HTTP app channel: how the sidecar calls its app (`--app-protocol http`).
public final class HTTPAppChannel: AppChannel {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        public var apiToken: String?
        public var healthCheckPath: String
        public var healthProbeTimeout: Duration
        public var bindingOptionsTimeout: Duration
        /// Upper bound on concurrent calls to the app; nil for unlimited.
        public var maxConcurrency: Int?
        public var appID: String

        public init(
            host: String,
            port: Int,
            appID: String,
            apiToken: String? = nil,
            healthCheckPath: String = "/healthz",
            healthProbeTimeout: Duration = .milliseconds(500),
            bindingOptionsTimeout: Duration = .seconds(3),
            maxConcurrency: Int? = nil
        ) {
            self.host = host
            self.port = port
            self.appID = appID
            self.apiToken = apiToken
            self.healthCheckPath = healthCheckPath
            self.healthProbeTimeout = healthProbeTimeout
            self.bindingOptionsTimeout = bindingOptionsTimeout
            self.maxConcurrency = maxConcurrency
        }
    }

    let configuration: Configuration
    let client: HTTP1Client
    let logger: Logger
    let limiter: ConcurrencyLimiter?
    /// Told of every call to the app (daprd's `dapr_http_client_*`); nil: not observed.
    let outbound: OutboundSeam?
    var target: HTTP1Target { HTTP1Target(host: self.configuration.host, port: self.configuration.port) }

    public init(configuration: Configuration, client: HTTP1Client, logger: Logger, outbound: OutboundSeam? = nil) {
        self.configuration = configuration
        self.client = client
        self.logger = logger
        self.outbound = outbound
        self.limiter = configuration.maxConcurrency.flatMap { $0 > 0 ? ConcurrencyLimiter(limit: $0) : nil }
    }

    /// Where the invocation fast path may send calls itself: not when a concurrency limit applies
    /// (the general path enforces it).
    var directTarget: DirectAppTarget? {
        guard self.limiter == nil else { return nil }
        return DirectAppTarget(host: self.configuration.host, port: self.configuration.port, apiToken: self.configuration.apiToken)
    }

    private func headers(_ list: HeaderList, contentType: String?) -> HTTPHeaders {
        var headers = HTTPHeaders()
        for field in list where !HopByHop.isHopByHop(field.name) && field.name.lowercased() != "content-type" && !field.name.lowercased().hasPrefix("x-mecha-") {
            headers.add(name: field.name, value: field.value)
        }
        if let contentType, !contentType.isEmpty { headers.replaceOrAdd(name: "content-type", value: contentType) }
        if let token = self.configuration.apiToken { headers.replaceOrAdd(name: "dapr-api-token", value: token) }
        return headers
    }

    /// Every request to the app goes out here, so the outbound seam's observer sees each one once
    /// (daprd's app channel metrics: the time until the answer's head, its status, 500 when none).
    private func send<Output: Sendable>(_ request: HTTP1Request, _ handler: (HTTP1Response) async throws -> Output) async throws -> Output {
        guard let observer = self.outbound?.observer else { return try await self.client.execute(request, handler) }
        let sent: Int
        switch request.body {
        case .empty: sent = 0
        case .bytes(let bytes): sent = bytes.readableBytes
        case .stream(_, let length): sent = length ?? 0
        }
        let start = ContinuousClock.now
        var answered = false
        do {
            return try await self.client.execute(request) { response in
                answered = true
                observer.appCalled(
                    AppCall(
                        method: request.method.rawValue, uri: request.uri, status: Int(response.status.code),
                        elapsed: ContinuousClock.now - start, sentBytes: sent,
                        receivedBytes: response.headers.first(name: "content-length").flatMap(Int.init) ?? 0))
                return try await handler(response)
            }
        } catch {
            if !answered {
                observer.appCalled(
                    AppCall(
                        method: request.method.rawValue, uri: request.uri, status: 500,
                        elapsed: ContinuousClock.now - start, sentBytes: sent, receivedBytes: 0))
            }
            throw error
        }
    }

    private func limited<Output: Sendable>(_ body: () async throws -> Output) async throws -> Output {
        guard let limiter = self.limiter else { return try await body() }
        await limiter.acquire()
        defer { limiter.release() }
        return try await body()
    }

    public func invoke<Output: Sendable>(_ request: InvocationRequest, _ handler: (InvocationResponse) async throws -> Output) async throws -> Output {
        var uri = "/" + request.method
        if !request.queryString.isEmpty { uri += "?" + request.queryString }
        let body: HTTP1RequestBody
        if let buffered = request.body.bufferedBytes {
            body = buffered.readableBytes == 0 ? .empty : .bytes(buffered)
        } else {
            body = .stream(ByteStream(request.body), length: request.body.length)
        }
        let httpRequest = HTTP1Request(
            target: self.target,
            method: HTTPMethod(rawValue: request.httpVerb),
            uri: uri,
            headers: self.headers(request.headers, contentType: request.contentType),
            body: body
        )
        return try await self.limited {
            do {
                return try await self.send(httpRequest) { response in
                    var headers = HeaderList()
                    for (name, value) in response.headers where !HopByHop.isHopByHop(name) && name.lowercased() != "content-length" {
                        headers.add(name, value)
                    }
                    let length = response.headers.first(name: "content-length").flatMap(Int.init)
                    do {
                        return try await handler(
                            InvocationResponse(
                                status: Int(response.status.code),
                                headers: headers,
                                contentType: response.headers.first(name: "content-type"),
                                body: BodyStream(response.body, length: length)
                            )
                        )
                    } catch {
                        throw HandlerError(underlying: error)
                    }
                }
            } catch let error as APIError {
                throw error
            } catch let error as InvocationError {
                throw error
            } catch let error as HandlerError {
                throw error.underlying
            } catch {
                throw InvocationError("\(request.httpVerb) \"http://\(self.configuration.host):\(self.configuration.port)\(uri)\": \(error)")
            }
        }
    }

    struct HandlerError: Error {
        var underlying: any Error
    }

    public func deliverTopicEvent(_ delivery: TopicEventDelivery) async -> TopicEventResult {
        var headers = self.headers(delivery.headers, contentType: CloudEvent.contentType)
        headers.replaceOrAdd(name: "content-type", value: CloudEvent.contentType)
        let path = Self.cleanRoute(delivery.path)
        let request = HTTP1Request(target: self.target, method: .POST, uri: path, headers: headers, body: .bytes(ByteBuffer(bytes: delivery.body)))
        do {
            return try await self.limited {
                try await self.send(request) { response -> TopicEventResult in
                    let body = try await response.collect(upTo: 1 << 20)
                    let code = Int(response.status.code)
                    if code == 404 {
                        return .drop("non-retriable error returned from app while processing pub/sub event: \(String(buffer: body)). status code returned: 404")
                    }
                    guard (200..<300).contains(code) else {
                        return .retry("body: \(String(buffer: body)). status code returned: \(code)")
                    }
                    guard body.readableBytes > 0, let json = try? JSONValue(parsing: Array(buffer: body)),
                        case .string(let status)? = json["status"]
                    else { return .success }
                    switch status {
                    case "", "SUCCESS": return .success
                    case "RETRY": return .retry("RETRY status returned from app")
                    case "DROP": return .drop("DROP status returned from app")
                    default: return .retry("unknown status returned from app, status: \(status)")
                    }
                }
            }
        } catch {
            return .retry("error delivering to app: \(error)")
        }
    }

    /// Bulk subscribe (daprd's HTTP postman `DeliverBulk`): one `POST <path>` with
    /// `Content-Type: application/json`, the batch metadata as headers (`pubsubname`), and the body
    /// `{"entries":[{"contentType","entryId","event","metadata"}],"id","metadata":{"pubsubName"},
    /// "pubsubname","topic","type":"com.dapr.event.sent.bulk"}` (keys sorted as Go writes them;
    /// `event` is the CloudEvent object, or for raw entries the payload in base64; an entry's
    /// `metadata` is null when the message has none).
    ///
    /// The answer: a 2xx with `{"statuses":[{"entryId","status"}]}`, where `SUCCESS` is handled,
    /// `DROP` dropped, and `RETRY`, `""` or anything else a retry; unknown entry ids are ignored and
    /// an entry without a status is left out (the caller retries it). A 2xx body that does not
    /// decode, any status other than 2xx and 404, or no answer retries every entry. A 404 drops every
    /// entry without dead-lettering, as daprd does: they are logged and reported handled.
    public func deliverBulkTopicEvent(_ delivery: BulkTopicEventDelivery) async -> [String: TopicEventResult] {
        guard !delivery.entries.isEmpty else { return [:] }
        let headers = self.headers(["pubsubname": delivery.pubsubName], contentType: "application/json")
        let path = Self.cleanRoute(delivery.path)
        let body = Self.bulkRequestBody(delivery).serialized
        let request = HTTP1Request(target: self.target, method: .POST, uri: path, headers: headers, body: .bytes(ByteBuffer(bytes: body)))
        let ids = Set(delivery.entries.map(\.entryID))
        func all(_ result: TopicEventResult) -> [String: TopicEventResult] {
            Dictionary(uniqueKeysWithValues: ids.map { ($0, result) })
        }
        do {
            return try await self.limited {
                try await self.send(request) { response -> [String: TopicEventResult] in
                    let answer = try await response.collect(upTo: 16 << 20)
                    let code = Int(response.status.code)
                    if code == 404 {
                        self.logger.error("non-retriable error returned from app while processing bulk pub/sub event. status code returned: 404; dropping \(ids.count) entries of topic \(delivery.topic)")
                        return all(.success)
                    }
                    guard (200..<300).contains(code) else {
                        let reason = "retriable error returned from app while processing bulk pub/sub event, topic: \(delivery.topic). status code returned: \(code)"
                        self.logger.warning("\(reason)")
                        return all(.retry(reason))
                    }
                    switch Self.bulkStatuses(Array(buffer: answer)) {
                    case .failure(let error):
                        return all(.retry("failed unmarshalling app response for bulk subscribe: \(error)"))
                    case .success(let statuses):
                        var results: [String: TopicEventResult] = [:]
                        for (entryID, status) in statuses {
                            guard ids.contains(entryID) else {
                                self.logger.warning("invalid entry id received from app while processing pub/sub event \(entryID)")
                                continue
                            }
                            switch status {
                            case "SUCCESS": results[entryID] = .success
                            case "DROP": results[entryID] = .drop("DROP status returned from app for bulk subscribe entry id: \(entryID)")
                            case "", "RETRY": results[entryID] = .retry("RETRY required while processing bulk subscribe event for entry id: \(entryID)")
                            default:
                                results[entryID] = .retry("unknown status returned from app while processing bulk subscribe event \(entryID): \(status)")
                            }
                        }
                        return results
                    }
                }
            }
        } catch {
            return all(.retry("error from app channel while sending pub/sub event to app: \(error)"))
        }
    }

    /// The JSON body of a bulk delivery.
    static func bulkRequestBody(_ delivery: BulkTopicEventDelivery) -> JSONValue {
        let entries: [JSONValue] = delivery.entries.map { entry in
            var members: [(String, JSONValue)] = []
            if !entry.contentType.isEmpty { members.append(("contentType", .string(entry.contentType))) }
            members.append(("entryId", .string(entry.entryID)))
            members.append(("event", entry.raw ? .string(Base64.encode(entry.data)) : entry.delivery.event))
            members.append(("metadata", entry.metadata.isEmpty ? .null : .object(sorted: entry.metadata.mapValues { .string($0) })))
            return .object(members)
        }
        return .object([
            ("entries", .array(entries)),
            ("id", .string(RandomID.uuid())),
            ("metadata", .object([("pubsubName", .string(delivery.pubsubName))])),
            ("pubsubname", .string(delivery.pubsubName)),
            ("topic", .string(delivery.topic)),
            ("type", "com.dapr.event.sent.bulk"),
        ])
    }

    struct BulkAnswerError: Error, CustomStringConvertible {
        var description: String
    }

    /// `(entryId, status)` pairs of a bulk answer, decoded as Go decodes `{"statuses":[…]}` into its
    /// struct: field names case-insensitive, `null` as absent, any other type mismatch an error.
    static func bulkStatuses(_ body: [UInt8]) -> Result<[(String, String)], BulkAnswerError> {
        guard !body.isEmpty else { return .failure(BulkAnswerError(description: "EOF")) }
        let json: JSONValue
        do {
            json = try JSONValue(parsing: body)
        } catch {
            return .failure(BulkAnswerError(description: "\(error)"))
        }
        func field(_ members: [(String, JSONValue)], _ name: String) -> JSONValue? {
            (members.last { $0.0 == name } ?? members.last { $0.0.lowercased() == name.lowercased() })?.1
        }
        let statuses: [JSONValue]
        switch json {
        case .null:
            return .success([])
        case .object(let members):
            switch field(members, "statuses") {
            case nil, .null?: return .success([])
            case .array(let items)?: statuses = items
            case let other?: return .failure(BulkAnswerError(description: "json: cannot unmarshal \(other.typeName) into field statuses"))
            }
        default:
            return .failure(BulkAnswerError(description: "json: cannot unmarshal \(json.typeName) into the bulk subscribe response"))
        }
        var pairs: [(String, String)] = []
        for item in statuses {
            guard case .object(let members) = item else {
                if item.isNull { continue }
                return .failure(BulkAnswerError(description: "json: cannot unmarshal \(item.typeName) into a bulk subscribe response entry"))
            }
            var values: [String] = []
            for name in ["entryId", "status"] {
                switch field(members, name) {
                case nil, .null?: values.append("")
                case .string(let text)?: values.append(text)
                case let other?: return .failure(BulkAnswerError(description: "json: cannot unmarshal \(other.typeName) into field \(name) of type string"))
                }
            }
            pairs.append((values[0], values[1]))
        }
        return .success(pairs)
    }

    /// A subscription route as daprd requests it: a leading `/` added, then Go's `path.Clean`.
    static func cleanRoute(_ route: String) -> String {
        var output: [Substring] = []
        for segment in route.split(separator: "/", omittingEmptySubsequences: true) {
            if segment == "." { continue }
            if segment == ".." {
                if !output.isEmpty { output.removeLast() }
                continue
            }
            output.append(segment)
        }
        return "/" + output.joined(separator: "/")
    }

    public func listSubscriptions() async throws -> [SubscriptionSpec] {
        var headers = self.headers([:], contentType: "application/json")
        headers.add(name: "dapr-app-id", value: self.configuration.appID)
        let request = HTTP1Request(target: self.target, method: .GET, uri: "/dapr/subscribe", headers: headers)
        return try await self.send(request) { response in
            let body = try await response.collect(upTo: 16 << 20)
            let code = Int(response.status.code)
            if code == 404 { return [] }
            guard code == 200 else {
                self.logger.error("app returned http status code \(code) from subscription endpoint")
                return []
            }
            if body.readableBytes == 0 { return [] }
            return try ProgrammaticSubscriptions.decode(Array(buffer: body))
        }
    }

    public func acceptsInputBinding(name: String, route: String) async throws -> Bool {
        let path = route.hasPrefix("/") ? route : "/" + route
        let request = HTTP1Request(target: self.target, method: .OPTIONS, uri: path, headers: self.headers([:], contentType: "application/json"))
        return try await TimeoutPolicy(name: "bindingOptionsTimeout", timeout: self.configuration.bindingOptionsTimeout).execute {
            try await self.send(request) { response in
                _ = try await response.collect(upTo: 1 << 20)
                let code = Int(response.status.code)
                return (200..<300).contains(code) || code == 405
            }
        }
    }

    public func deliverBindingEvent(name: String, route: String, event: BindingEvent) async throws -> BindingEventReply? {
        var headers = HeaderList()
        for (key, value) in event.metadata.sorted(by: { $0.key < $1.key }) { headers.add(key.lowercased(), value) }
        let path = route.hasPrefix("/") ? route : "/" + route
        let request = HTTP1Request(
            target: self.target,
            method: .POST,
            uri: path,
            headers: self.headers(headers, contentType: "application/json"),
            body: event.data.isEmpty ? .empty : .bytes(ByteBuffer(bytes: event.data))
        )
        try await self.limited {
            try await self.send(request) { response in
                let body = try await response.collect(upTo: 1 << 20)
                let code = Int(response.status.code)
                guard (200..<300).contains(code) else {
                    throw BindingError("fails to send binding event to http app channel, status code: \(code) body: \(String(buffer: body))")
                }
            }
        }
        // daprd does not act on an HTTP app's answer body.
        return nil
    }

    public func probeHealth() async -> Bool {
        // Health probes carry no app token, as in daprd.
        let request = HTTP1Request(target: self.target, method: .GET, uri: self.configuration.healthCheckPath)
        do {
            // Not counted as an app call: daprd keeps health probes out of the client metrics.
            return try await TimeoutPolicy(name: "healthProbeTimeout", timeout: self.configuration.healthProbeTimeout).execute {
                try await self.client.execute(request) { response in
                    _ = try await response.collect(upTo: 1 << 20)
                    return (200..<300).contains(Int(response.status.code))
                }
            }
        } catch {
            return false
        }
    }

    public func waitUntilReachable(until stop: StopSignal) async {
        var attempts = 0
        while !stop.isStopped {
            if await TCPProbe.canConnect(host: self.configuration.host, port: self.configuration.port) { return }
            attempts += 1
            if attempts == 1 {
                self.logger.info("application protocol: http. waiting on port \(self.configuration.port).  This will block until the app is listening on that port.")
            } else if attempts % 100 == 0 {
                self.logger.info("waiting for application to listen on port \(self.configuration.port)")
            }
            if await stop.sleep(for: .milliseconds(100)) { return }
        }
    }
}

/// Hop-by-hop headers (RFC 7230 §6.1) never forwarded by a proxy.
enum HopByHop {
    static let names: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "http2-settings", "te", "trailer",
        "proxy-authorization", "proxy-authenticate",
    ]

    /// One check for the general and the fast path (`HeaderNames` compares without lowercasing;
    /// a test keeps it equal to `names`).
    static func isHopByHop(_ name: String) -> Bool { HeaderNames.isHopByHop(name) }
}

/// Checks whether something accepts TCP connections on a port.
enum TCPProbe {
    static func canConnect(host: String, port: Int) async -> Bool {
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.milliseconds(500))
                .connect(host: host, port: port)
                .get()
            try? await channel.close()
            return true
        } catch {
            return false
        }
    }
}

import HTTPTypes
public import HummingbirdCore
public import Logging
public import MechaAPI
public import MechaTelemetry
public import MechaCore
public import MechaIdentity
import MechaResiliency
import NIOCore
import NIOPosix
public import ServiceLifecycle
import Synchronization

/// The Dapr HTTP API (`/v1.0/*`) on HummingbirdCore: token check, allow/deny lists, routing to the
/// building blocks, and streaming service invocation.
public struct DaprHTTPServer: Sendable {
    public struct Configuration: Sendable {
        /// Hosts to listen on (`--dapr-listen-addresses`).
        public var addresses: [String]
        public var port: Int
        public var maxBodySize: Int
        /// The sidecar's inbound chain (token, rate limits, allow/deny), shared with the gRPC server.
        public var inbound: InboundChain
        /// Plain invocations are proxied by a channel handler (`FastInvokeHandler`) instead of the
        /// general async path. `MECHA_FAST_INVOKE=0` turns it off.
        public var fastInvoke: Bool
        /// Idle and read deadlines of every connection.
        public var timeouts: ConnectionTimeouts
        /// Spans for every API call (`spec.tracing`); nil: the trace context passes through untouched.
        public var tracer: SidecarTracer?
        /// This sidecar's mTLS identity, for fast-path hops to sidecars that listen with mTLS.
        public var meshTLS: MeshTLS?

        public init(
            addresses: [String] = ["127.0.0.1"],
            port: Int = 3500,
            maxBodySize: Int = 4 << 20,
            fastInvoke: Bool = true,
            timeouts: ConnectionTimeouts = .standard,
            inbound: InboundChain = InboundChain(),
            tracer: SidecarTracer? = nil,
            meshTLS: MeshTLS? = nil
        ) {
            self.meshTLS = meshTLS
            self.tracer = tracer
            self.inbound = inbound
            self.timeouts = timeouts
            self.addresses = addresses
            self.port = port
            self.maxBodySize = maxBodySize
            self.fastInvoke = fastInvoke
        }
    }

    let api: DaprAPI
    let configuration: Configuration
    let inbound: InboundChain
    let logger: Logger

    public init(api: DaprAPI, configuration: Configuration, logger: Logger) {
        self.api = api
        self.configuration = configuration
        self.inbound =
            configuration.inbound
        self.logger = logger
    }

    /// One server service per listen address. `onListening` receives each bound port.
    public func makeServices(onListening: @escaping @Sendable (Int) -> Void = { _ in }) throws -> [any Service] {
        let router = self.fastInvokeRouter
        let chain = self.inbound
        let observe: (@Sendable (InboundExchange) -> Void)? = chain.observers.isEmpty ? nil : { @Sendable exchange in chain.completed(exchange) }
        return try self.configuration.addresses.map { host in
            try MechaHTTP1Channel.builder(
                router: router, timeouts: self.configuration.timeouts, observe: observe,
                targetHeader: observe == nil ? nil : "dapr-app-id", details: chain.observersWantDetails,
                tracing: self.configuration.tracer.map { ExchangeTracing(tracer: $0, side: .api) }
            ).buildServer(
                configuration: ServerConfiguration(address: .hostname(host, port: self.configuration.port), serverName: nil, backlog: 1024),
                eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
                logger: self.logger,
                responder: { request, writer, channel in
                    try await self.respond(to: request, writer: writer, remoteAddress: channel.remoteAddress)
                },
                onServerRunning: { channel in
                    onListening(channel.localAddress?.port ?? self.configuration.port)
                }
            )
        }
    }

    /// The fast path's router, when it is on. A chain that needs the caller's address (rate
    /// limits) counts every request exactly once on the general path, so the fast path is off then.
    var fastInvokeRouter: PublicFastInvokeRouter? {
        guard self.configuration.fastInvoke, !self.inbound.readsClient else { return nil }
        let identity = self.api.identity
        return PublicFastInvokeRouter(
            appID: identity.appID,
            namespace: identity.namespace,
            app: (self.api.invoke.localAppChannel as? HTTPAppChannel)?.directTarget,
            invoke: self.api.invoke,
            inbound: self.inbound,
            bodyLimit: min(Self.bufferedBodyLimit, self.configuration.maxBodySize),
            appCalls: self.api.invoke.outbound.observer,
            tls: self.configuration.meshTLS
        )
    }

    // MARK: Dispatch

    func respond(to request: Request, writer: consuming ResponseWriter, remoteAddress: SocketAddress? = nil) async throws {
        let method = request.head.method.rawValue
        var request = request
        let target = Self.originForm(request.head.path ?? "/")
        if target != request.head.path {
            // The absolute form (`GET http://host/v1.0/...`) is routed by its path, as Go's server does.
            var head = request.head
            head.path = target
            request = Request(head: head, body: request.body)
        }
        let (path, query) = Self.split(target)
        var route = DaprRoute.match(method: method, path: String(path))

        if !self.inbound.isEmpty(for: .http) {
            let operation = self.operation(route, request: request, path: path, remoteAddress: remoteAddress)
            switch self.inbound.check(operation) {
            case nil: break
            case .unrouted?: route = .fallback
            case let rejection?:
                try await HTTPReply(rejection).write(to: writer, marksErrorCode: self.inbound.observersWantErrorCodes)
                return
            }
            if self.inbound.apiToken != nil {
                var head = request.head
                head.headerFields[HTTPField.Name("dapr-api-token")!] = nil
                request = Request(head: head, body: request.body)
            }
        }

        switch route {
        case .invoke(let appID, let methodPath):
            try await self.invoke(target: appID, method: methodPath, query: query, request: request, writer: writer)
        case .fallback:
            if let appID = Self.headerAppID(request) {
                try await self.invoke(target: appID, method: String(path), query: query, request: request, writer: writer)
            } else if self.inbound.access.exposes(Self.invokeOperation) {
                try await HTTPReply.error(.directInvokeNoAppID).write(to: writer, marksErrorCode: self.inbound.observersWantErrorCodes)
            } else {
                try await HTTPReply.text("404 page not found\n", status: 404).write(to: writer)
            }
        default:
            let reply: HTTPReply
            if self.configuration.tracer != nil {
                // Component calls made for this request are children of its span (the handler
                // put the span's context in `traceparent`).
                let traceParent = request.headers[HTTPField.Name("traceparent")!]
                reply = await TraceScope.$traceParent.withValue(traceParent) { await self.handle(route, request: request, query: query) }
            } else {
                reply = await self.handle(route, request: request, query: query)
            }
            try await reply.write(to: writer, marksErrorCode: self.inbound.observersWantErrorCodes)
        }
    }

    /// A request target in origin form: `http://host:port/p?q` (absolute form) becomes `/p?q`;
    /// anything else is returned as it is.
    static func originForm(_ target: String) -> String {
        guard let first = target.utf8.first, first != UInt8(ascii: "/") else { return target }
        let lowered = target.prefix(8).lowercased()
        let scheme = lowered.hasPrefix("http://") ? 7 : (lowered.hasPrefix("https://") ? 8 : 0)
        guard scheme > 0 else { return target }
        let rest = target.utf8.dropFirst(scheme)
        guard let slash = rest.firstIndex(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") }) else { return "/" }
        let tail = String(Substring(rest[slash...]))
        return tail.hasPrefix("?") ? "/" + tail : tail
    }

    static func split(_ target: String) -> (path: Substring, query: Substring) {
        guard let mark = target.firstIndex(of: "?") else { return (target[...], "") }
        return (target[..<mark], target[target.index(after: mark)...])
    }

    /// The invocation target from `dapr-app-id` or basic auth (`dapr-app-id:<target>`).
    static func headerAppID(_ request: Request) -> String? {
        if let value = request.headers[HTTPField.Name("dapr-app-id")!], !value.isEmpty { return value }
        if let authorization = request.headers[.authorization], authorization.lowercased().hasPrefix("basic "),
            let decoded = Base64.decode(authorization.dropFirst(6).trimmingSpaces()),
            let text = String(validating: decoded, as: UTF8.self)
        {
            let parts = text.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "dapr-app-id", !parts[1].isEmpty { return String(parts[1]) }
        }
        return nil
    }

    // MARK: Inbound chain

    /// The request as the inbound chain sees it. Only the health routes themselves are named
    /// `healthz` (and so exempt from the token); any other path, however close to them
    /// (`/v1.0/healthz` with `dapr-app-id`), is not.
    func operation(_ route: DaprRoute, request: Request, path: Substring, remoteAddress: SocketAddress?) -> InboundOperation {
        var operation: InboundOperation
        if let group = route.accessGroup {
            operation = InboundOperation(surface: .http, api: group.name, version: group.version, route: group.route, apiToken: nil)
        } else if (route == .healthz || route == .healthzOutbound || route.isActuator) && Self.headerAppID(request) == nil {
            operation = InboundOperation(surface: .http, api: "healthz", version: "v1.0", route: "healthz", apiToken: nil)
        } else {
            operation = InboundOperation(surface: .http, api: "", version: "", route: "", apiToken: nil)
        }
        operation.apiToken = request.headers[HTTPField.Name("dapr-api-token")!]
        if self.inbound.readsClient {
            operation.path = String(path)
            operation.client = InboundClient(
                remoteAddress: Self.goRemoteAddress(remoteAddress),
                forwardedFor: request.headers[values: HTTPField.Name("X-Forwarded-For")!].first,
                realIP: request.headers[values: HTTPField.Name("X-Real-IP")!].first
            )
        }
        return operation
    }

    /// `/v1.0/invoke/...`, as the allow lists see it.
    static let invokeOperation = InboundOperation(surface: .http, api: "invoke", version: "v1.0", route: "invoke", apiToken: nil)

    /// A peer address as Go's `Request.RemoteAddr` writes it: `1.2.3.4:5000`, `[::1]:5000`.
    static func goRemoteAddress(_ address: SocketAddress?) -> String {
        guard let address, let ip = address.ipAddress, let port = address.port else { return "" }
        if case .v6 = address { return "[\(ip)]:\(port)" }
        return "\(ip):\(port)"
    }

    // MARK: Buffered routes

    func handle(_ route: DaprRoute, request: Request, query: Substring) async -> HTTPReply {
        do {
            switch route {
            case .healthz: return self.healthz(query: query)
            case .actuatorHealth(let probe): return self.actuator(probe: probe)
            case .healthzOutbound:
                return self.api.readiness.isOutboundReady ? .noContent() : .error(.outboundHealthNotReady)
            case .metadata:
                return .json(self.api.metadata.document, trailingNewline: true)
            case .setMetadata(let key):
                let body = try await self.body(request, error: { .bodyRead($0) })
                self.api.metadata.setExtended(key, String(decoding: body, as: UTF8.self))
                return .noContent()
            case .shutdown:
                return self.shutdown(request)
            case .getState(let store, let key):
                return try await StateRoutes(api: self.api.state).get(store: store, key: key, query: query)
            case .saveState(let store):
                _ = try self.api.state.store(store)
                let body = try await self.body(request, error: { .malformedRequest(message: $0) })
                try await StateRoutes(api: self.api.state).save(store: store, body: body, query: query)
                return .noContent()
            case .deleteState(let store, let key):
                let etag = request.headers[HTTPField.Name("If-Match")!]
                try await StateRoutes(api: self.api.state).delete(store: store, key: key, etag: etag, query: query)
                return .noContent()
            case .bulkState(let store):
                _ = try self.api.state.store(store)
                let body = try await self.body(request, error: { .malformedRequest($0) })
                return try await StateRoutes(api: self.api.state).bulk(store: store, body: body, query: query)
            case .stateTransaction(let store):
                _ = try self.api.state.store(store)
                let body = try await self.body(request, error: { .malformedRequest($0) })
                try await StateRoutes(api: self.api.state).transaction(store: store, body: body, query: query)
                return .noContent()
            case .publish(let pubsub, let topic):
                let metadata = PercentDecoding.metadata(from: query)
                let body = try await self.body(request, error: { .pubsubPublish(topic: topic, pubsub: pubsub, $0, metadata: ["topic": topic, "error": $0]) })
                try await self.api.pubsub.publish(
                    pubsubName: pubsub,
                    topic: topic,
                    data: body,
                    contentType: request.headers[.contentType],
                    metadata: metadata,
                    traceParent: request.headers[HTTPField.Name("traceparent")!] ?? "",
                    traceState: request.headers[HTTPField.Name("tracestate")!] ?? ""
                )
                return .noContent()
            case .bulkPublish(let pubsub, let topic):
                let body = try await self.body(request, error: { .pubsubUnmarshalEvents(topic: topic, pubsub: pubsub, $0) })
                return try await PubSubRoutes(api: self.api.pubsub).bulkPublish(
                    pubsub: pubsub,
                    topic: topic,
                    body: body,
                    query: query,
                    traceParent: request.headers[HTTPField.Name("traceparent")!] ?? ""
                )
            case .invokeBinding(let name):
                let body = try await self.body(request, error: { .malformedRequest($0) })
                return try await BindingRoutes(api: self.api.bindings).invoke(name: name, body: body)
            case .bulkSecrets(let store):
                let secrets = try await self.api.secrets.bulk(storeName: store, metadata: PercentDecoding.metadata(from: query))
                return .json(.object(sorted: secrets.mapValues { JSONValue.stringMap($0) }), trailingNewline: true)
            case .getSecret(let store, let key):
                let secret = try await self.api.secrets.get(storeName: store, key: key, metadata: PercentDecoding.metadata(from: query))
                return .json(.stringMap(secret), trailingNewline: true)
            case .getConfiguration(let store, _):
                let (keys, metadata) = Self.configurationQuery(query)
                let items = try await self.api.configuration.get(storeName: store, keys: keys, metadata: metadata)
                if items.isEmpty { return .noContent() }
                return .json(ConfigurationAPI.items(items), trailingNewline: true)
            case .subscribeConfiguration(let store, _):
                let (keys, metadata) = Self.configurationQuery(query)
                let id = try await self.api.configuration.subscribeForApp(storeName: store, keys: keys, metadata: metadata)
                return .json(.object([("id", .string(id))]), trailingNewline: true)
            case .unsubscribeConfiguration(let store, let id, _):
                do {
                    try await self.api.configuration.unsubscribe(storeName: store, id: id)
                    return .json(.object([("ok", .bool(true))]), trailingNewline: true)
                } catch {
                    // daprd answers a bare message here, not its usual error body.
                    return .json(.object([("message", .string(error.message))]), status: 500, trailingNewline: true)
                }
            case .tryLock(let store):
                let body = try await self.body(request, error: { .bodyRead($0) })
                return try await LockRoutes(api: self.api.lock).tryLock(store: store, body: body)
            case .unlock(let store):
                let body = try await self.body(request, error: { .bodyRead($0) })
                return try await LockRoutes(api: self.api.lock).unlock(store: store, body: body)
            case .converse(let name, let alpha2):
                let body = try await self.body(request, error: { .bodyRead($0) })
                return try await ConversationRoutes(api: self.api.conversation).converse(name: name, alpha2: alpha2, body: body)
            case .crypto(let name, let operation):
                return await CryptoRoutes(api: self.api.crypto, maxBodySize: self.configuration.maxBodySize).handle(name: name, operation: operation, request: request)
            case .actor(let route):
                let body = try await self.body(request, error: { .badRequest("failed to read body: " + $0) })
                var headers = HeaderList()
                for field in request.headers { headers.add(field.name.rawName, field.value) }
                return await ActorRoutes(api: self.api.actors).respond(
                    route, verb: request.head.method.rawValue, headers: headers, contentType: request.headers[.contentType], body: body, hops: 0)
            case .invoke, .fallback:
                return .error(.directInvokeNoAppID)
            }
        } catch let error as APIError {
            return .error(error)
        } catch {
            return .error(.internalError("\(error)"))
        }
    }

    /// `?key=a&key=b&metadata.k=v`: the keys in order, metadata by first value (as daprd).
    static func configurationQuery(_ query: Substring) -> (keys: [String], metadata: [String: String]) {
        let parameters = PercentDecoding.queryParameters(query)
        let keys = parameters.filter { $0.0 == "key" }.map(\.1)
        return (keys, PercentDecoding.metadata(from: query))
    }

    /// Reads the whole request body within the configured limit.
    func body(_ request: Request, error: (String) -> APIError) async throws(APIError) -> [UInt8] {
        let limit = self.configuration.maxBodySize
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw error("stream too large")
        }
        do {
            var collected: [UInt8] = []
            for try await chunk in request.body {
                guard collected.count + chunk.readableBytes <= limit else { throw BodyTooLarge(limit: limit) }
                collected.append(contentsOf: chunk.readableBytesView)
            }
            return collected
        } catch let tooLarge as BodyTooLarge {
            throw error(tooLarge.description)
        } catch let read {
            throw error("\(read)")
        }
    }

    /// Readiness first, then `?appid=` (present and different, even empty → mismatch), as daprd.
    func healthz(query: Substring) -> HTTPReply {
        let parameters = PercentDecoding.queryParameters(query)
        if parameters.contains(where: { $0.0 == "detail" }) {
            let report = HealthReport(api: self.api)
            return .json(report.document, status: report.ready ? 200 : 500)
        }
        let notReady = self.api.readiness.notReadyTargets
        guard notReady.isEmpty else { return .error(.healthNotReady(notReady)) }
        if let appID = PercentDecoding.queryParameters(query).first(where: { $0.0 == "appid" })?.1, appID != self.api.identity.appID {
            return .error(.healthAppIDNotMatch)
        }
        return .noContent()
    }

    /// Layotto's actuator: liveness is UP while the process answers; readiness (and the bare
    /// `/actuator/health`) is UP when `/v1.0/healthz` would answer 204, with the detail report.
    func actuator(probe: String) -> HTTPReply {
        if probe == "liveness" { return .json(.object([("status", "UP")])) }
        let report = HealthReport(api: self.api)
        return .json(.object([("status", .string(report.ready ? "UP" : "DOWN")), ("detail", report.document)]), status: report.ready ? 200 : 503)
    }

    func shutdown(_ request: Request) -> HTTPReply {
        if request.headers[HTTPField.Name("dapr-force-shutdown")!]?.lowercased() == "true" {
            self.logger.warning("forced shutdown requested through the API")
            ForcedExit.exit(code: 1, after: .milliseconds(100))
        } else {
            self.api.shutdown()
        }
        return .noContent()
    }

    // MARK: Invocation (streaming)

    func invoke(target: String, method: String, query: Substring, request: Request, writer: consuming ResponseWriter) async throws {
        // daprd looks at `dapr-app-id` (then basic auth) before the URL: either one names the target
        // even on a `/v1.0/invoke/...` path, whose whole path is then the method.
        var target = target
        var method = method
        if let headerTarget = Self.headerAppID(request) {
            target = headerTarget
            method = String(Self.split(request.head.path ?? "/").path)
        }
        let box = WriterBox(writer)
        let normalized: String
        switch InvocationMethod.normalize(method) {
        case .success(let value): normalized = value
        case .failure(let error):
            try await HTTPReply.error(.directInvoke(appID: target, error.description)).write(to: box.take()!)
            return
        }
        var headers = HeaderList()
        for field in request.headers {
            let name = field.name.canonicalName
            if HopByHop.isHopByHop(name) || name == "host" || name == "content-length" || name == "content-type" || name == "dapr-app-id" { continue }
            // Sidecar-internal headers are never accepted from callers.
            if name.hasPrefix("x-mecha-") { continue }
            headers.add(field.name.rawName, field.value)
        }
        let length = request.headers[.contentLength].flatMap(Int.init)
        let limit = self.configuration.maxBodySize
        if let length, length > limit {
            try await HTTPReply.error(.directInvoke(appID: target, "stream too large")).write(to: box.take()!)
            return
        }
        let body = try await Self.invocationBody(request, length: length, limit: limit)
        let invocation = InvocationRequest(
            method: normalized,
            httpVerb: Self.verb(request.head.method.rawValue),
            queryString: String(query),
            headers: headers,
            contentType: request.headers[.contentType],
            body: body
        )
        do {
            try await self.api.invoke.invoke(target: target, request: invocation) { response in
                try await Self.stream(response, to: box)
            }
        } catch let error as APIError {
            if let writer = box.take() { try await HTTPReply.error(error).write(to: writer, marksErrorCode: self.inbound.observersWantErrorCodes) } else { throw error }
        } catch let error as BodyTooLarge {
            if let writer = box.take() { try await HTTPReply.error(.directInvoke(appID: target, error.description)).write(to: writer, marksErrorCode: self.inbound.observersWantErrorCodes) } else { throw error }
        } catch {
            if let writer = box.take() {
                try await HTTPReply.error(.directInvoke(appID: target, "\(error)")).write(to: writer, marksErrorCode: self.inbound.observersWantErrorCodes)
            } else {
                throw error
            }
        }
    }

    /// Bodies of at most this many bytes with a known length are read before the call goes on.
    static let bufferedBodyLimit = 64 << 10

    /// An invocation's request body. A small body of known length is read at once: it then leaves
    /// in the same write as the request head (one syscall instead of three) and can be sent again
    /// to another instance on failover. Larger or chunked bodies stream, bounded by `limit`.
    static func invocationBody(_ request: Request, length: Int?, limit: Int) async throws -> BodyStream {
        if length == 0 || (length == nil && request.headers[.transferEncoding] == nil) { return .empty }
        if let length, length <= Self.bufferedBodyLimit {
            return BodyStream(buffer: try await request.body.collect(upTo: length))
        }
        return BodyStream(LimitedBody(base: request.body, limit: limit), length: length)
    }

    /// Writes an app's (or remote sidecar's) response back to the caller, streaming the body.
    /// When the first chunk is the whole body (known length), head, body and end leave in one write.
    /// `keepingInternalHeaders` is for the sidecar-to-sidecar listener, whose caller is another
    /// sidecar that needs the `x-mecha-` headers.
    static func stream(_ response: InvocationResponse, to box: WriterBox, keepingInternalHeaders: Bool = false) async throws {
        var fields = HTTPFields()
        for field in response.headers {
            let lowered = field.name.lowercased()
            if HopByHop.isHopByHop(lowered) || lowered == "content-length" || lowered == "content-type" || lowered == "date" || lowered == "server" { continue }
            // Sidecar-internal headers (e.g. the gRPC app's `Any` type URL) never reach HTTP callers.
            if !keepingInternalHeaders, lowered.hasPrefix("x-mecha-") { continue }
            fields.add(field.name, field.value)
        }
        if let contentType = response.contentType {
            fields[.contentType] = contentType
        } else if response.status < 200 || response.status > 399 {
            // daprd labels an app's error answer without a content type as JSON.
            fields[.contentType] = "application/json"
        }
        if let length = response.body.length { fields[.contentLength] = String(length) }
        let head = HTTPResponse(status: .init(code: response.status), headerFields: fields)
        var chunks = response.body.makeAsyncIterator()
        let first = response.body.length == 0 ? nil : try await chunks.next()
        guard let writer = box.take() else { return }
        guard let first else {
            try await writer.writeResponse(head)
            return
        }
        if let length = response.body.length, first.readableBytes == length {
            try await writer.write(response: head, body: ResponseBody(byteBuffer: first))
            return
        }
        var bodyWriter = try await writer.writeHead(head)
        try await bodyWriter.write(first)
        while let chunk = try await chunks.next() {
            try await bodyWriter.write(chunk)
        }
        try await bodyWriter.finish(nil)
    }

    static let knownVerbs: Set<String> = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]

    static func verb(_ method: String) -> String {
        let upper = method.uppercased()
        return self.knownVerbs.contains(upper) ? upper : "POST"
    }
}

/// Holds the response writer until someone writes the head (the streaming path or the error path).
final class WriterBox: @unchecked Sendable {
    private var writer: ResponseWriter?
    private let lock = Mutex(())

    init(_ writer: consuming ResponseWriter) {
        self.writer = consume writer
    }

    func take() -> ResponseWriter? {
        self.lock.withLock { _ in
            self.writer.take()
        }
    }
}

/// A request body that fails once more than `limit` bytes arrive.
struct LimitedBody<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == ByteBuffer {
    typealias Element = ByteBuffer
    let base: Base
    let limit: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        let limit: Int
        var seen = 0

        mutating func next() async throws -> ByteBuffer? {
            guard let chunk = try await self.base.next() else { return nil }
            self.seen += chunk.readableBytes
            if self.seen > self.limit { throw BodyTooLarge(limit: self.limit) }
            return chunk
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: self.base.makeAsyncIterator(), limit: self.limit) }
}

extension Substring {
    var trimmingSlashes: Substring {
        var result = self
        while result.hasPrefix("/") { result = result.dropFirst() }
        while result.hasSuffix("/") { result = result.dropLast() }
        return result
    }
}

/// Exits the process after a short delay (forced shutdown).
enum ForcedExit {
    static func exit(code: Int32, after delay: Duration) {
        let nanos = UInt32(min(delay.components.seconds * 1_000_000 + delay.components.attoseconds / 1_000_000_000_000, 10_000_000))
        Thread.detach {
            usleep(nanos)
            _exit(code)
        }
    }

    enum Thread {
        static func detach(_ body: @escaping @Sendable () -> Void) {
            final class Box: @unchecked Sendable {
                let body: @Sendable () -> Void
                init(_ body: @escaping @Sendable () -> Void) { self.body = body }
            }
            var thread = pthread_t()
            let box = Unmanaged.passRetained(Box(body)).toOpaque()
            pthread_create(&thread, nil, { raw in
                let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
                box.body()
                return nil
            }, box)
            pthread_detach(thread)
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

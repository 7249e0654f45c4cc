import HTTPTypes
public import HummingbirdCore
public import Logging
public import MechaAPI
public import MechaCore
public import MechaIdentity
import MechaResiliency
public import MechaTelemetry
import NIOCore
import NIOPosix
public import ServiceLifecycle

/// The sidecar-to-sidecar listener (`--dapr-internal-grpc-port`): receives invocations forwarded by
/// other sidecars and hands them to the local app. With mTLS (`tls`), only peers presenting an SVID
/// of the trust domain get past the handshake, and their identity comes from the certificate;
/// without, only callers presenting the home's peer token (`PeerToken`) are served, and their
/// caller identity headers are trusted.
public struct InternalInvokeServer: Sendable {
    let api: DaprAPI
    let peers: PeerAuthentication
    let tls: MeshTLS?
    let host: String
    let port: Int
    let maxBodySize: Int
    let logger: Logger

    public static let targetHeader = "x-mecha-target-app"
    public static let sidecarErrorHeader = "x-mecha-sidecar-error"

    let fastInvoke: Bool
    let timeouts: ConnectionTimeouts
    /// Told about every invocation answered here (the callee's service invocation metrics).
    let observe: (@Sendable (InboundExchange) -> Void)?
    /// The SERVER span of every invocation received (`spec.tracing`).
    let tracer: SidecarTracer?

    public init(
        api: DaprAPI,
        peerToken: PeerToken,
        tls: MeshTLS? = nil,
        host: String,
        port: Int,
        maxBodySize: Int,
        fastInvoke: Bool = true,
        timeouts: ConnectionTimeouts = .standard,
        observe: (@Sendable (InboundExchange) -> Void)? = nil,
        tracer: SidecarTracer? = nil,
        logger: Logger
    ) {
        self.observe = observe
        self.tracer = tracer
        self.timeouts = timeouts
        self.api = api
        self.tls = tls
        self.peers = tls == nil ? .token(peerToken) : .certificate
        self.fastInvoke = fastInvoke
        self.host = host
        self.port = port
        self.maxBodySize = maxBodySize
        self.logger = logger
    }

    public func makeService(onListening: @escaping @Sendable (Int) -> Void = { _ in }) throws -> any Service {
        var router: InternalFastInvokeRouter?
        if self.fastInvoke, let app = (self.api.invoke.localAppChannel as? HTTPAppChannel)?.directTarget {
            router = InternalFastInvokeRouter(
                appID: self.api.identity.appID,
                app: app,
                peers: self.peers,
                invoke: self.api.invoke,
                bodyLimit: min(DaprHTTPServer.bufferedBodyLimit, self.maxBodySize),
                appCalls: self.api.invoke.outbound.observer
            )
        }
        return try MechaHTTP1Channel.builder(
            router: router, timeouts: self.timeouts, observe: self.observe, callerHeader: "dapr-caller-app-id",
            tracing: self.tracer.map { ExchangeTracing(tracer: $0, side: .callee(appID: self.api.identity.appID)) }, tls: self.tls
        ).buildServer(
            configuration: ServerConfiguration(address: .hostname(self.host, port: self.port), backlog: 1024),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: self.logger,
            responder: { request, writer, _ in
                try await self.respond(to: request, writer: writer)
            },
            onServerRunning: { channel in
                onListening(channel.localAddress?.port ?? self.port)
            }
        )
    }

    func respond(to request: Request, writer: consuming ResponseWriter) async throws {
        guard self.peers.accepts(request.headers[HTTPField.Name(PeerToken.header)!]) else {
            try await HTTPReply.error(.peerUnauthenticated).write(to: writer)
            return
        }
        let target = request.headers[HTTPField.Name(Self.targetHeader)!] ?? ""
        guard target == self.api.identity.appID else {
            var headers = HTTPFields()
            headers.add(Self.sidecarErrorHeader, "misdirected")
            let error = APIError.directInvoke(appID: target, "this sidecar serves \(self.api.identity.appID)")
            try await HTTPReply.error(APIError(errorCode: error.errorCode, message: error.message, httpStatus: 421, grpcStatus: .unavailable), headers: headers).write(to: writer)
            return
        }
        let (path, query) = DaprHTTPServer.split(request.head.path ?? "/")
        // An actor call forwarded by the sidecar that placement sent it to.
        if path.hasPrefix("/v1.0/actors/"), let route = ActorRoute.match(method: request.head.method.rawValue, path: String(path)) {
            let body: [UInt8]
            do {
                body = Array(try await DaprHTTPServer.invocationBody(request, length: request.headers[.contentLength].flatMap(Int.init), limit: self.maxBodySize)
                    .collect(upTo: self.maxBodySize).readableBytesView)
            } catch {
                try await HTTPReply.error(.badRequest("failed to read body: \(error)")).write(to: writer)
                return
            }
            var headers = HeaderList()
            for field in request.headers { headers.add(field.name.rawName, field.value) }
            let hops = request.headers[HTTPField.Name(ActorsAPI.hopsHeader)!].flatMap(Int.init) ?? 1
            let reply = await ActorRoutes(api: self.api.actors).respond(
                route, verb: request.head.method.rawValue, headers: headers, contentType: request.headers[.contentType], body: body, hops: hops)
            try await reply.write(to: writer)
            return
        }
        // Headers are only read when the app has access control.
        if self.api.invoke.accessControl != nil,
            let denied = self.api.invoke.authorize(
            callerAppID: request.headers[HTTPField.Name("dapr-caller-app-id")!], callerNamespace: request.headers[HTTPField.Name("dapr-caller-namespace")!],
            method: String(path.dropFirst()), verb: request.head.method.rawValue)
        {
            var headers = HTTPFields()
            headers.add(Self.sidecarErrorHeader, "denied")
            try await HTTPReply.error(denied, headers: headers).write(to: writer)
            return
        }
        var headers = HeaderList()
        for field in request.headers {
            let name = field.name.canonicalName
            if HopByHop.isHopByHop(name) || name == "host" || name == "content-length" || name == "content-type" || name.hasPrefix("x-mecha-") { continue }
            headers.add(field.name.rawName, field.value)
        }
        let length = request.headers[.contentLength].flatMap(Int.init)
        let body = try await DaprHTTPServer.invocationBody(request, length: length, limit: self.maxBodySize)
        let invocation = InvocationRequest(
            method: String(path.trimmingSlashes.isEmpty ? "" : path.dropFirst()),
            httpVerb: request.head.method.rawValue,
            queryString: String(query),
            headers: headers,
            contentType: request.headers[.contentType],
            body: body
        )
        let box = WriterBox(writer)
        do {
            try await self.api.invoke.invokeLocal(invocation, target: target) { response in
                try await DaprHTTPServer.stream(response, to: box, keepingInternalHeaders: true)
            }
        } catch let error as APIError {
            if let writer = box.take() { try await HTTPReply.error(error).write(to: writer) } else { throw error }
        } catch {
            if let writer = box.take() {
                try await HTTPReply.error(.directInvoke(appID: target, "\(error)")).write(to: writer)
            } else {
                throw error
            }
        }
    }
}

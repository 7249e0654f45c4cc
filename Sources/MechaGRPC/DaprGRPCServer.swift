public import GRPCCore
import GRPCNIOTransportCore
import GRPCNIOTransportHTTP2
public import Logging
public import MechaAPI
public import MechaCore
import MechaIdentity
public import MechaTelemetry
import NIOCore
public import ServiceLifecycle

/// The Dapr gRPC API (`--dapr-grpc-port`): `dapr.proto.runtime.v1.Dapr` over HTTP/2 (h2c), one
/// server per listen address. Graceful shutdown stops accepting calls and lets running ones end.
public struct DaprGRPCServer: Sendable {
    public struct Configuration: Sendable {
        public var addresses: [String]
        public var port: Int
        public var maxMessageSize: Int
        public var timeouts: ConnectionTimeouts
        /// The sidecar's inbound chain (allow/deny lists, token), shared with the HTTP server.
        public var inbound: InboundChain
        /// A span per call (`spec.tracing`); nil: not traced.
        public var tracer: SidecarTracer?
        /// Whether apps may host actors over `SubscribeActorEventsAlpha1` (daprd: only with a gRPC
        /// app channel, or none).
        public var actorStreamAllowed = true

        public init(
            addresses: [String] = ["127.0.0.1"],
            port: Int = 50001,
            maxMessageSize: Int = 4 << 20,
            timeouts: ConnectionTimeouts = .standard,
            inbound: InboundChain = InboundChain(),
            tracer: SidecarTracer? = nil
        ) {
            self.tracer = tracer
            self.inbound = inbound
            self.addresses = addresses
            self.port = port
            self.maxMessageSize = maxMessageSize
            self.timeouts = timeouts
        }
    }

    let service: DaprService
    let configuration: Configuration
    let inbound: InboundChain
    let proxy: GRPCProxyRouter?
    let logger: Logger

    /// `proxy` forwards calls for other services that carry `dapr-app-id` (gRPC proxying).
    public init(api: DaprAPI, subscriptions: SubscriptionManager, configuration: Configuration, proxy: GRPCProxyRouter?, logger: Logger) {
        var service = DaprService(api: api, subscriptions: subscriptions, maxBodySize: configuration.maxMessageSize, logger: logger)
        service.actorStreamAllowed = configuration.actorStreamAllowed
        self.service = service
        self.configuration = configuration
        self.inbound = configuration.inbound
        self.proxy = proxy
        self.logger = logger
    }

    /// One service per listen address; `onListening` receives each bound port.
    public func makeServices(onListening: @escaping @Sendable (Int) -> Void = { _ in }) -> [any Service] {
        var route: (@Sendable (MethodDescriptor, Metadata, ServerContext) async -> ProxyingServerTransport.Route)?
        let chain = self.inbound
        if self.proxy != nil || !chain.isEmpty(for: .grpc) {
            let proxy = self.proxy
            route = { @Sendable descriptor, metadata, _ in
                // Calls for other services (proxied, or served by nobody) pass the chain here, as
                // daprd's interceptors run before its unknown-service handler: without the token a
                // caller learns nothing, not even that a method is unimplemented.
                if descriptor.service.fullyQualifiedService != GRPCProxyRouter.daprService,
                    let rejection = chain.check(InboundOperation(grpcMethod: descriptor.inboundMethod, apiToken: metadata.apiToken))
                {
                    return .refuse(rejection.rpcError)
                }
                return await proxy?.routePublic(descriptor, metadata) ?? .serve
            }
        }
        let tracer = self.configuration.tracer
        let interceptors: [any ServerInterceptor] =
            chain.isEmpty(for: .grpc) && chain.observers.isEmpty && tracer == nil ? [] : [InboundInterceptor(chain: chain, tracer: tracer)]
        return self.configuration.addresses.map { host in
            GRPCListener(
                host: host,
                port: self.configuration.port,
                maxMessageSize: self.configuration.maxMessageSize,
                timeouts: self.configuration.timeouts,
                services: [self.service],
                interceptors: interceptors,
                route: route,
                logger: self.logger,
                onListening: onListening
            )
        }
    }

    /// The sidecar-to-sidecar gRPC listener: every call is a proxied call for the local app.
    public static func internalListener(
        host: String,
        port: Int,
        maxMessageSize: Int,
        timeouts: ConnectionTimeouts = .standard,
        proxy: GRPCProxyRouter,
        logger: Logger,
        onListening: @escaping @Sendable (Int) -> Void
    ) -> any Service {
        GRPCListener(
            host: host,
            port: port,
            maxMessageSize: maxMessageSize,
            timeouts: timeouts,
            services: [],
            interceptors: [],
            route: { descriptor, metadata, context in await proxy.routeInternal(descriptor, metadata, context) },
            logger: logger,
            tls: proxy.tls,
            onListening: onListening
        )
    }
}

/// One gRPC server on one address, as a service.
struct GRPCListener: Service {
    let host: String
    let port: Int
    let maxMessageSize: Int
    let timeouts: ConnectionTimeouts
    let services: [any RegistrableRPCService]
    let interceptors: [any ServerInterceptor]
    let route: (@Sendable (MethodDescriptor, Metadata, ServerContext) async -> ProxyingServerTransport.Route)?
    let logger: Logger
    /// Mutual TLS with this identity (the sidecar-to-sidecar listener); nil: plaintext.
    var tls: MeshTLS? = nil
    let onListening: @Sendable (Int) -> Void

    func run() async throws {
        var config = HTTP2ServerTransport.Posix.Config.defaults
        config.rpc.maxRequestPayloadSize = self.maxMessageSize
        // Advertised in SETTINGS, so clients queue calls beyond it (grpcio does). Without it the
        // HTTP/2 layer still enforced its default of 100, and the 101st stream cost the client its
        // whole connection (GOAWAY PROTOCOL_ERROR).
        config.http2.maxConcurrentStreams = Self.maxConcurrentStreams
        // A connection without calls is closed gracefully; a silent one is pinged, and one that
        // answers nothing at all (not even the preface) is closed by `ReadSilenceHandler`.
        config.connection.maxIdleTime = self.timeouts.idle
        config.connection.maxGraceTime = .seconds(10)
        config.connection.keepalive = .init(
            time: self.timeouts.read,
            timeout: .seconds(20),
            clientBehavior: .init(minPingIntervalWithoutCalls: .seconds(10), allowWithoutCalls: true)
        )
        let silence = self.timeouts.read * 3
        let limit = self.maxMessageSize
        let tls = self.tls
        config.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ReadSilenceHandler(timeout: silence), position: .first)
                // TLS goes in front of everything (the transport itself is configured plaintext).
                try tls?.addServerHandlers(to: channel)
            }
        }
        config.channelDebuggingCallbacks.onAcceptHTTP2Stream = { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(MessageSizeLimitHandler(limit: limit), position: .first)
            }
        }
        let posix = HTTP2ServerTransport.Posix(
            address: self.host.contains(":") ? .ipv6(host: self.host, port: self.port) : .ipv4(host: self.host, port: self.port),
            transportSecurity: .plaintext,
            config: config
        )
        let transport = ProxyingServerTransport(
            inner: posix, logger: self.logger, maxMessageSize: self.maxMessageSize, route: self.route ?? { _, _, _ in .serve })
        let server = GRPCServer(transport: transport, services: self.services, interceptors: self.interceptors)
        try await withGracefulShutdownHandler {
            // The bound port is reported on the side: `listeningAddress` never resolves when the
            // server stops before it listened, so nothing waits for it.
            let host = self.host, logger = self.logger, onListening = self.onListening, configured = self.port
            let reporter = Task {
                guard let address = try? await transport.listeningAddress else { return }
                let port = address.ipv4?.port ?? address.ipv6?.port ?? configured
                logger.info("gRPC server listening on \(host):\(port)")
                onListening(port)
            }
            defer { reporter.cancel() }
            do {
                try await server.serve()
            } catch let failure as RuntimeError {
                // Typically the port is taken: the server's cause says so (bind: Address already in use …).
                throw GRPCListenerError(message: "gRPC server on \(self.host):\(self.port) failed: \(failure.cause.map { "\($0)" } ?? "\(failure)")")
            }
        } onGracefulShutdown: {
            server.beginGracefulShutdown()
        }
    }
}

extension GRPCListener {
    /// Concurrent calls per connection (daprd's grpc-go sets no limit; this one is high enough
    /// never to matter to a well-behaved client and bounds what one connection can hold).
    static let maxConcurrentStreams = 10_000
}

/// Closes a connection from which nothing at all has arrived for `timeout`: the keepalive pings
/// make a live peer answer well within it, so only a dead or silent one (a client that never
/// sends the HTTP/2 preface) is cut off.
final class ReadSilenceHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let timeout: TimeAmount
    private var lastRead = NIODeadline.now()
    private var readSinceCheck = false
    private var scheduled: Scheduled<Void>?

    init(timeout: Duration) {
        self.timeout = .nanoseconds(timeout.clampedNanoseconds)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.lastRead = .now()
        self.schedule(context, at: self.lastRead + self.timeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.scheduled?.cancel()
        self.scheduled = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.readSinceCheck = true
        context.fireChannelRead(data)
    }

    private func schedule(_ context: ChannelHandlerContext, at deadline: NIODeadline) {
        self.scheduled = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: deadline) { [self] in
            let now = NIODeadline.now()
            if self.readSinceCheck {
                self.readSinceCheck = false
                self.lastRead = now
            }
            if now - self.lastRead >= self.timeout {
                context.close(promise: nil)
            } else {
                self.schedule(context, at: self.lastRead + self.timeout)
            }
        }
    }
}

/// A gRPC listener that could not start.
struct GRPCListenerError: Error, CustomStringConvertible {
    let message: String
    var description: String { self.message }
}

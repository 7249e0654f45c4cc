public import GRPCCore
import GRPCNIOTransportCore
import GRPCNIOTransportHTTP2
public import Logging
public import MechaAPI
public import ServiceLifecycle

/// The Dapr gRPC API (`--dapr-grpc-port`): `dapr.proto.runtime.v1.Dapr` over HTTP/2 (h2c), one
/// server per listen address. Graceful shutdown stops accepting calls and lets running ones end.
public struct DaprGRPCServer: Sendable {
    public struct Configuration: Sendable {
        public var addresses: [String]
        public var port: Int
        public var maxMessageSize: Int
        public var apiToken: String?

        public init(addresses: [String] = ["127.0.0.1"], port: Int = 50001, maxMessageSize: Int = 4 << 20, apiToken: String? = nil) {
            self.addresses = addresses
            self.port = port
            self.maxMessageSize = maxMessageSize
            self.apiToken = apiToken
        }
    }

    let service: DaprService
    let configuration: Configuration
    let proxy: GRPCProxyRouter?
    let logger: Logger

    /// `proxy` forwards calls for other services that carry `dapr-app-id` (gRPC proxying).
    public init(api: DaprAPI, subscriptions: SubscriptionManager, configuration: Configuration, proxy: GRPCProxyRouter?, logger: Logger) {
        self.service = DaprService(api: api, subscriptions: subscriptions, maxBodySize: configuration.maxMessageSize, logger: logger)
        self.configuration = configuration
        self.proxy = proxy
        self.logger = logger
    }

    /// One service per listen address; `onListening` receives each bound port.
    public func makeServices(onListening: @escaping @Sendable (Int) -> Void = { _ in }) -> [any Service] {
        var route: (@Sendable (MethodDescriptor, Metadata) async -> ProxyingServerTransport.Route)?
        if let proxy = self.proxy {
            route = { @Sendable descriptor, metadata in await proxy.routePublic(descriptor, metadata) }
        }
        return self.configuration.addresses.map { host in
            GRPCListener(
                host: host,
                port: self.configuration.port,
                maxMessageSize: self.configuration.maxMessageSize,
                services: [self.service],
                interceptors: self.configuration.apiToken.map { [APITokenInterceptor(token: $0)] } ?? [],
                route: route,
                logger: self.logger,
                onListening: onListening
            )
        }
    }

    /// The sidecar-to-sidecar gRPC listener: every call is a proxied call for the local app.
    public static func internalListener(host: String, port: Int, maxMessageSize: Int, proxy: GRPCProxyRouter, logger: Logger, onListening: @escaping @Sendable (Int) -> Void) -> any Service {
        GRPCListener(
            host: host,
            port: port,
            maxMessageSize: maxMessageSize,
            services: [],
            interceptors: [],
            route: { descriptor, metadata in await proxy.routeInternal(descriptor, metadata) },
            logger: logger,
            onListening: onListening
        )
    }
}

/// One gRPC server on one address, as a service.
struct GRPCListener: Service {
    let host: String
    let port: Int
    let maxMessageSize: Int
    let services: [any RegistrableRPCService]
    let interceptors: [any ServerInterceptor]
    let route: (@Sendable (MethodDescriptor, Metadata) async -> ProxyingServerTransport.Route)?
    let logger: Logger
    let onListening: @Sendable (Int) -> Void

    func run() async throws {
        var config = HTTP2ServerTransport.Posix.Config.defaults
        config.rpc.maxRequestPayloadSize = self.maxMessageSize
        let posix = HTTP2ServerTransport.Posix(
            address: self.host.contains(":") ? .ipv6(host: self.host, port: self.port) : .ipv4(host: self.host, port: self.port),
            transportSecurity: .plaintext,
            config: config
        )
        let transport = ProxyingServerTransport(inner: posix, logger: self.logger, route: self.route ?? { _, _ in .serve })
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

/// A gRPC listener that could not start.
struct GRPCListenerError: Error, CustomStringConvertible {
    let message: String
    var description: String { self.message }
}

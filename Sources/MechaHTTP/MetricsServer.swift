import HTTPTypes
public import HummingbirdCore
public import Logging
import MechaCore
public import MechaTelemetry
import NIOCore
import NIOPosix
public import ServiceLifecycle

/// The metrics endpoint (`--metrics-port`, daprd's 9090): `GET /metrics` answers the registry's
/// exposition in Prometheus's text format. A port that cannot be bound is logged and skipped: the
/// sidecar serves its API without metrics rather than not at all (several sidecars on one machine
/// all default to 9090).
public struct MetricsServer: Sendable {
    let registry: MetricsRegistry
    let host: String
    let port: Int
    let logger: Logger

    public init(registry: MetricsRegistry, host: String, port: Int, logger: Logger) {
        self.registry = registry
        self.host = host
        self.port = port
        self.logger = logger
    }

    public func makeService(onListening: @escaping @Sendable (Int) -> Void = { _ in }) throws -> any Service {
        let server = try MechaHTTP1Channel.builder(router: nil, timeouts: .standard).buildServer(
            configuration: ServerConfiguration(address: .hostname(self.host, port: self.port), backlog: 64),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: self.logger,
            responder: { request, writer, _ in
                try await self.respond(to: request, writer: writer)
            },
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? self.port
                self.logger.info("metrics server listening on \(self.host) port \(port)")
                onListening(port)
            }
        )
        return Tolerant(server: server, logger: self.logger, port: self.port)
    }

    func respond(to request: Request, writer: consuming ResponseWriter) async throws {
        let path = request.head.path.map { $0.split(separator: "?", maxSplits: 1).first.map(String.init) ?? $0 } ?? "/"
        guard path == "/metrics" || path == "/" else {
            try await HTTPReply.text("404 page not found\n", status: 404).write(to: writer)
            return
        }
        guard request.head.method == .get || request.head.method == .head else {
            try await HTTPReply.text("method not allowed\n", status: 405).write(to: writer)
            return
        }
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        let bytes = self.registry.scrape()
        try await HTTPReply(status: 200, headers: headers, body: ByteBuffer(bytes: bytes)).write(to: writer)
    }

    /// Runs the server; a failure to listen is a warning, not the sidecar's end.
    struct Tolerant: Service {
        let server: any Service
        let logger: Logger
        let port: Int

        func run() async throws {
            do {
                try await self.server.run()
            } catch {
                self.logger.warning("metrics server could not start on port \(self.port): \(error); serving without metrics")
            }
        }
    }
}

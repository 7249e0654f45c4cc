import HTTPTypes
public import HummingbirdCore
public import Logging
public import MechaCore
public import MechaTelemetry
import NIOCore
import NIOPosix
public import ServiceLifecycle

/// The metrics endpoint (`--metrics-port`, daprd's 9090): `GET /metrics` answers the registry's
/// exposition in Prometheus's text format. A port already taken is replaced by a free one (logged,
/// and registered in name resolution for `mecha dashboard`): several sidecars on one machine all
/// default to 9090, and the API must not fail for want of a metrics port.
public struct MetricsServer: Sendable {
    let registry: MetricsRegistry
    let host: String
    let port: Int
    let logger: Logger
    /// `GET /debug/traces`: the tracer's recent failed or slow spans (nil: 404).
    let traces: (@Sendable () -> JSONValue)?

    public init(registry: MetricsRegistry, host: String, port: Int, logger: Logger, traces: (@Sendable () -> JSONValue)? = nil) {
        self.traces = traces
        self.registry = registry
        self.host = host
        self.port = port
        self.logger = logger
    }

    public func makeService(onListening: @escaping @Sendable (Int) -> Void = { _ in }) throws -> any Service {
        Tolerant(server: self, onListening: onListening)
    }

    func server(port: Int, onListening: @escaping @Sendable (Int) -> Void) throws -> any Service {
        try MechaHTTP1Channel.builder(router: nil, timeouts: .standard).buildServer(
            configuration: ServerConfiguration(address: .hostname(self.host, port: port), backlog: 64),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: self.logger,
            responder: { request, writer, _ in
                try await self.respond(to: request, writer: writer)
            },
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? port
                self.logger.info("metrics server listening on \(self.host) port \(bound)")
                onListening(bound)
            }
        )
    }

    func respond(to request: Request, writer: consuming ResponseWriter) async throws {
        let path = request.head.path.map { $0.split(separator: "?", maxSplits: 1).first.map(String.init) ?? $0 } ?? "/"
        if path == "/debug/traces" {
            try await HTTPReply.json(self.traces?() ?? .array([])).write(to: writer)
            return
        }
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

    /// Runs the server. A port already taken (several sidecars started at once all prefer 9090)
    /// falls back to any free port, announced in the log and in name resolution; a failure to
    /// listen at all is a warning, never the sidecar's end.
    struct Tolerant: Service {
        let server: MetricsServer
        let onListening: @Sendable (Int) -> Void

        func run() async throws {
            do {
                try await self.server.server(port: self.server.port, onListening: self.onListening).run()
            } catch {
                guard self.server.port != 0, !Task.isCancelled else {
                    self.server.logger.warning("metrics server could not start: \(error); serving without metrics")
                    return
                }
                self.server.logger.warning("metrics port \(self.server.port) is not available (\(error)); using a free port instead")
                do {
                    try await self.server.server(port: 0, onListening: self.onListening).run()
                } catch {
                    self.server.logger.warning("metrics server could not start: \(error); serving without metrics")
                }
            }
        }
    }
}

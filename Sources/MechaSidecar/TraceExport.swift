import HTTP1Client
import Logging
import MechaCore
import MechaGRPC
import MechaTelemetry
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Synchronization

/// The export side of `spec.tracing`: a background service that drains the tracer's queue in
/// batches to every configured sink — Zipkin v2 JSON, OTLP over HTTP (protobuf) or gRPC, and the
/// log (`stdout`). Nothing here runs on a request's path: a collector that is down, slow or
/// answers garbage only fails exports (counted in `mecha_tracing_*` metrics), and when the queue
/// is full new spans are dropped (counted) rather than waited for.
struct TraceExportService: Service {
    let loop: SpanExportLoop
    let grpc: OTLPGRPCExporter?
    let client: HTTP1Client

    /// The service for `spec`, or nil when no sink is configured (spans are then only propagated).
    static func make(spec: TracingSpec, tracer: SidecarTracer, metrics: DaprMetrics?, logger: Logger) throws -> TraceExportService? {
        let client = HTTP1Client()
        var sinks: [@Sendable ([SpanRecord]) async throws -> Void] = []
        if let endpoint = spec.zipkinEndpoint {
            let target = try Self.target(endpoint, defaultPath: "/api/v2/spans")
            sinks.append { spans in
                try await Self.post(client, target, body: ZipkinEncoder.encode(spans), contentType: "application/json", headers: [], timeout: .seconds(10))
            }
        }
        var grpc: OTLPGRPCExporter?
        if let otel = spec.otel {
            switch otel.transport {
            case .http:
                let address = otel.endpointAddress.lowercased().hasPrefix("http") ? otel.endpointAddress : "\(otel.isSecure ? "https" : "http")://\(otel.endpointAddress)"
                let target = try Self.target(address, defaultPath: "/v1/traces")
                sinks.append { spans in
                    try await Self.post(client, target, body: OTLPEncoder.encode(spans), contentType: "application/x-protobuf", headers: otel.headers, timeout: otel.timeout)
                }
            case .grpc:
                let exporter = try OTLPGRPCExporter(address: otel.endpointAddress, secure: otel.isSecure, headers: otel.headers, timeout: otel.timeout)
                grpc = exporter
                sinks.append { spans in try await exporter.export(OTLPEncoder.encode(spans)) }
            }
        }
        if spec.stdout {
            var spanLogger = Logger(label: "dapr.runtime.trace")
            spanLogger.logLevel = .info
            let log = spanLogger
            sinks.append { spans in
                for span in spans {
                    log.info(
                        "span \(span.name)",
                        metadata: [
                            "trace_id": .string(span.traceID.hex), "span_id": .string(span.spanID.hex),
                            "parent_id": .string(span.parentSpanID?.hex ?? ""),
                            "duration_us": .string(String(span.durationNanos / 1000)),
                        ])
                }
            }
        }
        guard !sinks.isEmpty else { return nil }
        let all = sinks
        let loop = SpanExportLoop(queue: tracer.queue) { spans in
            // Every sink gets the batch; one failing does not keep it from the others.
            var failure: (any Error)?
            for sink in all {
                do { try await sink(spans) } catch { failure = error }
            }
            if let failure { throw failure }
        }
        metrics?.tracingFigures(dropped: { tracer.queue.dropped }, exported: { loop.exportedSpans }, failedExports: { loop.failedExports })
        return TraceExportService(loop: loop, grpc: grpc, client: client)
    }

    func run() async throws {
        let stopping = Atomic<Bool>(false)
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.client.run() }
                if let grpc = self.grpc { group.addTask { await grpc.run() } }
                // The final flush happens after the stop signal, while the clients still run.
                await self.loop.run(until: { stopping.load(ordering: .relaxed) })
                self.grpc?.shutdown()
                self.client.shutdown()
                await group.waitForAll()
            }
        } onGracefulShutdown: {
            stopping.store(true, ordering: .relaxed)
        }
    }

    struct Target: Sendable {
        var target: HTTP1Target
        var path: String
    }

    /// An http(s) URL as a client target and path (`defaultPath` when the URL has none).
    static func target(_ url: String, defaultPath: String) throws -> Target {
        let lowered = url.lowercased()
        let tls = lowered.hasPrefix("https://")
        guard tls || lowered.hasPrefix("http://") else { throw SidecarError("'\(url)' is not an http(s) URL") }
        let rest = url.dropFirst(tls ? 8 : 7)
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        var path = String(rest.dropFirst(authority.count))
        if path.isEmpty || path == "/" { path = defaultPath }
        var host = Substring(authority)
        var port = tls ? 443 : 80
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            guard let parsed = Int(authority[authority.index(after: colon)...]) else { throw SidecarError("'\(url)' has a bad port") }
            port = parsed
            host = authority[..<colon]
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        return Target(target: HTTP1Target(host: String(host), port: port, tls: tls), path: path)
    }

    struct ExportRefused: Error, CustomStringConvertible {
        var status: Int
        var description: String { "the collector answered \(self.status)" }
    }

    static func post(
        _ client: HTTP1Client, _ target: Target, body: [UInt8], contentType: String, headers: [(name: String, value: String)], timeout: Duration
    ) async throws {
        var fields = HTTPHeaders()
        fields.add(name: "content-type", value: contentType)
        fields.add(name: "content-length", value: String(body.count))
        fields.add(name: "host", value: target.target.host)
        for (name, value) in headers { fields.add(name: name, value: value) }
        let request = HTTP1Request(target: target.target, method: .POST, uri: target.path, headers: fields, body: .bytes(ByteBuffer(bytes: body)))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                let status = try await client.execute(request) { response in
                    _ = try await response.collect(upTo: 1 << 20)
                    return Int(response.status.code)
                }
                guard (200..<300).contains(status) else { throw ExportRefused(status: status) }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw ExportRefused(status: 0)
            }
            try await group.next()
            group.cancelAll()
        }
    }
}

import ArgumentParser
import HTTP1Client
import HTTPTypes
import HummingbirdCore
import Logging
import MechaComponents
import MechaCore
import MechaRuntime
import MechaSidecar
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization
import UnixSignals

/// `mecha dashboard`: a live service graph of the sidecars name resolution knows, and a page per
/// sidecar. No agent: every round it lists the instances from name resolution and reads each
/// sidecar's metrics endpoint, `/v1.0/healthz?detail`, `/v1.0/metadata` and recent problem spans.
struct DashboardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dashboard", abstract: "Serve a live service graph of the sidecars on this machine.")

    @Option(name: .customLong("port"), help: "Port of the dashboard.") var port: Int = 8080
    @Option(name: .customLong("address"), help: "Address of the dashboard.") var address: String = "127.0.0.1"
    @Option(name: .customLong("mecha-home"), help: "The Mecha home whose name resolution lists the sidecars (default ~/.mecha or $MECHA_HOME).")
    var mechaHome: String?
    @Option(name: .customLong("interval"), help: "Seconds between rounds of reading the sidecars.") var interval: Double = 2

    func run() async throws {
        var logger = Logger(label: "mecha.dashboard")
        logger.logLevel = .info
        let home = RunRegistry.home(self.mechaHome, environment: ProcessEnvironment.current)
        let context = ComponentContext(appID: "mecha-dashboard", dataDirectory: home, instanceID: RandomID.uuid(), logger: logger)
        let loader = ComponentLoader(registry: BuiltInComponents.registry, context: context, environment: ProcessEnvironment.current)
        let (component, _) = try await loader.build(EmbeddedDefaults.nameResolver(nil, mechaHome: home), secrets: ComponentStore())
        guard let resolver = component as? any NameResolver else { throw ValidationError("no name resolver in \(home)") }
        let client = HTTP1Client(configuration: .init(maxConnectionsPerHost: 8, idleTimeout: .seconds(30), connectTimeout: .seconds(1)))
        let collector = DashboardCollector(resolver: resolver, client: client, interval: .milliseconds(Int64(max(0.2, self.interval) * 1000)))
        let server = try HTTPServerBuilder.http1().buildServer(
            configuration: ServerConfiguration(address: .hostname(self.address, port: self.port)),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: logger,
            responder: { request, writer, _ in try await collector.respond(to: request, writer: writer) },
            onServerRunning: { channel in
                print("mecha dashboard on http://\(self.address):\(channel.localAddress?.port ?? self.port)/ (sidecars from \(home))")
            }
        )
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: server), .init(service: collector)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            ))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await client.run() }
            try await group.run()
            client.shutdown()
            try await tasks.waitForAll()
        }
    }
}

/// Reads the sidecars every `interval` and serves the pages and their JSON.
final class DashboardCollector: Service, Sendable {
    private struct State {
        var previous: [String: SidecarObservation] = [:]
        var latest: [SidecarObservation] = []
        var graph: JSONValue = .object([("generated", .string("")), ("nodes", .array([])), ("edges", .array([]))])
    }

    let resolver: any NameResolver
    let client: HTTP1Client
    let interval: Duration
    private let state = Mutex(State())
    private let started = ContinuousClock.now

    init(resolver: any NameResolver, client: HTTP1Client, interval: Duration) {
        self.resolver = resolver
        self.client = client
        self.interval = interval
    }

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await self.round()
            try? await Task.sleep(for: self.interval)
        }
    }

    /// One round: every instance read concurrently, then the graph rebuilt.
    func round() async {
        let instances = ((try? await self.resolver.allInstances()) ?? nil) ?? []
        let observations = await withTaskGroup(of: SidecarObservation.self) { group in
            for instance in instances { group.addTask { await self.observe(instance) } }
            var all: [SidecarObservation] = []
            for await observation in group { all.append(observation) }
            return all.sorted { $0.instance.instanceID < $1.instance.instanceID }
        }
        let now = Timestamp.now().rfc3339
        self.state.withLock { state in
            state.graph = ServiceGraph.build(previous: state.previous, current: observations, now: now)
            state.previous = Dictionary(observations.map { ($0.instance.instanceID, $0) }, uniquingKeysWith: { $1 })
            state.latest = observations
        }
    }

    func observe(_ instance: AppInstance) async -> SidecarObservation {
        let time = (ContinuousClock.now - self.started).seconds
        var observation = SidecarObservation(instance: instance, time: time)
        async let metrics = instance.metricsPort > 0 ? self.get(instance.host, instance.metricsPort, "/metrics") : nil
        async let health = self.get(instance.host, instance.httpPort, "/v1.0/healthz?detail")
        async let metadata = self.get(instance.host, instance.httpPort, "/v1.0/metadata")
        async let traces = instance.metricsPort > 0 ? self.get(instance.host, instance.metricsPort, "/debug/traces") : nil
        if let text = await metrics { observation.samples = PrometheusText.parse(text) }
        observation.health = await health.flatMap { try? JSONValue(parsing: $0) }
        observation.metadata = await metadata.flatMap { try? JSONValue(parsing: $0) }
        observation.traces = await traces.flatMap { try? JSONValue(parsing: $0) }
        return observation
    }

    /// A GET with a short deadline; nil on any failure (a sidecar that is gone, slow or garbled).
    func get(_ host: String, _ port: Int, _ path: String) async -> String? {
        var headers = HTTPHeaders()
        headers.add(name: "host", value: "\(host):\(port)")
        let request = HTTP1Request(target: HTTP1Target(host: host, port: port), method: .GET, uri: path, headers: headers)
        return try? await withThrowingTaskGroup(of: String?.self) { group in
            group.addTask {
                try await self.client.execute(request) { response in
                    let body = try await response.collect(upTo: 8 << 20)
                    guard (200..<300).contains(Int(response.status.code)) else { return nil }
                    return String(buffer: body)
                }
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(1500))
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    // MARK: Pages

    func respond(to request: Request, writer: consuming ResponseWriter) async throws {
        let target = request.head.path ?? "/"
        let path = target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? "/"
        let query = target.split(separator: "?", maxSplits: 1).dropFirst().first.map(String.init) ?? ""
        switch path {
        case "/", "/index.html":
            try await Self.write(writer, status: .ok, type: "text/html; charset=utf-8", body: DashboardPage.graph)
        case "/sidecar":
            try await Self.write(writer, status: .ok, type: "text/html; charset=utf-8", body: DashboardPage.sidecar)
        case "/api/graph":
            try await Self.write(writer, status: .ok, type: "application/json", body: self.state.withLock { $0.graph }.jsonString)
        case "/api/sidecar":
            let app = PercentDecoding.queryParameters(query[...]).first { $0.0 == "app" }?.1 ?? ""
            try await Self.write(writer, status: .ok, type: "application/json", body: self.sidecar(app).jsonString)
        default:
            try await Self.write(writer, status: .notFound, type: "text/plain", body: "404 page not found\n")
        }
    }

    /// The sidecar page's JSON for `app`: its instances and what the first reachable one reports.
    func sidecar(_ app: String) -> JSONValue {
        let observations = self.state.withLock { $0.latest }.filter { $0.instance.appID == app }
        let instances: [JSONValue] = observations.map { observation in
            .object([
                ("instanceID", .string(observation.instance.instanceID)), ("host", .string(observation.instance.host)),
                ("httpPort", .number(String(observation.instance.httpPort))), ("metricsPort", .number(String(observation.instance.metricsPort))),
                ("pid", .number(String(observation.instance.processID))), ("reachable", .bool(observation.health != nil)),
            ])
        }
        let first = observations.first { $0.health != nil } ?? observations.first
        let subscriptions = first?.metadata?["subscriptions"] ?? .array([])
        var traces: [JSONValue] = []
        for observation in observations { traces += observation.traces?.arrayValues ?? [] }
        return .object([
            ("appID", .string(app)), ("instances", .array(instances)), ("health", first?.health ?? .null),
            ("subscriptions", subscriptions), ("breakers", .array([])), ("traces", .array(traces)),
            ("error", observations.isEmpty ? .string("no sidecar of \(app) is registered in name resolution") : .null),
        ])
    }

    static func write(_ writer: consuming ResponseWriter, status: HTTPResponse.Status, type: String, body: String) async throws {
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = "no-store"
        let bytes = ByteBuffer(string: body)
        headers[.contentLength] = String(bytes.readableBytes)
        try await writer.write(response: HTTPResponse(status: status, headerFields: headers), body: .init(byteBuffer: bytes))
    }
}

extension Duration {
    fileprivate var seconds: Double {
        let (seconds, attoseconds) = self.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

import Hummingbird
import Logging
import MechaCore
import MechaSidecar
import MechaTesting
import NIOHTTP1
import Testing

/// Shared helpers for the publish, subscription-delivery and invocation route tests: a
/// `mecha-testapp` process per test, an in-process sidecar in front of it, and polling helpers for
/// what the app received.
enum RouteTest {
    /// Starts a `mecha-testapp` (answering `/dapr/subscribe` with `subscriptions`), runs `body`,
    /// and stops the app whatever happens.
    static func withApp<Output: Sendable>(
        subscriptions: String = "[]",
        _ body: (TestApp) async throws -> Output
    ) async throws -> Output {
        let directory = TestEnvironment.temporaryDirectory("mecha-app")
        defer { TestEnvironment.remove(directory) }
        let app = try await TestApp.start(directory: directory, subscriptions: subscriptions)
        do {
            let output = try await body(app)
            await app.stop()
            return output
        } catch {
            await app.stop()
            throw error
        }
    }

    /// A test app plus an in-process sidecar in front of it, with subscriptions started.
    static func withSubscriber<Output: Sendable>(
        appID: String = "testapp",
        subscriptions: String = "[]",
        resources: [String: String]? = nil,
        environment: [String: String] = [:],
        configure: (inout SidecarOptions) -> Void = { _ in },
        _ body: (InProcessSidecar, TestApp, TestHTTP) async throws -> Output
    ) async throws -> Output {
        try await self.withApp(subscriptions: subscriptions) { app in
            try await InProcessSidecar.with(
                appID: appID,
                appPort: app.port,
                resources: resources,
                environment: environment,
                configure: configure
            ) { sidecar in
                let healthy = await sidecar.sidecar.waitUntilHealthy(timeout: .seconds(15))
                try #require(healthy, "sidecar did not become ready (subscriptions not started)")
                return try await TestHTTP.with { http in try await body(sidecar, app, http) }
            }
        }
    }

    /// A Hummingbird app inside the test process, for answers the test app cannot give.
    static func withInlineApp(_ routes: (Router<BasicRequestContext>) -> Void, _ body: (Int) async throws -> Void) async throws {
        let router = Router()
        routes(router)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "inline-app")
        logger.logLevel = .error
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) },
            logger: logger
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService(gracefulShutdownSignals: []) }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            do {
                try await body(port)
            } catch {
                group.cancelAll()
                throw error
            }
            group.cancelAll()
        }
    }

    /// `pubsub.sqlite` in the sidecar's home with fast redelivery.
    static func sqlitePubSub(name: String = "pubsub", metadata: [String: String] = [:]) -> String {
        var items = ["redeliveryDelay": "100ms", "maxRedeliveryDelay": "400ms"]
        for (key, value) in metadata { items[key] = value }
        return self.component(name: name, type: "pubsub.sqlite", metadata: items)
    }

    static func inMemoryPubSub(name: String = "pubsub", metadata: [String: String] = [:]) -> String {
        self.component(name: name, type: "pubsub.in-memory", metadata: metadata)
    }

    static func component(name: String, type: String, metadata: [String: String]) -> String {
        var yaml = """
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: \(name)
            spec:
              type: \(type)
              version: v1
              metadata:

            """
        if metadata.isEmpty {
            yaml = yaml.replacing("  metadata:\n", with: "  metadata: []\n")
        }
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            yaml += "  - name: \(key)\n    value: \"\(value)\"\n"
        }
        return yaml
    }

    /// Percent-encodes a query parameter value.
    static func encode(_ value: String) -> String {
        var output = ""
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                output.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                output += "%" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]], as: UTF8.self)
            }
        }
        return output
    }

    static let zeroTraceParent = "00-00000000000000000000000000000000-0000000000000000-00"
    static let sampleTraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    /// Lower-case hyphenated UUID v4.
    static func isUUIDv4(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 36 else { return false }
        for (index, byte) in bytes.enumerated() {
            if [8, 13, 18, 23].contains(index) {
                guard byte == UInt8(ascii: "-") else { return false }
            } else {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte) else { return false }
            }
        }
        return bytes[14] == UInt8(ascii: "4") && [UInt8(ascii: "8"), UInt8(ascii: "9"), UInt8(ascii: "a"), UInt8(ascii: "b")].contains(bytes[19])
    }

    /// RFC 3339 with seconds precision: `2020-09-23T06:23:21Z` or `…+02:00`.
    static func isRFC3339Seconds(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 20 || bytes.count == 25 else { return false }
        let digit: (UInt8) -> Bool = { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
        let shape = Array("dddd-dd-ddTdd:dd:dd".utf8)
        for (index, expected) in shape.enumerated() {
            if expected == UInt8(ascii: "d") {
                guard digit(bytes[index]) else { return false }
            } else if bytes[index] != expected {
                return false
            }
        }
        if bytes.count == 20 { return bytes[19] == UInt8(ascii: "Z") }
        return bytes[19] == UInt8(ascii: "+") || bytes[19] == UInt8(ascii: "-")
    }
}

/// A `mecha-testapp` process (see its doc comment for the control endpoints). Unlike
/// `TestAppHarness` it retries on another port when the chosen one was taken meanwhile, which
/// happens now and then with many tests running in parallel.
final class TestApp: Sendable {
    let port: Int
    let process: TestProcess

    private init(port: Int, process: TestProcess) {
        self.port = port
        self.process = process
    }

    static func start(directory: String, name: String = "app", subscriptions: String = "[]", port fixedPort: Int? = nil) async throws -> TestApp {
        var attempt = 0
        while true {
            attempt += 1
            let port = fixedPort ?? TestEnvironment.freePort()
            let process = try TestProcess(
                try MechaBinaries.testApp,
                [],
                environment: ["APP_PORT": String(port), "SUBSCRIPTIONS": subscriptions],
                logPath: directory + "/\(name)-\(attempt)-app.log"
            )
            let up = try await TestHTTP.with { http in
                let deadline = ContinuousClock.now + .seconds(20)
                while ContinuousClock.now < deadline && process.isRunning {
                    // Our own app, not another test's that got the same free port first.
                    if let response = try? await http.get(port: port, "/healthz"), response.status == 200 {
                        return response.header("x-testapp-pid") == String(process.pid)
                    }
                    try await Task.sleep(for: .milliseconds(25))
                }
                return false
            }
            if up { return TestApp(port: port, process: process) }
            await process.stop()
            if attempt >= 5 { throw HarnessError("mecha-testapp did not start on port \(port):\n\(process.output)") }
        }
    }

    func stop() async { await self.process.stop() }
}

extension TestHTTP {
    /// The bodies the app recorded for POSTs to `path`, oldest first.
    func received(_ app: TestApp, _ path: String) async throws -> [String] {
        let response = try await self.get(port: app.port, "/test/received?path=" + RouteTest.encode(path))
        return (try JSONValue(parsing: response.body).arrayValues ?? []).compactMap(\.stringValue)
    }

    /// The header maps (lower-case names) the app recorded for POSTs to `path`.
    func receivedHeaders(_ app: TestApp, _ path: String) async throws -> [JSONValue] {
        let response = try await self.get(port: app.port, "/test/headers?path=" + RouteTest.encode(path))
        return try JSONValue(parsing: response.body).arrayValues ?? []
    }

    /// Polls until the app has recorded at least `count` POSTs to `path`; records an issue and
    /// returns what arrived when `timeout` passes first.
    @discardableResult
    func waitForReceived(
        _ app: TestApp,
        _ path: String,
        count: Int = 1,
        timeout: Duration = .seconds(10),
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> [String] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let bodies = try await self.received(app, path)
            if bodies.count >= count { return bodies }
            if ContinuousClock.now >= deadline {
                Issue.record("expected \(count) deliveries to \(path) within \(timeout), got \(bodies.count)", sourceLocation: sourceLocation)
                return bodies
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Like `waitForReceived`, parsing each body as JSON.
    func waitForEvents(
        _ app: TestApp,
        _ path: String,
        count: Int = 1,
        timeout: Duration = .seconds(10),
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> [JSONValue] {
        try await self.waitForReceived(app, path, count: count, timeout: timeout, sourceLocation: sourceLocation).map { try JSONValue(parsing: $0) }
    }

    /// Makes the app answer POSTs to `path` with `status` and `body` from now on.
    func respond(_ app: TestApp, _ path: String, status: Int = 200, body: String = "") async throws {
        let response = try await self.request(
            .POST,
            port: app.port,
            "/test/respond?path=\(RouteTest.encode(path))&status=\(status)&body=\(RouteTest.encode(body))"
        )
        #expect(response.status == 204)
    }

    /// Publishes through the sidecar's HTTP API.
    func publish(
        _ sidecar: InProcessSidecar,
        pubsub: String = "pubsub",
        topic: String,
        body: String,
        contentType: String? = "application/json",
        query: String = "",
        headers: [(String, String)] = []
    ) async throws -> TestHTTPResponse {
        var all = headers
        if let contentType { all.append(("content-type", contentType)) }
        let path = "/v1.0/publish/\(pubsub)/\(topic)" + (query.isEmpty ? "" : "?" + query)
        return try await self.request(.POST, port: sidecar.httpPort, path, headers: all, body: Array(body.utf8))
    }
}

extension TestHTTPResponse {
    /// The body as JSON (`null` when it does not parse).
    var jsonBody: JSONValue { (try? JSONValue(parsing: self.body)) ?? .null }
}

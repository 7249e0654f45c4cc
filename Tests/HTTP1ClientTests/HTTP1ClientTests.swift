import HTTP1Client
import NIOCore
import NIOHTTP1
import Testing

/// Live tests against `TestHTTPServer` on 127.0.0.1.
@Suite("HTTP1Client")
struct HTTP1ClientTests {
    struct Deadline: Error, CustomStringConvertible {
        var description: String { "test did not finish in time (hang?)" }
    }

    /// Runs `body` with a running client, shuts it down afterwards and waits for `run()` to return.
    /// The whole thing must finish within `limit`.
    static func withClient<Output: Sendable>(
        _ configuration: HTTP1Client.Configuration = .init(),
        limit: Duration = .seconds(20),
        _ body: @escaping @Sendable (HTTP1Client) async throws -> Output
    ) async throws -> Output {
        let client = HTTP1Client(configuration: configuration)
        return try await Self.within(limit) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                do {
                    let output = try await body(client)
                    client.shutdown()
                    try await group.waitForAll()
                    return output
                } catch {
                    client.shutdown()
                    group.cancelAll()
                    throw error
                }
            }
        }
    }

    /// Fails with `Deadline` instead of hanging.
    static func within<Output: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> Output) async throws -> Output {
        try await withThrowingTaskGroup(of: Output?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let output = first else { throw Deadline() }
            return output
        }
    }

    struct Reply: Sendable {
        var status: HTTPResponseStatus
        var headers: HTTPHeaders
        var body: String
        var connection: Int { Int(self.headers.first(name: "x-connection-id") ?? "") ?? -1 }
    }

    static func request(
        _ server: TestHTTPServer,
        _ method: HTTPMethod = .GET,
        _ uri: String,
        headers: HTTPHeaders = [:],
        body: HTTP1RequestBody = .empty
    ) -> HTTP1Request {
        HTTP1Request(target: HTTP1Target(host: "127.0.0.1", port: server.port), method: method, uri: uri, headers: headers, body: body)
    }

    static func send(
        _ client: HTTP1Client,
        _ server: TestHTTPServer,
        _ method: HTTPMethod = .GET,
        _ uri: String,
        headers: HTTPHeaders = [:],
        body: HTTP1RequestBody = .empty
    ) async throws -> Reply {
        try await client.execute(Self.request(server, method, uri, headers: headers, body: body)) { response in
            let buffer = try await response.collect(upTo: 1 << 24)
            return Reply(status: response.status, headers: response.headers, body: String(buffer: buffer))
        }
    }

    /// A request body stream the test feeds by hand.
    static func bodyStream() -> (ByteStream, AsyncThrowingStream<ByteBuffer, any Error>.Continuation) {
        let (stream, continuation) = AsyncThrowingStream<ByteBuffer, any Error>.makeStream()
        return (ByteStream(stream), continuation)
    }

    // MARK: Basics

    @Test func getAndPostWithBodies() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient { client in
                let hello = try await Self.send(client, server, .GET, "/hello")
                #expect(hello.status == .ok)
                #expect(hello.body == "hello")
                #expect(hello.headers.first(name: "content-length") == "5")

                let payload = String(repeating: "payload-", count: 1_000)
                let echo = try await Self.send(client, server, .POST, "/echo", headers: ["content-type": "text/plain"], body: .bytes(ByteBuffer(string: payload)))
                #expect(echo.status == .ok)
                #expect(echo.body == payload)
                #expect(echo.headers.first(name: "x-request-content-length") == String(payload.utf8.count))
                #expect(echo.headers.first(name: "x-request-transfer-encoding") == "")
                #expect(echo.headers.first(name: "x-request-host") == "127.0.0.1:\(server.port)")

                let empty = try await Self.send(client, server, .PUT, "/echo")
                #expect(empty.body == "")
                #expect(empty.headers.first(name: "x-request-content-length") == "0")

                let missing = try await Self.send(client, server, .GET, "/nowhere")
                #expect(missing.status == .notFound)
                #expect(missing.body == "not found: /nowhere")
            }
        }
    }

    @Test func callerHeadersAreSentAndFramingHeadersReplaced() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient { client in
                let headers: HTTPHeaders = ["x-custom": "1", "content-length": "999", "transfer-encoding": "gzip", "host": "example.com"]
                let echo = try await Self.send(client, server, .POST, "/echo", headers: headers, body: .bytes(ByteBuffer(string: "abc")))
                #expect(echo.body == "abc")
                #expect(echo.headers.first(name: "x-request-content-length") == "3")
                #expect(echo.headers.first(name: "x-request-host") == "example.com")
                let logged = try #require(server.requests.last)
                #expect(logged.headers.first(name: "x-custom") == "1")
                #expect(!logged.headers.contains(name: "transfer-encoding"))
            }
        }
    }

    @Test func handlerOutputIsReturned() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient { client in
                let code = try await client.execute(Self.request(server, .GET, "/hello")) { response in
                    _ = try await response.collect(upTo: 100)
                    return response.status.code
                }
                #expect(code == 200)
            }
        }
    }

    @Test func responseLargerThanTheLimitIsRefused() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient { client in
                await #expect(throws: HTTP1ClientError.responseTooLarge(1_000)) {
                    try await client.execute(Self.request(server, .GET, "/big?size=5000")) { response in
                        try await response.collect(upTo: 1_000)
                    }
                }
                // The connection was abandoned mid-body; the next request is still answered correctly.
                let next = try await Self.send(client, server, .GET, "/hello")
                #expect(next.body == "hello")
            }
        }
    }

    // MARK: Keep-alive and concurrency

    @Test func sequentialRequestsReuseOneConnection() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient { client in
                for index in 0..<50 {
                    let reply = try await Self.send(client, server, .POST, "/echo", body: .bytes(ByteBuffer(string: "n=\(index)")))
                    #expect(reply.body == "n=\(index)")
                    #expect(reply.connection == 1)
                }
            }
            #expect(server.acceptedConnections == 1)
            #expect(server.requests.count == 50)
        }
    }

    @Test(arguments: [1, 4, 16])
    func concurrentRequestsAllSucceed(concurrency: Int) async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient { client in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for index in 0..<concurrency {
                        group.addTask {
                            let reply = try await Self.send(client, server, .POST, "/echo", body: .bytes(ByteBuffer(string: "request \(index)")))
                            #expect(reply.body == "request \(index)")
                        }
                    }
                    try await group.waitForAll()
                }
            }
            #expect(server.acceptedConnections <= concurrency)
            #expect(server.acceptedConnections >= 1)
            #expect(server.requests.count == concurrency)
        }
    }

    @Test func perHostLimitQueuesRequests() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient(.init(maxConnectionsPerHost: 2)) { client in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for index in 0..<40 {
                        group.addTask {
                            let reply = try await Self.send(client, server, .GET, "/stream?chunks=2")
                            #expect(reply.body == "chunk-0;chunk-1;", "request \(index)")
                        }
                    }
                    try await group.waitForAll()
                }
            }
            #expect(server.acceptedConnections <= 2)
            #expect(server.requests.count == 40)
        }
    }

    @Test func requestsMadeBeforeRunStartsAreServed() async throws {
        try await TestHTTPServer.with { server in
            let client = HTTP1Client()
            try await Self.within(.seconds(20)) {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        let reply = try await Self.send(client, server, .GET, "/hello")
                        #expect(reply.body == "hello")
                    }
                    try await Task.sleep(for: .milliseconds(50))
                    group.addTask { await client.run() }
                    _ = try await group.next()  // the request
                    client.shutdown()
                    try await group.waitForAll()
                }
            }
        }
    }

    // MARK: Streaming

    @Test func streamingRequestBodyOfUnknownLengthIsChunked() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient { client in
                let (stream, feed) = Self.bodyStream()
                let writer = Task {
                    for index in 0..<10 {
                        feed.yield(ByteBuffer(string: String(repeating: Character("\(index)"), count: 100)))
                        try await Task.sleep(for: .milliseconds(2))
                    }
                    feed.finish()
                }
                let reply = try await Self.send(client, server, .POST, "/echo", body: .stream(stream, length: nil))
                try await writer.value
                #expect(reply.status == .ok)
                #expect(reply.body == (0..<10).map { String(repeating: Character("\($0)"), count: 100) }.joined())
                #expect(reply.headers.first(name: "x-request-transfer-encoding") == "chunked")
                #expect(reply.headers.first(name: "x-request-content-length") == "")
                // The connection is reusable after a streamed request.
                #expect(try await Self.send(client, server, .GET, "/hello").connection == reply.connection)
            }
        }
    }

    @Test func streamingRequestBodyWithKnownLength() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient { client in
                let (stream, feed) = Self.bodyStream()
                feed.yield(ByteBuffer(string: "hello "))
                feed.yield(ByteBuffer(string: "world"))
                feed.finish()
                let reply = try await Self.send(client, server, .POST, "/echo", body: .stream(stream, length: 11))
                #expect(reply.body == "hello world")
                #expect(reply.headers.first(name: "x-request-content-length") == "11")
                #expect(reply.headers.first(name: "x-request-transfer-encoding") == "")
            }
        }
    }

    @Test func failingRequestBodyStreamFailsTheRequest() async throws {
        struct SourceBroke: Error, Equatable {}
        try await TestHTTPServer.with { server in
            try await Self.withClient { client in
                let (stream, feed) = Self.bodyStream()
                feed.yield(ByteBuffer(string: "partial"))
                let failer = Task {
                    try await Task.sleep(for: .milliseconds(20))
                    feed.finish(throwing: SourceBroke())
                }
                await #expect(throws: SourceBroke()) {
                    try await Self.send(client, server, .POST, "/echo", body: .stream(stream, length: nil))
                }
                try await failer.value
                // The half-sent connection is not reused.
                let next = try await Self.send(client, server, .GET, "/hello")
                #expect(next.body == "hello")
                #expect(server.acceptedConnections == 2)
            }
        }
    }

    @Test func streamingResponseIsReadIncrementally() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient { client in
                let text = try await client.execute(Self.request(server, .GET, "/gated")) { response in
                    var iterator = response.body.makeAsyncIterator()
                    let first = try #require(try await iterator.next())
                    // The server is still holding back the rest: the first chunk arrived on its own.
                    #expect(String(buffer: first) == "first")
                    server.openGate()
                    var rest = ""
                    while let chunk = try await iterator.next() { rest += String(buffer: chunk) }
                    #expect(try await iterator.next() == nil)
                    return String(buffer: first) + rest
                }
                #expect(text == "firstsecond")
                #expect(try await Self.send(client, server, .GET, "/hello").connection == 1)
            }
        }
    }

    @Test func chunkedResponseIsReassembled() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient { client in
                let reply = try await Self.send(client, server, .GET, "/stream?chunks=20")
                #expect(reply.body == (0..<20).map { "chunk-\($0);" }.joined())
            }
        }
    }

    @Test func fullDuplexEcho() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient { client in
                let (stream, feed) = Self.bodyStream()
                let echoed = try await client.execute(Self.request(server, .POST, "/duplex", body: .stream(stream, length: nil))) { response in
                    var iterator = response.body.makeAsyncIterator()
                    var received: [String] = []
                    for index in 0..<5 {
                        feed.yield(ByteBuffer(string: "part\(index)"))
                        // Each part comes back before the next one is sent.
                        var part = ""
                        while part.count < "part\(index)".count {
                            part += String(buffer: try #require(try await iterator.next()))
                        }
                        received.append(part)
                    }
                    feed.finish()
                    #expect(try await iterator.next() == nil)
                    return received
                }
                #expect(echoed == (0..<5).map { "part\($0)" })
            }
        }
    }

    // MARK: Unread bodies

    @Test func smallUnreadBodyIsDrainedAndTheConnectionReused() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient { client in
                let status = try await client.execute(Self.request(server, .GET, "/big?size=1000")) { $0.status }
                #expect(status == .ok)
                let next = try await Self.send(client, server, .GET, "/hello")
                #expect(next.body == "hello")
                #expect(next.connection == 1)
            }
            #expect(server.acceptedConnections == 1)
        }
    }

    @Test func largeUnreadBodyIsNotLeftOnAReusedConnection() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient { client in
                let status = try await client.execute(Self.request(server, .GET, "/big?size=1000000")) { $0.status }
                #expect(status == .ok)
                let next = try await Self.send(client, server, .POST, "/echo", body: .bytes(ByteBuffer(string: "after")))
                #expect(next.status == .ok)
                #expect(next.body == "after")
                #expect(next.connection == 2)
            }
            #expect(server.acceptedConnections == 2)
        }
    }

    @Test func partlyReadBodyLeavesNoLeftovers() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient { client in
                _ = try await client.execute(Self.request(server, .GET, "/stream?chunks=30")) { response in
                    var iterator = response.body.makeAsyncIterator()
                    return try await iterator.next()
                }
                for _ in 0..<3 {
                    #expect(try await Self.send(client, server, .GET, "/hello").body == "hello")
                }
            }
        }
    }

    @Test func handlerErrorDiscardsTheConnection() async throws {
        struct HandlerGaveUp: Error, Equatable {}
        try await TestHTTPServer.with { server in
            try await Self.withClient { client in
                await #expect(throws: HandlerGaveUp()) {
                    try await client.execute(Self.request(server, .GET, "/big?size=10")) { _ in throw HandlerGaveUp() }
                }
                let next = try await Self.send(client, server, .GET, "/hello")
                #expect(next.body == "hello")
                #expect(next.connection == 2)
            }
        }
    }

    // MARK: Connections that close

    @Test func serverClosingAnIdleConnection() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient { client in
                let first = try await Self.send(client, server, .GET, "/close-after")
                #expect(first.body == "ok")
                #expect(first.headers.first(name: "connection") == nil)
                try await Task.sleep(for: .milliseconds(100))
                let second = try await Self.send(client, server, .POST, "/echo", body: .bytes(ByteBuffer(string: "again")))
                #expect(second.body == "again")
                #expect(second.connection == 2)
            }
        }
    }

    @Test func replayableRequestIsRetriedWhenAReusedConnectionDies() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient { client in
                #expect(try await Self.send(client, server, .GET, "/hello").connection == 1)
                // The server hangs up on the reused connection instead of answering (as when its idle
                // timeout races the request): the client transparently retries on a new connection.
                let reply = try await Self.send(
                    client, server, .POST, "/echo",
                    headers: ["x-drop-if-reused": "1"],
                    body: .bytes(ByteBuffer(string: "retried"))
                )
                #expect(reply.body == "retried")
                #expect(reply.connection == 2)
                #expect(server.requests.filter { $0.uri == "/echo" }.map(\.connection) == [1, 2])
            }
        }
    }

    @Test func streamedRequestIsNotRetried() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient { client in
                let first = try await Self.send(client, server, .GET, "/hello")
                #expect(first.connection == 1)
                let (stream, feed) = Self.bodyStream()
                feed.yield(ByteBuffer(string: "once"))
                feed.finish()
                await #expect(throws: HTTP1ClientError.connectionClosed) {
                    try await Self.send(client, server, .POST, "/echo", headers: ["x-drop-if-reused": "1"], body: .stream(stream, length: 4))
                }
                #expect(server.requests.filter { $0.uri == "/echo" }.count == 1)
            }
        }
    }

    @Test func connectionCloseResponse() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient { client in
                let bye = try await Self.send(client, server, .GET, "/close")
                #expect(bye.body == "bye")
                #expect(bye.headers.first(name: "connection") == "close")
                let next = try await Self.send(client, server, .GET, "/hello")
                #expect(next.body == "hello")
                #expect(next.connection == 2)
            }
            #expect(server.acceptedConnections == 2)
        }
    }

    @Test func connectionCloseResponsesWithCallersQueuedAtTheLimit() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient(.init(maxConnectionsPerHost: 1)) { client in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<20 {
                        group.addTask {
                            let reply = try await Self.send(client, server, .GET, "/close")
                            #expect(reply.body == "bye")
                        }
                    }
                    try await group.waitForAll()
                }
            }
            #expect(server.acceptedConnections == 20)
        }
    }

    // MARK: Responses without bodies

    @Test func headResponseHasNoBody() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient { client in
                let head = try await Self.send(client, server, .HEAD, "/hello")
                #expect(head.status == .ok)
                #expect(head.headers.first(name: "content-length") == "5")
                #expect(head.body == "")
                // The connection stays in sync: the next response is not mistaken for a body.
                let next = try await Self.send(client, server, .GET, "/hello")
                #expect(next.body == "hello")
                #expect(next.connection == head.connection)
            }
            #expect(server.acceptedConnections == 1)
        }
    }

    @Test func noContentResponse() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient { client in
                let reply = try await Self.send(client, server, .DELETE, "/nocontent")
                #expect(reply.status == .noContent)
                #expect(reply.body == "")
                #expect(try await Self.send(client, server, .GET, "/hello").connection == reply.connection)
            }
        }
    }

    // MARK: Failures and lifecycle

    @Test func connectFailureToAClosedPortIsQuick() async throws {
        let port = try await TestHTTPServer.closedPort()
        // A refused connection fails at once, not after the connect timeout (generous, so a loaded
        // machine — the full parallel run — cannot make the refusal look like the timeout).
        try await Self.withClient(.init(connectTimeout: .seconds(15))) { client in
            let started = ContinuousClock.now
            await #expect(throws: (any Error).self) {
                try await client.execute(HTTP1Request(target: HTTP1Target(host: "127.0.0.1", port: port), method: .GET, uri: "/")) { _ in 0 }
            }
            #expect(ContinuousClock.now - started < .seconds(10))
        }
    }

    @Test func connectFailuresWithCallersQueuedAtTheLimit() async throws {
        let port = try await TestHTTPServer.closedPort()
        try await Self.withClient(.init(maxConnectionsPerHost: 1)) { client in
            let failures = Locked(0)
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<5 {
                    group.addTask {
                        do {
                            _ = try await client.execute(HTTP1Request(target: HTTP1Target(host: "127.0.0.1", port: port), method: .GET, uri: "/")) { _ in 0 }
                        } catch {
                            failures.withLock { $0 += 1 }
                        }
                    }
                }
            }
            #expect(failures.withLock { $0 } == 5)
        }
    }

    @Test func subSecondConnectTimeoutStillConnects() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient(.init(connectTimeout: .milliseconds(500))) { client in
                let reply = try await Self.send(client, server, .GET, "/hello")
                #expect(reply.body == "hello")
            }
        }
    }

    @Test func shutdownClosesIdleConnectionsAndRefusesNewRequests() async throws {
        try await TestHTTPServer.with { server in
            let client = HTTP1Client()
            try await Self.within(.seconds(20)) {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { await client.run() }
                    #expect(try await Self.send(client, server, .GET, "/hello").body == "hello")
                    client.shutdown()
                    await #expect(throws: HTTP1ClientError.shutDown) {
                        try await Self.send(client, server, .GET, "/hello")
                    }
                    // run() returns once the idle connection is closed.
                    try await group.waitForAll()
                }
            }
            try await Self.within(.seconds(5)) {
                while server.closedConnections < 1 { try await Task.sleep(for: .milliseconds(5)) }
            }
            #expect(server.closedConnections == 1)
            // After run() has returned, requests still fail cleanly.
            await #expect(throws: HTTP1ClientError.shutDown) {
                try await Self.send(client, server, .GET, "/hello")
            }
        }
    }

    @Test func shutdownLetsInFlightExchangesFinish() async throws {
        try await TestHTTPServer.with { server in
            let client = HTTP1Client()
            try await Self.within(.seconds(20)) {
                try await withThrowingTaskGroup(of: String.self) { group in
                    group.addTask {
                        await client.run()
                        return "run returned"
                    }
                    let started = Locked(false)
                    group.addTask {
                        try await client.execute(Self.request(server, .GET, "/gated")) { response in
                            started.withLock { $0 = true }
                            return String(buffer: try await response.collect(upTo: 1_000))
                        }
                    }
                    while !started.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(2)) }
                    client.shutdown()
                    try await Task.sleep(for: .milliseconds(20))
                    server.openGate()
                    var results: [String] = []
                    for try await result in group { results.append(result) }
                    #expect(results.sorted() == ["firstsecond", "run returned"])
                }
            }
        }
    }

    @Test func shutdownFailsQueuedCallers() async throws {
        try await TestHTTPServer.with { server in
            let client = HTTP1Client(configuration: .init(maxConnectionsPerHost: 1))
            try await Self.within(.seconds(20)) {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { await client.run() }
                    let started = Locked(false)
                    group.addTask {
                        _ = try await client.execute(Self.request(server, .GET, "/gated")) { response in
                            started.withLock { $0 = true }
                            return try await response.collect(upTo: 1_000)
                        }
                    }
                    while !started.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(2)) }
                    let queued = Task { try await Self.send(client, server, .GET, "/hello") }
                    try await Task.sleep(for: .milliseconds(30))
                    client.shutdown()
                    await #expect(throws: HTTP1ClientError.shutDown) { try await queued.value }
                    server.openGate()
                    try await group.waitForAll()
                }
            }
        }
    }

    @Test func cancellingAQueuedCallerDoesNotDisturbOthers() async throws {
        try await TestHTTPServer.with { server in
            try await Self.withClient(.init(maxConnectionsPerHost: 1)) { client in
                let started = Locked(false)
                let holder = Task {
                    try await client.execute(Self.request(server, .GET, "/gated")) { response in
                        started.withLock { $0 = true }
                        return String(buffer: try await response.collect(upTo: 1_000))
                    }
                }
                while !started.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(2)) }
                let cancelled = Task { try await Self.send(client, server, .GET, "/hello") }
                let patient = Task { try await Self.send(client, server, .GET, "/hello") }
                try await Task.sleep(for: .milliseconds(30))
                cancelled.cancel()
                await #expect(throws: CancellationError.self) { try await cancelled.value }
                server.openGate()
                #expect(try await holder.value == "firstsecond")
                #expect(try await patient.value.body == "hello")
                #expect(server.requests.filter { $0.uri == "/hello" }.count == 1)
            }
        }
    }

    @Test func cancellingRunClosesEverything() async throws {
        try await TestHTTPServer.with { server in
            let client = HTTP1Client()
            let runner = Task { await client.run() }
            #expect(try await Self.send(client, server, .GET, "/hello").body == "hello")
            runner.cancel()
            try await Self.within(.seconds(10)) { await runner.value }
            try await Self.within(.seconds(5)) {
                while server.closedConnections < 1 { try await Task.sleep(for: .milliseconds(5)) }
            }
            await #expect(throws: HTTP1ClientError.shutDown) { try await Self.send(client, server, .GET, "/hello") }
        }
    }
}

import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Sockets held open (bound, not listening) so their ports stay refused.
let reservedSockets = Mutex<[Int32]>([])

/// A small HTTP/1.1 server on 127.0.0.1 for the live client tests. It counts accepted connections and
/// logs every request with the connection it arrived on.
///
/// Routes: `/hello`, `/echo`, `/count`, `/stream?chunks=N`, `/gated`, `/big?size=N`, `/close`,
/// `/close-after`, `/nocontent`, `/duplex`. Header `x-drop-if-reused: 1` makes the server hang up
/// without answering when the connection has already served a request.
final class TestHTTPServer: Sendable {
    struct LoggedRequest: Sendable {
        var connection: Int
        var method: HTTPMethod
        var uri: String
        var headers: HTTPHeaders
        var bodyBytes: Int
        var bodyParts: Int
    }

    private struct State {
        var accepted = 0
        var closed = 0
        var requests: [LoggedRequest] = []
        var gateOpen = false
        var gateWaiters: [CheckedContinuation<Void, Never>] = []
    }

    let port: Int
    private let state = Locked(State())

    private init(port: Int) {
        self.port = port
    }

    var acceptedConnections: Int { self.state.withLock { $0.accepted } }
    var closedConnections: Int { self.state.withLock { $0.closed } }
    var requests: [LoggedRequest] { self.state.withLock { $0.requests } }

    /// Lets `/gated` send the rest of its body.
    func openGate() {
        let waiters = self.state.withLock { state in
            state.gateOpen = true
            defer { state.gateWaiters = [] }
            return state.gateWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    private func waitForGate() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let open = self.state.withLock { state in
                if state.gateOpen { return true }
                state.gateWaiters.append(continuation)
                return false
            }
            if open { continuation.resume() }
        }
    }

    /// Runs `body` with a listening server (speaking TLS with `tls`); the server stops afterwards.
    static func with<Output: Sendable>(tls: NIOSSLContext? = nil, _ body: (TestHTTPServer) async throws -> Output) async throws -> Output {
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                }
            }
        let server = TestHTTPServer(port: try #require(listener.channel.localAddress?.port))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await listener.executeThenClose { inbound in
                    await withDiscardingTaskGroup { connections in
                        do {
                            for try await connection in inbound {
                                let id = server.state.withLock { state in
                                    state.accepted += 1
                                    return state.accepted
                                }
                                connections.addTask { await server.serve(connection, id: id) }
                            }
                        } catch {}
                        connections.cancelAll()
                    }
                }
            }
            defer {
                server.openGate()
                group.cancelAll()
            }
            return try await body(server)
        }
    }

    /// A port on 127.0.0.1 where nothing listens (bound, then closed).
    /// A port that refuses connections for as long as the process runs: bound but never listening,
    /// so no other test can take it over (a closed-then-reused port would accept connections).
    static func closedPort() async throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        try #require(bound == 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        reservedSockets.withLock { $0.append(fd) }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, id: Int) async {
        defer { self.state.withLock { $0.closed += 1 } }
        try? await connection.executeThenClose { inbound, outbound in
            var parts = inbound.makeAsyncIterator()
            var served = 0
            while let part = try await parts.next() {
                guard case .head(let head) = part else { continue }
                let keepGoing = try await self.respond(to: head, parts: &parts, outbound: outbound, connection: id, served: served)
                served += 1
                if !keepGoing { return }
            }
        }
    }

    /// Reads the rest of the request, answers it; returns false when the connection must close.
    private func respond(
        to head: HTTPRequestHead,
        parts: inout NIOAsyncChannelInboundStream<HTTPServerRequestPart>.AsyncIterator,
        outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>,
        connection: Int,
        served: Int
    ) async throws -> Bool {
        let path = String(head.uri.split(separator: "?", maxSplits: 1).first ?? "")
        let query = Self.query(head.uri)
        var responseHeaders: HTTPHeaders = ["x-connection-id": String(connection)]

        if path == "/duplex" {
            // Echo each request body part as soon as it arrives (full duplex).
            responseHeaders.add(name: "transfer-encoding", value: "chunked")
            try await outbound.write(.head(HTTPResponseHead(version: head.version, status: .ok, headers: responseHeaders)))
            var bytes = 0
            var count = 0
            reading: while let part = try await parts.next() {
                switch part {
                case .body(let chunk):
                    bytes += chunk.readableBytes
                    count += 1
                    try await outbound.write(.body(.byteBuffer(chunk)))
                case .end: break reading
                case .head: throw HTTPParserError.invalidInternalState
                }
            }
            self.log(LoggedRequest(connection: connection, method: head.method, uri: head.uri, headers: head.headers, bodyBytes: bytes, bodyParts: count))
            try await outbound.write(.end(nil))
            return head.isKeepAlive
        }

        var body = ByteBuffer()
        var count = 0
        reading: while let part = try await parts.next() {
            switch part {
            case .body(var chunk):
                count += 1
                body.writeBuffer(&chunk)
            case .end: break reading
            case .head: throw HTTPParserError.invalidInternalState
            }
        }
        self.log(LoggedRequest(connection: connection, method: head.method, uri: head.uri, headers: head.headers, bodyBytes: body.readableBytes, bodyParts: count))

        if head.headers.first(name: "x-drop-if-reused") == "1" && served > 0 {
            return false  // hang up without an answer
        }

        func send(_ status: HTTPResponseStatus, _ text: String, extra: HTTPHeaders = [:]) async throws {
            var headers = responseHeaders
            headers.add(contentsOf: extra)
            let bytes = ByteBuffer(string: text)
            headers.add(name: "content-length", value: String(bytes.readableBytes))
            try await outbound.write(.head(HTTPResponseHead(version: head.version, status: status, headers: headers)))
            if head.method != .HEAD && bytes.readableBytes > 0 {
                try await outbound.write(.body(.byteBuffer(bytes)))
            }
            try await outbound.write(.end(nil))
        }

        switch path {
        case "/hello":
            try await send(.ok, "hello")
        case "/echo":
            var extra: HTTPHeaders = [:]
            extra.add(name: "x-request-transfer-encoding", value: head.headers.first(name: "transfer-encoding") ?? "")
            extra.add(name: "x-request-content-length", value: head.headers.first(name: "content-length") ?? "")
            extra.add(name: "x-request-method", value: head.method.rawValue)
            extra.add(name: "x-request-host", value: head.headers.first(name: "host") ?? "")
            try await send(.ok, String(buffer: body), extra: extra)
        case "/count":
            try await send(.ok, "\(body.readableBytes) bytes in \(count) parts")
        case "/stream":
            let chunks = Int(query["chunks"] ?? "3") ?? 3
            responseHeaders.add(name: "transfer-encoding", value: "chunked")
            try await outbound.write(.head(HTTPResponseHead(version: head.version, status: .ok, headers: responseHeaders)))
            for index in 0..<chunks {
                try await outbound.write(.body(.byteBuffer(ByteBuffer(string: "chunk-\(index);"))))
                try await Task.sleep(for: .milliseconds(2))
            }
            try await outbound.write(.end(nil))
        case "/gated":
            responseHeaders.add(name: "transfer-encoding", value: "chunked")
            try await outbound.write(.head(HTTPResponseHead(version: head.version, status: .ok, headers: responseHeaders)))
            try await outbound.write(.body(.byteBuffer(ByteBuffer(string: "first"))))
            await self.waitForGate()
            try await outbound.write(.body(.byteBuffer(ByteBuffer(string: "second"))))
            try await outbound.write(.end(nil))
        case "/big":
            let size = Int(query["size"] ?? "100000") ?? 100_000
            try await send(.ok, String(repeating: "x", count: size))
        case "/close":
            try await send(.ok, "bye", extra: ["connection": "close"])
            return false
        case "/close-after":
            // Keep-alive as far as the client can tell, then the server drops the idle connection.
            try await send(.ok, "ok")
            try await Task.sleep(for: .milliseconds(20))
            return false
        case "/nocontent":
            try await outbound.write(.head(HTTPResponseHead(version: head.version, status: .noContent, headers: responseHeaders)))
            try await outbound.write(.end(nil))
        default:
            try await send(.notFound, "not found: \(path)")
        }
        return head.isKeepAlive
    }

    private func log(_ request: LoggedRequest) {
        self.state.withLock { $0.requests.append(request) }
    }

    private static func query(_ uri: String) -> [String: String] {
        guard let mark = uri.firstIndex(of: "?") else { return [:] }
        var result: [String: String] = [:]
        for pair in uri[uri.index(after: mark)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            result[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        return result
    }
}

/// A lock-protected value that escaping closures can share.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) {
        self.mutex = Mutex(value)
    }

    func withLock<Result: Sendable>(_ body: (inout sending Value) throws -> sending Result) rethrows -> Result {
        try self.mutex.withLock(body)
    }
}

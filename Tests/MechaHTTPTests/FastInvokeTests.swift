#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import MechaAPI
import MechaCore
import MechaSidecar
@testable import MechaHTTP
import MechaTesting
import NIOHTTP1
import Synchronization
import Testing

/// The channel-handler fast path for plain invocations (`FastInvokeHandler`) must be invisible:
/// the app receives, and the caller gets back, exactly what the general path produces.
@Suite struct FastInvokeTests {
    struct Probe: Sendable {
        var method: HTTPMethod
        var path: String
        var headers: [(String, String)] = []
        var body: [UInt8]? = nil
    }

    /// Local (alpha → its app), header form, errors from the app, and remote (alpha → beta → app).
    static let probes: [Probe] = [
        Probe(
            method: .POST,
            path: "/v1.0/invoke/alpha/method/echo/local?x=1&y=two%20words",
            headers: [("Content-Type", "application/json"), ("X-Custom", "Yes"), ("dapr-caller-app-id", "spoofed"), ("x-mecha-target-app", "evil")],
            body: Array(#"{"n":42}"#.utf8)
        ),
        Probe(method: .GET, path: "/v1.0/invoke/alpha/method/echo/traced", headers: [("traceparent", RouteTest.sampleTraceParent), ("Accept", "*/*")]),
        Probe(method: .PUT, path: "/echo/header/form?q=1", headers: [("dapr-app-id", "alpha"), ("content-type", "text/plain")], body: Array("hello".utf8)),
        Probe(method: .DELETE, path: "/v1.0/invoke/alpha/method/echo/gone"),
        Probe(method: .PATCH, path: "/v1.0/invoke/alpha.default/method/echo/ns", body: []),
        Probe(method: .GET, path: "/v1.0/invoke/alpha/method/status/404"),
        Probe(method: .GET, path: "/v1.0/invoke/alpha/method/status/503"),
        Probe(method: .GET, path: "/v1.0/invoke/alpha/method/bytes/100000"),
        Probe(method: .GET, path: "/v1.0/invoke/alpha/method/echo/../escape"),
        Probe(method: .POST, path: "/v1.0/invoke/beta/method/echo/remote?z=9", headers: [("content-type", "application/json"), ("x-custom", "r")], body: Array("{}".utf8)),
        Probe(method: .GET, path: "/v1.0/invoke/beta/method/status/418"),
        Probe(method: .GET, path: "/echo/remote/header", headers: [("dapr-app-id", "beta")]),
        Probe(method: .GET, path: "/v1.0/invoke/nobody/method/echo/x"),
    ]

    /// What a caller can observe of one answer, with generated trace ids masked.
    struct Observation: Equatable, CustomStringConvertible {
        var status: Int
        var headers: [String]
        var body: String

        var description: String { "\(self.status) \(self.headers) \(self.body.prefix(600))" }
    }

    static func observe(_ mesh: RemoteInvocationTests.Mesh) async throws -> [Observation] {
        var observations: [Observation] = []
        for probe in Self.probes {
            // Twice: the first remote call may resolve the target through the general path.
            for _ in 0..<2 {
                let response = try await mesh.http.request(probe.method, port: mesh.alpha.httpPort, probe.path, headers: probe.headers, body: probe.body)
                var body = response.text
                if let echo = try? JSONValue(parsing: response.body), let members = echo["headers"]?.objectMembers {
                    let generated = probe.headers.allSatisfy { $0.0 != "traceparent" }
                    let masked = members.map { name, value in
                        name == "traceparent" && generated ? "\(name)=<generated>" : "\(name)=\(value.stringValue ?? "?")"
                    }
                    body = "\(echo["method"]?.stringValue ?? "") \(echo["path"]?.stringValue ?? "")?\(echo["query"]?.stringValue ?? "") \(masked) \(echo["body"]?.stringValue ?? "")"
                }
                if body.count > 1000 { body = "\(body.count) bytes" }
                let headers = response.headers.map { "\($0.name.lowercased()): \($0.value)" }
                observations.append(Observation(status: response.status, headers: headers, body: body))
            }
        }
        return observations
    }

    @Test func theFastPathAnswersExactlyAsTheGeneralPath() async throws {
        var general: [Observation] = []
        let off = ["MECHA_FAST_INVOKE": "0"]
        try await RemoteInvocationTests.withMesh(alphaEnvironment: off, betaEnvironment: off) { mesh in
            general = try await Self.observe(mesh)
        }
        let before = FastInvokeHandler.answered.load(ordering: .relaxed)
        var fast: [Observation] = []
        try await RemoteInvocationTests.withMesh { mesh in
            fast = try await Self.observe(mesh)
        }
        // Other suites may run fast calls meanwhile; ours alone make at least this many.
        #expect(FastInvokeHandler.answered.load(ordering: .relaxed) - before >= 16)
        #expect(fast.count == general.count)
        for (index, (fastOne, generalOne)) in zip(fast, general).enumerated() {
            #expect(fastOne == generalOne, "probe \(Self.probes[index / 2].path)")
        }
    }

    @Test func headerNameChecksAgreeWithLowercasing() {
        let names = [
            "Connection", "KEEP-ALIVE", "te", "TE", "Trailer", "trailers", "Upgrade", "Transfer-Encoding", "Proxy-Connection",
            "proxy-authorization", "Proxy-Authenticate", "HTTP2-Settings", "Host", "host2", "Content-Type", "content-length",
            "Dapr-Caller-App-ID", "dapr-callee-app-id", "dapr-caller-namespace", "X-Mecha-Target-App", "x-mecha", "x-mechanic",
            "X-Custom", "", "ä-header", "dapr-app-id", "Date", "Server",
        ]
        for name in names {
            let lowered = name.lowercased()
            #expect(HeaderNames.isHopByHop(name) == HopByHop.names.contains(lowered), "\(name)")
            #expect(HeaderNames.isIdentity(name) == InvokeAPI.identityHeaders.contains(lowered), "\(name)")
            #expect(HeaderNames.isInternal(name) == lowered.hasPrefix("x-mecha-"), "\(name)")
            #expect(HeaderNames.equals(name, "content-type") == (lowered == "content-type"), "\(name)")
        }
    }

    @Test func generatedTraceParentsAreWellFormedAndDistinct() {
        let first = TraceContext.newUnsampled()
        let second = TraceContext.newUnsampled()
        #expect(first != second)
        for value in [first, second] {
            let parts = value.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
            #expect(parts.count == 4 && parts[0] == "00" && parts[3] == "00", "\(value)")
            #expect(parts[1].count == 32 && parts[2].count == 16, "\(value)")
            #expect((parts[1] + parts[2]).allSatisfy { $0.isHexDigit && !$0.isUppercase }, "\(value)")
        }
    }

    /// Pipelined requests are answered in order, whichever path each one takes.
    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await RemoteInvocationTests.withMesh { mesh in
            let requests = [
                "POST /v1.0/invoke/alpha/method/echo/first HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst",
                "GET /v1.0/healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                "GET /v1.0/invoke/alpha/method/echo/third HTTP/1.1\r\nHost: x\r\n\r\n",
                "GET /v1.0/invoke/beta/method/echo/fourth HTTP/1.1\r\nHost: x\r\n\r\n",
                "POST /v1.0/invoke/alpha/method/echo/fifth HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfifth\r\n0\r\n\r\n",
                "GET /v1.0/invoke/alpha/method/echo/sixth HTTP/1.1\r\nHost: x\r\n\r\n",
            ]
            let answers = try RawHTTP.exchange(port: mesh.alpha.httpPort, Array(requests.joined().utf8), responses: requests.count)
            try #require(answers.count == requests.count)
            #expect(answers[0].status == 200 && answers[0].body.contains(#""path":"/echo/first""#) && answers[0].body.contains(#""body":"first""#))
            #expect(answers[1].status == 204)
            #expect(answers[2].status == 200 && answers[2].body.contains(#""path":"/echo/third""#))
            #expect(answers[3].status == 200 && answers[3].body.contains(#""path":"/echo/fourth""#))
            #expect(answers[4].status == 200 && answers[4].body.contains(#""body":"fifth""#))
            #expect(answers[5].status == 200 && answers[5].body.contains(#""path":"/echo/sixth""#))
        }
    }

    /// Graceful shutdown lets a request the fast path is answering finish (the server's idle-close
    /// cannot see it, so the fast path holds the shutdown signal until it is answered).
    @Test func aFastRequestInProgressCompletesDuringGracefulShutdown() async throws {
        final class Arrival: Sendable {
            let arrived = Atomic<Bool>(false)
        }
        let arrival = Arrival()
        try await RouteTest.withInlineApp({ router in
            router.get("/slow") { _, _ -> String in
                arrival.arrived.store(true, ordering: .relaxed)
                try await Task.sleep(for: .milliseconds(600))
                return "done"
            }
        }) { appPort in
            try await InProcessSidecar.with(appID: "slowapp", appPort: appPort) { sidecar in
                try await TestHTTP.with { http in
                    async let answer = http.get(port: sidecar.httpPort, "/v1.0/invoke/slowapp/method/slow")
                    // Shut down once the app holds the request (a loaded machine may take a while).
                    let deadline = ContinuousClock.now + .seconds(20)
                    while !arrival.arrived.load(ordering: .relaxed), ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(10))
                    }
                    await sidecar.sidecar.shutdown()
                    let response = try await answer
                    #expect(response.status == 200)
                    #expect(response.text == "done")
                }
            }
        }
    }

    /// An app that went away is reported as daprd does, and calls work again once it is back.
    @Test func anAppThatIsDownIsReportedAndTheConnectionPoolRecovers() async throws {
        try await RemoteInvocationTests.withMesh(betaAppDown: true) { mesh in
            let down = try await mesh.http.get(port: mesh.beta.httpPort, "/v1.0/invoke/beta/method/echo/x")
            #expect(down.status == 500)
            #expect(down.jsonBody["errorCode"] == "ERR_DIRECT_INVOKE")
            // The calling connection stays usable.
            let up = try await mesh.http.get(port: mesh.alpha.httpPort, "/v1.0/invoke/alpha/method/echo/y")
            #expect(up.status == 200)
        }
    }
}

/// A blocking HTTP/1.1 client on a raw socket, for what the pooled test client cannot send
/// (pipelined requests in one write).
enum RawHTTP {
    struct Answer {
        var status: Int
        var headers: [(String, String)]
        var body: String
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func exchange(port: Int, _ bytes: [UInt8], responses: Int, timeoutSeconds: Int = 20) throws -> [Answer] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(errno)") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw Failure(description: "connect: \(errno)") }
        var sent = 0
        while sent < bytes.count {
            let written = bytes[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written > 0 else { throw Failure(description: "write: \(errno)") }
            sent += written
        }
        var received: [UInt8] = []
        var answers: [Answer] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while answers.count < responses {
            if let (answer, used) = Self.parse(received) {
                answers.append(answer)
                received.removeFirst(used)
                continue
            }
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { throw Failure(description: "read ended after \(answers.count) answers (\(count), errno \(errno))") }
            received += buffer[0..<count]
        }
        return answers
    }

    /// One complete answer with a `Content-Length` (or none, for 204) at the start of `bytes`.
    static func parse(_ bytes: [UInt8]) -> (Answer, Int)? {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        guard let end = bytes.indices.first(where: { bytes[$0...].starts(with: separator) }) else { return nil }
        let lines = String(decoding: bytes[..<end], as: UTF8.self).split(separator: "\r\n")
        let status = Int(lines[0].split(separator: " ")[1]) ?? 0
        var headers: [(String, String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((line[..<colon].lowercased(), String(line[line.index(after: colon)...].drop(while: { $0 == " " }))))
        }
        let length = headers.first(where: { $0.0 == "content-length" }).flatMap { Int($0.1) } ?? 0
        let bodyStart = end + 4
        guard bytes.count >= bodyStart + length else { return nil }
        return (Answer(status: status, headers: headers, body: String(decoding: bytes[bodyStart..<(bodyStart + length)], as: UTF8.self)), bodyStart + length)
    }
}

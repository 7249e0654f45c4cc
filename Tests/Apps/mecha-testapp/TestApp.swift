import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A small app the black-box tests run next to `mecha`: it echoes invocations, records what the
/// sidecar delivers (topic events, binding events), answers `/dapr/subscribe` from the
/// `SUBSCRIPTIONS` environment variable, and lets a test change how routes answer.
///
/// Control endpoints (called by the test, not by the sidecar):
/// - `GET /test/received?path=/orders` → JSON array of recorded bodies (as strings) for the path
/// - `GET /test/headers?path=/orders` → JSON array of recorded header maps
/// - `POST /test/respond?path=/orders&status=503&body=...&delayMs=100` → how (and how slowly) that
///   path answers from now on
@main
struct TestApp {
    static func main() async throws {
        let port = Int(getenv("APP_PORT").map { String(cString: $0) } ?? "") ?? 8080
        let subscriptions = getenv("SUBSCRIPTIONS").map { String(cString: $0) } ?? "[]"
        let state = Recorder()
        let router = Router()

        router.get("/dapr/subscribe") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: subscriptions)))
        }
        // The pid lets a test tell its own app from another test's that got the same port.
        let pid = String(getpid())
        router.get("/healthz") { _, _ in
            Response(status: state.healthy ? .ok : .serviceUnavailable, headers: [HTTPField.Name("x-testapp-pid")!: pid])
        }
        router.post("/test/healthy") { request, _ in
            state.setHealthy(request.uri.queryParameters.get("value") != "false")
            return HTTPResponse.Status.noContent
        }
        router.get("/test/received") { request, _ in
            let path = request.uri.queryParameters.get("path") ?? "/"
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: state.bodiesJSON(path))))
        }
        router.get("/test/headers") { request, _ in
            let path = request.uri.queryParameters.get("path") ?? "/"
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: state.headersJSON(path))))
        }
        router.post("/test/respond") { request, _ in
            let path = request.uri.queryParameters.get("path") ?? "/"
            let status = Int(request.uri.queryParameters.get("status") ?? "200") ?? 200
            let delay = Int(request.uri.queryParameters.get("delayMs") ?? "0") ?? 0
            state.setResponse(path, status: status, body: request.uri.queryParameters.get("body") ?? "", delayMs: delay)
            return HTTPResponse.Status.noContent
        }
        router.on("/echo/**", method: .get, use: echo)
        router.on("/echo/**", method: .post, use: echo)
        router.on("/echo/**", method: .put, use: echo)
        router.on("/echo/**", method: .delete, use: echo)
        router.on("/echo/**", method: .patch, use: echo)
        router.get("/status/{code}") { _, context in
            let code = Int(context.parameters.get("code") ?? "500") ?? 500
            return Response(status: .init(code: code), headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "status \(code)")))
        }
        // Streams back `bytes` bytes in 64 KiB chunks.
        router.get("/bytes/{count}") { _, context in
            let count = Int(context.parameters.get("count") ?? "0") ?? 0
            return Response(status: .ok, headers: [.contentType: "application/octet-stream", .contentLength: String(count)], body: .init { writer in
                var left = count
                let chunk = ByteBuffer(repeating: UInt8(ascii: "x"), count: 65536)
                while left > 0 {
                    try await writer.write(chunk.getSlice(at: 0, length: min(left, 65536))!)
                    left -= min(left, 65536)
                }
                try await writer.finish(nil)
            })
        }
        // Counts the request body without keeping it.
        router.post("/count") { request, _ in
            var total = 0
            for try await chunk in request.body { total += chunk.readableBytes }
            return String(total)
        }
        // Everything else: record it, answer as configured (topic events, bindings, invocations).
        router.on("/**", method: .post, use: record)
        router.on("/**", method: .options, use: record)
        router.on("/**", method: .put, use: record)

        @Sendable func echo(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
            let body = try await request.body.collect(upTo: 64 << 20)
            var headers: [(String, String)] = []
            for field in request.headers { headers.append((field.name.canonicalName, field.value)) }
            let json = "{\"method\":\(quote(request.method.rawValue)),\"path\":\(quote(request.uri.path)),\"query\":\(quote(request.uri.query ?? "")),\"body\":\(quote(String(buffer: body))),\"headers\":{\(headers.map { "\(quote($0.0)):\(quote($0.1))" }.joined(separator: ","))}}"
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: json)))
        }

        @Sendable func record(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
            let body = try await request.body.collect(upTo: 64 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let path = request.uri.path
            if request.method != .options { state.record(path, body: String(buffer: body), headers: headers) }
            let (status, answer, delay) = state.response(path)
            if delay > 0 { try await Task.sleep(for: .milliseconds(delay)) }
            return Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: answer)))
        }

        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
        print("test app listening on \(port)")
        try await app.runService()
    }
}

func quote(_ text: String) -> String {
    var output = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": output += "\\\""
        case "\\": output += "\\\\"
        case "\n": output += "\\n"
        case "\r": output += "\\r"
        case "\t": output += "\\t"
        default:
            if scalar.value < 0x20 {
                let hex = String(scalar.value, radix: 16)
                output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                output.unicodeScalars.append(scalar)
            }
        }
    }
    return output + "\""
}

/// What the app has received and how it should answer.
final class Recorder: Sendable {
    private struct State {
        var bodies: [String: [String]] = [:]
        var headers: [String: [[String: String]]] = [:]
        var responses: [String: (Int, String, Int)] = [:]
        var healthy = true
    }

    private let state = Mutex(State())

    var healthy: Bool { self.state.withLock { $0.healthy } }
    func setHealthy(_ value: Bool) { self.state.withLock { $0.healthy = value } }

    func record(_ path: String, body: String, headers: [String: String]) {
        self.state.withLock {
            $0.bodies[path, default: []].append(body)
            $0.headers[path, default: []].append(headers)
        }
    }

    func setResponse(_ path: String, status: Int, body: String, delayMs: Int) {
        self.state.withLock { $0.responses[path] = (status, body, delayMs) }
    }

    func response(_ path: String) -> (Int, String, Int) {
        self.state.withLock { $0.responses[path] ?? (200, "", 0) }
    }

    func bodiesJSON(_ path: String) -> String {
        let bodies = self.state.withLock { $0.bodies[path] ?? [] }
        return "[" + bodies.map(quote).joined(separator: ",") + "]"
    }

    func headersJSON(_ path: String) -> String {
        let headers = self.state.withLock { $0.headers[path] ?? [] }
        return "[" + headers.map { map in "{" + map.sorted { $0.key < $1.key }.map { "\(quote($0.key)):\(quote($0.value))" }.joined(separator: ",") + "}" }.joined(separator: ",") + "]"
    }
}

public import HTTP1Client
public import NIOCore
public import NIOHTTP1

/// A plain HTTP answer, fully read (for tests).
public struct TestHTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public var text: String { String(decoding: self.body, as: UTF8.self) }

    public func header(_ name: String) -> String? { self.headers.first(name: name) }
}

/// A small HTTP client for tests and tools: one pooled `HTTP1Client` run for the duration of a scope.
public struct TestHTTP: Sendable {
    let client: HTTP1Client

    /// Runs `body` with a client; the client is shut down afterwards.
    public static func with<Output: Sendable>(_ body: (TestHTTP) async throws -> Output) async throws -> Output {
        let client = HTTP1Client()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { client.shutdown() }
            let output = try await body(TestHTTP(client: client))
            return output
        }
    }

    /// Sends a request to `http://127.0.0.1:<port><path>`.
    public func request(
        _ method: HTTPMethod,
        port: Int,
        _ path: String,
        headers: [(String, String)] = [],
        body: [UInt8]? = nil,
        host: String = "127.0.0.1"
    ) async throws -> TestHTTPResponse {
        var httpHeaders = HTTPHeaders()
        for (name, value) in headers { httpHeaders.add(name: name, value: value) }
        let request = HTTP1Request(
            target: HTTP1Target(host: host, port: port),
            method: method,
            uri: path,
            headers: httpHeaders,
            body: body.map { .bytes(ByteBuffer(bytes: $0)) } ?? .empty
        )
        return try await self.client.execute(request) { response in
            let buffer = try await response.collect(upTo: 64 << 20)
            return TestHTTPResponse(status: Int(response.status.code), headers: response.headers, body: Array(buffer.readableBytesView))
        }
    }

    public func get(port: Int, _ path: String, headers: [(String, String)] = []) async throws -> TestHTTPResponse {
        try await self.request(.GET, port: port, path, headers: headers)
    }

    public func post(port: Int, _ path: String, json: String, headers: [(String, String)] = []) async throws -> TestHTTPResponse {
        try await self.request(.POST, port: port, path, headers: [("content-type", "application/json")] + headers, body: Array(json.utf8))
    }

    public func post(port: Int, _ path: String, body: [UInt8], headers: [(String, String)] = []) async throws -> TestHTTPResponse {
        try await self.request(.POST, port: port, path, headers: headers, body: body)
    }

    public func delete(port: Int, _ path: String, headers: [(String, String)] = []) async throws -> TestHTTPResponse {
        try await self.request(.DELETE, port: port, path, headers: headers)
    }

    /// Polls `GET path` until it answers `status` (default 2xx) or `timeout` passes.
    public func waitFor(port: Int, _ path: String, timeout: Duration = .seconds(30), until predicate: @Sendable (TestHTTPResponse) -> Bool = { (200..<300).contains($0.status) }) async throws -> TestHTTPResponse {
        let deadline = ContinuousClock.now + timeout
        var last: TestHTTPResponse?
        var lastError: (any Error)?
        while ContinuousClock.now < deadline {
            do {
                let response = try await self.get(port: port, path)
                if predicate(response) { return response }
                last = response
            } catch {
                lastError = error
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw HarnessError("timed out waiting for GET 127.0.0.1:\(port)\(path); last answer: \(last.map { "\($0.status) \($0.text)" } ?? lastError.map { "\($0)" } ?? "none")")
    }
}

/// A test-harness failure with a readable message.
public struct HarnessError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

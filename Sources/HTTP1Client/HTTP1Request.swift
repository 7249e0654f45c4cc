public import NIOCore
public import NIOHTTP1

/// A type-erased stream of body chunks.
public struct ByteStream: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    private let base: any AsyncSequence<ByteBuffer, any Error> & Sendable

    public init(_ base: some AsyncSequence<ByteBuffer, any Error> & Sendable) {
        self.base = base
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: any AsyncIteratorProtocol<ByteBuffer, any Error>

        public mutating func next() async throws -> ByteBuffer? {
            try await self.base.next(isolation: nil)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: self.base.makeAsyncIterator())
    }
}

/// Where a request goes: host, port and whether to use TLS (`https`).
public struct HTTP1Target: Sendable, Hashable, CustomStringConvertible {
    /// A name or an IP address (IPv6 without brackets).
    public var host: String
    public var port: Int
    /// Connect with TLS, as the client's ``HTTP1TLSConfiguration`` says.
    public var tls: Bool
    /// Who the server must prove to be (opaque here; given to the client's `tlsHandlerProvider`).
    /// Connections are pooled per peer, so one made for a peer is never used for another.
    public var peer: String?

    public init(host: String, port: Int, tls: Bool = false, peer: String? = nil) {
        self.host = host
        self.port = port
        self.tls = tls
        self.peer = peer
    }

    public var description: String { "\(self.tls ? "https" : "http")://\(self.host):\(self.port)" }
}

/// A request body: nothing, bytes in hand (replayable), or a stream (sent as it arrives).
public enum HTTP1RequestBody: Sendable {
    case empty
    case bytes(ByteBuffer)
    /// `length` is sent as `Content-Length` when known; otherwise the body is chunked.
    case stream(ByteStream, length: Int?)

    var isReplayable: Bool {
        if case .stream = self { return false }
        return true
    }
}

public struct HTTP1Request: Sendable {
    public var target: HTTP1Target
    public var method: HTTPMethod
    /// Path and query, e.g. `/orders?id=1`.
    public var uri: String
    public var headers: HTTPHeaders
    public var body: HTTP1RequestBody

    public init(target: HTTP1Target, method: HTTPMethod, uri: String, headers: HTTPHeaders = [:], body: HTTP1RequestBody = .empty) {
        self.target = target
        self.method = method
        self.uri = uri
        self.headers = headers
        self.body = body
    }
}

/// A response whose body streams from the connection. Valid only inside the `execute` handler.
public struct HTTP1Response: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: HTTP1ResponseBody

    /// Reads the whole body, refusing more than `maxBytes`.
    public func collect(upTo maxBytes: Int) async throws -> ByteBuffer {
        var result = ByteBuffer()
        for try await chunk in self.body {
            guard result.readableBytes + chunk.readableBytes <= maxBytes else { throw HTTP1ClientError.responseTooLarge(maxBytes) }
            var chunk = chunk
            result.writeBuffer(&chunk)
        }
        return result
    }
}

public enum HTTP1ClientError: Error, Sendable, Hashable, CustomStringConvertible {
    case connectionClosed
    case unexpectedResponsePart
    case responseTooLarge(Int)
    case shutDown
    case invalidTarget(String)
    /// The TLS handshake with `target` (`host:port`) failed, e.g. `certificate verify failed`.
    case tlsHandshakeFailed(target: String, reason: String)
    /// The client's ``HTTP1TLSConfiguration`` cannot be turned into a TLS context.
    case invalidTLSConfiguration(String)

    public var description: String {
        switch self {
        case .connectionClosed: "connection closed before the response was complete"
        case .unexpectedResponsePart: "unexpected HTTP response part"
        case .responseTooLarge(let limit): "response body larger than \(limit) bytes"
        case .shutDown: "HTTP client is shut down"
        case .invalidTarget(let text): "invalid target \(text)"
        case .tlsHandshakeFailed(let target, let reason): "TLS handshake with \(target) failed: \(reason)"
        case .invalidTLSConfiguration(let reason): "invalid TLS configuration: \(reason)"
        }
    }
}

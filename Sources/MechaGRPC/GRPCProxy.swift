public import GRPCCore
public import GRPCNIOTransportHTTP2
public import Logging
import MechaCore

/// Forwards a gRPC call as raw frames: the request's metadata and messages go to `target`, its
/// response metadata, messages and status come back, both directions streaming. No stubs and no
/// (de)serialization — the proxy never needs to know the service.
enum GRPCProxy {
    typealias ServerInbound = RPCAsyncSequence<RPCRequestPart<GRPCNIOTransportBytes>, any Error>
    typealias ServerOutbound = RPCWriter<RPCResponsePart<GRPCNIOTransportBytes>>.Closable

    /// Forwards one call. `firstMetadata` is the request metadata already read from `inbound`
    /// (changed as the hop requires); `inbound` continues with the messages.
    static func forward(
        descriptor: MethodDescriptor,
        firstMetadata: Metadata,
        inbound: ServerInbound,
        outbound: ServerOutbound,
        to target: HTTP2ClientTransport.Posix,
        maxMessageSize: Int,
        governance: ProxyCallGovernance? = nil,
        logger: Logger
    ) async {
        guard let governance else {
            _ = await self.forwardOnce(descriptor: descriptor, firstMetadata: firstMetadata, inbound: inbound, outbound: outbound, to: target, maxMessageSize: maxMessageSize, logger: logger)
            return
        }
        // The Resiliency timeout bounds the call; the breaker and the mesh learn how it ended.
        let code: Status.Code
        if let timeout = governance.timeout {
            let finished = await withTaskGroup(of: Status.Code?.self) { group -> Status.Code in
                group.addTask {
                    await self.forwardOnce(descriptor: descriptor, firstMetadata: firstMetadata, inbound: inbound, outbound: outbound, to: target, maxMessageSize: maxMessageSize, logger: logger)
                }
                group.addTask {
                    try? await Task.sleep(for: timeout)
                    return nil
                }
                let first = await group.next() ?? nil
                group.cancelAll()
                if let first { return first }
                governance.timedOut()
                // daprd: the raw context error through grpc-go.
                try? await outbound.write(.status(Status(code: .deadlineExceeded, message: "context deadline exceeded"), [:]))
                await outbound.finish()
                return .deadlineExceeded
            }
            code = finished
        } else {
            code = await self.forwardOnce(descriptor: descriptor, firstMetadata: firstMetadata, inbound: inbound, outbound: outbound, to: target, maxMessageSize: maxMessageSize, logger: logger)
        }
        governance.finish(code)
    }

    /// One forwarded call; returns the status code the caller got.
    static func forwardOnce(
        descriptor: MethodDescriptor,
        firstMetadata: Metadata,
        inbound: ServerInbound,
        outbound: ServerOutbound,
        to target: HTTP2ClientTransport.Posix,
        maxMessageSize: Int,
        logger: Logger
    ) async -> Status.Code {
        var final = Status.Code.ok
        // The upstream call's limits are the served side's: a message the caller may send, or
        // an answer the app may give, is not cut off at the client's 4 MiB default midway.
        var options = CallOptions.defaults
        options.maxRequestMessageBytes = maxMessageSize
        options.maxResponseMessageBytes = maxMessageSize
        do {
            try await target.withStream(descriptor: descriptor, options: options) { stream, _ in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    // Requests: metadata, then every message, then half-close.
                    group.addTask {
                        try await stream.outbound.write(.metadata(Self.forwardable(firstMetadata)))
                        for try await part in inbound {
                            if case .message(let bytes) = part { try await stream.outbound.write(.message(bytes)) }
                        }
                        await stream.outbound.finish()
                    }
                    // Responses: pass every part through; the status ends the call.
                    var sawStatus = false
                    for try await part in stream.inbound {
                        switch part {
                        case .metadata(let metadata):
                            try await outbound.write(.metadata(Self.forwardable(metadata)))
                        case .message:
                            try await outbound.write(part)
                        case .status(let status, let trailers):
                            final = status.code
                            try await outbound.write(.status(status, Self.forwardable(trailers)))
                            sawStatus = true
                        }
                        if sawStatus { break }
                    }
                    if !sawStatus {
                        final = .unavailable
                        try await outbound.write(.status(Status(code: .unavailable, message: "the proxied call ended without a status"), [:]))
                    }
                    await outbound.finish()
                    group.cancelAll()
                }
            }
        } catch {
            logger.debug("proxied gRPC call \(descriptor) failed: \(error)")
            let status: Status
            if let rpcError = error as? RPCError {
                status = Status(code: Status.Code(rpcError.code), message: rpcError.message)
            } else {
                status = Status(code: .unavailable, message: "failed to proxy request: \(error)")
            }
            final = status.code
            try? await outbound.write(.status(status, [:]))
            await outbound.finish()
        }
        return final
    }

    /// Metadata the transports set themselves (HTTP/2 pseudo-headers, content type, encodings,
    /// status trailers) is dropped; everything else crosses the proxy unchanged.
    static func forwardable(_ metadata: Metadata) -> Metadata {
        var result = Metadata()
        for (key, value) in metadata {
            let lowered = key.lowercased()
            if lowered.hasPrefix(":") || Self.transportKeys.contains(lowered) { continue }
            switch value {
            case .string(let text): result.addString(text, forKey: key)
            case .binary(let bytes): result.addBinary(bytes, forKey: key)
            }
        }
        return result
    }

    static let transportKeys: Set<String> = [
        "content-type", "te", "user-agent", "grpc-encoding", "grpc-accept-encoding", "grpc-status", "grpc-message", "grpc-timeout",
    ]

    /// Fails a call that cannot be proxied.
    static func reject(_ outbound: ServerOutbound, code: Status.Code, message: String, metadata: Metadata = [:]) async {
        try? await outbound.write(.status(Status(code: code, message: message), metadata))
        await outbound.finish()
    }
}

/// A server transport that hands some calls to a proxy instead of the router: the public gRPC port
/// proxies calls carrying `dapr-app-id` for services other than Dapr's own; the internal port
/// proxies everything to the local app.
public struct ProxyingServerTransport: ServerTransport {
    public typealias Bytes = GRPCNIOTransportBytes

    /// Decides what to do with a call, given its method and request metadata.
    public enum Route: Sendable {
        /// Serve it here (the Dapr API).
        case serve
        /// Forward it to a transport, with this metadata (and the call's governance, if any).
        case forward(HTTP2ClientTransport.Posix, Metadata, ProxyCallGovernance? = nil)
        /// Refuse it.
        case reject(Status.Code, String)
        /// Refuse it with this error (its metadata, e.g. rich details, goes into the trailers).
        case refuse(RPCError)
    }

    let inner: HTTP2ServerTransport.Posix
    let route: @Sendable (MethodDescriptor, Metadata, ServerContext) async -> Route
    let logger: Logger
    /// The largest message forwarded either way (`--max-body-size`, as the served API's limit).
    let maxMessageSize: Int

    public init(
        inner: HTTP2ServerTransport.Posix,
        logger: Logger,
        maxMessageSize: Int = 4 << 20,
        route: @escaping @Sendable (MethodDescriptor, Metadata, ServerContext) async -> Route
    ) {
        self.inner = inner
        self.route = route
        self.logger = logger
        self.maxMessageSize = maxMessageSize
    }

    public func configure(context: GRPCServerContext) {
        self.inner.configure(context: context)
    }

    public func beginGracefulShutdown() {
        self.inner.beginGracefulShutdown()
    }

    public func listen(
        streamHandler: @escaping @Sendable (RPCStream<Inbound, Outbound>, ServerContext) async -> Void
    ) async throws {
        try await self.inner.listen { stream, context in
            var iterator = stream.inbound.makeAsyncIterator()
            let first: RPCRequestPart<Bytes>?
            do {
                first = try await iterator.next()
            } catch {
                await stream.outbound.finish(throwing: error)
                return
            }
            let metadata: Metadata
            if case .metadata(let received)? = first { metadata = received } else { metadata = [:] }
            let rest = RPCAsyncSequence<RPCRequestPart<Bytes>, any Error>(wrapping: IteratorSequence(iterator: iterator))
            switch await self.route(stream.descriptor, metadata, context) {
            case .serve:
                // Put the metadata back in front of the remaining parts for the router.
                let replay = RPCAsyncSequence<RPCRequestPart<Bytes>, any Error>(wrapping: Prepended(first: first, rest: rest))
                await streamHandler(RPCStream(descriptor: stream.descriptor, inbound: replay, outbound: stream.outbound), context)
            case .forward(let target, let forwardedMetadata, let governance):
                await GRPCProxy.forward(
                    descriptor: stream.descriptor,
                    firstMetadata: forwardedMetadata,
                    inbound: rest,
                    outbound: stream.outbound,
                    to: target,
                    maxMessageSize: self.maxMessageSize,
                    governance: governance,
                    logger: self.logger
                )
            case .reject(let code, let message):
                await GRPCProxy.reject(stream.outbound, code: code, message: message)
            case .refuse(let error):
                await GRPCProxy.reject(stream.outbound, code: Status.Code(error.code), message: error.message, metadata: error.metadata)
            }
        }
    }

    /// `listeningAddress` of the wrapped transport.
    public var listeningAddress: GRPCNIOTransportCore.SocketAddress {
        get async throws { try await self.inner.listeningAddress }
    }
}

/// An async sequence continuing from an iterator already started. The iterator moves to exactly
/// one consumer, hence `@unchecked Sendable`.
struct IteratorSequence<Base: AsyncIteratorProtocol>: AsyncSequence, @unchecked Sendable {
    typealias Element = Base.Element
    let iterator: Base

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base
        mutating func next() async throws -> Element? { try await self.base.next() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: self.iterator) }
}

/// `first` (when present), then `rest`.
struct Prepended<Rest: AsyncSequence & Sendable>: AsyncSequence, Sendable where Rest.Element: Sendable {
    typealias Element = Rest.Element
    let first: Element?
    let rest: Rest

    struct AsyncIterator: AsyncIteratorProtocol {
        var first: Element?
        var rest: Rest.AsyncIterator

        mutating func next() async throws -> Element? {
            if let first = self.first {
                self.first = nil
                return first
            }
            return try await self.rest.next()
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(first: self.first, rest: self.rest.makeAsyncIterator()) }
}

import GRPCNIOTransportCore

/// What governs one proxied call: the Resiliency timeout, and who learns how it ended (the
/// target's circuit breaker, the mesh's balancer and outlier detection).
public struct ProxyCallGovernance: Sendable {
    public var timeout: Duration?
    /// Told when the timeout ended the call (resiliency metrics).
    public var timedOut: @Sendable () -> Void
    public var finish: @Sendable (Status.Code) -> Void

    public init(timeout: Duration?, timedOut: @escaping @Sendable () -> Void = {}, finish: @escaping @Sendable (Status.Code) -> Void) {
        self.timeout = timeout
        self.timedOut = timedOut
        self.finish = finish
    }
}

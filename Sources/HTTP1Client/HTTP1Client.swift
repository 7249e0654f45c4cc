public import NIOCore
public import NIOHTTP1
public import NIOPosix
public import NIOSSL
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A pooled, streaming HTTP/1.1 client.
///
/// Connections live inside `run()`, which must be running (as a service) while requests are made;
/// when `run()` is cancelled or `shutdown()` is called, connections are closed. Requests use
/// `execute(_:_:)`, a scoped call: the response (and its streaming body) is valid inside the handler,
/// and the connection returns to the pool when the handler ends. Request bodies may stream while the
/// response is read (full duplex).
///
/// Targets with `tls` are reached over TLS (swift-nio-ssl) as `configuration.tls` says: by default
/// the system roots are trusted and the server's certificate and name are verified; the server name
/// (SNI) is the target's host unless it is an IP address. A connection is handed out only after its
/// handshake; a failed one throws ``HTTP1ClientError/tlsHandshakeFailed(target:reason:)``.
/// Connections are pooled per scheme, host and port, so `http` and `https` never share one.
public final class HTTP1Client: Sendable {
    public struct Configuration: Sendable {
        public var maxConnectionsPerHost: Int
        public var idleTimeout: Duration
        /// TCP connect; the TLS handshake gets the same time again.
        public var connectTimeout: Duration
        /// For every `https` target of this client.
        public var tls: HTTP1TLSConfiguration
        /// When set, the TLS handler of each new `https` connection, instead of one made from
        /// `tls` (a sidecar's mesh identity, which is renewed while the client runs and checks
        /// the server's identity).
        public var tlsHandlerProvider: (@Sendable (_ peer: String?) throws -> NIOSSLClientHandler)?

        public init(
            maxConnectionsPerHost: Int = 1024,
            idleTimeout: Duration = .seconds(60),
            connectTimeout: Duration = .seconds(5),
            tls: HTTP1TLSConfiguration = .init(),
            tlsHandlerProvider: (@Sendable (_ peer: String?) throws -> NIOSSLClientHandler)? = nil
        ) {
            self.tlsHandlerProvider = tlsHandlerProvider
            self.maxConnectionsPerHost = maxConnectionsPerHost
            self.idleTimeout = idleTimeout
            self.connectTimeout = connectTimeout
            self.tls = tls
        }
    }

    typealias Key = ConnectionPoolStateMachine.Key

    private struct ConnectRequest: Sendable {
        var id: Int
        var key: Key
    }

    private enum Phase {
        /// `run()` has not started yet: requests may queue (their connections open once it runs).
        case initial
        case running
        /// `run()` returned: nothing can be served any more.
        case finished
    }

    private struct State {
        var machine: ConnectionPoolStateMachine
        var waiters: [Int: CheckedContinuation<PooledConnection, any Error>] = [:]
        var live: [Int: PooledConnection] = [:]
        var nextWaiterID = 0
        var phase = Phase.initial
    }

    public let configuration: Configuration
    private let eventLoopGroup: any EventLoopGroup
    private let state: Mutex<State>
    private let connectRequests: AsyncStream<ConnectRequest>
    private let connectContinuation: AsyncStream<ConnectRequest>.Continuation
    /// Built from `configuration.tls` on the first `https` connection (loading the system roots is
    /// not free, and most clients never need it).
    private let sslContext = Mutex<NIOSSLContext?>(nil)

    public init(eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, configuration: Configuration = .init()) {
        self.eventLoopGroup = eventLoopGroup
        self.configuration = configuration
        self.state = Mutex(State(machine: ConnectionPoolStateMachine(maxConnectionsPerKey: configuration.maxConnectionsPerHost)))
        (self.connectRequests, self.connectContinuation) = AsyncStream.makeStream(of: ConnectRequest.self)
    }

    // MARK: Lifecycle

    /// Hosts the connections. Returns after `shutdown()` once every connection has closed (leased
    /// ones close when their exchange ends), or at once when cancelled (connections are closed).
    public func run() async {
        self.state.withLock { state in
            if state.phase == .initial { state.phase = .running }
        }
        await withTaskGroup(of: Void.self) { outer in
            outer.addTask { await self.sweepIdleConnections() }
            // Ends when `shutdown()` finishes the request stream (or on cancellation), then waits for
            // every connection task: in-flight exchanges complete, their connections close on release.
            await withDiscardingTaskGroup { group in
                for await request in self.connectRequests {
                    group.addTask { await self.runConnection(request) }
                }
            }
            outer.cancelAll()
        }
        // Anything still waiting can no longer be served.
        let waiters = self.state.withLock { state -> [CheckedContinuation<PooledConnection, any Error>] in
            state.phase = .finished
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(throwing: HTTP1ClientError.shutDown) }
    }

    /// Stops accepting requests, closes idle connections now and the rest as they are released.
    public func shutdown() {
        let (toClose, toFail) = self.state.withLock { state -> ([PooledConnection], [CheckedContinuation<PooledConnection, any Error>]) in
            let (closeIDs, failIDs) = state.machine.shutdown()
            let closing = closeIDs.compactMap { state.live[$0] }
            let failing = failIDs.compactMap { state.waiters.removeValue(forKey: $0) }
            return (closing, failing)
        }
        for connection in toClose { connection.requestClose() }
        for waiter in toFail { waiter.resume(throwing: HTTP1ClientError.shutDown) }
        self.connectContinuation.finish()
    }

    private func sweepIdleConnections() async {
        let interval = min(self.configuration.idleTimeout, .seconds(5))
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            if Task.isCancelled { break }
            let expired = self.state.withLock { state -> [PooledConnection] in
                if state.machine.shuttingDown { return [] }
                return state.machine.idleConnectionsToClose(now: .now, timeout: self.configuration.idleTimeout)
                    .compactMap { state.live[$0] }
            }
            for connection in expired { connection.requestClose() }
            if self.state.withLock({ $0.machine.shuttingDown }) { break }
        }
    }

    private func runConnection(_ request: ConnectRequest) async {
        do {
            let (seconds, attoseconds) = self.configuration.connectTimeout.components
            let timeout = TimeAmount.nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
            let key = request.key
            let provider = self.configuration.tlsHandlerProvider
            let sslContext = key.tls && provider == nil ? try self.makeSSLContext() : nil
            let bootstrap = ClientBootstrap(group: self.eventLoopGroup)
                .connectTimeout(timeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
            let (channel, handshake) = try await bootstrap.connect(host: key.host, port: key.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    var handshake: EventLoopFuture<Void>?
                    if key.tls {
                        let waiter = TLSHandshakeWaiter(promise: channel.eventLoop.makePromise(), timeout: timeout)
                        if let provider {
                            try channel.pipeline.syncOperations.addHandler(try provider(key.peer))
                        } else if let sslContext {
                            try channel.pipeline.syncOperations.addHandler(
                                NIOSSLClientHandler(context: sslContext, serverHostname: Self.serverName(for: key.host))
                            )
                        }
                        try channel.pipeline.syncOperations.addHandler(waiter)
                        handshake = waiter.futureResult
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    let asyncChannel = try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                    return (asyncChannel, handshake)
                }
            }
            try await channel.executeThenClose { inbound, outbound in
                if let handshake {
                    do {
                        try await handshake.get()
                    } catch {
                        throw HTTP1ClientError.tlsHandshakeFailed(
                            target: key.authority,
                            reason: TLSHandshakeWaiter.reason(for: error, host: key.host)
                        )
                    }
                }
                let connection = PooledConnection(
                    id: request.id,
                    key: request.key,
                    channel: channel.channel,
                    outbound: outbound,
                    inbound: inbound.makeAsyncIterator()
                )
                channel.channel.closeFuture.whenComplete { _ in connection.requestClose() }
                self.established(connection)
                await withTaskCancellationHandler {
                    await connection.waitUntilCloseRequested()
                } onCancel: {
                    connection.requestClose()
                }
            }
            let reconnect = self.state.withLock { state in
                state.live[request.id] = nil
                return state.machine.connectionClosed(request.id)
            }
            if let reconnect { self.connectContinuation.yield(ConnectRequest(id: reconnect.connection, key: request.key)) }
        } catch {
            let (waiter, reconnect) = self.state.withLock { state -> (CheckedContinuation<PooledConnection, any Error>?, ConnectionPoolStateMachine.Reconnect?) in
                state.live[request.id] = nil
                switch state.machine.connectionFailed(request.id) {
                case .fail(let waiterID, let reconnect):
                    return (waiterID.flatMap { state.waiters.removeValue(forKey: $0) }, reconnect)
                }
            }
            waiter?.resume(throwing: error)
            if let reconnect { self.connectContinuation.yield(ConnectRequest(id: reconnect.connection, key: request.key)) }
        }
    }

    private func makeSSLContext() throws(HTTP1ClientError) -> NIOSSLContext {
        if let context = self.sslContext.withLock({ $0 }) { return context }
        let context: NIOSSLContext
        do {
            context = try self.configuration.tls.makeSSLContext()
        } catch {
            throw HTTP1ClientError.invalidTLSConfiguration(error.reason)
        }
        return self.sslContext.withLock { cached in
            if let cached { return cached }
            cached = context
            return context
        }
    }

    /// The name sent in SNI and checked against the certificate: the host, unless it is an IP
    /// address (then the certificate must name that address).
    static func serverName(for host: String) -> String? {
        (try? SocketAddress(ipAddress: host, port: 0)) == nil ? host : nil
    }

    private func established(_ connection: PooledConnection) {
        enum Next {
            case handOver(CheckedContinuation<PooledConnection, any Error>)
            case none
            case close
            /// Leased to a waiter that is no longer registered: give it back to the pool.
            case orphaned
        }
        let next = self.state.withLock { state -> Next in
            state.live[connection.id] = connection
            switch state.machine.connectionEstablished(connection.id, now: .now) {
            case .handOver(let waiterID):
                if let waiter = state.waiters.removeValue(forKey: waiterID) { return .handOver(waiter) }
                return .orphaned
            case .park:
                return .none
            case .close:
                state.live[connection.id] = nil
                return .close
            }
        }
        switch next {
        case .handOver(let waiter): waiter.resume(returning: connection)
        case .none: break
        case .close: connection.requestClose()
        case .orphaned: self.release(connection, reusable: true)
        }
    }

    // MARK: Leasing

    private func lease(_ key: Key) async throws -> PooledConnection {
        while true {
            let connection = try await self.leaseOnce(key)
            if connection.isActive { return connection }
            // The peer closed it while idle: drop it and try again.
            self.release(connection, reusable: false)
        }
    }

    private func leaseOnce(_ key: Key) async throws -> PooledConnection {
        let waiterID = self.state.withLock { state -> Int in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<PooledConnection, any Error>) in
                enum Next {
                    case resume(PooledConnection)
                    case connect(Int)
                    case fail(any Error)
                    case wait
                }
                let next = self.state.withLock { state -> Next in
                    guard state.phase != .finished, !state.machine.shuttingDown else { return .fail(HTTP1ClientError.shutDown) }
                    if Task.isCancelled { return .fail(CancellationError()) }
                    switch state.machine.leaseRequested(key, waiter: waiterID) {
                    case .use(let id):
                        guard let connection = state.live[id] else { return .fail(HTTP1ClientError.connectionClosed) }
                        return .resume(connection)
                    case .connect(let id):
                        state.waiters[waiterID] = continuation
                        return .connect(id)
                    case .wait:
                        state.waiters[waiterID] = continuation
                        return .wait
                    }
                }
                switch next {
                case .resume(let connection): continuation.resume(returning: connection)
                case .fail(let error): continuation.resume(throwing: error)
                case .connect(let id): self.connectContinuation.yield(ConnectRequest(id: id, key: key))
                case .wait: break
                }
            }
        } onCancel: {
            let waiter = self.state.withLock { state -> CheckedContinuation<PooledConnection, any Error>? in
                _ = state.machine.waiterCancelled(waiterID, key: key)
                return state.waiters.removeValue(forKey: waiterID)
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    private func release(_ connection: PooledConnection, reusable: Bool) {
        enum Next {
            case none
            case handOver(CheckedContinuation<PooledConnection, any Error>)
            case close(connect: ConnectRequest?)
        }
        let next = self.state.withLock { state -> Next in
            switch state.machine.connectionReleased(connection.id, reusable: reusable && connection.isActive, now: .now) {
            case .park:
                return .none
            case .handOver(_, let waiterID):
                guard let waiter = state.waiters.removeValue(forKey: waiterID) else {
                    // The waiter vanished between the decision and now: park the connection.
                    _ = state.machine.connectionReleased(connection.id, reusable: true, now: .now)
                    return .none
                }
                return .handOver(waiter)
            case .close(_, let newID, _):
                state.live[connection.id] = nil
                return .close(connect: newID.map { ConnectRequest(id: $0, key: connection.key) })
            }
        }
        switch next {
        case .none: break
        case .handOver(let waiter): waiter.resume(returning: connection)
        case .close(let connect):
            connection.requestClose()
            if let connect { self.connectContinuation.yield(connect) }
        }
    }

    // MARK: Exchange

    /// Sends `request` and calls `handler` with the response. The connection is reused afterwards if
    /// the body was read to the end and the server allows keep-alive.
    ///
    /// A reused keep-alive connection may have been closed by the server just as the request went
    /// out (an idle connection's closure is only noticed when it is next used). Then a request with a
    /// replayable body is retried once on a new connection, when it could not be written or the
    /// connection closed or was reset before any response byte. Nothing is retried after a malformed
    /// response or once the calling task is cancelled.
    public func execute<Output: Sendable>(
        _ request: HTTP1Request,
        _ handler: (HTTP1Response) async throws -> Output
    ) async throws -> Output {
        let key = Key(host: request.target.host, port: request.target.port, tls: request.target.tls, peer: request.target.peer)
        var retried = false
        while true {
            let connection = try await self.lease(key)
            let reused = connection.uses > 0
            connection.uses += 1
            do {
                return try await self.exchange(request, on: connection, handler)
            } catch let error as FailedBeforeResponse {
                let retryable = error.nothingSent || error.closedWithoutResponse
                if reused && !retried && request.body.isReplayable && retryable && !Task.isCancelled {
                    retried = true
                    continue
                }
                throw error.underlying
            }
        }
    }



    /// The handler threw; the connection was already released.
    private struct HandlerFailed: Error {
        var underlying: any Error
    }

    /// Failed before any response byte arrived.
    private struct FailedBeforeResponse: Error {
        var underlying: any Error
        /// The request could not be written (the server cannot have acted on it).
        var nothingSent = false
        /// The connection closed cleanly before any response byte (the server may have acted on it).
        var closedWithoutResponse = false
    }

    private func exchange<Output: Sendable>(
        _ request: HTTP1Request,
        on connection: PooledConnection,
        _ handler: (HTTP1Response) async throws -> Output
    ) async throws -> Output {
        var head = HTTPRequestHead(version: .http1_1, method: request.method, uri: request.uri, headers: request.headers)
        if !head.headers.contains(name: "host") {
            let target = request.target
            let defaultPort = target.port == (target.tls ? 443 : 80)
            let host = target.host.contains(":") ? "[\(target.host)]" : target.host
            head.headers.add(name: "host", value: defaultPort ? host : "\(host):\(target.port)")
        }
        head.headers.remove(name: "content-length")
        head.headers.remove(name: "transfer-encoding")
        let exchange = ExchangeProgress()
        do {
            switch request.body {
            case .empty:
                if request.method == .POST || request.method == .PUT || request.method == .PATCH {
                    head.headers.add(name: "content-length", value: "0")
                }
                try await connection.outbound.write(contentsOf: [.head(head), .end(nil)])
                exchange.requestSent()
                return try await self.readResponse(on: connection, exchange: exchange, handler)
            case .bytes(let buffer):
                head.headers.add(name: "content-length", value: String(buffer.readableBytes))
                try await connection.outbound.write(contentsOf: [.head(head), .body(.byteBuffer(buffer)), .end(nil)])
                exchange.requestSent()
                return try await self.readResponse(on: connection, exchange: exchange, handler)
            case .stream(let stream, let length):
                if let length {
                    head.headers.add(name: "content-length", value: String(length))
                } else {
                    head.headers.add(name: "transfer-encoding", value: "chunked")
                }
                try await connection.outbound.write(.head(head))
                return try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        do {
                            for try await chunk in stream {
                                try await connection.outbound.write(.body(.byteBuffer(chunk)))
                            }
                            try await connection.outbound.write(.end(nil))
                            exchange.requestSent()
                        } catch {
                            // The request cannot be completed: close the connection so the reader
                            // stops waiting for a response the server will never send.
                            exchange.requestBodyFailed(error)
                            connection.channel.close(promise: nil)
                            throw error
                        }
                    }
                    let output: Output
                    do {
                        output = try await self.readResponse(on: connection, exchange: exchange, streamingRequest: true, handler)
                    } catch let error as FailedBeforeResponse {
                        // Report why the request body stopped rather than the resulting closed connection.
                        throw FailedBeforeResponse(underlying: exchange.requestBodyError ?? error.underlying)
                    }
                    // A server may answer before reading the whole request; then the connection was
                    // released as unusable and the writer is stopped.
                    if exchange.isRequestSent { try await group.waitForAll() } else { group.cancelAll() }
                    return output
                }
            }
        } catch let error as FailedBeforeResponse {
            self.release(connection, reusable: false)
            throw error
        } catch let error as HandlerFailed {
            throw error.underlying  // already released
        } catch {
            self.release(connection, reusable: false)
            if exchange.receivedResponse { throw error }
            // A write that failed, or a connection reset before any response byte, is retryable; a
            // malformed response is reported as is and never retried.
            // Over TLS a peer that hangs up without close_notify shows as an unclean shutdown.
            let reset = (error as? IOError).map { $0.errnoCode == ECONNRESET || $0.errnoCode == EPIPE }
                ?? ((error as? NIOSSLError) == .uncleanShutdown)
            throw FailedBeforeResponse(underlying: error, nothingSent: !exchange.isRequestSent, closedWithoutResponse: reset)
        }
    }

    /// Reads the response head, runs the handler, then drains (or abandons) the body and releases.
    private func readResponse<Output: Sendable>(
        on connection: PooledConnection,
        exchange: ExchangeProgress,
        streamingRequest: Bool = false,
        _ handler: (HTTP1Response) async throws -> Output
    ) async throws -> Output {
        var responseHead: HTTPResponseHead?
        while responseHead == nil {
            guard let part = try await connection.inbound.next() else {
                throw FailedBeforeResponse(underlying: HTTP1ClientError.connectionClosed, closedWithoutResponse: true)
            }
            switch part {
            case .head(let head) where head.status.code >= 200 || head.status == .switchingProtocols:
                responseHead = head
            case .head:
                continue  // 1xx informational
            case .body, .end:
                throw FailedBeforeResponse(underlying: HTTP1ClientError.unexpectedResponsePart)
            }
        }
        let head = responseHead!
        exchange.responseStarted()
        let body = HTTP1ResponseBody(connection: connection, exchange: exchange)
        let output: Output
        do {
            output = try await handler(HTTP1Response(status: head.status, headers: head.headers, body: body))
        } catch {
            self.release(connection, reusable: false)
            throw HandlerFailed(underlying: error)
        }
        // A server may answer before reading the whole request (nginx's `return` does): keep
        // sending it for a moment so the server can read past it and the connection stays usable.
        if streamingRequest && !exchange.isRequestSent {
            await exchange.waitForRequestEnd(timeout: .seconds(1))
        }
        // Drain what the handler did not read (small remainders only), so the connection can be reused.
        var reusable = head.isKeepAlive && !exchange.isUnusable && exchange.isRequestSent
        if !exchange.isBodyComplete {
            var drained = 0
            do {
                drainLoop: while let part = try await connection.inbound.next() {
                    switch part {
                    case .body(let chunk):
                        drained += chunk.readableBytes
                        if drained > 64 * 1024 {
                            reusable = false
                            break drainLoop
                        }
                    case .end:
                        exchange.bodyCompleted()
                        break drainLoop
                    case .head:
                        reusable = false
                        break drainLoop
                    }
                }
            } catch {
                reusable = false
            }
            if !exchange.isBodyComplete { reusable = false }
        }
        self.release(connection, reusable: reusable)
        return output
    }
}

/// What has happened so far in one exchange (shared between the writer task and the reader).
final class ExchangeProgress: Sendable {
    private struct Flags {
        var requestSent = false
        var responseStarted = false
        var bodyComplete = false
        var unusable = false
        var requestBodyError: (any Error)?
    }

    private let flags = Mutex(Flags())
    private let requestEnd = Mutex<(ended: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func requestSent() {
        self.flags.withLock { $0.requestSent = true }
        self.endRequest()
    }

    /// The request writer finished (sent everything or failed).
    func endRequest() {
        let waiters = self.requestEnd.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.ended = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Waits until the request writer finished, at most `timeout`.
    func waitForRequestEnd(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let ended = self.requestEnd.withLock { state -> Bool in
                        if !state.ended { state.waiters.append(continuation) }
                        return state.ended
                    }
                    if ended { continuation.resume() }
                }
            }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
            // Release a waiter left behind by the timeout.
            if !self.requestEnd.withLock({ $0.ended }) { self.endRequest() }
        }
    }
    func responseStarted() { self.flags.withLock { $0.responseStarted = true } }
    func bodyCompleted() { self.flags.withLock { $0.bodyComplete = true } }
    func markUnusable() { self.flags.withLock { $0.unusable = true } }
    func requestBodyFailed(_ error: any Error) {
        self.flags.withLock { flags in
            flags.unusable = true
            if flags.requestBodyError == nil { flags.requestBodyError = error }
        }
        self.endRequest()
    }
    var requestBodyError: (any Error)? { self.flags.withLock { $0.requestBodyError } }
    var isRequestSent: Bool { self.flags.withLock { $0.requestSent } }
    var receivedResponse: Bool { self.flags.withLock { $0.responseStarted } }
    var isBodyComplete: Bool { self.flags.withLock { $0.bodyComplete } }
    var isUnusable: Bool { self.flags.withLock { $0.unusable } }
}

/// The response body, read straight from the connection.
public struct HTTP1ResponseBody: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    let connection: PooledConnection
    let exchange: ExchangeProgress

    public struct AsyncIterator: AsyncIteratorProtocol {
        let connection: PooledConnection
        let exchange: ExchangeProgress

        public mutating func next() async throws -> ByteBuffer? {
            if self.exchange.isBodyComplete { return nil }
            guard let part = try await self.connection.inbound.next() else {
                throw HTTP1ClientError.connectionClosed
            }
            switch part {
            case .body(let chunk): return chunk
            case .end:
                self.exchange.bodyCompleted()
                return nil
            case .head: throw HTTP1ClientError.unexpectedResponsePart
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(connection: self.connection, exchange: self.exchange)
    }
}

import MechaAPI
import MechaCore
import MechaResiliency
import NIOCore
import NIOHTTP1
import Synchronization

/// The invocation fast path, a channel handler in front of the general (async) HTTP server.
///
/// A plain invocation — small body of known length, a target the router can name without waiting —
/// is proxied here, on the connection's event loop: the request is read, sent on a pooled upstream
/// connection of the same loop, and the answer's parts are written back as they arrive. No task,
/// no async bridging, no locks. Everything else passes through untouched to the general path,
/// which handles every case (streaming, errors, failover, the other APIs).
///
/// Order on the connection is kept: a request is only taken while the general path has nothing in
/// flight, and requests pipelined behind a fast one wait (reading pauses) until it has answered.
/// When the upstream fails before any byte of the answer, the request is handed to the general
/// path as if it had gone there first (it reports the error or fails over to another instance);
/// a fresh connection that failed after the request went out is answered with daprd's error
/// instead, so a request the app may have seen is not sent twice.
final class FastInvokeHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        /// The current request belongs to the general path (until its `.end` arrives).
        case passing
        /// Reading a fast request's body.
        case collecting(Exchange)
        /// The fast request went upstream; waiting for (or relaying) the answer.
        case forwarding(Exchange)
    }

    private final class Exchange {
        var plan: FastInvokePlan
        let requestHead: HTTPRequestHead
        var body: ByteBuffer?
        var connection: UpstreamConnection?
        var responseStarted = false
        var responseKeepAlive = true
        /// A misdirected answer from another sidecar: its parts are dropped, the call replayed.
        var discarding = false
        /// The hop's outcome went to the mesh.
        var reported = false
        // Resiliency (`plan.governance`):
        /// Attempts made before the current one.
        var attempt = 0
        /// The breaker's admission of the current attempt.
        var ticket: CircuitBreaker.Ticket?
        /// When the current attempt times out (nil: no timeout, or the answer has arrived).
        var deadline: NIODeadline?
        /// The answer is being dropped and the call retried after this delay.
        var retryAfter: Duration?
        /// The timeout's activation was reported (daprd counts it once per call).
        var timeoutReported = false
        /// When the current attempt went to the app (with `plan.appCalls`), until its outcome is told.
        var sentAt: NIODeadline?
        var sentBytes = 0

        /// Tells the app call's observer how the current attempt went, once.
        func appCallEnded(status: Int, receivedBytes: Int = 0) {
            guard let sentAt = self.sentAt, let observer = self.plan.appCalls else { return }
            self.sentAt = nil
            let elapsed = NIODeadline.now() - sentAt
            observer.appCalled(
                AppCall(
                    method: self.plan.head.method.rawValue, uri: self.plan.head.uri, status: status,
                    elapsed: .nanoseconds(elapsed.nanoseconds), sentBytes: self.sentBytes, receivedBytes: receivedBytes))
        }

        /// Tells the breaker how the current attempt went, once.
        func settle(success: Bool) {
            guard let ticket = self.ticket else { return }
            self.ticket = nil
            self.plan.governance?.breaker?.finish(ticket, success: success)
        }

        /// Tells the mesh how the hop went, once.
        func report(_ success: Bool) {
            guard !self.reported else { return }
            self.reported = true
            self.plan.finish?(success)
        }

        init(plan: FastInvokePlan, requestHead: HTTPRequestHead) {
            self.plan = plan
            self.requestHead = requestHead
        }
    }

    /// Requests answered by the fast path in this process (for tests and diagnostics).
    static let answered = Atomic<Int>(0)

    private let router: any FastInvokeRouter
    private var state = State.idle
    /// General-path requests whose answer has not ended yet.
    private var generalInFlight = 0
    /// What arrived while a fast request was being answered (pipelining), in order: request parts,
    /// and the decoding error that may end them.
    private enum Arrival {
        case part(HTTPServerRequestPart)
        case error(any Error)
    }

    private var pending = CircularBuffer<Arrival>()
    private var readHeld = false
    private var context: ChannelHandlerContext?
    private var pool: UpstreamPool?
    private var upstreamPaused = false
    /// Something went to the general path since the last `channelReadComplete` passed on.
    private var forwardedSinceReadComplete = false
    /// The server is shutting down: no new fast requests; the quiesce event waits for the current one.
    private var quiescing = false
    private var quiesceDeferred = false
    /// The connection's Resiliency timeout timer (see `armTimeoutTimer`).
    private var timeoutTimer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?

    init(router: any FastInvokeRouter) {
        self.router = router
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.pool = UpstreamPool.forLoop(context.eventLoop)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timeoutTimer?.cancel()
        self.timeoutTimer = nil
        self.abandonExchange()
        self.context = nil
    }

    // MARK: Inbound (requests)

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        if case .forwarding = self.state {
            self.pending.append(.part(part))
            return
        }
        if !self.pending.isEmpty {
            self.pending.append(.part(part))
            return
        }
        self.process(part, context: context)
    }

    /// A decoding error (bytes that are not HTTP) after a request the fast path is answering: that
    /// answer goes out first, then the general path reports the error (400, and the connection
    /// closes), as it does for its own pipelined requests.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch self.state {
        case .forwarding:
            self.pending.append(.error(error))
            return
        case .collecting:
            // The fast request itself is cut short: it is never sent.
            self.state = .idle
        case .idle, .passing:
            if !self.pending.isEmpty {
                self.pending.append(.error(error))
                return
            }
        }
        context.fireErrorCaught(error)
    }

    private func process(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch (self.state, part) {
        case (.idle, .head(let head)):
            if self.generalInFlight == 0, !self.quiescing, let plan = self.router.plan(for: head) {
                self.state = .collecting(Exchange(plan: plan, requestHead: head))
            } else {
                self.passToGeneral(part, context: context, startsRequest: true)
            }
        case (.collecting(let exchange), .body(var chunk)):
            if exchange.body == nil {
                exchange.body = chunk
            } else {
                exchange.body!.writeBuffer(&chunk)
            }
        case (.collecting(let exchange), .end):
            self.state = .forwarding(exchange)
            self.send(exchange, context: context)
        case (.passing, .end):
            self.state = .idle
            self.forward(part, context: context)
        default:
            // The general path's request parts, or a sequence the decoder would not produce: the
            // general path reports it.
            if case .head = part { self.generalInFlight += 1 }
            self.forward(part, context: context)
        }
    }

    private func forward(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        self.forwardedSinceReadComplete = true
        context.fireChannelRead(self.wrapInboundOut(part))
    }

    private func passToGeneral(_ part: HTTPServerRequestPart, context: ChannelHandlerContext, startsRequest: Bool) {
        if startsRequest {
            self.generalInFlight += 1
            self.state = .passing
        }
        self.forward(part, context: context)
    }

    /// Only the general path needs the end of a read (its async channel delivers then); a read that
    /// carried only fast requests stops here.
    func channelReadComplete(context: ChannelHandlerContext) {
        guard self.forwardedSinceReadComplete else { return }
        self.forwardedSinceReadComplete = false
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, self.upstreamPaused, case .forwarding(let exchange) = self.state, let connection = exchange.connection {
            self.upstreamPaused = false
            connection.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
            connection.channel.read()
        }
        context.fireChannelWritabilityChanged()
    }

    /// Graceful shutdown: the connection handler behind us closes idle connections, and it cannot
    /// see a fast request in progress, so the event waits until that request is answered.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            self.quiescing = true
            switch self.state {
            case .collecting, .forwarding:
                self.quiesceDeferred = true
                return
            case .idle, .passing:
                break
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.abandonExchange()
        context.fireChannelInactive()
    }

    /// The caller went away: an upstream connection mid-exchange cannot be reused.
    private func abandonExchange() {
        switch self.state {
        case .forwarding(let exchange), .collecting(let exchange):
            exchange.report(true)
            exchange.deadline = nil
            exchange.settle(success: true)
            if let connection = exchange.connection {
                connection.handler.delegate = nil
                connection.channel.close(promise: nil)
                exchange.connection = nil
            }
            self.state = .idle
        case .idle, .passing:
            break
        }
    }

    // MARK: Outbound (the general path's answers)

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = self.unwrapOutboundIn(data) {
            self.generalInFlight -= 1
        }
        context.write(data, promise: promise)
    }

    func read(context: ChannelHandlerContext) {
        // Reading goes on while a fast request is answered (holding it would cost two epoll
        // changes per request); only once a pipelined request waits does reading pause.
        if case .forwarding = self.state, !self.pending.isEmpty {
            self.readHeld = true
            return
        }
        context.read()
    }

    // MARK: Upstream

    private func send(_ exchange: Exchange, context: ChannelHandlerContext) {
        guard let pool = self.pool else { return }
        if let governance = exchange.plan.governance {
            if let breaker = governance.breaker {
                do {
                    exchange.ticket = try breaker.admit()
                } catch {
                    exchange.report(true)
                    self.answerGoverned(exchange, error: error, context: context)
                    return
                }
            }
            if let timeout = governance.policy.timeout {
                let deadline = NIODeadline.now() + TimeAmount(timeout)
                exchange.deadline = deadline
                self.armTimeoutTimer(at: deadline, context: context)
            }
        }
        let key = UpstreamPool.Key(host: exchange.plan.host, port: exchange.plan.port, secure: exchange.plan.secure, peer: exchange.plan.peer)
        if let connection = pool.takeIdle(key) {
            self.start(exchange, on: connection)
            return
        }
        pool.connect(key, tls: exchange.plan.tls).assumeIsolated().whenComplete { result in
            guard case .forwarding(let current) = self.state, current === exchange, let context = self.context else {
                if case .success(let connection) = result { pool.release(connection) }
                return
            }
            switch result {
            case .success(let connection):
                self.start(exchange, on: connection)
            case .failure(let error):
                exchange.report(false)
                if exchange.plan.governance != nil {
                    self.attemptFailed(exchange, error: error, context: context)
                    return
                }
                // Nothing was sent: the general path connects (and reports) on its own.
                self.replayToGeneral(exchange, context: context)
            }
        }
    }

    /// Sends the request on `connection`: head, body and end leave in one write.
    private func start(_ exchange: Exchange, on connection: UpstreamConnection) {
        exchange.connection = connection
        connection.handler.begin(self)
        var head = exchange.plan.head
        let length = exchange.body?.readableBytes ?? 0
        if length > 0 || head.method == .POST || head.method == .PUT || head.method == .PATCH {
            head.headers.add(name: "content-length", value: String(length))
        }
        if exchange.plan.appCalls != nil {
            exchange.sentAt = .now()
            exchange.sentBytes = length
        }
        connection.channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body = exchange.body, body.readableBytes > 0 {
            connection.channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil)
        }
        connection.channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }

    /// Hands a fast request to the general path as if it had gone there first.
    private func replayToGeneral(_ exchange: Exchange, context: ChannelHandlerContext) {
        // The general path picks (and reports) its own instance.
        exchange.report(true)
        self.state = .passing
        self.generalInFlight += 1
        context.fireChannelRead(self.wrapInboundOut(.head(exchange.requestHead)))
        if let body = exchange.body {
            context.fireChannelRead(self.wrapInboundOut(.body(body)))
        }
        self.state = .idle
        context.fireChannelRead(self.wrapInboundOut(.end(nil)))
        self.forwardedSinceReadComplete = false
        context.fireChannelReadComplete()
        self.resume(context: context)
    }

    /// The fast request is done: parts that waited behind it are processed, reading resumes.
    private func resume(context: ChannelHandlerContext) {
        if !self.pending.isEmpty {
            while !self.pending.isEmpty {
                if case .forwarding = self.state { break }
                switch self.pending.removeFirst() {
                case .part(let part):
                    self.process(part, context: context)
                case .error(let error):
                    if self.forwardedSinceReadComplete {
                        self.forwardedSinceReadComplete = false
                        context.fireChannelReadComplete()
                    }
                    self.pending.removeAll()
                    context.fireErrorCaught(error)
                }
            }
            // The general path takes what it was given at the end of a read.
            if self.forwardedSinceReadComplete {
                self.forwardedSinceReadComplete = false
                context.fireChannelReadComplete()
            }
        }
        if case .forwarding = self.state { return }
        if self.quiesceDeferred {
            self.quiesceDeferred = false
            context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
        if self.readHeld {
            self.readHeld = false
            context.read()
        }
    }

    private func finishExchange(_ exchange: Exchange, reusable: Bool) {
        self.releaseConnection(exchange, reusable: reusable)
        self.state = .idle
    }

    /// The answer's head for the caller: as `DaprHTTPServer.stream` rewrites the app's.
    static func responseHead(_ upstream: HTTPResponseHead, keepsInternalHeaders: Bool) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.reserveCapacity(upstream.headers.count + 1)
        var contentType: String?
        var contentLength: String?
        for (name, value) in upstream.headers {
            switch name.utf8.count {
            case 12 where HeaderNames.equals(name, "content-type"):
                if contentType == nil { contentType = value }
                continue
            case 14 where HeaderNames.equals(name, "content-length"):
                if contentLength == nil { contentLength = value }
                continue
            case 4 where HeaderNames.equals(name, "date"), 6 where HeaderNames.equals(name, "server"):
                continue
            default:
                if HeaderNames.isHopByHop(name) { continue }
                if HeaderNames.isInternal(name) && (!keepsInternalHeaders || HeaderNames.equals(name, "x-mecha-sidecar-error")) { continue }
            }
            headers.add(name: name, value: value)
        }
        let status = Int(upstream.status.code)
        // Named as the general path (HTTP types) writes them.
        if let contentType {
            headers.add(name: "Content-Type", value: contentType)
        } else if status < 200 || status > 399 {
            headers.add(name: "Content-Type", value: "application/json")
        }
        if let contentLength { headers.add(name: "Content-Length", value: contentLength) }
        return HTTPResponseHead(version: .http1_1, status: upstream.status, headers: headers)
    }

    // MARK: Resiliency on the event loop

    /// Drops the current upstream connection (reusable or not) without ending the exchange.
    private func releaseConnection(_ exchange: Exchange, reusable: Bool) {
        guard let connection = exchange.connection else { return }
        exchange.connection = nil
        if self.upstreamPaused {
            self.upstreamPaused = false
            connection.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
        }
        if reusable {
            self.pool?.release(connection)
        } else {
            connection.handler.delegate = nil
            connection.channel.close(promise: nil)
        }
    }

    /// One timer per connection serves every governed exchange on it (they run one at a time): it
    /// is scheduled only when none is pending, and when it fires it either times the current
    /// attempt out or re-arms for that attempt's deadline. Back-to-back calls schedule nothing.
    private func armTimeoutTimer(at deadline: NIODeadline, context: ChannelHandlerContext) {
        if let pending = self.timerDeadline, pending <= deadline { return }
        self.timeoutTimer?.cancel()
        self.timerDeadline = deadline
        self.timeoutTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.timeoutTimerFired()
        }
    }

    private func timeoutTimerFired() {
        self.timeoutTimer = nil
        self.timerDeadline = nil
        guard case .forwarding(let exchange) = self.state, let deadline = exchange.deadline, let context = self.context else { return }
        if NIODeadline.now() >= deadline {
            self.attemptTimedOut(exchange)
        } else {
            self.armTimeoutTimer(at: deadline, context: context)
        }
    }

    /// The current attempt's timeout passed before the answer: the attempt is abandoned.
    private func attemptTimedOut(_ exchange: Exchange) {
        guard case .forwarding(let current) = self.state, current === exchange, let context = self.context, !exchange.responseStarted else { return }
        exchange.deadline = nil
        exchange.report(false)
        exchange.appCallEnded(status: 500)
        if !exchange.timeoutReported {
            exchange.timeoutReported = true
            exchange.plan.governance?.policy.timedOut()
        }
        self.releaseConnection(exchange, reusable: false)
        self.attemptFailed(exchange, error: ResiliencyError(.timeout, policyName: exchange.plan.governance?.policy.timeoutName ?? "timeout"), context: context)
    }

    /// An attempt failed before any answer (connect error, closed connection, timeout): retried as
    /// the policy says, else answered with daprd's error.
    private func attemptFailed(_ exchange: Exchange, error: any Error, context: ChannelHandlerContext) {
        exchange.deadline = nil
        exchange.settle(success: false)
        if let governance = exchange.plan.governance, let delay = governance.policy.retryDelay(after: error, retry: exchange.attempt + 1) {
            self.retry(exchange, after: delay, context: context)
            return
        }
        self.answerGoverned(exchange, error: error, context: context)
    }

    /// The next attempt of a governed exchange, after `delay`, on another instance when the
    /// target is another sidecar.
    private func retry(_ exchange: Exchange, after delay: Duration, context: ChannelHandlerContext) {
        exchange.attempt += 1
        exchange.responseStarted = false
        exchange.responseKeepAlive = true
        if let rehop = exchange.plan.governance?.rehop {
            guard let hop = rehop() else {
                self.answerGoverned(exchange, error: ResiliencyError(.circuitOpen, policyName: "no instance"), context: context, detail: "no instance of the app is available")
                return
            }
            guard !hop.tls || exchange.plan.tls != nil else {
                hop.finish(true)
                self.answerGoverned(exchange, error: ResiliencyError(.circuitOpen, policyName: "no instance"), context: context, detail: "no instance of the app is available")
                return
            }
            exchange.plan.host = hop.host
            exchange.plan.port = hop.port
            exchange.plan.secure = hop.tls
            exchange.plan.finish = hop.finish
            exchange.plan.head.headers.replaceOrAdd(name: "host", value: FastInvoke.authority(host: hop.host, port: hop.port))
            exchange.reported = false
        }
        let resend = {
            guard case .forwarding(let current) = self.state, current === exchange, let context = self.context else {
                exchange.report(true)
                return
            }
            self.send(exchange, context: context)
        }
        if delay <= .zero {
            resend()
        } else {
            context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(delay)) { resend() }
        }
    }

    /// Answers a governed exchange that gave up: daprd's ERR_DIRECT_INVOKE (500) with the cause
    /// (`context deadline exceeded`, `circuit breaker is open`, the connection error).
    private func answerGoverned(_ exchange: Exchange, error: any Error, context: ChannelHandlerContext, detail: String? = nil) {
        exchange.deadline = nil
        exchange.settle(success: false)
        self.finishExchange(exchange, reusable: false)
        self.writeError(.directInvoke(appID: exchange.plan.targetForErrors, detail ?? "\(error)"), context: context)
        Self.answered.add(1, ordering: .relaxed)
        self.resume(context: context)
    }

    /// daprd's error answer, written by the fast path itself.
    private func writeError(_ error: APIError, context: ChannelHandlerContext) {
        let body = ByteBuffer(bytes: error.jsonBody.serialized)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        if self.router.marksErrorCodes { headers.add(name: HTTPReply.errorCodeHeader, value: error.errorCode) }
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: error.httpStatus), headers: headers))), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
    }
}

extension FastInvokeHandler: UpstreamDelegate {
    private var currentExchange: Exchange? {
        if case .forwarding(let exchange) = self.state { return exchange }
        return nil
    }

    func upstreamHead(_ head: HTTPResponseHead) {
        guard let exchange = self.currentExchange, let context = self.context else { return }
        if exchange.plan.isSidecarHop, head.status.code == 421, head.headers.contains(name: InternalInvokeServer.sidecarErrorHeader) {
            exchange.report(false)
            exchange.settle(success: true)
            exchange.deadline = nil
            exchange.discarding = true
            return
        }
        exchange.report(head.status.code < 500)
        exchange.appCallEnded(status: Int(head.status.code), receivedBytes: head.headers.first(name: "content-length").flatMap(Int.init) ?? 0)
        if let governance = exchange.plan.governance {
            // daprd's timeout ends when the answer arrives; answers outside 200-399 are failures.
            exchange.deadline = nil
            let status = Int(head.status.code)
            let failed = status < 200 || status > 399
            exchange.settle(success: !failed)
            if failed, let delay = governance.policy.retryDelay(after: FastStatusFailure(httpStatusCode: status), retry: exchange.attempt + 1) {
                exchange.retryAfter = delay
                exchange.discarding = true
                return
            }
        }
        exchange.responseStarted = true
        exchange.responseKeepAlive = head.isKeepAlive
        context.write(self.wrapOutboundOut(.head(Self.responseHead(head, keepsInternalHeaders: exchange.plan.keepsInternalHeaders))), promise: nil)
    }

    func upstreamBody(_ body: ByteBuffer) {
        guard let exchange = self.currentExchange, !exchange.discarding, let context = self.context else { return }
        context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        if !context.channel.isWritable, !self.upstreamPaused, let connection = exchange.connection {
            // A slow caller: stop reading the answer until the caller's socket drains.
            // Pause first: the flush may drain the socket at once and report writability, which
            // resumes reading.
            self.upstreamPaused = true
            connection.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
            context.flush()
        }
    }

    func upstreamEnd() {
        guard let exchange = self.currentExchange, let context = self.context else { return }
        if let delay = exchange.retryAfter {
            // A retriable answer was dropped: the policy's next attempt.
            exchange.retryAfter = nil
            exchange.discarding = false
            self.releaseConnection(exchange, reusable: exchange.responseKeepAlive)
            self.retry(exchange, after: delay, context: context)
            return
        }
        if exchange.discarding {
            // Another app's sidecar answered: the general path fails over to another instance.
            self.finishExchange(exchange, reusable: exchange.responseKeepAlive)
            self.replayToGeneral(exchange, context: context)
            return
        }
        self.finishExchange(exchange, reusable: exchange.responseKeepAlive)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        Self.answered.add(1, ordering: .relaxed)
        self.resume(context: context)
    }

    func upstreamReadComplete() {
        guard let exchange = self.currentExchange, exchange.responseStarted else { return }
        self.context?.flush()
    }

    func upstreamFailed(_ error: any Error, responseStarted: Bool) {
        guard let exchange = self.currentExchange, let context = self.context else { return }
        let reused = (exchange.connection?.uses ?? 0) > 0
        // A kept-alive connection the server had closed is replayed: not an app call that failed.
        if reused && !responseStarted { exchange.sentAt = nil } else { exchange.appCallEnded(status: 500) }
        // A reused connection the server had closed says nothing about the instance.
        if !reused || responseStarted { exchange.report(responseStarted) }
        if exchange.plan.governance != nil, !responseStarted, !reused, exchange.retryAfter == nil {
            self.releaseConnection(exchange, reusable: false)
            self.attemptFailed(exchange, error: error, context: context)
            return
        }
        exchange.deadline = nil
        exchange.settle(success: responseStarted)
        self.finishExchange(exchange, reusable: false)
        if responseStarted && !exchange.discarding {
            // Part of the answer went out: the caller sees the connection end, as with any proxy.
            context.close(promise: nil)
            return
        }
        if reused || exchange.plan.isSidecarHop || exchange.discarding {
            // A kept-alive connection the server had closed (the request never reached it), or
            // another sidecar (the general path fails over): the general path takes the call.
            self.replayToGeneral(exchange, context: context)
            return
        }
        let plan = exchange.plan
        let url = "http://\(plan.host):\(plan.port)\(plan.head.uri)"
        self.writeError(
            .directInvoke(appID: plan.targetForErrors, "error invoking app channel: \(plan.head.method.rawValue) \"\(url)\": \(error)"),
            context: context
        )
        self.resume(context: context)
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

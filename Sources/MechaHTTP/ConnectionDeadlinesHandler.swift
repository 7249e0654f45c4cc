import MechaCore
import NIOCore
import NIOHTTP1

/// The NIO shell of `ConnectionDeadlines`: one per connection, fed by two handlers (raw bytes in
/// front of the HTTP decoder, request and response parts behind it), closing the connection when
/// the machine says so. Everything runs on the connection's event loop.
final class ConnectionDeadlinesDriver {
    private var machine: ConnectionDeadlines
    private weak var channel: (any Channel)?
    private var scheduled: Scheduled<Void>?
    private var scheduledAt: NIODeadline?
    private let origin = NIODeadline.now()

    init(timeouts: ConnectionTimeouts) {
        self.machine = ConnectionDeadlines(timeouts: timeouts, now: .zero)
    }

    private var now: Duration {
        .nanoseconds((NIODeadline.now() - self.origin).nanoseconds)
    }

    /// The handlers to add: the first goes in front of the HTTP decoder, the second behind it.
    static func handlers(timeouts: ConnectionTimeouts) -> (bytes: ConnectionBytesObserver, parts: ConnectionPartsObserver) {
        let driver = ConnectionDeadlinesDriver(timeouts: timeouts)
        return (ConnectionBytesObserver(driver), ConnectionPartsObserver(driver))
    }

    func attach(_ channel: any Channel) {
        self.channel = channel
        self.machine = ConnectionDeadlines(timeouts: self.machine.timeouts, now: self.now)
        self.arm()
    }

    func detach() {
        self.scheduled?.cancel()
        self.scheduled = nil
        self.scheduledAt = nil
        self.channel = nil
    }

    func readRequested() { self.machine.readRequested() }
    func bytesRead() {
        self.machine.bytesRead(now: self.now)
        if self.scheduled == nil { self.arm() }
    }
    func headReceived() { self.machine.headReceived(now: self.now); if self.scheduled == nil { self.arm() } }
    func requestEnded() { self.machine.requestEnded(now: self.now); if self.scheduled == nil { self.arm() } }
    func responseEnded() { self.machine.responseEnded(now: self.now); if self.scheduled == nil { self.arm() } }
    func writabilityChanged(_ writable: Bool) {
        self.machine.writabilityChanged(writable: writable, now: self.now)
        if self.scheduled == nil { self.arm() }
    }

    /// Checks now and schedules the next check at the machine's next deadline.
    private func arm() {
        guard let channel = self.channel else { return }
        let (verdict, next) = self.machine.check(now: self.now)
        switch verdict {
        case .close:
            self.detach()
            channel.close(promise: nil)
        case .keep:
            guard let next else { return }
            let delay = next - self.now
            let at = NIODeadline.now() + .nanoseconds(max(delay, .milliseconds(1)).clampedNanoseconds)
            self.scheduledAt = at
            self.scheduled = channel.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: at) { [self] in
                self.scheduled = nil
                self.scheduledAt = nil
                self.arm()
            }
        }
    }
}

/// In front of the HTTP decoder: sees bytes arrive and reads being requested.
final class ConnectionBytesObserver: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = Any
    typealias OutboundOut = Any

    private let driver: ConnectionDeadlinesDriver

    fileprivate init(_ driver: ConnectionDeadlinesDriver) {
        self.driver = driver
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { self.driver.attach(context.channel) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.driver.attach(context.channel)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.driver.detach()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.driver.detach()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.driver.bytesRead()
        context.fireChannelRead(data)
    }

    func read(context: ChannelHandlerContext) {
        self.driver.readRequested()
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.driver.writabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }
}

/// Behind the HTTP decoder (in front of the fast path, so it sees every request): request heads
/// and ends in, response ends out — and the back-pressure gate of the connection.
///
/// A request is handed on only once the answer to the one before has been written in full and the
/// channel is writable; until then the next request's parts wait here and the socket is not read.
/// Pipelined requests whose answers the peer leaves unread therefore cannot make the sidecar build
/// answer after answer: a connection holds at most the answer being written (issue 9, defect 8 —
/// checking writability when the next head arrived was not enough, as it arrives before the answer
/// it follows is written).
final class ConnectionPartsObserver: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum Held {
        case part(HTTPServerRequestPart)
        case error(any Error)
    }

    private let driver: ConnectionDeadlinesDriver
    private var held = CircularBuffer<Held>()
    private var readHeld = false
    /// Requests handed on whose answer has not ended yet.
    private var unanswered = 0
    private var releaseScheduled = false

    fileprivate init(_ driver: ConnectionDeadlinesDriver) {
        self.driver = driver
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        if !self.held.isEmpty || (Self.isHead(part) && !self.mayStartRequest(context: context)) {
            self.held.append(.part(part))
            return
        }
        self.pass(part, context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !self.held.isEmpty {
            self.held.append(.error(error))
            return
        }
        context.fireErrorCaught(error)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // What is held is delivered (with its own read-complete) once the channel drains.
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if !self.held.isEmpty {
            self.readHeld = true
            return
        }
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        context.fireChannelWritabilityChanged()
        self.release(context: context)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .end = self.unwrapOutboundIn(data) else {
            context.write(data, promise: promise)
            return
        }
        self.driver.responseEnded()
        self.unanswered = max(0, self.unanswered - 1)
        context.write(data, promise: promise)
        // The next request goes on from a fresh event-loop turn, not from inside the write of the
        // answer before it (the handlers behind must not be re-entered mid-write).
        if !self.held.isEmpty, !self.releaseScheduled {
            self.releaseScheduled = true
            let loop = context.eventLoop.assumeIsolated()
            loop.execute {
                self.releaseScheduled = false
                self.release(context: context)
            }
        }
    }

    private func mayStartRequest(context: ChannelHandlerContext) -> Bool {
        self.unanswered == 0 && context.channel.isWritable
    }

    private static func isHead(_ part: HTTPServerRequestPart) -> Bool {
        if case .head = part { return true }
        return false
    }

    private func pass(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head:
            self.unanswered += 1
            self.driver.headReceived()
        case .end: self.driver.requestEnded()
        case .body: break
        }
        context.fireChannelRead(self.wrapInboundOut(part))
    }

    /// Hands on what was held while the channel stays writable, a request at a time.
    private func release(context: ChannelHandlerContext) {
        guard !self.held.isEmpty else { return }
        var released = false
        while let first = self.held.first {
            if case .part(let part) = first, Self.isHead(part), !self.mayStartRequest(context: context) { break }
            self.held.removeFirst()
            released = true
            switch first {
            case .part(let part):
                self.pass(part, context: context)
            case .error(let error):
                context.fireChannelReadComplete()
                context.fireErrorCaught(error)
                self.held.removeAll()
                return
            }
        }
        if released { context.fireChannelReadComplete() }
        if self.held.isEmpty, self.readHeld {
            self.readHeld = false
            context.read()
        }
    }
}

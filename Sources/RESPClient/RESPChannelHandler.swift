import Logging
import NIOCore
import RESPWire

/// What `RESPConnection` writes into the channel: one command or a batch, and the promise its reply completes.
struct RESPRequest: Sendable {
    enum Payload: Sendable {
        case command(RESPCommand)
        case batch([RESPCommand])
    }

    var payload: Payload
    var promise: EventLoopPromise<RESPValue>
    var timeout: Duration?
}

/// The IO shell around `RESPConnectionStateMachine`: feeds it channel events and performs its
/// actions. Everything here runs on the channel's event loop.
final class RESPChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = RESPRequest
    typealias OutboundOut = ByteBuffer
    typealias Machine = RESPConnectionStateMachine<EventLoopPromise<RESPValue>>

    private var machine: Machine
    private let handshakePromise: EventLoopPromise<RESPProtocolVersion>
    private let handshakeTimeout: Duration
    private let pushes: AsyncThrowingStream<[RESPValue], any Error>.Continuation
    private let logger: Logger
    private var started = false
    private var closedByClient = false
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?

    init(
        handshake: RESPHandshake,
        handshakeTimeout: Duration,
        handshakePromise: EventLoopPromise<RESPProtocolVersion>,
        pushes: AsyncThrowingStream<[RESPValue], any Error>.Continuation,
        logger: Logger
    ) {
        self.machine = Machine(handshake: handshake)
        self.handshakeTimeout = handshakeTimeout
        self.handshakePromise = handshakePromise
        self.pushes = pushes
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { self.start(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.perform(self.machine.channelClosed(), context, closeOnFailure: false)
        self.handshakePromise.fail(RESPError(.connectionClosed, "the connection closed"))
        self.pushes.finish()
    }

    func channelActive(context: ChannelHandlerContext) {
        self.start(context)
        context.fireChannelActive()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard !self.started else { return }
        self.started = true
        let deadline = NIODeadline.now() + TimeAmount(self.handshakeTimeout)
        self.perform(self.machine.connected(deadline: deadline), context)
        self.scheduleTimer(deadline, context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.perform(self.machine.valueReceived(self.unwrapInboundIn(data)), context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.timer = nil
        let wasReady = self.machine.isReady
        self.perform(self.machine.channelClosed(), context, closeOnFailure: false)
        if self.closedByClient || !wasReady {
            self.pushes.finish()
        } else {
            self.pushes.finish(throwing: RESPError(.connectionClosed, "the server closed the connection"))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let respError: RESPError
        if let error = error as? RESPError {
            respError = error
        } else if self.machine.isReady {
            respError = RESPError(.connectionClosed, "connection error: \(error)")
        } else {
            respError = RESPError(.connectionFailed, "connection error: \(error)")
        }
        self.logger.debug("redis connection error", metadata: ["error": "\(respError)"])
        self.perform(self.machine.errorCaught(respError), context)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = self.unwrapOutboundIn(data)
        let deadline = request.timeout.map { NIODeadline.now() + TimeAmount($0) }
        let action: Machine.Action
        switch request.payload {
        case .command(let command):
            action = self.machine.sendRequested(command, promise: request.promise, deadline: deadline)
        case .batch(let commands):
            action = self.machine.batchRequested(commands, promise: request.promise, deadline: deadline)
        }
        if case .write(let bytes) = action {
            context.write(self.wrapOutboundOut(bytes), promise: promise)
            if let deadline { self.scheduleTimer(deadline, context) }
        } else {
            promise?.succeed(())
            self.perform(action, context)
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all {
            self.closedByClient = true
            self.perform(self.machine.closeRequested(), context, closeOnFailure: false)
        }
        context.close(mode: mode, promise: promise)
    }

    // MARK: Actions

    private func perform(_ action: Machine.Action, _ context: ChannelHandlerContext, closeOnFailure: Bool = true) {
        switch action {
        case .none:
            break
        case .write(let bytes):
            context.writeAndFlush(self.wrapOutboundOut(bytes), promise: nil)
        case .handshakeSucceeded(let version):
            self.handshakePromise.succeed(version)
        case .failHandshakeAndClose(let error):
            if closeOnFailure { context.close(promise: nil) }
            self.handshakePromise.fail(error)
        case .succeed(let promise, let value):
            promise.succeed(value)
        case .fail(let promise, let error):
            promise.fail(error)
        case .deliverPush(let values, let completing):
            self.pushes.yield(values)
            completing?.succeed(.push(values))
        case .failAllAndClose(let promises, let error):
            if error.code != .connectionClosed || !self.closedByClient {
                self.logger.debug("closing redis connection", metadata: ["reason": "\(error)"])
            }
            if self.closedByClient { self.pushes.finish() } else { self.pushes.finish(throwing: error) }
            // Closed before the callers hear of it, so they see an inactive connection.
            if closeOnFailure { context.close(promise: nil) }
            for promise in promises { promise.fail(error) }
        case .failAll(let promises, let error):
            for promise in promises { promise.fail(error) }
        }
    }

    // MARK: Deadlines

    /// Keeps one timer, at the earliest deadline known; when it fires the machine decides whether
    /// anything is late, and the next deadline is looked up then.
    private func scheduleTimer(_ deadline: NIODeadline, _ context: ChannelHandlerContext) {
        if let current = self.timerDeadline, current <= deadline { return }
        self.timer?.cancel()
        self.timerDeadline = deadline
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.timerFired(context)
        }
    }

    private func timerFired(_ context: ChannelHandlerContext) {
        self.timer = nil
        self.timerDeadline = nil
        self.perform(self.machine.deadlinePassed(now: .now()), context)
        if let next = self.machine.nextDeadline { self.scheduleTimer(next, context) }
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let clamped = min(seconds, Int64.max / 1_000_000_000 - 1)
        self = .nanoseconds(clamped * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

import NIOCore
import NIOSSL
import NIOTLS

/// Sits behind `NIOSSLClientHandler` until the handshake ends, so a connection is handed out only
/// once it is usable and a refused certificate fails the lease (not the first request).
///
/// `futureResult` succeeds on `handshakeCompleted`; it fails with the first error, when the channel
/// closes first, or after `timeout` (then the channel is closed). The handler removes itself once
/// the handshake succeeded.
final class TLSHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    struct TimedOut: Error, CustomStringConvertible {
        var timeout: TimeAmount
        var description: String { "timed out after \(Duration.nanoseconds(self.timeout.nanoseconds))" }
    }

    private let promise: EventLoopPromise<Void>
    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?
    private var completed = false

    var futureResult: EventLoopFuture<Void> { self.promise.futureResult }

    init(promise: EventLoopPromise<Void>, timeout: TimeAmount) {
        self.promise = promise
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { self.startTimer(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.complete(.failure(HTTP1ClientError.connectionClosed))
    }

    func channelActive(context: ChannelHandlerContext) {
        self.startTimer(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.complete(.failure(HTTP1ClientError.connectionClosed))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.complete(.failure(error))
        context.fireErrorCaught(error)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        context.fireUserInboundEventTriggered(event)
        if case .handshakeCompleted? = event as? TLSUserEvent {
            self.complete(.success(()))
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    private func startTimer(context: ChannelHandlerContext) {
        guard self.timer == nil, !self.completed else { return }
        let timeout = self.timeout
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            self.complete(.failure(TimedOut(timeout: timeout)))
            context.close(promise: nil)
        }
    }

    private func complete(_ result: Result<Void, any Error>) {
        guard !self.completed else { return }
        self.completed = true
        self.timer?.cancel()
        self.timer = nil
        self.promise.completeWith(result)
    }

    /// Why a handshake failed, in words (`certificate verify failed`, `wrong version number`, …).
    static func reason(for error: any Error, host: String) -> String {
        switch error {
        case NIOSSLError.handshakeFailed(.sslError(let stack)):
            let reasons = stack.map { Self.reason(of: $0) }
            return reasons.isEmpty ? "handshake failed" : reasons.joined(separator: "; ")
        case NIOSSLError.handshakeFailed(let underlying):
            return "\(underlying)"
        case NIOSSLError.uncleanShutdown, HTTP1ClientError.connectionClosed:
            return "the server closed the connection"
        case let error as NIOSSLExtraError where error == .failedToValidateHostname:
            return "certificate is not valid for \(host)"
        case let error as TimedOut:
            return error.description
        default:
            return "\(error)"
        }
    }

    /// BoringSSL's reason code (`…:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED at file:line`) as
    /// lower-case words.
    private static func reason(of error: BoringSSLInternalError) -> String {
        let text = error.description
        guard let marker = text.firstRange(of: "OPENSSL_internal:") else { return text }
        let code = text[marker.upperBound...].prefix { $0 != " " }
        return String(code.lowercased().map { $0 == "_" ? " " : $0 })
    }
}

import MechaAPI
import NIOCore
import NIOHTTP1

/// The HTTP surface's observation point: sits right after the HTTP/1 codec, so it sees every
/// request of the connection — the fast path's and the general path's alike — and reports each
/// finished exchange (method, path, status, bytes each way, time from the request head to the
/// answer's end) to the inbound chain's observers. On the event loop; no locks of its own.
final class ExchangeObserverHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private struct Pending {
        var start: NIODeadline
        var verb: String
        var uri: String
        var requestBytes = 0
        var caller: String?
        var userAgent: String?
        var traceParent: String?
    }

    private let report: @Sendable (InboundExchange) -> Void
    /// Requests read and not answered yet, oldest first (pipelining answers in order).
    private var pending = CircularBuffer<Pending>(initialCapacity: 2)
    private var status = 0
    private var responseBytes = 0

    private let callerHeader: String?
    private let details: Bool

    init(report: @escaping @Sendable (InboundExchange) -> Void, callerHeader: String? = nil, details: Bool = false) {
        self.report = report
        self.callerHeader = callerHeader
        self.details = details
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            var pending = Pending(start: .now(), verb: head.method.rawValue, uri: head.uri, caller: self.callerHeader.flatMap { head.headers.first(name: $0) })
            if self.details {
                pending.userAgent = head.headers.first(name: "user-agent")
                pending.traceParent = head.headers.first(name: "traceparent")
            }
            self.pending.append(pending)
        case .body(let buffer):
            if !self.pending.isEmpty { self.pending[self.pending.index(before: self.pending.endIndex)].requestBytes += buffer.readableBytes }
        case .end:
            break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.unwrapOutboundIn(data) {
        case .head(let head):
            // An interim answer (100 Continue) is not the exchange's status.
            if head.status.code >= 200 || head.status.code < 100 {
                self.status = Int(head.status.code)
                self.responseBytes = 0
            }
        case .body(.byteBuffer(let buffer)):
            self.responseBytes += buffer.readableBytes
        case .body(.fileRegion(let region)):
            self.responseBytes += region.readableBytes
        case .end:
            if let request = self.pending.popFirst() {
                let path = request.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
                self.report(
                    InboundExchange(
                        surface: .http, verb: request.verb, path: path, status: self.status,
                        elapsed: .nanoseconds((NIODeadline.now() - request.start).nanoseconds),
                        requestBytes: request.requestBytes, responseBytes: self.responseBytes, caller: request.caller,
                        userAgent: request.userAgent, traceParent: request.traceParent))
            }
            self.status = 0
            self.responseBytes = 0
        }
        context.write(data, promise: promise)
    }
}

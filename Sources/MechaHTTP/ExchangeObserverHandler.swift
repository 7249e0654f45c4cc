import MechaAPI
import MechaTelemetry
import NIOCore
import NIOHTTP1

/// How a listener traces its exchanges (`spec.tracing`).
struct ExchangeTracing: Sendable {
    enum Side: Sendable {
        /// The Dapr API: daprd's CLIENT span named by the path (`CallLocal/<app>/<method>` for an
        /// invocation).
        case api
        /// The sidecar-to-sidecar listener: the SERVER span `CallLocal/<this app>/<method>`.
        case callee(appID: String)
    }

    let tracer: SidecarTracer
    let side: Side
}

/// The HTTP surface's observation point: sits right after the HTTP/1 codec, so it sees every
/// request of the connection — the fast path's and the general path's alike. It reports each
/// finished exchange (method, path, status, bytes each way, time from the request head to the
/// answer's end) to the inbound chain's observers, and, with tracing, starts the exchange's span
/// at the request head — replacing its `traceparent` with the span's own, so everything the
/// request causes downstream (invocations, publishes, the app's own calls) is the span's child —
/// and ends it with the answer. On the event loop; no locks of its own.
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
        var invokeTarget: String?
        var span: TracedSpan?
    }

    private let report: (@Sendable (InboundExchange) -> Void)?
    private let tracing: ExchangeTracing?
    /// Requests read and not answered yet, oldest first (pipelining answers in order).
    private var pending = CircularBuffer<Pending>(initialCapacity: 2)
    private var status = 0
    private var responseBytes = 0
    /// The error code the current answer carried (`x-mecha-error-code`, removed here).
    private var errorCode: String?

    private let callerHeader: String?
    /// A header naming an invocation's target (`dapr-app-id` on the API listener).
    private let targetHeader: String?
    private let details: Bool

    init(
        report: (@Sendable (InboundExchange) -> Void)?, callerHeader: String? = nil, targetHeader: String? = nil, details: Bool = false,
        tracing: ExchangeTracing? = nil
    ) {
        self.report = report
        self.callerHeader = callerHeader
        self.targetHeader = targetHeader
        self.details = details
        self.tracing = tracing
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(var head):
            var pending = Pending(start: .now(), verb: head.method.rawValue, uri: head.uri, caller: self.callerHeader.flatMap { head.headers.first(name: $0) })
            if self.details || self.tracing != nil { pending.traceParent = head.headers.first(name: "traceparent") }
            if self.details { pending.userAgent = head.headers.first(name: "user-agent") }
            if let targetHeader = self.targetHeader, let target = head.headers.first(name: targetHeader), !target.isEmpty {
                pending.invokeTarget = target
            }
            if let tracing = self.tracing {
                let span = Self.startSpan(tracing, head: head, incoming: pending.traceParent)
                head.headers.replaceOrAdd(name: "traceparent", value: span.traceParent)
                pending.span = span
                self.pending.append(pending)
                context.fireChannelRead(self.wrapInboundOut(.head(head)))
                return
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
        case .head(var head):
            // An interim answer (100 Continue) is not the exchange's status.
            if head.status.code >= 200 || head.status.code < 100 {
                self.status = Int(head.status.code)
                self.responseBytes = 0
            }
            // An error answer may carry its Dapr error code for the observers: taken off here.
            if head.status.code >= 400, let code = head.headers.first(name: HTTPReply.errorCodeHeader) {
                head.headers.remove(name: HTTPReply.errorCodeHeader)
                self.errorCode = code
                context.write(self.wrapOutboundOut(.head(head)), promise: promise)
                return
            }
        case .body(.byteBuffer(let buffer)):
            self.responseBytes += buffer.readableBytes
        case .body(.fileRegion(let region)):
            self.responseBytes += region.readableBytes
        case .end:
            if let request = self.pending.popFirst() {
                let path = Self.path(request.uri)
                if let span = request.span {
                    span.end(httpStatus: self.status)
                }
                self.report?(
                    InboundExchange(
                        surface: .http, verb: request.verb, path: path, status: self.status,
                        elapsed: .nanoseconds((NIODeadline.now() - request.start).nanoseconds),
                        requestBytes: request.requestBytes, responseBytes: self.responseBytes, caller: request.caller,
                        userAgent: request.userAgent, traceParent: request.traceParent, invokeTarget: request.invokeTarget,
                        errorCode: self.errorCode))
            }
            self.status = 0
            self.responseBytes = 0
            self.errorCode = nil
        }
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // Requests the connection closed on: their spans end as failed.
        while let request = self.pending.popFirst() { request.span?.end(error: "connection closed before the answer ended") }
        context.fireChannelInactive()
    }

    /// The request target without its query.
    static func path(_ uri: String) -> Substring {
        guard let mark = uri.utf8.firstIndex(of: UInt8(ascii: "?")) else { return uri[...] }
        return uri[..<mark]
    }

    /// daprd's span for the request: its name, kind and attributes.
    static func startSpan(_ tracing: ExchangeTracing, head: HTTPRequestHead, incoming: String?) -> TracedSpan {
        let path = Self.path(head.uri)
        let traceState = head.headers.first(name: "tracestate")
        switch tracing.side {
        case .api:
            if let (app, method) = InvocationPath.split(path) {
                let span = tracing.tracer.start(name: "CallLocal/\(app)/\(method)", kind: .client, incoming: incoming, traceState: traceState)
                guard span.isRecording else { return span }
                span.set([
                    "rpc.service": "ServiceInvocation", "net.peer.name": String(app), "dapr.protocol": "http",
                    "dapr.api": "\(head.method.rawValue) \(path)", "http.request.method": head.method.rawValue, "url.full": head.uri,
                ])
                return span
            }
            let span = tracing.tracer.start(name: String(path), kind: .client, incoming: incoming, traceState: traceState)
            Self.common(span, head: head, path: path)
            return span
        case .callee(let appID):
            let method = path.hasPrefix("/") ? path.dropFirst() : path
            let span = tracing.tracer.start(name: "CallLocal/\(appID)/\(method)", kind: .server, incoming: incoming, traceState: traceState)
            guard span.isRecording else { return span }
            span.set(["rpc.service": "ServiceInvocation", "dapr.invoke_method": String(method), "dapr.protocol": "http"])
            return span
        }
    }

    private static func common(_ span: TracedSpan, head: HTTPRequestHead, path: Substring) {
        guard span.isRecording else { return }
        span.set([
            "dapr.protocol": "http", "dapr.api": "\(head.method.rawValue) \(path)", "http.request.method": head.method.rawValue, "url.full": head.uri,
        ])
    }
}

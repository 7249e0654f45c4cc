import NIOCore
import NIOHPACK
import NIOHTTP2

/// Refuses a request message larger than the limit the moment its 5-byte gRPC prefix arrives, with
/// `RESOURCE_EXHAUSTED` and grpc-go's message ("grpc: received message larger than max (N vs. M)"),
/// as daprd answers, before its bytes are buffered.
///
/// The transport's own check turns the same condition into an internal error and resets the
/// stream, which clients report as `CANCELLED`. This handler sits in each stream's pipeline in
/// front of the gRPC handler (the transport's `onAcceptHTTP2Stream` hook), so it covers the Dapr
/// API and proxied calls alike.
final class MessageSizeLimitHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let limit: Int
    private var machine = MessagePrefixReader()
    private var sentHeaders = false
    private var sentEnd = false
    private var peerEnded = false
    private var refused = false

    init(limit: Int) {
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if self.refused { return }
        guard case .data(let frame) = self.unwrapInboundIn(data), case .byteBuffer(let buffer) = frame.data else {
            context.fireChannelRead(data)
            return
        }
        self.peerEnded = self.peerEnded || frame.endStream
        if let length = self.machine.lengths(in: buffer).first(where: { $0 > self.limit }) {
            self.refuse(context: context, length: length)
            return
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .headers(let headers) = self.unwrapOutboundIn(data) {
            self.sentHeaders = true
            if headers.endStream { self.sentEnd = true }
        }
        if case .data(let frame) = self.unwrapOutboundIn(data), frame.endStream { self.sentEnd = true }
        context.write(data, promise: promise)
    }

    private func refuse(context: ChannelHandlerContext, length: Int) {
        self.refused = true
        if !self.sentEnd {
            var trailers: HPACKHeaders = self.sentHeaders ? [:] : [":status": "200", "content-type": "application/grpc"]
            trailers.add(name: "grpc-status", value: "8")
            trailers.add(name: "grpc-message", value: "grpc: received message larger than max (\(length) vs. \(self.limit))")
            context.write(self.wrapOutboundOut(.headers(.init(headers: trailers, endStream: true))), promise: nil)
            self.sentEnd = true
        }
        // The rest of the request is not wanted (grpc-go resets with NO_ERROR too).
        if !self.peerEnded { context.write(self.wrapOutboundOut(.rstStream(.noError)), promise: nil) }
        context.flush()
        context.close(promise: nil)
    }
}

/// Finds the length prefixes of gRPC messages in a stream of DATA bytes (flag byte + 4-byte
/// big-endian length, then the message), however the bytes are split across frames.
struct MessagePrefixReader {
    private var prefix: UInt64 = 0
    private var prefixBytes = 0
    private var remaining = 0

    /// The lengths of the messages whose prefixes complete in `buffer`.
    mutating func lengths(in buffer: ByteBuffer) -> [Int] {
        var found: [Int] = []
        var view = buffer.readableBytesView[...]
        while !view.isEmpty {
            if self.remaining > 0 {
                let skipped = min(self.remaining, view.count)
                view = view.dropFirst(skipped)
                self.remaining -= skipped
                continue
            }
            self.prefix = self.prefix << 8 | UInt64(view.first!)
            self.prefixBytes += 1
            view = view.dropFirst()
            if self.prefixBytes == 5 {
                let length = Int(self.prefix & 0xFFFF_FFFF)
                found.append(length)
                self.remaining = length
                self.prefix = 0
                self.prefixBytes = 0
            }
        }
        return found
    }
}

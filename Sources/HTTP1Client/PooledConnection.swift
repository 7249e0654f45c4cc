import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// One keep-alive connection. Its channel lives inside a task of the client's `run()`; a lease holder
/// uses `outbound` and `inbound` exclusively while it holds the lease (the pool guarantees exclusivity,
/// hence `@unchecked Sendable`).
final class PooledConnection: @unchecked Sendable {
    let id: Int
    let key: ConnectionPoolStateMachine.Key
    let channel: any Channel
    let outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>
    var inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
    /// How many exchanges have used this connection.
    var uses = 0
    private let closeRequested = NIOLockedValueBox<CheckedContinuation<Void, Never>?>(nil)
    private let closeFlag = NIOLockedValueBox(false)

    init(
        id: Int,
        key: ConnectionPoolStateMachine.Key,
        channel: any Channel,
        outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>,
        inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
    ) {
        self.id = id
        self.key = key
        self.channel = channel
        self.outbound = outbound
        self.inbound = inbound
    }

    var isActive: Bool { self.channel.isActive }

    /// Suspends the owning task until `requestClose()` or the peer closes.
    func waitUntilCloseRequested() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = self.closeFlag.withLockedValue { flag -> Bool in
                if flag { return true }
                self.closeRequested.withLockedValue { $0 = continuation }
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    func requestClose() {
        let continuation = self.closeFlag.withLockedValue { flag -> CheckedContinuation<Void, Never>? in
            flag = true
            return self.closeRequested.withLockedValue { value in
                defer { value = nil }
                return value
            }
        }
        continuation?.resume()
    }
}

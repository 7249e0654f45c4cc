import Logging
public import MechaCore
import Synchronization

/// A message handed out by a `MessageQueue`, with the token that settles it.
struct ClaimedMessage: Sendable {
    var message: ReceivedMessage
    var token: Int64
    /// How many times it was handed out, including this time.
    var attempts: Int
}

/// The storage side of a subscription: hand out ready messages, then settle each one.
protocol MessageQueue: Sendable {
    /// Up to `max` ready messages, now leased to the caller.
    func claim(max: Int) async throws -> [ClaimedMessage]
    /// Removes a handled message for good.
    func acknowledge(_ claimed: ClaimedMessage) async throws
    /// Puts a message back, to be handed out again no earlier than `delay` from now.
    func release(_ claimed: ClaimedMessage, after delay: Duration) async throws
}

/// Redelivery delays: exponential from `initial`, doubling per attempt, capped at `maximum`.
struct RedeliveryBackoff: Sendable {
    var initial: Duration
    var maximum: Duration

    func delay(afterAttempt attempts: Int) -> Duration {
        var delay = self.initial
        for _ in 1..<max(1, attempts) {
            delay *= 2
            if delay >= self.maximum { return self.maximum }
        }
        return min(delay, self.maximum)
    }
}

/// The delivery loop shared by every queue-backed pub/sub: claims up to `concurrency` messages,
/// runs the handler for each concurrently, settles each by its disposition, and sleeps until rung
/// or the poll interval passes when there is nothing to do. On `stop` it claims nothing more and
/// waits for every running handler before returning (drain). Cancellation ends it the same way, with
/// the running handlers' tasks cancelled.
enum DeliveryLoop {
    static func run(
        queue: some MessageQueue,
        doorbell: Doorbell,
        concurrency: Int,
        pollInterval: Duration,
        backoff: RedeliveryBackoff,
        logger: Logger,
        until stop: StopSignal,
        handler: @escaping @Sendable (ReceivedMessage) async -> MessageDisposition
    ) async {
        let limit = max(1, concurrency)
        let inFlight = Counter()
        await withDiscardingTaskGroup { group in
            // Wake the loop when stop fires so it can drain promptly.
            group.addTask {
                await stop.wait()
                doorbell.ring()
            }
            // Cancellation is a hard stop: without this check a cancelled loop would spin, since
            // the doorbell returns at once in a cancelled task.
            while !stop.isStopped && !Task.isCancelled {
                let free = limit - inFlight.value
                var claimed: [ClaimedMessage] = []
                if free > 0 {
                    do {
                        claimed = try await queue.claim(max: free)
                    } catch {
                        logger.warning("pubsub: claiming messages failed: \(error)")
                    }
                }
                for message in claimed {
                    inFlight.add(1)
                    group.addTask {
                        let disposition = await handler(message.message)
                        do {
                            switch disposition {
                            case .acknowledge: try await queue.acknowledge(message)
                            case .redeliver: try await queue.release(message, after: backoff.delay(afterAttempt: message.attempts))
                            }
                        } catch {
                            logger.warning("pubsub: settling message \(message.message.messageID) failed: \(error)")
                        }
                        inFlight.add(-1)
                        doorbell.ring()
                    }
                }
                if claimed.isEmpty || claimed.count >= free {
                    await doorbell.wait(timeout: pollInterval)
                }
            }
            // Leaving the group waits for every running handler: in-flight messages are settled.
        }
    }
}

/// A shared counter.
final class Counter: Sendable {
    private let storage = Mutex(0)
    var value: Int { self.storage.withLock { $0 } }
    func add(_ delta: Int) { self.storage.withLock { $0 += delta } }
}

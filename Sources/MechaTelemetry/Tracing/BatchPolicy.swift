/// When the export loop ships queued spans: a full batch at once, anything else once it has waited
/// `scheduleDelay` (OpenTelemetry's batch span processor defaults: 512 spans, 1 s).
///
/// Pure: the caller passes the queue length and the time since the last flush.
public struct BatchPolicy: Sendable, Hashable {
    /// The most spans in one export request.
    public var maxBatchSize: Int
    /// The longest a span waits for a batch to fill.
    public var scheduleDelay: Duration
    /// How often the loop looks at the queue between flushes, so a full batch leaves early.
    public var pollInterval: Duration

    /// A policy; the batch size is at least 1 and the poll interval at most the delay.
    public init(maxBatchSize: Int = 512, scheduleDelay: Duration = .seconds(1), pollInterval: Duration = .milliseconds(100)) {
        self.maxBatchSize = max(1, maxBatchSize)
        self.scheduleDelay = scheduleDelay
        // Never zero: a zero poll would spin.
        self.pollInterval = max(min(pollInterval, scheduleDelay), .milliseconds(1))
    }

    /// Whether to flush now, with `queued` spans waiting and `sinceLastFlush` elapsed.
    public func shouldFlush(queued: Int, sinceLastFlush: Duration) -> Bool {
        queued >= self.maxBatchSize || (queued > 0 && sinceLastFlush >= self.scheduleDelay)
    }
}

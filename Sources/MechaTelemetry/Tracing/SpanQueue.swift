import Synchronization

/// The bounded hand-off between request paths that finish spans and the exporter that ships them.
///
/// `enqueue` never waits for the exporter: it takes a short lock, and when the queue is full the
/// span is dropped and counted, so a slow or dead collector costs traces, not request latency or
/// memory. Safe to call from any thread or task.
public final class SpanQueue: Sendable {
    /// OpenTelemetry's default batch span processor queue size.
    public static let defaultCapacity = 2048

    struct State {
        var spans: [SpanRecord] = []
        var dropped = 0
    }

    /// The most spans held; further spans are dropped until the exporter drains.
    public let capacity: Int
    private let state = Mutex(State())

    /// A queue holding at most `capacity` spans (at least one).
    public init(capacity: Int = SpanQueue.defaultCapacity) {
        self.capacity = max(1, capacity)
    }

    /// Adds a finished span; `false` (and the drop counted) when the queue is full.
    @discardableResult
    public func enqueue(_ span: SpanRecord) -> Bool {
        self.state.withLock { state in
            guard state.spans.count < self.capacity else {
                state.dropped += 1
                return false
            }
            state.spans.append(span)
            return true
        }
    }

    /// Removes and returns up to `max` of the oldest spans.
    public func drain(max: Int) -> [SpanRecord] {
        guard max > 0 else { return [] }
        return self.state.withLock { state in
            if state.spans.count <= max {
                // Hand the whole buffer over instead of copying it.
                var taken: [SpanRecord] = []
                swap(&taken, &state.spans)
                return taken
            }
            let taken = Array(state.spans.prefix(max))
            state.spans.removeFirst(max)
            return taken
        }
    }

    /// Spans waiting for export.
    public var count: Int { self.state.withLock { $0.spans.count } }

    /// Spans refused because the queue was full, since it was created.
    public var dropped: Int { self.state.withLock { $0.dropped } }
}

import Synchronization

/// Drains a `SpanQueue` into an exporter in batches, until told to stop.
///
/// The exporter (Zipkin or OTLP over HTTP, written elsewhere) is a closure; a failed export is
/// counted and its spans are dropped — retrying would only let a dead collector fill the queue.
/// `run` never throws, stops on task cancellation or when `stop()` returns true, and then makes
/// one final flush of whatever is queued (the export closure may see the task cancelled and fail
/// fast; that is counted like any failure).
///
/// ```swift
/// let loop = SpanExportLoop(queue: queue) { spans in try await zipkin.post(ZipkinEncoder.encode(spans)) }
/// await loop.run(until: { stopping.load(ordering: .relaxed) })
/// ```
public final class SpanExportLoop: Sendable {
    struct Stats {
        var exportedSpans = 0
        var failedExports = 0
        var failedSpans = 0
    }

    /// The queue drained.
    public let queue: SpanQueue
    /// When to flush.
    public let policy: BatchPolicy
    let export: @Sendable ([SpanRecord]) async throws -> Void
    private let stats = Mutex(Stats())

    /// A loop over `queue`, exporting through `export` (which may throw; failures are counted).
    public init(queue: SpanQueue, policy: BatchPolicy = BatchPolicy(), export: @escaping @Sendable ([SpanRecord]) async throws -> Void) {
        self.queue = queue
        self.policy = policy
        self.export = export
    }

    /// Spans handed to a successful export.
    public var exportedSpans: Int { self.stats.withLock { $0.exportedSpans } }
    /// Export calls that threw.
    public var failedExports: Int { self.stats.withLock { $0.failedExports } }
    /// Spans lost in failed exports.
    public var failedSpans: Int { self.stats.withLock { $0.failedSpans } }

    /// Runs on the continuous clock until cancelled or `stop()` is true, then flushes once.
    public func run(until stop: @Sendable () -> Bool) async {
        await self.run(until: stop, clock: ContinuousClock())
    }

    /// Runs on `clock` until cancelled or `stop()` is true, then flushes once.
    public func run<C: Clock>(until stop: @Sendable () -> Bool, clock: C) async where C.Duration == Duration {
        var lastFlush = clock.now
        while !Task.isCancelled, !stop() {
            try? await clock.sleep(for: self.policy.pollInterval)
            if Task.isCancelled || stop() { break }
            if self.policy.shouldFlush(queued: self.queue.count, sinceLastFlush: lastFlush.duration(to: clock.now)) {
                await self.flush()
                lastFlush = clock.now
            }
        }
        await self.flush()
    }

    /// Exports everything queued now, in batches of at most `policy.maxBatchSize`.
    public func flush() async {
        // Bounded by what is queued on entry, so spans arriving meanwhile cannot keep us here.
        var remaining = self.queue.count
        while remaining > 0 {
            let batch = self.queue.drain(max: min(remaining, self.policy.maxBatchSize))
            if batch.isEmpty { return }
            remaining -= batch.count
            do {
                try await self.export(batch)
                self.stats.withLock { $0.exportedSpans += batch.count }
            } catch {
                self.stats.withLock {
                    $0.failedExports += 1
                    $0.failedSpans += batch.count
                }
            }
        }
    }
}

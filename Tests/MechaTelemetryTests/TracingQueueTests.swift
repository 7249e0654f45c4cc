import Synchronization
import Testing

@testable import MechaTelemetry

struct ExportFailure: Error {}

@Suite struct TracingQueueTests {
    static func span(_ number: UInt64) -> SpanRecord {
        SpanRecord(
            traceID: TraceID(high: 1, low: number), spanID: SpanID(number), name: "span-\(number)", kind: .internal,
            startUnixNanos: 1_000, endUnixNanos: 2_000, serviceName: "app"
        )
    }

    @Test func theQueueIsBoundedAndCountsDrops() {
        let queue = SpanQueue(capacity: 3)
        let accepted = (1...5).map { queue.enqueue(Self.span($0)) }
        #expect(accepted == [true, true, true, false, false])
        #expect(queue.count == 3)
        #expect(queue.dropped == 2)
        #expect(queue.drain(max: 2).map(\.spanID.value) == [1, 2])
        #expect(queue.count == 1)
        #expect(queue.enqueue(Self.span(6)))
        #expect(queue.drain(max: 10).map(\.spanID.value) == [3, 6])
        #expect(queue.drain(max: 10).isEmpty)
        #expect(queue.drain(max: 0).isEmpty)
        #expect(queue.dropped == 2)
        #expect(SpanQueue().capacity == 2048)
    }

    @Test func theQueueTakesConcurrentProducers() async {
        let queue = SpanQueue(capacity: 1000)
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    for index in 0..<200 { queue.enqueue(Self.span(UInt64(task * 1000 + index))) }
                }
            }
        }
        #expect(queue.count == 1000)
        #expect(queue.dropped == 600)
    }

    @Test func theBatchPolicyFlushesAFullBatchOrAfterTheDelay() {
        let policy = BatchPolicy()
        #expect(policy.maxBatchSize == 512)
        #expect(policy.scheduleDelay == .seconds(1))
        #expect(!policy.shouldFlush(queued: 0, sinceLastFlush: .seconds(10)))
        #expect(!policy.shouldFlush(queued: 511, sinceLastFlush: .milliseconds(999)))
        #expect(policy.shouldFlush(queued: 512, sinceLastFlush: .zero))
        #expect(policy.shouldFlush(queued: 1, sinceLastFlush: .seconds(1)))
        #expect(BatchPolicy(scheduleDelay: .zero).pollInterval > .zero)
    }

    @Test func stoppingFlushesEverythingInBatches() async {
        let queue = SpanQueue()
        for number: UInt64 in 1...5 { queue.enqueue(Self.span(number)) }
        let batches = Mutex<[[UInt64]]>([])
        let loop = SpanExportLoop(queue: queue, policy: BatchPolicy(maxBatchSize: 2)) { spans in
            batches.withLock { $0.append(spans.map(\.spanID.value)) }
        }
        await loop.run(until: { true })
        #expect(batches.withLock { $0 } == [[1, 2], [3, 4], [5]])
        #expect(loop.exportedSpans == 5)
        #expect(loop.failedExports == 0)
        #expect(queue.count == 0)
    }

    @Test func failedExportsAreCountedNotThrown() async {
        let queue = SpanQueue()
        for number: UInt64 in 1...3 { queue.enqueue(Self.span(number)) }
        let loop = SpanExportLoop(queue: queue, policy: BatchPolicy(maxBatchSize: 2)) { _ in throw ExportFailure() }
        await loop.run(until: { true })
        #expect(loop.failedExports == 2)
        #expect(loop.failedSpans == 3)
        #expect(loop.exportedSpans == 0)
        #expect(queue.count == 0)
    }

    @Test func theLoopExportsOnScheduleWhileRunning() async {
        let queue = SpanQueue()
        let exportedWhileRunning = Mutex(false)
        let policy = BatchPolicy(scheduleDelay: .milliseconds(20), pollInterval: .milliseconds(5))
        let loop = SpanExportLoop(queue: queue, policy: policy) { _ in }
        for number: UInt64 in 1...3 { queue.enqueue(Self.span(number)) }
        let start = ContinuousClock.now
        await loop.run(until: {
            if loop.exportedSpans == 3 {
                exportedWhileRunning.withLock { $0 = true }
                return true
            }
            return start.duration(to: .now) > .seconds(10)
        })
        #expect(exportedWhileRunning.withLock { $0 })
    }

    @Test func cancellationStopsTheLoopWithAFinalFlush() async {
        let queue = SpanQueue()
        let loop = SpanExportLoop(queue: queue, policy: BatchPolicy(scheduleDelay: .seconds(3600))) { _ in }
        let task = Task { await loop.run(until: { false }) }
        queue.enqueue(Self.span(1))
        task.cancel()
        await task.value
        #expect(loop.exportedSpans == 1)
    }
}

public import CoreMetrics
import Synchronization

/// A histogram recorded without locks: each bucket is one 128-bit atomic holding (count, sum),
/// updated by compare-and-swap, so a request never waits for another or for a scrape.
///
/// swift-prometheus writes the exposition from its own histogram, which takes a lock per record;
/// this one sits in front of it. At scrape time each bucket is exchanged with zero and its
/// (count, sum) replayed into the Prometheus histogram as `count` records around the bucket's
/// mean. For whole values (the milliseconds and byte counts recorded here) that is exact: every
/// value of a bucket lies in it, so do the whole numbers next to their mean; count and sum move
/// together in one atomic. Sums are kept in thousandths; other values replay at their mean.
public final class LockFreeHistogram: RecorderHandler, @unchecked Sendable {
    /// Upper bounds, ascending; the last cell is `+Inf`.
    let bounds: [Double]
    private let cells: UnsafeMutablePointer<Atomic<WordPair>>
    /// The Prometheus histogram the exposition reads.
    let target: any RecorderHandler
    static let scale = 1000.0

    init(bounds: [Double], target: any RecorderHandler) {
        self.bounds = bounds
        self.target = target
        self.cells = .allocate(capacity: bounds.count + 1)
        for index in 0...bounds.count { (self.cells + index).initialize(to: Atomic(WordPair(first: 0, second: 0))) }
    }

    deinit {
        self.cells.deinitialize(count: self.bounds.count + 1)
        self.cells.deallocate()
    }

    public func record(_ value: Int64) {
        self.record(Double(value))
    }

    @inline(__always)
    public func record(_ value: Int) {
        self.record(Double(value))
    }

    public func record(_ value: Double) {
        guard value.isFinite else { return }
        // The first bound at or above the value (Prometheus's `le`); past the last: +Inf.
        var low = 0
        var high = self.bounds.count
        while low < high {
            let middle = (low + high) / 2
            if self.bounds[middle] >= value { high = middle } else { low = middle + 1 }
        }
        let add = UInt((max(0, value) * Self.scale).rounded())
        let cell = self.cells + low
        var current = cell.pointee.load(ordering: .relaxed)
        while true {
            let next = WordPair(first: current.first &+ 1, second: current.second &+ add)
            let (exchanged, seen) = cell.pointee.compareExchange(expected: current, desired: next, ordering: .relaxed)
            if exchanged { return }
            current = seen
        }
    }

    /// Moves what was recorded since the last call into the Prometheus histogram.
    func flush() {
        for index in 0...self.bounds.count {
            let taken = (self.cells + index).pointee.exchange(WordPair(first: 0, second: 0), ordering: .relaxed)
            guard taken.first > 0 else { continue }
            let count = taken.first
            if taken.second % UInt(Self.scale) == 0 {
                // Whole values (milliseconds, bytes): replayed as whole numbers around the mean —
                // `total % count` of them one above — so the sum stays exact in floating point.
                // Whole values in a bucket have their floor and ceiling mean in it too.
                let total = taken.second / UInt(Self.scale)
                let (low, above) = total.quotientAndRemainder(dividingBy: count)
                for position in 0..<count { self.target.record(Double(position < above ? low + 1 : low)) }
                continue
            }
            var mean = Double(taken.second) / Self.scale / Double(count)
            // Kept inside the bucket whatever the rounding of the sum.
            if index < self.bounds.count { mean = min(mean, self.bounds[index]) }
            if index > 0 { mean = max(mean, self.bounds[index - 1].nextUp) }
            for _ in 0..<count { self.target.record(mean) }
        }
    }

    /// What is waiting for the next flush: (count, sum) over every bucket (for tests).
    var pending: (count: UInt, sum: Double) {
        var count: UInt = 0
        var sum: UInt = 0
        for index in 0...self.bounds.count {
            let cell = (self.cells + index).pointee.load(ordering: .relaxed)
            count &+= cell.first
            sum &+= cell.second
        }
        return (count, Double(sum) / Self.scale)
    }
}

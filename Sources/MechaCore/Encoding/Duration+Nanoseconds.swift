extension Duration {
    /// This duration in whole nanoseconds, clamped to `0...UInt64.max` (negative → 0), for the state
    /// machines that keep time as a `UInt64` nanosecond counter (balancers, ejection, rate limits).
    public var unsignedNanoseconds: UInt64 {
        let (seconds, attoseconds) = self.components
        guard seconds >= 0 else { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return .max }
        let (total, overflow2) = whole.addingReportingOverflow(UInt64(max(0, attoseconds / 1_000_000_000)))
        return overflow2 ? .max : total
    }
}

extension UInt64 {
    /// `self + other`, stopping at `UInt64.max` instead of trapping.
    public func saturatingAdd(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = self.addingReportingOverflow(other)
        return overflow ? .max : sum
    }

    /// `self × other`, stopping at `UInt64.max` instead of trapping.
    public func saturatingMultiply(_ other: UInt64) -> UInt64 {
        let (product, overflow) = self.multipliedReportingOverflow(by: other)
        return overflow ? .max : product
    }
}

/// Dapr's sampling decision: parent-based, trace-id-ratio for roots.
///
/// A sampled parent keeps the child sampled and an unsampled parent keeps it unsampled, whatever
/// the rate, so one trace is never half recorded. Without a parent the trace id decides, exactly as
/// OpenTelemetry Go's `TraceIDRatioBased` (which daprd uses): the low 8 bytes, shifted right by
/// one, below `rate × 2^63`. Being a pure function of the id, Mecha and a Go daprd make the same
/// decision for the same new trace.
public struct TraceSampler: Sendable, Hashable {
    /// The configured rate, clamped to 0...1.
    public let rate: Double
    let bound: UInt64

    /// A sampler for `rate`; values at or above 1 sample every root, at or below 0 (or NaN) none.
    public init(rate: Double) {
        let clamped = rate.isNaN ? 0 : min(max(rate, 0), 1)
        self.rate = clamped
        // rate < 1 keeps the product below 2^63, so the conversion cannot trap.
        self.bound = clamped >= 1 ? UInt64.max : UInt64(clamped * 9_223_372_036_854_775_808.0)
    }

    /// daprd's rate when `samplingRate` is not set (`diag/utils`: 1e-4).
    public static let defaultRate = 0.0001

    /// A sampler from the Configuration resource's `tracing.samplingRate` string (`"0"`…`"1"`,
    /// any decimal); an empty string gives daprd's `defaultRate`. `nil` when it is not a number:
    /// daprd silently falls back to the default there, Mecha lets the caller report the field.
    public init?(samplingRate: String) {
        if samplingRate.isEmpty {
            self.init(rate: Self.defaultRate)
            return
        }
        guard let rate = Double(samplingRate), !rate.isNaN else { return nil }
        self.init(rate: rate)
    }

    /// True when no span can ever be sampled (daprd then treats tracing as disabled).
    public var isDisabled: Bool { self.rate <= 0 }

    /// Whether the span in trace `traceID` is recorded, given its parent context (if any).
    public func sample(parent: TraceParent?, traceID: TraceID) -> Bool {
        if let parent { return parent.isSampled }
        return self.sample(traceID: traceID)
    }

    /// The ratio decision alone, for a root span.
    public func sample(traceID: TraceID) -> Bool {
        if self.rate >= 1 { return true }
        if self.rate <= 0 { return false }
        return traceID.low >> 1 < self.bound
    }
}

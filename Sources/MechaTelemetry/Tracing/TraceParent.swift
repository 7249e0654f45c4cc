/// A W3C `traceparent` header (`00-<trace id>-<parent id>-<flags>`), parsed strictly.
///
/// Dapr propagates W3C trace context on every hop; a header that fails these rules is treated as
/// absent (a new trace starts), never repaired, so Mecha and daprd agree on which traces continue.
/// Rules (W3C Trace Context, level 1):
/// - version is two lower-case hex digits and not `ff`;
/// - version `00` is exactly 55 characters; a later version may append `-<anything>` after the
///   flags, and only its sampled bit is kept (its other flag bits mean nothing to a `00` writer);
/// - all hex is lower case; an all-zero trace id or parent id is invalid.
///
/// ```swift
/// let parent = TraceParent(parsing: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
/// parent?.isSampled  // true
/// ```
public struct TraceParent: Sendable, Hashable {
    /// The W3C `sampled` flag bit.
    public static let sampledFlag: UInt8 = 0x01

    /// The trace the sender's span belongs to.
    public var traceID: TraceID
    /// The id of the span that sent (or will send) this header: the parent of the receiver's span.
    public var spanID: SpanID
    /// Trace flags; bit 0 is `sampled`.
    public var flags: UInt8

    /// A context from its parts (no validation: see `TraceID.isValid`, `SpanID.isValid`).
    public init(traceID: TraceID, spanID: SpanID, flags: UInt8) {
        self.traceID = traceID
        self.spanID = spanID
        self.flags = flags
    }

    /// Parses a `traceparent` header value; `nil` when it breaks any rule above.
    public init?(parsing text: some StringProtocol) {
        let utf8 = Array(text.utf8)
        guard utf8.count >= 55,
              let version = LowerHex.parse(utf8[0..<2]), version != 0xFF,
              utf8[2] == UInt8(ascii: "-"), utf8[35] == UInt8(ascii: "-"), utf8[52] == UInt8(ascii: "-"),
              let high = LowerHex.parse(utf8[3..<19]), let low = LowerHex.parse(utf8[19..<35]),
              let span = LowerHex.parse(utf8[36..<52]),
              let flags = LowerHex.parse(utf8[53..<55])
        else { return nil }
        if version == 0 {
            guard utf8.count == 55 else { return nil }
        } else {
            guard utf8.count == 55 || utf8[55] == UInt8(ascii: "-") else { return nil }
        }
        let traceID = TraceID(high: high, low: low)
        guard traceID.isValid, span != 0 else { return nil }
        let kept = version == 0 ? UInt8(flags) : UInt8(flags) & Self.sampledFlag
        self.init(traceID: traceID, spanID: SpanID(span), flags: kept)
    }

    /// Whether the sender recorded its span (flag bit 0).
    public var isSampled: Bool { self.flags & Self.sampledFlag != 0 }

    /// The header value in version `00` form: `00-<32 hex>-<16 hex>-<2 hex>`.
    public var header: String {
        // Written straight into the string's storage (one allocation): every traced request
        // makes one.
        String(unsafeUninitializedCapacity: 55) { buffer in
            buffer[0] = UInt8(ascii: "0")
            buffer[1] = UInt8(ascii: "0")
            buffer[2] = UInt8(ascii: "-")
            LowerHex.write(self.traceID.high, width: 16, into: buffer, at: 3)
            LowerHex.write(self.traceID.low, width: 16, into: buffer, at: 19)
            buffer[35] = UInt8(ascii: "-")
            LowerHex.write(self.spanID.value, width: 16, into: buffer, at: 36)
            buffer[52] = UInt8(ascii: "-")
            LowerHex.write(UInt64(self.flags), width: 2, into: buffer, at: 53)
            return 55
        }
    }

    /// The trace id as 32 lower-case hex digits.
    public var traceIDHex: String { self.traceID.hex }

    /// The span id as 16 lower-case hex digits.
    public var spanIDHex: String { self.spanID.hex }

    /// The context a new span in the same trace passes on: same trace id, the new span's id, and
    /// the sampled bit as the sampler decided (other flag bits are kept).
    public func child(spanID: SpanID, sampled: Bool) -> TraceParent {
        let flags = (self.flags & ~Self.sampledFlag) | (sampled ? Self.sampledFlag : 0)
        return TraceParent(traceID: self.traceID, spanID: spanID, flags: flags)
    }

    /// `child(spanID:sampled:)` with a random span id from `generator`.
    public func child(sampled: Bool, using generator: inout some RandomNumberGenerator) -> TraceParent {
        self.child(spanID: .random(using: &generator), sampled: sampled)
    }

    /// `child(spanID:sampled:)` with a random span id from the system's generator.
    public func child(sampled: Bool) -> TraceParent {
        self.child(spanID: .random(), sampled: sampled)
    }

    /// The context of a new root span: random trace and span ids from `generator`.
    public static func random(sampled: Bool, using generator: inout some RandomNumberGenerator) -> TraceParent {
        TraceParent(traceID: .random(using: &generator), spanID: .random(using: &generator), flags: sampled ? Self.sampledFlag : 0)
    }

    /// The context of a new root span, ids from the system's generator.
    public static func random(sampled: Bool) -> TraceParent {
        var generator = SystemRandomNumberGenerator()
        return self.random(sampled: sampled, using: &generator)
    }
}

extension TraceParent: CustomStringConvertible {
    public var description: String { self.header }
}

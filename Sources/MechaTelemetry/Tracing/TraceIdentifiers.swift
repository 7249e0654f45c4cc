/// A W3C trace id: 16 bytes, held as two big-endian halves so comparing, hashing and sampling
/// (which reads the low half) need no byte array.
///
/// The all-zero id is invalid on the wire (`isValid` is false); `random` never returns it.
public struct TraceID: Sendable, Hashable {
    /// Bytes 0–7, big-endian.
    public var high: UInt64
    /// Bytes 8–15, big-endian; the half `TraceSampler` reads, as OpenTelemetry's ratio sampler does.
    public var low: UInt64

    /// The id from its two big-endian halves.
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The id from exactly 16 bytes (OTLP's `trace_id`), or `nil` for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (index, byte) in bytes.enumerated() {
            if index < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
        }
        self.init(high: high, low: low)
    }

    /// The id from 32 lower-case hex digits (the W3C form), or `nil` otherwise. Zero is accepted
    /// here; check `isValid` where the wire format forbids it.
    public init?(hex: some StringProtocol) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 32, let high = LowerHex.parse(utf8[0..<16]), let low = LowerHex.parse(utf8[16..<32]) else { return nil }
        self.init(high: high, low: low)
    }

    /// False for the all-zero id, which W3C and OTLP reserve for "no trace".
    public var isValid: Bool { self.high != 0 || self.low != 0 }

    /// The 16 bytes, big-endian.
    public var bytes: [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(16)
        LowerHex.appendBigEndian(self.high, to: &output)
        LowerHex.appendBigEndian(self.low, to: &output)
        return output
    }

    /// 32 lower-case hex digits.
    public var hex: String {
        var output: [UInt8] = []
        output.reserveCapacity(32)
        LowerHex.append(self.high, to: &output)
        LowerHex.append(self.low, to: &output)
        return String(decoding: output, as: UTF8.self)
    }

    /// A random valid id from `generator`.
    public static func random(using generator: inout some RandomNumberGenerator) -> TraceID {
        while true {
            let id = TraceID(high: generator.next(), low: generator.next())
            if id.isValid { return id }
        }
    }

    /// A random valid id from the system's generator.
    public static func random() -> TraceID {
        var generator = SystemRandomNumberGenerator()
        return self.random(using: &generator)
    }
}

/// A W3C span (parent) id: 8 bytes as one big-endian integer. Zero is invalid on the wire.
public struct SpanID: Sendable, Hashable {
    /// The 8 bytes as a big-endian integer.
    public var value: UInt64

    /// The id from its big-endian integer value.
    public init(_ value: UInt64) {
        self.value = value
    }

    /// The id from exactly 8 bytes, or `nil` for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 8 else { return nil }
        self.init(bytes.reduce(0) { $0 << 8 | UInt64($1) })
    }

    /// The id from 16 lower-case hex digits, or `nil` otherwise (zero accepted; see `isValid`).
    public init?(hex: some StringProtocol) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 16, let value = LowerHex.parse(utf8[...]) else { return nil }
        self.init(value)
    }

    /// False for the all-zero id.
    public var isValid: Bool { self.value != 0 }

    /// The 8 bytes, big-endian.
    public var bytes: [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(8)
        LowerHex.appendBigEndian(self.value, to: &output)
        return output
    }

    /// 16 lower-case hex digits.
    public var hex: String {
        var output: [UInt8] = []
        output.reserveCapacity(16)
        LowerHex.append(self.value, to: &output)
        return String(decoding: output, as: UTF8.self)
    }

    /// A random valid id from `generator`.
    public static func random(using generator: inout some RandomNumberGenerator) -> SpanID {
        while true {
            let value: UInt64 = generator.next()
            if value != 0 { return SpanID(value) }
        }
    }

    /// A random valid id from the system's generator.
    public static func random() -> SpanID {
        var generator = SystemRandomNumberGenerator()
        return self.random(using: &generator)
    }
}

/// Lower-case hex as W3C trace context requires it: upper-case digits are a parse error, not a
/// variant to accept, because the spec says so and peers compare ids textually.
enum LowerHex {
    static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    /// The value of at most 16 lower-case hex digits, or `nil` on any other byte.
    static func parse(_ text: ArraySlice<UInt8>) -> UInt64? {
        guard text.count <= 16 else { return nil }
        var value: UInt64 = 0
        for byte in text {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            default: return nil
            }
            value = value << 4 | UInt64(digit)
        }
        return value
    }

    /// Appends `value` as `width` hex digits (16 for a `UInt64`, 2 for a byte).
    static func append(_ value: UInt64, width: Int = 16, to output: inout [UInt8]) {
        for shift in stride(from: (width - 1) * 4, through: 0, by: -4) {
            output.append(self.digits[Int((value >> UInt64(shift)) & 0xF)])
        }
    }

    /// Writes `value` as `width` hex digits at `offset` of `buffer` (which has room for them).
    static func write(_ value: UInt64, width: Int, into buffer: UnsafeMutableBufferPointer<UInt8>, at offset: Int) {
        var rest = value
        var position = offset + width - 1
        while position >= offset {
            buffer[position] = self.digits[Int(rest & 0xF)]
            rest >>= 4
            position -= 1
        }
    }

    static func appendBigEndian(_ value: UInt64, to output: inout [UInt8]) {
        for shift in stride(from: 56, through: 0, by: -8) {
            output.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        }
    }
}

/// A minimal protobuf wire-format writer: just enough for OTLP export without generated code.
///
/// Fields are written in the order called; nested messages are built in a child writer and then
/// length-prefixed. Proto3 default-skipping is the caller's choice (oneof members, for instance,
/// must be written even when zero).
struct ProtobufWriter {
    enum WireType: UInt8 {
        case varint = 0
        case fixed64 = 1
        case lengthDelimited = 2
        case fixed32 = 5
    }

    private(set) var bytes: [UInt8] = []

    mutating func writeVarint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            self.bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        self.bytes.append(UInt8(value))
    }

    mutating func writeTag(_ field: Int, _ wireType: WireType) {
        self.writeVarint(UInt64(field) << 3 | UInt64(wireType.rawValue))
    }

    /// An unsigned or enum field.
    mutating func writeVarintField(_ field: Int, _ value: UInt64) {
        self.writeTag(field, .varint)
        self.writeVarint(value)
    }

    /// An `int64` field: negative values take ten bytes (two's complement), as protobuf specifies.
    mutating func writeInt64Field(_ field: Int, _ value: Int64) {
        self.writeVarintField(field, UInt64(bitPattern: value))
    }

    mutating func writeBoolField(_ field: Int, _ value: Bool) {
        self.writeVarintField(field, value ? 1 : 0)
    }

    mutating func writeFixed64Field(_ field: Int, _ value: UInt64) {
        self.writeTag(field, .fixed64)
        for shift in stride(from: 0, to: 64, by: 8) {
            self.bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        }
    }

    mutating func writeFixed32Field(_ field: Int, _ value: UInt32) {
        self.writeTag(field, .fixed32)
        for shift in stride(from: 0, to: 32, by: 8) {
            self.bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift)))
        }
    }

    mutating func writeDoubleField(_ field: Int, _ value: Double) {
        self.writeFixed64Field(field, value.bitPattern)
    }

    mutating func writeBytesField(_ field: Int, _ value: some Collection<UInt8>) {
        self.writeTag(field, .lengthDelimited)
        self.writeVarint(UInt64(value.count))
        self.bytes.append(contentsOf: value)
    }

    mutating func writeStringField(_ field: Int, _ value: String) {
        self.writeBytesField(field, value.utf8)
    }

    /// A nested message, built by `body` in a fresh writer.
    mutating func writeMessageField(_ field: Int, _ body: (inout ProtobufWriter) -> Void) {
        var nested = ProtobufWriter()
        body(&nested)
        self.writeBytesField(field, nested.bytes)
    }
}

public import NIOCore

extension RESPValue {
    /// Writes this value in RESP3 (`.null` as `_`, `.error` as a simple error when it has no line
    /// breaks, else as a blob error). Used by test servers and fakes; clients send ``RESPCommand``s.
    public func encode(into buffer: inout ByteBuffer) {
        switch self {
        case .simpleString(let text):
            buffer.writeString("+\(text)\r\n")
        case .error(let text):
            if text.utf8.contains(where: { $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\n") }) {
                buffer.writeString("!\(text.utf8.count)\r\n\(text)\r\n")
            } else {
                buffer.writeString("-\(text)\r\n")
            }
        case .integer(let value):
            buffer.writeString(":\(value)\r\n")
        case .bulkString(let bytes):
            buffer.writeRESPBulkString(bytes)
        case .array(let values):
            Self.encodeAggregate("*", values, into: &buffer)
        case .null:
            buffer.writeStaticString("_\r\n")
        case .double(let value):
            let text = value.isNaN ? "nan" : value == .infinity ? "inf" : value == -.infinity ? "-inf" : String(value)
            buffer.writeString(",\(text)\r\n")
        case .boolean(let value):
            buffer.writeStaticString(value ? "#t\r\n" : "#f\r\n")
        case .bigNumber(let text):
            buffer.writeString("(\(text)\r\n")
        case .verbatimString(let format, let text):
            buffer.writeString("=\(format.utf8.count + 1 + text.utf8.count)\r\n\(format):\(text)\r\n")
        case .map(let entries):
            buffer.writeString("%\(entries.count)\r\n")
            for entry in entries {
                entry.key.encode(into: &buffer)
                entry.value.encode(into: &buffer)
            }
        case .set(let values):
            Self.encodeAggregate("~", values, into: &buffer)
        case .push(let values):
            Self.encodeAggregate(">", values, into: &buffer)
        }
    }

    private static func encodeAggregate(_ marker: Character, _ values: [RESPValue], into buffer: inout ByteBuffer) {
        buffer.writeString("\(marker)\(values.count)\r\n")
        for value in values { value.encode(into: &buffer) }
    }
}

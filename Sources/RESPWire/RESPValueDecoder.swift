public import NIOCore

/// Incremental RESP2/RESP3 decoder: returns one complete value, or nil when more bytes are needed
/// (consuming nothing then), or throws ``RESPError`` with code `.protocolViolation` on malformed
/// input. A `NIOSingleStepByteToMessageDecoder`, so `ByteToMessageHandler(RESPValueDecoder())` puts it
/// in a pipeline.
///
/// A partial value is parsed again from its start when more bytes arrive; replies are small
/// compared to socket reads, so this keeps the decoder stateless and simple.
public struct RESPValueDecoder: NIOSingleStepByteToMessageDecoder, Sendable {
    public typealias InboundOut = RESPValue

    /// Deepest nesting of aggregates accepted (Redis replies nest a few levels; this guards the stack).
    public var maximumDepth: Int
    /// Largest bulk string accepted (Redis's own `proto-max-bulk-len` default is 512 MB).
    public var maximumBulkLength: Int
    /// Most elements accepted in one aggregate header.
    public var maximumAggregateCount: Int

    public init(maximumDepth: Int = 128, maximumBulkLength: Int = 512 * 1024 * 1024, maximumAggregateCount: Int = 1 << 26) {
        self.maximumDepth = maximumDepth
        self.maximumBulkLength = maximumBulkLength
        self.maximumAggregateCount = maximumAggregateCount
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> RESPValue? {
        var reader = buffer
        guard let value = try self.parseValue(&reader, depth: 0) else { return nil }
        buffer.moveReaderIndex(to: reader.readerIndex)
        return value
    }

    /// At end of stream a partial value is dropped: the connection is gone and its command fails anyway.
    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> RESPValue? {
        try self.decode(buffer: &buffer)
    }

    // MARK: Parsing

    private func parseValue(_ reader: inout ByteBuffer, depth: Int) throws -> RESPValue? {
        guard depth <= self.maximumDepth else {
            throw RESPError(.protocolViolation, "aggregates nested deeper than \(self.maximumDepth)")
        }
        guard let marker = reader.readInteger(as: UInt8.self) else { return nil }
        switch marker {
        case UInt8(ascii: "+"):
            return try Self.readLine(&reader).map { .simpleString(String(buffer: $0)) }
        case UInt8(ascii: "-"):
            return try Self.readLine(&reader).map { .error(String(buffer: $0)) }
        case UInt8(ascii: ":"):
            guard let line = try Self.readLine(&reader) else { return nil }
            return .integer(try Self.integer(line, what: "integer"))
        case UInt8(ascii: "$"):
            guard let length = try self.readLength(&reader, what: "bulk string", allowsNull: true) else { return nil }
            guard length >= 0 else { return .null }
            return try Self.readBlob(&reader, length: length).map { .bulkString($0) }
        case UInt8(ascii: "!"):
            guard let length = try self.readLength(&reader, what: "blob error", allowsNull: false) else { return nil }
            return try Self.readBlob(&reader, length: length).map { .error(String(buffer: $0)) }
        case UInt8(ascii: "="):
            guard let length = try self.readLength(&reader, what: "verbatim string", allowsNull: false) else { return nil }
            guard let blob = try Self.readBlob(&reader, length: length) else { return nil }
            let text = String(buffer: blob)
            guard length >= 4, blob.getInteger(at: blob.readerIndex + 3, as: UInt8.self) == UInt8(ascii: ":") else {
                throw RESPError(.protocolViolation, "verbatim string without a three-letter format prefix")
            }
            return .verbatimString(format: String(text.prefix(3)), text: String(text.dropFirst(4)))
        case UInt8(ascii: "*"):
            guard let count = try self.readLength(&reader, what: "array", allowsNull: true) else { return nil }
            guard count >= 0 else { return .null }
            return try self.readElements(&reader, count: count, depth: depth).map { .array($0) }
        case UInt8(ascii: "~"):
            guard let count = try self.readLength(&reader, what: "set", allowsNull: false) else { return nil }
            return try self.readElements(&reader, count: count, depth: depth).map { .set($0) }
        case UInt8(ascii: ">"):
            guard let count = try self.readLength(&reader, what: "push", allowsNull: false) else { return nil }
            guard count > 0 else { throw RESPError(.protocolViolation, "empty push message") }
            return try self.readElements(&reader, count: count, depth: depth).map { .push($0) }
        case UInt8(ascii: "%"):
            guard let count = try self.readLength(&reader, what: "map", allowsNull: false) else { return nil }
            return try self.readEntries(&reader, count: count, depth: depth).map { .map($0) }
        case UInt8(ascii: "|"):
            // Attributes annotate the value that follows; we read and drop them.
            guard let count = try self.readLength(&reader, what: "attribute", allowsNull: false) else { return nil }
            guard try self.readEntries(&reader, count: count, depth: depth) != nil else { return nil }
            return try self.parseValue(&reader, depth: depth)
        case UInt8(ascii: "_"):
            guard let line = try Self.readLine(&reader) else { return nil }
            guard line.readableBytes == 0 else { throw RESPError(.protocolViolation, "null with a payload") }
            return .null
        case UInt8(ascii: "#"):
            guard let line = try Self.readLine(&reader) else { return nil }
            switch String(buffer: line) {
            case "t": return .boolean(true)
            case "f": return .boolean(false)
            case let other: throw RESPError(.protocolViolation, "invalid boolean '\(other)'")
            }
        case UInt8(ascii: ","):
            guard let line = try Self.readLine(&reader) else { return nil }
            return .double(try Self.double(String(buffer: line)))
        case UInt8(ascii: "("):
            guard let line = try Self.readLine(&reader) else { return nil }
            let text = String(buffer: line)
            let digits = text.first == "-" || text.first == "+" ? text.dropFirst() : Substring(text)
            guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
                throw RESPError(.protocolViolation, "invalid big number '\(text)'")
            }
            return .bigNumber(text)
        default:
            throw RESPError(.protocolViolation, "unknown RESP type byte 0x\(String(marker, radix: 16)) ('\(Character(Unicode.Scalar(marker)))')")
        }
    }

    private func readElements(_ reader: inout ByteBuffer, count: Int, depth: Int) throws -> [RESPValue]? {
        var values: [RESPValue] = []
        values.reserveCapacity(min(count, 1024))
        for _ in 0..<count {
            guard let value = try self.parseValue(&reader, depth: depth + 1) else { return nil }
            values.append(value)
        }
        return values
    }

    private func readEntries(_ reader: inout ByteBuffer, count: Int, depth: Int) throws -> [RESPValue.MapEntry]? {
        var entries: [RESPValue.MapEntry] = []
        entries.reserveCapacity(min(count, 1024))
        for _ in 0..<count {
            guard let key = try self.parseValue(&reader, depth: depth + 1),
                let value = try self.parseValue(&reader, depth: depth + 1)
            else { return nil }
            entries.append(.init(key: key, value: value))
        }
        return entries
    }

    /// A length or count line; -1 is returned only when `allowsNull`.
    private func readLength(_ reader: inout ByteBuffer, what: String, allowsNull: Bool) throws -> Int? {
        guard let line = try Self.readLine(&reader) else { return nil }
        if line.readableBytes == 1 && line.getInteger(at: line.readerIndex, as: UInt8.self) == UInt8(ascii: "?") {
            throw RESPError(.protocolViolation, "streamed \(what) (RESP3 '?' length) is not supported")
        }
        let length = try Self.integer(line, what: "\(what) length")
        if length == -1 && allowsNull { return -1 }
        let limit = what == "bulk string" || what == "blob error" || what == "verbatim string" ? self.maximumBulkLength : self.maximumAggregateCount
        guard length >= 0, length <= limit else {
            throw RESPError(.protocolViolation, "invalid \(what) length \(length)")
        }
        return Int(length)
    }

    /// The bytes up to the next CRLF (consumed); nil when no CRLF yet. A bare CR or LF is malformed.
    private static func readLine(_ reader: inout ByteBuffer) throws -> ByteBuffer? {
        let view = reader.readableBytesView
        guard let end = view.firstIndex(where: { $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\n") }) else { return nil }
        guard view[end] == UInt8(ascii: "\r") else { throw RESPError(.protocolViolation, "line ends in LF without CR") }
        let next = view.index(after: end)
        guard next < view.endIndex else { return nil }
        guard view[next] == UInt8(ascii: "\n") else { throw RESPError(.protocolViolation, "CR not followed by LF") }
        let line = reader.readSlice(length: end - view.startIndex)!
        reader.moveReaderIndex(forwardBy: 2)
        return line
    }

    /// `length` bytes followed by CRLF; nil when not all there yet.
    private static func readBlob(_ reader: inout ByteBuffer, length: Int) throws -> ByteBuffer? {
        guard reader.readableBytes >= length + 2 else { return nil }
        let blob = reader.readSlice(length: length)!
        guard reader.readInteger(as: UInt8.self) == UInt8(ascii: "\r"), reader.readInteger(as: UInt8.self) == UInt8(ascii: "\n") else {
            throw RESPError(.protocolViolation, "bulk data of length \(length) not followed by CRLF")
        }
        return blob
    }

    private static func integer(_ line: ByteBuffer, what: String) throws -> Int64 {
        let text = String(buffer: line)
        guard let value = Int64(text) else { throw RESPError(.protocolViolation, "invalid \(what) '\(text)'") }
        return value
    }

    private static func double(_ text: String) throws -> Double {
        switch text {
        case "inf", "+inf": return .infinity
        case "-inf": return -.infinity
        case "nan", "-nan": return .nan
        default:
            guard let value = Double(text), !text.isEmpty else { throw RESPError(.protocolViolation, "invalid double '\(text)'") }
            return value
        }
    }
}

public import NIOCore

/// A value that can be one argument of a command: written as one RESP bulk string.
///
/// `String`, `Substring`, `Int`, `Int64`, `UInt64`, `Double`, `ByteBuffer` and `[UInt8]` conform;
/// numbers are written in decimal, as Redis expects.
public protocol RESPArgumentConvertible: Sendable {
    /// Appends `$<length>\r\n<bytes>\r\n` to `buffer`.
    func writeRESPArgument(into buffer: inout ByteBuffer)
}

/// One command: an array of bulk strings, already encoded, ready to write.
///
/// Build it from an array literal of mixed arguments:
/// ```swift
/// let command: RESPCommand = ["SET", key, payload, "PX", 5_000]
/// ```
/// Encoding happens once, at construction; a command is a cheap value to pass between tasks.
public struct RESPCommand: Sendable, Hashable, ExpressibleByArrayLiteral {
    /// How many arguments (the command name counts as one).
    public private(set) var argumentCount: Int
    /// The arguments' bulk strings, without the leading `*<count>` header.
    private var encodedArguments: ByteBuffer

    /// An empty command; `append` arguments to it.
    public init() {
        self.argumentCount = 0
        self.encodedArguments = ByteBuffer()
    }

    public init(_ arguments: [any RESPArgumentConvertible]) {
        self.init()
        for argument in arguments { self.append(argument) }
    }

    public init(arrayLiteral elements: any RESPArgumentConvertible...) {
        self.init(elements)
    }

    /// `RESPCommand("HSET", key, "data", value)`.
    public init(_ name: String, _ arguments: any RESPArgumentConvertible...) {
        self.init([name] + arguments)
    }

    /// Adds one argument at the end.
    public mutating func append(_ argument: some RESPArgumentConvertible) {
        argument.writeRESPArgument(into: &self.encodedArguments)
        self.argumentCount += 1
    }

    /// Adds arguments at the end.
    public mutating func append(contentsOf arguments: [any RESPArgumentConvertible]) {
        for argument in arguments {
            argument.writeRESPArgument(into: &self.encodedArguments)
            self.argumentCount += 1
        }
    }

    /// Writes `*<count>\r\n` and the arguments.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "*"))
        buffer.writeRESPDecimal(self.argumentCount)
        buffer.writeImmutableBuffer(self.encodedArguments)
    }

    /// The arguments as raw bytes (decoded back from the encoding; for inspection and tests).
    public var arguments: [ByteBuffer] {
        var reader = self.encodedArguments
        var result: [ByteBuffer] = []
        result.reserveCapacity(self.argumentCount)
        var decoder = RESPValueDecoder()
        while reader.readableBytes > 0, case .bulkString(let bytes)? = try? decoder.decode(buffer: &reader) {
            result.append(bytes)
        }
        return result
    }

    /// The first argument, upper-cased (`GET`, `XREADGROUP`); empty for an empty command.
    public var name: String {
        var reader = self.encodedArguments
        var decoder = RESPValueDecoder()
        guard case .bulkString(let bytes)? = try? decoder.decode(buffer: &reader) else { return "" }
        return String(buffer: bytes).uppercased()
    }
}

extension RESPCommand: CustomStringConvertible {
    /// The command as text for logs; arguments of `AUTH` and `HELLO … AUTH` are redacted and long
    /// arguments shortened.
    public var description: String {
        let words = self.arguments.map { String(buffer: $0) }
        guard let first = words.first?.uppercased() else { return "" }
        if first == "AUTH" { return "AUTH <redacted>" }
        if first == "HELLO", let auth = words.firstIndex(where: { $0.uppercased() == "AUTH" }) {
            return (words[..<auth] + ["AUTH", "<redacted>"]).joined(separator: " ")
        }
        return words.map { $0.count > 64 ? String($0.prefix(61)) + "..." : $0 }.joined(separator: " ")
    }
}

extension ByteBuffer {
    /// Appends one RESP bulk string holding `bytes`.
    public mutating func writeRESPBulkString(_ bytes: some Collection<UInt8>) {
        self.writeInteger(UInt8(ascii: "$"))
        self.writeRESPDecimal(bytes.count)
        self.writeBytes(bytes)
        self.writeStaticString("\r\n")
    }

    /// Appends one RESP bulk string holding the readable bytes of `buffer`.
    public mutating func writeRESPBulkString(_ buffer: ByteBuffer) {
        self.writeInteger(UInt8(ascii: "$"))
        self.writeRESPDecimal(buffer.readableBytes)
        self.writeImmutableBuffer(buffer)
        self.writeStaticString("\r\n")
    }

    /// `<decimal>\r\n`
    mutating func writeRESPDecimal(_ value: some BinaryInteger) {
        self.writeString(String(value))
        self.writeStaticString("\r\n")
    }
}

extension String: RESPArgumentConvertible {
    public func writeRESPArgument(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "$"))
        buffer.writeRESPDecimal(self.utf8.count)
        buffer.writeString(self)
        buffer.writeStaticString("\r\n")
    }
}

extension Substring: RESPArgumentConvertible {
    public func writeRESPArgument(into buffer: inout ByteBuffer) { buffer.writeRESPBulkString(self.utf8) }
}

extension Int: RESPArgumentConvertible {
    public func writeRESPArgument(into buffer: inout ByteBuffer) { String(self).writeRESPArgument(into: &buffer) }
}

extension Int64: RESPArgumentConvertible {
    public func writeRESPArgument(into buffer: inout ByteBuffer) { String(self).writeRESPArgument(into: &buffer) }
}

extension UInt64: RESPArgumentConvertible {
    public func writeRESPArgument(into buffer: inout ByteBuffer) { String(self).writeRESPArgument(into: &buffer) }
}

extension Double: RESPArgumentConvertible {
    /// Redis reads `inf`, `-inf` and decimal/exponent forms, which is what Swift prints.
    public func writeRESPArgument(into buffer: inout ByteBuffer) { String(self).writeRESPArgument(into: &buffer) }
}

extension ByteBuffer: RESPArgumentConvertible {
    public func writeRESPArgument(into buffer: inout ByteBuffer) { buffer.writeRESPBulkString(self) }
}

extension Array: RESPArgumentConvertible where Element == UInt8 {
    public func writeRESPArgument(into buffer: inout ByteBuffer) { buffer.writeRESPBulkString(self) }
}

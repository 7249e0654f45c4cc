import NIOCore
import NIOTestUtils
import RESPWire
import Testing

/// One message as the server sends it, and the value it must decode to.
struct WireSample: Sendable, CustomTestStringConvertible {
    var name: String
    var wire: String
    var value: RESPValue

    var testDescription: String { self.name }

    static let all: [WireSample] = [
        .init(name: "simple string", wire: "+OK\r\n", value: .simpleString("OK")),
        .init(name: "empty simple string", wire: "+\r\n", value: .simpleString("")),
        .init(name: "simple error", wire: "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
              value: .error("WRONGTYPE Operation against a key holding the wrong kind of value")),
        .init(name: "integer", wire: ":1000\r\n", value: .integer(1000)),
        .init(name: "negative integer", wire: ":-42\r\n", value: .integer(-42)),
        .init(name: "largest integer", wire: ":9223372036854775807\r\n", value: .integer(.max)),
        .init(name: "bulk string", wire: "$5\r\nhello\r\n", value: "hello"),
        .init(name: "empty bulk string", wire: "$0\r\n\r\n", value: ""),
        .init(name: "binary bulk string with CRLF inside", wire: "$6\r\na\r\nb\0c\r\n",
              value: .bulkString(ByteBuffer(bytes: [97, 13, 10, 98, 0, 99]))),
        .init(name: "RESP2 null bulk string", wire: "$-1\r\n", value: .null),
        .init(name: "array", wire: "*3\r\n$3\r\nfoo\r\n:7\r\n+bar\r\n", value: ["foo", .integer(7), .simpleString("bar")]),
        .init(name: "empty array", wire: "*0\r\n", value: .array([])),
        .init(name: "RESP2 null array", wire: "*-1\r\n", value: .null),
        .init(name: "nested array with null", wire: "*2\r\n*2\r\n:1\r\n$-1\r\n*0\r\n", value: [[1, .null], .array([])]),
        .init(name: "array holding an error (EXEC)", wire: "*2\r\n+OK\r\n-ERR value is not an integer\r\n",
              value: [.simpleString("OK"), .error("ERR value is not an integer")]),
        .init(name: "RESP3 null", wire: "_\r\n", value: .null),
        .init(name: "double", wire: ",3.25\r\n", value: .double(3.25)),
        .init(name: "double exponent", wire: ",1.5e3\r\n", value: .double(1500)),
        .init(name: "double inf", wire: ",inf\r\n", value: .double(.infinity)),
        .init(name: "double -inf", wire: ",-inf\r\n", value: .double(-.infinity)),
        .init(name: "boolean true", wire: "#t\r\n", value: .boolean(true)),
        .init(name: "boolean false", wire: "#f\r\n", value: .boolean(false)),
        .init(name: "blob error", wire: "!21\r\nSYNTAX invalid syntax\r\n", value: .error("SYNTAX invalid syntax")),
        .init(name: "verbatim string", wire: "=15\r\ntxt:Some string\r\n", value: .verbatimString(format: "txt", text: "Some string")),
        .init(name: "big number", wire: "(3492890328409238509324850943850943825024385\r\n", value: .bigNumber("3492890328409238509324850943850943825024385")),
        .init(name: "negative big number", wire: "(-12345678901234567890\r\n", value: .bigNumber("-12345678901234567890")),
        .init(name: "map", wire: "%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n:2\r\n",
              value: .map([.init(key: .simpleString("first"), value: 1), .init(key: "second", value: 2)])),
        .init(name: "empty map", wire: "%0\r\n", value: .map([])),
        .init(name: "set", wire: "~3\r\n+orange\r\n+apple\r\n#t\r\n", value: .set([.simpleString("orange"), .simpleString("apple"), .boolean(true)])),
        .init(name: "push", wire: ">3\r\n$7\r\nmessage\r\n$6\r\norders\r\n$2\r\nhi\r\n", value: .push(["message", "orders", "hi"])),
        .init(name: "attribute dropped, annotated value kept", wire: "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*1\r\n:2039123\r\n",
              value: [2039123]),
        .init(name: "HELLO reply", wire: "%3\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n$7\r\nmodules\r\n*0\r\n",
              value: .map([.init(key: "server", value: "redis"), .init(key: "proto", value: 3), .init(key: "modules", value: .array([]))])),
        .init(name: "XREADGROUP reply", wire: "*1\r\n*2\r\n$6\r\nstream\r\n*1\r\n*2\r\n$15\r\n1700000000000-0\r\n*2\r\n$4\r\ndata\r\n$2\r\n{}\r\n",
              value: [["stream", [["1700000000000-0", ["data", "{}"]]]]]),
    ]
}

struct RESPValueDecoderTests {
    static func buffer(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    @Test(arguments: WireSample.all)
    func decodesWholeMessage(sample: WireSample) throws {
        var decoder = RESPValueDecoder()
        var buffer = Self.buffer(sample.wire)
        #expect(try decoder.decode(buffer: &buffer) == sample.value)
        #expect(buffer.readableBytes == 0)
    }

    /// Every prefix is "need more data" and consumes nothing; the rest completes the same value.
    @Test(arguments: WireSample.all)
    func decodesIdenticallyWhenSplitAtEveryOffset(sample: WireSample) throws {
        let whole = Self.buffer(sample.wire)
        for offset in 0...whole.readableBytes {
            var decoder = RESPValueDecoder()
            var buffer = whole.getSlice(at: whole.readerIndex, length: offset)!
            if offset < whole.readableBytes {
                #expect(try decoder.decode(buffer: &buffer) == nil, "prefix of \(offset) bytes")
                #expect(buffer.readableBytes == offset, "a partial message consumed bytes at offset \(offset)")
            }
            var rest = whole.getSlice(at: whole.readerIndex + offset, length: whole.readableBytes - offset)!
            buffer.writeBuffer(&rest)
            #expect(try decoder.decode(buffer: &buffer) == sample.value, "split at \(offset)")
            #expect(buffer.readableBytes == 0)
        }
    }

    /// All samples back to back, delivered one byte at a time.
    @Test func decodesAStreamFedByteByByte() throws {
        var decoder = RESPValueDecoder()
        let stream = WireSample.all.map(\.wire).joined()
        var buffer = ByteBuffer()
        var decoded: [RESPValue] = []
        for byte in stream.utf8 {
            buffer.writeInteger(byte)
            while let value = try decoder.decode(buffer: &buffer) { decoded.append(value) }
        }
        #expect(decoded == WireSample.all.map(\.value))
        #expect(buffer.readableBytes == 0)
    }

    /// The stream split into two reads at every offset decodes to the same values.
    @Test func decodesAStreamSplitAtEveryOffset() throws {
        let stream = Array(WireSample.all.map(\.wire).joined().utf8)
        let expected = WireSample.all.map(\.value)
        for offset in 0...stream.count {
            var decoder = RESPValueDecoder()
            var buffer = ByteBuffer(bytes: stream[..<offset])
            var decoded: [RESPValue] = []
            while let value = try decoder.decode(buffer: &buffer) { decoded.append(value) }
            buffer.writeBytes(stream[offset...])
            while let value = try decoder.decode(buffer: &buffer) { decoded.append(value) }
            #expect(decoded == expected, "split at \(offset)")
        }
    }

    /// SwiftNIO's own verifier: feeds the inputs in every chunking it knows and checks the outputs.
    @Test func passesByteToMessageDecoderVerifier() throws {
        let pairs = WireSample.all.map { (Self.buffer($0.wire), [$0.value]) }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { RESPValueDecoder() }
    }

    @Test(arguments: [
        ("?oops\r\n", "unknown RESP type byte"),
        (":12a\r\n", "invalid integer '12a'"),
        (":99999999999999999999\r\n", "invalid integer"),
        ("$abc\r\n", "invalid bulk string length 'abc'"),
        ("$-2\r\n", "invalid bulk string length -2"),
        ("$3\r\nabcd\r\n", "not followed by CRLF"),
        ("+OK\rX", "CR not followed by LF"),
        ("+OK\n", "LF without CR"),
        ("*-2\r\n", "invalid array length -2"),
        ("%-1\r\n", "invalid map length -1"),
        ("#x\r\n", "invalid boolean 'x'"),
        (",one\r\n", "invalid double 'one'"),
        ("(12x\r\n", "invalid big number"),
        ("_x\r\n", "null with a payload"),
        ("=3\r\ntxt\r\n", "three-letter format"),
        (">0\r\n", "empty push"),
        ("$?\r\n", "streamed bulk string"),
        ("*1\r\n*1\r\n*1\r\n:1\r\n", "nested deeper"),
    ])
    func rejectsMalformedInput(wire: String, expectedMessage: String) throws {
        var decoder = RESPValueDecoder(maximumDepth: 2)
        var buffer = Self.buffer(wire)
        let error = #expect(throws: RESPError.self) { try decoder.decode(buffer: &buffer) }
        #expect(error?.code == .protocolViolation)
        #expect(error?.message.contains(expectedMessage) == true, "\(error?.message ?? "")")
    }

    @Test func rejectsBulkStringsOverTheLimit() throws {
        var decoder = RESPValueDecoder(maximumBulkLength: 10)
        var buffer = Self.buffer("$11\r\n")
        #expect(throws: RESPError(.protocolViolation, "invalid bulk string length 11")) { try decoder.decode(buffer: &buffer) }
    }
}

struct RESPValueTests {
    /// Whatever we encode decodes to itself, and a decoded sample re-encodes to bytes that decode the same.
    @Test(arguments: WireSample.all)
    func encodingRoundTrips(sample: WireSample) throws {
        var buffer = ByteBuffer()
        sample.value.encode(into: &buffer)
        var decoder = RESPValueDecoder()
        #expect(try decoder.decode(buffer: &buffer) == sample.value)
        #expect(buffer.readableBytes == 0)
    }

    @Test func accessorsReadRESP2AndRESP3Alike() {
        #expect(RESPValue.bulkString("42").int == 42)
        #expect(RESPValue.integer(42).int == 42)
        #expect(RESPValue.bulkString("1.5").double == 1.5)
        #expect(RESPValue.integer(1).bool == true)
        #expect(RESPValue.boolean(false).bool == false)
        #expect(RESPValue.verbatimString(format: "txt", text: "hi").string == "hi")
        let resp2Hash: RESPValue = ["data", "v", "version", "3"]
        let resp3Hash = RESPValue.map([.init(key: "data", value: "v"), .init(key: "version", value: "3")])
        #expect(resp2Hash.dictionary == resp3Hash.dictionary)
        #expect(resp3Hash.dictionary?["version"]?.int == 3)
        #expect(RESPValue.null.array == nil)
        #expect(RESPValue.set(["a"]).array == ["a"])
    }

    @Test func pubSubMessagesAreReadFromPushes() {
        #expect(RESPPubSubMessage(push: ["message", "orders", "hi"]) == RESPPubSubMessage(channel: "orders", payload: ByteBuffer(string: "hi")))
        #expect(
            RESPPubSubMessage(push: ["pmessage", "__keyspace@0__:*", "__keyspace@0__:k", "set"])
                == RESPPubSubMessage(channel: "__keyspace@0__:k", pattern: "__keyspace@0__:*", payload: ByteBuffer(string: "set"))
        )
        #expect(RESPPubSubMessage(push: ["subscribe", "orders", 1]) == nil)
    }
}

struct RESPCommandTests {
    @Test func encodesAnArrayOfBulkStrings() {
        let command: RESPCommand = ["SET", "key", "välue", "PX", 5000]
        var buffer = ByteBuffer()
        command.encode(into: &buffer)
        #expect(String(buffer: buffer) == "*5\r\n$3\r\nSET\r\n$3\r\nkey\r\n$6\r\nvälue\r\n$2\r\nPX\r\n$4\r\n5000\r\n")
        #expect(command.name == "SET")
        #expect(command.argumentCount == 5)
    }

    @Test func mixesArgumentTypes() {
        let key = "k"
        let bytes = ByteBuffer(bytes: [0, 13, 10, 255])
        var command = RESPCommand("ZADD", key, 1.5, bytes)
        command.append(Int64(-7))
        command.append([UInt8](arrayLiteral: 1, 2))
        #expect(command.arguments.map { Array($0.readableBytesView) } == [
            Array("ZADD".utf8), Array("k".utf8), Array("1.5".utf8), [0, 13, 10, 255], Array("-7".utf8), [1, 2],
        ])
    }

    @Test func emptyArgumentsAreEncoded() {
        var buffer = ByteBuffer()
        RESPCommand(["SET", "k", ""]).encode(into: &buffer)
        #expect(String(buffer: buffer) == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n")
    }

    @Test func descriptionRedactsCredentials() {
        #expect(RESPCommand(["AUTH", "user", "secret"]).description == "AUTH <redacted>")
        #expect(RESPCommand(["HELLO", "3", "AUTH", "user", "secret"]).description == "HELLO 3 AUTH <redacted>")
        #expect(RESPCommand(["GET", "k"]).description == "GET k")
    }
}

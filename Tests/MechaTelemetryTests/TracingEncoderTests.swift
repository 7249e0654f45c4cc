import MechaCore
import Testing

@testable import MechaTelemetry

@Suite struct TracingEncoderTests {
    static let serverSpan = SpanRecord(
        traceID: TraceID(high: 0x4bf9_2f35_77b3_4da6, low: 0xa3ce_929d_0e0e_4736),
        spanID: SpanID(0x00f0_67aa_0ba9_02b7),
        parentSpanID: SpanID(0x1122_3344_5566_7788),
        traceState: "congo=t61rcWkgMzE",
        name: "CallLocal/orders/neworder",
        kind: .server,
        startUnixNanos: 1_700_000_000_123_456_789,
        endUnixNanos: 1_700_000_000_124_956_789,
        attributes: [
            ("http.status_code", .int(500)),
            ("rpc.ok", .bool(false)),
            ("ratio", .double(0.25)),
            ("note", .string("say \"hi\"\\\n\u{01}")),
            ("http.status_code", .int(503)),
        ],
        status: .error(message: "boom"),
        serviceName: "orders"
    )

    // MARK: Zipkin

    @Test func zipkinEncodesOneSpanExactly() {
        let json = String(decoding: ZipkinEncoder.encode([Self.serverSpan]), as: UTF8.self)
        let expected = #"[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","id":"00f067aa0ba902b7","parentId":"1122334455667788","#
            + #""name":"CallLocal/orders/neworder","kind":"SERVER","timestamp":1700000000123456,"duration":1500,"#
            + #""localEndpoint":{"serviceName":"orders"},"#
            + #""tags":{"http.status_code":"503","rpc.ok":"false","ratio":"0.25","note":"say \"hi\"\\\n\u0001","#
            + #""otel.status_code":"ERROR","error":"boom"}}]"#
        #expect(json == expected)
    }

    @Test func zipkinOmitsWhatARootInternalSpanLacks() {
        var span = SpanRecord(
            traceID: TraceID(high: 0, low: 1), spanID: SpanID(2), name: "work", kind: .internal,
            startUnixNanos: 5_000, endUnixNanos: 5_400, serviceName: "app",
            localEndpoint: .init(ipv4: "10.0.0.1", port: 3500)
        )
        let json = String(decoding: ZipkinEncoder.encode([span]), as: UTF8.self)
        #expect(json == #"[{"traceId":"00000000000000000000000000000001","id":"0000000000000002","name":"work","timestamp":5,"duration":1,"localEndpoint":{"serviceName":"app","ipv4":"10.0.0.1","port":3500}}]"#)
        span.status = .error(message: nil)
        span.kind = .consumer
        let failed = String(decoding: ZipkinEncoder.encode([span, span]), as: UTF8.self)
        #expect(failed.contains(#""kind":"CONSUMER""#))
        #expect(failed.contains(#""tags":{"otel.status_code":"ERROR","error":"true"}"#))
        #expect(failed.hasPrefix("[{") && failed.hasSuffix("}]") && failed.contains("},{"))
        span.status = .ok
        #expect(String(decoding: ZipkinEncoder.encode([span]), as: UTF8.self).contains(#""tags":{"otel.status_code":"OK"}"#))
        #expect(ZipkinEncoder.encode([]) == Array("[]".utf8))
    }

    // MARK: OTLP

    @Test func protobufWriterPrimitives() {
        var writer = ProtobufWriter()
        writer.writeVarint(300)
        #expect(writer.bytes == [0xAC, 0x02])
        writer = ProtobufWriter()
        writer.writeInt64Field(3, -1)
        #expect(writer.bytes == [0x18] + Array(repeating: 0xFF, count: 9) + [0x01])
        writer = ProtobufWriter()
        writer.writeDoubleField(4, 1.0)
        #expect(writer.bytes == [0x21, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F])
        writer = ProtobufWriter()
        writer.writeFixed32Field(16, 1)
        #expect(writer.bytes == [0x85, 0x01, 0x01, 0, 0, 0])
        writer = ProtobufWriter()
        writer.writeMessageField(1) { $0.writeStringField(1, "ab") }
        #expect(writer.bytes == [0x0A, 0x04, 0x0A, 0x02, 0x61, 0x62])
    }

    @Test func otlpEncodesATinySpanToHandComputedBytes() {
        let span = SpanRecord(
            traceID: TraceID(high: 0, low: 1), spanID: SpanID(2), name: "a", kind: .internal,
            startUnixNanos: 1, endUnixNanos: 2, serviceName: "s"
        )
        let spanBytes: [UInt8] =
            [0x0A, 0x10] + Array(repeating: 0, count: 15) + [0x01]  // trace_id
            + [0x12, 0x08] + Array(repeating: 0, count: 7) + [0x02]  // span_id
            + [0x2A, 0x01, 0x61]  // name "a"
            + [0x30, 0x01]  // kind INTERNAL
            + [0x39, 1, 0, 0, 0, 0, 0, 0, 0]  // start_time_unix_nano
            + [0x41, 2, 0, 0, 0, 0, 0, 0, 0]  // end_time_unix_nano
            + [0x85, 0x01, 1, 0, 0, 0]  // flags (fixed32, field 16)
        #expect(spanBytes.count == 57)
        let scopeSpans: [UInt8] = [0x0A, 0x07, 0x0A, 0x05] + Array("mecha".utf8) + [0x12, 57] + spanBytes
        let keyValue: [UInt8] = [0x0A, 0x0C] + Array("service.name".utf8) + [0x12, 0x03, 0x0A, 0x01, 0x73]
        let resource: [UInt8] = [0x0A, UInt8(keyValue.count)] + keyValue
        let resourceSpans: [UInt8] = [0x0A, UInt8(resource.count)] + resource + [0x12, UInt8(scopeSpans.count)] + scopeSpans
        let request: [UInt8] = [0x0A, UInt8(resourceSpans.count)] + resourceSpans
        #expect(request.count == 95)
        #expect(OTLPEncoder.encode([span]) == request)
    }

    @Test func otlpRequestDecodesToTheSpan() throws {
        var other = Self.serverSpan
        other.serviceName = "checkout"
        other.status = .ok
        other.parentSpanID = nil
        other.traceState = ""
        let request = try ProtoMessage(OTLPEncoder.encode([Self.serverSpan, other, Self.serverSpan]))
        let resourceSpans = try request.messages(1)
        #expect(resourceSpans.count == 2)

        let orders = resourceSpans[0]
        let resourceAttributes = try #require(try orders.messages(1).first).messages(1)
        #expect(try resourceAttributes.map { try $0.string(1) } == ["service.name"])
        #expect(try resourceAttributes[0].messages(2).first?.string(1) == "orders")
        let scopeSpans = try #require(try orders.messages(2).first)
        #expect(try scopeSpans.messages(1).first?.string(1) == "mecha")
        let spans = try scopeSpans.messages(2)
        #expect(spans.count == 2)

        let span = spans[0]
        #expect(span.bytes(1) == Self.serverSpan.traceID.bytes)
        #expect(span.bytes(2) == [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
        #expect(try span.string(3) == "congo=t61rcWkgMzE")
        #expect(span.bytes(4) == [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88])
        #expect(try span.string(5) == "CallLocal/orders/neworder")
        #expect(span.varint(6) == 2)
        #expect(span.fixed64(7) == 1_700_000_000_123_456_789)
        #expect(span.fixed64(8) == 1_700_000_000_124_956_789)
        #expect(span.fixed32(16) == 1)

        let attributes = try span.messages(9)
        #expect(try attributes.map { try $0.string(1) } == ["http.status_code", "rpc.ok", "ratio", "note", "http.status_code"])
        let values = try attributes.map { try #require(try $0.messages(2).first) }
        #expect(values[0].varint(3) == 500)
        #expect(values[1].varint(2) == 0)  // false is still written: oneof member
        #expect(values[2].fixed64(4).map(Double.init(bitPattern:)) == 0.25)
        #expect(try values[3].string(1) == "say \"hi\"\\\n\u{01}")

        let status = try #require(try span.messages(15).first)
        #expect(try status.string(2) == "boom")
        #expect(status.varint(3) == 2)

        let checkout = try #require(try resourceSpans[1].messages(2).first).messages(2)
        #expect(checkout.count == 1)
        #expect(checkout[0].bytes(3) == nil)
        #expect(checkout[0].bytes(4) == nil)
        let okStatus = try #require(try checkout[0].messages(15).first)
        #expect(okStatus.varint(3) == 1)
        #expect(okStatus.bytes(2) == nil)
    }

    @Test func otlpWritesNegativeIntegersAndTrueBooleans() throws {
        var span = Self.serverSpan
        span.attributes = [("n", .int(-2)), ("b", .bool(true)), ("e", .string(""))]
        span.status = .unset
        let spans = try ProtoMessage(OTLPEncoder.encode([span])).messages(1)[0].messages(2)[0].messages(2)
        let values = try spans[0].messages(9).map { try #require(try $0.messages(2).first) }
        #expect(values[0].varint(3).map { Int64(bitPattern: $0) } == -2)
        #expect(values[1].varint(2) == 1)
        #expect(values[2].bytes(1) == [])
        #expect(try spans[0].messages(15).isEmpty)
    }
}

/// A minimal protobuf reader for checking the encoder's output: fields by number, in order.
struct ProtoMessage {
    struct Malformed: Error {}

    enum Value {
        case varint(UInt64)
        case fixed64(UInt64)
        case fixed32(UInt32)
        case bytes([UInt8])
    }

    var fields: [(Int, Value)] = []

    init(_ bytes: [UInt8]) throws {
        var index = 0
        func varint() throws -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard index < bytes.count, shift < 64 else { throw Malformed() }
                let byte = bytes[index]
                index += 1
                result |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return result }
                shift += 7
            }
        }
        func little(_ count: Int) throws -> UInt64 {
            guard index + count <= bytes.count else { throw Malformed() }
            var result: UInt64 = 0
            for offset in 0..<count { result |= UInt64(bytes[index + offset]) << UInt64(offset * 8) }
            index += count
            return result
        }
        while index < bytes.count {
            let tag = try varint()
            let field = Int(tag >> 3)
            switch tag & 7 {
            case 0: self.fields.append((field, .varint(try varint())))
            case 1: self.fields.append((field, .fixed64(try little(8))))
            case 5: self.fields.append((field, .fixed32(UInt32(try little(4)))))
            case 2:
                let length = Int(try varint())
                guard length >= 0, index + length <= bytes.count else { throw Malformed() }
                self.fields.append((field, .bytes(Array(bytes[index..<index + length]))))
                index += length
            default: throw Malformed()
            }
        }
    }

    func all(_ number: Int) -> [Value] { self.fields.filter { $0.0 == number }.map(\.1) }

    func bytes(_ number: Int) -> [UInt8]? {
        guard case .bytes(let value) = self.all(number).last else { return nil }
        return value
    }

    func string(_ number: Int) throws -> String {
        guard let value = self.bytes(number) else { throw Malformed() }
        return String(decoding: value, as: UTF8.self)
    }

    func varint(_ number: Int) -> UInt64? {
        guard case .varint(let value) = self.all(number).last else { return nil }
        return value
    }

    func fixed64(_ number: Int) -> UInt64? {
        guard case .fixed64(let value) = self.all(number).last else { return nil }
        return value
    }

    func fixed32(_ number: Int) -> UInt32? {
        guard case .fixed32(let value) = self.all(number).last else { return nil }
        return value
    }

    func messages(_ number: Int) throws -> [ProtoMessage] {
        try self.all(number).map { value in
            guard case .bytes(let bytes) = value else { throw Malformed() }
            return try ProtoMessage(bytes)
        }
    }
}

@Suite struct ZipkinDirectEncodingTests {
    /// The byte writer and the JSON value tree give the same document, tricky text included.
    @Test func theDirectWriterMatchesTheValueTree() throws {
        let span = SpanRecord(
            traceID: TraceID(high: 0x0102, low: 0x0304), spanID: SpanID(0x0506), parentSpanID: SpanID(0x0708), name: "CallLocal/a\"b\\c\n\u{01}é",
            kind: .server, startUnixNanos: 1_700_000_000_123_456_789, endUnixNanos: 1_700_000_000_223_456_789,
            attributes: [("k", .string("v\t")), ("n", .int(3)), ("k", .string("last"))], status: .error(message: "boom"),
            serviceName: "svc", localEndpoint: .init(ipv4: "127.0.0.1", port: 80))
        let plain = SpanRecord(traceID: TraceID(high: 1, low: 2), spanID: SpanID(3), name: "x", kind: .internal, startUnixNanos: 5, endUnixNanos: 5, serviceName: "s")
        let direct = ZipkinEncoder.encode([span, plain])
        let tree = JSONValue.array([ZipkinEncoder.json(span), ZipkinEncoder.json(plain)])
        #expect(try JSONValue(parsing: direct) == tree)
    }

    /// Tags: first-seen order, last value winning, the status overriding attributes of its keys
    /// in place, negative and large numbers as text.
    @Test(arguments: [
        SpanRecord.Status.unset, .ok, .error(message: nil), .error(message: ""), .error(message: "bad \"x\""),
    ])
    func tagsMatchTheValueTree(status: SpanRecord.Status) throws {
        let span = SpanRecord(
            traceID: TraceID(high: .max, low: 1), spanID: SpanID(.max), name: "n", kind: .client, startUnixNanos: 0, endUnixNanos: .max,
            attributes: [
                ("error", .string("mine")), ("a", .int(-42)), ("otel.status_code", .string("x")), ("b", .int(.min)), ("a", .int(7)),
                ("c", .bool(true)), ("d", .double(1.5)), ("error", .string("again")),
            ],
            status: status, serviceName: "s")
        let direct = ZipkinEncoder.encode([span])
        #expect(try JSONValue(parsing: direct) == JSONValue.array([ZipkinEncoder.json(span)]))
        // Same member order too.
        #expect(direct == Array(JSONValue.array([ZipkinEncoder.json(span)]).serialized))
    }
}

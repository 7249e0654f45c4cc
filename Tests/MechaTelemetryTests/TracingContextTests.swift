import Testing

@testable import MechaTelemetry

@Suite struct TracingContextTests {
    static let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test func parsesAValidHeader() throws {
        let parent = try #require(TraceParent(parsing: Self.valid))
        #expect(parent.traceID == TraceID(high: 0x4bf9_2f35_77b3_4da6, low: 0xa3ce_929d_0e0e_4736))
        #expect(parent.spanID == SpanID(0x00f0_67aa_0ba9_02b7))
        #expect(parent.flags == 0x01)
        #expect(parent.isSampled)
        #expect(parent.traceIDHex == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(parent.spanIDHex == "00f067aa0ba902b7")
        #expect(parent.header == Self.valid)
    }

    @Test func keepsUnknownFlagBitsOfVersion00() throws {
        let parent = try #require(TraceParent(parsing: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe"))
        #expect(parent.flags == 0xFE)
        #expect(!parent.isSampled)
        #expect(parent.header.hasSuffix("-fe"))
    }

    @Test(arguments: [
        "",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // upper-case trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",  // upper-case span id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",  // upper-case flags
        "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // upper-case version
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  // trace id 31 digits
        "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",  // trace id 33 digits
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",  // span id 15 digits
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",  // flags 1 digit
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",  // version 00 is exactly 55
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-010",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // zero span id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // forbidden version
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // wrong separator
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",  // not hex
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // no trimming
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  // future version: suffix needs '-'
    ])
    func rejectsInvalidHeaders(_ header: String) {
        #expect(TraceParent(parsing: header) == nil)
    }

    @Test func acceptsAFutureVersionWithASuffixAndKeepsOnlyTheSampledBit() throws {
        let parent = try #require(TraceParent(parsing: "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-the-future-will-be"))
        #expect(parent.flags == 0x01)
        #expect(parent.header == Self.valid)
        let plain = try #require(TraceParent(parsing: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"))
        #expect(!plain.isSampled)
    }

    @Test func parsesSubstrings() throws {
        let line = "traceparent: \(Self.valid)"
        let value = line.split(separator: " ")[1]
        #expect(TraceParent(parsing: value)?.header == Self.valid)
    }

    @Test func roundTripsRandomContexts() throws {
        for sampled in [true, false] {
            let parent = TraceParent.random(sampled: sampled)
            #expect(parent.traceID.isValid)
            #expect(parent.spanID.isValid)
            #expect(parent.isSampled == sampled)
            #expect(parent.header.utf8.count == 55)
            #expect(TraceParent(parsing: parent.header) == parent)
            #expect(TraceID(hex: parent.traceIDHex) == parent.traceID)
            #expect(SpanID(hex: parent.spanIDHex) == parent.spanID)
            #expect(TraceID(bytes: parent.traceID.bytes) == parent.traceID)
            #expect(SpanID(bytes: parent.spanID.bytes) == parent.spanID)
        }
        #expect(TraceParent.random(sampled: true).traceID != TraceParent.random(sampled: true).traceID)
    }

    @Test func idsAreBigEndian() {
        let id = TraceID(high: 0x0102_0304_0506_0708, low: 0x090a_0b0c_0d0e_0f10)
        #expect(id.bytes == Array(1...16))
        #expect(id.hex == "0102030405060708090a0b0c0d0e0f10")
        #expect(SpanID(0xff).bytes == [0, 0, 0, 0, 0, 0, 0, 0xff])
        #expect(SpanID(0xff).hex == "00000000000000ff")
        #expect(TraceID(bytes: [1, 2, 3]) == nil)
    }

    @Test func childKeepsTheTraceAndSetsTheSampledBit() throws {
        let parent = try #require(TraceParent(parsing: Self.valid))
        let child = parent.child(spanID: SpanID(0x1234), sampled: false)
        #expect(child.traceID == parent.traceID)
        #expect(child.spanID == SpanID(0x1234))
        #expect(!child.isSampled)
        #expect(child.header == "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000001234-00")
        #expect(child.child(spanID: SpanID(0x1), sampled: true).flags == 0x01)
        #expect(parent.child(sampled: true).spanID != parent.spanID)
    }

    // MARK: tracestate

    @Test func traceStateKeepsValidMembersAndNormalises() throws {
        let state = try #require(TraceState(parsing: "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7 ,,\t"))
        #expect(state.members.map(\.key) == ["congo", "rojo"])
        #expect(state["rojo"] == "00f067aa0ba902b7")
        #expect(state.header == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
        #expect(TraceState(parsing: "")?.isEmpty == true)
        #expect(TraceState(parsing: "tenant1@vendor=x,a-b_c*d/e=y")?.members.count == 2)
    }

    @Test(arguments: [
        "Congo=1",  // upper-case key
        "1abc=1",  // simple key must start with a letter
        "a=",  // empty value
        "a=b=c",  // '=' in value
        "a=1,a=2",  // duplicate key
        "novalue",
        "t@Sys=1",  // system id must be lower case
        "t@abcdefghijklmno=1",  // system id over 14 characters
    ])
    func traceStateRejectsMalformedMembers(_ header: String) {
        #expect(TraceState(parsing: header) == nil)
    }

    @Test func traceStateLimitsMembersAndLength() {
        let thirtyTwo = (0..<32).map { "k\($0)=v" }.joined(separator: ",")
        #expect(TraceState(parsing: thirtyTwo)?.members.count == 32)
        #expect(TraceState(parsing: thirtyTwo + ",k32=v") == nil)
        let long = "a=" + String(repeating: "x", count: 250) + ",b=" + String(repeating: "y", count: 250)
        #expect(long.utf8.count == 505)
        #expect(TraceState(parsing: long) != nil)
        #expect(TraceState(parsing: long + ",c=1234") != nil)  // 512 characters
        #expect(TraceState(parsing: long + ",c=12345") == nil)  // 513 characters
    }

    // MARK: baggage

    @Test func baggageParsesMembersAndProperties() throws {
        let baggage = try #require(Baggage(parsing: "userId=alice, serverNode = DF%2028 ;prop1; prop2=v ,isProduction=false"))
        #expect(baggage.members.map(\.key) == ["userId", "serverNode", "isProduction"])
        #expect(baggage["serverNode"] == "DF%2028")
        #expect(baggage.members[1].properties == ["prop1", "prop2=v"])
        #expect(baggage.header == "userId=alice,serverNode=DF%2028;prop1;prop2=v,isProduction=false")
        #expect(Baggage(parsing: "empty=")?.members.first?.value == "")
    }

    @Test(arguments: ["", "novalue", "=v", "k=v v", "k=\"v\"", "k=v,,k2=v2", "k=v;", "bad key=v", "k=v\\"])
    func baggageRejectsMalformedHeaders(_ header: String) {
        #expect(Baggage(parsing: header) == nil)
    }

    @Test func baggageLimitsMembersAndSize() {
        let members = (0..<180).map { "k\($0)=v" }.joined(separator: ",")
        #expect(Baggage(parsing: members)?.members.count == 180)
        #expect(Baggage(parsing: members + ",k180=v") == nil)
        let big = "k=" + String(repeating: "v", count: 8190)
        #expect(Baggage(parsing: big) != nil)
        #expect(Baggage(parsing: big + "v") == nil)
    }
}

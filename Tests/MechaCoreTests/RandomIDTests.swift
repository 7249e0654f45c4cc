import MechaCore
import Testing

struct RandomIDTests {
    @Test func uuidsAreVersion4AndDistinct() {
        let ids = (0..<10_000).map { _ in RandomID.uuid() }
        #expect(Set(ids).count == ids.count)
        for id in ids.prefix(100) {
            let bytes = Array(id.utf8)
            #expect(bytes.count == 36)
            #expect([8, 13, 18, 23].allSatisfy { bytes[$0] == UInt8(ascii: "-") }, "\(id)")
            #expect(bytes[14] == UInt8(ascii: "4"), "version nibble of \(id)")
            #expect("89ab".utf8.contains(bytes[19]), "variant nibble of \(id)")
            #expect(id == id.lowercased())
        }
    }

    @Test func fastRandomCoversTheBits() {
        var seen: UInt64 = 0
        var cleared: UInt64 = 0
        for _ in 0..<256 {
            let value = FastRandom.next()
            seen |= value
            cleared |= ~value
        }
        #expect(seen == .max && cleared == .max, "every bit should take both values")
    }
}

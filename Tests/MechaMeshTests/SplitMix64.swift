/// A tiny seeded generator so every random choice in these tests is reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) {
        self.state = seed
    }

    mutating func next() -> UInt64 {
        self.state &+= 0x9e37_79b9_7f4a_7c15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// Virtual time: nanoseconds from an arbitrary origin.
enum VirtualTime {
    static let origin: UInt64 = 1_000_000_000_000

    static func ms(_ milliseconds: Double) -> UInt64 {
        origin + UInt64(milliseconds * 1_000_000)
    }

    static func s(_ seconds: Double) -> UInt64 {
        origin + UInt64(seconds * 1_000_000_000)
    }
}

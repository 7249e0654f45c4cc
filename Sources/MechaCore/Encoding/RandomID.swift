import Synchronization

/// Random identifiers without Foundation.
public enum RandomID {
    /// A random (version 4) UUID in lowercase, hyphenated form, like Go's `uuid.New().String()`.
    public static func uuid() -> String {
        var high = FastRandom.next()
        var low = FastRandom.next()
        var bytes = [UInt8](repeating: 0, count: 16)
        for index in 0..<8 {
            bytes[index] = UInt8(truncatingIfNeeded: high)
            bytes[index + 8] = UInt8(truncatingIfNeeded: low)
            high >>= 8
            low >>= 8
        }
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        var output: [UInt8] = []
        output.reserveCapacity(36)
        for (index, byte) in bytes.enumerated() {
            if index == 4 || index == 6 || index == 8 || index == 10 { output.append(UInt8(ascii: "-")) }
            output.append(hex[Int(byte >> 4)])
            output.append(hex[Int(byte & 0x0F)])
        }
        return String(decoding: output, as: UTF8.self)
    }
}

/// A fast generator for identifiers (UUIDs, trace and span ids): xoshiro256** seeded once from the
/// system's generator, so an id costs no system call. Not for secrets — use
/// `SystemRandomNumberGenerator` for those.
public enum FastRandom {
    private static let state: Mutex<(UInt64, UInt64, UInt64, UInt64)> = {
        var system = SystemRandomNumberGenerator()
        var seed = (system.next() as UInt64, system.next() as UInt64, system.next() as UInt64, system.next() as UInt64)
        if seed == (0, 0, 0, 0) { seed.0 = 0x9E37_79B9_7F4A_7C15 }
        return Mutex(seed)
    }()

    public static func next() -> UInt64 {
        self.state.withLock { s in
            let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
            let t = s.1 << 17
            s.2 ^= s.0
            s.3 ^= s.1
            s.1 ^= s.2
            s.0 ^= s.3
            s.2 ^= t
            s.3 = s.3 << 45 | s.3 >> 19
            return result
        }
    }
}

/// `FastRandom` as a `RandomNumberGenerator`, for `Double.random(in:using:)` and the balancers.
public struct FastRandomGenerator: RandomNumberGenerator, Sendable {
    public init() {}
    public mutating func next() -> UInt64 { FastRandom.next() }
}

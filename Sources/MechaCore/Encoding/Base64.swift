/// Standard base64 (RFC 4648 §4, with padding), as Dapr uses for `data_base64` and binary values.
public enum Base64 {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let decodeTable: [Int8] = {
        var table = [Int8](repeating: -1, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = Int8(index) }
        return table
    }()

    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var iterator = bytes.makeIterator()
        while let first = iterator.next() {
            let second = iterator.next()
            let third = iterator.next()
            output.append(self.alphabet[Int(first >> 2)])
            output.append(self.alphabet[Int((first & 0x03) << 4 | (second ?? 0) >> 4)])
            output.append(second.map { self.alphabet[Int(($0 & 0x0F) << 2 | (third ?? 0) >> 6)] } ?? UInt8(ascii: "="))
            output.append(third.map { self.alphabet[Int($0 & 0x3F)] } ?? UInt8(ascii: "="))
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Decodes standard base64 with padding; `nil` when the text is not valid base64.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let bytes = Array(text.utf8)
        guard bytes.count % 4 == 0 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count / 4 * 3)
        var index = 0
        while index < bytes.count {
            var values: [Int8] = [0, 0, 0, 0]
            var padding = 0
            for offset in 0..<4 {
                let byte = bytes[index + offset]
                if byte == UInt8(ascii: "=") {
                    // Padding only in the last group, only in the last two positions, and contiguous.
                    guard index + 4 == bytes.count, offset >= 2 else { return nil }
                    padding += 1
                    values[offset] = 0
                } else {
                    guard padding == 0 else { return nil }
                    let value = self.decodeTable[Int(byte)]
                    guard value >= 0 else { return nil }
                    values[offset] = value
                }
            }
            let combined = UInt32(values[0]) << 18 | UInt32(values[1]) << 12 | UInt32(values[2]) << 6 | UInt32(values[3])
            output.append(UInt8((combined >> 16) & 0xFF))
            if padding < 2 { output.append(UInt8((combined >> 8) & 0xFF)) }
            if padding < 1 { output.append(UInt8(combined & 0xFF)) }
            index += 4
        }
        return output
    }
}

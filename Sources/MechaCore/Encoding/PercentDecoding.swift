/// Percent-decoding without Foundation.
public enum PercentDecoding {
    /// Like Go's `url.QueryUnescape`: `%XX` decoded, `+` becomes a space; nil on a bad escape.
    public static func queryUnescape(_ text: String) -> String? {
        self.unescape(text, plusIsSpace: true)
    }

    /// Like Go's `url.PathUnescape`: `%XX` decoded, `+` kept.
    public static func pathUnescape(_ text: String) -> String? {
        self.unescape(text, plusIsSpace: false)
    }

    /// The bytes `%XX` escapes stand for, other bytes as they are (`+` kept); nil on a malformed
    /// escape. For callers that report bad escapes and bad UTF-8 differently.
    public static func pathUnescapeBytes(_ text: some StringProtocol) -> [UInt8]? {
        self.unescapeBytes(text, plusIsSpace: false)
    }

    private static func unescape(_ text: String, plusIsSpace: Bool) -> String? {
        guard text.utf8.contains(where: { $0 == UInt8(ascii: "%") || (plusIsSpace && $0 == UInt8(ascii: "+")) }) else { return text }
        return self.unescapeBytes(text, plusIsSpace: plusIsSpace).flatMap { String(validating: $0, as: UTF8.self) }
    }

    private static func unescapeBytes(_ text: some StringProtocol, plusIsSpace: Bool) -> [UInt8]? {
        var output: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(Self.hex), let low = iterator.next().flatMap(Self.hex) else { return nil }
                output.append(high << 4 | low)
            } else if plusIsSpace && byte == UInt8(ascii: "+") {
                output.append(UInt8(ascii: " "))
            } else {
                output.append(byte)
            }
        }
        return output
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// `metadata.*` query parameters (prefix removed, first value wins) and the rest.
    public static func queryParameters(_ query: Substring) -> [(String, String)] {
        var result: [(String, String)] = []
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = self.queryUnescape(String(parts[0])) ?? String(parts[0])
            let value = parts.count > 1 ? (self.queryUnescape(String(parts[1])) ?? String(parts[1])) : ""
            result.append((key, value))
        }
        return result
    }

    public static func metadata(from query: Substring) -> [String: String] {
        var metadata: [String: String] = [:]
        for (key, value) in self.queryParameters(query) where key.hasPrefix("metadata.") {
            let name = String(key.dropFirst("metadata.".count))
            if metadata[name] == nil { metadata[name] = value }
        }
        return metadata
    }
}

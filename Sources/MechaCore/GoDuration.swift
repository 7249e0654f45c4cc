/// Durations written the way Dapr's YAML and metadata write them: Go's `time.ParseDuration` syntax
/// (`300ms`, `1.5s`, `2h45m`, `1h0m0s`), units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`.
public enum GoDuration {
    /// Parses a Go duration string. A bare `0` is accepted, as in Go. Returns `nil` on bad syntax.
    public static func parse(_ text: String) -> Duration? {
        var rest = Substring(text.trimmingSpaces())
        guard !rest.isEmpty else { return nil }
        var negative = false
        if rest.first == "-" || rest.first == "+" {
            negative = rest.first == "-"
            rest = rest.dropFirst()
        }
        if rest == "0" { return .zero }
        guard !rest.isEmpty else { return nil }
        var totalNanoseconds: Double = 0
        while !rest.isEmpty {
            // Number part: digits with an optional fraction.
            let numberEnd = rest.firstIndex { !($0.isASCII && ($0.isNumber || $0 == ".")) } ?? rest.endIndex
            let numberText = rest[rest.startIndex..<numberEnd]
            guard !numberText.isEmpty, numberText != ".", let number = Double(numberText) else { return nil }
            rest = rest[numberEnd...]
            let unitEnd = rest.firstIndex { $0.isASCII && ($0.isNumber || $0 == ".") } ?? rest.endIndex
            let unit = rest[rest.startIndex..<unitEnd]
            rest = rest[unitEnd...]
            let scale: Double
            switch unit {
            case "ns": scale = 1
            case "us", "µs", "μs": scale = 1_000
            case "ms": scale = 1_000_000
            case "s": scale = 1_000_000_000
            case "m": scale = 60_000_000_000
            case "h": scale = 3_600_000_000_000
            default: return nil
            }
            totalNanoseconds += number * scale
        }
        guard totalNanoseconds < 9.2e18 else { return nil }
        let nanoseconds = Int64(totalNanoseconds.rounded())
        return .nanoseconds(negative ? -nanoseconds : nanoseconds)
    }

    /// Formats like Go's `Duration.String()` (`1h2m3.5s`, `150ms`, `0s`).
    public static func format(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        var nanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        if nanoseconds == 0 { return "0s" }
        var prefix = ""
        if nanoseconds < 0 {
            prefix = "-"
            nanoseconds = -nanoseconds
        }
        if nanoseconds < 1_000 { return "\(prefix)\(nanoseconds)ns" }
        if nanoseconds < 1_000_000 { return prefix + trimmed(Double(nanoseconds) / 1_000) + "µs" }
        if nanoseconds < 1_000_000_000 { return prefix + trimmed(Double(nanoseconds) / 1_000_000) + "ms" }
        let hours = nanoseconds / 3_600_000_000_000
        let minutes = (nanoseconds / 60_000_000_000) % 60
        let secondsPart = Double(nanoseconds % 60_000_000_000) / 1_000_000_000
        var result = prefix
        if hours > 0 { result += "\(hours)h" }
        if hours > 0 || minutes > 0 { result += "\(minutes)m" }
        result += trimmed(secondsPart) + "s"
        return result
    }

    private static func trimmed(_ value: Double) -> String {
        if value == value.rounded() { return String(Int64(value)) }
        var text = String(value)
        while text.hasSuffix("0") { text.removeLast() }
        return text
    }
}

extension Duration {
    /// Whole milliseconds, truncated.
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }

    /// Seconds as a floating-point value.
    public var secondsDouble: Double {
        let (seconds, attoseconds) = self.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

extension StringProtocol {
    /// The string without leading and trailing ASCII whitespace (no Foundation needed).
    public func trimmingSpaces() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let start = self.firstIndex(where: { !isSpace($0) }) else { return "" }
        let end = self.lastIndex(where: { !isSpace($0) })!
        return String(self[start...end])
    }
}

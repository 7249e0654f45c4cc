/// Durations written the way Dapr's YAML and metadata write them: Go's `time.ParseDuration` syntax
/// (`300ms`, `1.5s`, `2h45m`, `1h0m0s`), units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`.
public enum GoDuration {
    /// Parses a Go duration string. A bare `0` is accepted, as in Go. Returns `nil` on bad syntax
    /// and, as Go does, on a value beyond ±`Duration.goMaximum`.
    public static func parse(_ text: String) -> Duration? {
        // Go's algorithm in integers: exact to the nanosecond over the whole range (a `Double`
        // sum loses nanoseconds beyond about 104 days and cannot round-trip `format`).
        var rest = Substring(text.trimmingSpaces()).utf8[...]
        guard !rest.isEmpty else { return nil }
        var negative = false
        if rest.first == UInt8(ascii: "-") || rest.first == UInt8(ascii: "+") {
            negative = rest.first == UInt8(ascii: "-")
            rest = rest.dropFirst()
        }
        if rest.elementsEqual("0".utf8) { return .zero }
        guard !rest.isEmpty else { return nil }
        let limit: UInt64 = 1 << 63
        func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
        var total: UInt64 = 0
        while !rest.isEmpty {
            // The whole part.
            var whole: UInt64 = 0
            var digits = 0
            while let byte = rest.first, isDigit(byte) {
                guard whole <= (limit - 1) / 10 else { return nil }
                whole = whole * 10 + UInt64(byte - UInt8(ascii: "0"))
                guard whole <= limit else { return nil }
                digits += 1
                rest = rest.dropFirst()
            }
            // The fraction: digits beyond what 63 bits hold are read and ignored, as in Go.
            var fraction: UInt64 = 0
            var scale: Double = 1
            var fractionDigits = 0
            if rest.first == UInt8(ascii: ".") {
                rest = rest.dropFirst()
                var overflowed = false
                while let byte = rest.first, isDigit(byte) {
                    rest = rest.dropFirst()
                    fractionDigits += 1
                    if overflowed || fraction > (limit - 1) / 10 {
                        overflowed = true
                        continue
                    }
                    let next = fraction * 10 + UInt64(byte - UInt8(ascii: "0"))
                    if next > limit {
                        overflowed = true
                        continue
                    }
                    fraction = next
                    scale *= 10
                }
            }
            guard digits > 0 || fractionDigits > 0 else { return nil }
            // The unit: everything up to the next digit or dot.
            let unitEnd = rest.firstIndex { $0 == UInt8(ascii: ".") || isDigit($0) } ?? rest.endIndex
            let unit = Substring(rest[rest.startIndex..<unitEnd])
            rest = rest[unitEnd...]
            let nanosecondsPerUnit: UInt64
            switch unit {
            case "ns": nanosecondsPerUnit = 1
            case "us", "µs", "μs": nanosecondsPerUnit = 1_000
            case "ms": nanosecondsPerUnit = 1_000_000
            case "s": nanosecondsPerUnit = 1_000_000_000
            case "m": nanosecondsPerUnit = 60_000_000_000
            case "h": nanosecondsPerUnit = 3_600_000_000_000
            default: return nil
            }
            guard whole <= limit / nanosecondsPerUnit else { return nil }
            var value = whole * nanosecondsPerUnit
            if fraction > 0 {
                value += UInt64(Double(fraction) * (Double(nanosecondsPerUnit) / scale))
                guard value <= limit else { return nil }
            }
            total += value
            guard total <= limit else { return nil }
        }
        if negative { return .nanoseconds(total == limit ? Int64.min : -Int64(total)) }
        guard total < limit else { return nil }
        return .nanoseconds(Int64(total))
    }

    /// Formats like Go's `Duration.String()` (`1h2m3.5s`, `150ms`, `1m0.000000001s`, `0s`).
    public static func format(_ duration: Duration) -> String {
        // Beyond Go's range the text saturates, as Go's own durations cannot be longer.
        let signed = duration.clampedNanoseconds
        if signed == 0 { return "0s" }
        let prefix = signed < 0 ? "-" : ""
        let nanoseconds = signed.magnitude
        if nanoseconds < 1_000 { return "\(prefix)\(nanoseconds)ns" }
        if nanoseconds < 1_000_000 { return prefix + Self.decimal(nanoseconds, fractionDigits: 3) + "µs" }
        if nanoseconds < 1_000_000_000 { return prefix + Self.decimal(nanoseconds, fractionDigits: 6) + "ms" }
        let hours = nanoseconds / 3_600_000_000_000
        let minutes = (nanoseconds / 60_000_000_000) % 60
        var result = prefix
        if hours > 0 { result += "\(hours)h" }
        if hours > 0 || minutes > 0 { result += "\(minutes)m" }
        result += Self.decimal(nanoseconds % 60_000_000_000, fractionDigits: 9) + "s"
        return result
    }

    /// `value / 10^fractionDigits` in decimal, without trailing zeros in the fraction.
    private static func decimal(_ value: UInt64, fractionDigits: Int) -> String {
        var scale: UInt64 = 1
        for _ in 0..<fractionDigits { scale *= 10 }
        let whole = value / scale
        let fraction = value % scale
        guard fraction > 0 else { return String(whole) }
        var digits = Array(String(fraction).utf8)
        digits.insert(contentsOf: repeatElement(UInt8(ascii: "0"), count: fractionDigits - digits.count), at: 0)
        while digits.last == UInt8(ascii: "0") { digits.removeLast() }
        return String(whole) + "." + String(decoding: digits, as: UTF8.self)
    }
}

extension Duration {
    /// Go's largest duration, `math.MaxInt64` nanoseconds (about 292 years): what Dapr clamps a
    /// request's TTL to, and more than any Go duration string can say.
    public static let goMaximum: Duration = .nanoseconds(Int64.max)

    /// The longest interval a resource may configure (100 years). An instant this far from now
    /// still fits every clock representation in use (nanoseconds since 1970 in an `Int64` run out
    /// in 2262), so timers and deadlines computed from it cannot overflow.
    public static let maximumInterval: Duration = .seconds(100 * 365 * 86_400)

    /// Whole milliseconds, truncated; saturates at the bounds of `Int64` instead of trapping.
    public var milliseconds: Int64 {
        Int64(clamping: self.attoseconds / 1_000_000_000_000_000)
    }

    /// Whole nanoseconds, truncated; saturates at the bounds of `Int64` instead of trapping.
    public var clampedNanoseconds: Int64 {
        Int64(clamping: self.attoseconds / 1_000_000_000)
    }

    /// This duration limited to `range` (for values computed at run time, after validation).
    public func clamped(to range: ClosedRange<Duration>) -> Duration {
        min(max(self, range.lowerBound), range.upperBound)
    }

    /// Seconds as a floating-point value.
    public var secondsDouble: Double {
        let (seconds, attoseconds) = self.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

extension Int64 {
    /// `self + other`, held at `Int64.min` / `Int64.max` instead of trapping (instants in
    /// milliseconds plus a duration read from a request).
    public func addingSaturated(_ other: Int64) -> Int64 {
        let (sum, overflow) = self.addingReportingOverflow(other)
        guard overflow else { return sum }
        return other > 0 ? .max : .min
    }

    /// `self - other`, held at the bounds of `Int64` instead of trapping.
    public func subtractingSaturated(_ other: Int64) -> Int64 {
        let (difference, overflow) = self.subtractingReportingOverflow(other)
        guard overflow else { return difference }
        return other > 0 ? .min : .max
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

/// Durations written the way Dapr's YAML and metadata write them: Go's `time.ParseDuration` syntax
/// (`300ms`, `1.5s`, `2h45m`, `1h0m0s`), units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`.
/// Why a Go duration string was refused, in Go's words (`time: invalid duration "x"`).
public struct GoDurationError: Error, Sendable, Hashable {
    public let message: String
}

public enum GoDuration {
    /// Parses a Go duration string (surrounding spaces ignored). A bare `0` is accepted, as in Go.
    /// Returns `nil` on bad syntax and, as Go does, on a value beyond ±`Duration.goMaximum`.
    public static func parse(_ text: String) -> Duration? {
        (try? self.parseNanoseconds(text.trimmingSpaces())).map { .nanoseconds($0) }
    }

    /// `time.ParseDuration` in integers, as Go computes it (exact to the nanosecond over the whole
    /// range): a possibly signed sequence of decimal numbers, each with an optional fraction and a
    /// unit (`ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`, `h`). Returns nanoseconds; errors carry Go's text.
    public static func parseNanoseconds(_ text: String) throws(GoDurationError) -> Int64 {
        let original = text
        var s = Array(text.utf8)[...]
        func invalid() -> GoDurationError { GoDurationError(message: "time: invalid duration " + GoQuote.time(original)) }

        var total: UInt64 = 0
        var negative = false
        if let first = s.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") {
            negative = first == UInt8(ascii: "-")
            s = s.dropFirst()
        }
        if s.count == 1 && s.first == UInt8(ascii: "0") { return 0 }
        if s.isEmpty { throw invalid() }

        let limit = UInt64(1) << 63
        while !s.isEmpty {
            var value: UInt64 = 0
            var fraction: UInt64 = 0
            var scale: Double = 1

            guard let c = s.first, c == UInt8(ascii: ".") || isDigit(c) else { throw invalid() }

            // Integer part [0-9]*
            let before = s.count
            while let d = s.first, isDigit(d) {
                if value > limit / 10 { throw invalid() }  // "time: bad [0-9]*" is reported as invalid
                value = value * 10 + UInt64(d - UInt8(ascii: "0"))
                if value > limit { throw invalid() }
                s = s.dropFirst()
            }
            let hadIntegerDigits = s.count != before

            // Fraction (\.[0-9]*)?
            var hadFractionDigits = false
            if s.first == UInt8(ascii: ".") {
                s = s.dropFirst()
                let fractionStart = s.count
                var overflow = false
                while let d = s.first, isDigit(d) {
                    s = s.dropFirst()
                    if overflow { continue }
                    if fraction > (limit - 1) / 10 {
                        overflow = true
                        continue
                    }
                    let next = fraction * 10 + UInt64(d - UInt8(ascii: "0"))
                    if next > limit {
                        overflow = true
                        continue
                    }
                    fraction = next
                    scale *= 10
                }
                hadFractionDigits = s.count != fractionStart
            }
            if !hadIntegerDigits && !hadFractionDigits { throw invalid() }

            // Unit: everything up to the next '.' or digit.
            var unitBytes: [UInt8] = []
            while let u = s.first, u != UInt8(ascii: "."), !isDigit(u) {
                unitBytes.append(u)
                s = s.dropFirst()
            }
            if unitBytes.isEmpty {
                throw GoDurationError(message: "time: missing unit in duration " + GoQuote.time(original))
            }
            let unitText = String(decoding: unitBytes, as: UTF8.self)
            guard let unit = unitNanoseconds(unitText) else {
                throw GoDurationError(
                    message: "time: unknown unit \(GoQuote.time(unitText)) in duration \(GoQuote.time(original))"
                )
            }
            if value > limit / unit { throw invalid() }
            value *= unit
            if fraction > 0 {
                // Go uses float64 here too, to be nanosecond-accurate for fractions of hours.
                let add = Double(fraction) * (Double(unit) / scale)
                value += add >= 1.8e19 ? UInt64.max / 2 : UInt64(add)
                if value > limit { throw invalid() }
            }
            total += value
            if total > limit { throw invalid() }
        }
        if negative {
            return total == limit ? Int64.min : -Int64(total)
        }
        if total > limit - 1 { throw invalid() }
        return Int64(total)
    }

    private static func isDigit(_ c: UInt8) -> Bool {
        c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")
    }

    private static func unitNanoseconds(_ unit: String) -> UInt64? {
        switch unit.unicodeScalars.map(\.value) {
        case [0x6E, 0x73]: return 1  // ns
        case [0x75, 0x73], [0xB5, 0x73], [0x3BC, 0x73]: return 1_000  // us, µs (U+00B5), μs (U+03BC)
        case [0x6D, 0x73]: return 1_000_000  // ms
        case [0x73]: return 1_000_000_000  // s
        case [0x6D]: return 60_000_000_000  // m
        case [0x68]: return 3_600_000_000_000  // h
        default: return nil
        }
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

import MechaCore

/// Small re-implementations of the Go standard-library routines whose behaviour (and error text)
/// Dapr's cron parser exposes: `strconv.Atoi`, `strconv.Quote`, `time.ParseDuration`.
enum GoSyntax {
    struct Failure: Error, Sendable, Hashable {
        let message: String
    }

    // MARK: strconv.Atoi

    /// `strconv.Atoi` on a 64-bit platform: optional sign, decimal digits only.
    /// Errors read `strconv.Atoi: parsing "<s>": invalid syntax` / `value out of range`.
    static func atoi(_ text: String) throws(Failure) -> Int64 {
        let bytes = Array(text.utf8)
        func fail(_ reason: String) -> Failure {
            Failure(message: "strconv.Atoi: parsing \(quoteStrconv(text)): \(reason)")
        }
        var index = 0
        var negative = false
        if let first = bytes.first, first == UInt8(ascii: "+") || first == UInt8(ascii: "-") {
            negative = first == UInt8(ascii: "-")
            index = 1
        }
        guard index < bytes.count else { throw fail("invalid syntax") }
        var magnitude: UInt64 = 0
        while index < bytes.count {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit <= 9 else { throw fail("invalid syntax") }
            let (times10, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(digit))
            if overflow1 || overflow2 { throw fail("value out of range") }
            magnitude = sum
            index += 1
        }
        let limit = UInt64(1) << 63
        if negative {
            guard magnitude <= limit else { throw fail("value out of range") }
            return magnitude == limit ? Int64.min : -Int64(magnitude)
        }
        guard magnitude < limit else { throw fail("value out of range") }
        return Int64(magnitude)
    }

    // MARK: Quoting

    /// `strconv.Quote` (`GoQuote.strconv`).
    static func quoteStrconv(_ text: String) -> String {
        GoQuote.strconv(text)
    }

    /// The `time` package's private `quote`: ASCII printable characters are kept, `"` and `\` are
    /// escaped, every byte of anything else is written as `\xNN`.
    static func quoteTime(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            if scalar.value >= 0x80 || scalar.value < 0x20 {
                for byte in String(scalar).utf8 {
                    out += "\\x" + hex(UInt64(byte), width: 2)
                }
            } else {
                if scalar == "\"" || scalar == "\\" { out += "\\" }
                out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    private static func hex(_ value: UInt64, width: Int) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    // MARK: time.ParseDuration

    /// `time.ParseDuration`: a possibly signed sequence of decimal numbers, each with an optional
    /// fraction and a unit (`ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`, `h`). Returns nanoseconds.
    static func parseDuration(_ text: String) throws(Failure) -> Int64 {
        let original = text
        var s = Array(text.utf8)[...]
        func invalid() -> Failure { Failure(message: "time: invalid duration " + quoteTime(original)) }

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
                throw Failure(message: "time: missing unit in duration " + quoteTime(original))
            }
            let unitText = String(decoding: unitBytes, as: UTF8.self)
            guard let unit = unitNanoseconds(unitText) else {
                throw Failure(
                    message: "time: unknown unit \(quoteTime(unitText)) in duration \(quoteTime(original))"
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
}

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
            Failure(message: "strconv.Atoi: parsing \(GoQuote.strconv(text)): \(reason)")
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

    // MARK: time.ParseDuration

    /// `time.ParseDuration` with Go's error texts (`GoDuration.parseNanoseconds`). Returns nanoseconds.
    static func parseDuration(_ text: String) throws(Failure) -> Int64 {
        do {
            return try GoDuration.parseNanoseconds(text)
        } catch {
            throw Failure(message: error.message)
        }
    }
}

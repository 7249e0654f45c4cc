/// A parsed `bindings.cron` schedule, with the syntax of Dapr's cron parser (`github.com/dapr/kit/cron`,
/// a fork of `robfig/cron` v3) configured as the binding configures it:
/// `SecondOptional | Minute | Hour | Dom | Month | Dow | Descriptor`.
///
/// Accepted forms:
/// - `[sec] min hour dom month dow` — 5 or 6 whitespace-separated fields (with 5, seconds are `0`).
///   Each field is a comma list of `*`/`?`, `n`, `a-b`, `*/n`, `a-b/n` or `a/n` (= `a-max/n`).
///   Months accept `jan`…`dec`, weekdays `sun`…`sat` (case-insensitive); weekday `7` is rejected.
///   When both day-of-month and day-of-week are restricted, a day matching *either* fires.
/// - `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly`.
/// - `@every <Go duration>` — a fixed interval (minimum 1ms, truncated to whole milliseconds).
/// - An optional `CRON_TZ=<zone> ` or `TZ=<zone> ` prefix naming an IANA zone for the schedule.
///
/// Parse errors carry the binding's wording: `invalid schedule format '<spec>': <reason>`.
public struct CronSchedule: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        /// `@every <duration>`: fire at a constant interval, not tied to the calendar.
        case every(Duration)
        /// A calendar schedule; see `nextFireTime(after:)`.
        case calendar
    }

    public let kind: Kind
    /// The text the schedule was parsed from.
    public let spec: String
    /// The zone named by a `CRON_TZ=`/`TZ=` prefix; nil means the process local zone.
    public let timeZone: TimeZoneRules?
    /// The calendar fields (all empty for `.every`).
    let fields: CronFields

    public init(parsing spec: String) throws(CronScheduleError) {
        do throws(GoSyntax.Failure) {
            let parsed = try CronParser.parse(spec)
            self.kind = parsed.kind
            self.timeZone = parsed.zone
            self.fields = parsed.fields
            self.spec = spec
        } catch {
            throw CronScheduleError(spec: spec, reason: error.message)
        }
    }

    /// For calendar schedules: the first fire time strictly after `unixSeconds` (seconds since the
    /// epoch, UTC), evaluated in the schedule's zone (`CRON_TZ`) or the process local zone
    /// (`TimeZoneRules.local`). nil if none within 5 years (e.g. `0 0 0 30 2 *`).
    ///
    /// For `.every` schedules this is `unixSeconds` plus the interval rounded up to whole seconds
    /// (at least 1); use the `Duration` in `kind` for sub-second precision.
    public func nextFireTime(after unixSeconds: Int64) -> Int64? {
        self.nextFireTime(after: unixSeconds, localZone: .local)
    }

    /// `nextFireTime(after:)` with an explicit zone standing in for the process local zone (used when
    /// the schedule has no `CRON_TZ=` prefix).
    ///
    /// Daylight-saving time: wall-clock times that do not exist (spring-forward gap) are skipped.
    /// A wall-clock time that occurs twice (fall-back overlap) fires once, at its first occurrence —
    /// except for schedules whose hour field is every hour (`*`, `?`, `0-23`, …), which follow elapsed
    /// time through the repeated hour as robfig/cron does, so `*/10 * * * * *` or `@hourly` does not
    /// stall for the length of the overlap.
    public func nextFireTime(after unixSeconds: Int64, localZone: TimeZoneRules) -> Int64? {
        switch self.kind {
        case .every(let interval):
            let (seconds, attoseconds) = interval.components
            let step = max(1, seconds + (attoseconds > 0 ? 1 : 0))
            let (next, overflow) = unixSeconds.addingReportingOverflow(step)
            return overflow ? nil : next
        case .calendar:
            return self.fields.nextFire(after: unixSeconds, zone: self.timeZone ?? localZone)
        }
    }
}

/// A schedule that failed to parse. `description` is `invalid schedule format '<spec>': <reason>`,
/// where `reason` is the Dapr/robfig parser's message, e.g.
/// `expected 5 to 6 fields, found 1: [*]` or `end of range (7) above maximum (6): 7`.
public struct CronScheduleError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The schedule text as given.
    public let spec: String
    /// The parser's own message.
    public let reason: String

    public init(spec: String, reason: String) {
        self.spec = spec
        self.reason = reason
    }

    public var description: String { "invalid schedule format '\(self.spec)': \(self.reason)" }
}

// MARK: - Fields

/// The six calendar fields as bit sets (bit n set = value n matches), plus robfig's "star bit"
/// (bit 63) on day-of-month/day-of-week recording that the field was `*`/`?` (or `*/1`).
struct CronFields: Sendable, Hashable {
    static let starBit: UInt64 = 1 << 63

    var second: UInt64 = 0
    var minute: UInt64 = 0
    var hour: UInt64 = 0
    var dayOfMonth: UInt64 = 0
    var month: UInt64 = 0
    var dayOfWeek: UInt64 = 0

    /// Whether every hour 0...23 matches.
    var coversEveryHour: Bool { self.hour & 0xFF_FFFF == 0xFF_FFFF }

    /// robfig's `dayMatches`: if either day field is a star, both must match; otherwise either.
    func dayMatches(_ c: CivilDateTime) -> Bool {
        let domMatch = self.dayOfMonth & (1 << UInt64(c.day)) != 0
        let dowMatch = self.dayOfWeek & (1 << UInt64(c.weekday)) != 0
        if self.dayOfMonth & Self.starBit != 0 || self.dayOfWeek & Self.starBit != 0 {
            return domMatch && dowMatch
        }
        return domMatch || dowMatch
    }

    /// The smallest set bit in `bits` within `from...through`.
    private static func nextBit(_ bits: UInt64, from: Int, through: Int) -> Int? {
        guard from <= through else { return nil }
        let shifted = bits >> UInt64(from)
        guard shifted != 0 else { return nil }
        let n = from + shifted.trailingZeroBitCount
        return n <= through ? n : nil
    }

    /// The first matching wall time (local seconds as if UTC) at or after `wall`, with a year no
    /// later than `yearLimit`.
    func nextWall(atOrAfter wall: Int64, yearLimit: Int64) -> Int64? {
        var c = CivilDateTime(wallSeconds: wall)
        while c.year <= yearLimit {
            if self.month & (1 << UInt64(c.month)) == 0 {
                if let next = Self.nextBit(self.month, from: c.month + 1, through: 12) {
                    c = CivilDateTime(year: c.year, month: next, day: 1)
                } else {
                    c = CivilDateTime(year: c.year + 1, month: 1, day: 1)
                }
                continue
            }
            if !self.dayMatches(c) {
                c.advanceToNextDay()
                continue
            }
            if self.hour & (1 << UInt64(c.hour)) == 0 {
                if let next = Self.nextBit(self.hour, from: c.hour + 1, through: 23) {
                    c.hour = next
                    c.minute = 0
                    c.second = 0
                } else {
                    c.advanceToNextDay()
                }
                continue
            }
            if self.minute & (1 << UInt64(c.minute)) == 0 {
                if let next = Self.nextBit(self.minute, from: c.minute + 1, through: 59) {
                    c.minute = next
                    c.second = 0
                } else {
                    c.advanceToNextHour()
                }
                continue
            }
            if self.second & (1 << UInt64(c.second)) == 0 {
                if let next = Self.nextBit(self.second, from: c.second + 1, through: 59) {
                    c.second = next
                } else {
                    c.advanceToNextMinute()
                }
                continue
            }
            return c.wallSeconds
        }
        return nil
    }

    /// The first fire instant strictly after `after` in `zone`.
    ///
    /// Walks the zone's constant-offset segments in order; within a segment wall time and instant
    /// differ by a fixed offset, so the wall-clock search maps straight back. Gap wall times belong to
    /// no segment and are never produced.
    func nextFire(after: Int64, zone: TimeZoneRules) -> Int64? {
        // Keep all arithmetic far away from overflow (±142 million years).
        let bound: Int64 = 1 << 52
        guard after > -bound, after < bound else { return nil }
        var segmentStart = after + 1
        var offset = Int64(zone.offset(at: segmentStart))
        let yearLimit = CivilDateTime(wallSeconds: segmentStart + offset).year + 5
        let followElapsedTime = self.coversEveryHour
        while true {
            let segmentEnd = zone.nextTransition(after: segmentStart)
            var from = segmentStart + offset
            while true {
                guard let wall = self.nextWall(atOrAfter: from, yearLimit: yearLimit) else { return nil }
                let instant = wall - offset
                if let segmentEnd, instant >= segmentEnd { break }
                // In a fall-back overlap, a wall time already seen earlier fires only once.
                if followElapsedTime || !zone.instants(forWallSeconds: wall).contains(where: { $0 < instant }) {
                    return instant
                }
                from = wall + 1
            }
            guard let segmentEnd, segmentEnd < bound else { return nil }
            segmentStart = segmentEnd
            offset = Int64(zone.offset(at: segmentStart))
        }
    }
}

// MARK: - Parser

/// A port of `dapr/kit/cron`'s `Parser.Parse`, keeping its error messages.
enum CronParser {
    typealias Failure = GoSyntax.Failure

    struct Parsed {
        var kind: CronSchedule.Kind
        var zone: TimeZoneRules?
        var fields: CronFields
    }

    struct Bounds {
        let min: Int64
        let max: Int64
        let names: [String: Int64]?
    }

    static let seconds = Bounds(min: 0, max: 59, names: nil)
    static let minutes = Bounds(min: 0, max: 59, names: nil)
    static let hours = Bounds(min: 0, max: 23, names: nil)
    static let daysOfMonth = Bounds(min: 1, max: 31, names: nil)
    static let months = Bounds(
        min: 1, max: 12,
        names: [
            "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
            "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
        ]
    )
    static let daysOfWeek = Bounds(
        min: 0, max: 6,
        names: ["sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6]
    )

    static func parse(_ original: String) throws(Failure) -> Parsed {
        if original.isEmpty { throw Failure(message: "empty spec string") }
        var spec = original
        var zone: TimeZoneRules?

        if spec.utf8.starts(with: "TZ=".utf8) || spec.utf8.starts(with: "CRON_TZ=".utf8) {
            let scalars = Array(spec.unicodeScalars)
            guard let space = scalars.firstIndex(where: { $0.properties.isWhitespace }) else {
                throw Failure(message: "timezone prefix \(spec) is not followed by a schedule")
            }
            let equals = scalars.firstIndex(of: "=")!
            let name = string(scalars[(equals + 1)..<space])
            if name != "Local" {
                do throws(TimeZoneError) {
                    zone = try TimeZoneRules.named(name)
                } catch {
                    throw Failure(message: "provided bad location \(name): \(error.message)")
                }
            }
            spec = trimWhitespace(scalars[space...])
        }

        if spec.utf8.first == UInt8(ascii: "@") {
            return Parsed(kind: try self.descriptor(spec), zone: zone, fields: self.descriptorFields(spec) ?? CronFields())
        }

        var fields = self.splitFields(spec)
        guard fields.count == 5 || fields.count == 6 else {
            throw Failure(
                message: "expected 5 to 6 fields, found \(fields.count): [\(fields.joined(separator: " "))]"
            )
        }
        if fields.count == 5 { fields.insert("0", at: 0) }

        var result = CronFields()
        result.second = try self.field(fields[0], self.seconds)
        result.minute = try self.field(fields[1], self.minutes)
        result.hour = try self.field(fields[2], self.hours)
        result.dayOfMonth = try self.field(fields[3], self.daysOfMonth)
        result.month = try self.field(fields[4], self.months)
        result.dayOfWeek = try self.field(fields[5], self.daysOfWeek)
        return Parsed(kind: .calendar, zone: zone, fields: result)
    }

    // MARK: Descriptors

    private static func all(_ bounds: Bounds) -> UInt64 {
        bits(from: bounds.min, through: bounds.max, step: 1) | CronFields.starBit
    }

    /// The fields of the calendar descriptors; nil for anything else.
    static func descriptorFields(_ descriptor: String) -> CronFields? {
        var f = CronFields()
        f.second = 1 << 0
        f.minute = 1 << 0
        switch descriptor {
        case "@yearly", "@annually":
            f.hour = 1 << 0
            f.dayOfMonth = 1 << 1
            f.month = 1 << 1
            f.dayOfWeek = all(daysOfWeek)
        case "@monthly":
            f.hour = 1 << 0
            f.dayOfMonth = 1 << 1
            f.month = all(months)
            f.dayOfWeek = all(daysOfWeek)
        case "@weekly":
            f.hour = 1 << 0
            f.dayOfMonth = all(daysOfMonth)
            f.month = all(months)
            f.dayOfWeek = 1 << 0
        case "@daily", "@midnight":
            f.hour = 1 << 0
            f.dayOfMonth = all(daysOfMonth)
            f.month = all(months)
            f.dayOfWeek = all(daysOfWeek)
        case "@hourly":
            f.hour = all(hours)
            f.dayOfMonth = all(daysOfMonth)
            f.month = all(months)
            f.dayOfWeek = all(daysOfWeek)
        default:
            return nil
        }
        return f
    }

    static func descriptor(_ descriptor: String) throws(Failure) -> CronSchedule.Kind {
        if self.descriptorFields(descriptor) != nil { return .calendar }
        let every = "@every "
        if descriptor.utf8.starts(with: every.utf8) {
            let text = String(decoding: Array(descriptor.utf8.dropFirst(every.utf8.count)), as: UTF8.self)
            var nanoseconds: Int64
            do throws(Failure) {
                nanoseconds = try GoSyntax.parseDuration(text)
            } catch {
                throw Failure(message: "failed to parse duration \(descriptor): \(error.message)")
            }
            // dapr/kit's Every: below a millisecond rounds up to one; sub-millisecond parts are dropped.
            let millisecond: Int64 = 1_000_000
            if nanoseconds < millisecond { nanoseconds = millisecond }
            nanoseconds -= nanoseconds % millisecond
            return .every(.nanoseconds(nanoseconds))
        }
        throw Failure(message: "unrecognized descriptor: \(descriptor)")
    }

    // MARK: Fields

    /// `getField`: a comma-separated list of ranges (empty items are ignored, as Go's `FieldsFunc` does).
    static func field(_ text: String, _ bounds: Bounds) throws(Failure) -> UInt64 {
        var result: UInt64 = 0
        for expression in split(text, on: ",", omittingEmpty: true) {
            result |= try self.range(expression, bounds)
        }
        return result
    }

    /// `getRange`: `*`/`?` | `n` | `a-b`, optionally followed by `/step`.
    static func range(_ expression: String, _ bounds: Bounds) throws(Failure) -> UInt64 {
        let rangeAndStep = split(expression, on: "/", omittingEmpty: false)
        let lowAndHigh = split(rangeAndStep[0], on: "-", omittingEmpty: false)
        let singleDigit = lowAndHigh.count == 1

        var start: Int64
        var end: Int64
        var extra: UInt64 = 0
        if lowAndHigh[0] == "*" || lowAndHigh[0] == "?" {
            start = bounds.min
            end = bounds.max
            extra = CronFields.starBit
        } else {
            start = try self.intOrName(lowAndHigh[0], bounds.names)
            switch lowAndHigh.count {
            case 1: end = start
            case 2: end = try self.intOrName(lowAndHigh[1], bounds.names)
            default: throw Failure(message: "too many hyphens: \(expression)")
            }
        }

        var step: Int64
        switch rangeAndStep.count {
        case 1:
            step = 1
        case 2:
            step = try self.nonNegativeInt(rangeAndStep[1])
            // "N/step" means "N-max/step".
            if singleDigit { end = bounds.max }
            if step > 1 { extra = 0 }
        default:
            throw Failure(message: "too many slashes: \(expression)")
        }

        if start < bounds.min {
            throw Failure(message: "beginning of range (\(start)) below minimum (\(bounds.min)): \(expression)")
        }
        if end > bounds.max {
            throw Failure(message: "end of range (\(end)) above maximum (\(bounds.max)): \(expression)")
        }
        if start > end {
            throw Failure(message: "beginning of range (\(start)) beyond end of range (\(end)): \(expression)")
        }
        if step == 0 {
            throw Failure(message: "step of range should be a positive number: \(expression)")
        }
        return self.bits(from: start, through: end, step: step) | extra
    }

    static func bits(from start: Int64, through end: Int64, step: Int64) -> UInt64 {
        var result: UInt64 = 0
        var i = start
        while i <= end {
            result |= 1 << UInt64(i)
            let (next, overflow) = i.addingReportingOverflow(step)
            if overflow { break }
            i = next
        }
        return result
    }

    static func intOrName(_ text: String, _ names: [String: Int64]?) throws(Failure) -> Int64 {
        if let names, let value = names[text.lowercased()] { return value }
        return try self.nonNegativeInt(text)
    }

    /// `mustParseInt`.
    static func nonNegativeInt(_ text: String) throws(Failure) -> Int64 {
        let number: Int64
        do throws(Failure) {
            number = try GoSyntax.atoi(text)
        } catch {
            throw Failure(message: "failed to parse int from \(text): \(error.message)")
        }
        if number < 0 { throw Failure(message: "negative number (\(number)) not allowed: \(text)") }
        return number
    }

    // MARK: Text helpers

    private static func string(_ scalars: some Sequence<Unicode.Scalar>) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    /// Go's `strings.TrimSpace` (Unicode white space).
    private static func trimWhitespace(_ scalars: ArraySlice<Unicode.Scalar>) -> String {
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return string(scalars[first...last])
    }

    /// Go's `strings.Fields` (split on runs of Unicode white space).
    static func splitFields(_ text: String) -> [String] {
        var fields: [String] = []
        var current = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar.properties.isWhitespace {
                if !current.isEmpty {
                    fields.append(String(current))
                    current = String.UnicodeScalarView()
                }
            } else {
                current.append(scalar)
            }
        }
        if !current.isEmpty { fields.append(String(current)) }
        return fields
    }

    /// Go's `strings.Split` (or `FieldsFunc` when `omittingEmpty`) on a single ASCII separator.
    static func split(_ text: String, on separator: Unicode.Scalar, omittingEmpty: Bool) -> [String] {
        var parts: [String] = []
        var current = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar == separator {
                if !(omittingEmpty && current.isEmpty) { parts.append(String(current)) }
                current = String.UnicodeScalarView()
            } else {
                current.append(scalar)
            }
        }
        if !(omittingEmpty && current.isEmpty) { parts.append(String(current)) }
        return parts
    }
}

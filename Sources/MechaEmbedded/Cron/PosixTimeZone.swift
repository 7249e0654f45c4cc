/// A POSIX `TZ` rule string such as `CET-1CEST,M3.5.0,M10.5.0/3`, `EST5EDT,M3.2.0,M11.1.0`,
/// `<+03>-3` or `UTC0` — the form used by the footer of TZif v2+ files and by the `TZ` variable.
///
/// Supported: quoted (`<...>`) and alphabetic zone names, `[+-]hh[:mm[:ss]]` offsets (POSIX sign:
/// positive is *west* of Greenwich), DST offset defaulting to one hour ahead of standard time,
/// rules `Jn` (1...365, February 29 never counted), `n` (0...365) and `Mm.w.d`, each with an optional
/// `/time` (default 02:00:00; the RFC 8536 extension of negative and up to 167-hour times is accepted).
/// A DST name without rules uses the US rules `M3.2.0,M11.1.0`, like Go.
struct PosixTimeZone: Sendable, Hashable {
    /// UTC offset of standard time, in seconds east of Greenwich.
    var standardOffset: Int32
    var daylight: Daylight?

    struct Daylight: Sendable, Hashable {
        /// UTC offset of daylight time, in seconds east of Greenwich.
        var offset: Int32
        var start: Rule
        var end: Rule
    }

    struct Rule: Sendable, Hashable {
        enum Day: Sendable, Hashable {
            /// `Jn`: 1...365, February 29 is never counted.
            case julianSkippingLeapDay(Int)
            /// `n`: zero-based day of the year, 0...365.
            case zeroBasedDayOfYear(Int)
            /// `Mm.w.d`: day `d` (0 = Sunday) of week `w` (1...5, 5 = last) of month `m`.
            case monthWeekDay(month: Int, week: Int, weekday: Int)
        }

        var day: Day
        /// Local time of day of the change, in seconds (may be negative or exceed a day).
        var time: Int32

        /// The wall value (local seconds as if UTC) of this rule in `year`.
        func wallSeconds(year: Int64) -> Int64 {
            let jan1 = CivilTime.days(year: year, month: 1, day: 1)
            let dayNumber: Int64
            switch self.day {
            case .julianSkippingLeapDay(let n):
                var d = Int64(n - 1)
                if CivilTime.isLeapYear(year) && n >= 60 { d += 1 }
                dayNumber = jan1 + d
            case .zeroBasedDayOfYear(let n):
                dayNumber = jan1 + Int64(n)
            case .monthWeekDay(let month, let week, let weekday):
                let first = CivilTime.days(year: year, month: month, day: 1)
                let firstWeekday = CivilTime.weekday(days: first)
                var dayOfMonth = 1 + (weekday - firstWeekday + 7) % 7 + (week - 1) * 7
                let length = CivilTime.daysInMonth(year: year, month: month)
                while dayOfMonth > length { dayOfMonth -= 7 }
                dayNumber = first + Int64(dayOfMonth - 1)
            }
            return dayNumber * CivilTime.secondsPerDay + Int64(self.time)
        }
    }

    init(standardOffset: Int32, daylight: Daylight? = nil) {
        self.standardOffset = standardOffset
        self.daylight = daylight
    }

    /// Parses a POSIX TZ string; nil when it is not one.
    init?(_ text: String) {
        var parser = Parser(bytes: Array(text.utf8))
        guard let parsed = parser.parse() else { return nil }
        self = parsed
    }

    // MARK: Evaluation

    /// The changes of `year` in generation order: (instant, offset in effect from that instant).
    private func events(year: Int64, into out: inout [(at: Int64, offset: Int32)]) {
        guard let dst = self.daylight else { return }
        out.append((dst.start.wallSeconds(year: year) - Int64(self.standardOffset), dst.offset))
        out.append((dst.end.wallSeconds(year: year) - Int64(dst.offset), self.standardOffset))
    }

    private static func year(of unixSeconds: Int64) -> Int64 {
        CivilTime.civil(days: CivilTime.floorDiv(unixSeconds, CivilTime.secondsPerDay)).year
    }

    /// UTC offset (seconds east) in effect at `unixSeconds`.
    func offset(at unixSeconds: Int64) -> Int32 {
        guard self.daylight != nil else { return self.standardOffset }
        let year = Self.year(of: unixSeconds)
        var events: [(at: Int64, offset: Int32)] = []
        events.reserveCapacity(8)
        for y in (year - 2)...(year + 1) { self.events(year: y, into: &events) }
        // The latest change at or before the instant wins; on ties the one generated later wins
        // (this makes "all year DST" rules such as `EST5EDT,0/0,J365/25` come out right).
        var best: (at: Int64, offset: Int32)?
        for event in events where event.at <= unixSeconds {
            if best == nil || event.at >= best!.at { best = event }
        }
        return best?.offset ?? self.standardOffset
    }

    /// The first change strictly after `unixSeconds`, if the rule has daylight time.
    func nextTransition(after unixSeconds: Int64) -> Int64? {
        guard self.daylight != nil else { return nil }
        let year = Self.year(of: unixSeconds)
        var events: [(at: Int64, offset: Int32)] = []
        events.reserveCapacity(8)
        for y in (year - 1)...(year + 2) { self.events(year: y, into: &events) }
        return events.lazy.map(\.at).filter { $0 > unixSeconds }.min()
    }

    // MARK: Parsing

    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool { self.index >= self.bytes.count }
        var peek: UInt8? { self.atEnd ? nil : self.bytes[self.index] }

        mutating func parse() -> PosixTimeZone? {
            guard self.name(), let stdPosix = self.offset(maxHours: 24) else { return nil }
            let standard = Int32(-stdPosix)
            if self.atEnd { return PosixTimeZone(standardOffset: standard) }
            guard self.name() else { return nil }
            var daylightOffset = standard + 3600
            if let c = self.peek, c != UInt8(ascii: ",") {
                guard let dstPosix = self.offset(maxHours: 24) else { return nil }
                daylightOffset = Int32(-dstPosix)
            }
            let start: Rule
            let end: Rule
            if self.atEnd {
                start = Rule(day: .monthWeekDay(month: 3, week: 2, weekday: 0), time: 7200)
                end = Rule(day: .monthWeekDay(month: 11, week: 1, weekday: 0), time: 7200)
            } else {
                guard self.consume(UInt8(ascii: ",")), let s = self.rule(),
                    self.consume(UInt8(ascii: ",")), let e = self.rule(), self.atEnd
                else { return nil }
                start = s
                end = e
            }
            return PosixTimeZone(
                standardOffset: standard,
                daylight: Daylight(offset: daylightOffset, start: start, end: end)
            )
        }

        mutating func consume(_ c: UInt8) -> Bool {
            guard self.peek == c else { return false }
            self.index += 1
            return true
        }

        /// `<...>` or three or more ASCII letters.
        mutating func name() -> Bool {
            if self.consume(UInt8(ascii: "<")) {
                let start = self.index
                while let c = self.peek, c != UInt8(ascii: ">") { self.index += 1 }
                guard self.index - start >= 1, self.consume(UInt8(ascii: ">")) else { return false }
                return true
            }
            let start = self.index
            while let c = self.peek, (c | 0x20) >= UInt8(ascii: "a") && (c | 0x20) <= UInt8(ascii: "z") {
                self.index += 1
            }
            return self.index - start >= 3
        }

        mutating func number(maxDigits: Int) -> Int? {
            let start = self.index
            var value = 0
            while let c = self.peek, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9"), self.index - start < maxDigits {
                value = value * 10 + Int(c - UInt8(ascii: "0"))
                self.index += 1
            }
            return self.index == start ? nil : value
        }

        /// `[+-]hh[:mm[:ss]]` in seconds, sign as written.
        mutating func offset(maxHours: Int) -> Int? {
            var sign = 1
            if self.consume(UInt8(ascii: "-")) {
                sign = -1
            } else {
                _ = self.consume(UInt8(ascii: "+"))
            }
            guard let hours = self.number(maxDigits: 3), hours <= maxHours else { return nil }
            var seconds = hours * 3600
            if self.consume(UInt8(ascii: ":")) {
                guard let minutes = self.number(maxDigits: 2), minutes < 60 else { return nil }
                seconds += minutes * 60
                if self.consume(UInt8(ascii: ":")) {
                    guard let secs = self.number(maxDigits: 2), secs < 60 else { return nil }
                    seconds += secs
                }
            }
            return sign * seconds
        }

        mutating func rule() -> Rule? {
            let day: Rule.Day
            if self.consume(UInt8(ascii: "J")) {
                guard let n = self.number(maxDigits: 3), (1...365).contains(n) else { return nil }
                day = .julianSkippingLeapDay(n)
            } else if self.consume(UInt8(ascii: "M")) {
                guard let m = self.number(maxDigits: 2), (1...12).contains(m),
                    self.consume(UInt8(ascii: ".")), let w = self.number(maxDigits: 1), (1...5).contains(w),
                    self.consume(UInt8(ascii: ".")), let d = self.number(maxDigits: 1), (0...6).contains(d)
                else { return nil }
                day = .monthWeekDay(month: m, week: w, weekday: d)
            } else {
                guard let n = self.number(maxDigits: 3), (0...365).contains(n) else { return nil }
                day = .zeroBasedDayOfYear(n)
            }
            var time: Int32 = 7200
            if self.consume(UInt8(ascii: "/")) {
                guard let t = self.offset(maxHours: 167) else { return nil }
                time = Int32(t)
            }
            return Rule(day: day, time: time)
        }
    }
}

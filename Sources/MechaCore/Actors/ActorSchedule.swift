/// When actor reminders and timers fire: `dueTime`, `period` and `ttl` as Dapr reads them.
///
/// - A duration is a Go duration (`1m30s`, `0h0m9s0ms`) or an ISO 8601 duration (`P1DT2H`,
///   `PT10S`, `P2W`); a period may carry ISO 8601 repetitions (`R5/PT10S`: five firings).
/// - A time (`dueTime`, `ttl`) is a duration after a reference instant (registration for
///   `dueTime`, the first firing for `ttl`) or an RFC 3339 instant.
public struct ActorInterval: Sendable, Hashable {
    /// Calendar parts (ISO 8601 `Y`, `M`, `W`·7 as days, `D`), added as a calendar does.
    public var years: Int
    public var months: Int
    public var days: Int
    /// The clock part.
    public var duration: Duration
    /// `R<n>/…`: how many firings in all; nil: no limit.
    public var repetitions: Int?

    public init(years: Int = 0, months: Int = 0, days: Int = 0, duration: Duration = .zero, repetitions: Int? = nil) {
        self.years = years
        self.months = months
        self.days = days
        self.duration = duration
        self.repetitions = repetitions
    }

    public var isZero: Bool { self.years == 0 && self.months == 0 && self.days == 0 && self.duration == .zero }

    /// `instant` moved on by this interval (calendar parts first, in UTC, as Go's `AddDate`).
    public func after(_ instant: Timestamp) -> Timestamp {
        var moved = instant
        if self.years != 0 || self.months != 0 || self.days != 0 {
            let day = instant.seconds >= 0 ? instant.seconds / 86_400 : (instant.seconds - 86_399) / 86_400
            let secondOfDay = instant.seconds - day * 86_400
            let (year, month, dayOfMonth) = Timestamp.civil(fromDays: day)
            // Go's AddDate normalises overflowing months and days (Jan 31 + 1 month = Mar 3).
            let totalMonths = (year + self.years) * 12 + (month - 1) + self.months
            let newYear = totalMonths.floorDivInt(12)
            let newMonth = totalMonths - newYear * 12 + 1
            let days = Timestamp.days(fromCivil: newYear, newMonth, 1) + Int64(dayOfMonth - 1 + self.days)
            moved = Timestamp(seconds: days * 86_400 + secondOfDay, nanoseconds: instant.nanoseconds)
        }
        return moved.adding(self.duration)
    }

    /// What the text says, or why it cannot be read (Dapr's words: `unsupported duration format`).
    public static func parse(_ text: String) throws(ActorScheduleError) -> ActorInterval {
        if let iso = self.parseISO8601(text) { return iso }
        if let duration = GoDuration.parse(text), !text.isEmpty { return ActorInterval(duration: duration) }
        throw ActorScheduleError("unsupported duration format \"\(text)\"")
    }

    /// `[R<n>/]P[nY][nM][nW][nD][T[nH][nM][nS]]`; `R<n>/` may also precede a Go duration.
    static func parseISO8601(_ text: String) -> ActorInterval? {
        var rest = Substring(text)
        var repetitions: Int?
        if rest.first == "R" {
            guard let slash = rest.firstIndex(of: "/"), let count = Int(rest[rest.index(after: rest.startIndex)..<slash]), count >= 0 else { return nil }
            repetitions = count
            rest = rest[rest.index(after: slash)...]
            if rest.first != "P" {
                guard let duration = GoDuration.parse(String(rest)), !rest.isEmpty else { return nil }
                return ActorInterval(duration: duration, repetitions: repetitions)
            }
        }
        guard rest.first == "P" else { return nil }
        rest = rest.dropFirst()
        var interval = ActorInterval(repetitions: repetitions)
        var inTime = false
        var number = ""
        var sawPart = false
        var seconds: Int64 = 0
        for character in rest {
            if character == "T" {
                guard !inTime, number.isEmpty else { return nil }
                inTime = true
                continue
            }
            if character.isASCII, character.isNumber {
                number.append(character)
                continue
            }
            guard let value = Int(number), value <= 1_000_000_000 else { return nil }
            number = ""
            sawPart = true
            switch (inTime, character) {
            case (false, "Y"): interval.years = value
            case (false, "M"): interval.months = value
            case (false, "W"): interval.days += value * 7
            case (false, "D"): interval.days += value
            case (true, "H"): seconds += Int64(value) * 3600
            case (true, "M"): seconds += Int64(value) * 60
            case (true, "S"): seconds += Int64(value)
            default: return nil
            }
        }
        guard number.isEmpty, sawPart else { return nil }
        interval.duration = .seconds(seconds)
        return interval
    }
}

/// A reminder or timer time that cannot be read or makes no sense.
public struct ActorScheduleError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The firing plan of one reminder or timer: when it fires first, how it repeats, when it expires.
public struct ActorSchedule: Sendable, Hashable {
    /// The first firing.
    public var dueTime: Timestamp
    /// Nil: fires once.
    public var period: ActorInterval?
    /// No firing at or after this instant.
    public var expiresAt: Timestamp?

    public init(dueTime: Timestamp, period: ActorInterval?, expiresAt: Timestamp?) {
        self.dueTime = dueTime
        self.period = period
        self.expiresAt = expiresAt
    }

    /// Reads `dueTime` (a duration after `now` or an RFC 3339 instant; empty: now), `period`
    /// (empty: once) and `ttl` (a duration after the first firing or an instant; empty: none), as
    /// daprd does for reminders and timers.
    public static func parse(dueTime: String, period: String, ttl: String, now: Timestamp) throws(ActorScheduleError) -> ActorSchedule {
        var due = now
        if !dueTime.isEmpty {
            due = try self.instant(dueTime, after: now, field: "dueTime")
        }
        var parsedPeriod: ActorInterval?
        if !period.isEmpty {
            let interval: ActorInterval
            do {
                interval = try ActorInterval.parse(period)
            } catch {
                throw ActorScheduleError("failed to parse period: \(error)")
            }
            guard interval.duration >= .zero, interval.years >= 0, interval.months >= 0, interval.days >= 0 else {
                throw ActorScheduleError("failed to parse period: negative period \(period)")
            }
            if interval.repetitions == 0 { throw ActorScheduleError("failed to parse period: zero repetitions in \(period)") }
            // A zero period (`0s`) fires once, as no period does.
            parsedPeriod = interval.isZero ? nil : interval
        }
        var expiresAt: Timestamp?
        if !ttl.isEmpty {
            let expiry = try self.instant(ttl, after: due, field: "TTL")
            guard expiry >= due else {
                throw ActorScheduleError("TTL expiration time \(expiry.rfc3339) is before due time \(due.rfc3339)")
            }
            expiresAt = expiry
        }
        return ActorSchedule(dueTime: due, period: parsedPeriod, expiresAt: expiresAt)
    }

    static func instant(_ text: String, after reference: Timestamp, field: String) throws(ActorScheduleError) -> Timestamp {
        if let interval = try? ActorInterval.parse(text), interval.repetitions == nil {
            guard interval.duration >= .zero else { throw ActorScheduleError("failed to parse \(field): negative duration \(text)") }
            return interval.after(reference)
        }
        if let instant = Timestamp(rfc3339: text) { return instant }
        throw ActorScheduleError("failed to parse \(field): unsupported time/duration format \"\(text)\"")
    }

    /// The firing after the `fired`-th one (1-based count of firings done) scheduled at `previous`,
    /// or nil when the schedule is over (no period, repetitions used up, or expired).
    public func next(after previous: Timestamp, fired: Int) -> Timestamp? {
        guard let period = self.period else { return nil }
        if let repetitions = period.repetitions, fired >= repetitions { return nil }
        let next = period.after(previous)
        if let expiresAt = self.expiresAt, next >= expiresAt { return nil }
        return next
    }

    /// Whether a firing due at `instant` should still happen.
    public func isLive(at instant: Timestamp) -> Bool {
        guard let expiresAt = self.expiresAt else { return true }
        return instant < expiresAt
    }
}

extension Int {
    func floorDivInt(_ divisor: Int) -> Int {
        let quotient = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? quotient - 1 : quotient
    }
}

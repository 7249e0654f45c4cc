/// Proleptic-Gregorian calendar arithmetic on plain second counts, without Foundation or libc.
///
/// A "wall" value is a local date-time encoded as if it were UTC: seconds since 1970-01-01T00:00:00
/// of the local calendar. Converting between wall values and real instants is the job of
/// `TimeZoneRules`; everything here is zone-free.
enum CivilTime {
    static let secondsPerDay: Int64 = 86_400

    /// Floor division (rounds towards negative infinity).
    @inline(__always)
    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    /// Floor modulo: the result has the sign of `b`.
    @inline(__always)
    static func floorMod(_ a: Int64, _ b: Int64) -> Int64 {
        let r = a % b
        return (r != 0 && (r < 0) != (b < 0)) ? r + b : r
    }

    /// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
    static func days(year: Int64, month: Int, day: Int) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400  // [0, 399]
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1  // [0, 365]
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy  // [0, 146096]
        return era * 146_097 + doe - 719_468
    }

    /// The civil date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
    static func civil(days: Int64) -> (year: Int64, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097  // [0, 146096]
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365  // [0, 399]
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)  // [0, 365]
        let mp = (5 * doy + 2) / 153  // [0, 11]
        let day = Int(doy - (153 * mp + 2) / 5 + 1)
        let month = Int(mp < 10 ? mp + 3 : mp - 9)
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    static func isLeapYear(_ year: Int64) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    static func daysInMonth(year: Int64, month: Int) -> Int {
        switch month {
        case 2: return isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Day of the week of a day count since 1970-01-01; 0 = Sunday (1970-01-01 was a Thursday).
    static func weekday(days: Int64) -> Int {
        Int(floorMod(days + 4, 7))
    }
}

/// A broken-down wall-clock date-time (no zone attached).
struct CivilDateTime: Sendable, Hashable {
    var year: Int64
    var month: Int  // 1...12
    var day: Int  // 1...31
    var hour: Int  // 0...23
    var minute: Int  // 0...59
    var second: Int  // 0...59

    init(year: Int64, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0) {
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
        self.second = second
    }

    /// Breaks a wall value (local seconds "as if UTC") into fields.
    init(wallSeconds: Int64) {
        let days = CivilTime.floorDiv(wallSeconds, CivilTime.secondsPerDay)
        let secondOfDay = Int(wallSeconds - days * CivilTime.secondsPerDay)
        let date = CivilTime.civil(days: days)
        self.init(
            year: date.year, month: date.month, day: date.day,
            hour: secondOfDay / 3600, minute: secondOfDay / 60 % 60, second: secondOfDay % 60
        )
    }

    var days: Int64 { CivilTime.days(year: self.year, month: self.month, day: self.day) }

    /// The wall value (local seconds "as if UTC").
    var wallSeconds: Int64 {
        self.days * CivilTime.secondsPerDay + Int64(self.hour * 3600 + self.minute * 60 + self.second)
    }

    /// 0 = Sunday.
    var weekday: Int { CivilTime.weekday(days: self.days) }

    /// Midnight of the next day.
    mutating func advanceToNextDay() {
        self.hour = 0
        self.minute = 0
        self.second = 0
        self.day += 1
        if self.day > CivilTime.daysInMonth(year: self.year, month: self.month) {
            self.day = 1
            self.advanceMonthKeepingDay()
        }
    }

    /// The start of the next hour (rolling over into the next day).
    mutating func advanceToNextHour() {
        if self.hour >= 23 {
            self.advanceToNextDay()
        } else {
            self.hour += 1
            self.minute = 0
            self.second = 0
        }
    }

    /// The start of the next minute (rolling over into the next hour).
    mutating func advanceToNextMinute() {
        if self.minute >= 59 {
            self.advanceToNextHour()
        } else {
            self.minute += 1
            self.second = 0
        }
    }

    /// 00:00:00 on the first of the next month.
    mutating func advanceToNextMonth() {
        self.day = 1
        self.hour = 0
        self.minute = 0
        self.second = 0
        self.advanceMonthKeepingDay()
    }

    private mutating func advanceMonthKeepingDay() {
        self.month += 1
        if self.month > 12 {
            self.month = 1
            self.year += 1
        }
    }
}

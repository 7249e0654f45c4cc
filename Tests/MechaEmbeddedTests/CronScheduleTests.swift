#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing

@testable import MechaEmbedded

// MARK: - Helpers (independent of the code under test)

/// Unix seconds of `YYYY-MM-DDTHH:MM:SS` followed by `Z` or `±HH:MM`, computed naively day by day.
private func unix(_ text: String) -> Int64 {
    let b = Array(text.utf8)
    func num(_ start: Int, _ count: Int) -> Int64 {
        var v: Int64 = 0
        for i in start..<(start + count) { v = v * 10 + Int64(b[i] - 48) }
        return v
    }
    let (year, month, day) = (num(0, 4), num(5, 2), num(8, 2))
    let (hour, minute, second) = (num(11, 2), num(14, 2), num(17, 2))
    func leap(_ y: Int64) -> Bool { y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) }
    var days: Int64 = 0
    if year >= 1970 {
        for y in 1970..<year { days += leap(y) ? 366 : 365 }
    } else {
        for y in year..<1970 { days -= leap(y) ? 366 : 365 }
    }
    let monthLengths: [Int64] = [31, leap(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    for m in 0..<Int(month - 1) { days += monthLengths[m] }
    days += day - 1
    var offset: Int64 = 0
    if b[19] != UInt8(ascii: "Z") {
        offset = (num(20, 2) * 3600 + num(23, 2) * 60) * (b[19] == UInt8(ascii: "-") ? -1 : 1)
    }
    return days * 86_400 + hour * 3600 + minute * 60 + second - offset
}

private func parse(_ spec: String) throws -> CronSchedule {
    try CronSchedule(parsing: spec)
}

/// Fire times after `start`, in UTC unless the spec names a zone.
private func fires(_ spec: String, after start: String, count: Int = 1, local: TimeZoneRules = .utc) throws -> [Int64] {
    let schedule = try parse(spec)
    var result: [Int64] = []
    var t = unix(start)
    for _ in 0..<count {
        guard let next = schedule.nextFireTime(after: t, localZone: local) else { break }
        result.append(next)
        t = next
    }
    return result
}

private func requireZoneinfo() throws {
    try #require(
        access("/usr/share/zoneinfo/America/New_York", R_OK) == 0,
        "/usr/share/zoneinfo is missing: install the IANA time zone database (apt-get install tzdata)"
    )
}

@Suite struct CronScheduleTests {
    // MARK: Helper sanity

    @Test(arguments: [
        ("1970-01-01T00:00:00Z", Int64(0)),
        ("2024-01-01T00:00:00Z", 1_704_067_200),
        ("2024-02-29T00:00:00Z", 1_709_164_800),
        ("2024-03-10T09:00:00-04:00", 1_710_075_600),
        ("2028-02-29T00:00:00Z", 1_835_395_200),
        ("1969-12-31T23:59:59Z", -1),
    ])
    func testHelperMatchesKnownTimestamps(text: String, expected: Int64) {
        #expect(unix(text) == expected)
    }

    @Test(arguments: [Int64(-800_000), -1, 0, 59, 10_957, 19_782, 2_932_896, -719_468])
    func civilDaysRoundTrip(days: Int64) {
        let date = CivilTime.civil(days: days)
        #expect(CivilTime.days(year: date.year, month: date.month, day: date.day) == days)
        let iso = "\(date.year)-\(date.month < 10 ? "0" : "")\(date.month)-\(date.day < 10 ? "0" : "")\(date.day)T00:00:00Z"
        if date.year >= 1000 && date.year <= 9999 {
            #expect(unix(iso) == days * 86_400)
        }
    }

    // MARK: Parsing

    @Test func sixFieldsStartWithSeconds() throws {
        let s = try parse("*/5 1,2 3-4 5 6 0")
        #expect(s.kind == .calendar)
        #expect((0..<60).filter { s.fields.second & (1 << UInt64($0)) != 0 } == Array(stride(from: 0, to: 60, by: 5)))
        #expect(s.fields.minute == 0b110)
        #expect(s.fields.hour == 0b11000)
        #expect(s.fields.dayOfMonth == 1 << 5)
        #expect(s.fields.month == 1 << 6)
        #expect(s.fields.dayOfWeek == 1)
        #expect(s.timeZone == nil)
    }

    @Test func fiveFieldsDefaultSecondsToZero() throws {
        let five = try parse("30 4 * * *")
        let six = try parse("0 30 4 * * *")
        #expect(five.fields == six.fields)
        #expect(five.fields.second == 1)
    }

    @Test(arguments: [
        // (field expression in the minute position, expected minutes)
        ("*", Array(0...59)),
        ("?", Array(0...59)),
        ("7", [7]),
        ("1,5,9", [1, 5, 9]),
        ("10-14", [10, 11, 12, 13, 14]),
        ("*/15", [0, 15, 30, 45]),
        ("10-30/10", [10, 20, 30]),
        ("50/3", [50, 53, 56, 59]),
        ("1-3,58-59,30", [1, 2, 3, 30, 58, 59]),
        ("5,,6", [5, 6]),
        ("+5", [5]),
    ])
    func fieldSyntax(expression: String, expected: [Int]) throws {
        let s = try parse("0 \(expression) * * * *")
        #expect((0...59).filter { s.fields.minute & (1 << UInt64($0)) != 0 } == expected)
    }

    @Test(arguments: [
        ("jan", [1]), ("JAN,mar", [1, 3]), ("Jun-Aug", [6, 7, 8]), ("feb/4", [2, 6, 10]), ("*/3", [1, 4, 7, 10]),
        ("dec", [12]), ("11-dec", [11, 12]),
    ])
    func monthNames(expression: String, expected: [Int]) throws {
        let s = try parse("0 0 0 1 \(expression) *")
        #expect((1...12).filter { s.fields.month & (1 << UInt64($0)) != 0 } == expected)
    }

    @Test(arguments: [
        ("sun", [0]), ("MON-FRI", [1, 2, 3, 4, 5]), ("sat,Sun", [0, 6]), ("0-6/2", [0, 2, 4, 6]), ("tue-4", [2, 3, 4]),
    ])
    func weekdayNames(expression: String, expected: [Int]) throws {
        let s = try parse("0 0 0 * * \(expression)")
        #expect((0...6).filter { s.fields.dayOfWeek & (1 << UInt64($0)) != 0 } == expected)
    }

    @Test func starBitRecordsUnrestrictedDayFields() throws {
        #expect(try parse("0 0 0 * * *").fields.dayOfMonth & CronFields.starBit != 0)
        #expect(try parse("0 0 0 ? * ?").fields.dayOfWeek & CronFields.starBit != 0)
        #expect(try parse("0 0 0 */1 * *").fields.dayOfMonth & CronFields.starBit != 0)
        #expect(try parse("0 0 0 */2 * *").fields.dayOfMonth & CronFields.starBit == 0)
        #expect(try parse("0 0 0 1-31 * *").fields.dayOfMonth & CronFields.starBit == 0)
    }

    @Test(arguments: [
        ("@yearly", "0 0 0 1 1 *"),
        ("@annually", "0 0 0 1 1 *"),
        ("@monthly", "0 0 0 1 * *"),
        ("@weekly", "0 0 0 * * 0"),
        ("@daily", "0 0 0 * * *"),
        ("@midnight", "0 0 0 * * *"),
        ("@hourly", "0 0 * * * *"),
    ])
    func descriptors(descriptor: String, equivalent: String) throws {
        let a = try parse(descriptor)
        let b = try parse(equivalent)
        #expect(a.kind == .calendar)
        #expect(a.fields == b.fields)
    }

    @Test(arguments: [
        ("@every 15s", Duration.seconds(15)),
        ("@every 1h30m", .seconds(5400)),
        ("@every 500ms", .milliseconds(500)),
        ("@every 1.5h", .seconds(5400)),
        ("@every 2h45m30.5s", .milliseconds(9_930_500)),
        ("@every 1m0.25s", .milliseconds(60_250)),
        ("@every .5s", .milliseconds(500)),
        ("@every 1500us", .milliseconds(1)),
        ("@every 2500µs", .milliseconds(2)),
        ("@every 3000000ns", .milliseconds(3)),
        ("@every 100us", .milliseconds(1)),
        ("@every 0", .milliseconds(1)),
        ("@every -5s", .milliseconds(1)),
        ("@every +2m", .seconds(120)),
        ("CRON_TZ=UTC @every 10s", .seconds(10)),
    ])
    func everyDescriptor(spec: String, interval: Duration) throws {
        #expect(try parse(spec).kind == .every(interval))
    }

    @Test func everyNextFireTimeRoundsUpToWholeSeconds() throws {
        #expect(try parse("@every 15s").nextFireTime(after: 1000) == 1015)
        #expect(try parse("@every 500ms").nextFireTime(after: 1000) == 1001)
        #expect(try parse("@every 1.2s").nextFireTime(after: 1000) == 1002)
    }

    @Test func timeZonePrefixes() throws {
        try requireZoneinfo()
        let a = try parse("CRON_TZ=America/New_York 0 0 9 * * *")
        #expect(a.timeZone?.name == "America/New_York")
        #expect(a.fields == (try parse("0 0 9 * * *")).fields)
        let b = try parse("TZ=Europe/Paris   30 4 * * *")
        #expect(b.timeZone?.name == "Europe/Paris")
        #expect(b.fields == (try parse("0 30 4 * * *")).fields)
        #expect(try parse("TZ=UTC @daily").timeZone == .utc)
        #expect(try parse("CRON_TZ= @hourly").timeZone == .utc)
        #expect(try parse("CRON_TZ=Local 0 0 * * * *").timeZone == nil)
        #expect(try parse("CRON_TZ=Etc/UTC 0 0 * * * *").timeZone?.offset(at: 0) == 0)
    }

    @Test(arguments: [
        ("", "empty spec string"),
        ("* * * *", "expected 5 to 6 fields, found 4: [* * * *]"),
        ("* * * * * * *", "expected 5 to 6 fields, found 7: [* * * * * * *]"),
        (" @daily", "expected 5 to 6 fields, found 1: [@daily]"),
        ("CRON_TZ=UTC ", "expected 5 to 6 fields, found 0: []"),
        ("0 0 0 * * 7", "end of range (7) above maximum (6): 7"),
        ("0 0 0 * * 1-7", "end of range (7) above maximum (6): 1-7"),
        ("60 * * * * *", "end of range (60) above maximum (59): 60"),
        ("0 60 * * * *", "end of range (60) above maximum (59): 60"),
        ("0 0 24 * * *", "end of range (24) above maximum (23): 24"),
        ("0 0 0 32 * *", "end of range (32) above maximum (31): 32"),
        ("0 0 0 0 * *", "beginning of range (0) below minimum (1): 0"),
        ("0 0 0 * 0 *", "beginning of range (0) below minimum (1): 0"),
        ("0 0 0 * 13 *", "end of range (13) above maximum (12): 13"),
        ("0 0 0 * foo *", "failed to parse int from foo: strconv.Atoi: parsing \"foo\": invalid syntax"),
        ("0 0 0 * * monday", "failed to parse int from monday: strconv.Atoi: parsing \"monday\": invalid syntax"),
        ("0 0 0 1- * *", "failed to parse int from : strconv.Atoi: parsing \"\": invalid syntax"),
        (
            "0 0 0 * * 99999999999999999999",
            "failed to parse int from 99999999999999999999: strconv.Atoi: parsing \"99999999999999999999\": value out of range"
        ),
        ("5-1 * * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
        ("*/0 * * * * *", "step of range should be a positive number: */0"),
        ("*/-1 * * * * *", "negative number (-1) not allowed: -1"),
        ("1-2-3 * * * * *", "too many hyphens: 1-2-3"),
        ("*/2/3 * * * * *", "too many slashes: */2/3"),
        ("*/x * * * * *", "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"),
        ("@fortnightly", "unrecognized descriptor: @fortnightly"),
        ("@daily ", "unrecognized descriptor: @daily "),
        ("@every", "unrecognized descriptor: @every"),
        ("@every 5x", "failed to parse duration @every 5x: time: unknown unit \"x\" in duration \"5x\""),
        ("@every 5", "failed to parse duration @every 5: time: missing unit in duration \"5\""),
        ("@every ", "failed to parse duration @every : time: invalid duration \"\""),
        ("@every abc", "failed to parse duration @every abc: time: invalid duration \"abc\""),
        ("@every 1.s.", "failed to parse duration @every 1.s.: time: invalid duration \"1.s.\""),
        ("CRON_TZ=Mars/Olympus * * * * *", "provided bad location Mars/Olympus: unknown time zone Mars/Olympus"),
        ("TZ=../etc/passwd * * * * *", "provided bad location ../etc/passwd: time: invalid location name"),
        ("TZ=/etc/localtime * * * * *", "provided bad location /etc/localtime: time: invalid location name"),
        ("CRON_TZ=America/New_York", "timezone prefix CRON_TZ=America/New_York is not followed by a schedule"),
    ])
    func parseErrors(spec: String, reason: String) {
        #expect(throws: CronScheduleError(spec: spec, reason: reason)) { try CronSchedule(parsing: spec) }
        do {
            _ = try CronSchedule(parsing: spec)
        } catch {
            #expect(String(describing: error) == "invalid schedule format '\(spec)': \(reason)")
        }
    }

    @Test func zoneDirectoryIsABadLocation() throws {
        try requireZoneinfo()
        #expect(throws: CronScheduleError(spec: "TZ=America 0 * * * * *", reason: "provided bad location America: is a directory")) {
            try CronSchedule(parsing: "TZ=America 0 * * * * *")
        }
    }

    // MARK: Next fire times (UTC)

    @Test(arguments: [
        ("*/5 * * * * *", "2024-01-01T00:00:00Z", ["2024-01-01T00:00:05Z", "2024-01-01T00:00:10Z", "2024-01-01T00:00:15Z"]),
        ("*/5 * * * * *", "2024-01-01T00:00:03Z", ["2024-01-01T00:00:05Z"]),
        ("*/5 * * * * *", "2024-12-31T23:59:57Z", ["2025-01-01T00:00:00Z", "2025-01-01T00:00:05Z"]),
        ("0 30 4 * * *", "2024-01-01T00:00:00Z", ["2024-01-01T04:30:00Z", "2024-01-02T04:30:00Z"]),
        ("30 4 * * *", "2024-01-01T04:30:00Z", ["2024-01-02T04:30:00Z"]),
        ("@daily", "2024-02-28T12:00:00Z", ["2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z"]),
        ("@midnight", "2023-12-31T23:59:59Z", ["2024-01-01T00:00:00Z"]),
        ("@hourly", "2024-01-01T10:00:00Z", ["2024-01-01T11:00:00Z", "2024-01-01T12:00:00Z"]),
        ("@weekly", "2024-01-01T00:00:00Z", ["2024-01-07T00:00:00Z", "2024-01-14T00:00:00Z"]),
        ("@monthly", "2024-01-31T00:00:00Z", ["2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"]),
        ("@yearly", "2024-06-01T00:00:00Z", ["2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"]),
        ("@annually", "2024-01-01T00:00:00Z", ["2025-01-01T00:00:00Z"]),
        // Weekdays at noon: Friday → Monday.
        ("0 0 12 * * mon-fri", "2024-01-05T12:00:00Z", ["2024-01-08T12:00:00Z", "2024-01-09T12:00:00Z"]),
        ("0 0 12 * * MON-FRI", "2024-01-06T00:00:00Z", ["2024-01-08T12:00:00Z"]),
        // Both day fields restricted: the 13th OR any Friday.
        ("0 0 0 13 * fri", "2024-01-01T00:00:00Z", ["2024-01-05T00:00:00Z", "2024-01-12T00:00:00Z", "2024-01-13T00:00:00Z", "2024-01-19T00:00:00Z"]),
        // Only one restricted: both must match (the 13th, any weekday / Fridays only).
        ("0 0 0 13 * *", "2024-01-01T00:00:00Z", ["2024-01-13T00:00:00Z", "2024-02-13T00:00:00Z"]),
        ("0 0 0 ? * fri", "2024-01-01T00:00:00Z", ["2024-01-05T00:00:00Z", "2024-01-12T00:00:00Z"]),
        // "*/1" keeps the star (AND, Fridays only); "1-31" does not (OR, every day).
        ("0 0 0 */1 * fri", "2024-01-01T00:00:00Z", ["2024-01-05T00:00:00Z"]),
        ("0 0 0 1-31 * fri", "2024-01-01T00:00:00Z", ["2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"]),
        ("0 0 0 1 jan,JUL *", "2024-02-01T00:00:00Z", ["2024-07-01T00:00:00Z", "2025-01-01T00:00:00Z"]),
        ("0 15 10 * may-aug/2 *", "2024-01-01T00:00:00Z", ["2024-05-01T10:15:00Z"]),
        ("0 0 0 29 feb *", "2024-03-01T00:00:00Z", ["2028-02-29T00:00:00Z"]),
        ("0 0 0 31 * *", "2024-04-01T00:00:00Z", ["2024-05-31T00:00:00Z", "2024-07-31T00:00:00Z", "2024-08-31T00:00:00Z"]),
        ("0 10/20 * * * *", "2024-01-01T00:00:00Z", ["2024-01-01T00:10:00Z", "2024-01-01T00:30:00Z", "2024-01-01T00:50:00Z", "2024-01-01T01:10:00Z"]),
        ("15,45 59 23 31 12 *", "2024-06-01T00:00:00Z", ["2024-12-31T23:59:15Z", "2024-12-31T23:59:45Z", "2025-12-31T23:59:15Z"]),
        ("0 0 0 1 1 *", "1969-12-31T23:59:59Z", ["1970-01-01T00:00:00Z"]),
        ("0 0 0 1 1 *", "1969-06-15T00:00:00Z", ["1970-01-01T00:00:00Z"]),
        ("* * * * * *", "2024-02-29T23:59:59Z", ["2024-03-01T00:00:00Z", "2024-03-01T00:00:01Z"]),
    ])
    func nextFireTimesUTC(spec: String, after: String, expected: [String]) throws {
        #expect(try fires(spec, after: after, count: expected.count) == expected.map(unix))
        // An explicit UTC zone behaves the same.
        #expect(try fires("CRON_TZ=UTC " + spec, after: after, count: expected.count, local: .utc) == expected.map(unix))
    }

    /// robfig/cron's own `TestNext` table (the parts without DST).
    @Test(arguments: [
        ("2012-07-09T14:45:00Z", "0 0/15 * * * *", "2012-07-09T15:00:00Z"),
        ("2012-07-09T14:59:00Z", "0 0/15 * * * *", "2012-07-09T15:00:00Z"),
        ("2012-07-09T14:59:59Z", "0 0/15 * * * *", "2012-07-09T15:00:00Z"),
        ("2012-07-09T15:45:00Z", "0 20-35/15 * * * *", "2012-07-09T16:20:00Z"),
        ("2012-07-09T23:46:00Z", "0 */15 * * * *", "2012-07-10T00:00:00Z"),
        ("2012-07-09T23:45:00Z", "0 20-35/15 * * * *", "2012-07-10T00:20:00Z"),
        ("2012-07-09T23:35:51Z", "15/35 20-35/15 * * * *", "2012-07-10T00:20:15Z"),
        ("2012-07-09T23:35:51Z", "15/35 20-35/15 1/2 * * *", "2012-07-10T01:20:15Z"),
        ("2012-07-09T23:35:51Z", "15/35 20-35/15 10-12 * * *", "2012-07-10T10:20:15Z"),
        ("2012-07-09T23:35:51Z", "15/35 20-35/15 1/2 */2 * *", "2012-07-11T01:20:15Z"),
        ("2012-07-09T23:35:51Z", "15/35 20-35/15 * 9-20 * *", "2012-07-10T00:20:15Z"),
        ("2012-07-09T23:35:51Z", "15/35 20-35/15 * 9-20 Jul *", "2012-07-10T00:20:15Z"),
        ("2012-07-09T23:35:00Z", "0 0 0 9 Apr-Oct ?", "2012-08-09T00:00:00Z"),
        ("2012-07-09T23:35:00Z", "0 0 0 */5 Apr,Aug,Oct Mon", "2012-08-01T00:00:00Z"),
        ("2012-07-09T23:35:00Z", "0 0 0 */5 Oct Mon", "2012-10-01T00:00:00Z"),
        ("2012-07-09T23:35:00Z", "0 0 0 * Feb Mon", "2013-02-04T00:00:00Z"),
        ("2012-07-09T23:35:00Z", "0 0 0 * Feb Mon/2", "2013-02-01T00:00:00Z"),
        ("2012-12-31T23:59:45Z", "0 * * * * *", "2013-01-01T00:00:00Z"),
        ("2012-07-09T23:35:00Z", "0 0 0 29 Feb ?", "2016-02-29T00:00:00Z"),
    ])
    func robfigTable(after: String, spec: String, expected: String) throws {
        #expect(try fires(spec, after: after) == [unix(expected)])
    }

    /// robfig/cron's DST table for America/New_York. Two rows differ on purpose: robfig runs a
    /// fixed-hour job twice when 01:xx repeats; here it runs once (at the first 01:xx).
    @Test(arguments: [
        ("2012-03-11T00:00:00-05:00", "0 30 2 11 Mar ?", "2013-03-11T02:30:00-04:00"),
        ("2012-03-11T00:00:00-05:00", "0 0 * * * ?", "2012-03-11T01:00:00-05:00"),
        ("2012-03-11T01:00:00-05:00", "0 0 * * * ?", "2012-03-11T03:00:00-04:00"),
        ("2012-03-11T03:00:00-04:00", "0 0 * * * ?", "2012-03-11T04:00:00-04:00"),
        ("2012-03-11T04:00:00-04:00", "0 0 * * * ?", "2012-03-11T05:00:00-04:00"),
        ("2012-03-11T00:00:00-05:00", "0 0 1 * * ?", "2012-03-11T01:00:00-05:00"),
        ("2012-03-11T01:00:00-05:00", "0 0 1 * * ?", "2012-03-12T01:00:00-04:00"),
        ("2012-03-11T00:00:00-05:00", "0 0 2 * * ?", "2012-03-12T02:00:00-04:00"),
        ("2012-11-04T00:00:00-04:00", "0 30 2 04 Nov ?", "2012-11-04T02:30:00-05:00"),
        ("2012-11-04T01:45:00-04:00", "0 30 1 04 Nov ?", "2013-11-04T01:30:00-05:00"),  // robfig: 2012-11-04T01:30-05:00
        ("2012-11-04T00:00:00-04:00", "0 0 * * * ?", "2012-11-04T01:00:00-04:00"),
        ("2012-11-04T01:00:00-04:00", "0 0 * * * ?", "2012-11-04T01:00:00-05:00"),
        ("2012-11-04T01:00:00-05:00", "0 0 * * * ?", "2012-11-04T02:00:00-05:00"),
        ("2012-11-04T00:00:00-04:00", "0 0 1 * * ?", "2012-11-04T01:00:00-04:00"),
        ("2012-11-04T01:00:00-04:00", "0 0 1 * * ?", "2012-11-05T01:00:00-05:00"),  // robfig: 2012-11-04T01:00-05:00
        ("2012-11-04T01:00:00-05:00", "0 0 1 * * ?", "2012-11-05T01:00:00-05:00"),
        ("2012-11-04T00:00:00-04:00", "0 0 2 * * ?", "2012-11-04T02:00:00-05:00"),
        ("2012-11-04T02:00:00-05:00", "0 0 2 * * ?", "2012-11-05T02:00:00-05:00"),
        ("2012-11-04T00:00:00-04:00", "0 0 3 * * ?", "2012-11-04T03:00:00-05:00"),
        ("2012-11-04T03:00:00-05:00", "0 0 3 * * ?", "2012-11-05T03:00:00-05:00"),
    ])
    func robfigDaylightSavingTable(after: String, spec: String, expected: String) throws {
        try requireZoneinfo()
        #expect(try fires("TZ=America/New_York " + spec, after: after) == [unix(expected)])
    }

    @Test func nextFireTimeIsStrictlyAfter() throws {
        let s = try parse("0 30 4 * * *")
        let t = unix("2024-01-01T04:30:00Z")
        #expect(s.nextFireTime(after: t, localZone: .utc) == t + 86_400)
        #expect(s.nextFireTime(after: t - 1, localZone: .utc) == t)
    }

    @Test(arguments: ["0 0 0 30 2 *", "0 0 0 31 4,6,9,11 *", "0 0 0 , * *"])
    func unsatisfiableScheduleReturnsNil(spec: String) throws {
        #expect(try parse(spec).nextFireTime(after: unix("2024-01-01T00:00:00Z"), localZone: .utc) == nil)
    }

    struct BruteForceCase: Sendable, CustomTestStringConvertible {
        let spec: String
        /// (minute, hour, day of month, month, weekday) → fires?
        let matches: @Sendable (Int, Int, Int, Int, Int) -> Bool
        var testDescription: String { self.spec }
    }

    static let bruteForceCases: [BruteForceCase] = [
        .init(spec: "*/7 * * * *") { m, h, dom, mon, dow in m % 7 == 0 },
        .init(spec: "0 */3 * * mon,wed") { m, h, dom, mon, dow in m == 0 && h % 3 == 0 && (dow == 1 || dow == 3) },
        .init(spec: "15 10 1-7 * 1") { m, h, dom, mon, dow in m == 15 && h == 10 && (dom <= 7 || dow == 1) },
        .init(spec: "45 23 * 2,3 sat") { m, h, dom, mon, dow in m == 45 && h == 23 && (mon == 2 || mon == 3) && dow == 6 },
        .init(spec: "0-10/5 22 * * *") { m, h, dom, mon, dow in [0, 5, 10].contains(m) && h == 22 },
        .init(spec: "30 12 28-31 * *") { m, h, dom, mon, dow in m == 30 && h == 12 && dom >= 28 },
    ]

    /// Brute force: walk minute by minute and check the fields directly.
    @Test(arguments: bruteForceCases)
    func agreesWithBruteForce(testCase: BruteForceCase) throws {
        let (spec, matches) = (testCase.spec, testCase.matches)
        let schedule = try parse(spec)
        var t = unix("2024-01-25T07:13:00Z")
        let end = t + 70 * 86_400
        var expected: [Int64] = []
        var minute = t + 60
        while minute <= end {
            let days = minute / 86_400
            let secs = Int(minute % 86_400)
            let date = CivilTime.civil(days: days)
            let dow = Int((days + 4) % 7)
            if matches(secs / 60 % 60, secs / 3600, date.day, date.month, dow) { expected.append(minute) }
            minute += 60
        }
        var actual: [Int64] = []
        while let next = schedule.nextFireTime(after: t, localZone: .utc), next <= end {
            actual.append(next)
            t = next
        }
        #expect(!expected.isEmpty)
        #expect(actual == expected)
    }

    // MARK: Time zones

    @Test func newYorkAcrossSpringForward() throws {
        try requireZoneinfo()
        // 09:00 EST (14:00Z) on Saturday, then 09:00 EDT (13:00Z) on Sunday 2024-03-10 and after.
        #expect(
            try fires("CRON_TZ=America/New_York 0 0 9 * * *", after: "2024-03-09T00:00:00Z", count: 3) == [
                unix("2024-03-09T09:00:00-05:00"), unix("2024-03-10T09:00:00-04:00"), unix("2024-03-11T09:00:00-04:00"),
            ]
        )
        #expect(unix("2024-03-10T09:00:00-04:00") == 1_710_075_600)
    }

    @Test func newYorkAcrossFallBack() throws {
        try requireZoneinfo()
        #expect(
            try fires("CRON_TZ=America/New_York 0 0 9 * * *", after: "2024-11-02T13:00:00Z", count: 2) == [
                unix("2024-11-03T09:00:00-05:00"), unix("2024-11-04T09:00:00-05:00"),
            ]
        )
        #expect(unix("2024-11-03T09:00:00-05:00") == 1_730_642_400)
    }

    @Test func localZoneIsUsedWithoutPrefix() throws {
        try requireZoneinfo()
        let newYork = try TimeZoneRules.named("America/New_York")
        #expect(
            try fires("0 0 9 * * *", after: "2024-03-09T00:00:00Z", count: 2, local: newYork) == [
                unix("2024-03-09T09:00:00-05:00"), unix("2024-03-10T09:00:00-04:00"),
            ]
        )
        // A CRON_TZ prefix wins over the local zone.
        #expect(
            try fires("CRON_TZ=UTC 0 0 9 * * *", after: "2024-03-09T00:00:00Z", local: newYork) == [unix("2024-03-09T09:00:00Z")]
        )
    }

    @Test func springForwardGapIsSkipped() throws {
        try requireZoneinfo()
        // 02:30 does not exist in New York on 2024-03-10.
        #expect(
            try fires("CRON_TZ=America/New_York 0 30 2 * * *", after: "2024-03-09T12:00:00Z", count: 2) == [
                unix("2024-03-11T02:30:00-04:00"), unix("2024-03-12T02:30:00-04:00"),
            ]
        )
        // Hourly: 01:00 EST is followed by 03:00 EDT, one hour later.
        #expect(
            try fires("CRON_TZ=America/New_York 0 0 * * * *", after: "2024-03-10T01:00:00-05:00", count: 2) == [
                unix("2024-03-10T03:00:00-04:00"), unix("2024-03-10T04:00:00-04:00"),
            ]
        )
        // Every 20 minutes across the gap.
        #expect(
            try fires("CRON_TZ=America/New_York 0 */20 * * * *", after: "2024-03-10T01:30:00-05:00", count: 3) == [
                unix("2024-03-10T01:40:00-05:00"), unix("2024-03-10T03:00:00-04:00"), unix("2024-03-10T03:20:00-04:00"),
            ]
        )
    }

    @Test func fallBackOverlapFiresOnce() throws {
        try requireZoneinfo()
        // 01:30 happens twice on 2024-11-03 (EDT, then EST); a daily 01:30 job fires at the first only.
        #expect(
            try fires("CRON_TZ=America/New_York 0 30 1 * * *", after: "2024-11-03T00:00:00-04:00", count: 2) == [
                unix("2024-11-03T01:30:00-04:00"), unix("2024-11-04T01:30:00-05:00"),
            ]
        )
        // Started during the second 01:xx hour: the 01:30 of today has already happened.
        #expect(
            try fires("CRON_TZ=America/New_York 0 30 1 * * *", after: "2024-11-03T01:10:00-05:00") == [
                unix("2024-11-04T01:30:00-05:00")
            ]
        )
        // Restricted to hour 1: runs through the first 01:xx only.
        #expect(
            try fires("CRON_TZ=America/New_York 0 */20 1 * * *", after: "2024-11-03T01:30:00-04:00", count: 2) == [
                unix("2024-11-03T01:40:00-04:00"), unix("2024-11-04T01:00:00-05:00"),
            ]
        )
    }

    @Test func everyHourSchedulesFollowElapsedTimeThroughTheOverlap() throws {
        try requireZoneinfo()
        #expect(
            try fires("CRON_TZ=America/New_York 0 0 * * * *", after: "2024-11-03T00:30:00-04:00", count: 3) == [
                unix("2024-11-03T01:00:00-04:00"), unix("2024-11-03T01:00:00-05:00"), unix("2024-11-03T02:00:00-05:00"),
            ]
        )
        #expect(
            try fires("CRON_TZ=America/New_York 0 */30 * * * *", after: "2024-11-03T01:15:00-04:00", count: 4) == [
                unix("2024-11-03T01:30:00-04:00"), unix("2024-11-03T01:00:00-05:00"),
                unix("2024-11-03T01:30:00-05:00"), unix("2024-11-03T02:00:00-05:00"),
            ]
        )
    }

    @Test func southernHemisphere() throws {
        try requireZoneinfo()
        // Sydney leaves daylight time on 2024-04-07 (03:00 AEDT → 02:00 AEST).
        #expect(
            try fires("CRON_TZ=Australia/Sydney 0 0 9 * * *", after: "2024-04-06T00:00:00Z", count: 2) == [
                unix("2024-04-07T09:00:00+10:00"), unix("2024-04-08T09:00:00+10:00"),
            ]
        )
        #expect(unix("2024-04-07T09:00:00+10:00") == 1_712_444_400)
        // ... and enters it on 2024-10-06 (02:00 AEST → 03:00 AEDT).
        #expect(
            try fires("CRON_TZ=Australia/Sydney 0 0 9 * * *", after: "2024-10-05T00:00:00Z", count: 2) == [
                unix("2024-10-06T09:00:00+11:00"), unix("2024-10-07T09:00:00+11:00"),
            ]
        )
    }

    @Test func footerRuleBeyondLastTransition() throws {
        try requireZoneinfo()
        // 2100 is past the explicit transitions; the TZif footer (CET-1CEST,M3.5.0,M10.5.0/3) applies.
        #expect(
            try fires("CRON_TZ=Europe/Paris 0 0 12 * * *", after: "2100-07-01T00:00:00Z", count: 2) == [
                4_118_119_200, 4_118_205_600,
            ]
        )
        // 2100-03-28 02:30 is in the gap; 2100-10-31 02:30 happens twice and fires once.
        #expect(try fires("CRON_TZ=Europe/Paris 0 30 2 * * *", after: "2100-03-27T12:00:00Z") == [4_109_963_400])
        #expect(
            try fires("CRON_TZ=Europe/Paris 0 30 2 * * *", after: "2100-10-30T12:00:00Z", count: 2) == [
                4_128_625_800, unix("2100-11-01T02:30:00+01:00"),
            ]
        )
    }

    // MARK: Time zone rules

    @Test func offsetsAndInstants() throws {
        try requireZoneinfo()
        let ny = try TimeZoneRules.named("America/New_York")
        #expect(ny.offset(at: unix("2024-01-15T12:00:00Z")) == -5 * 3600)
        #expect(ny.offset(at: unix("2024-07-15T12:00:00Z")) == -4 * 3600)
        #expect(ny.offset(at: unix("1950-07-15T12:00:00Z")) == -4 * 3600)
        #expect(ny.offset(at: unix("2024-03-10T07:00:00Z")) == -4 * 3600)
        #expect(ny.offset(at: unix("2024-03-10T06:59:59Z")) == -5 * 3600)
        #expect(ny.nextTransition(after: unix("2024-01-01T00:00:00Z")) == unix("2024-03-10T07:00:00Z"))
        #expect(ny.nextTransition(after: unix("2060-01-01T00:00:00Z")) == unix("2060-03-14T07:00:00Z"))
        // Wall 2024-03-10 02:30 does not exist; 2024-11-03 01:30 exists twice.
        #expect(ny.instants(forWallSeconds: unix("2024-03-10T02:30:00Z")) == [])
        #expect(
            ny.instants(forWallSeconds: unix("2024-11-03T01:30:00Z")) == [
                unix("2024-11-03T01:30:00-04:00"), unix("2024-11-03T01:30:00-05:00"),
            ]
        )
        #expect(ny.instants(forWallSeconds: unix("2024-06-01T12:00:00Z")) == [unix("2024-06-01T12:00:00-04:00")])
        #expect(ny.wallSeconds(at: unix("2024-06-01T12:00:00-04:00")) == unix("2024-06-01T12:00:00Z"))
    }

    @Test(arguments: [
        ("CET-1CEST,M3.5.0,M10.5.0/3", "Europe/Paris"),
        ("EST5EDT,M3.2.0,M11.1.0", "America/New_York"),
        ("EST5EDT", "America/New_York"),
        ("AEST-10AEDT,M10.1.0,M4.1.0/3", "Australia/Sydney"),
        ("<-03>3", "America/Sao_Paulo"),
        ("NZST-12NZDT,M9.5.0,M4.1.0/3", "Pacific/Auckland"),
        ("IST-2IDT,M3.4.4/26,M10.5.0", "Asia/Jerusalem"),
        ("<+0530>-5:30", "Asia/Kolkata"),
    ])
    func posixRulesAgreeWithZoneFiles(posix: String, zoneName: String) throws {
        try requireZoneinfo()
        let rule = try TimeZoneRules(posix: posix)
        let zone = try TimeZoneRules.named(zoneName)
        // Every 6 hours through 2030–2033 (after the zones' last rule changes).
        var t = unix("2030-01-01T00:00:00Z")
        let end = unix("2034-01-01T00:00:00Z")
        var mismatches = 0
        while t < end {
            if rule.offset(at: t) != zone.offset(at: t) { mismatches += 1 }
            #expect(rule.nextTransition(after: t) == zone.nextTransition(after: t))
            t += 6 * 3600
        }
        #expect(mismatches == 0)
    }

    @Test(arguments: ["", "Europe/Paris", "CET-1CEST,M3.5.0,M10.5.0/3,", "EST", "E5", "EST5EDT,M13.1.0,M11.1.0", "<>5", "EST25"])
    func invalidPosixStrings(text: String) {
        #expect(throws: TimeZoneError.self) { try TimeZoneRules(posix: text) }
    }

    @Test func posixDaylightDefaultsToOneHourAhead() throws {
        let rule = try TimeZoneRules(posix: "CET-1CEST,M3.5.0,M10.5.0/3")
        #expect(rule.offset(at: unix("2031-01-10T00:00:00Z")) == 3600)
        #expect(rule.offset(at: unix("2031-07-10T00:00:00Z")) == 7200)
        // Last Sunday of March 2031 is the 30th; the change happens at 01:00 UTC.
        #expect(rule.offset(at: unix("2031-03-30T00:59:59Z")) == 3600)
        #expect(rule.offset(at: unix("2031-03-30T01:00:00Z")) == 7200)
        #expect(rule.offset(at: unix("2031-10-26T00:59:59Z")) == 7200)
        #expect(rule.offset(at: unix("2031-10-26T01:00:00Z")) == 3600)
        let fixed = try TimeZoneRules(posix: "<+0545>-5:45")
        #expect(fixed.offset(at: 0) == 5 * 3600 + 45 * 60)
        #expect(fixed.nextTransition(after: 0) == nil)
    }

    @Test func loadingZones() throws {
        try requireZoneinfo()
        #expect(try TimeZoneRules.named("UTC") == .utc)
        #expect(try TimeZoneRules.named("") == .utc)
        #expect(throws: TimeZoneError("unknown time zone Nowhere/Land")) { try TimeZoneRules.named("Nowhere/Land") }
        #expect(throws: TimeZoneError("time: invalid location name")) { try TimeZoneRules.named("/etc/passwd") }
        #expect(throws: TimeZoneError("malformed time zone information")) {
            try TimeZoneRules(tzif: Array("TZif2 not really".utf8), name: "x")
        }
        #expect(throws: TimeZoneError("malformed time zone information")) {
            try TimeZoneRules(tzif: [], name: "x")
        }
        // Old-style zones carry 32-bit and 64-bit data; both decode to the same offsets.
        let kolkata = try TimeZoneRules.named("Asia/Kolkata")
        #expect(kolkata.offset(at: unix("2024-01-01T00:00:00Z")) == 19_800)
    }

    @Test func version1FilesUseThe32BitSection() throws {
        try requireZoneinfo()
        // Rewrite a real file as version 1 by keeping only its header and 32-bit block.
        var data: [UInt8] = []
        let fd = open("/usr/share/zoneinfo/America/New_York", O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            data += buffer[0..<n]
        }
        try #require(data.count > 44 && data[4] >= UInt8(ascii: "2"))
        data[4] = 0
        let v1 = try TimeZoneRules(tzif: data, name: "v1")
        let v2 = try TimeZoneRules.named("America/New_York")
        #expect(v1.footer == nil)
        for text in ["1990-07-01T00:00:00Z", "2024-01-15T00:00:00Z", "2024-07-15T00:00:00Z", "2037-07-15T00:00:00Z"] {
            #expect(v1.offset(at: unix(text)) == v2.offset(at: unix(text)), "\(text)")
        }
    }

    @Test func localZoneResolution() throws {
        try requireZoneinfo()
        let july = unix("2024-07-01T00:00:00Z")
        #expect(TimeZoneRules.loadLocal(tzEnvironment: "Europe/Paris").offset(at: july) == 7200)
        #expect(TimeZoneRules.loadLocal(tzEnvironment: ":Europe/Paris").offset(at: july) == 7200)
        #expect(TimeZoneRules.loadLocal(tzEnvironment: ":/usr/share/zoneinfo/Asia/Tokyo").offset(at: july) == 9 * 3600)
        #expect(TimeZoneRules.loadLocal(tzEnvironment: "CET-1CEST,M3.5.0,M10.5.0/3").offset(at: july) == 7200)
        #expect(TimeZoneRules.loadLocal(tzEnvironment: "") == .utc)
        #expect(TimeZoneRules.loadLocal(tzEnvironment: "UTC") == .utc)
        #expect(TimeZoneRules.loadLocal(tzEnvironment: "Nowhere/Land") == .utc)
        let fromFile = TimeZoneRules.loadLocal(tzEnvironment: nil, localtimePath: "/usr/share/zoneinfo/America/New_York")
        #expect(fromFile.name == "Local")
        #expect(fromFile.offset(at: july) == -4 * 3600)
        #expect(TimeZoneRules.loadLocal(tzEnvironment: nil, localtimePath: "/nonexistent/localtime") == .utc)
    }

    @Test func processLocalZoneIsUsable() throws {
        // Whatever the machine's zone is, a daily schedule fires within a day (plus a DST hour).
        let s = try parse("@daily")
        let now = unix("2024-05-05T05:05:05Z")
        let next = try #require(s.nextFireTime(after: now))
        #expect(next > now && next <= now + 25 * 3600)
        #expect(TimeZoneRules.local == TimeZoneRules.local)
    }
}

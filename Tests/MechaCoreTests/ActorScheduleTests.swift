import MechaCore
import Testing

@Suite struct ActorScheduleTests {
    let now = Timestamp(rfc3339: "2026-01-31T10:00:00Z")!

    @Test func goAndISODurations() throws {
        #expect(try ActorInterval.parse("1m30s").duration == .seconds(90))
        // The SDK's form, with the Greek mu.
        #expect(try ActorInterval.parse("0h0m5s0ms0\u{03bc}s").duration == .seconds(5))
        #expect(try ActorInterval.parse("PT10S").duration == .seconds(10))
        let iso = try ActorInterval.parse("P1Y2M3W4DT5H6M7S")
        #expect(iso.years == 1 && iso.months == 2 && iso.days == 25 && iso.duration == .seconds(5 * 3600 + 6 * 60 + 7))
        #expect(iso.repetitions == nil)
        let repeated = try ActorInterval.parse("R5/PT2S")
        #expect(repeated.repetitions == 5 && repeated.duration == .seconds(2))
        #expect(try ActorInterval.parse("R3/1s").repetitions == 3)
        for bad in ["", "P", "PT", "P1H", "R/PT1S", "Rx/PT1S", "1 hour", "PT1.5S", "R5/"] {
            #expect(throws: ActorScheduleError.self, "\(bad)") { try ActorInterval.parse(bad) }
        }
    }

    @Test func calendarPartsMoveLikeGoAddDate() {
        // Jan 31 + 1 month = Mar 3 (Go normalises Feb 31).
        let next = ActorInterval(months: 1).after(self.now)
        #expect(next == Timestamp(rfc3339: "2026-03-03T10:00:00Z"))
        #expect(ActorInterval(days: 1, duration: .seconds(1)).after(self.now) == Timestamp(rfc3339: "2026-02-01T10:00:01Z"))
    }

    @Test func dueTimePeriodAndTTL() throws {
        let schedule = try ActorSchedule.parse(dueTime: "5s", period: "R3/PT1S", ttl: "", now: self.now)
        #expect(schedule.dueTime == self.now.adding(.seconds(5)))
        let second = try #require(schedule.next(after: schedule.dueTime, fired: 1))
        let third = try #require(schedule.next(after: second, fired: 2))
        #expect(schedule.next(after: third, fired: 3) == nil)

        let absolute = try ActorSchedule.parse(dueTime: "2026-02-01T00:00:00Z", period: "", ttl: "", now: self.now)
        #expect(absolute.dueTime == Timestamp(rfc3339: "2026-02-01T00:00:00Z"))
        #expect(absolute.period == nil)

        // ttl equal to the due time still fires once (the SDK's demo registers it so).
        let boundary = try ActorSchedule.parse(dueTime: "5s", period: "5s", ttl: "5s", now: self.now)
        #expect(boundary.isLive(at: boundary.dueTime))
        #expect(boundary.next(after: boundary.dueTime, fired: 1) == nil)

        #expect(throws: ActorScheduleError.self) { try ActorSchedule.parse(dueTime: "soon", period: "", ttl: "", now: self.now) }
        #expect(throws: ActorScheduleError.self) { try ActorSchedule.parse(dueTime: "", period: "R0/PT1S", ttl: "", now: self.now) }
        #expect(throws: ActorScheduleError.self) { try ActorSchedule.parse(dueTime: "", period: "-1s", ttl: "", now: self.now) }
        #expect(throws: ActorScheduleError.self) {
            try ActorSchedule.parse(dueTime: "10s", period: "1s", ttl: "2026-01-01T00:00:00Z", now: self.now)
        }
        // A zero period fires once.
        #expect(try ActorSchedule.parse(dueTime: "", period: "0s", ttl: "", now: self.now).period == nil)
    }
}

@Suite struct PlacementTableTests {
    func host(_ n: Int, types: [String] = ["T"]) -> ActorHost {
        ActorHost(instanceID: "i\(n)", appID: "app", namespace: "default", host: "127.0.0.1", internalPort: 1000 + n, mtls: false, types: types)
    }

    @Test func sameMembersSameTableAnywhere() {
        let a = PlacementTable(hosts: [self.host(1), self.host(2), self.host(3)])
        let b = PlacementTable(hosts: [self.host(3), self.host(1), self.host(2)])
        #expect(a.version == b.version && !a.version.isEmpty)
        for id in 0..<200 { #expect(a.host(type: "T", id: "\(id)") == b.host(type: "T", id: "\(id)")) }
        #expect(PlacementTable(hosts: [self.host(1)]).version != a.version)
    }

    @Test func spreadsAndMovesLittle() {
        let three = PlacementTable(hosts: [self.host(1), self.host(2), self.host(3)])
        var counts: [String: Int] = [:]
        for id in 0..<3000 { counts[three.host(type: "T", id: "a\(id)")!.instanceID, default: 0] += 1 }
        #expect(counts.count == 3)
        #expect(counts.values.allSatisfy { $0 > 600 }, "\(counts)")
        // A fourth host takes about a quarter; nothing moves between the three others.
        let four = PlacementTable(hosts: [self.host(1), self.host(2), self.host(3), self.host(4)])
        var moved = 0
        for id in 0..<3000 {
            let before = three.host(type: "T", id: "a\(id)")!.instanceID
            let after = four.host(type: "T", id: "a\(id)")!.instanceID
            if before != after {
                #expect(after == "i4")
                moved += 1
            }
        }
        #expect(moved > 400 && moved < 1300, "\(moved)")
    }

    @Test func onlyHostsOfTheType() {
        let table = PlacementTable(hosts: [self.host(1, types: ["A"]), self.host(2, types: ["A", "B"])])
        for id in 0..<100 { #expect(table.host(type: "B", id: "\(id)")?.instanceID == "i2") }
        #expect(table.host(type: "C", id: "x") == nil)
        #expect(!table.hosts(type: "C") && table.hosts(type: "A"))
        #expect(PlacementTable.empty.host(type: "A", id: "x") == nil)
    }
}

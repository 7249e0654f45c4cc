import MechaCore
import Testing

@testable import MechaHTTP

/// The HTTP/1.1 connection deadlines as transcripts: events in, verdicts out, time passed in.
struct ConnectionDeadlinesTests {
    static let timeouts = ConnectionTimeouts(idle: .seconds(60), read: .seconds(30))

    @Test func anIdleConnectionIsClosedAfterTheIdleTimeout() {
        var deadlines = ConnectionDeadlines(timeouts: Self.timeouts, now: .zero)
        let first = deadlines.check(now: .seconds(59))
        #expect(first.verdict == .keep && first.next == .seconds(60))
        #expect(deadlines.check(now: .seconds(60)).verdict == .close(reason: "idle"))
    }

    @Test func aSlowHeadIsCutOffAfterTheReadTimeout() {
        // Slowloris: one byte, then nothing while the server keeps asking for more.
        var deadlines = ConnectionDeadlines(timeouts: Self.timeouts, now: .zero)
        deadlines.bytesRead(now: .seconds(1))
        deadlines.readRequested()
        #expect(deadlines.check(now: .seconds(30)).verdict == .keep)
        #expect(deadlines.check(now: .seconds(31)).verdict == .close(reason: "request head not complete in time"))
    }

    @Test func aHeadTricklingInStillHasOneDeadline() {
        var deadlines = ConnectionDeadlines(timeouts: Self.timeouts, now: .zero)
        for second in 1...40 {
            deadlines.bytesRead(now: .seconds(second))
            deadlines.readRequested()
            let verdict = deadlines.check(now: .seconds(second)).verdict
            if second < 31 { #expect(verdict == .keep, "at \(second)s") }
            if second == 31 { #expect(verdict != .keep, "a byte a second must not keep a head open forever") }
        }
    }

    @Test func aStalledBodyIsCutOffButAProgressingOneIsNot() {
        var deadlines = ConnectionDeadlines(timeouts: Self.timeouts, now: .zero)
        deadlines.bytesRead(now: .zero)
        deadlines.headReceived(now: .zero)
        deadlines.readRequested()
        for second in stride(from: 10, through: 100, by: 10) {
            deadlines.bytesRead(now: .seconds(second))
            deadlines.readRequested()
            #expect(deadlines.check(now: .seconds(second)).verdict == .keep, "body progressing at \(second)s")
        }
        #expect(deadlines.check(now: .seconds(129)).verdict == .keep)
        #expect(deadlines.check(now: .seconds(131)).verdict == .close(reason: "request body stalled"))
    }

    @Test func aRequestWaitingForTheAppHasNoDeadline() {
        var deadlines = ConnectionDeadlines(timeouts: Self.timeouts, now: .zero)
        deadlines.bytesRead(now: .zero)
        deadlines.headReceived(now: .zero)
        deadlines.requestEnded(now: .zero)
        deadlines.readRequested()
        let waiting = deadlines.check(now: .seconds(3600))
        #expect(waiting.verdict == .keep && waiting.next == nil)
        deadlines.responseEnded(now: .seconds(3600))
        #expect(deadlines.check(now: .seconds(3659)).verdict == .keep)
        #expect(deadlines.check(now: .seconds(3660)).verdict == .close(reason: "idle"))
    }

    @Test func backPressureIsNotThePeersStall() {
        // The server stopped reading (a pipelined request waits): bytes already came, no read
        // is outstanding, so the head's clock restarts at each check.
        var deadlines = ConnectionDeadlines(timeouts: Self.timeouts, now: .zero)
        deadlines.bytesRead(now: .zero)
        #expect(deadlines.check(now: .seconds(100)).verdict == .keep)
    }

    @Test func aPeerThatReadsNothingIsCutOff() {
        var deadlines = ConnectionDeadlines(timeouts: Self.timeouts, now: .zero)
        deadlines.bytesRead(now: .zero)
        deadlines.headReceived(now: .zero)
        deadlines.requestEnded(now: .zero)
        deadlines.writabilityChanged(writable: false, now: .seconds(1))
        #expect(deadlines.check(now: .seconds(60)).verdict == .keep)
        #expect(deadlines.check(now: .seconds(61)).verdict == .close(reason: "the peer reads nothing"))
    }
}

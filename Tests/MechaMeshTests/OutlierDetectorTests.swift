import MechaCore
import MechaMesh
import Testing

@Suite("OutlierDetector")
struct OutlierDetectorTests {
    static func detector(_ keys: [String] = ["a", "b", "c"], maxEjectionPercent: Int = 50, maxEjectionTime: Duration = .seconds(300)) -> OutlierDetector {
        var detector = OutlierDetector(OutlierDetectionSpec(
            consecutiveFailures: 5,
            baseEjectionTime: .seconds(10),
            maxEjectionTime: maxEjectionTime,
            maxEjectionPercent: maxEjectionPercent
        ))
        detector.update(endpoints: keys)
        return detector
    }

    static func fail(_ detector: inout OutlierDetector, _ key: String, times: Int, at seconds: Double) {
        for _ in 0..<times { detector.record(key: key, success: false, now: VirtualTime.s(seconds)) }
    }

    /// When `key`'s ejection ends, in seconds from the origin.
    static func returns(_ detector: OutlierDetector, _ key: String, at seconds: Double) -> Double? {
        detector.ejectedUntil(key: key, now: VirtualTime.s(seconds)).map { Double($0 - VirtualTime.origin) / 1e9 }
    }

    @Test func fiveConsecutiveFailuresEject() {
        var detector = Self.detector()
        Self.fail(&detector, "a", times: 4, at: 0)
        #expect(!detector.isEjected(key: "a", now: VirtualTime.s(0)))
        Self.fail(&detector, "a", times: 1, at: 1)
        #expect(detector.isEjected(key: "a", now: VirtualTime.s(1)))
        #expect(detector.ejected(now: VirtualTime.s(1)) == ["a"])
        #expect(Self.returns(detector, "a", at: 1) == 11)
        // Back after the base ejection time, on its own.
        #expect(detector.isEjected(key: "a", now: VirtualTime.s(10.999)))
        #expect(!detector.isEjected(key: "a", now: VirtualTime.s(11)))
        #expect(detector.ejected(now: VirtualTime.s(11)).isEmpty)
    }

    @Test func successResetsTheCount() {
        var detector = Self.detector()
        Self.fail(&detector, "a", times: 4, at: 0)
        detector.record(key: "a", success: true, now: VirtualTime.s(0))
        Self.fail(&detector, "a", times: 4, at: 0)
        #expect(!detector.isEjected(key: "a", now: VirtualTime.s(0)))
        Self.fail(&detector, "a", times: 1, at: 0)
        #expect(detector.isEjected(key: "a", now: VirtualTime.s(0)))
    }

    @Test func aSecondEjectionIsLongerAndTheMultiplierIsCapped() {
        var detector = Self.detector(maxEjectionTime: .seconds(25))
        Self.fail(&detector, "a", times: 5, at: 0)
        #expect(Self.returns(detector, "a", at: 0) == 10)
        // Still failing after it returns: ejected again after the threshold, for twice as long.
        Self.fail(&detector, "a", times: 4, at: 10)
        #expect(!detector.isEjected(key: "a", now: VirtualTime.s(10)))
        Self.fail(&detector, "a", times: 1, at: 11)
        #expect(Self.returns(detector, "a", at: 11) == 31)
        // Third time: 30 s, capped at 25 s.
        Self.fail(&detector, "a", times: 5, at: 31)
        #expect(Self.returns(detector, "a", at: 31) == 56)
        #expect(detector.multiplier(key: "a", now: VirtualTime.s(31)) == 3)
    }

    @Test func theMultiplierDecaysWhileHealthy() {
        var detector = Self.detector()
        Self.fail(&detector, "a", times: 5, at: 0)
        Self.fail(&detector, "a", times: 5, at: 10)
        #expect(Self.returns(detector, "a", at: 10) == 30)
        #expect(detector.multiplier(key: "a", now: VirtualTime.s(30)) == 2)
        #expect(detector.multiplier(key: "a", now: VirtualTime.s(39.9)) == 2)
        #expect(detector.multiplier(key: "a", now: VirtualTime.s(40)) == 1)
        // A failure restarts the healthy clock (without ejecting).
        Self.fail(&detector, "a", times: 1, at: 45)
        #expect(detector.multiplier(key: "a", now: VirtualTime.s(54)) == 1)
        #expect(detector.multiplier(key: "a", now: VirtualTime.s(55)) == 0)
        detector.record(key: "a", success: true, now: VirtualTime.s(55))
        // Fully healthy again: the next ejection is the base time.
        Self.fail(&detector, "a", times: 5, at: 60)
        #expect(Self.returns(detector, "a", at: 60) == 70)
    }

    @Test func theEjectionCapIsHonoured() {
        var detector = Self.detector(["a", "b", "c"], maxEjectionPercent: 50)
        Self.fail(&detector, "a", times: 5, at: 0)
        Self.fail(&detector, "b", times: 5, at: 1)
        Self.fail(&detector, "c", times: 9, at: 2)
        #expect(detector.ejected(now: VirtualTime.s(2)) == ["a"])
        // Once a returns there is room again: b's next failure ejects it.
        Self.fail(&detector, "b", times: 1, at: 10)
        #expect(detector.ejected(now: VirtualTime.s(10)) == ["b"])
    }

    @Test func aSingleInstanceIsNeverEjectedUnderAStrictCap() {
        var detector = Self.detector(["only"], maxEjectionPercent: 50)
        Self.fail(&detector, "only", times: 50, at: 0)
        #expect(!detector.isEjected(key: "only", now: VirtualTime.s(0)))
    }

    @Test func aFullCapLetsEveryInstanceGo() {
        var detector = Self.detector(["a", "b"], maxEjectionPercent: 100)
        Self.fail(&detector, "a", times: 5, at: 0)
        Self.fail(&detector, "b", times: 5, at: 0)
        #expect(detector.ejectedCount(now: VirtualTime.s(0)) == 2)
    }

    @Test func outcomesWhileEjectedAreIgnored() {
        var detector = Self.detector()
        Self.fail(&detector, "a", times: 5, at: 0)
        // In-flight calls failing during the ejection neither extend it nor count towards the next.
        Self.fail(&detector, "a", times: 20, at: 5)
        #expect(Self.returns(detector, "a", at: 5) == 10)
        Self.fail(&detector, "a", times: 4, at: 10)
        #expect(!detector.isEjected(key: "a", now: VirtualTime.s(10)))
    }

    @Test func updateForgetsRemovedAndKeepsRemaining() {
        var detector = Self.detector()
        Self.fail(&detector, "a", times: 5, at: 0)
        Self.fail(&detector, "b", times: 4, at: 0)
        detector.update(endpoints: ["a", "b", "d"])
        #expect(detector.isEjected(key: "a", now: VirtualTime.s(1)))
        Self.fail(&detector, "b", times: 1, at: 1)
        // 1 of 3 ejected already; a second would exceed 50 %.
        #expect(!detector.isEjected(key: "b", now: VirtualTime.s(1)))
        detector.update(endpoints: ["b", "d"])
        #expect(!detector.isEjected(key: "a", now: VirtualTime.s(1)))
        detector.record(key: "zzz", success: false, now: VirtualTime.s(1))
        #expect(detector.ejected(now: VirtualTime.s(1)).isEmpty)
    }
}

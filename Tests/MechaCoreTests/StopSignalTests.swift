import MechaCore
import Testing

@Suite struct StopSignalTests {
    @Test func eitherFiresWithTheFirstParent() async {
        let shutdown = StopSignal()
        let retired = StopSignal()
        let child = StopSignal.either(shutdown, retired)
        #expect(!child.isStopped)
        shutdown.stop()
        #expect(child.isStopped)
        await child.wait()
        // The other parent stopping later changes nothing.
        retired.stop()
        #expect(child.isStopped)
    }

    @Test func eitherFiresWithTheSecondParentAndWakesWaiters() async {
        let shutdown = StopSignal()
        let retired = StopSignal()
        let child = StopSignal.either(shutdown, retired)
        async let waited: Void = child.wait()
        retired.stop()
        await waited
        #expect(child.isStopped)
        #expect(!shutdown.isStopped)
    }

    @Test func eitherOfAFiredParentIsFiredAlready() {
        let shutdown = StopSignal()
        shutdown.stop()
        #expect(StopSignal.either(shutdown, StopSignal()).isStopped)
        #expect(StopSignal.either(StopSignal(), shutdown).isStopped)
    }

    @Test func manyChildrenOfOneParent() async {
        let shutdown = StopSignal()
        let children = (0..<1000).map { _ in StopSignal.either(shutdown, StopSignal()) }
        // Half retire on their own first.
        let retirements = (0..<1000).map { _ in StopSignal() }
        let mixed = zip(children, retirements).map { StopSignal.either($0, $1) }
        for index in stride(from: 0, to: 1000, by: 2) { retirements[index].stop() }
        #expect(mixed.enumerated().allSatisfy { $0.element.isStopped == ($0.offset % 2 == 0) })
        shutdown.stop()
        #expect(children.allSatisfy(\.isStopped) && mixed.allSatisfy(\.isStopped))
    }
}

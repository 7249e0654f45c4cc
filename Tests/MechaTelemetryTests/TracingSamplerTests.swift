import Testing

@testable import MechaTelemetry

@Suite struct TracingSamplerTests {
    static func randomIDs(_ count: Int) -> [TraceID] {
        (0..<count).map { _ in TraceID.random() }
    }

    @Test func rateZeroNeverSamplesARoot() {
        let sampler = TraceSampler(rate: 0)
        #expect(sampler.isDisabled)
        #expect(Self.randomIDs(1000).allSatisfy { !sampler.sample(parent: nil, traceID: $0) })
        #expect(!sampler.sample(traceID: TraceID(high: 0, low: 0)))
    }

    @Test func rateOneAlwaysSamplesARoot() {
        let sampler = TraceSampler(rate: 1)
        #expect(Self.randomIDs(1000).allSatisfy { sampler.sample(parent: nil, traceID: $0) })
        #expect(sampler.sample(traceID: TraceID(high: .max, low: .max)))
        #expect(TraceSampler(rate: 7).rate == 1)
        #expect(TraceSampler(rate: -1).rate == 0)
        #expect(TraceSampler(rate: .nan).rate == 0)
    }

    @Test func rateHalfSamplesAboutHalfOfRandomRoots() {
        let sampler = TraceSampler(rate: 0.5)
        let sampled = Self.randomIDs(10_000).filter { sampler.sample(parent: nil, traceID: $0) }.count
        #expect((4500...5500).contains(sampled), "sampled \(sampled) of 10000")
        let tenth = TraceSampler(rate: 0.1)
        let fewer = Self.randomIDs(10_000).filter { tenth.sample(parent: nil, traceID: $0) }.count
        #expect((500...1500).contains(fewer), "sampled \(fewer) of 10000")
    }

    @Test func theLowHalfOfTheTraceIDDecidesLikeOpenTelemetryGo() {
        // bound = 0.5 × 2^63 = 2^62; sampled iff (low >> 1) < 2^62.
        let sampler = TraceSampler(rate: 0.5)
        #expect(sampler.sample(traceID: TraceID(high: .max, low: (1 << 63) - 1)))
        #expect(!sampler.sample(traceID: TraceID(high: 0, low: 1 << 63)))
        #expect(!sampler.sample(traceID: TraceID(high: 0, low: .max)))
        #expect(sampler.sample(traceID: TraceID(high: 0, low: 1)))
    }

    @Test func theParentDecidesWhenThereIsOne() {
        let sampled = TraceParent.random(sampled: true)
        let unsampled = TraceParent.random(sampled: false)
        let always = TraceSampler(rate: 1)
        let never = TraceSampler(rate: 0)
        let lowZero = TraceID(high: 1, low: 0)  // the ratio alone would sample this at any rate > 0
        #expect(never.sample(parent: sampled, traceID: sampled.traceID))
        #expect(!always.sample(parent: unsampled, traceID: unsampled.traceID))
        #expect(!TraceSampler(rate: 0.5).sample(parent: unsampled, traceID: lowZero))
        #expect(TraceSampler(rate: 0.5).sample(parent: nil, traceID: lowZero))
    }

    @Test func parsesDaprSamplingRateStrings() {
        #expect(TraceSampler(samplingRate: "1")?.rate == 1)
        #expect(TraceSampler(samplingRate: "0")?.isDisabled == true)
        #expect(TraceSampler(samplingRate: "0.25")?.rate == 0.25)
        #expect(TraceSampler(samplingRate: "")?.rate == TraceSampler.defaultRate)
        #expect(TraceSampler(samplingRate: "half") == nil)
        #expect(TraceSampler(samplingRate: "nan") == nil)
    }
}

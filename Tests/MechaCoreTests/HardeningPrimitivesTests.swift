import MechaCore
import Testing

/// The small primitives the hardening fixes rest on: each test names the defect it guards.
struct HardeningPrimitivesTests {
    @Test func constantTimeEqualsComparesWholeStrings() {
        #expect(ConstantTime.equals("secret", "secret"))
        #expect(!ConstantTime.equals("secret", "secreT"))
        #expect(!ConstantTime.equals("secret", "secret2"), "a longer value with the same prefix")
        #expect(!ConstantTime.equals("secret2", "secret"))
        #expect(!ConstantTime.equals("", "x"))
        #expect(ConstantTime.equals("", ""))
        #expect(!ConstantTime.equals("a\u{0}", "a"), "NUL is a byte like any other")
    }

    @Test func nulTextIsFoundAndEscaped() {
        #expect(NULText.contains("a\u{0}b"))
        #expect(!NULText.contains("ab"))
        #expect(NULText.quoted("a\u{0}b") == "'a\\x00b'")
    }

    @Test func goDurationRefusesWhatGoRefuses() {
        #expect(GoDuration.parse("2562047h") == .seconds(2_562_047 * 3600))
        #expect(GoDuration.parse("2562048h") == nil, "beyond math.MaxInt64 nanoseconds")
        #expect(GoDuration.parse("99999999999999999999h") == nil)
        #expect(GoDuration.parse(String(repeating: "9", count: 400) + "s") == nil, "a number Double reads as infinity")
        #expect(GoDuration.parse("-1s") == .seconds(-1))
        #expect(GoDuration.parse("1.5s") == .milliseconds(1500))
        #expect(GoDuration.parse("1x") == nil)
        #expect(GoDuration.parse(".s") == nil)
        #expect(GoDuration.parse("2562047h47m16.854775807s") == .nanoseconds(Int64.max), "Go's largest duration, exactly")
        #expect(GoDuration.parse("-2562047h47m16.854775808s") == .nanoseconds(Int64.min))
        #expect(GoDuration.parse("2562047h47m16.854775808s") == nil)
        #expect(GoDuration.parse("1.s") == .seconds(1) && GoDuration.parse("1.") == nil, "a unit is required")
        #expect(GoDuration.parse(".5s") == .milliseconds(500))
        #expect(GoDuration.parse("1.0000000000000000000000001s") == .seconds(1), "digits beyond 63 bits are ignored")
    }

    @Test func goDurationFormatsLikeGoAndRoundTrips() {
        #expect(GoDuration.format(.nanoseconds(60_000_000_001)) == "1m0.000000001s", "was 1m1e-09s")
        #expect(GoDuration.format(.milliseconds(1500)) == "1.5s")
        #expect(GoDuration.format(.nanoseconds(1_500)) == "1.5µs")
        #expect(GoDuration.format(.nanoseconds(1_000_001)) == "1.000001ms")
        #expect(GoDuration.format(.seconds(3600)) == "1h0m0s")
        #expect(GoDuration.format(.nanoseconds(Int64.max)) == "2562047h47m16.854775807s")
        #expect(GoDuration.format(.nanoseconds(Int64.min)) == "-2562047h47m16.854775808s")
        for nanoseconds: Int64 in [1, 999, 1_000_001, 86_400_000_000_123, 9_000_000_000_000_000_001, Int64.max, -7, Int64.min] {
            let duration = Duration.nanoseconds(nanoseconds)
            #expect(GoDuration.parse(GoDuration.format(duration)) == duration, "\(nanoseconds)")
        }
    }

    @Test func durationConversionsSaturate() {
        #expect(Duration.goMaximum.milliseconds == Int64.max / 1_000_000)
        let huge = Duration.seconds(Int64.max)
        #expect(huge.milliseconds == Int64.max, "trapped before: Int64(attoseconds / 1e15)")
        #expect(huge.clampedNanoseconds == Int64.max)
        #expect(Duration.seconds(-5).clamped(to: .zero ... .seconds(1)) == .zero)
        #expect(Duration.maximumInterval > .seconds(86_400 * 365 * 99))
    }

    @Test func saturatingArithmeticHoldsAtTheBounds() {
        #expect(Int64.max.addingSaturated(1) == .max)
        #expect(Int64.min.addingSaturated(-1) == .min)
        #expect(Int64(5).addingSaturated(3) == 8)
        #expect(Int64.min.subtractingSaturated(1) == .min)
        #expect(Int64.max.subtractingSaturated(-1) == .max)
    }

    @Test func pathUnescapeDecodesAndRefusesBadEscapes() {
        #expect(PercentDecoding.pathUnescape("a%2Fb") == "a/b")
        #expect(PercentDecoding.pathUnescape("a+b") == "a+b")
        #expect(PercentDecoding.pathUnescape("%zz") == nil)
        #expect(PercentDecoding.pathUnescape("%2") == nil)
        #expect(PercentDecoding.queryUnescape("a+b") == "a b")
    }
}

import Testing

@testable import MechaConfig

/// Resource files are read before they are trusted: size, expanded node count and depth are
/// bounded before any tree is built.
struct YAMLPreflightTests {
    @Test func ordinaryResourcesPass() {
        let text = """
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: statestore
            spec:
              type: state.sqlite
              version: v1
              metadata:
              - name: connectionString
                value: "data.db"
            """
        #expect(YAMLPreflight.check(text) == nil)
    }

    @Test func aliasesAreAcceptedAndCountedExpanded() {
        let small = "a: &x [1, 2, 3]\nb: *x\nc: *x\n"
        #expect(YAMLPreflight.check(small) == nil, "Go's YAML accepts aliases; so do we")

        // The "billion laughs": each level names the previous one ten times.
        var lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
        for level in 1...9 {
            let refs = Array(repeating: "*l\(level - 1)", count: 10).joined(separator: ", ")
            lines.append("l\(level): &l\(level) [\(refs)]")
        }
        let violation = YAMLPreflight.check(lines.joined(separator: "\n") + "\n")
        #expect(violation != nil, "10^10 nodes once expanded")
        #expect(violation?.message.contains("nodes") == true, "\(String(describing: violation))")
    }

    @Test func nestingIsBounded() {
        let limits = YAMLLimits()
        let deep = String(repeating: "[", count: limits.maxDepth + 1) + String(repeating: "]", count: limits.maxDepth + 1)
        #expect(YAMLPreflight.check(deep) != nil)
        let fine = String(repeating: "[", count: limits.maxDepth - 1) + String(repeating: "]", count: limits.maxDepth - 1)
        #expect(YAMLPreflight.check(fine) == nil)
    }

    @Test func nodeCountIsBoundedWithoutAliases() {
        var limits = YAMLLimits()
        limits.maxNodes = 100
        let list = "[" + Array(repeating: "1", count: 200).joined(separator: ",") + "]"
        #expect(YAMLPreflight.check(list, limits: limits) != nil)
        #expect(YAMLPreflight.check("[1, 2]", limits: limits) == nil)
    }
}

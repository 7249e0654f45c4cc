import MechaAPI
import Testing

/// daprd's `NormalizeMethod`, applied to every invocation surface.
struct InvocationMethodTests {
    func normalized(_ raw: String) -> String? {
        if case .success(let method) = InvocationMethod.normalize(raw) { return method }
        return nil
    }

    @Test func cleanMethodsPassUnchanged() {
        for method in ["hello", "api/v1/orders", "a-b_c~d", "x:y@z", "v1.0/thing"] {
            #expect(InvocationMethod.isClean(method), "\(method)")
            #expect(self.normalized(method) == method)
        }
    }

    @Test func dotSegmentsCannotClimbOutOfTheApp() {
        #expect(self.normalized("../admin") == "admin")
        #expect(self.normalized("a/../../admin") == "admin")
        #expect(self.normalized("%2e%2e/admin") == "admin", "encoded dots are decoded first")
        #expect(self.normalized("a/%2E%2E/%2e%2e/%2e%2e/admin") == "admin")
        #expect(self.normalized("./a//b/") == "a/b")
    }

    @Test func encodedSlashesReachTheAppAsSlashes() {
        #expect(self.normalized("a%2Fb") == "a/b")
        #expect(self.normalized("with space") == "with%20space")
    }

    @Test func forbiddenCharactersAreRefused() {
        #expect(self.normalized("a%23b") == nil, "#")
        #expect(self.normalized("a%3Fb") == nil, "?")
        #expect(self.normalized("a%00b") == nil, "NUL")
        #expect(self.normalized("a%0Ab") == nil, "control character")
        if case .failure(let error) = InvocationMethod.normalize("a%0Ab") {
            #expect(error.description.contains("control character at position 1"))
            #expect(error.description.contains("\"a\\nb\""))
        }
    }

    @Test func isCleanRejectsEverythingNormalizeWouldChange() {
        for method in ["", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "a%20b", "a b", "a?b", "a+b"] {
            #expect(!InvocationMethod.isClean(method), "\(method)")
        }
        #expect(InvocationMethod.isClean("...") && InvocationMethod.isClean("a/.../b"), "three dots are a name")
    }
}

import MechaCore
import Testing

@testable import MechaConfig

@Suite("NodeReader")
struct NodeReaderTests {
    static let source = ResourceSource(file: "f.yaml", resource: "Component/c")

    static func reader(_ text: String) throws -> NodeReader {
        let node = try #require(try YAMLDocuments.parse(text).first)
        return NodeReader(node, path: "", source: self.source)
    }

    @Test func pathsOfNestedFields() throws {
        let root = try Self.reader("spec:\n  metadata:\n  - name: a\n  - name: b\n    value: {x: [1]}\n")
        let items = try root.required("spec").required("metadata").sequence()
        #expect(items.map(\.path) == ["spec.metadata[0]", "spec.metadata[1]"])
        let value = try #require(try items[1].optional("value"))
        #expect(value.path == "spec.metadata[1].value")
        #expect(value.metadataValue() == #"{"x":[1]}"#)
        let x = try #require(try value.optional("x"))
        #expect(try x.sequence().map(\.path) == ["spec.metadata[1].value.x[0]"])
    }

    @Test func missingRequiredFieldNamesThePathAndParentLine() throws {
        let root = try Self.reader("a: 1\nspec:\n  other: 2\n")
        let spec = try root.required("spec")
        #expect(throws: ResourceError(source: ResourceSource(file: "f.yaml", resource: "Component/c", line: 3), field: "spec.type", reason: "required field is missing")) {
            try spec.required("type")
        }
    }

    @Test func nullMembersAreAbsent() throws {
        let root = try Self.reader("a: ~\nb: null\nc: ''\n")
        #expect(try root.optional("a") == nil)
        #expect(try root.optional("b") == nil)
        #expect(try root.optional("c") != nil)
        #expect(try root.optional("missing") == nil)
    }

    @Test func typeMismatchesSayWhatWasFound() throws {
        let root = try Self.reader("list: [1]\nmap: {a: 1}\nscalar: x\n")
        let list = try root.required("list")
        let map = try root.required("map")
        let scalar = try root.required("scalar")
        #expect(throws: ResourceError.self) { try list.string() }
        do {
            _ = try list.string()
        } catch {
            #expect(error.reason == "expected a string, found a sequence")
            #expect(error.field == "list")
            #expect(error.source.line == 1)
        }
        do {
            _ = try map.sequence()
        } catch {
            #expect(error.reason == "expected a list, found a mapping")
        }
        do {
            _ = try scalar.mapping()
            Issue.record("expected an error")
        } catch {
            #expect(error.reason == "expected a mapping, found a scalar")
            #expect(error.source.line == 3)
        }
        do {
            _ = try scalar.optional("x")
            Issue.record("expected an error")
        } catch {
            #expect(error.field == "scalar")
        }
    }

    @Test(arguments: [("42", 42), (" 7", 7), ("-3", -3)])
    func integers(text: String, expected: Int) throws {
        #expect(try Self.reader("n: '\(text)'\n").required("n").int() == expected)
    }

    @Test(arguments: ["4.5", "ten", "''"])
    func badIntegers(text: String) throws {
        let node = try Self.reader("n: \(text)\n").required("n")
        #expect(throws: ResourceError.self) { try node.int() }
    }

    @Test func booleansDurationsAndStrings() throws {
        let root = try Self.reader("b: off\nd: 250ms\ns: ' padded '\ne: '   '\nl: [a, 'b', 3]\nm: {x: 1, y: ~, z: 'q'}\n")
        #expect(try root.required("b").bool() == false)
        #expect(try root.required("d").duration() == .milliseconds(250))
        #expect(try root.required("s").string() == " padded ")
        #expect(try root.required("s").nonEmptyString() == "padded")
        #expect(throws: ResourceError.self) { try root.required("e").nonEmptyString() }
        #expect(try root.required("l").strings() == ["a", "b", "3"])
        #expect(try root.required("m").stringMap() == ["x": "1", "z": "q"])
    }

    @Test func stringMapRefusesNestedValues() throws {
        let root = try Self.reader("m:\n  a: 1\n  b: [1]\n")
        do {
            _ = try root.required("m").stringMap()
            Issue.record("expected an error")
        } catch {
            #expect(error.field == "m.b")
        }
    }

    @Test func rejectUnknownKeysNamesTheTypo() throws {
        let root = try Self.reader("spec:\n  type: x\n  ignoreError: true\n")
        do {
            try root.required("spec").rejectUnknownKeys(["type", "ignoreErrors"])
            Issue.record("expected an error")
        } catch {
            #expect(error.field == "spec.ignoreError")
            #expect(error.reason.contains("ignoreErrors, type"))
        }
        try root.required("spec").rejectUnknownKeys(["type", "ignoreError"])
    }
}

import MechaCore
import Testing

@testable import MechaConfig

@Suite("YAMLNode")
struct YAMLNodeTests {
    static func parse(_ text: String) throws -> [YAMLNode] {
        do {
            return try YAMLDocuments.parse(text)
        } catch {
            Issue.record("unexpected syntax error: \(error.message)")
            throw error
        }
    }

    @Test func scalarsKeepTheirTextAndLine() throws {
        let documents = try Self.parse("a: 1\nb: 'quoted'\nc: plain text\nd: |\n  literal\n")
        let root = try #require(documents.first)
        guard case .mapping(let pairs, let line) = root else {
            Issue.record("expected a mapping")
            return
        }
        #expect(line == 1)
        #expect(pairs.map(\.key) == ["a", "b", "c", "d"])
        guard case .scalar(let one, let quotedOne, let lineOne) = pairs[0].value else { Issue.record("a"); return }
        #expect(one == "1" && !quotedOne && lineOne == 1)
        guard case .scalar(let quoted, let isQuoted, let lineTwo) = pairs[1].value else { Issue.record("b"); return }
        #expect(quoted == "quoted" && isQuoted && lineTwo == 2)
        guard case .scalar(let literal, let isLiteral, _) = pairs[3].value else { Issue.record("d"); return }
        #expect(literal == "literal\n" && isLiteral)
    }

    @Test func severalDocuments() throws {
        let documents = try Self.parse("a: 1\n---\nb: 2\n---\n")
        #expect(documents.count >= 2)
        #expect(documents.filter { !$0.isNull }.count == 2)
        #expect(documents[1].line == 3)
    }

    @Test(arguments: ["~", "null", "Null", "NULL", ""])
    func plainNulls(text: String) throws {
        let root = try #require(try Self.parse("k: \(text)\n").first)
        guard case .mapping(let pairs, _) = root else { Issue.record("mapping"); return }
        #expect(pairs[0].value.isNull)
        #expect(pairs[0].value.kindName == "null")
        #expect(pairs[0].value.json == .null)
    }

    @Test(arguments: ["'null'", "\"~\"", "\"\""])
    func quotedNullsAreStrings(text: String) throws {
        let root = try #require(try Self.parse("k: \(text)\n").first)
        guard case .mapping(let pairs, _) = root else { Issue.record("mapping"); return }
        #expect(!pairs[0].value.isNull)
        #expect(pairs[0].value.kindName == "scalar")
    }

    @Test func jsonConversion() throws {
        let root = try #require(
            try Self.parse(
                "m:\n  int: 42\n  float: -1.5e3\n  yes: true\n  no: False\n  s: hello\n  q: \"42\"\n  n: ~\n  l: [a, 1]\n  notnum: 1.2.3\n"
            ).first
        )
        guard case .mapping(let pairs, _) = root else { Issue.record("mapping"); return }
        #expect(
            pairs[0].value.json.jsonString
                == #"{"int":42,"float":-1.5e3,"yes":true,"no":false,"s":"hello","q":"42","n":null,"l":["a",1],"notnum":"1.2.3"}"#
        )
    }

    @Test func kindNames() throws {
        let root = try #require(try Self.parse("m: {a: 1}\ns: [1]\nv: x\n").first)
        guard case .mapping(let pairs, _) = root else { Issue.record("mapping"); return }
        #expect(pairs.map(\.value.kindName) == ["mapping", "sequence", "scalar"])
        #expect(root.kindName == "mapping")
    }

    @Test func syntaxErrorCarriesALine() {
        #expect(throws: YAMLDocuments.SyntaxError.self) { try YAMLDocuments.parse("a: 1\nb: [1, 2\nc: 3\n") }
        do {
            _ = try YAMLDocuments.parse("a: 1\nb: \"open\n")
            Issue.record("expected an error")
        } catch {
            #expect(error.line != nil)
            #expect(error.message.contains("invalid YAML"))
        }
    }

    @Test func nonScalarKeysAreRefused() {
        do {
            _ = try YAMLDocuments.parse("? [a, b]\n: value\n")
            Issue.record("expected an error")
        } catch {
            #expect(error.message.contains("keys must be scalars"))
        }
    }
}

import MechaCore
import Testing

// MARK: - Helpers

private func evaluate(_ source: String, _ variables: [String: CELValue] = [:]) throws -> CELValue {
    try CELExpression(parsing: source).evaluate(variables)
}

private func evaluateBool(_ source: String, _ variables: [String: CELValue] = [:]) throws -> Bool {
    try CELExpression(parsing: source).evaluateBool(variables)
}

/// The error evaluating `source` raises (the expression must parse).
private func evaluationError(_ source: String, _ variables: [String: CELValue] = [:]) throws -> CELError? {
    let expression = try CELExpression(parsing: source)
    do throws(CELError) {
        let value = try expression.evaluate(variables)
        Issue.record("expected \(source) to fail, got \(value)")
        return nil
    } catch {
        return error
    }
}

/// The error parsing `source` raises.
private func parseError(_ source: String) -> CELError? {
    do throws(CELError) {
        _ = try CELExpression(parsing: source)
        Issue.record("expected \(source) not to parse")
        return nil
    } catch {
        return error
    }
}

private func cloudEvent(type: String = "widget", data: String) throws -> [String: CELValue] {
    let json = """
        {"specversion":"1.0","type":"\(type)","source":"orders","id":"a1b2",
         "datacontenttype":"application/json","topic":"orders","pubsubname":"pubsub","data":\(data)}
        """
    return ["event": CELValue(json: try JSONValue(parsing: json))]
}

// MARK: - Dapr examples

@Suite struct CELDaprExampleTests {
    @Test(arguments: [
        ("widget", true),
        ("gadget", false),
    ])
    func eventType(type: String, expected: Bool) throws {
        #expect(try evaluateBool(#"event.type == "widget""#, cloudEvent(type: type, data: "{}")) == expected)
    }

    @Test(arguments: [
        (#"{"important": true}"#, true),
        (#"{"important": false}"#, false),
        (#"{"other": 1}"#, false),
    ])
    func hasImportant(data: String, expected: Bool) throws {
        let source = "has(event.data.important) && event.data.important == true"
        #expect(try evaluateBool(source, cloudEvent(data: data)) == expected)
    }

    @Test(arguments: [
        ("deposit", "15000", true),
        ("deposit", "10000", false),
        ("deposit", "10000.5", false),
        ("deposit", "10001.9", true),
        ("withdrawal", "15000", false),
    ])
    func depositAmount(type: String, amount: String, expected: Bool) throws {
        let source = #"event.type == "deposit" && int(event.data.amount) > 10000"#
        #expect(try evaluateBool(source, cloudEvent(type: type, data: #"{"amount": \#(amount)}"#)) == expected)
    }

    @Test func withdrawalWithoutAmountShortCircuits() throws {
        // `false && <missing key>` is false, not an error.
        let source = #"event.type == "deposit" && int(event.data.amount) > 10000"#
        #expect(try evaluateBool(source, cloudEvent(type: "withdrawal", data: "{}")) == false)
    }

    @Test(arguments: [
        ("express", true),
        ("standard", false),
    ])
    func priorityTier(tier: String, expected: Bool) throws {
        let source = "event.data.priorityTier == 'express'"
        #expect(try evaluateBool(source, cloudEvent(data: #"{"priorityTier": "\#(tier)"}"#)) == expected)
    }

    @Test(arguments: [
        ("US", false),
        ("DE", true),
    ])
    func destinationCountry(country: String, expected: Bool) throws {
        let source = "event.data.destinationCountry != 'US'"
        #expect(try evaluateBool(source, cloudEvent(data: #"{"destinationCountry": "\#(country)"}"#)) == expected)
    }

    @Test(arguments: [
        (#"{"test": 1234}"#, #"{}"#, true),
        (#"{}"#, #"{"test": 5678}"#, true),
        (#"{"test": 1}"#, #"{"test": 2}"#, false),
        (#"{}"#, #"{}"#, false),
    ])
    func inputOrResult(input: String, result: String, expected: Bool) throws {
        let source = "(has(input.test) && input.test == 1234) || (has(result.test) && result.test == 5678)"
        let variables = [
            "input": CELValue(json: try JSONValue(parsing: input)),
            "result": CELValue(json: try JSONValue(parsing: result)),
        ]
        #expect(try evaluateBool(source, variables) == expected)
    }

    @Test(arguments: [
        (CELValue.int(6), true),
        (.int(5), false),
        (.int(0), false),
        (.uint(10), true),
        (.uint(5), false),
        (.double(5.5), true),
    ])
    func consecutiveFailures(value: CELValue, expected: Bool) throws {
        #expect(try evaluateBool("consecutiveFailures > 5", ["consecutiveFailures": value]) == expected)
    }

    @Test func nestedDataAndLists() throws {
        let variables = try cloudEvent(data: #"""
            {"items": [{"sku": "A1", "qty": 2}, {"sku": "B7", "qty": 1}], "customer": {"tier": "gold"}}
            """#)
        #expect(try evaluateBool(#"event.data.items.exists(i, i.sku == "B7")"#, variables))
        #expect(try evaluateBool(#"event.data.items[0].sku == "A1" && event.data.customer.tier in ["gold", "platinum"]"#, variables))
        #expect(try evaluateBool("size(event.data.items) == 2 && event.data.items.all(i, i.qty >= 1)", variables))
        #expect(try evaluate("event.data.items.map(i, i.sku)", variables) == .list(["A1", "B7"]))
        #expect(try evaluateBool(#"event.source.startsWith("ord") && event.specversion == "1.0""#, variables))
    }
}

// MARK: - Errors

@Suite struct CELErrorTests {
    @Test func missingKey() throws {
        let error = try evaluationError("event.data.nothere == 1", cloudEvent(data: "{}"))
        #expect(error?.message == "no such key: nothere")
        #expect(error?.position == 10)
    }

    @Test func missingKeyByIndex() throws {
        let error = try evaluationError(#"event["nothere"]"#, cloudEvent(data: "{}"))
        #expect(error?.message == "no such key: nothere")
    }

    @Test func nonBooleanResult() throws {
        let expression = try CELExpression(parsing: "event.type")
        #expect(try expression.evaluate(cloudEvent(data: "{}")) == .string("widget"))
        let error = #expect(throws: CELError.self) { try expression.evaluateBool(cloudEvent(data: "{}")) }
        #expect(error?.message == "the result of match expression event.type was not a boolean")
        #expect(error?.position == nil)
        #expect(error?.description == "the result of match expression event.type was not a boolean")
    }

    @Test func undeclaredVariable() throws {
        let error = try evaluationError("1 == 1 && evnt.type == 'a'")
        #expect(error?.message == "undeclared reference to 'evnt'")
        #expect(error?.position == 10)
        #expect(error?.description == "undeclared reference to 'evnt' (at position 10)")
    }

    @Test(arguments: [
        ("event.type ==", 13),
        ("event.type = 'a'", 11),
        ("a & b", 2),
        ("a | b", 2),
        ("(a && b", 7),
        ("'unterminated", 0),
        ("'line\nbreak'", 0),
        ("1 +* 2", 3),
        ("a.", 2),
        ("a b", 2),
        ("[1, 2", 5),
        ("{'a' 1}", 5),
        ("a ? b", 5),
        ("#", 0),
        ("x == '\\q'", 6),
        ("0x", 0),
        ("1e", 0),
        ("9223372036854775808", 0),
        ("99999999999999999999", 0),
        ("", 0),
        ("if", 0),
        ("a.while", 2),
        ("in", 0),
        (")", 0),
    ])
    func syntaxErrorPositions(source: String, position: Int) {
        let error = parseError(source)
        #expect(error?.position == position, "\(source): \(String(describing: error))")
        #expect(error?.message.hasPrefix("syntax error") == true, "\(source): \(String(describing: error))")
    }

    @Test(arguments: [
        ("foo(1)", "undeclared reference to function 'foo'", 0),
        ("a.frobnicate()", "undeclared reference to function 'frobnicate'", 2),
        ("size(1, 2)", "function 'size' takes 1 argument, got 2", 0),
        ("'a'.startsWith()", "method 'startsWith' takes 1 argument, got 0", 4),
        ("has(a)", "syntax error: invalid argument to has() macro: expected a field selection such as has(a.b)", 0),
        ("l.exists(x.y, true)", "syntax error: argument to macro 'exists' must be a simple name", 10),
        ("l.all(x)", "syntax error: macro 'all' takes 2 arguments, got 1", 2),
    ])
    func callErrorsAtParseTime(source: String, message: String, position: Int) {
        let error = parseError(source)
        #expect(error?.message == message)
        #expect(error?.position == position)
    }

    @Test func invalidLiteralRegexIsAParseError() {
        let error = parseError("'abc'.matches('(unclosed')")
        #expect(error?.message.hasPrefix("invalid regular expression '(unclosed'") == true)
        #expect(error?.position == 14)
    }

    @Test func invalidDynamicRegexIsAnEvaluationError() throws {
        let error = try evaluationError("'abc'.matches(p)", ["p": "(unclosed"])
        #expect(error?.message.hasPrefix("invalid regular expression") == true)
    }

    @Test(arguments: [
        ("1 / 0", "division by zero"),
        ("1 % 0", "modulus by zero"),
        ("1u / 0u", "division by zero"),
        ("5u % 0u", "modulus by zero"),
    ])
    func divisionByZero(source: String, message: String) throws {
        let error = try evaluationError(source)
        #expect(error?.message == message)
        #expect(error?.position == 2 || error?.position == 3)
    }

    @Test func doubleDivisionByZeroIsInfinity() throws {
        #expect(try evaluate("1.0 / 0.0") == .double(.infinity))
    }

    @Test(arguments: [
        "9223372036854775807 + 1",
        "-9223372036854775808 - 1",
        "9223372036854775807 * 2",
        "-9223372036854775808 / -1",
        "-9223372036854775808 % -1",
        "-(-9223372036854775808)",
        "0u - 1u",
        "18446744073709551615u + 1u",
    ])
    func integerOverflow(source: String) throws {
        let error = try evaluationError(source)
        #expect(error?.message.contains("overflow") == true, "\(String(describing: error))")
    }

    @Test(arguments: [
        ("1 + 1.0", "no such overload: int + double"),
        ("1u + 1", "no such overload: uint + int"),
        ("'a' + 1", "no such overload: string + int"),
        ("1.5 % 1.0", "no such overload: double % double"),
        ("'a' < 1", "no such overload: string < int"),
        ("[1] < [2]", "no such overload: list < list"),
        ("null < null", "no such overload: null_type < null_type"),
        ("true < 1", "no such overload: bool < int"),
        ("1 in 1", "no such overload: int in int"),
        ("!1", "no such overload: !int"),
        ("-'a'", "no such overload: -string"),
        ("-1u", "no such overload: -uint"),
        ("int(true)", "no such overload: int(bool)"),
        ("size(1)", "no such overload: size(int)"),
        ("'abc'.startsWith(1)", "no such overload: startsWith(string, int)"),
    ])
    func noSuchOverload(source: String, message: String) throws {
        #expect(try evaluationError(source)?.message == message)
    }

    @Test func indexErrors() throws {
        #expect(try evaluationError("[1, 2][2]")?.message == "index '2' out of range in list of size 2")
        #expect(try evaluationError("[1, 2][-1]")?.message == "index '-1' out of range in list of size 2")
        #expect(try evaluationError("[1, 2]['a']")?.message == "no such overload: list index of type 'string'")
        #expect(try evaluationError("'abc'[0]")?.message == "type 'string' does not support indexing")
        #expect(try evaluationError("{1: 'a'}[2]")?.message == "no such key: 2")
    }

    @Test func selectionOnNonMap() throws {
        let variables = try cloudEvent(data: #""just a string""#)
        #expect(try evaluationError("event.data.x", variables)?.message == "type 'string' does not support field selection (selecting 'x')")
        #expect(try evaluationError("has(event.data.x)", variables)?.message == "invalid type for has(): 'string' does not support field selection")
        #expect(try evaluationError("has(event.nodata.x)", variables)?.message == "no such key: nodata")
        #expect(try evaluationError("has(missing.x)")?.message == "undeclared reference to 'missing'")
    }

    @Test func mapLiteralErrors() throws {
        #expect(try evaluationError("{1.5: 'a'}")?.message == "unsupported map key type 'double'")
        #expect(try evaluationError("{'a': 1, 'a': 2}")?.message == #"repeated map key: "a""#)
        #expect(try evaluationError("{1: 'a', 1u: 'b'}")?.message == "repeated map key: 1u")
    }

    @Test(arguments: [
        ("int(1e19)", "int conversion out of range: 1e+19"),
        ("int(-1e19)", "int conversion out of range: -1e+19"),
        ("int(18446744073709551615u)", "int conversion out of range: 18446744073709551615u"),
        ("int('12a')", "cannot convert string '12a' to int"),
        ("uint(-1)", "uint conversion out of range: -1"),
        ("uint(-1.0)", "uint conversion out of range: -1"),
        ("uint('x')", "cannot convert string 'x' to uint"),
        ("double('x')", "cannot convert string 'x' to double"),
        ("bool('maybe')", "cannot convert string 'maybe' to bool"),
        (#"string(b"\xff")"#, "bytes are not valid UTF-8 and cannot be converted to string"),
    ])
    func conversionErrors(source: String, message: String) throws {
        #expect(try evaluationError(source)?.message == message)
    }

    @Test func nonBooleanConditions() throws {
        #expect(try evaluationError("1 ? 2 : 3")?.message == "no such overload: condition of '?:' is int, not bool")
        #expect(try evaluationError("[1].exists(x, x)")?.message == "no such overload: predicate of 'exists' is int, not bool")
        #expect(try evaluationError("[1].filter(x, 'a')")?.message == "no such overload: predicate of 'filter' is string, not bool")
        #expect(try evaluationError("1.exists(x, true)")?.message == "no such overload: 'exists' over int")
    }
}

// MARK: - Logical operators

@Suite struct CELLogicTests {
    @Test(arguments: [
        ("true || missing", true),
        ("missing || true", true),
        ("false && missing", false),
        ("missing && false", false),
        ("1 || true", true),
        ("true || 1", true),
        ("'x' && false", false),
        ("false && 'x'", false),
        ("true && true", true),
        ("true && false", false),
        ("false || false", false),
        ("false || true", true),
        ("missing.a || missing.b || true", true),
        ("true ? true : missing", true),
        ("false ? missing : false", false),
    ])
    func shortCircuitAbsorbsErrors(source: String, expected: Bool) throws {
        #expect(try evaluateBool(source) == expected)
    }

    @Test(arguments: [
        ("missing || false", "undeclared reference to 'missing'"),
        ("false || missing", "undeclared reference to 'missing'"),
        ("missing && true", "undeclared reference to 'missing'"),
        ("true && missing", "undeclared reference to 'missing'"),
        ("missing && other", "undeclared reference to 'missing'"),
        ("1 && true", "no such overload: operand of '&&' is int, not bool"),
        ("false || 'x'", "no such overload: operand of '||' is string, not bool"),
    ])
    func errorsPropagateOtherwise(source: String, message: String) throws {
        #expect(try evaluationError(source)?.message == message)
    }

    @Test func longChainsAreBalanced() throws {
        let terms = (0..<2000).map { "x == \($0)" }
        let expression = try CELExpression(parsing: terms.joined(separator: " || "))
        #expect(try expression.evaluateBool(["x": 1999]))
        #expect(try expression.evaluateBool(["x": 2000]) == false)
        let conjunction = try CELExpression(parsing: (0..<2000).map { _ in "x > 0" }.joined(separator: " && "))
        #expect(try conjunction.evaluateBool(["x": 1]))
    }
}

// MARK: - Operators and precedence

@Suite struct CELOperatorTests {
    @Test(arguments: [
        ("1 + 2 * 3", CELValue.int(7)),
        ("(1 + 2) * 3", .int(9)),
        ("10 - 4 - 3", .int(3)),
        ("100 / 10 / 5", .int(2)),
        ("7 / 2", .int(3)),
        ("-7 / 2", .int(-3)),
        ("-7 % 3", .int(-1)),
        ("7 % -3", .int(1)),
        ("7u / 2u", .uint(3)),
        ("7u % 4u", .uint(3)),
        ("2u * 3u - 1u", .uint(5)),
        ("7.0 / 2.0", .double(3.5)),
        ("1.5 + 2.25 * 2.0", .double(6.0)),
        ("--5", .int(5)),
        ("-(3 - 5)", .int(2)),
        ("-2.5", .double(-2.5)),
        ("'ab' + 'cd'", .string("abcd")),
        ("b'ab' + b'c'", .bytes([0x61, 0x62, 0x63])),
        ("[1] + [2, 3]", .list([1, 2, 3])),
        ("true ? 1 : 2", .int(1)),
        ("false ? 1 : true ? 2 : 3", .int(2)),
        ("1 < 2 ? 'lt' : 'ge'", .string("lt")),
        ("true || false ? 'a' : 'b'", .string("a")),
        ("!true", .bool(false)),
        ("!!true", .bool(true)),
        ("!true == false", .bool(true)),
        ("true || false && false", .bool(true)),
        ("(true || false) && false", .bool(false)),
        ("1 < 2 == true", .bool(true)),
        ("1 + 1 == 2 && 2 * 2 == 4", .bool(true)),
        ("-9223372036854775808", .int(.min)),
        ("9223372036854775807", .int(.max)),
        ("-1 * -1", .int(1)),
        ("'abc'.size() + 1", .int(4)),
        ("[1, 2, 3][1] * 10", .int(20)),
        ("{'a': {'b': [10, 20]}}.a.b[1]", .int(20)),
        ("-[1, 2][0]", .int(-1)),
    ])
    func evaluatesTo(source: String, expected: CELValue) throws {
        #expect(try evaluate(source) == expected)
    }

    @Test(arguments: [
        ("'a' in ['a', 'b']", true),
        ("'c' in ['a', 'b']", false),
        ("2 in [1.0, 2.0]", true),
        ("2u in [1, 2]", true),
        ("2.5 in [2]", false),
        ("'k' in {'k': 1}", true),
        ("'z' in {'k': 1}", false),
        ("1 in {1u: 'a'}", true),
        ("[1] in [[1], [2]]", true),
        ("'a' in []", false),
        ("!('a' in ['b'])", true),
    ])
    func inOperator(source: String, expected: Bool) throws {
        #expect(try evaluateBool(source) == expected)
    }

    @Test func inOverEventData() throws {
        let variables = try cloudEvent(data: #"{"region": "eu", "tags": ["new", "vip"]}"#)
        #expect(try evaluateBool("'region' in event.data", variables))
        #expect(try evaluateBool("'country' in event.data", variables) == false)
        #expect(try evaluateBool("'vip' in event.data.tags", variables))
        #expect(try evaluateBool("event.data.region in ['eu', 'us']", variables))
    }

    @Test(arguments: [
        ("1 == 1.0", true),
        ("1u == 1", true),
        ("1u == 1.0", true),
        ("1 != 1.5", true),
        ("1 < 1.5", true),
        ("2 > 1.5", true),
        ("2u > 1", true),
        ("-1 < 0u", true),
        ("0u > -1", true),
        ("-1 == 18446744073709551615u", false),
        ("1.5 >= 1", true),
        ("3.0 <= 3u", true),
        ("9223372036854775807 < 9223372036854775808.0", true),
        ("9223372036854775807 == 9223372036854775808.0", false),
        ("18446744073709551615u < 18446744073709551616.0", true),
        ("-9223372036854775808 == -9223372036854775808.0", true),
        ("-1 < -0.5", true),
        ("[1, 2] == [1.0, 2u]", true),
        ("{'a': 1} == {'a': 1.0}", true),
        ("{'a': 1, 'b': 2} == {'b': 2, 'a': 1}", true),
        ("{'a': 1} == {'a': 2}", false),
        ("[1, 2] == [1, 2, 3]", false),
    ])
    func crossTypeNumericComparison(source: String, expected: Bool) throws {
        #expect(try evaluateBool(source) == expected)
    }

    @Test(arguments: [
        ("'1' == 1", false),
        ("'1' != 1", true),
        ("null == null", true),
        ("null == 0", false),
        ("null != 'a'", true),
        ("true == 1", false),
        ("[1] == {'a': 1}", false),
        ("b'a' == 'a'", false),
        ("[1, 'a'] == [1, 'a']", true),
        ("[1, 'a'] == [1, 'b']", false),
    ])
    func heterogeneousEqualityIsFalseNotAnError(source: String, expected: Bool) throws {
        #expect(try evaluateBool(source) == expected)
    }

    @Test(arguments: [
        ("'a' < 'b'", true),
        ("'abc' < 'abd'", true),
        ("'ab' < 'abc'", true),
        ("'Z' < 'a'", true),
        ("'b' >= 'a'", true),
        ("'é' > 'z'", true),
        ("false < true", true),
        ("true <= true", true),
        ("true > true", false),
        ("b'a' < b'b'", true),
        ("b'ab' > b'a'", true),
        ("1.0 / 0.0 > 1e308", true),
    ])
    func ordering(source: String, expected: Bool) throws {
        #expect(try evaluateBool(source) == expected)
    }

    @Test func nanComparesFalse() throws {
        let nan: [String: CELValue] = ["n": .double(.nan)]
        #expect(try evaluateBool("n == n", nan) == false)
        #expect(try evaluateBool("n != n", nan))
        #expect(try evaluateBool("n < 1 || n > 1 || n <= 1 || n >= 1", nan) == false)
        #expect(try evaluateBool("n < 1u || n > 1", nan) == false)
    }

    @Test func stringsCompareByScalarsNotCanonicalEquivalence() throws {
        // "é" precomposed vs "e" + combining acute: equal as Swift Strings, different in CEL.
        #expect(try evaluateBool("'\\u00e9' == 'e\\u0301'") == false)
        #expect(try evaluateBool("size('e\\u0301') == 2"))
        #expect(try evaluateBool("'e\\u0301'.contains('\\u0301')"))
    }
}

// MARK: - Literals

@Suite struct CELLiteralTests {
    @Test(arguments: [
        (#""a\nb""#, CELValue.string("a\nb")),
        (#"'a\tb'"#, .string("a\tb")),
        (#"'it\'s'"#, .string("it's")),
        (#""say \"hi\"""#, .string("say \"hi\"")),
        (#"'back\\slash'"#, .string("back\\slash")),
        (#"'\x41\X42'"#, .string("AB")),
        (#"'\u00e9'"#, .string("\u{e9}")),
        (#"'\U0001F600'"#, .string("\u{1F600}")),
        (#"'\101'"#, .string("A")),
        (#"'\a\b\f\v\r\?\`'"#, .string("\u{07}\u{08}\u{0C}\u{0B}\r?`")),
        (#"r"a\nb""#, .string(#"a\nb"#)),
        (#"R'\d+'"#, .string(#"\d+"#)),
    ])
    func strings(source: String, expected: CELValue) throws {
        #expect(try evaluate(source) == expected)
    }

    @Test func tripleQuotedStrings() throws {
        #expect(try evaluate("'''line one\nline 'two' '''") == .string("line one\nline 'two' "))
        #expect(try evaluate(#""""she said "hi" """"#) == .string(#"she said "hi" "#))
        #expect(try evaluate(#"r'''raw \n'''"#) == .string(#"raw \n"#))
        #expect(try evaluate("''") == .string(""))
        #expect(try evaluate(#""""""""#) == .string(""))
    }

    @Test(arguments: [
        (#"b"abc""#, CELValue.bytes([0x61, 0x62, 0x63])),
        (#"b'\xff\x00'"#, .bytes([0xFF, 0x00])),
        (#"B'\377'"#, .bytes([0xFF])),
        (#"b'é'"#, .bytes([0xC3, 0xA9])),
        (#"rb'\x'"#, .bytes([0x5C, 0x78])),
        (#"bR'\n'"#, .bytes([0x5C, 0x6E])),
    ])
    func bytes(source: String, expected: CELValue) throws {
        #expect(try evaluate(source) == expected)
    }

    @Test(arguments: [
        ("0", CELValue.int(0)),
        ("42", .int(42)),
        ("0x1F", .int(31)),
        ("0XfF", .int(255)),
        ("-0x10", .int(-16)),
        ("123u", .uint(123)),
        ("0x10U", .uint(16)),
        ("18446744073709551615u", .uint(.max)),
        ("1.5", .double(1.5)),
        ("1e3", .double(1000)),
        ("1E-2", .double(0.01)),
        ("2.5e+2", .double(250)),
        (".5", .double(0.5)),
        ("-.5", .double(-0.5)),
        ("true", .bool(true)),
        ("false", .bool(false)),
        ("null", .null),
        ("[]", .list([])),
        ("[1, 'a', null,]", .list([1, "a", .null])),
        ("{}", .map([])),
        ("{'a': 1, 2: true, false: 'x', 3u: 1.5,}", .map([("a", 1), (2, true), (false, "x"), (.uint(3), 1.5)])),
        ("[[1], {'k': [2]}]", .list([[1], ["k": [2]]])),
    ])
    func values(source: String, expected: CELValue) throws {
        #expect(try evaluate(source) == expected)
    }

    @Test func commentsAndWhitespace() throws {
        let source = """
            // routes express orders
            event.data.tier == 'express' // trailing comment
              &&
            event.type == 'widget'
            """
        #expect(try evaluateBool(source, cloudEvent(data: #"{"tier": "express"}"#)))
    }
}

// MARK: - Functions

@Suite struct CELFunctionTests {
    @Test(arguments: [
        ("'hello'.startsWith('he')", true),
        ("'hello'.startsWith('lo')", false),
        ("'hello'.startsWith('')", true),
        ("'hello'.endsWith('lo')", true),
        ("'hello'.endsWith('he')", false),
        ("'hello'.contains('ell')", true),
        ("'hello'.contains('xyz')", false),
        ("'hello'.contains('')", true),
        ("''.contains('a')", false),
        ("'order-123'.matches('^order-[0-9]+$')", true),
        ("'order-abc'.matches('^order-[0-9]+$')", false),
        ("'xxabcxx'.matches('b')", true),
        ("matches('abc', 'a.c')", true),
        ("'ABC'.matches('(?i)abc')", true),
        ("'héllo'.matches('^h.llo$')", true),
        ("size('héllo') == 5", true),
        ("'héllo'.size() == 5", true),
        ("size('😀') == 1", true),
        ("size(b'ab') == 2", true),
        ("size([1, 2, 3]) == 3", true),
        ("{'a': 1}.size() == 1", true),
        ("size('') == 0", true),
    ])
    func stringFunctions(source: String, expected: Bool) throws {
        #expect(try evaluateBool(source) == expected)
    }

    @Test func functionsOnEventFields() throws {
        let variables = try cloudEvent(type: "com.example.order.created", data: #"{"email": "a@example.com"}"#)
        #expect(try evaluateBool("event.type.startsWith('com.example.') && event.type.endsWith('.created')", variables))
        #expect(try evaluateBool(#"event.data.email.matches("^[^@]+@example\\.com$")"#, variables))
        #expect(try evaluateBool(#"event.data.email.matches(r"^[^@]+@example\.com$")"#, variables))
    }

    @Test(arguments: [
        ("int(3.9)", CELValue.int(3)),
        ("int(-3.9)", .int(-3)),
        ("int(42u)", .int(42)),
        ("int('-17')", .int(-17)),
        ("int(7)", .int(7)),
        ("int(-9223372036854775808.0)", .int(.min)),
        ("uint(3.9)", .uint(3)),
        ("uint(7)", .uint(7)),
        ("uint('18446744073709551615')", .uint(.max)),
        ("double(3)", .double(3)),
        ("double(3u)", .double(3)),
        ("double('2.5')", .double(2.5)),
        ("double('1e3')", .double(1000)),
        ("string(42)", .string("42")),
        ("string(-42)", .string("-42")),
        ("string(42u)", .string("42")),
        ("string(1.5)", .string("1.5")),
        ("string(100.0)", .string("100")),
        ("string(123456.0)", .string("123456")),
        ("string(1e6)", .string("1e+06")),
        ("string(1234567.0)", .string("1.234567e+06")),
        ("string(0.0001)", .string("0.0001")),
        ("string(0.00001)", .string("1e-05")),
        ("string(-2.5e-10)", .string("-2.5e-10")),
        ("string(1e100)", .string("1e+100")),
        ("string(0.0)", .string("0")),
        ("string(true)", .string("true")),
        ("string(b'abc')", .string("abc")),
        ("string('x')", .string("x")),
        ("bool('true')", .bool(true)),
        ("bool('False')", .bool(false)),
        ("bool('1')", .bool(true)),
        ("bool(true)", .bool(true)),
        ("bytes('é')", .bytes([0xC3, 0xA9])),
        ("dyn(1) == 1", .bool(true)),
    ])
    func conversions(source: String, expected: CELValue) throws {
        #expect(try evaluate(source) == expected)
    }
}

// MARK: - Macros

@Suite struct CELMacroTests {
    @Test(arguments: [
        ("[1, 2, 3].exists(x, x > 2)", CELValue.bool(true)),
        ("[1, 2, 3].exists(x, x > 3)", .bool(false)),
        ("[].exists(x, true)", .bool(false)),
        ("[1, 2, 3].all(x, x > 0)", .bool(true)),
        ("[1, 2, 3].all(x, x > 1)", .bool(false)),
        ("[].all(x, false)", .bool(true)),
        ("[1, 2, 3].exists_one(x, x > 2)", .bool(true)),
        ("[1, 2, 3].exists_one(x, x > 1)", .bool(false)),
        ("[1, 2, 3].exists_one(x, x > 5)", .bool(false)),
        ("[1, 2, 3].map(x, x * 2)", .list([2, 4, 6])),
        ("[1, 2, 3].map(x, x > 1, x * 10)", .list([20, 30])),
        ("[1, 2, 3, 4].filter(x, x % 2 == 0)", .list([2, 4])),
        ("['a', 'bb'].map(s, s.size())", .list([1, 2])),
        ("{'a': 1, 'bb': 2}.all(k, k.size() <= 2)", .bool(true)),
        ("{'a': 1, 'bb': 2}.exists(k, k == 'bb')", .bool(true)),
        ("{'a': 1, 'bb': 2}.map(k, k + '!')", .list(["a!", "bb!"])),
        ("{'a': 1, 'bb': 2}.filter(k, k.startsWith('b'))", .list(["bb"])),
        // The iteration variable shadows outer bindings, and nested macros shadow each other.
        ("[1, 2].all(x, [3, 4].exists(x, x > 3))", .bool(true)),
        ("[1, 2].map(x, [10, 20].map(y, x + y))", .list([[11, 21], [12, 22]])),
        ("[[1, 2], [3]].map(l, l.size())", .list([2, 1])),
        ("[1, 2, 3].filter(x, x > 1).map(x, x * x)", .list([4, 9])),
        ("size([1, 2, 3].filter(x, x > 1)) == 2", .bool(true)),
    ])
    func macros(source: String, expected: CELValue) throws {
        #expect(try evaluate(source) == expected)
    }

    @Test func iterationVariableShadowsVariables() throws {
        #expect(try evaluate("[1, 2].map(x, x + y)", ["x": 100, "y": 10]) == .list([11, 12]))
        #expect(try evaluate("[1].map(x, x) + [x]", ["x": 100]) == .list([1, 100]))
        #expect(try evaluationError("[1].all(x, true) && x == 1")?.message == "undeclared reference to 'x'")
    }

    @Test func existsAndAllAbsorbErrorsLikeLogicalOperators() throws {
        #expect(try evaluateBool("[0, 1].exists(x, 1 / x == 1)"))
        #expect(try evaluateBool("[0, 2].all(x, 10 / x > 50)") == false)
        #expect(try evaluationError("[0, 2].exists(x, 10 / x > 50)")?.message == "division by zero")
        #expect(try evaluationError("[0, 1].all(x, 1 / x == 1)")?.message == "division by zero")
        #expect(try evaluationError("[0, 1].exists_one(x, 1 / x == 1)")?.message == "division by zero")
        #expect(try evaluationError("[0, 1].map(x, 1 / x)")?.message == "division by zero")
    }

    @Test func macrosOverEventData() throws {
        let variables = try cloudEvent(data: #"{"lines": [{"price": 10.5, "qty": 2}, {"price": 99.0, "qty": 1}]}"#)
        #expect(try evaluateBool("event.data.lines.exists(l, l.price > 50.0)", variables))
        #expect(try evaluateBool("event.data.lines.all(l, has(l.qty) && l.qty >= 1)", variables))
        #expect(try evaluate("event.data.lines.map(l, l.price * l.qty)", variables) == .list([21.0, 99.0]))
        #expect(try evaluateBool("event.data.lines.exists_one(l, l.qty == 2)", variables))
    }
}

// MARK: - Values and JSON

@Suite struct CELValueTests {
    @Test func jsonConversion() throws {
        let json = try JSONValue(parsing: #"{"a": 1, "b": [true, null, "x"], "c": {"d": 2.5e1}, "e": -0.5}"#)
        let expected: CELValue = .map([
            (.string("a"), .double(1)),
            (.string("b"), .list([.bool(true), .null, .string("x")])),
            (.string("c"), .map([(.string("d"), .double(25))])),
            (.string("e"), .double(-0.5)),
        ])
        #expect(CELValue(json: json) == expected)
        #expect(CELValue(json: .number("12345678901234567890")) == .double(Double("12345678901234567890")!))
        #expect(CELValue(json: .null) == .null)
        #expect(CELValue(json: .array([])) == .list([]))
    }

    @Test func jsonRepeatedKeysKeepTheLastValue() throws {
        let value = CELValue(json: try JSONValue(parsing: #"{"k": 1, "j": 2, "k": 3}"#))
        #expect(value == .map([(.string("k"), .double(3)), (.string("j"), .double(2))]))
        #expect(try evaluate("m.k", ["m": value]) == .double(3))
        #expect(try evaluate("size(m)", ["m": value]) == .int(2))
    }

    @Test func jsonNumbersAreDoubles() throws {
        let variables = try cloudEvent(data: #"{"n": 1, "big": 1e300, "nothing": null}"#)
        #expect(try evaluate("event.data.n", variables) == .double(1))
        #expect(try evaluateBool("event.data.n == 1 && event.data.n == 1u && event.data.n == 1.0", variables))
        #expect(try evaluateBool("int(event.data.n) + 1 == 2", variables))
        #expect(try evaluateBool("event.data.n + 1.0 == 2.0", variables))
        // Strict CEL arithmetic: double + int has no overload.
        #expect(try evaluationError("event.data.n + 1 == 2", variables)?.message == "no such overload: double + int")
        #expect(try evaluateBool("event.data.nothing == null", variables))
        #expect(try evaluateBool("has(event.data.nothing)", variables))
        #expect(try evaluateBool("event.data.big > 9223372036854775807", variables))
        #expect(try evaluateBool("[10, 20][event.data.n] == 20", variables))
    }

    @Test func subscripts() {
        let value: CELValue = ["a": 1, "b": ["c": "d"]]
        #expect(value["a"] == .int(1))
        #expect(value["b"]?["c"] == .string("d"))
        #expect(value["z"] == nil)
        #expect(value[.double(1)] == nil)
        #expect(CELValue.list([]).stringValue == nil)
        #expect(CELValue.bool(true).boolValue == true)
    }

    @Test func structuralEqualityAndHashing() {
        #expect(CELValue.int(1) != CELValue.double(1))
        #expect(CELValue.int(1).celEquals(.double(1)))
        let forward: CELValue = .map([("a", 1), ("b", 2)])
        let backward: CELValue = .map([("b", 2), ("a", 1)])
        #expect(forward == backward)
        #expect(forward.hashValue == backward.hashValue)
        #expect(Set([forward, backward]).count == 1)
        #expect(CELValue.double(.nan) == CELValue.double(.nan))
        #expect(Set<CELValue>([.double(0), .double(-0.0)]).count == 1)
        #expect(CELValue.string("\u{e9}") != CELValue.string("e\u{301}"))
        #expect(CELValue.map([("a", 1)]) != CELValue.map([("a", 2)]))
        #expect(CELValue.list([1, 2]) != CELValue.list([2, 1]))
    }

    @Test(arguments: [
        (CELValue.null, "null"),
        (.bool(true), "true"),
        (.int(-3), "-3"),
        (.uint(3), "3u"),
        (.double(2.5), "2.5"),
        (.double(3), "3.0"),
        (.double(-1e21), "-1e+21"),
        (.double(.infinity), "+Inf"),
        (.string("a\"b\n"), #""a\"b\n""#),
        (.bytes([0x61, 0x00]), #"b"a\x00""#),
        (.list([1, "x"]), #"[1, "x"]"#),
        (.map([(.string("k"), .list([.bool(true)]))]), #"{"k": [true]}"#),
    ])
    func descriptions(value: CELValue, expected: String) {
        #expect(value.description == expected)
    }

    @Test func typeNames() {
        let names = ([.null, true, 1, .uint(1), 1.5, "s", .bytes([]), [], [:]] as [CELValue]).map(\.typeName)
        #expect(names == ["null_type", "bool", "int", "uint", "double", "string", "bytes", "list", "map"])
    }
}

// MARK: - Expressions

@Suite struct CELExpressionTests {
    @Test func equalityIsBySource() throws {
        let a = try CELExpression(parsing: "x > 1")
        let b = try CELExpression(parsing: "x > 1")
        let c = try CELExpression(parsing: "x >= 1")
        #expect(a == b)
        #expect(a != c)
        #expect(Set([a, b, c]).count == 2)
        #expect(a.source == "x > 1")
        #expect(a.description == "x > 1")
    }

    @Test func reusableAcrossEvaluations() throws {
        let expression = try CELExpression(parsing: "consecutiveFailures > 5")
        #expect(try (0...10).map { try expression.evaluateBool(["consecutiveFailures": .int(Int64($0))]) }.filter { $0 }.count == 5)
    }

    @Test func nestingWithinTheLimitParses() throws {
        let depth = 200
        let source = String(repeating: "(", count: depth) + "1" + String(repeating: ")", count: depth)
        #expect(try evaluate(source) == .int(1))
        let lists = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        #expect(throws: Never.self) { try CELExpression(parsing: lists) }
    }

    @Test func deepestAcceptedExpressionsEvaluate() throws {
        let sums = String(repeating: "(1 + ", count: 250) + "0" + String(repeating: ")", count: 250)
        #expect(try evaluate(sums) == .int(250))
        let negations = String(repeating: "-", count: 255) + "x"
        #expect(try evaluate(negations, ["x": 1]) == .int(-1))
        let selections = "a" + String(repeating: ".a", count: 255)
        var nested: CELValue = 7
        for _ in 0..<255 { nested = ["a": nested] }
        #expect(try evaluate(selections, ["a": nested]) == .int(7))
        let macros = String(repeating: "[1].all(x, ", count: 120) + "x == 1" + String(repeating: ")", count: 120)
        #expect(try evaluateBool(macros))
    }

    @Test(arguments: [
        String(repeating: "(", count: 100_000) + "1" + String(repeating: ")", count: 100_000),
        String(repeating: "(", count: 300) + "1" + String(repeating: ")", count: 300),
        String(repeating: "[", count: 300) + String(repeating: "]", count: 300),
        String(repeating: "!", count: 300) + "true",
        String(repeating: "-", count: 300) + "x",
        (0..<300).map(String.init).joined(separator: " + "),
        "a" + String(repeating: ".b", count: 300),
        "a" + String(repeating: "[0]", count: 300),
        String(repeating: "true ? 1 : ", count: 300) + "0",
        String(repeating: "f(", count: 300) + String(repeating: ")", count: 300),
    ])
    func hostileNestingIsRefused(source: String) {
        let error = parseError(source)
        #expect(error != nil)
        if source.count <= 100_000 {
            #expect(error?.message.contains("maximum depth") == true, "\(String(describing: error))")
        }
    }

    @Test func overlongSourceIsRefused() {
        let source = String(repeating: "1 + ", count: 30_000) + "1"
        #expect(parseError(source)?.message.contains("longer than") == true)
    }
}

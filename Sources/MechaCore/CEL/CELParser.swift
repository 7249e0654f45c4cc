/// A node of a parsed CEL expression.
struct CELNode: Sendable {
    var kind: Kind
    /// Offset in Unicode scalars of the token the node is reported at (an operator, a name).
    var position: Int
    /// 1 for leaves; 1 + the tallest child otherwise. Bounded by `CELParser.maximumDepth`, which
    /// bounds the evaluator's recursion.
    var height: Int

    indirect enum Kind: Sendable {
        case literal(CELValue)
        case identifier(String)
        /// `operand.field`
        case select(CELNode, field: String)
        /// `has(operand.field)`
        case presenceTest(CELNode, field: String)
        /// `operand[index]`
        case index(CELNode, CELNode)
        case list([CELNode])
        case map([(key: CELNode, value: CELNode)])
        case not(CELNode)
        case negate(CELNode)
        case binary(CELBinaryOperator, CELNode, CELNode)
        case and(CELNode, CELNode)
        case or(CELNode, CELNode)
        case conditional(CELNode, CELNode, CELNode)
        /// A built-in function; for methods (`s.startsWith(p)`) the receiver is the first argument.
        case call(CELFunction, [CELNode])
        /// `range.macro(variable, [filter,] step)`; `filter` only for the three-argument `map`.
        case comprehension(CELMacro, range: CELNode, variable: String, filter: CELNode?, step: CELNode)
    }

    var children: [CELNode] {
        switch self.kind {
        case .literal, .identifier: []
        case .select(let operand, _), .presenceTest(let operand, _), .not(let operand), .negate(let operand): [operand]
        case .index(let a, let b), .binary(_, let a, let b), .and(let a, let b), .or(let a, let b): [a, b]
        case .list(let elements), .call(_, let elements): elements
        case .map(let entries): entries.flatMap { [$0.key, $0.value] }
        case .conditional(let a, let b, let c): [a, b, c]
        case .comprehension(_, let range, _, let filter, let step): [range] + (filter.map { [$0] } ?? []) + [step]
        }
    }
}

enum CELBinaryOperator: String, Sendable {
    case equal = "==", notEqual = "!=", less = "<", lessEqual = "<=", greater = ">", greaterEqual = ">="
    case `in` = "in"
    case add = "+", subtract = "-", multiply = "*", divide = "/", remainder = "%"
}

enum CELFunction: String, Sendable, CaseIterable {
    case size, int, uint, double, string, bool, bytes, dyn
    case matches, startsWith, endsWith, contains

    /// Argument count of the global form (`size(x)`), or `nil` when there is none.
    var globalArity: Int? {
        switch self {
        case .size, .int, .uint, .double, .string, .bool, .bytes, .dyn: 1
        case .matches: 2
        case .startsWith, .endsWith, .contains: nil
        }
    }

    /// Argument count of the method form (`x.size()`), not counting the receiver, or `nil`.
    var methodArity: Int? {
        switch self {
        case .size: 0
        case .matches, .startsWith, .endsWith, .contains: 1
        case .int, .uint, .double, .string, .bool, .bytes, .dyn: nil
        }
    }
}

enum CELMacro: String, Sendable {
    case all, exists
    case existsOne = "exists_one"
    case map, filter
}

/// A recursive-descent parser for the CEL grammar subset:
///
///     expr     = or ["?" or ":" expr]
///     or       = and {"||" and}
///     and      = relation {"&&" relation}
///     relation = addition {("==" | "!=" | "<" | "<=" | ">" | ">=" | "in") addition}
///     addition = product {("+" | "-") product}
///     product  = unary {("*" | "/" | "%") unary}
///     unary    = {"!" | "-"} member
///     member   = primary {"." IDENT ["(" args ")"] | "[" expr "]"}
///     primary  = literal | IDENT ["(" args ")"] | "(" expr ")" | "[" list "]" | "{" map "}"
///
/// Macros (`has`, `all`, `exists`, `exists_one`, `map`, `filter`) are expanded here, and function
/// names and argument counts are checked here, so a misspelt function is a parse error. Chains of
/// `&&` and `||` are balanced, so long conjunctions do not count against the depth limit.
struct CELParser {
    /// Deepest nesting accepted, both of parser recursion and of the resulting tree.
    static let maximumDepth = 256
    /// Longest source accepted, in Unicode scalars.
    static let maximumLength = 100_000

    private static let reservedWords: Set<String> = [
        "as", "break", "const", "continue", "else", "for", "function", "if", "import", "let", "loop",
        "package", "namespace", "return", "var", "void", "while",
    ]

    private let tokens: [CELToken]
    private var index = 0
    private var depth = 0

    private init(tokens: [CELToken]) {
        self.tokens = tokens
    }

    static func parse(_ source: String) throws(CELError) -> CELNode {
        let scalars = Array(source.unicodeScalars)
        guard scalars.count <= Self.maximumLength else {
            throw CELError("expression is longer than \(Self.maximumLength) characters", position: Self.maximumLength)
        }
        var parser = CELParser(tokens: try CELLexer.tokenize(scalars))
        let root = try parser.parseExpression()
        let trailing = parser.current
        guard trailing.kind == .end else {
            throw CELError("syntax error: unexpected \(trailing.describedForError)", position: trailing.position)
        }
        return root
    }

    // MARK: Tokens

    private var current: CELToken { self.tokens[self.index] }

    private mutating func advance() -> CELToken {
        let token = self.tokens[self.index]
        if token.kind != .end { self.index += 1 }
        return token
    }

    private func isAt(_ punctuation: CELPunctuation) -> Bool {
        self.current.kind == .punctuation(punctuation)
    }

    private mutating func consume(_ punctuation: CELPunctuation) -> CELToken? {
        guard self.isAt(punctuation) else { return nil }
        return self.advance()
    }

    @discardableResult
    private mutating func expect(_ punctuation: CELPunctuation, _ context: String) throws(CELError) -> CELToken {
        if let token = self.consume(punctuation) { return token }
        throw self.unexpected("expected '\(punctuation.rawValue)' \(context)")
    }

    private func unexpected(_ expectation: String? = nil) -> CELError {
        var message = "syntax error: unexpected \(self.current.describedForError)"
        if let expectation { message += ", \(expectation)" }
        return CELError(message, position: self.current.position)
    }

    private func node(_ kind: CELNode.Kind, at position: Int) throws(CELError) -> CELNode {
        var node = CELNode(kind: kind, position: position, height: 1)
        node.height = 1 + (node.children.map(\.height).max() ?? 0)
        guard node.height <= Self.maximumDepth else {
            throw CELError("expression nesting exceeds the maximum depth of \(Self.maximumDepth)", position: position)
        }
        return node
    }

    // MARK: Grammar

    private mutating func parseExpression() throws(CELError) -> CELNode {
        self.depth += 1
        defer { self.depth -= 1 }
        guard self.depth <= Self.maximumDepth else {
            throw CELError("expression nesting exceeds the maximum depth of \(Self.maximumDepth)", position: self.current.position)
        }
        let condition = try self.parseLogical(or: true)
        guard let question = self.consume(.question) else { return condition }
        let then = try self.parseLogical(or: true)
        try self.expect(.colon, "in conditional expression")
        let otherwise = try self.parseExpression()
        return try self.node(.conditional(condition, then, otherwise), at: question.position)
    }

    /// `or` (when `or` is true) or `and` chains, built as balanced trees.
    private mutating func parseLogical(or: Bool) throws(CELError) -> CELNode {
        let op: CELPunctuation = or ? .or : .and
        var operands = [try self.parseLogicalOperand(or: or)]
        var positions: [Int] = []
        while let token = self.consume(op) {
            positions.append(token.position)
            operands.append(try self.parseLogicalOperand(or: or))
        }
        return try self.balance(operands[...], positions[...], or: or)
    }

    private mutating func parseLogicalOperand(or: Bool) throws(CELError) -> CELNode {
        if or { return try self.parseLogical(or: false) }
        return try self.parseRelation()
    }

    private func balance(_ operands: ArraySlice<CELNode>, _ positions: ArraySlice<Int>, or: Bool) throws(CELError) -> CELNode {
        if operands.count == 1 { return operands[operands.startIndex] }
        let middle = operands.startIndex + operands.count / 2
        // positions[i - 1 + offset] is the operator between operands i-1 and i.
        let operatorIndex = positions.startIndex + (middle - operands.startIndex) - 1
        let lhs = try self.balance(
            operands[..<middle], positions[positions.startIndex..<operatorIndex], or: or)
        let rhs = try self.balance(
            operands[middle...], positions[(operatorIndex + 1)...], or: or)
        let position = positions[operatorIndex]
        return try self.node(or ? .or(lhs, rhs) : .and(lhs, rhs), at: position)
    }

    private mutating func parseRelation() throws(CELError) -> CELNode {
        var lhs = try self.parseAddition()
        while true {
            let token = self.current
            let op: CELBinaryOperator
            switch token.kind {
            case .punctuation(.equal): op = .equal
            case .punctuation(.notEqual): op = .notEqual
            case .punctuation(.less): op = .less
            case .punctuation(.lessEqual): op = .lessEqual
            case .punctuation(.greater): op = .greater
            case .punctuation(.greaterEqual): op = .greaterEqual
            case .identifier("in"): op = .in
            default: return lhs
            }
            _ = self.advance()
            let rhs = try self.parseAddition()
            lhs = try self.node(.binary(op, lhs, rhs), at: token.position)
        }
    }

    private mutating func parseAddition() throws(CELError) -> CELNode {
        var lhs = try self.parseProduct()
        while true {
            let token = self.current
            let op: CELBinaryOperator
            switch token.kind {
            case .punctuation(.plus): op = .add
            case .punctuation(.minus): op = .subtract
            default: return lhs
            }
            _ = self.advance()
            let rhs = try self.parseProduct()
            lhs = try self.node(.binary(op, lhs, rhs), at: token.position)
        }
    }

    private mutating func parseProduct() throws(CELError) -> CELNode {
        var lhs = try self.parseUnary()
        while true {
            let token = self.current
            let op: CELBinaryOperator
            switch token.kind {
            case .punctuation(.star): op = .multiply
            case .punctuation(.slash): op = .divide
            case .punctuation(.percent): op = .remainder
            default: return lhs
            }
            _ = self.advance()
            let rhs = try self.parseUnary()
            lhs = try self.node(.binary(op, lhs, rhs), at: token.position)
        }
    }

    private mutating func parseUnary() throws(CELError) -> CELNode {
        var operators: [CELToken] = []
        while self.isAt(.bang) || self.isAt(.minus) { operators.append(self.advance()) }

        var operand: CELNode
        // A minus directly before a number literal is the literal's sign (so the most negative
        // int is expressible); member access then applies to the signed literal.
        if let last = operators.last, last.kind == .punctuation(.minus), let literal = try self.negativeLiteral(at: last.position) {
            operators.removeLast()
            operand = try self.parseMemberSuffixes(literal)
        } else {
            operand = try self.parseMember()
        }
        for token in operators.reversed() {
            let kind: CELNode.Kind = token.kind == .punctuation(.bang) ? .not(operand) : .negate(operand)
            operand = try self.node(kind, at: token.position)
        }
        return operand
    }

    private mutating func negativeLiteral(at position: Int) throws(CELError) -> CELNode? {
        let token = self.current
        let value: CELValue
        switch token.kind {
        case .int(let magnitude):
            guard magnitude <= UInt64(Int64.max) + 1 else {
                throw CELError("syntax error: integer literal out of range", position: position)
            }
            value = .int(magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude))
        case .double(let magnitude):
            value = .double(-magnitude)
        default:
            return nil
        }
        _ = self.advance()
        return try self.node(.literal(value), at: position)
    }

    private mutating func parseMember() throws(CELError) -> CELNode {
        try self.parseMemberSuffixes(try self.parsePrimary())
    }

    private mutating func parseMemberSuffixes(_ start: CELNode) throws(CELError) -> CELNode {
        var operand = start
        while true {
            if let dot = self.consume(.dot) {
                let nameToken = self.current
                guard case .identifier(let name) = nameToken.kind else {
                    throw self.unexpected("expected a field or method name after '.'")
                }
                _ = self.advance()
                if self.isAt(.leftParen) {
                    let arguments = try self.parseArguments()
                    operand = try self.methodCall(name, receiver: operand, arguments: arguments, at: nameToken.position)
                } else {
                    try self.checkNotReserved(name, at: nameToken.position)
                    operand = try self.node(.select(operand, field: name), at: dot.position)
                }
            } else if let bracket = self.consume(.leftBracket) {
                let subscriptNode = try self.parseExpression()
                try self.expect(.rightBracket, "to close index expression")
                operand = try self.node(.index(operand, subscriptNode), at: bracket.position)
            } else {
                return operand
            }
        }
    }

    private mutating func parsePrimary() throws(CELError) -> CELNode {
        let token = self.current
        switch token.kind {
        case .int(let magnitude):
            _ = self.advance()
            guard let value = Int64(exactly: magnitude) else {
                throw CELError("syntax error: integer literal out of range", position: token.position)
            }
            return try self.node(.literal(.int(value)), at: token.position)
        case .uint(let value):
            _ = self.advance()
            return try self.node(.literal(.uint(value)), at: token.position)
        case .double(let value):
            _ = self.advance()
            return try self.node(.literal(.double(value)), at: token.position)
        case .string(let value):
            _ = self.advance()
            return try self.node(.literal(.string(value)), at: token.position)
        case .bytes(let value):
            _ = self.advance()
            return try self.node(.literal(.bytes(value)), at: token.position)
        case .identifier(let name):
            switch name {
            case "true", "false":
                _ = self.advance()
                return try self.node(.literal(.bool(name == "true")), at: token.position)
            case "null":
                _ = self.advance()
                return try self.node(.literal(.null), at: token.position)
            case "in":
                throw self.unexpected()
            default:
                break
            }
            try self.checkNotReserved(name, at: token.position)
            _ = self.advance()
            if self.isAt(.leftParen) {
                let arguments = try self.parseArguments()
                return try self.globalCall(name, arguments: arguments, at: token.position)
            }
            return try self.node(.identifier(name), at: token.position)
        case .punctuation(.leftParen):
            _ = self.advance()
            let inner = try self.parseExpression()
            try self.expect(.rightParen, "to close '(' at position \(token.position)")
            return inner
        case .punctuation(.leftBracket):
            _ = self.advance()
            let elements = try self.parseList(closing: .rightBracket, "to close list literal")
            return try self.node(.list(elements), at: token.position)
        case .punctuation(.leftBrace):
            _ = self.advance()
            let entries = try self.parseMapEntries()
            return try self.node(.map(entries), at: token.position)
        default:
            throw self.unexpected()
        }
    }

    private func checkNotReserved(_ name: String, at position: Int) throws(CELError) {
        if Self.reservedWords.contains(name) {
            throw CELError("syntax error: reserved identifier '\(name)'", position: position)
        }
    }

    /// Parses `(a, b, …)`, the current token being the opening parenthesis.
    private mutating func parseArguments() throws(CELError) -> [CELNode] {
        try self.expect(.leftParen, "to open argument list")
        return try self.parseList(closing: .rightParen, "to close argument list")
    }

    /// Comma-separated expressions up to `closing` (a trailing comma is allowed, except in an
    /// empty list).
    private mutating func parseList(closing: CELPunctuation, _ context: String) throws(CELError) -> [CELNode] {
        var elements: [CELNode] = []
        while self.consume(closing) == nil {
            elements.append(try self.parseExpression())
            if self.consume(.comma) == nil {
                try self.expect(closing, context)
                break
            }
        }
        return elements
    }

    private mutating func parseMapEntries() throws(CELError) -> [(key: CELNode, value: CELNode)] {
        var entries: [(key: CELNode, value: CELNode)] = []
        while self.consume(.rightBrace) == nil {
            let key = try self.parseExpression()
            try self.expect(.colon, "between map key and value")
            let value = try self.parseExpression()
            entries.append((key, value))
            if self.consume(.comma) == nil {
                try self.expect(.rightBrace, "to close map literal")
                break
            }
        }
        return entries
    }

    // MARK: Calls and macros

    private func globalCall(_ name: String, arguments: [CELNode], at position: Int) throws(CELError) -> CELNode {
        if name == "has" {
            guard arguments.count == 1, case .select(let operand, let field) = arguments[0].kind else {
                throw CELError("syntax error: invalid argument to has() macro: expected a field selection such as has(a.b)", position: position)
            }
            return try self.node(.presenceTest(operand, field: field), at: arguments[0].position)
        }
        guard let function = CELFunction(rawValue: name), let arity = function.globalArity else {
            throw CELError("undeclared reference to function '\(name)'", position: position)
        }
        guard arguments.count == arity else {
            throw CELError("function '\(name)' takes \(arity) argument\(arity == 1 ? "" : "s"), got \(arguments.count)", position: position)
        }
        try self.validateLiteralPattern(function, arguments.last, at: position)
        return try self.node(.call(function, arguments), at: position)
    }

    private func methodCall(_ name: String, receiver: CELNode, arguments: [CELNode], at position: Int) throws(CELError) -> CELNode {
        if let macro = CELMacro(rawValue: name) {
            let allowed = macro == .map ? [2, 3] : [2]
            guard allowed.contains(arguments.count) else {
                throw CELError("syntax error: macro '\(name)' takes \(allowed.map(String.init).joined(separator: " or ")) arguments, got \(arguments.count)", position: position)
            }
            guard case .identifier(let variable) = arguments[0].kind else {
                throw CELError("syntax error: argument to macro '\(name)' must be a simple name", position: arguments[0].position)
            }
            let filter = arguments.count == 3 ? arguments[1] : nil
            return try self.node(
                .comprehension(macro, range: receiver, variable: variable, filter: filter, step: arguments[arguments.count - 1]),
                at: position)
        }
        guard let function = CELFunction(rawValue: name), let arity = function.methodArity else {
            throw CELError("undeclared reference to function '\(name)'", position: position)
        }
        guard arguments.count == arity else {
            throw CELError("method '\(name)' takes \(arity) argument\(arity == 1 ? "" : "s"), got \(arguments.count)", position: position)
        }
        try self.validateLiteralPattern(function, arguments.last, at: position)
        return try self.node(.call(function, [receiver] + arguments), at: position)
    }

    /// Reports an invalid regular expression given as a literal at parse time.
    private func validateLiteralPattern(_ function: CELFunction, _ argument: CELNode?, at position: Int) throws(CELError) {
        guard function == .matches, let argument, case .literal(.string(let pattern)) = argument.kind else { return }
        _ = try CELRegex.compile(pattern, position: argument.position)
    }
}

/// Compiles CEL `matches` patterns with the standard library's `Regex` (no Foundation). Matching
/// is by Unicode scalar and unanchored, like RE2's `MatchString`.
enum CELRegex {
    static func compile(_ pattern: String, position: Int?) throws(CELError) -> Regex<AnyRegexOutput> {
        do {
            return try Regex(pattern).matchingSemantics(.unicodeScalar)
        } catch {
            throw CELError("invalid regular expression '\(pattern)': \(error)", position: position)
        }
    }

    static func matches(_ text: String, _ pattern: String, position: Int?) throws(CELError) -> Bool {
        let regex = try Self.compile(pattern, position: position)
        do {
            return try regex.firstMatch(in: text) != nil
        } catch {
            throw CELError("error matching regular expression '\(pattern)': \(error)", position: position)
        }
    }
}

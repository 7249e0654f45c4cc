/// A parsed Common Expression Language expression: the subset used by Dapr pub/sub routing rules
/// (`match: event.type == "widget"`, evaluated against the CloudEvent bound as `event`) and
/// circuit-breaker `trip` expressions (`consecutiveFailures > 5`).
///
/// Supported: literals (int, uint `1u`, hex `0x1F`, double, strings in single, double and triple
/// quotes with escapes, raw `r"…"`, bytes `b"…"`, `true`, `false`, `null`, lists, maps); variables;
/// field selection, indexing, `has(a.b)`; `?:`, `||`, `&&` (with CEL's commutative error
/// handling), `== != < <= > >= in`, `+ - * / %`, `!`, unary `-`; `size`, `startsWith`,
/// `endsWith`, `contains`, `matches`, conversions `int uint double string bool bytes dyn`; macros
/// `all`, `exists`, `exists_one`, `map`, `filter`.
///
/// Syntax errors, unknown functions and wrong argument counts are reported when parsing; unbound
/// variables, missing keys and type mismatches when evaluating. Two expressions are equal when
/// their source text is.
public struct CELExpression: Sendable, Hashable, CustomStringConvertible {
    public let source: String
    let root: CELNode

    /// Deepest expression nesting accepted by the parser.
    public static var maximumDepth: Int { CELParser.maximumDepth }

    public init(parsing source: String) throws(CELError) {
        self.source = source
        self.root = try CELParser.parse(source)
    }

    /// Evaluates the expression with `variables` bound as top-level identifiers.
    public func evaluate(_ variables: [String: CELValue]) throws(CELError) -> CELValue {
        var evaluator = CELEvaluator(variables: variables)
        return try evaluator.evaluate(self.root)
    }

    /// Evaluates and requires a boolean; a non-boolean result is an error:
    /// "the result of match expression <src> was not a boolean".
    public func evaluateBool(_ variables: [String: CELValue]) throws(CELError) -> Bool {
        guard case .bool(let result) = try self.evaluate(variables) else {
            throw CELError("the result of match expression \(self.source) was not a boolean")
        }
        return result
    }

    public static func == (lhs: CELExpression, rhs: CELExpression) -> Bool {
        lhs.source == rhs.source
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.source)
    }

    public var description: String { self.source }
}

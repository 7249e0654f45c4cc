/// Tree-walking evaluation of a parsed CEL expression against variable bindings.
///
/// Recursion is bounded by the tree height, which the parser caps at `CELParser.maximumDepth`.
struct CELEvaluator {
    let variables: [String: CELValue]
    /// Comprehension variables in scope, innermost last; they shadow `variables`.
    private var locals: [(name: String, value: CELValue)] = []

    init(variables: [String: CELValue]) {
        self.variables = variables
    }

    mutating func evaluate(_ node: CELNode) throws(CELError) -> CELValue {
        switch node.kind {
        case .literal(let value):
            return value
        case .identifier(let name):
            return try self.lookup(name, at: node.position)
        case .select(let operand, let field):
            return try self.select(field, from: try self.evaluate(operand), at: node.position)
        case .presenceTest(let operand, let field):
            return try self.presenceTest(field, in: try self.evaluate(operand), at: node.position)
        case .index(let operand, let index):
            let container = try self.evaluate(operand)
            return try Self.index(container, with: try self.evaluate(index), at: node.position)
        case .list(let elements):
            var values: [CELValue] = []
            values.reserveCapacity(elements.count)
            for element in elements { values.append(try self.evaluate(element)) }
            return .list(values)
        case .map(let entries):
            return try self.evaluateMap(entries)
        case .not(let operand):
            let value = try self.evaluate(operand)
            guard case .bool(let flag) = value else {
                throw CELError("no such overload: !\(value.typeName)", position: node.position)
            }
            return .bool(!flag)
        case .negate(let operand):
            return try Self.negate(try self.evaluate(operand), at: node.position)
        case .binary(let op, let lhs, let rhs):
            let left = try self.evaluate(lhs)
            let right = try self.evaluate(rhs)
            return try Self.apply(op, left, right, at: node.position)
        case .and(let lhs, let rhs):
            return try self.evaluateLogical(isAnd: true, lhs, rhs, at: node.position)
        case .or(let lhs, let rhs):
            return try self.evaluateLogical(isAnd: false, lhs, rhs, at: node.position)
        case .conditional(let condition, let then, let otherwise):
            let value = try self.evaluate(condition)
            guard case .bool(let flag) = value else {
                throw CELError("no such overload: condition of '?:' is \(value.typeName), not bool", position: node.position)
            }
            return try self.evaluate(flag ? then : otherwise)
        case .call(let function, let arguments):
            var values: [CELValue] = []
            values.reserveCapacity(arguments.count)
            for argument in arguments { values.append(try self.evaluate(argument)) }
            return try CELBuiltins.call(function, values, at: node.position)
        case .comprehension(let macro, let range, let variable, let filter, let step):
            return try self.evaluateComprehension(macro, range: range, variable: variable, filter: filter, step: step, at: node.position)
        }
    }

    // MARK: Names and selection

    private func lookup(_ name: String, at position: Int) throws(CELError) -> CELValue {
        if let local = self.locals.last(where: { $0.name == name }) { return local.value }
        if let value = self.variables[name] { return value }
        throw CELError("undeclared reference to '\(name)'", position: position)
    }

    private func select(_ field: String, from value: CELValue, at position: Int) throws(CELError) -> CELValue {
        guard case .map(let entries) = value else {
            throw CELError("type '\(value.typeName)' does not support field selection (selecting '\(field)')", position: position)
        }
        guard let entry = entries.first(where: { Self.isStringKey($0.0, field) }) else {
            throw CELError("no such key: \(field)", position: position)
        }
        return entry.1
    }

    private func presenceTest(_ field: String, in value: CELValue, at position: Int) throws(CELError) -> CELValue {
        guard case .map(let entries) = value else {
            throw CELError("invalid type for has(): '\(value.typeName)' does not support field selection", position: position)
        }
        return .bool(entries.contains { Self.isStringKey($0.0, field) })
    }

    private static func isStringKey(_ key: CELValue, _ field: String) -> Bool {
        if case .string(let name) = key { return name.unicodeScalars.elementsEqual(field.unicodeScalars) }
        return false
    }

    private static func index(_ container: CELValue, with key: CELValue, at position: Int) throws(CELError) -> CELValue {
        switch container {
        case .list(let elements):
            let offset: Int64
            switch key {
            case .int(let value): offset = value
            case .uint(let value): offset = Int64(clamping: value)
            case .double(let value) where value.rounded(.towardZero) == value && value.magnitude < 9.2e18:
                offset = Int64(value)
            default:
                throw CELError("no such overload: list index of type '\(key.typeName)'", position: position)
            }
            guard offset >= 0, offset < Int64(elements.count) else {
                throw CELError("index '\(offset)' out of range in list of size \(elements.count)", position: position)
            }
            return elements[Int(offset)]
        case .map(let entries):
            guard let entry = entries.first(where: { $0.0.celEquals(key) }) else {
                throw CELError("no such key: \(Self.keyDescription(key))", position: position)
            }
            return entry.1
        default:
            throw CELError("type '\(container.typeName)' does not support indexing", position: position)
        }
    }

    private static func keyDescription(_ key: CELValue) -> String {
        if case .string(let name) = key { return name }
        return key.description
    }

    private mutating func evaluateMap(_ entries: [(key: CELNode, value: CELNode)]) throws(CELError) -> CELValue {
        var result: [(CELValue, CELValue)] = []
        result.reserveCapacity(entries.count)
        for entry in entries {
            let key = try self.evaluate(entry.key)
            switch key {
            case .bool, .int, .uint, .string: break
            default:
                throw CELError("unsupported map key type '\(key.typeName)'", position: entry.key.position)
            }
            if result.contains(where: { $0.0.celEquals(key) }) {
                throw CELError("repeated map key: \(key)", position: entry.key.position)
            }
            result.append((key, try self.evaluate(entry.value)))
        }
        return .map(result)
    }

    // MARK: Logic

    /// CEL's commutative `&&`/`||`: a deciding operand (`false` for `&&`, `true` for `||`) on either
    /// side wins over an error (or non-boolean) on the other; otherwise the first error propagates.
    private mutating func evaluateLogical(isAnd: Bool, _ lhs: CELNode, _ rhs: CELNode, at position: Int) throws(CELError) -> CELValue {
        let deciding = !isAnd
        let left = self.evaluateOperand(lhs, isAnd: isAnd, at: position)
        if case .success(deciding) = left { return .bool(deciding) }
        let right = self.evaluateOperand(rhs, isAnd: isAnd, at: position)
        switch (left, right) {
        case (_, .success(deciding)): return .bool(deciding)
        case (.failure(let error), _), (_, .failure(let error)): throw error
        case (.success, .success): return .bool(!deciding)
        }
    }

    private mutating func evaluateOperand(_ node: CELNode, isAnd: Bool, at position: Int) -> Result<Bool, CELError> {
        do throws(CELError) {
            let value = try self.evaluate(node)
            guard case .bool(let flag) = value else {
                return .failure(CELError("no such overload: operand of '\(isAnd ? "&&" : "||")' is \(value.typeName), not bool", position: position))
            }
            return .success(flag)
        } catch {
            return .failure(error)
        }
    }

    // MARK: Macros

    private mutating func evaluateComprehension(
        _ macro: CELMacro, range: CELNode, variable: String, filter: CELNode?, step: CELNode, at position: Int
    ) throws(CELError) -> CELValue {
        let rangeValue = try self.evaluate(range)
        let elements: [CELValue]
        switch rangeValue {
        case .list(let values): elements = values
        case .map(let entries): elements = entries.map(\.0)
        default:
            throw CELError("no such overload: '\(macro.rawValue)' over \(rangeValue.typeName)", position: position)
        }

        self.locals.append((variable, .null))
        defer { self.locals.removeLast() }
        let slot = self.locals.count - 1

        switch macro {
        case .exists, .all:
            // Like a chain of `||` (exists) or `&&` (all): a deciding element wins over errors.
            let deciding = macro == .exists
            var firstError: CELError? = nil
            for element in elements {
                self.locals[slot].value = element
                switch self.evaluatePredicate(step, macro, at: position) {
                case .success(let flag) where flag == deciding: return .bool(deciding)
                case .success: continue
                case .failure(let error): if firstError == nil { firstError = error }
                }
            }
            if let firstError { throw firstError }
            return .bool(!deciding)
        case .existsOne:
            var count = 0
            for element in elements {
                self.locals[slot].value = element
                if try self.evaluatePredicate(step, macro, at: position).get() { count += 1 }
            }
            return .bool(count == 1)
        case .filter:
            var kept: [CELValue] = []
            for element in elements {
                self.locals[slot].value = element
                if try self.evaluatePredicate(step, macro, at: position).get() { kept.append(element) }
            }
            return .list(kept)
        case .map:
            var mapped: [CELValue] = []
            mapped.reserveCapacity(elements.count)
            for element in elements {
                self.locals[slot].value = element
                if let filter {
                    let keep = try self.evaluatePredicate(filter, macro, at: position).get()
                    if !keep { continue }
                }
                mapped.append(try self.evaluate(step))
            }
            return .list(mapped)
        }
    }

    private mutating func evaluatePredicate(_ node: CELNode, _ macro: CELMacro, at position: Int) -> Result<Bool, CELError> {
        do throws(CELError) {
            let value = try self.evaluate(node)
            guard case .bool(let flag) = value else {
                return .failure(CELError("no such overload: predicate of '\(macro.rawValue)' is \(value.typeName), not bool", position: position))
            }
            return .success(flag)
        } catch {
            return .failure(error)
        }
    }

    // MARK: Operators

    private static func negate(_ value: CELValue, at position: Int) throws(CELError) -> CELValue {
        switch value {
        case .int(let number):
            guard number != .min else { throw CELError("integer overflow in negation", position: position) }
            return .int(-number)
        case .double(let number):
            return .double(-number)
        default:
            throw CELError("no such overload: -\(value.typeName)", position: position)
        }
    }

    static func apply(_ op: CELBinaryOperator, _ lhs: CELValue, _ rhs: CELValue, at position: Int) throws(CELError) -> CELValue {
        switch op {
        case .equal: return .bool(lhs.celEquals(rhs))
        case .notEqual: return .bool(!lhs.celEquals(rhs))
        case .less, .lessEqual, .greater, .greaterEqual:
            guard let order = try Self.compare(lhs, rhs, op, at: position) else { return .bool(false) }
            switch op {
            case .less: return .bool(order == .less)
            case .lessEqual: return .bool(order != .greater)
            case .greater: return .bool(order == .greater)
            default: return .bool(order != .less)
            }
        case .in:
            switch rhs {
            case .list(let elements): return .bool(elements.contains { $0.celEquals(lhs) })
            case .map(let entries): return .bool(entries.contains { $0.0.celEquals(lhs) })
            default: throw Self.noOverload(op, lhs, rhs, at: position)
            }
        case .add, .subtract, .multiply, .divide, .remainder:
            return try Self.arithmetic(op, lhs, rhs, at: position)
        }
    }

    /// Orders two values; `nil` when they are unordered numbers (NaN), an error when the types
    /// cannot be ordered against each other.
    private static func compare(_ lhs: CELValue, _ rhs: CELValue, _ op: CELBinaryOperator, at position: Int) throws(CELError) -> CELNumericOrder? {
        switch (lhs, rhs) {
        case (.string(let a), .string(let b)):
            if a.unicodeScalars.elementsEqual(b.unicodeScalars) { return .equal }
            return a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars) ? .less : .greater
        case (.bool(let a), .bool(let b)):
            return a == b ? .equal : (b ? .less : .greater)
        case (.bytes(let a), .bytes(let b)):
            if a == b { return .equal }
            return a.lexicographicallyPrecedes(b) ? .less : .greater
        case (.int, _), (.uint, _), (.double, _):
            switch rhs {
            case .int, .uint, .double: return CELValue.numericOrder(lhs, rhs)
            default: throw Self.noOverload(op, lhs, rhs, at: position)
            }
        default:
            throw Self.noOverload(op, lhs, rhs, at: position)
        }
    }

    private static func noOverload(_ op: CELBinaryOperator, _ lhs: CELValue, _ rhs: CELValue, at position: Int) -> CELError {
        CELError("no such overload: \(lhs.typeName) \(op.rawValue) \(rhs.typeName)", position: position)
    }

    private static func arithmetic(_ op: CELBinaryOperator, _ lhs: CELValue, _ rhs: CELValue, at position: Int) throws(CELError) -> CELValue {
        switch (lhs, rhs) {
        case (.int(let a), .int(let b)):
            let result: (partialValue: Int64, overflow: Bool)
            switch op {
            case .add: result = a.addingReportingOverflow(b)
            case .subtract: result = a.subtractingReportingOverflow(b)
            case .multiply: result = a.multipliedReportingOverflow(by: b)
            case .divide:
                guard b != 0 else { throw CELError("division by zero", position: position) }
                result = a.dividedReportingOverflow(by: b)
            default:
                guard b != 0 else { throw CELError("modulus by zero", position: position) }
                result = a.remainderReportingOverflow(dividingBy: b)
            }
            guard !result.overflow else { throw CELError("integer overflow in \(a) \(op.rawValue) \(b)", position: position) }
            return .int(result.partialValue)
        case (.uint(let a), .uint(let b)):
            let result: (partialValue: UInt64, overflow: Bool)
            switch op {
            case .add: result = a.addingReportingOverflow(b)
            case .subtract: result = a.subtractingReportingOverflow(b)
            case .multiply: result = a.multipliedReportingOverflow(by: b)
            case .divide:
                guard b != 0 else { throw CELError("division by zero", position: position) }
                result = (a / b, false)
            default:
                guard b != 0 else { throw CELError("modulus by zero", position: position) }
                result = (a % b, false)
            }
            guard !result.overflow else { throw CELError("unsigned integer overflow in \(a)u \(op.rawValue) \(b)u", position: position) }
            return .uint(result.partialValue)
        case (.double(let a), .double(let b)):
            switch op {
            case .add: return .double(a + b)
            case .subtract: return .double(a - b)
            case .multiply: return .double(a * b)
            case .divide: return .double(a / b)
            default: throw Self.noOverload(op, lhs, rhs, at: position)
            }
        case (.string(let a), .string(let b)) where op == .add:
            return .string(a + b)
        case (.bytes(let a), .bytes(let b)) where op == .add:
            return .bytes(a + b)
        case (.list(let a), .list(let b)) where op == .add:
            return .list(a + b)
        default:
            throw Self.noOverload(op, lhs, rhs, at: position)
        }
    }
}

// MARK: - Functions

enum CELBuiltins {
    static func call(_ function: CELFunction, _ arguments: [CELValue], at position: Int) throws(CELError) -> CELValue {
        let value = arguments[0]
        func noOverload() -> CELError {
            CELError("no such overload: \(function.rawValue)(\(arguments.map(\.typeName).joined(separator: ", ")))", position: position)
        }
        switch function {
        case .size:
            switch value {
            case .string(let text): return .int(Int64(text.unicodeScalars.count))
            case .bytes(let bytes): return .int(Int64(bytes.count))
            case .list(let elements): return .int(Int64(elements.count))
            case .map(let entries): return .int(Int64(entries.count))
            default: throw noOverload()
            }
        case .startsWith, .endsWith, .contains, .matches:
            guard case .string(let text) = value, case .string(let other) = arguments[1] else { throw noOverload() }
            switch function {
            case .startsWith:
                return .bool(text.unicodeScalars.starts(with: other.unicodeScalars))
            case .endsWith:
                return .bool(text.unicodeScalars.reversed().starts(with: other.unicodeScalars.reversed()))
            case .contains:
                return .bool(Self.contains(text, other))
            default:
                return .bool(try CELRegex.matches(text, other, position: position))
            }
        case .int:
            guard let result = try Self.toInt(value, at: position) else { throw noOverload() }
            return result
        case .uint:
            guard let result = try Self.toUInt(value, at: position) else { throw noOverload() }
            return result
        case .double:
            switch value {
            case .double: return value
            case .int(let number): return .double(Double(number))
            case .uint(let number): return .double(Double(number))
            case .string(let text):
                guard let number = Double(text) else {
                    throw CELError("cannot convert string '\(text)' to double", position: position)
                }
                return .double(number)
            default: throw noOverload()
            }
        case .string:
            switch value {
            case .string: return value
            case .int(let number): return .string(String(number))
            case .uint(let number): return .string(String(number))
            case .double(let number): return .string(CELValue.formatDouble(number))
            case .bool(let flag): return .string(flag ? "true" : "false")
            case .bytes(let bytes):
                guard let text = String(validating: bytes, as: UTF8.self) else {
                    throw CELError("bytes are not valid UTF-8 and cannot be converted to string", position: position)
                }
                return .string(text)
            default: throw noOverload()
            }
        case .bool:
            switch value {
            case .bool: return value
            case .string(let text):
                switch text {
                case "1", "t", "T", "true", "TRUE", "True": return .bool(true)
                case "0", "f", "F", "false", "FALSE", "False": return .bool(false)
                default: throw CELError("cannot convert string '\(text)' to bool", position: position)
                }
            default: throw noOverload()
            }
        case .bytes:
            switch value {
            case .bytes: return value
            case .string(let text): return .bytes(Array(text.utf8))
            default: throw noOverload()
            }
        case .dyn:
            return value
        }
    }

    private static func toInt(_ value: CELValue, at position: Int) throws(CELError) -> CELValue? {
        switch value {
        case .int: return value
        case .uint(let number):
            guard let result = Int64(exactly: number) else { throw CELError("int conversion out of range: \(number)u", position: position) }
            return .int(result)
        case .double(let number):
            // Truncates toward zero; the truncated value must fit in int64.
            guard number.isFinite, number > -9_223_372_036_854_777_856.0, number < 9_223_372_036_854_775_808.0 else {
                throw CELError("int conversion out of range: \(CELValue.formatDouble(number))", position: position)
            }
            return .int(Int64(number))
        case .string(let text):
            guard let result = Int64(text) else { throw CELError("cannot convert string '\(text)' to int", position: position) }
            return .int(result)
        default:
            return nil
        }
    }

    private static func toUInt(_ value: CELValue, at position: Int) throws(CELError) -> CELValue? {
        switch value {
        case .uint: return value
        case .int(let number):
            guard let result = UInt64(exactly: number) else { throw CELError("uint conversion out of range: \(number)", position: position) }
            return .uint(result)
        case .double(let number):
            guard number.isFinite, number > -1, number < 18_446_744_073_709_551_616.0 else {
                throw CELError("uint conversion out of range: \(CELValue.formatDouble(number))", position: position)
            }
            return .uint(UInt64(number))
        case .string(let text):
            guard let result = UInt64(text) else { throw CELError("cannot convert string '\(text)' to uint", position: position) }
            return .uint(result)
        default:
            return nil
        }
    }

    /// Substring search by Unicode scalars (CEL compares code points, not grapheme clusters).
    private static func contains(_ text: String, _ needle: String) -> Bool {
        let haystack = Array(text.unicodeScalars)
        let pattern = Array(needle.unicodeScalars)
        if pattern.isEmpty { return true }
        guard pattern.count <= haystack.count else { return false }
        for start in 0...(haystack.count - pattern.count) where haystack[start] == pattern[0] {
            if haystack[start..<(start + pattern.count)].elementsEqual(pattern) { return true }
        }
        return false
    }
}

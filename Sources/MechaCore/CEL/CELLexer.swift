/// A lexical token of a CEL expression.
struct CELToken: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        case identifier(String)
        /// The magnitude of an integer literal; the sign is applied by the parser (so `-9223372036854775808`
        /// is representable).
        case int(UInt64)
        case uint(UInt64)
        case double(Double)
        case string(String)
        case bytes([UInt8])
        case punctuation(CELPunctuation)
        case end
    }

    var kind: Kind
    /// Offset in Unicode scalars of the token's first scalar.
    var position: Int

    var describedForError: String {
        switch self.kind {
        case .identifier(let name): "'\(name)'"
        case .int, .uint, .double: "number literal"
        case .string: "string literal"
        case .bytes: "bytes literal"
        case .punctuation(let punctuation): "'\(punctuation.rawValue)'"
        case .end: "end of input"
        }
    }
}

enum CELPunctuation: String, Sendable, Equatable {
    case leftParen = "(", rightParen = ")", leftBracket = "[", rightBracket = "]"
    case leftBrace = "{", rightBrace = "}", dot = ".", comma = ",", colon = ":", question = "?"
    case plus = "+", minus = "-", star = "*", slash = "/", percent = "%", bang = "!"
    case equal = "==", notEqual = "!=", less = "<", lessEqual = "<=", greater = ">", greaterEqual = ">="
    case and = "&&", or = "||"
}

/// Splits CEL source text into tokens. Whitespace and `//` line comments are skipped.
struct CELLexer {
    private let scalars: [Unicode.Scalar]
    private var offset = 0

    init(_ scalars: [Unicode.Scalar]) {
        self.scalars = scalars
    }

    static func tokenize(_ scalars: [Unicode.Scalar]) throws(CELError) -> [CELToken] {
        var lexer = CELLexer(scalars)
        var tokens: [CELToken] = []
        while true {
            let token = try lexer.next()
            tokens.append(token)
            if token.kind == .end { return tokens }
        }
    }

    private func peek(_ ahead: Int = 0) -> Unicode.Scalar? {
        let index = self.offset + ahead
        return index < self.scalars.count ? self.scalars[index] : nil
    }

    private func syntaxError(_ message: String, at position: Int) -> CELError {
        CELError("syntax error: \(message)", position: position)
    }

    mutating func next() throws(CELError) -> CELToken {
        self.skipTrivia()
        let start = self.offset
        guard let scalar = self.peek() else { return CELToken(kind: .end, position: start) }

        if scalar.isCELIdentifierStart {
            // String prefixes: r, b, rb, br in any case, immediately followed by a quote.
            var prefixLength = 0
            var raw = false
            var bytes = false
            while prefixLength < 2, let candidate = self.peek(prefixLength) {
                if (candidate == "r" || candidate == "R"), !raw {
                    raw = true
                } else if (candidate == "b" || candidate == "B"), !bytes {
                    bytes = true
                } else {
                    break
                }
                prefixLength += 1
                if let quote = self.peek(prefixLength), quote == "\"" || quote == "'" {
                    self.offset += prefixLength
                    return try self.lexString(start: start, raw: raw, bytes: bytes)
                }
            }
            while let character = self.peek(), character.isCELIdentifierContinue { self.offset += 1 }
            return CELToken(kind: .identifier(String(String.UnicodeScalarView(self.scalars[start..<self.offset]))), position: start)
        }
        if scalar.isCELDigit || (scalar == "." && (self.peek(1)?.isCELDigit ?? false)) {
            return try self.lexNumber(start: start)
        }
        if scalar == "\"" || scalar == "'" {
            return try self.lexString(start: start, raw: false, bytes: false)
        }

        let two: CELPunctuation? =
            switch (scalar, self.peek(1)) {
            case ("=", "="): .equal
            case ("!", "="): .notEqual
            case ("<", "="): .lessEqual
            case (">", "="): .greaterEqual
            case ("&", "&"): .and
            case ("|", "|"): .or
            default: nil
            }
        if let two {
            self.offset += 2
            return CELToken(kind: .punctuation(two), position: start)
        }
        if let one = CELPunctuation(rawValue: String(Character(scalar))) {
            self.offset += 1
            return CELToken(kind: .punctuation(one), position: start)
        }
        switch scalar {
        case "=": throw self.syntaxError("unexpected '=' (did you mean '=='?)", at: start)
        case "&": throw self.syntaxError("unexpected '&' (did you mean '&&'?)", at: start)
        case "|": throw self.syntaxError("unexpected '|' (did you mean '||'?)", at: start)
        default: throw self.syntaxError("unexpected character '\(scalar.escaped(asASCII: true))'", at: start)
        }
    }

    private mutating func skipTrivia() {
        while let scalar = self.peek() {
            switch scalar {
            case " ", "\t", "\n", "\r", "\u{0C}":
                self.offset += 1
            case "/" where self.peek(1) == "/":
                while let character = self.peek(), character != "\n" { self.offset += 1 }
            default:
                return
            }
        }
    }

    // MARK: Numbers

    private mutating func lexNumber(start: Int) throws(CELError) -> CELToken {
        // Hexadecimal integer.
        if self.peek() == "0", let x = self.peek(1), x == "x" || x == "X" {
            self.offset += 2
            let digitsStart = self.offset
            var value: UInt64 = 0
            var overflow = false
            while let scalar = self.peek(), let digit = scalar.celHexDigitValue {
                let (shifted, o1) = value.multipliedReportingOverflow(by: 16)
                let (sum, o2) = shifted.addingReportingOverflow(UInt64(digit))
                overflow = overflow || o1 || o2
                value = sum
                self.offset += 1
            }
            if self.offset == digitsStart { throw self.syntaxError("missing digits in hexadecimal literal", at: start) }
            if overflow { throw self.syntaxError("integer literal out of range", at: start) }
            return try self.finishInteger(value, start: start)
        }

        var isDouble = false
        while let scalar = self.peek(), scalar.isCELDigit { self.offset += 1 }
        if self.peek() == ".", self.peek(1)?.isCELDigit ?? false {
            isDouble = true
            self.offset += 1
            while let scalar = self.peek(), scalar.isCELDigit { self.offset += 1 }
        }
        if let e = self.peek(), e == "e" || e == "E" {
            var ahead = 1
            if let sign = self.peek(1), sign == "+" || sign == "-" { ahead = 2 }
            if self.peek(ahead)?.isCELDigit ?? false {
                isDouble = true
                self.offset += ahead
                while let scalar = self.peek(), scalar.isCELDigit { self.offset += 1 }
            } else {
                throw self.syntaxError("malformed exponent in number literal", at: start)
            }
        }
        let text = String(String.UnicodeScalarView(self.scalars[start..<self.offset]))
        if isDouble {
            guard let value = Double(text), value.isFinite else {
                throw self.syntaxError("double literal out of range: \(text)", at: start)
            }
            return CELToken(kind: .double(value), position: start)
        }
        guard let value = UInt64(text) else { throw self.syntaxError("integer literal out of range: \(text)", at: start) }
        return try self.finishInteger(value, start: start)
    }

    private mutating func finishInteger(_ value: UInt64, start: Int) throws(CELError) -> CELToken {
        if let suffix = self.peek(), suffix == "u" || suffix == "U" {
            self.offset += 1
            return CELToken(kind: .uint(value), position: start)
        }
        return CELToken(kind: .int(value), position: start)
    }

    // MARK: Strings

    private mutating func lexString(start: Int, raw: Bool, bytes: Bool) throws(CELError) -> CELToken {
        guard let quote = self.peek() else { throw self.syntaxError("unterminated string literal", at: start) }
        let triple = self.peek(1) == quote && self.peek(2) == quote
        self.offset += triple ? 3 : 1

        var scalars = String.UnicodeScalarView()
        var byteValues: [UInt8] = []
        func append(_ scalar: Unicode.Scalar) {
            if bytes { byteValues.append(contentsOf: Array(String(Character(scalar)).utf8)) } else { scalars.append(scalar) }
        }

        while true {
            guard let scalar = self.peek() else { throw self.syntaxError("unterminated string literal", at: start) }
            if scalar == quote {
                if !triple {
                    self.offset += 1
                    break
                }
                if self.peek(1) == quote, self.peek(2) == quote {
                    self.offset += 3
                    break
                }
            }
            if !triple, scalar == "\n" || scalar == "\r" {
                throw self.syntaxError("unterminated string literal (newline in single-line string)", at: start)
            }
            if scalar == "\\", !raw {
                let escapeStart = self.offset
                self.offset += 1
                switch try self.lexEscape(escapeStart: escapeStart) {
                case .scalar(let value): append(value)
                case .byte(let value):
                    if bytes { byteValues.append(value) } else { scalars.append(Unicode.Scalar(value)) }
                }
                continue
            }
            append(scalar)
            self.offset += 1
        }
        if bytes { return CELToken(kind: .bytes(byteValues), position: start) }
        return CELToken(kind: .string(String(scalars)), position: start)
    }

    private enum Escape {
        case scalar(Unicode.Scalar)
        /// `\xHH` and octal escapes: a byte in bytes literals, the code point U+00HH in strings.
        case byte(UInt8)
    }

    private mutating func lexEscape(escapeStart: Int) throws(CELError) -> Escape {
        guard let kind = self.peek() else { throw self.syntaxError("unterminated string literal", at: escapeStart) }
        self.offset += 1
        switch kind {
        case "a": return .scalar("\u{07}")
        case "b": return .scalar("\u{08}")
        case "f": return .scalar("\u{0C}")
        case "n": return .scalar("\n")
        case "r": return .scalar("\r")
        case "t": return .scalar("\t")
        case "v": return .scalar("\u{0B}")
        case "\\", "'", "\"", "`", "?": return .scalar(kind)
        case "x", "X":
            return .byte(UInt8(try self.hexDigits(2, escapeStart: escapeStart)))
        case "u", "U":
            let value = try self.hexDigits(kind == "u" ? 4 : 8, escapeStart: escapeStart)
            guard let scalar = Unicode.Scalar(value) else {
                throw self.syntaxError("invalid Unicode code point in escape sequence", at: escapeStart)
            }
            return .scalar(scalar)
        case "0"..."3":
            var value = UInt32(kind.value - 0x30)
            for _ in 0..<2 {
                guard let digit = self.peek(), ("0"..."7").contains(digit) else {
                    throw self.syntaxError("invalid octal escape sequence", at: escapeStart)
                }
                value = value * 8 + (digit.value - 0x30)
                self.offset += 1
            }
            return .byte(UInt8(value))
        default:
            throw self.syntaxError("invalid escape sequence '\\\(kind.escaped(asASCII: true))'", at: escapeStart)
        }
    }

    private mutating func hexDigits(_ count: Int, escapeStart: Int) throws(CELError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<count {
            guard let digit = self.peek()?.celHexDigitValue else {
                throw self.syntaxError("invalid hexadecimal escape sequence", at: escapeStart)
            }
            value = value * 16 + UInt32(digit)
            self.offset += 1
        }
        return value
    }
}

extension Unicode.Scalar {
    var isCELDigit: Bool { ("0"..."9").contains(self) }

    var isCELIdentifierStart: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) || self == "_" }

    var isCELIdentifierContinue: Bool { self.isCELIdentifierStart || self.isCELDigit }

    var celHexDigitValue: Int? {
        switch self {
        case "0"..."9": Int(self.value - 0x30)
        case "a"..."f": Int(self.value - 0x61 + 10)
        case "A"..."F": Int(self.value - 0x41 + 10)
        default: nil
        }
    }
}

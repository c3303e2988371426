import SextantCore

// The SQL-WHERE front end.
//
//   predicate := or
//   or        := and ('OR' and)*
//   and       := not ('AND' not)*
//   not       := 'NOT' not | primary
//   primary   := '(' or ')' | 'TRUE' | 'FALSE' | field tail
//   tail      := cmp value | ['NOT'] 'BETWEEN' value 'AND' value
//              | ['NOT'] 'IN' '(' [value (',' value)*] ')' | 'IS' ['NOT'] 'NULL' | 'CONTAINS' value
//   cmp       := '=' | '==' | '!=' | '<>' | '<' | '<=' | '>' | '>='
//   value     := 'string' | integer | decimal | 'TRUE' | 'FALSE'   (numbers may have a sign: -5, +5)
//   field     := [A-Za-z_][A-Za-z0-9_]* (not a keyword) | "double-quoted" (with "" for ")

extension Filter {
    /// Parses the SQL-WHERE subset: `= != <> < <= > >=` (`==` is read as `=`), `[NOT] BETWEEN a AND b`,
    /// `[NOT] IN (...)`, `IS [NOT] NULL`, `field CONTAINS 'x'`, `AND`, `OR`, `NOT`, parentheses,
    /// `TRUE`/`FALSE`. Precedence: NOT > AND > OR. Keywords are case-insensitive; strings are
    /// single-quoted with `''` for a quote; identifiers may be double-quoted. Integers are
    /// 64-bit (overflow is an error); numbers with a fraction or exponent are doubles. An empty
    /// (or all-whitespace) text is ``matchAll``.
    ///
    /// Throws ``SextantError/Code/syntax`` with context `position` (1-based character column) and
    /// `expected`, e.g. `at column 9: expected a value after '>=' but found end of input`.
    public init(sql: String) throws(SextantError) {
        var p = SQLParser(sql)
        let parsed = try p.parsePredicate()
        // The tree, not just the text, must respect the nesting limit: `x NOT BETWEEN` adds a
        // level the text does not show, and the JSON form and printer follow the tree.
        guard parsed.nestingDepth <= Filter.maxDepth else {
            throw SextantError(.syntax, "predicate nested deeper than \(Filter.maxDepth) levels",
                               context: ["position": "1", "expected": "at most \(Filter.maxDepth) nested levels"])
        }
        self = parsed
    }

    /// AND/OR/NOT levels on the deepest path (what the JSON form and the limit count).
    public var nestingDepth: Int {
        switch self {
        case .and(let ps), .or(let ps): 1 + (ps.map(\.nestingDepth).max() ?? 0)
        case .not(let p): 1 + p.nestingDepth
        default: 0
        }
    }

    /// Canonical SQL text; ``init(sql:)`` reads it back to an equal predicate for every predicate
    /// that parser produces. (An `IN` list may be empty; `and([])` prints as `TRUE`, `or([])` as
    /// `FALSE`, a one-operand `and`/`or` as its operand.)
    public func toSQL() -> String {
        var out = ""
        writeSQL(into: &out)
        return out
    }

    private func writeSQL(into out: inout String) {
        switch self {
        case .matchAll:
            out += "TRUE"
        case .and(let ps), .or(let ps):
            let isAnd: Bool = if case .and = self { true } else { false }
            if ps.isEmpty { out += isAnd ? "TRUE" : "FALSE"; return }
            if ps.count == 1 { ps[0].writeSQL(into: &out); return }
            for (i, p) in ps.enumerated() {
                if i > 0 { out += isAnd ? " AND " : " OR " }
                // AND binds tighter than OR: an AND inside an OR needs no parentheses (and
                // adding them would nest deeper than the text that was parsed).
                if !isAnd, case .and(let inner) = p, inner.count >= 2 { p.writeSQL(into: &out) } else { p.writeOperand(into: &out) }
            }
        case .not(.between(let f, let lo, let hi)):
            // The parser reads `f NOT BETWEEN …` as NOT(BETWEEN); print it the same way.
            out += Filter.sqlIdentifier(f) + " NOT BETWEEN " + Filter.sqlLiteral(lo) + " AND " + Filter.sqlLiteral(hi)
        case .not(let p):
            out += "NOT "
            p.writeOperand(into: &out)
        case .compare(let f, let op, let v):
            out += Filter.sqlIdentifier(f) + " " + op.rawValue + " " + Filter.sqlLiteral(v)
        case .between(let f, let lo, let hi):
            out += Filter.sqlIdentifier(f) + " BETWEEN " + Filter.sqlLiteral(lo) + " AND " + Filter.sqlLiteral(hi)
        case .in(let f, let vs):
            out += Filter.sqlIdentifier(f) + " IN (" + vs.map(Filter.sqlLiteral).joined(separator: ", ") + ")"
        case .notIn(let f, let vs):
            out += Filter.sqlIdentifier(f) + " NOT IN (" + vs.map(Filter.sqlLiteral).joined(separator: ", ") + ")"
        case .isNull(let f):
            out += Filter.sqlIdentifier(f) + " IS NULL"
        case .isNotNull(let f):
            out += Filter.sqlIdentifier(f) + " IS NOT NULL"
        case .contains(let f, let v):
            out += Filter.sqlIdentifier(f) + " CONTAINS " + Filter.sqlLiteral(v)
        }
    }

    /// An operand of AND/OR/NOT: parenthesized when it is itself an AND or OR, so the parser
    /// rebuilds the same tree (it only flattens chains without parentheses).
    private func writeOperand(into out: inout String) {
        switch self {
        case .and(let ps) where ps.count >= 2, .or(let ps) where ps.count >= 2:
            out += "("
            writeSQL(into: &out)
            out += ")"
        case .and(let ps) where ps.count == 1, .or(let ps) where ps.count == 1:
            ps[0].writeOperand(into: &out)
        default:
            writeSQL(into: &out)
        }
    }

    static let sqlKeywords: Set<String> = ["and", "or", "not", "in", "is", "null", "between", "contains", "true", "false"]

    /// A field name, double-quoted unless it is a plain identifier that is not a keyword.
    static func sqlIdentifier(_ name: String) -> String {
        var plain = !name.isEmpty && !sqlKeywords.contains(name.lowercased())
        if plain {
            for (i, c) in name.utf8.enumerated() {
                let alpha = (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95
                if !(alpha || (i > 0 && c >= 48 && c <= 57)) { plain = false; break }
            }
        }
        if plain { return name }
        return "\"" + doubling("\"", in: name) + "\""
    }

    /// `s` with every `quote` scalar doubled. Scalars, not characters: a quote followed by a
    /// combining mark is one grapheme, which `replacing` on characters would not match, and the
    /// lexer reads scalars.
    static func doubling(_ quote: Unicode.Scalar, in s: String) -> String {
        var out = String.UnicodeScalarView()
        for u in s.unicodeScalars {
            out.append(u)
            if u == quote { out.append(u) }
        }
        return String(out)
    }

    /// A literal that re-parses to the same value (doubles always carry a '.' or an exponent).
    static func sqlLiteral(_ v: AttributeValue) -> String {
        switch v {
        case .null: "NULL"
        case .string(let s): "'" + doubling("'", in: s) + "'"
        case .int(let i): String(i)
        case .double(let d): d.isFinite ? d.description : (d.isNaN ? "NULL" : (d < 0 ? "-1e999" : "1e999"))
        case .bool(let b): b ? "TRUE" : "FALSE"
        case .stringList(let l): "(" + l.map { sqlLiteral(.string($0)) }.joined(separator: ", ") + ")"
        case .intList(let l): "(" + l.map(String.init).joined(separator: ", ") + ")"
        }
    }
}

/// A recursive-descent parser over the UTF-8 bytes of the text, with a lazy lexer so the first
/// error in reading order is the one reported.
private struct SQLParser {
    enum Keyword: String { case and, or, not, between, `in`, `is`, null, contains, `true`, `false` }

    enum Kind: Equatable {
        case identifier(String)  // plain or double-quoted
        case keyword(Keyword)
        case string(String)
        case int(Int64)
        case double(Double)
        case op(ComparisonOperator)
        case lparen, rparen, comma, end
    }

    struct Token {
        var kind: Kind
        var offset: Int  // byte offset of the first byte
        var text: String  // as written, for messages
    }

    let bytes: [UInt8]
    var pos = 0
    var tok = Token(kind: .end, offset: 0, text: "")
    var depth = 0

    init(_ text: String) { bytes = Array(text.utf8) }

    // MARK: errors

    func column(_ offset: Int) -> Int {
        String(decoding: bytes[0..<min(offset, bytes.count)], as: UTF8.self).count + 1
    }

    func error(_ expected: String, at offset: Int, found: String, message: String? = nil) -> SextantError {
        let col = column(offset)
        let msg = message ?? "expected \(expected) but found \(found)"
        return SextantError(.syntax, "at column \(col): \(msg)", context: ["position": String(col), "expected": expected])
    }

    func unexpected(_ expected: String) -> SextantError {
        error(expected, at: tok.offset, found: describe(tok))
    }

    func describe(_ t: Token) -> String {
        switch t.kind {
        case .end: "end of input"
        case .identifier: "identifier \(t.text)"
        case .keyword: t.text.uppercased()
        case .string: "string \(t.text)"
        case .int, .double: "number \(t.text)"
        case .op, .lparen, .rparen, .comma: "'\(t.text)'"
        }
    }

    // MARK: lexer

    mutating func advance() throws(SextantError) {
        while pos < bytes.count, bytes[pos] == 0x20 || bytes[pos] == 0x09 || bytes[pos] == 0x0A || bytes[pos] == 0x0D {
            pos += 1
        }
        let start = pos
        guard pos < bytes.count else { tok = Token(kind: .end, offset: start, text: ""); return }
        let c = bytes[pos]
        func single(_ k: Kind, _ n: Int) -> Token {
            Token(kind: k, offset: start, text: String(decoding: bytes[start..<start + n], as: UTF8.self))
        }
        let next: UInt8 = pos + 1 < bytes.count ? bytes[pos + 1] : 0
        switch c {
        case UInt8(ascii: "("): tok = single(.lparen, 1); pos += 1
        case UInt8(ascii: ")"): tok = single(.rparen, 1); pos += 1
        case UInt8(ascii: ","): tok = single(.comma, 1); pos += 1
        case UInt8(ascii: "="):
            let n = next == UInt8(ascii: "=") ? 2 : 1  // tolerate '=='
            tok = single(.op(.equal), n); pos += n
        case UInt8(ascii: "!"):
            guard next == UInt8(ascii: "=") else {
                throw error("'!='", at: start, found: "'!'")
            }
            tok = single(.op(.notEqual), 2); pos += 2
        case UInt8(ascii: "<"):
            if next == UInt8(ascii: "=") { tok = single(.op(.lessOrEqual), 2); pos += 2 }
            else if next == UInt8(ascii: ">") { tok = single(.op(.notEqual), 2); pos += 2 }
            else { tok = single(.op(.less), 1); pos += 1 }
        case UInt8(ascii: ">"):
            if next == UInt8(ascii: "=") { tok = single(.op(.greaterOrEqual), 2); pos += 2 }
            else { tok = single(.op(.greater), 1); pos += 1 }
        case UInt8(ascii: "'"):
            let s = try quoted(UInt8(ascii: "'"), what: "string")
            tok = Token(kind: .string(s), offset: start, text: String(decoding: bytes[start..<pos], as: UTF8.self))
        case UInt8(ascii: "\""):
            let s = try quoted(UInt8(ascii: "\""), what: "identifier")
            guard !s.isEmpty else { throw error("a non-empty identifier", at: start, found: "\"\"") }
            tok = Token(kind: .identifier(s), offset: start, text: String(decoding: bytes[start..<pos], as: UTF8.self))
        case UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."):
            tok = try number()
        case _ where SQLParser.isIdentStart(c):
            while pos < bytes.count, SQLParser.isIdentStart(bytes[pos]) || (bytes[pos] >= 0x30 && bytes[pos] <= 0x39) {
                pos += 1
            }
            let text = String(decoding: bytes[start..<pos], as: UTF8.self)
            if let k = Keyword(rawValue: text.lowercased()) {
                tok = Token(kind: .keyword(k), offset: start, text: text)
            } else {
                tok = Token(kind: .identifier(text), offset: start, text: text)
            }
        default:
            let ch = String(decoding: bytes[start...].prefix(4), as: UTF8.self).unicodeScalars.first.map { String($0) } ?? "?"
            throw error("an identifier, value, operator or parenthesis", at: start, found: "'\(ch)'",
                        message: "unexpected character '\(ch)'; expected an identifier, value, operator or parenthesis")
        }
    }

    static func isIdentStart(_ c: UInt8) -> Bool { (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95 }

    /// Reads a quoted token at `pos`; a doubled quote stands for one quote.
    mutating func quoted(_ q: UInt8, what: String) throws(SextantError) -> String {
        let start = pos
        pos += 1
        var out: [UInt8] = []
        while true {
            guard pos < bytes.count else {
                throw error("a closing \(q == 0x27 ? "'" : "\"") for the \(what) that starts here", at: start, found: "end of input")
            }
            let b = bytes[pos]
            pos += 1
            if b == q {
                if pos < bytes.count && bytes[pos] == q { out.append(q); pos += 1; continue }
                return String(decoding: out, as: UTF8.self)
            }
            out.append(b)
        }
    }

    mutating func number() throws(SextantError) -> Token {
        let start = pos
        if bytes[pos] == UInt8(ascii: "-") || bytes[pos] == UInt8(ascii: "+") { pos += 1 }
        func isDigit(_ i: Int) -> Bool { i < bytes.count && bytes[i] >= 0x30 && bytes[i] <= 0x39 }
        guard isDigit(pos) else {
            throw error("a digit", at: pos, found: pos < bytes.count ? "'\(Character(Unicode.Scalar(bytes[pos])))'" : "end of input")
        }
        while isDigit(pos) { pos += 1 }
        var isDouble = false
        if pos < bytes.count && bytes[pos] == UInt8(ascii: ".") {
            isDouble = true
            pos += 1
            guard isDigit(pos) else { throw error("a digit after '.'", at: pos, found: foundAt(pos)) }
            while isDigit(pos) { pos += 1 }
        }
        if pos < bytes.count && (bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E")) {
            isDouble = true
            pos += 1
            if pos < bytes.count && (bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-")) { pos += 1 }
            guard isDigit(pos) else { throw error("a digit in the exponent", at: pos, found: foundAt(pos)) }
            while isDigit(pos) { pos += 1 }
        }
        let text = String(decoding: bytes[start..<pos], as: UTF8.self)
        if isDouble {
            guard let d = Double(text), d.isFinite else {
                throw error("a number within the range of a double", at: start, found: text)
            }
            return Token(kind: .double(d), offset: start, text: text)
        }
        guard let i = Int64(text) else {
            throw error("an integer in the 64-bit range", at: start, found: text,
                        message: "integer \(text) is outside the 64-bit range (use a decimal point for a double)")
        }
        return Token(kind: .int(i), offset: start, text: text)
    }

    func foundAt(_ i: Int) -> String {
        guard i < bytes.count else { return "end of input" }
        let ch = String(decoding: bytes[i...].prefix(4), as: UTF8.self).unicodeScalars.first.map { String($0) } ?? "?"
        return "'\(ch)'"
    }

    // MARK: grammar

    mutating func parsePredicate() throws(SextantError) -> Filter {
        try advance()
        if tok.kind == .end { return .matchAll }
        let p = try parseOr()
        guard tok.kind == .end else { throw unexpected("AND, OR or end of input") }
        return p
    }

    mutating func enter() throws(SextantError) {
        depth += 1
        guard depth <= Filter.maxDepth else {
            throw error("at most \(Filter.maxDepth) nested NOTs and parentheses", at: tok.offset, found: "deeper nesting",
                        message: "predicate nested deeper than \(Filter.maxDepth) levels")
        }
    }

    mutating func parseOr() throws(SextantError) -> Filter {
        var ps = [try parseAnd()]
        while tok.kind == .keyword(.or) {
            try advance()
            ps.append(try parseAnd())
        }
        return ps.count == 1 ? ps[0] : .or(ps)
    }

    mutating func parseAnd() throws(SextantError) -> Filter {
        var ps = [try parseNot()]
        while tok.kind == .keyword(.and) {
            try advance()
            ps.append(try parseNot())
        }
        return ps.count == 1 ? ps[0] : .and(ps)
    }

    mutating func parseNot() throws(SextantError) -> Filter {
        guard tok.kind == .keyword(.not) else { return try parsePrimary() }
        try enter()
        try advance()
        let p = try parseNot()
        depth -= 1
        return .not(p)
    }

    mutating func parsePrimary() throws(SextantError) -> Filter {
        switch tok.kind {
        case .lparen:
            try enter()
            try advance()
            let p = try parseOr()
            guard tok.kind == .rparen else { throw unexpected("')', AND or OR") }
            depth -= 1
            try advance()
            return p
        case .keyword(.true):
            try advance()
            return .matchAll
        case .keyword(.false):
            try advance()
            return .matchNone
        case .identifier(let field):
            try advance()
            return try parseTail(field)
        case .keyword(let k):
            throw error("a field name, NOT or '('", at: tok.offset, found: describe(tok),
                        message: "expected a field name, NOT or '(' but found the keyword \(tok.text.uppercased())"
                            + " (double-quote a field named \(k.rawValue): \"\(tok.text)\")")
        default:
            throw unexpected("a field name, NOT or '('")
        }
    }

    mutating func parseTail(_ field: String) throws(SextantError) -> Filter {
        switch tok.kind {
        case .op(let op):
            let opText = tok.text
            try advance()
            if tok.kind == .keyword(.null) {
                let hint = op == .notEqual ? "IS NOT NULL" : "IS NULL"
                throw error("a non-null value", at: tok.offset, found: "NULL",
                            message: "comparing with NULL is never true; use '\(Filter.sqlIdentifier(field)) \(hint)'")
            }
            return .compare(field, op, try parseValue(after: "'\(opText)'"))
        case .keyword(.between):
            return try parseBetween(field)
        case .keyword(.in):
            return .in(field, try parseList())
        case .keyword(.not):
            try advance()
            switch tok.kind {
            case .keyword(.between): return .not(try parseBetween(field))
            case .keyword(.in): return .notIn(field, try parseList())
            default: throw unexpected("BETWEEN or IN after NOT")
            }
        case .keyword(.is):
            try advance()
            var negated = false
            if tok.kind == .keyword(.not) { negated = true; try advance() }
            guard tok.kind == .keyword(.null) else { throw unexpected(negated ? "NULL after IS NOT" : "NULL or NOT NULL after IS") }
            try advance()
            return negated ? .isNotNull(field) : .isNull(field)
        case .keyword(.contains):
            try advance()
            return .contains(field, try parseValue(after: "CONTAINS"))
        default:
            throw unexpected("a comparison operator, BETWEEN, IN, NOT IN, IS or CONTAINS after the field name")
        }
    }

    mutating func parseBetween(_ field: String) throws(SextantError) -> Filter {
        try advance()
        let lo = try parseValue(after: "BETWEEN")
        guard tok.kind == .keyword(.and) else { throw unexpected("AND after the lower bound of BETWEEN") }
        try advance()
        let hi = try parseValue(after: "BETWEEN ... AND")
        return .between(field, lo, hi)
    }

    mutating func parseList() throws(SextantError) -> [AttributeValue] {
        try advance()
        guard tok.kind == .lparen else { throw unexpected("'(' after IN") }
        try advance()
        var vs: [AttributeValue] = []
        if tok.kind == .rparen { try advance(); return vs }
        while true {
            vs.append(try parseValue(after: vs.isEmpty ? "'('" : "','", inList: true))
            if tok.kind == .comma { try advance(); continue }
            guard tok.kind == .rparen else { throw unexpected("',' or ')' in the IN list") }
            try advance()
            return vs
        }
    }

    mutating func parseValue(after: String, inList: Bool = false) throws(SextantError) -> AttributeValue {
        let v: AttributeValue
        switch tok.kind {
        case .string(let s): v = .string(s)
        case .int(let i): v = .int(i)
        case .double(let d): v = .double(d)
        case .keyword(.true): v = .bool(true)
        case .keyword(.false): v = .bool(false)
        case .keyword(.null):
            throw error("a non-null value", at: tok.offset, found: "NULL",
                        message: inList ? "NULL is not allowed in an IN list; use IS NULL separately"
                            : "NULL is not a value here; use IS NULL or IS NOT NULL")
        default:
            throw unexpected("a value after \(after)")
        }
        try advance()
        return v
    }
}

import SextantCore
import SextantFilter
import SextantTestSupport
import Testing

/// Random predicates shaped like the SQL parser's output: AND/OR have at least two operands.
struct PredicateGenerator {
    var rng: SeededRandom
    /// Include shapes only the Swift/JSON front ends produce (empty and one-operand AND/OR).
    var allShapes = false

    // A quote followed by a combining mark is one grapheme: escaping must work on scalars.
    static let names = ["a", "year", "_x9", "Tags", "select", "and", "my field", "quo\"te", "é", "NULL", "x1", "e\"\u{0351}ird"]
    static let strings = ["", "a", "it's", "''", "héllo ✓", "tab\tnew\nline", "\"", "\\", "\u{0}", "NULL", "a AND b", "🎷", "it'\u{0301}s"]
    static let doubles: [Double] = [0, -0.0, 1, -1, 0.1, 2.5, -2.5, 1e-5, 1e20, 1.7976931348623157e308, .leastNonzeroMagnitude, 123456.789, -9.223372036854775808e18, 1e16]

    mutating func int(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }

    mutating func literal() -> AttributeValue {
        switch int(6) {
        case 0: return .string(PredicateGenerator.strings[int(PredicateGenerator.strings.count)])
        case 1: return .int([0, 1, -1, Int64.max, Int64.min, 2010, -42][int(7)])
        case 2: return .int(Int64(bitPattern: rng.next()))
        case 3: return .double(PredicateGenerator.doubles[int(PredicateGenerator.doubles.count)])
        case 4: return .double(Double(bitPattern: rng.next() & 0x7FEF_FFFF_FFFF_FFFF) * (int(2) == 0 ? 1 : -1))
        default: return .bool(int(2) == 0)
        }
    }

    mutating func field() -> String { PredicateGenerator.names[int(PredicateGenerator.names.count)] }

    mutating func leaf() -> Filter {
        switch int(9) {
        case 0: return .compare(field(), ComparisonOperator.allCases[int(6)], literal())
        case 1: return .between(field(), literal(), literal())
        case 2: return .in(field(), (0..<int(5)).map { _ in literal() })
        case 3: return .notIn(field(), (0..<int(5)).map { _ in literal() })
        case 4: return .isNull(field())
        case 5: return .isNotNull(field())
        case 6: return .contains(field(), literal())
        case 7: return int(4) == 0 ? .matchAll : .compare(field(), .equal, literal())
        default: return .compare(field(), ComparisonOperator.allCases[int(6)], literal())
        }
    }

    mutating func predicate(depth: Int) -> Filter {
        if depth == 0 || int(3) == 0 { return leaf() }
        switch int(3) {
        case 0: return .not(predicate(depth: depth - 1))
        default:
            let lo = allShapes ? 0 : 2
            let n = lo + int(4)
            let ps = (0..<n).map { _ in predicate(depth: depth - 1) }
            return int(2) == 0 ? .and(ps) : .or(ps)
        }
    }
}

@Suite struct RoundTripTests {
    @Test func sqlRoundTrip() throws {
        var gen = PredicateGenerator(rng: SeededRandom(seed: 42))
        for i in 0..<3000 {
            let p = gen.predicate(depth: 5)
            let sql = p.toSQL()
            let q = try Filter(sql: sql)
            #expect(q == p, "case \(i): \(sql)")
            #expect(q.toSQL() == sql)
        }
    }

    @Test func jsonRoundTrip() throws {
        var gen = PredicateGenerator(rng: SeededRandom(seed: 7), allShapes: true)
        for i in 0..<3000 {
            let p = gen.predicate(depth: 5)
            let j = p.toJSON()
            #expect(try Filter(json: j) == p, "case \(i): \(j)")
            // Through text too: the serializer and parser must preserve every literal.
            let text = j.jsonText
            #expect(try JSONValue(parsing: text) == j, "case \(i): \(text)")
            #expect(try Filter(jsonText: text) == p)
        }
    }

    @Test func jsonFormExamples() throws {
        let p = try Filter(sql: "year >= 2010 AND (genre IN ('jazz', 'blues') OR NOT tags CONTAINS 'live') AND rank IS NULL AND x BETWEEN 1 AND 2.5")
        #expect(p.toJSON().jsonText == #"{"and":[{"field":"year","op":">=","value":2010},{"or":[{"field":"genre","op":"in","value":["jazz","blues"]},{"not":{"field":"tags","op":"contains","value":"live"}}]},{"field":"rank","op":"is_null"},{"field":"x","op":"between","value":[1,2.5]}]}"#)
        #expect(try Filter(jsonText: "true") == .matchAll)
        #expect(try Filter(jsonText: "false") == .matchNone)
        #expect(try Filter(jsonText: #"{"field":"x","op":"<>","value":1}"#) == .compare("x", .notEqual, 1))
        #expect(try Filter(jsonText: #"{"field":"x","op":"not_in","value":[]}"#) == .notIn("x", []))
    }

    struct BadJSON: CustomStringConvertible, Sendable {
        var text: String
        var path: String
        var description: String { text }
    }

    @Test(arguments: [
        BadJSON(text: "3", path: "$"),
        BadJSON(text: "null", path: "$"),
        BadJSON(text: #"{"and": 1}"#, path: "$.and"),
        BadJSON(text: #"{"and": [true, {"field": "x", "op": "~", "value": 1}]}"#, path: "$.and[1].op"),
        BadJSON(text: #"{"or": [{"not": {"field": 1, "op": "=", "value": 1}}]}"#, path: "$.or[0].not.field"),
        BadJSON(text: #"{"field": "x", "op": "=", "value": null}"#, path: "$.value"),
        BadJSON(text: #"{"field": "x", "op": "=", "value": [1]}"#, path: "$.value"),
        BadJSON(text: #"{"field": "x", "op": "="}"#, path: "$.value"),
        BadJSON(text: #"{"field": "x", "op": "between", "value": [1]}"#, path: "$.value"),
        BadJSON(text: #"{"field": "x", "op": "between", "value": [1, {}]}"#, path: "$.value[1]"),
        BadJSON(text: #"{"field": "x", "op": "in", "value": 1}"#, path: "$.value"),
        BadJSON(text: #"{"field": "x", "op": "in", "value": [1, null]}"#, path: "$.value[1]"),
        BadJSON(text: #"{"field": "x", "op": "is_null", "value": 1}"#, path: "$.value"),
        BadJSON(text: #"{"field": "x", "op": "=", "value": 1, "extra": 2}"#, path: "$.extra"),
        BadJSON(text: #"{"field": "", "op": "is_null"}"#, path: "$.field"),
        BadJSON(text: #"{"field": "x"}"#, path: "$.op"),
        BadJSON(text: #"{"and": [], "or": []}"#, path: "$"),
    ])
    func jsonErrors(_ bad: BadJSON) {
        do {
            let p = try Filter(jsonText: bad.text)
            Issue.record("\(bad.text) read as \(p)")
        } catch {
            #expect(error.code == .syntax)
            #expect(error.context["path"] == bad.path, "\(error)")
            #expect(error.message.hasPrefix("at \(bad.path): expected "), "\(error)")
        }
    }

    @Test func jsonDepthLimit() throws {
        var j: JSONValue = true
        for _ in 0..<200 { j = ["not": j] }
        #expect(throws: SextantError.self) { try Filter(json: j) }
        var k: JSONValue = true
        for _ in 0..<100 { k = ["not": k] }
        #expect(try Filter(json: k).toJSON() == k)
    }

    @Test func builder() {
        let p = Attr("year") >= 2010 && Attr("genre") == "jazz" && Attr("score") < 2.5
        #expect(p == .and([.compare("year", .greaterOrEqual, .int(2010)), .compare("genre", .equal, .string("jazz")),
                           .compare("score", .less, .double(2.5))]))
        let q = Attr("a").isNull || Attr("b").isNotNull || !Attr("tags").contains("x")
        #expect(q == .or([.isNull("a"), .isNotNull("b"), .not(.contains("tags", "x"))]))
        #expect(Attr("x").in([1, 2]) == .in("x", [1, 2]))
        #expect(Attr("x").notIn(["a"]) == .notIn("x", ["a"]))
        #expect(Attr("x").between(1, 2.0) == .between("x", .int(1), .double(2)))
        #expect((Attr("x") != true) == .compare("x", .notEqual, .bool(true)))
        #expect((Attr("x") <= 1) == .compare("x", .lessOrEqual, 1))
        #expect((Attr("x") > 1) == .compare("x", .greater, 1))
    }
}

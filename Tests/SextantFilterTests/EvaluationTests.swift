import Foundation
import SextantCore
import SextantFilter
import Testing

@Suite struct EvaluationTests {
    static let schema = try! Schema([
        Field("i", .int), Field("d", .double), Field("s", .string), Field("b", .bool),
        Field("tags", .stringList), Field("nums", .intList), Field("j", .int),
    ])

    /// A row with the given values by name (others null).
    func row(_ values: [String: AttributeValue]) -> AttributeRow {
        var r = AttributeRow(nullsFor: Self.schema.count)
        for (k, v) in values { r[Self.schema.position(of: k)!] = v }
        return r
    }

    func eval(_ sql: String, _ values: [String: AttributeValue]) throws -> Bool? {
        let f = try Filter(sql: sql).bind(to: Self.schema)
        let r = row(values)
        let v = f.evaluate(r)
        #expect(f.matches(r) == (v == true))
        return v
    }

    /// Rows where i is true (1), false (0) or unknown (null), via `i = 1`.
    static let truthRows: [(Bool?, AttributeValue)] = [(true, .int(1)), (false, .int(0)), (nil, .null)]

    @Test func kleeneTruthTables() throws {
        for (x, xv) in Self.truthRows {
            for (y, yv) in Self.truthRows {
                let vals: [String: AttributeValue] = ["i": xv, "j": yv]
                let and: Bool? = (x == false || y == false) ? false : (x == nil || y == nil ? nil : true)
                let or: Bool? = (x == true || y == true) ? true : (x == nil || y == nil ? nil : false)
                #expect(try eval("i = 1 AND j = 1", vals) == and, "\(String(describing: x)) AND \(String(describing: y))")
                #expect(try eval("i = 1 OR j = 1", vals) == or, "\(String(describing: x)) OR \(String(describing: y))")
                #expect(try eval("NOT (i = 1 AND j = 1)", vals) == and.map { !$0 })
                #expect(try eval("NOT (i = 1 OR j = 1)", vals) == or.map { !$0 })
            }
            #expect(try eval("NOT i = 1", ["i": xv]) == x.map { !$0 })
            #expect(try eval("NOT NOT i = 1", ["i": xv]) == x)
        }
        // N-ary: a false anywhere wins over unknown; unknown wins over true.
        #expect(try eval("i = 1 AND j = 1 AND i = 0", ["i": .int(1), "j": .null]) == false)
        #expect(try eval("i = 1 AND j = 1 AND i = 1", ["i": .int(1), "j": .null]) == nil)
        #expect(try eval("i = 0 OR j = 1 OR i = 1", ["i": .int(1), "j": .null]) == true)
        #expect(try eval("i = 0 OR j = 1 OR i = 0", ["i": .int(1), "j": .null]) == nil)
    }

    @Test func nullSemantics() throws {
        let null: [String: AttributeValue] = [:]
        for op in ["=", "!=", "<", "<=", ">", ">="] {
            #expect(try eval("i \(op) 1", null) == nil)
            #expect(try eval("s \(op) 'a'", null) == nil)
            #expect(try eval("d \(op) 1.5", null) == nil)
        }
        #expect(try eval("b = TRUE", null) == nil)
        #expect(try eval("i BETWEEN 1 AND 2", null) == nil)
        #expect(try eval("i NOT BETWEEN 1 AND 2", null) == nil)
        #expect(try eval("i IN (1, 2)", null) == nil)
        #expect(try eval("i NOT IN (1, 2)", null) == nil)
        #expect(try eval("tags CONTAINS 'a'", null) == nil)
        #expect(try eval("NOT tags CONTAINS 'a'", null) == nil)
        #expect(try eval("tags CONTAINS 'a'", ["tags": .stringList([])]) == false)
        #expect(try eval("NOT tags CONTAINS 'a'", ["tags": .stringList([])]) == true)
        #expect(try eval("tags CONTAINS 'a'", ["tags": .stringList(["b", "a"])]) == true)
        #expect(try eval("nums CONTAINS 3", ["nums": .intList([1, 3])]) == true)
        #expect(try eval("nums CONTAINS 3.0", ["nums": .intList([1, 3])]) == true)
        #expect(try eval("nums CONTAINS 3.5", ["nums": .intList([1, 3])]) == false)
        #expect(try eval("nums CONTAINS 3", null) == nil)
        #expect(try eval("i IS NULL", null) == true)
        #expect(try eval("i IS NOT NULL", null) == false)
        #expect(try eval("i IS NULL", ["i": 0]) == false)
        #expect(try eval("tags IS NULL", ["tags": .stringList([])]) == false)
        #expect(try eval("tags IS NOT NULL", null) == false)
        #expect(try eval("i IS NULL OR i > 3", null) == true)
        #expect(try eval("TRUE", null) == true)
        #expect(try eval("FALSE", null) == false)
        #expect(try eval("", null) == true)
        // A NOT IN that would be true for a non-null value is still unknown for null.
        #expect(try eval("i NOT IN (5)", null) == nil)
        #expect(try eval("i NOT IN (5)", ["i": 4]) == true)
        #expect(try eval("i IN ()", ["i": 4]) == false)
        #expect(try eval("i NOT IN ()", ["i": 4]) == true)
    }

    @Test func comparisons() throws {
        #expect(try eval("s = 'abc'", ["s": "abc"]) == true)
        #expect(try eval("s < 'abd'", ["s": "abc"]) == true)
        #expect(try eval("s < 'ab'", ["s": "abc"]) == false)
        #expect(try eval("s > 'ab'", ["s": "abc"]) == true)
        #expect(try eval("s BETWEEN 'a' AND 'b'", ["s": "abc"]) == true)
        #expect(try eval("s BETWEEN 'b' AND 'a'", ["s": "abc"]) == false)
        #expect(try eval("s IN ('x', 'abc', 'y')", ["s": "abc"]) == true)
        #expect(try eval("s NOT IN ('x', 'abc', 'y')", ["s": "abc"]) == false)
        // UTF-8 byte order, no normalization: precomposed é differs from e + combining accent.
        #expect(try eval("s = 'é'", ["s": .string("e\u{301}")]) == false)
        #expect(try eval("s > 'z'", ["s": "é"]) == true)
        #expect(try eval("b = TRUE", ["b": true]) == true)
        #expect(try eval("b != TRUE", ["b": true]) == false)
        #expect(try eval("b IN (FALSE)", ["b": true]) == false)
        #expect(try eval("b NOT IN (FALSE)", ["b": true]) == true)
        #expect(try eval("i BETWEEN 1 AND 3", ["i": 3]) == true)
        #expect(try eval("i BETWEEN 1 AND 3", ["i": 4]) == false)
        #expect(try eval("i NOT BETWEEN 1 AND 3", ["i": 4]) == true)
    }

    @Test func mixedNumericComparisons() throws {
        #expect(try eval("i < 2.5", ["i": 2]) == true)
        #expect(try eval("i < 2.5", ["i": 3]) == false)
        #expect(try eval("i > 2.5", ["i": 3]) == true)
        #expect(try eval("i = 2.0", ["i": 2]) == true)
        #expect(try eval("i = 2.5", ["i": 2]) == false)
        #expect(try eval("i != 2.5", ["i": 2]) == true)
        #expect(try eval("i <= -2.5", ["i": -3]) == true)
        #expect(try eval("i <= -2.5", ["i": -2]) == false)
        #expect(try eval("i IN (1.5, 2.0)", ["i": 2]) == true)
        #expect(try eval("i IN (1.5)", ["i": 1]) == false)
        #expect(try eval("d = 2", ["d": 2.0]) == true)
        #expect(try eval("d > 2", ["d": 2.0000001]) == true)
        #expect(try eval("d IN (2, 3)", ["d": 3.0]) == true)
        #expect(try eval("d IN (2, 3.5)", ["d": 3.5]) == true)
        #expect(try eval("d BETWEEN 1 AND 2.5", ["d": 2.5]) == true)
        // 2^53 + 1 is not a double: the int must not be rounded to 2^53.
        let big: Int64 = 9_007_199_254_740_993
        #expect(try eval("i = 9007199254740992.0", ["i": .int(big)]) == false)
        #expect(try eval("i > 9007199254740992.0", ["i": .int(big)]) == true)
        #expect(try eval("d = 9007199254740993", ["d": .double(9_007_199_254_740_992)]) == false)
        #expect(try eval("d < 9007199254740993", ["d": .double(9_007_199_254_740_992)]) == true)
        #expect(try eval("d IN (9007199254740993)", ["d": .double(9_007_199_254_740_992)]) == false)
        // Extremes.
        #expect(try eval("i < 9.3e18", ["i": .int(Int64.max)]) == true)
        #expect(try eval("i < 9223372036854775807.0", ["i": .int(Int64.max)]) == true)  // the double is 2^63
        #expect(try eval("i >= -9223372036854775808.0", ["i": .int(Int64.min)]) == true)
        #expect(try eval("i > -1e300", ["i": .int(Int64.min)]) == true)
        #expect(try eval("d > 9223372036854775807", ["d": 1e19]) == true)
        // Stored NaN compares as unknown.
        #expect(try eval("d = 1", ["d": .double(.nan)]) == nil)
        // An int field holding a double (or vice versa) still compares numerically.
        #expect(try eval("i = 2", ["i": 2.0]) == true)
        #expect(try eval("d = 2", ["d": 2]) == true)
        // Wrong-kind stored values are unknown, not a crash.
        #expect(try eval("i = 2", ["i": "2"]) == nil)
    }

    @Test func exhaustiveIntDoubleAgreement() throws {
        // Compare against exact rational arithmetic on small values scaled by 4.
        let schema = try Schema([Field("x", .int)])
        for lit in stride(from: -12, through: 12, by: 1) {
            let d = Double(lit) / 4
            for op in ComparisonOperator.allCases {
                let f = try Filter.compare("x", op, .double(d)).bind(to: schema)
                for x in -5...5 {
                    let a = x * 4, b = lit
                    let expected: Bool = switch op {
                    case .equal: a == b
                    case .notEqual: a != b
                    case .less: a < b
                    case .lessOrEqual: a <= b
                    case .greater: a > b
                    case .greaterOrEqual: a >= b
                    }
                    #expect(f.matches(AttributeRow(values: [.int(Int64(x))])) == expected, "\(x) \(op) \(d)")
                }
            }
        }
    }

    struct BindCase: CustomStringConvertible, Sendable {
        var sql: String
        var code: SextantError.Code
        var field: String
        var description: String { sql }
    }

    @Test(arguments: [
        BindCase(sql: "nope = 1", code: .unknownAttribute, field: "nope"),
        BindCase(sql: "i = 1 OR nope IS NULL", code: .unknownAttribute, field: "nope"),
        BindCase(sql: "s = 1", code: .typeMismatch, field: "s"),
        BindCase(sql: "i = 'a'", code: .typeMismatch, field: "i"),
        BindCase(sql: "d = TRUE", code: .typeMismatch, field: "d"),
        BindCase(sql: "i IN (1, 'a')", code: .typeMismatch, field: "i"),
        BindCase(sql: "s BETWEEN 'a' AND 3", code: .typeMismatch, field: "s"),
        BindCase(sql: "b < TRUE", code: .typeMismatch, field: "b"),
        BindCase(sql: "b BETWEEN FALSE AND TRUE", code: .typeMismatch, field: "b"),
        BindCase(sql: "b = 1", code: .typeMismatch, field: "b"),
        BindCase(sql: "tags = 'a'", code: .typeMismatch, field: "tags"),
        BindCase(sql: "tags < 'a'", code: .typeMismatch, field: "tags"),
        BindCase(sql: "tags IN ('a')", code: .typeMismatch, field: "tags"),
        BindCase(sql: "tags CONTAINS 1", code: .typeMismatch, field: "tags"),
        BindCase(sql: "nums CONTAINS 'a'", code: .typeMismatch, field: "nums"),
        BindCase(sql: "s CONTAINS 'a'", code: .typeMismatch, field: "s"),
        BindCase(sql: "i CONTAINS 1", code: .typeMismatch, field: "i"),
    ])
    func bindErrors(_ c: BindCase) throws {
        let p = try Filter(sql: c.sql)
        do {
            _ = try p.bind(to: Self.schema)
            Issue.record("\(c.sql) bound")
        } catch {
            #expect(error.code == c.code, "\(error)")
            #expect(error.context["field"] == c.field)
        }
    }

    @Test func builderNullLiteralIsRejected() {
        #expect(throws: SextantError.self) { try (Attr("i") == nil).bind(to: Self.schema) }
        #expect(throws: SextantError.self) { try Attr("i").in([1, nil]).bind(to: Self.schema) }
        #expect(throws: SextantError.self) { try Attr("i").between(1, .intList([1])).bind(to: Self.schema) }
    }

    @Test func datasetSelectivities() throws {
        let dir = "/work/shared/data/pypi-50k"
        guard FileManager.default.fileExists(atPath: dir) else {
            print("skipping datasetSelectivities: \(dir) is absent")
            return
        }
        let schema = try Schema(parsing: "name:string,month:int,year:int,rank:int,major_version:int,summary_len:int,tags:[string]")
        var rows: [AttributeRow] = []
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/attributes.jsonl"))
        for line in data.split(separator: UInt8(ascii: "\n")) {
            let obj = try #require(try JSONValue(parsing: line).objectValue)
            var r = AttributeRow(nullsFor: schema.count)
            for m in obj.members {
                let i = try #require(schema.position(of: m.key))
                switch m.value {
                case .int(let x): r[i] = .int(x)
                case .string(let s): r[i] = .string(s)
                case .array(let a): r[i] = .stringList(a.compactMap(\.stringValue))
                default: break
                }
            }
            rows.append(r)
        }
        #expect(rows.count == 50_000)
        let text = try String(contentsOfFile: dir + "/filters.jsonl", encoding: .utf8)
        for line in text.split(separator: "\n").prefix(100) {
            let obj = try JSONValue(parsing: String(line))
            let f = try Filter(sql: try #require(obj["where"]?.stringValue)).bind(to: schema)
            let expected: Double = switch obj["selectivity"] {
            case .double(let d)?: d
            case .int(let i)?: Double(i)
            default: -1
            }
            let n = rows.reduce(0) { $0 + (f.matches($1) ? 1 : 0) }
            #expect(abs(Double(n) / 50_000 - expected) < 1e-9, "\(f.predicate)")
        }
    }
}

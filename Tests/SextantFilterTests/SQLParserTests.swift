import Foundation
import SextantCore
import SextantFilter
import Testing


@Suite struct SQLParserTests {
    @Test(arguments: [
        ("year = 2010", Filter.compare("year", .equal, .int(2010))),
        ("year == 2010", .compare("year", .equal, .int(2010))),
        ("year != 2010", .compare("year", .notEqual, .int(2010))),
        ("year <> 2010", .compare("year", .notEqual, .int(2010))),
        ("year < -5", .compare("year", .less, .int(-5))),
        ("year <= 2.5", .compare("year", .lessOrEqual, .double(2.5))),
        ("year > 1e3", .compare("year", .greater, .double(1000))),
        ("year >= -2.5E-3", .compare("year", .greaterOrEqual, .double(-0.0025))),
        ("name = 'it''s'", .compare("name", .equal, .string("it's"))),
        ("name = ''", .compare("name", .equal, .string(""))),
        ("name = 'héllo ✓'", .compare("name", .equal, .string("héllo ✓"))),
        ("flag = TRUE", .compare("flag", .equal, .bool(true))),
        ("flag != false", .compare("flag", .notEqual, .bool(false))),
        ("x = -9223372036854775808", .compare("x", .equal, .int(Int64.min))),
        ("x = 9223372036854775807", .compare("x", .equal, .int(Int64.max))),
        ("x = +7", .compare("x", .equal, .int(7))),
        ("month BETWEEN 202401 AND 202412", .between("month", .int(202401), .int(202412))),
        ("month NOT BETWEEN 1 AND 2.0", .not(.between("month", .int(1), .double(2)))),
        ("major_version IN (0, 1)", .in("major_version", [.int(0), .int(1)])),
        ("genre IN ('jazz')", .in("genre", [.string("jazz")])),
        ("genre in ()", .in("genre", [])),
        ("genre NOT IN ('a', 'b')", .notIn("genre", [.string("a"), .string("b")])),
        ("rank IS NULL", .isNull("rank")),
        ("rank is not null", .isNotNull("rank")),
        ("tags CONTAINS 'x'", .contains("tags", .string("x"))),
        ("tags contains 3", .contains("tags", .int(3))),
        ("\"select\" = 1", .compare("select", .equal, .int(1))),
        ("\"my \"\"odd\"\" field\" IS NULL", .isNull("my \"odd\" field")),
        ("_a1 = 1", .compare("_a1", .equal, .int(1))),
        ("TRUE", .matchAll),
        ("", .matchAll),
        ("   \n\t ", .matchAll),
        ("false", .matchNone),
        ("NOT a = 1", .not(.compare("a", .equal, .int(1)))),
        ("NOT NOT a = 1", .not(.not(.compare("a", .equal, .int(1))))),
        ("a = 1 AND b = 2 AND c = 3", .and([.compare("a", .equal, 1), .compare("b", .equal, 2), .compare("c", .equal, 3)])),
        ("a = 1 OR b = 2 AND c = 3", .or([.compare("a", .equal, 1), .and([.compare("b", .equal, 2), .compare("c", .equal, 3)])])),
        ("(a = 1 OR b = 2) AND c = 3", .and([.or([.compare("a", .equal, 1), .compare("b", .equal, 2)]), .compare("c", .equal, 3)])),
        ("NOT a = 1 AND b = 2", .and([.not(.compare("a", .equal, 1)), .compare("b", .equal, 2)])),
        ("NOT (a = 1 AND b = 2)", .not(.and([.compare("a", .equal, 1), .compare("b", .equal, 2)]))),
        ("a BETWEEN 1 AND 2 AND b = 3", .and([.between("a", 1, 2), .compare("b", .equal, 3)])),
        ("((a = 1))", .compare("a", .equal, 1)),
        ("a=1and b=2", .and([.compare("a", .equal, 1), .compare("b", .equal, 2)])),
        ("x<>'a'", .compare("x", .notEqual, "a")),
    ])
    func acceptsGrammar(_ sql: String, _ expected: Filter) throws {
        let p = try Filter(sql: sql)
        #expect(p == expected, "\(sql)")
        #expect(try Filter(sql: p.toSQL()) == p)
    }

    @Test func keywordsAreCaseInsensitive() throws {
        let a = try Filter(sql: "a between 1 and 2 or b not in (1) and not c is not null")
        let b = try Filter(sql: "a BETWEEN 1 AND 2 OR b NOT IN (1) AND NOT c IS NOT NULL")
        #expect(a == b)
    }

    @Test func datasetPredicatesParse() throws {
        let dir = "/work/shared/data/pypi-50k"
        guard FileManager.default.fileExists(atPath: dir) else {
            print("skipping datasetPredicatesParse: \(dir) is absent")
            return
        }
        var count = 0
        for file in ["filters.jsonl", "workload-batch.jsonl"] {
            let text = try String(contentsOfFile: dir + "/" + file, encoding: .utf8)
            for line in text.split(separator: "\n") {
                let obj = try JSONValue(parsing: String(line))
                let sql = try #require(obj["where"]?.stringValue)
                let p = try Filter(sql: sql)
                #expect(try Filter(sql: p.toSQL()) == p)
                #expect(try Filter(json: p.toJSON()) == p)
                let schema = try Schema(parsing: "name:string,month:int,year:int,rank:int,major_version:int,summary_len:int,tags:[string]")
                _ = try p.bind(to: schema)
                count += 1
            }
        }
        #expect(count == 500 + 5075)
    }

    struct BadInput: CustomStringConvertible, Sendable {
        var sql: String
        var column: Int
        var fragment: String  // part of the message
        var description: String { sql }
    }

    @Test(arguments: [
        BadInput(sql: "year >= ", column: 9, fragment: "expected a value after '>=' but found end of input"),
        BadInput(sql: "year >= 2010 AND genre = ", column: 26, fragment: "expected a value after '='"),
        BadInput(sql: "year", column: 5, fragment: "expected a comparison operator"),
        BadInput(sql: "year 2010", column: 6, fragment: "but found number 2010"),
        BadInput(sql: "= 3", column: 1, fragment: "expected a field name"),
        BadInput(sql: "a = 1 AND", column: 10, fragment: "expected a field name, NOT or '(' but found end of input"),
        BadInput(sql: "a = 1 b = 2", column: 7, fragment: "expected AND, OR or end of input but found identifier b"),
        BadInput(sql: "(a = 1", column: 7, fragment: "expected ')', AND or OR"),
        BadInput(sql: "a = 1)", column: 6, fragment: "found ')'"),
        BadInput(sql: "name = 'abc", column: 8, fragment: "expected a closing ' for the string"),
        BadInput(sql: "\"abc = 1", column: 1, fragment: "closing \""),
        BadInput(sql: "x = NULL", column: 5, fragment: "use 'x IS NULL'"),
        BadInput(sql: "x != NULL", column: 6, fragment: "use 'x IS NOT NULL'"),
        BadInput(sql: "x IN (1, NULL)", column: 10, fragment: "NULL is not allowed in an IN list"),
        BadInput(sql: "x = 99999999999999999999", column: 5, fragment: "outside the 64-bit range"),
        BadInput(sql: "x = -9223372036854775809", column: 5, fragment: "outside the 64-bit range"),
        BadInput(sql: "x = 1e999", column: 5, fragment: "within the range of a double"),
        BadInput(sql: "x = 1.", column: 7, fragment: "a digit after '.'"),
        BadInput(sql: "x = 1e", column: 7, fragment: "a digit in the exponent"),
        BadInput(sql: "x = .5", column: 5, fragment: "expected a digit"),
        BadInput(sql: "x = - 5", column: 6, fragment: "expected a digit"),
        BadInput(sql: "x BETWEEN 1 OR 2", column: 13, fragment: "expected AND after the lower bound of BETWEEN"),
        BadInput(sql: "x IN 1, 2", column: 6, fragment: "expected '(' after IN"),
        BadInput(sql: "x IN (1 2)", column: 9, fragment: "expected ',' or ')' in the IN list"),
        BadInput(sql: "x IN (1,)", column: 9, fragment: "expected a value after ','"),
        BadInput(sql: "x NOT LIKE 'a'", column: 7, fragment: "expected BETWEEN or IN after NOT"),
        BadInput(sql: "x IS 3", column: 6, fragment: "expected NULL or NOT NULL after IS"),
        BadInput(sql: "x IS NOT 3", column: 10, fragment: "expected NULL after IS NOT"),
        BadInput(sql: "x ! 3", column: 3, fragment: "expected '!='"),
        BadInput(sql: "x = 1 & y = 2", column: 7, fragment: "unexpected character '&'"),
        BadInput(sql: "é = 1", column: 1, fragment: "unexpected character 'é'"),
        BadInput(sql: "name = 'é' AND é = 1", column: 16, fragment: "unexpected character 'é'"),
        BadInput(sql: "\"\" = 1", column: 1, fragment: "non-empty identifier"),
        BadInput(sql: "in = 1", column: 1, fragment: "double-quote a field named in"),
        BadInput(sql: "x CONTAINS", column: 11, fragment: "expected a value after CONTAINS"),
        BadInput(sql: "x = y", column: 5, fragment: "expected a value after '=' but found identifier y"),
        BadInput(sql: "TRUE = 1", column: 6, fragment: "expected AND, OR or end of input"),
        BadInput(sql: "NOT", column: 4, fragment: "expected a field name, NOT or '('"),
        BadInput(sql: "()", column: 2, fragment: "expected a field name"),
    ])
    func errorPositions(_ bad: BadInput) {
        do {
            let p = try Filter(sql: bad.sql)
            Issue.record("\(bad.sql) parsed as \(p)")
        } catch {
            #expect(error.code == .syntax)
            #expect(error.context["position"] == String(bad.column), "\(bad.sql): \(error.message)")
            #expect(error.message.hasPrefix("at column \(bad.column): "), "\(error.message)")
            #expect(error.message.contains(bad.fragment), "\(bad.sql): \(error.message)")
            #expect(error.context["expected"] != nil)
        }
    }

    @Test func depthLimit() throws {
        let ok = String(repeating: "(", count: 100) + "a = 1" + String(repeating: ")", count: 100)
        #expect(try Filter(sql: ok) == .compare("a", .equal, 1))
        let deep = String(repeating: "(", count: 100_000) + "a = 1" + String(repeating: ")", count: 100_000)
        #expect(throws: SextantError.self) { try Filter(sql: deep) }
        let nots = String(repeating: "NOT ", count: 100_000) + "a = 1"
        #expect(throws: SextantError.self) { try Filter(sql: nots) }
        // Long flat chains are fine: they do not nest.
        let chain = (0..<5000).map { "a\($0) = \($0)" }.joined(separator: " OR ")
        guard case .or(let ps) = try Filter(sql: chain) else { Issue.record("not an OR"); return }
        #expect(ps.count == 5000)
    }

    @Test func canonicalSQL() throws {
        let p = Attr("year") >= 2010 && (Attr("genre") == "it's" || !Attr("tags").contains("x")) && Attr("null").isNull
        #expect(p.toSQL() == "year >= 2010 AND (genre = 'it''s' OR NOT tags CONTAINS 'x') AND \"null\" IS NULL")
        #expect(Filter.compare("x", .equal, .double(1)).toSQL() == "x = 1.0")
        #expect(Filter.compare("x", .less, .double(-1e-5)).toSQL() == "x < -1e-05")
        #expect(Filter.not(.between("x", 1, 2)).toSQL() == "x NOT BETWEEN 1 AND 2")
        #expect(Filter.not(.or([.isNull("a"), .isNull("b")])).toSQL() == "NOT (a IS NULL OR b IS NULL)")
        #expect(Filter.and([]).toSQL() == "TRUE")
        #expect(Filter.or([]).toSQL() == "FALSE")
        #expect(Filter.matchNone.toSQL() == "NOT TRUE")
        #expect(Filter.in("x", []).toSQL() == "x IN ()")
    }

    @Test func referencedFields() throws {
        let p = try Filter(sql: "a = 1 AND (b IS NULL OR NOT c CONTAINS 'x') AND a < 3 AND TRUE")
        #expect(p.referencedFields == ["a", "b", "c"])
        #expect(Filter.matchAll.referencedFields.isEmpty)
    }
}

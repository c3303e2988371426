import Sextant

/// Filter front ends: whatever parses must print and re-parse to itself (SQL → SQL, SQL → JSON,
/// JSON → JSON), rejected text must fail with `.syntax` and a position, and a predicate that binds
/// to the fixed schema below must evaluate without trapping, with `NOT` flipping true/false and
/// keeping unknown.
enum FilterParserFuzz {
    static let schema: Schema = try! Schema(parsing: "a:int,b:double,s:string,x:int,year:int,genre:string,flag:bool,tags:[string],ids:[int]")

    static let rows: [[AttributeValue]] = [
        Array(repeating: .null, count: 9),
        [.int(1), .double(2.5), .string("jazz"), .int(-5), .int(2010), .string("a'b"), .bool(true), .stringList(["x", "live"]), .intList([1, 2])],
        [.int(0), .double(-0.0), .string(""), .int(Int64.min), .int(Int64.max), .string("\u{e9}"), .bool(false), .stringList([]), .intList([])],
        [.int(3), .null, .string("z"), .null, .int(1999), .null, .null, .stringList(["jazz"]), .null],
    ]

    static func run(_ data: [UInt8]) throws {
        let text = String(decoding: data, as: UTF8.self)
        try checkSQL(text)
        try checkJSON(bytes: data, text: text)
    }

    static func checkSQL(_ text: String) throws {
        let p: Filter
        do {
            p = try Filter(sql: text)
        } catch {
            try require(error.code == .syntax, "Filter(sql:) threw \(error.code), not syntax, for \(text.quoted)")
            try require(Int(error.context["position"] ?? "") != nil, "syntax error without a position for \(text.quoted): \(error)")
            return
        }
        let sql = p.toSQL()
        let again: Filter
        do { again = try Filter(sql: sql) } catch {
            throw FuzzFailure(message: "toSQL() of a parsed predicate does not re-parse: input \(text.quoted) printed \(sql.quoted): \(error)")
        }
        try require(again == p, "SQL round trip changed the predicate: input \(text.quoted) printed \(sql.quoted), re-parsed as \(again.toSQL().quoted)")
        try require(again.toSQL() == sql, "toSQL() is not stable: \(sql.quoted) then \(again.toSQL().quoted)")
        // The JSON form of every SQL-parsed predicate (scalar literals only) reads back too.
        let json = p.toJSON()
        do {
            try require(try Filter(json: json) == p, "JSON form of \(sql.quoted) reads back differently")
            try require(try Filter(jsonText: json.jsonText) == p, "JSON text \(json.jsonText.quoted) of \(sql.quoted) reads back differently")
        } catch let e as SextantError {
            throw FuzzFailure(message: "JSON form \(json.jsonText.quoted) of \(sql.quoted) is rejected: \(e)")
        }
        try evaluate(p)
    }

    static func checkJSON(bytes: [UInt8], text: String) throws {
        // Raw bytes (the parser validates UTF-8 itself) and the lossily decoded String.
        for input in [bytes, Array(text.utf8)] {
            let v: JSONValue
            do {
                v = try JSONValue(parsing: input)
            } catch {
                try require(error.code == .syntax, "JSONValue(parsing:) threw \(error.code), not syntax")
                try require(Int(error.context["offset"] ?? "") != nil, "JSON syntax error without an offset: \(error)")
                continue
            }
            let printed = v.jsonText
            do {
                try require(try JSONValue(parsing: printed) == v, "JSON round trip changed the value: \(printed.quoted)")
            } catch let e as SextantError {
                throw FuzzFailure(message: "jsonText \(printed.quoted) does not re-parse: \(e)")
            }
            let p: Filter
            do {
                p = try Filter(json: v)
            } catch {
                try require(error.code == .syntax, "Filter(json:) threw \(error.code), not syntax")
                try require(error.context["path"] != nil, "Filter(json:) error without a path: \(error)")
                continue
            }
            do {
                try require(try Filter(json: p.toJSON()) == p, "Filter JSON round trip changed \(printed.quoted)")
            } catch let e as SextantError {
                throw FuzzFailure(message: "toJSON() of \(printed.quoted) is rejected: \(e)")
            }
            // JSON predicates need not survive SQL unchanged (`{"or": []}` prints as FALSE, which
            // reads back as NOT TRUE; a one-operand AND loses its AND), but the text must not trap
            // and, when it parses, is held to the SQL invariants.
            let sql = p.toSQL()
            if (try? Filter(sql: sql)) != nil { try checkSQL(sql) }
            try evaluate(p)
        }
    }

    static func evaluate(_ p: Filter) throws {
        let bound: BoundFilter
        do {
            bound = try p.bind(to: schema)
        } catch {
            try require(error.code == .unknownAttribute || error.code == .typeMismatch,
                        "bind(to:) threw \(error.code) for \(p.toSQL().quoted)")
            return
        }
        let negated = try? Filter.not(p).bind(to: schema)
        try require(negated != nil, "NOT of a predicate that binds does not bind: \(p.toSQL().quoted)")
        for values in rows {
            let r = bound.evaluate(values: values)
            let n = negated!.evaluate(values: values)
            try require(n == r.map { !$0 }, "NOT (\(p.toSQL())) evaluates to \(String(describing: n)) where the predicate is \(String(describing: r))")
            try require(bound.matches(values: values) == (r == true), "matches disagrees with evaluate")
            if bound.matchesEverything { try require(r == true, "matchesEverything but a row evaluates to \(String(describing: r))") }
        }
    }
}

extension String {
    /// A debug-quoted excerpt for failure messages (fuzz inputs can be long).
    var quoted: String {
        let q = debugDescription
        return q.count <= 240 ? q : String(q.prefix(120)) + " … " + String(q.suffix(100)) + " (\(count) characters)"
    }
}

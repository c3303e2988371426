import SextantCore

extension Filter {
    /// Reads the JSON form of a predicate:
    ///
    /// | JSON | predicate |
    /// |---|---|
    /// | `true` | match all (the empty filter) |
    /// | `false` | match none (`NOT TRUE`) |
    /// | `{"and": [p, ...]}` | all of the operands (an empty list is true) |
    /// | `{"or": [p, ...]}` | any of the operands (an empty list is false) |
    /// | `{"not": p}` | negation |
    /// | `{"field": "year", "op": ">=", "value": 2010}` | comparison; `op` is one of `=` `!=` `<` `<=` `>` `>=` (`<>` is read as `!=`) |
    /// | `{"field": "year", "op": "between", "value": [lo, hi]}` | inclusive range |
    /// | `{"field": "genre", "op": "in", "value": ["jazz", "blues"]}` | membership (`not_in` negates it) |
    /// | `{"field": "tags", "op": "contains", "value": "live"}` | list contains element |
    /// | `{"field": "rank", "op": "is_null"}` | null test (`is_not_null` negates it); no `value` |
    ///
    /// Values are JSON strings, numbers (integers become `int`, others `double`) and booleans;
    /// `null` is rejected (use `is_null`). Objects must have exactly the keys shown.
    /// Errors are ``SextantError/Code/syntax`` with context `path` (e.g. `$.and[1].op`) and `expected`.
    public init(json: JSONValue) throws(SextantError) {
        self = try Filter.fromJSON(json, path: "$", depth: 0)
    }

    /// Parses JSON text, then reads it as with ``init(json:)``. JSON syntax errors carry `offset`.
    public init(jsonText: String) throws(SextantError) {
        try self.init(json: try JSONValue(parsing: jsonText))
    }

    /// The JSON form (see ``init(json:)``); `Filter(json: p.toJSON()) == p` for every predicate
    /// whose literals are scalars.
    public func toJSON() -> JSONValue {
        switch self {
        case .matchAll: return .bool(true)
        case .and(let ps): return ["and": .array(ps.map { $0.toJSON() })]
        case .or(let ps): return ["or": .array(ps.map { $0.toJSON() })]
        case .not(let p): return ["not": p.toJSON()]
        case .compare(let f, let op, let v): return Filter.leaf(f, op.rawValue, Filter.jsonLiteral(v))
        case .between(let f, let lo, let hi):
            return Filter.leaf(f, "between", .array([Filter.jsonLiteral(lo), Filter.jsonLiteral(hi)]))
        case .in(let f, let vs): return Filter.leaf(f, "in", .array(vs.map(Filter.jsonLiteral)))
        case .notIn(let f, let vs): return Filter.leaf(f, "not_in", .array(vs.map(Filter.jsonLiteral)))
        case .contains(let f, let v): return Filter.leaf(f, "contains", Filter.jsonLiteral(v))
        case .isNull(let f): return ["field": .string(f), "op": "is_null"]
        case .isNotNull(let f): return ["field": .string(f), "op": "is_not_null"]
        }
    }

    private static func leaf(_ f: String, _ op: String, _ v: JSONValue) -> JSONValue {
        ["field": .string(f), "op": .string(op), "value": v]
    }

    private static func jsonLiteral(_ v: AttributeValue) -> JSONValue {
        switch v {
        case .null: .null
        case .string(let s): .string(s)
        case .int(let i): .int(i)
        case .double(let d): .double(d)
        case .bool(let b): .bool(b)
        case .stringList(let l): .array(l.map { .string($0) })
        case .intList(let l): .array(l.map { .int($0) })
        }
    }

    private static func fail(_ path: String, _ expected: String, found: JSONValue?) -> SextantError {
        let what: String
        switch found {
        case nil: what = "nothing"
        case .some(let v):
            let text = v.jsonText
            what = text.count > 40 ? String(text.prefix(40)) + "..." : text
        }
        return SextantError(.syntax, "at \(path): expected \(expected) but found \(what)",
                            context: ["path": path, "expected": expected])
    }

    private static func fromJSON(_ j: JSONValue, path: String, depth: Int) throws(SextantError) -> Filter {
        guard depth <= Filter.maxDepth else {
            throw SextantError(.syntax, "at \(path): predicate nested deeper than \(Filter.maxDepth) levels",
                               context: ["path": path, "expected": "at most \(Filter.maxDepth) nested levels"])
        }
        let expectedPredicate = "a predicate: true, false, or an object with \"and\", \"or\", \"not\" or \"field\""
        switch j {
        case .bool(let b): return b ? .matchAll : .matchNone
        case .object(let o):
            if o.count == 1, let m = o.members.first, m.key == "and" || m.key == "or" || m.key == "not" {
                let sub = path + "." + m.key
                if m.key == "not" { return .not(try fromJSON(m.value, path: sub, depth: depth + 1)) }
                guard case .array(let items) = m.value else { throw fail(sub, "an array of predicates", found: m.value) }
                var ps: [Filter] = []
                ps.reserveCapacity(items.count)
                for (i, item) in items.enumerated() {
                    ps.append(try fromJSON(item, path: "\(sub)[\(i)]", depth: depth + 1))
                }
                return m.key == "and" ? .and(ps) : .or(ps)
            }
            guard o["field"] != nil else { throw fail(path, expectedPredicate, found: j) }
            return try leafFromJSON(o, path: path)
        default:
            throw fail(path, expectedPredicate, found: j)
        }
    }

    private static func leafFromJSON(_ o: JSONObject, path: String) throws(SextantError) -> Filter {
        for m in o.members where m.key != "field" && m.key != "op" && m.key != "value" {
            throw fail(path + "." + m.key, "only the keys \"field\", \"op\" and \"value\"", found: m.value)
        }
        guard case .string(let field)? = o["field"], !field.isEmpty else {
            throw fail(path + ".field", "a non-empty field name string", found: o["field"])
        }
        guard case .string(let op)? = o["op"] else {
            throw fail(path + ".op", "an operator string (= != < <= > >= in not_in between contains is_null is_not_null)", found: o["op"])
        }
        let valuePath = path + ".value"
        let value = o["value"]
        func needValue() throws(SextantError) -> JSONValue {
            guard let value else { throw fail(valuePath, "a value for op \"\(op)\"", found: nil) }
            return value
        }
        func list(_ v: JSONValue) throws(SextantError) -> [JSONValue] {
            guard case .array(let a) = v else { throw fail(valuePath, "an array of values for op \"\(op)\"", found: v) }
            return a
        }
        switch op {
        case "=", "==", "!=", "<>", "<", "<=", ">", ">=":
            let cmp: ComparisonOperator = switch op {
            case "=", "==": .equal
            case "!=", "<>": .notEqual
            case "<": .less
            case "<=": .lessOrEqual
            case ">": .greater
            default: .greaterOrEqual
            }
            return .compare(field, cmp, try scalar(try needValue(), path: valuePath, op: op))
        case "between":
            let a = try list(try needValue())
            guard a.count == 2 else { throw fail(valuePath, "[low, high] for op \"between\"", found: .array(a)) }
            return .between(field, try scalar(a[0], path: valuePath + "[0]", op: op),
                            try scalar(a[1], path: valuePath + "[1]", op: op))
        case "in", "not_in":
            let a = try list(try needValue())
            var vs: [AttributeValue] = []
            vs.reserveCapacity(a.count)
            for (i, x) in a.enumerated() { vs.append(try scalar(x, path: "\(valuePath)[\(i)]", op: op)) }
            return op == "in" ? .in(field, vs) : .notIn(field, vs)
        case "contains":
            return .contains(field, try scalar(try needValue(), path: valuePath, op: op))
        case "is_null", "is_not_null":
            if let value { throw fail(valuePath, "no value for op \"\(op)\"", found: value) }
            return op == "is_null" ? .isNull(field) : .isNotNull(field)
        default:
            throw fail(path + ".op", "one of = != < <= > >= in not_in between contains is_null is_not_null", found: .string(op))
        }
    }

    private static func scalar(_ v: JSONValue, path: String, op: String) throws(SextantError) -> AttributeValue {
        switch v {
        case .string(let s): return .string(s)
        case .int(let i): return .int(i)
        case .double(let d): return .double(d)
        // Above Int64.max: compared as a double, as such a literal was before it parsed exactly.
        case .uint(let u): return .double(Double(u))
        case .bool(let b): return .bool(b)
        case .null:
            throw fail(path, "a non-null value (use op \"is_null\" or \"is_not_null\" to test for null)", found: v)
        case .array, .object:
            throw fail(path, "a string, number or boolean", found: v)
        }
    }
}

import SextantCore

/// Conversions between attribute values and JSON (JSONL import, `get --json`, dump/load).
extension AttributeValue {
    /// The JSON form: strings, numbers, booleans, arrays, null.
    public var jsonValue: JSONValue {
        switch self {
        case .null: .null
        case .string(let s): .string(s)
        case .int(let i): .int(i)
        case .double(let d): .double(d)
        case .bool(let b): .bool(b)
        case .stringList(let l): .array(l.map { .string($0) })
        case .intList(let l): .array(l.map { .int($0) })
        }
    }
}

extension Collection {
    /// Reads one JSON object of attributes (a JSONL line) against the schema.
    ///
    /// Keys must be declared fields (``SextantError/Code/unknownAttribute``), values must have
    /// the field's type (``SextantError/Code/typeMismatch``; an int is accepted for a double field,
    /// an integral number for an int field), `null` or a missing key is null.
    public func attributes(fromJSON json: JSONValue, row: Int? = nil) throws(SextantError) -> [String: AttributeValue] {
        var ctx: [String: String] = ["collection": name]
        if let row { ctx["row"] = String(row) }
        guard case .object(let obj) = json else {
            throw SextantError(.typeMismatch, "attributes must be a JSON object", context: ctx)
        }
        var out: [String: AttributeValue] = [:]
        out.reserveCapacity(obj.count)
        for (key, value) in obj.members {
            guard let field = schema.field(named: key) else {
                ctx["field"] = key
                throw SextantError(.unknownAttribute, "unknown attribute '\(key)'", context: ctx)
            }
            out[key] = try Collection.attributeValue(value, for: field, context: ctx)
        }
        return out
    }

    static func attributeValue(_ v: JSONValue, for f: Field, context: [String: String]) throws(SextantError) -> AttributeValue {
        var ctx = context
        ctx["field"] = f.name
        func mismatch() -> SextantError {
            ctx["expected"] = f.type.schemaSpelling
            return SextantError(.typeMismatch, "attribute '\(f.name)' is \(f.type.schemaSpelling); got \(v.jsonText)", context: ctx)
        }
        switch (f.type, v) {
        case (_, .null): return .null
        case (.string, .string(let s)): return .string(s)
        case (.int, .int(let i)): return .int(i)
        case (.int, .double(let d)):
            guard let i = Int64(exactly: d) else { throw mismatch() }
            return .int(i)
        case (.double, .double(let d)): return .double(d)
        case (.double, .int(let i)): return .double(Double(i))
        case (.bool, .bool(let b)): return .bool(b)
        case (.stringList, .array(let a)):
            var l: [String] = []
            l.reserveCapacity(a.count)
            for e in a { guard case .string(let s) = e else { throw mismatch() }; l.append(s) }
            return .stringList(l)
        case (.intList, .array(let a)):
            var l: [Int64] = []
            l.reserveCapacity(a.count)
            for e in a {
                switch e {
                case .int(let i): l.append(i)
                case .double(let d): guard let i = Int64(exactly: d) else { throw mismatch() }; l.append(i)
                default: throw mismatch()
                }
            }
            return .intList(l)
        default: throw mismatch()
        }
    }

    /// A stored record as a JSON object `{"id": …, "vector": […], "attributes": {…}}`.
    ///
    /// Vector components are written as the shortest decimal that reads back as the same
    /// Float32 through a Float64 parse, so dump → load is exact.
    public static func json(_ r: Record, schema: Schema) -> JSONValue {
        var attrs: [(key: String, value: JSONValue)] = []
        for f in schema.fields { if let v = r.attributes[f.name] { attrs.append((f.name, v.jsonValue)) } }
        return .object(JSONObject([
            ("id", r.id <= UInt64(Int64.max) ? .int(Int64(r.id)) : .double(Double(r.id))),
            ("vector", .array(r.vector.map { .double(Double($0)) })),
            ("attributes", .object(JSONObject(attrs))),
        ]))
    }
}

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

extension VectorCollection {
    /// Reads one JSON object of attributes (a JSONL line) against the schema.
    ///
    /// Keys must be declared fields (`SextantError.Code.unknownAttribute`), values must have
    /// the field's type (`SextantError.Code.typeMismatch`; an int is accepted for a double field,
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
            out[key] = try VectorCollection.attributeValue(value, for: field, context: ctx)
        }
        return out
    }

    /// JSON → attribute value for field `f`: scalars map directly and then take the same
    /// coercions as the Swift API (``coerce(_:to:context:)``); arrays follow the field's list type.
    static func attributeValue(_ v: JSONValue, for f: Field, context: [String: String]) throws(SextantError) -> AttributeValue {
        let scalar: AttributeValue
        switch v {
        case .null: scalar = .null
        case .string(let s): scalar = .string(s)
        case .int(let i): scalar = .int(i)
        case .double(let d): scalar = .double(d)
        // Too large for an int field; a double field takes it rounded, as any JSON number.
        case .uint(let u): scalar = .double(Double(u))
        case .bool(let b): scalar = .bool(b)
        case .array(let a):
            var strings: [String] = [], ints: [Int64] = []
            for e in a {
                switch (f.type, e) {
                case (.stringList, .string(let s)): strings.append(s)
                case (.intList, .int(let i)): ints.append(i)
                case (.intList, .double(let d)) where Int64(exactly: d) != nil: ints.append(Int64(exactly: d)!)
                default: throw VectorCollection.mismatch(f, got: v.jsonText, context: context)
                }
            }
            scalar = f.type == .intList ? .intList(ints) : .stringList(strings)
        case .object: throw VectorCollection.mismatch(f, got: v.jsonText, context: context)
        }
        return try coerce(scalar, to: f, context: context)
    }

    /// A stored record as a JSON object `{"id": …, "vector": […], "attributes": {…}}`.
    ///
    /// Vector components are written as the shortest decimal that reads back as the same
    /// Float32 through a Float64 parse, so dump → load is exact.
    public static func json(_ r: Record, schema: Schema) -> JSONValue {
        var attrs: [(key: String, value: JSONValue)] = []
        for f in schema.fields { if let v = r.attributes[f.name] { attrs.append((f.name, v.jsonValue)) } }
        return .object(JSONObject([
            ("id", .unsigned(r.id)),
            ("vector", .array(r.vector.map { .double(Double($0)) })),
            ("attributes", .object(JSONObject(attrs))),
        ]))
    }
}

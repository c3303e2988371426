import SextantCore
import SextantKernels
import SextantStorage

// Dumps of multi-vector collections: the header carries a "multi_vector" object with the
// encoding's parameters, and each row line carries "tokens" (an array of token arrays) instead
// of "vector" (the encoding is derived from the tokens on load). Dumps of single-vector
// collections are unchanged.
extension VectorCollection {
    /// The header members of a multi-vector collection (none for single vectors).
    var multiVectorHeaderMembers: [(key: String, value: JSONValue)] {
        guard let mv = info.multiVector else { return [] }
        let p = mv.fde
        var members: [(key: String, value: JSONValue)] = [
            ("token_dimension", .int(Int64(p.tokenDimension))), ("repetitions", .int(Int64(p.repetitions))),
            ("simhash_bits", .int(Int64(p.simhashBits))), ("projection_dimension", .int(Int64(p.projectionDimension))),
        ]
        if let f = p.finalDimension { members.append(("final_dimension", .int(Int64(f)))) }
        members += [("seed", .string(String(p.seed))), ("token_storage", .string(mv.tokenStorage.rawValue)),
                    ("encoder_version", .int(Int64(mv.encoderVersion)))]
        return [("multi_vector", .object(JSONObject(members)))]
    }

    /// A multi-vector row's dump line: id, tokens, attributes.
    func multiVectorDumpLine(_ txn: Transaction, _ r: Record) throws -> JSONValue {
        let mv = try requireMultiVector()
        let t = try tokensDB
        var tokens: [Float] = []
        let n = try Keys.withExternalKey(cid, r.id) { k in
            try txn.withValue(t, key: k) { v in try TokenRecord.decode(v, dimension: mv.tokenDimension, storage: mv.tokenStorage, into: &tokens) }
        }
        guard let n else {
            throw SextantError(.corrupted, "row \(r.id) has no token record", context: ["collection": name, "id": String(r.id)])
        }
        let d = mv.tokenDimension
        var attrs: [(key: String, value: JSONValue)] = []
        for f in schema.fields { if let v = r.attributes[f.name] { attrs.append((f.name, v.jsonValue)) } }
        return .object(JSONObject([
            ("id", r.id <= UInt64(Int64.max) ? .int(Int64(r.id)) : .double(Double(r.id))),
            ("tokens", .array((0..<n).map { i in .array(tokens[(i * d)..<((i + 1) * d)].map { .double(Double($0)) }) })),
            ("attributes", .object(JSONObject(attrs))),
        ]))
    }

    /// A multi-vector row from its dump line.
    func document(fromDumpLine json: JSONValue, line: Int) throws -> MultiVectorRow {
        let ctx = ["line": String(line)]
        guard case .object = json, let idv = json["id"], case .array(let sets)? = json["tokens"] else {
            throw SextantError(.malformedFile, "a multi-vector dump row needs \"id\" and \"tokens\"", context: ctx)
        }
        let id: UInt64
        switch idv {
        case .int(let i) where i >= 0: id = UInt64(i)
        case .double(let d) where d >= 0 && d < 18446744073709551616.0 && d == d.rounded(): id = UInt64(d)
        default: throw SextantError(.malformedFile, "row id must be an unsigned integer", context: ctx)
        }
        var tokens: [Float] = []
        for s in sets {
            guard case .array(let comps) = s else { throw SextantError(.malformedFile, "each token must be an array of numbers", context: ctx) }
            for c in comps {
                switch c {
                case .double(let d): tokens.append(Float(d))
                case .int(let i): tokens.append(Float(i))
                default: throw SextantError(.malformedFile, "token components must be numbers", context: ctx)
                }
            }
        }
        var attrs: [String: AttributeValue] = [:]
        if let a = json["attributes"] {
            do { attrs = try attributes(fromJSON: a) } catch { throw error.adding(ctx) }
        }
        return MultiVectorRow(id: id, tokens: tokens, attributes: attrs)
    }
}

extension Store {
    /// The collection a dump header describes, when it is multi-vector (nil otherwise).
    func createMultiVectorFromDumpHeader(_ h: JSONValue, name: String, schema: Schema, recipe: String, line: Int) throws -> VectorCollection? {
        guard let mvj = h["multi_vector"] else { return nil }
        let ctx = ["line": String(line), "field": "multi_vector"]
        func int(_ k: String) throws -> Int {
            guard case .int(let v)? = mvj[k] else { throw SextantError(.malformedFile, "dump header's multi_vector lacks '\(k)'", context: ctx) }
            return Int(v)
        }
        guard case .string(let seedText)? = mvj["seed"], let seed = UInt64(seedText),
              case .string(let storageText)? = mvj["token_storage"], let storage = TokenStorage(rawValue: storageText) else {
            throw SextantError(.malformedFile, "dump header's multi_vector needs a seed and a token storage", context: ctx)
        }
        let version = try int("encoder_version")
        guard version == FDEParameters.encoderVersion else {
            throw SextantError.formatVersion(found: version, supported: FDEParameters.encoderVersion,
                                             "the dump's encodings are of FDE encoder version \(version); this build has \(FDEParameters.encoderVersion)")
        }
        var final: Int? = nil
        if mvj["final_dimension"] != nil { final = try int("final_dimension") }
        let p = FDEParameters(tokenDimension: try int("token_dimension"), repetitions: try int("repetitions"), simhashBits: try int("simhash_bits"),
                              projectionDimension: try int("projection_dimension"), finalDimension: final, seed: seed)
        return try createMultiVectorCollection(name, fde: p, tokenStorage: storage, schema: schema, indexRecipe: recipe)
    }
}

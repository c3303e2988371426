import SextantCore
import SextantStorage

/// Dump and load: a collection as JSONL, the portable, version-independent form.
///
/// ```
/// line 1: {"sextant_dump":1,"format":F,"collection":NAME,"dimension":D,"metric":M,
///          "schema":SCHEMA,"index":RECIPE,"rows":N}
/// line 2…: {"id":ID,"vector":[…],"attributes":{…}}     ascending id, null attributes omitted
/// ```
/// The output is deterministic: the same contents always give the same bytes.
extension VectorCollection {
    /// The dump's first line.
    public func dumpHeader(rows: Int) -> JSONValue {
        .object(JSONObject([
            ("sextant_dump", .int(1)),
            ("format", .int(Int64(Store.formatVersion))),
            ("collection", .string(name)),
            ("dimension", .int(Int64(dimension))),
            ("metric", .string(metric.rawValue)),
            ("schema", .string(schema.spelling)),
            ("index", .string(info.indexRecipe)),
            ("rows", .int(Int64(rows))),
        ] + multiVectorHeaderMembers))
    }

    /// Writes the dump, one line (with its trailing newline) per call of `emit`, from one
    /// consistent snapshot.
    ///
    /// - Throws: `notFound` when the collection was dropped, `corrupted`, storage errors
    ///   (`mapFull`, `io`, `storage`, ...), and whatever `emit` throws.
    public func dump(_ emit: ([UInt8]) throws -> Void) throws {
        try store.env.read { txn in
            let st = try state(txn)
            var line: [UInt8] = []
            dumpHeader(rows: Int(st.count)).write(into: &line)
            line.append(10)
            try emit(line)
            try txn.scan(db.ids, prefix: Keys.prefix(cid)) { _, v in
                let slot = try VectorCollection.slot(v)
                let r = try record(txn, slot: slot)
                line.removeAll(keepingCapacity: true)
                (info.multiVector != nil ? try multiVectorDumpLine(txn, r) : VectorCollection.json(r, schema: schema)).write(into: &line)
                line.append(10)
                try emit(line)
                return true
            }
        }
    }
}

extension Store {
    /// Loads a dump produced by ``VectorCollection/dump(_:)``: creates the collection (named as in the
    /// header unless `name` is given) and inserts every row. Lines come from `lines`, which calls
    /// its argument once per line with the line's bytes and 0-based number.
    ///
    /// All or nothing: on any error the new collection is dropped again.
    @discardableResult
    public func load(
        as name: String? = nil, batchSize: Int = 10_000,
        lines: (_ body: (UnsafeRawBufferPointer, Int) throws -> Void) throws -> Void
    ) throws -> VectorCollection {
        var collection: VectorCollection?
        var expected = 0
        var seen = 0
        var batch: [Row] = []
        var documents: [MultiVectorRow] = []
        do {
            try lines { bytes, number in
                if bytes.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { return }
                let json = try Store.parseLine(bytes, line: number + 1)
                guard let coll = collection else {
                    let (c, n) = try createFromDumpHeader(json, name: name, line: number + 1)
                    collection = c
                    expected = n
                    return
                }
                if coll.info.multiVector != nil {
                    documents.append(try coll.document(fromDumpLine: json, line: number + 1))
                } else {
                    batch.append(try coll.row(fromDumpLine: json, line: number + 1))
                }
                seen += 1
                if batch.count >= batchSize {
                    try coll.upsert(batch)
                    batch.removeAll(keepingCapacity: true)
                }
                if documents.count >= batchSize {
                    try coll.upsert(documents: documents)
                    documents.removeAll(keepingCapacity: true)
                }
            }
            guard let coll = collection else {
                throw SextantError(.malformedFile, "the dump is empty (no header line)")
            }
            if !batch.isEmpty { try coll.upsert(batch) }
            if !documents.isEmpty { try coll.upsert(documents: documents) }
            guard seen == expected else {
                throw SextantError(.malformedFile, "the dump header announces \(expected) rows but \(seen) follow", context: ["expected": String(expected), "got": String(seen)])
            }
            return coll
        } catch {
            if let c = collection { try? dropCollection(c.name) }
            throw error
        }
    }

    static func parseLine(_ bytes: UnsafeRawBufferPointer, line: Int) throws(SextantError) -> JSONValue {
        do { return try JSONValue(parsing: bytes) } catch { throw error.adding(["line": String(line)]) }
    }

    private func createFromDumpHeader(_ h: JSONValue, name: String?, line: Int) throws -> (VectorCollection, Int) {
        func field(_ k: String) throws(SextantError) -> JSONValue {
            guard let v = h[k] else {
                throw SextantError(.malformedFile, "dump header lacks '\(k)'", context: ["line": String(line), "field": k])
            }
            return v
        }
        guard case .int(let magic) = try field("sextant_dump"), magic == 1 else {
            throw SextantError(.malformedFile, "not a Sextant dump (first line must carry \"sextant_dump\":1)", context: ["line": String(line)])
        }
        guard case .int(let format) = try field("format"), format >= 1 else {
            throw SextantError(.malformedFile, "dump header has no valid format", context: ["line": String(line)])
        }
        if format > Int64(Store.formatVersion) {
            throw SextantError.formatVersion(found: Int(format), supported: Store.formatVersion, "the dump was written by format \(format)")
        }
        guard case .string(let cname) = try field("collection"), case .int(let dim) = try field("dimension"),
              case .string(let metricText) = try field("metric"), case .string(let schemaText) = try field("schema"),
              case .string(let recipe) = try field("index"), case .int(let rows) = try field("rows"), rows >= 0 else {
            throw SextantError(.malformedFile, "dump header fields have the wrong types", context: ["line": String(line)])
        }
        if let c = try createMultiVectorFromDumpHeader(h, name: name ?? cname, schema: try Schema(parsing: schemaText), recipe: recipe, line: line) {
            return (c, Int(rows))
        }
        let c = try createCollection(name ?? cname, dimension: Int(dim), metric: try Metric(parsing: metricText),
                                     schema: try Schema(parsing: schemaText), indexRecipe: recipe)
        return (c, Int(rows))
    }
}

extension VectorCollection {
    func row(fromDumpLine json: JSONValue, line: Int) throws -> Row {
        let ctx = ["line": String(line)]
        guard case .object = json, let idv = json["id"], let vv = json["vector"], case .array(let comps) = vv else {
            throw SextantError(.malformedFile, "a dump row needs \"id\" and \"vector\"", context: ctx)
        }
        // Exact integers only: a double (e.g. 9.223372036854776e+18) names no single id.
        guard let id = idv.unsignedValue else {
            throw SextantError(.malformedFile, "row id must be an unsigned integer (0 … 2^64 − 1, no fraction or exponent), got \(idv.jsonText)", context: ctx)
        }
        var vector: [Float] = []
        vector.reserveCapacity(comps.count)
        for c in comps {
            switch c {
            case .double(let d): vector.append(Float(d))
            case .int(let i): vector.append(Float(i))
            default: throw SextantError(.malformedFile, "vector components must be numbers", context: ctx)
            }
        }
        var attrs: [String: AttributeValue] = [:]
        if let a = json["attributes"] {
            do { attrs = try attributes(fromJSON: a) } catch { throw error.adding(ctx) }
        }
        return Row(id: id, vector: vector, attributes: attrs)
    }
}

import Foundation
import Sextant

/// Short operation sequences on a real store (one scratch directory per execution), checked
/// step by step against ``ReferenceModel``.
///
/// The input decodes to: a collection (dimension 4–8, a random metric, 2–3 fields of random
/// types, some non-nullable), then up to 48 operations — batch upserts (ids 0–31, components
/// −4…4 so distances are exact for l2 and ip), batches made invalid in one row (wrong dimension,
/// NaN, unknown attribute, wrong type, a null for a non-nullable field, a zero vector for
/// cosine), deletes, gets, counts, exact filtered searches (k 1–5, predicates from
/// ``FilterGenerator``) and close/reopen. Invariants: valid operations succeed and agree with
/// the model (search ids in (distance, id) order; cosine within 1e-5, as the engine scores in
/// Float), invalid batches throw the expected code naming the first bad row and leave the store
/// unchanged, and `check()` finds the store consistent at the end.
enum OperationsFuzz {
    static let maxOperations = 48
    static let idRange: UInt64 = 32

    struct Setup {
        var dimension: Int
        var metric: Metric
        var schema: Schema
        /// Literal pools by field name, as ``FilterGenerator`` wants them (list fields: elements).
        var filterValues: [String: [AttributeValue]]
    }

    static let strings = ["a", "b", "c", ""]

    static func pool(_ t: AttributeType) -> [AttributeValue] {
        switch t {
        case .string: strings.map { .string($0) }
        case .int: [.int(-1), .int(0), .int(1), .int(2)]
        case .double: [.double(-0.5), .double(0), .double(1.5), .double(2)]
        case .bool: [.bool(false), .bool(true)]
        case .stringList: [.stringList([]), .stringList(["a"]), .stringList(["a", "b"]), .stringList(["c"])]
        case .intList: [.intList([]), .intList([0]), .intList([1, 2]), .intList([2])]
        }
    }

    static func elementPool(_ t: AttributeType) -> [AttributeValue] {
        switch t {
        case .stringList: [.string("a"), .string("b"), .string("c")]
        case .intList: [.int(0), .int(1), .int(2)]
        case .double: pool(.double) + [.int(1), .int(2)]
        case .int: pool(.int) + [.double(1.5)]
        default: pool(t)
        }
    }

    /// A value of the wrong type for `t` (one the engine does not coerce).
    static func wrongValue(_ t: AttributeType) -> AttributeValue {
        switch t {
        case .string: .int(1)
        case .int, .double: .string("x")
        case .bool: .int(1)
        case .stringList, .intList: .bool(true)
        }
    }

    static func setup(_ input: inout FuzzBytes) throws -> Setup {
        let dimension = 4 + input.below(5)
        let metric = Metric.allCases[input.below(3)]
        let fieldCount = 2 + input.below(2)
        var fields: [Field] = []
        for i in 0..<fieldCount {
            let b = input.byte()
            fields.append(Field("f\(i)", AttributeType.allCases[Int(b & 7) % 6], nullable: b >> 3 & 3 != 0, indexed: b & 0x20 == 0))
        }
        let schema = try Schema(fields)
        var values: [String: [AttributeValue]] = [:]
        for f in fields { values[f.name] = elementPool(f.type) }
        return Setup(dimension: dimension, metric: metric, schema: schema, filterValues: values)
    }

    /// A generated row and what the engine must say about it.
    struct Candidate {
        var row: Row
        /// The codes the engine may throw for this row; empty when valid.
        var errors: Set<String>
        /// The row as the model stores it (coerced, nulls dropped).
        var modelAttributes: [String: AttributeValue]
    }

    static func vector(_ input: inout FuzzBytes, _ d: Int) -> [Float] {
        (0..<d).map { _ in Float(Int(input.byte() % 9) - 4) }
    }

    static func candidate(_ input: inout FuzzBytes, _ s: Setup) -> Candidate {
        let defect = input.below(16)
        let id = UInt64(input.below(Int(idRange)))
        var v = vector(&input, s.dimension)
        var attrs: [String: AttributeValue] = [:]
        var model: [String: AttributeValue] = [:]
        var attributeErrors: Set<String> = []
        var nullViolation = false
        for f in s.schema.fields {
            let c = input.byte()
            switch c % 6 {
            case 0: break  // missing
            case 1: attrs[f.name] = .null
            case 2 where f.type == .double:
                let i = Int64(c / 6 % 5) - 2
                attrs[f.name] = .int(i)  // coerced to a double
                model[f.name] = .double(Double(i))
            default:
                let p = pool(f.type)
                let value = p[Int(c / 6) % p.count]
                attrs[f.name] = value
                model[f.name] = value
            }
            if model[f.name] == nil && !f.nullable { nullViolation = true }
        }
        switch defect {
        case 0: v = defect == 0 && input.bool() ? Array(v.dropLast()) : v + [1]
        case 1: v[input.below(v.count)] = input.bool() ? .nan : -.infinity
        case 2: attrs["zz"] = .int(1); attributeErrors.insert("unknownAttribute")
        case 3:
            let f = s.schema.fields[input.below(s.schema.count)]
            attrs[f.name] = wrongValue(f.type)
            attributeErrors.insert("typeMismatch")
        default: break
        }
        var errors: Set<String> = []
        if v.count != s.dimension { errors = ["dimensionMismatch"] }
        else if v.contains(where: { !$0.isFinite }) { errors = ["nonFiniteValue"] }
        else if s.metric == .cosine && v.allSatisfy({ $0 == 0 }) { errors = ["invalidArgument"] }
        else if !attributeErrors.isEmpty { errors = attributeErrors }
        else if nullViolation { errors = ["nullViolation"] }
        return Candidate(row: Row(id: id, vector: v, attributes: attrs), errors: errors, modelAttributes: model)
    }

    static func run(_ data: [UInt8]) throws {
        var input = FuzzBytes(data)
        let s = try setup(&input)
        let dir = FuzzScratch.path("store")
        var config = Store.Configuration()
        config.syncMode = .noSync
        config.initialMapSize = 1 << 20
        config.maxMapSize = 1 << 26
        config.searchThreads = 1
        var store: Store
        do { store = try Store(path: dir, configuration: config) } catch {
            throw FuzzFailure(message: "cannot create a store in \(dir): \(error)")
        }
        defer {
            store.close()
            try? FileManager.default.removeItem(atPath: dir)
        }
        let name = "c"
        var coll: VectorCollection
        do { coll = try store.createCollection(name, dimension: s.dimension, metric: s.metric, schema: s.schema) } catch {
            throw FuzzFailure(message: "createCollection(dim \(s.dimension), \(s.metric), \(s.schema.spelling)) failed: \(error)")
        }
        var model = ReferenceModel(metric: s.metric, schema: s.schema)
        var log: [String] = ["create dim \(s.dimension) \(s.metric) \(s.schema.spelling)"]

        func fail(_ what: String) -> FuzzFailure {
            FuzzFailure(message: "\(what)\n  after: " + log.suffix(12).joined(separator: "\n         "))
        }
        func engine<T>(_ what: String, _ body: () throws -> T) throws -> T {
            do { return try body() } catch { throw fail("\(what) failed: \(error)") }
        }
        func checkGet(_ id: UInt64) throws {
            let r = try engine("get(\(id))") { try coll.get(id) }
            guard let m = model.rows[id] else {
                try require(r == nil, "get(\(id)) returned a row the model deleted or never had")
                return
            }
            guard let r else { throw fail("get(\(id)) returned nil; the model has it") }
            if r.id != id || r.vector != m.vector || r.attributes != m.attributes {
                throw fail("get(\(id)) = \(r.vector) \(r.attributes); model \(m.vector) \(m.attributes)")
            }
        }

        var ops = 0
        while !input.isAtEnd && ops < maxOperations {
            ops += 1
            switch input.below(8) {
            case 0, 1:
                let n = 1 + input.below(4)
                let batch = (0..<n).map { _ in candidate(&input, s) }
                let firstBad = batch.firstIndex { !$0.errors.isEmpty }
                log.append("upsert \(batch.map { "\($0.row.id)\($0.errors.isEmpty ? "" : "!\($0.errors.sorted())") \($0.row.vector) \($0.row.attributes)" })")
                do {
                    try coll.upsert(batch.map(\.row))
                    if let firstBad { throw fail("upsert accepted row \(firstBad), expected \(batch[firstBad].errors.sorted())") }
                    for c in batch { model.rows[c.row.id] = (c.row.vector, c.modelAttributes) }
                } catch let e as SextantError {
                    guard let firstBad else { throw fail("valid upsert failed: \(e)") }
                    if !batch[firstBad].errors.contains(e.code.name) || e.context["row"] != String(firstBad) {
                        throw fail("upsert threw \(e) for row \(firstBad); expected \(batch[firstBad].errors.sorted())")
                    }
                    // All or nothing: the store must be unchanged.
                    let count = try engine("count") { try coll.count() }
                    if count != model.rows.count { throw fail("failed upsert changed the count to \(count) (model \(model.rows.count))") }
                    for c in batch { try checkGet(c.row.id) }
                }
            case 2:
                let ids = (0...input.below(3)).map { _ in UInt64(input.below(Int(idRange))) }
                log.append("delete \(ids)")
                let n = try engine("delete(\(ids))") { try coll.delete(ids) }
                var expected = 0
                for id in ids where model.delete(id) { expected += 1 }
                if n != expected { throw fail("delete(\(ids)) = \(n), model \(expected)") }
            case 3:
                let id = UInt64(input.below(Int(idRange)))
                log.append("get \(id)")
                try checkGet(id)
            case 4, 5:
                try search(&input, s, coll, model, &log, fail)
            case 6:
                log.append("count")
                let c = try engine("count") { try coll.count() }
                if c != model.rows.count { throw fail("count() = \(c), model \(model.rows.count)") }
            default:
                log.append("reopen")
                store.close()
                store = try engine("reopen") { try Store(path: dir, configuration: config) }
                coll = try engine("collection(\(name))") { try store.collection(name) }
                if coll.dimension != s.dimension || coll.metric != s.metric || coll.schema != s.schema {
                    throw fail("reopened collection is \(coll.info)")
                }
            }
        }
        // Final state: every id agrees, and the store's own invariants hold.
        for id in 0..<idRange { try checkGet(id) }
        let c = try engine("count") { try coll.count() }
        if c != model.rows.count { throw fail("final count() = \(c), model \(model.rows.count)") }
        let report = try engine("check") { try store.check() }
        if !report.isConsistent { throw fail("check() found problems: \(report.problems)") }
        if report.rowsChecked != model.rows.count { throw fail("check() saw \(report.rowsChecked) rows, model \(model.rows.count)") }
    }

    static func search(_ input: inout FuzzBytes, _ s: Setup, _ coll: VectorCollection, _ model: ReferenceModel,
                       _ log: inout [String], _ fail: (String) -> FuzzFailure) throws {
        let q = vector(&input, s.dimension)
        let k = 1 + input.below(5)
        let filter: Filter?
        switch input.below(4) {
        case 0: filter = nil
        case 1: filter = .matchAll
        default:
            var rng = SeededRandom(seed: UInt64(input.byte()) | UInt64(input.byte()) << 8)
            let p = FilterGenerator.random(s.schema, values: s.filterValues, depth: input.below(3), using: &rng)
            // Sometimes through the SQL front end, as an application would send it.
            filter = input.bool() ? ((try? Filter(sql: p.toSQL())) ?? p) : p
        }
        log.append("search k=\(k) \(q) where \(filter?.toSQL() ?? "-")")
        var expectedError: String? = nil
        var expected: [(id: UInt64, distance: Double)] = []
        var all: [UInt64: Double] = [:]
        if s.metric == .cosine && q.allSatisfy({ $0 == 0 }) {
            expectedError = "invalidArgument"
        } else {
            do {
                expected = try model.search(q, k: k, filter: filter)
                for id in try model.matching(filter) { all[id] = ReferenceModel.distance(s.metric, q, model.rows[id]!.vector) }
            } catch let e as SextantError {
                expectedError = e.code.name
            }
        }
        let got: [SearchResult]
        do {
            got = try coll.search(q, k: k, filter: filter)
        } catch let e as SextantError {
            if e.code.name == expectedError { return }
            throw fail("search threw \(e); expected \(expectedError ?? "results")")
        }
        if let expectedError { throw fail("search returned \(got); expected \(expectedError)") }
        // The engine's own order: by (distance, id).
        for (a, b) in zip(got, got.dropFirst()) where !(a.distance < b.distance || (a.distance == b.distance && a.id < b.id)) {
            throw fail("search results out of (distance, id) order: \(got)")
        }
        if s.metric != .cosine {
            // Small integers: every distance is exact in Float and Double alike.
            let ids = got.map(\.id), want = expected.map(\.id)
            if ids != want || zip(got, expected).contains(where: { Double($0.distance) != $1.distance }) {
                throw fail("search = \(got.map { "\($0.id):\($0.distance)" }); model \(expected.map { "\($0.id):\($0.distance)" })")
            }
            return
        }
        // Cosine: the engine scores in Float, so near-ties may swap; the i-th result must still be
        // (within 1e-5) the i-th smallest distance, and be a distinct matching row.
        let tolerance = 1e-5
        if got.count != expected.count || Set(got.map(\.id)).count != got.count {
            throw fail("search returned \(got.count) results \(got.map(\.id)); model \(expected.map(\.id))")
        }
        for (i, r) in got.enumerated() {
            guard let d = all[r.id] else { throw fail("search returned id \(r.id), which does not match (model \(expected.map(\.id)))") }
            if abs(d - expected[i].distance) > tolerance || abs(Double(r.distance) - d) > tolerance {
                throw fail("cosine result \(i) is \(r.id):\(r.distance) (exact \(d)); model \(expected.map { "\($0.id):\($0.distance)" })")
            }
        }
    }
}

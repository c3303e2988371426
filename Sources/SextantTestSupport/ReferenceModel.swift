import Sextant

/// A plain in-memory model of a collection — the oracle that property and fuzz tests compare
/// the engine against after every step. Distances are computed in Double.
public struct ReferenceModel: Sendable {
    public var metric: Metric
    public var schema: Schema
    public var rows: [UInt64: (vector: [Float], attributes: [String: AttributeValue])] = [:]

    public init(metric: Metric, schema: Schema) {
        self.metric = metric
        self.schema = schema
    }

    /// Stores the row as the engine does: an int given for a double field is kept as a double
    /// (rounded to the nearest double, as the engine's coercion does).
    public mutating func upsert(_ r: Row) {
        var attrs = r.attributes
        for (k, v) in attrs {
            if case .int(let x) = v, let p = schema.position(of: k), schema.fields[p].type == .double { attrs[k] = .double(Double(x)) }
        }
        rows[r.id] = (r.vector, attrs)
    }
    @discardableResult
    public mutating func delete(_ id: UInt64) -> Bool { rows.removeValue(forKey: id) != nil }

    public static func distance(_ metric: Metric, _ q: [Float], _ x: [Float]) -> Double {
        switch metric {
        case .l2: return zip(q, x).reduce(0) { $0 + (Double($1.0) - Double($1.1)) * (Double($1.0) - Double($1.1)) }
        case .ip: return -zip(q, x).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        case .cosine:
            let dot = zip(q, x).reduce(0) { $0 + Double($1.0) * Double($1.1) }
            let nq = q.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
            let nx = x.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
            return nq == 0 || nx == 0 ? 1 : 1 - dot / (nq * nx)
        }
    }

    /// The rows matching `filter` (nil: all).
    public func matching(_ filter: Filter?) throws -> [UInt64] {
        guard let filter else { return Array(rows.keys) }
        let bound = try filter.bind(to: schema)
        return rows.compactMap { id, r in
            var row = AttributeRow(nullsFor: schema.count)
            for (k, v) in r.attributes { if let p = schema.position(of: k) { row[p] = v } }
            return bound.matches(row) ? id : nil
        }
    }

    /// Exact top-k by (distance, id), as Double distances.
    public func search(_ q: [Float], k: Int, filter: Filter? = nil) throws -> [(id: UInt64, distance: Double)] {
        let ids = try matching(filter)
        let scored = ids.map { (id: $0, distance: ReferenceModel.distance(metric, q, rows[$0]!.vector)) }
        return Array(scored.sorted { $0.distance != $1.distance ? $0.distance < $1.distance : $0.id < $1.id }.prefix(k))
    }
}

/// Random predicates over a schema, for property tests.
public enum FilterGenerator {
    public static func random(_ schema: Schema, values: [String: [AttributeValue]], depth: Int = 2, using rng: inout SeededRandom) -> Filter {
        if depth > 0 && rng.unit() < 0.35 {
            let n = 2 + Int(rng.next() % 2)
            let parts = (0..<n).map { _ in random(schema, values: values, depth: depth - 1, using: &rng) }
            switch rng.next() % 3 {
            case 0: return .and(parts)
            case 1: return .or(parts)
            default: return .not(parts[0])
            }
        }
        let f = schema.fields[Int(rng.next() % UInt64(schema.count))]
        let pool = values[f.name] ?? []
        func pick() -> AttributeValue { pool.isEmpty ? .int(0) : pool[Int(rng.next() % UInt64(pool.count))] }
        if rng.unit() < 0.1 { return rng.unit() < 0.5 ? .isNull(f.name) : .isNotNull(f.name) }
        switch f.type {
        case .stringList, .intList:
            return .contains(f.name, pick())
        case .bool:
            return .compare(f.name, rng.unit() < 0.5 ? .equal : .notEqual, pick())
        case .string, .int, .double:
            switch rng.next() % 5 {
            case 0: return .compare(f.name, [.equal, .notEqual, .less, .lessOrEqual, .greater, .greaterOrEqual][Int(rng.next() % 6)], pick())
            case 1:
                let a = pick(), b = pick()
                return .between(f.name, a, b)
            case 2: return .in(f.name, (0..<(1 + Int(rng.next() % 3))).map { _ in pick() })
            case 3: return .notIn(f.name, (0..<(1 + Int(rng.next() % 3))).map { _ in pick() })
            default: return .compare(f.name, .equal, pick())
            }
        }
    }
}

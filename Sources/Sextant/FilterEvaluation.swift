import Foundation
import SextantFilter
import SextantKernels
import SextantStorage

/// The sets a predicate node splits the live rows into, from the index alone.
///
/// `t` ⊆ rows where the node is true; `f` ⊆ rows where it is false (computed only when asked);
/// every row that is true lies in `t ∪ m`, every row that is false in `f ∪ m`. Rows in
/// neither are unknown under SQL's three-valued logic (a null compared) and never match.
struct TriSet {
    var t: Bitmap
    var f: Bitmap?
    var m: Bitmap
}

/// Evaluates a bound filter over the attribute indexes of one collection in one transaction.
final class FilterEvaluator {
    let reader: IndexReader
    let schema: Schema
    let explain: Bool
    private(set) var nodes: [FilterExplanation.Node] = []

    init(reader: IndexReader, schema: Schema, explain: Bool) {
        self.reader = reader
        self.schema = schema
        self.explain = explain
    }

    /// The node's sets, and its explanation when asked.
    func evaluate(_ n: BoundNode, needFalse: Bool) throws -> (TriSet, FilterExplanation.Node?) {
        let before = reader.keysRead
        var children: [FilterExplanation.Node] = []
        let (r, access) = try evaluateNode(n, needFalse: needFalse, children: &children)
        guard explain else { return (r, nil) }
        let node = FilterExplanation.Node(expression: describe(n), access: access, matches: r.t.count,
                                          undecided: r.m.count, keysRead: reader.keysRead - before, children: children)
        return (r, node)
    }

    private func evaluateNode(_ n: BoundNode, needFalse: Bool, children: inout [FilterExplanation.Node]) throws -> (TriSet, String) {
        let live = try reader.live()
        switch n {
        case .constant(let b):
            return (TriSet(t: b ? live : Bitmap(), f: b ? Bitmap() : live, m: Bitmap()), "constant")

        case .not(let c):
            let (r, e) = try evaluate(c, needFalse: true)
            if let e { children.append(e) }
            return (TriSet(t: r.f ?? Bitmap(), f: r.t, m: r.m), "complement")

        case .and(let cs):
            return (try intersection(cs, needFalse: needFalse, children: &children), "intersection")

        case .or(let cs):
            return (try union(cs, needFalse: needFalse, children: &children), "union")

        case .isNull(let i, let negated):
            guard schema.fields[i].indexed else { return (undecided(live), Self.unindexed) }
            let nulls = try reader.nulls(i)
            let nonNull = try reader.nonNull(i)
            return (negated ? TriSet(t: nonNull, f: nulls, m: Bitmap()) : TriSet(t: nulls, f: nonNull, m: Bitmap()), "null list")

        case .number(let i, let op, let lit):
            guard schema.fields[i].indexed else { return (undecided(live), Self.unindexed) }
            if case .double(let d) = lit, d.isNaN { return (TriSet(t: Bitmap(), f: Bitmap(), m: Bitmap()), "constant") }
            switch op {
            case .equal, .notEqual:
                let eq = try numberPosting(i, lit)
                return (try sides(i, eq, Bitmap(), negated: op == .notEqual, needFalse: needFalse), op == .equal ? "posting lookup" : "complement of posting")
            case .less: return (try sides(i, try numberRange(i, lower: nil, upper: (lit, false)), Bitmap(), negated: false, needFalse: needFalse), "range scan")
            case .lessOrEqual: return (try sides(i, try numberRange(i, lower: nil, upper: (lit, true)), Bitmap(), negated: false, needFalse: needFalse), "range scan")
            case .greater: return (try sides(i, try numberRange(i, lower: (lit, false), upper: nil), Bitmap(), negated: false, needFalse: needFalse), "range scan")
            case .greaterOrEqual: return (try sides(i, try numberRange(i, lower: (lit, true), upper: nil), Bitmap(), negated: false, needFalse: needFalse), "range scan")
            }

        case .numberBetween(let i, let lo, let hi):
            guard schema.fields[i].indexed else { return (undecided(live), Self.unindexed) }
            for case .double(let d) in [lo, hi] where d.isNaN { return (TriSet(t: Bitmap(), f: Bitmap(), m: Bitmap()), "constant") }
            return (try sides(i, try numberRange(i, lower: (lo, true), upper: (hi, true)), Bitmap(), negated: false, needFalse: needFalse), "range scan")

        case .string(let i, let op, let lit):
            guard schema.fields[i].indexed else { return (undecided(live), Self.unindexed) }
            switch op {
            case .equal, .notEqual:
                let (t, m) = try stringPosting(i, lit)
                return (try sides(i, t, m, negated: op == .notEqual, needFalse: needFalse), op == .equal ? "posting lookup" : "complement of posting")
            case .less: return (try stringRange(i, lower: nil, upper: (lit, false), needFalse: needFalse), "range scan")
            case .lessOrEqual: return (try stringRange(i, lower: nil, upper: (lit, true), needFalse: needFalse), "range scan")
            case .greater: return (try stringRange(i, lower: (lit, false), upper: nil, needFalse: needFalse), "range scan")
            case .greaterOrEqual: return (try stringRange(i, lower: (lit, true), upper: nil, needFalse: needFalse), "range scan")
            }

        case .stringBetween(let i, let lo, let hi):
            guard schema.fields[i].indexed else { return (undecided(live), Self.unindexed) }
            return (try stringRange(i, lower: (lo, true), upper: (hi, true), needFalse: needFalse), "range scan")

        case .bool(let i, let op, let lit):
            guard schema.fields[i].indexed else { return (undecided(live), Self.unindexed) }
            let eq = try valuePosting(i, .bool(lit))
            return (try sides(i, eq, Bitmap(), negated: op == .notEqual, needFalse: needFalse), op == .equal ? "posting lookup" : "complement of posting")

        case .member(let i, let set, let negated):
            guard schema.fields[i].indexed else { return (undecided(live), Self.unindexed) }
            let (t, m) = try postings(i, set)
            return (try sides(i, t, m, negated: negated, needFalse: needFalse), negated ? "complement of postings" : "posting lookups")

        case .containsString(let i, let lit):
            guard schema.fields[i].indexed else { return (undecided(live), Self.unindexed) }
            let (t, m) = try stringPosting(i, lit)
            return (try sides(i, t, m, negated: false, needFalse: needFalse), "posting lookup")

        case .containsNumber(let i, let lit):
            guard schema.fields[i].indexed else { return (undecided(live), Self.unindexed) }
            var t = Bitmap()
            switch lit {
            case .int(let x): t = try valuePosting(i, .int(x))
            case .double(let d): if let x = exactInt64(d) { t = try valuePosting(i, .int(x)) }
            }
            return (try sides(i, t, Bitmap(), negated: false, needFalse: needFalse), "posting lookup")
        }
    }

    /// AND: rows true in every part; false in any; undecided rows are narrowed by what the
    /// siblings prove false (their false sets are fetched when some part is undecided).
    private func intersection(_ cs: [BoundNode], needFalse: Bool, children: inout [FilterExplanation.Node]) throws -> TriSet {
        var parts: [TriSet] = []
        var explained: [FilterExplanation.Node?] = []
        for c in cs {
            let (r, e) = try evaluate(c, needFalse: needFalse)
            parts.append(r); explained.append(e)
        }
        // Undecided rows are narrowed by what the siblings prove false; get those sets.
        if parts.contains(where: { !$0.m.isEmpty }) {
            for (j, c) in cs.enumerated() where parts[j].f == nil {
                let (r, e) = try evaluate(c, needFalse: true)
                parts[j] = r; explained[j] = e
            }
        }
        children += explained.compactMap { $0 }
        var t = parts[0].t
        for p in parts.dropFirst() { t.formIntersection(p.t) }
        var m = Bitmap()
        for p in parts { m.formUnion(p.m) }
        var f: Bitmap? = nil
        if needFalse || !m.isEmpty {
            var ff = Bitmap()
            for p in parts { ff.formUnion(p.f!) }
            f = ff
            m.subtract(ff)
        }
        return TriSet(t: t, f: f, m: m)
    }

    /// OR: rows true in any part; false in every one.
    private func union(_ cs: [BoundNode], needFalse: Bool, children: inout [FilterExplanation.Node]) throws -> TriSet {
        var parts: [TriSet] = []
        for c in cs {
            let (r, e) = try evaluate(c, needFalse: needFalse)
            parts.append(r)
            if let e { children.append(e) }
        }
        var t = Bitmap()
        var m = Bitmap()
        for p in parts { t.formUnion(p.t); m.formUnion(p.m) }
        m.subtract(t)
        var f: Bitmap? = nil
        if needFalse {
            var ff = parts[0].f!
            for p in parts.dropFirst() { ff.formIntersection(p.f!) }
            f = ff
        }
        return TriSet(t: t, f: f, m: m)
    }

    /// The rows whose field `i` equals a member of `set` (`t`), and those a posting cannot
    /// decide (`m`, strings past the indexed prefix).
    private func postings(_ i: Int, _ set: ValueSet) throws -> (Bitmap, Bitmap) {
        var t = Bitmap()
        var m = Bitmap()
        switch schema.fields[i].type {
        case .int:
            for x in set.ints { t.formUnion(try valuePosting(i, .int(x))) }
        case .double:
            for x in set.ints { if let d = Double(exactly: x) { t.formUnion(try valuePosting(i, .double(d))) } }
            for d in set.doubles { t.formUnion(try valuePosting(i, .double(d))) }
        case .string:
            for s in set.strings {
                let (a, b) = try stringPosting(i, s)
                t.formUnion(a); m.formUnion(b)
            }
        case .bool:
            if set.bools & 1 != 0 { t.formUnion(try valuePosting(i, .bool(false))) }
            if set.bools & 2 != 0 { t.formUnion(try valuePosting(i, .bool(true))) }
        case .stringList, .intList:
            break
        }
        m.subtract(t)
        return (t, m)
    }

    static let unindexed = "row check (field not indexed)"

    private func undecided(_ live: Bitmap) -> TriSet { TriSet(t: Bitmap(), f: Bitmap(), m: live) }

    /// A leaf whose true rows are `t` (plus undecided `m`) among the field's non-null rows;
    /// with `negated`, true and false swap (nulls stay unknown either way).
    private func sides(_ i: Int, _ t: Bitmap, _ m: Bitmap, negated: Bool, needFalse: Bool) throws -> TriSet {
        if !negated {
            return TriSet(t: t, f: needFalse ? try reader.nonNull(i).subtracting(t).subtracting(m) : nil, m: m)
        }
        return TriSet(t: try reader.nonNull(i).subtracting(t).subtracting(m), f: t, m: m)
    }

    private func valuePosting(_ i: Int, _ v: AttributeValue) throws -> Bitmap {
        guard let (tag, bytes) = AttributeIndex.valueKey(v) else { return Bitmap() }
        return try reader.posting(AttributeIndex.fieldPrefix(reader.cid, UInt16(i), tag) + bytes)
    }

    /// Rows equal to a numeric literal, under the field's own type (exact: 2.5 matches no int).
    private func numberPosting(_ i: Int, _ lit: NumberLiteral) throws -> Bitmap {
        switch (schema.fields[i].type, lit) {
        case (.int, .int(let x)): return try valuePosting(i, .int(x))
        case (.int, .double(let d)): return try exactInt64(d).map { try valuePosting(i, .int($0)) } ?? Bitmap()
        case (.double, .double(let d)): return try valuePosting(i, .double(d))
        case (.double, .int(let x)): return try Double(exactly: x).map { try valuePosting(i, .double($0)) } ?? Bitmap()
        default: return Bitmap()
        }
    }

    /// Rows equal to a string: exact for short strings; long ones give undecided candidates.
    private func stringPosting(_ i: Int, _ s: String) throws -> (Bitmap, Bitmap) {
        guard let (tag, bytes) = AttributeIndex.valueKey(.string(s)) else { return (Bitmap(), Bitmap()) }
        let p = try reader.posting(AttributeIndex.fieldPrefix(reader.cid, UInt16(i), tag) + bytes)
        return tag == AttributeIndex.tagValue ? (p, Bitmap()) : (Bitmap(), p)
    }

    /// Key-range scan of a numeric field. The start key is conservative; every key's value is
    /// compared exactly with the literals (so int/double mixes and rounding cannot err).
    private func numberRange(_ i: Int, lower: (NumberLiteral, Bool)?, upper: (NumberLiteral, Bool)?) throws -> Bitmap {
        let isInt = schema.fields[i].type == .int
        var start = [UInt8]()
        if let (lit, _) = lower {
            switch (isInt, lit) {
            case (true, .int(let x)): AttributeIndex.encodeInt(x, &start)
            case (true, .double(let d)):
                let f = d.rounded(.down)
                AttributeIndex.encodeInt(f <= -9.223372036854775808e18 ? .min : (f >= 9.223372036854775808e18 ? .max : Int64(f)), &start)
            case (false, .int(let x)): AttributeIndex.encodeDouble(Double(x).nextDown, &start)
            case (false, .double(let d)): AttributeIndex.encodeDouble(d, &start)
            }
        }
        return try reader.scan(field: i, tag: AttributeIndex.tagValue, from: start) { value in
            guard value.count == 8 else { return .skip }
            let u = AttributeIndex.decodeOrdered64(value, 0)
            let v: AttributeValue = isInt ? .int(AttributeIndex.decodeInt(u)) : .double(AttributeIndex.decodeDouble(u))
            if let (hi, inclusive) = upper, let c = compareNumber(v, hi) {
                if c > 0 || (c == 0 && !inclusive) { return .stop }
            }
            if let (lo, inclusive) = lower, let c = compareNumber(v, lo) {
                if c < 0 || (c == 0 && !inclusive) { return .skip }
            }
            return .match
        }
    }

    /// Key-range scan of a string field by UTF-8 byte order; long (prefix-keyed) strings are
    /// undecided.
    private func stringRange(_ i: Int, lower: (String, Bool)?, upper: (String, Bool)?, needFalse: Bool) throws -> TriSet {
        var start = [UInt8]()
        if let (lo, _) = lower {
            // The prefix of a long literal sorts no later than the literal itself.
            AttributeIndex.encodeString(lo, &start)
            start.removeLast(2)
        }
        let lo = lower.map { (Array($0.0.utf8), $0.1) }
        let hi = upper.map { (Array($0.0.utf8), $0.1) }
        let t = try reader.scan(field: i, tag: AttributeIndex.tagValue, from: start) { value in
            guard let (s, end) = AttributeIndex.decodeString(value, 0), end == value.count else { return .skip }
            if let (h, inclusive) = hi {
                let c = Self.compare(s, h)
                if c > 0 || (c == 0 && !inclusive) { return .stop }
            }
            if let (l, inclusive) = lo {
                let c = Self.compare(s, l)
                if c < 0 || (c == 0 && !inclusive) { return .skip }
            }
            return .match
        }
        let m = try reader.scan(field: i, tag: AttributeIndex.tagLongString, from: []) { _ in .match }
        return try sides(i, t, m, negated: false, needFalse: needFalse)
    }

    static func compare(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a == b { return 0 }
        return a.lexicographicallyPrecedes(b) ? -1 : 1
    }

    // MARK: Description

    func describe(_ n: BoundNode) -> String {
        func name(_ i: Int) -> String { schema.fields[i].name }
        func num(_ l: NumberLiteral) -> String {
            switch l {
            case .int(let x): String(x)
            case .double(let d): Filter.compare("x", .equal, .double(d)).toSQL().dropFirst(4).description
            }
        }
        func str(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "''") + "'" }
        switch n {
        case .constant(let b): return b ? "TRUE" : "FALSE"
        case .and(let cs): return cs.map { "(" + describe($0) + ")" }.joined(separator: " AND ")
        case .or(let cs): return cs.map { "(" + describe($0) + ")" }.joined(separator: " OR ")
        case .not(let c): return "NOT (" + describe(c) + ")"
        case .isNull(let i, let negated): return name(i) + (negated ? " IS NOT NULL" : " IS NULL")
        case .number(let i, let op, let l): return "\(name(i)) \(op.rawValue) \(num(l))"
        case .numberBetween(let i, let lo, let hi): return "\(name(i)) BETWEEN \(num(lo)) AND \(num(hi))"
        case .string(let i, let op, let s): return "\(name(i)) \(op.rawValue) \(str(s))"
        case .stringBetween(let i, let lo, let hi): return "\(name(i)) BETWEEN \(str(lo)) AND \(str(hi))"
        case .bool(let i, let op, let b): return "\(name(i)) \(op.rawValue) \(b ? "TRUE" : "FALSE")"
        case .member(let i, let set, let negated):
            var items: [String] = set.ints.map(String.init) + set.doubles.map { num(.double($0)) } + set.strings.map(str)
            if set.bools & 1 != 0 { items.append("FALSE") }
            if set.bools & 2 != 0 { items.append("TRUE") }
            return "\(name(i))\(negated ? " NOT" : "") IN (\(items.joined(separator: ", ")))"
        case .containsString(let i, let s): return "\(name(i)) CONTAINS \(str(s))"
        case .containsNumber(let i, let l): return "\(name(i)) CONTAINS \(num(l))"
        }
    }
}

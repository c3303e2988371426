import SextantCore

extension Filter {
    /// Resolves field names to schema positions and type-checks the literals.
    ///
    /// Rules: string fields take string literals; int and double fields take int or double
    /// literals (compared exactly, `x < 2.5` on an int field is `x <= 2`); bool fields take bool
    /// literals and only `=`, `!=`, `IN`, `NOT IN`; list fields take only `CONTAINS` (with an
    /// element literal) and `IS [NOT] NULL`. Strings compare by their UTF-8 bytes (no Unicode
    /// normalization), the order an order-preserving byte index uses.
    ///
    /// - Throws: ``SextantError/Code/unknownAttribute`` (context `field`) for a field the schema
    ///   lacks; ``SextantError/Code/typeMismatch`` (context `field`, `fieldType`) for an
    ///   incompatible literal or operator, including a null literal.
    public func bind(to schema: Schema) throws(SextantError) -> BoundFilter {
        BoundFilter(predicate: self, root: try Binder(schema: schema).bind(self))
    }
}

/// A predicate bound to a schema, ready to evaluate rows of that schema.
///
/// Evaluation uses SQL three-valued logic: a comparison, `BETWEEN`, `IN`, `NOT IN` or
/// `CONTAINS` on a null value is unknown; `NOT` unknown is unknown; `AND`/`OR` are Kleene's;
/// `CONTAINS` on an empty list is false. A row matches only when the predicate is true.
/// Evaluating does not allocate.
public struct BoundFilter: Sendable {
    /// The predicate this filter was bound from.
    public let predicate: Filter
    package let root: BoundNode

    /// Whether the filter is the constant true (every row matches).
    public var matchesEverything: Bool { if case .constant(true) = root { true } else { false } }

    /// True, false, or nil for unknown.
    public func evaluate(_ row: AttributeRow) -> Bool? { root.evaluate(row.values) }

    /// Whether the row satisfies the filter (unknown does not match).
    public func matches(_ row: AttributeRow) -> Bool { root.evaluate(row.values) == true }

    /// ``evaluate(_:)`` on values in schema order (a row without its wrapper).
    public func evaluate(values: [AttributeValue]) -> Bool? { root.evaluate(values) }
    /// ``matches(_:)`` on values in schema order.
    public func matches(values: [AttributeValue]) -> Bool { root.evaluate(values) == true }
}

/// A numeric literal, kept exactly as written (an int is not rounded to a double).
package enum NumberLiteral: Sendable {
    case int(Int64)
    case double(Double)
}

/// Sorted literal sets for IN: binary search, no hashing, no allocation per row.
package struct ValueSet: Sendable {
    package var ints: [Int64] = []  // sorted; for numeric fields, every literal that is an exact integer
    package var doubles: [Double] = []  // sorted; numeric literals that are not exact Int64 values
    package var strings: [String] = []  // sorted by UTF-8 bytes
    package var bools: UInt8 = 0  // bit 0: false present, bit 1: true present

    package func contains(_ v: AttributeValue) -> Bool? {
        switch v {
        case .null: return nil
        case .int(let i): return ValueSet.search(ints, i) { $0 < $1 }
        case .double(let d):
            if d.isNaN { return nil }
            if let i = exactInt64(d) { return ValueSet.search(ints, i) { $0 < $1 } }
            return ValueSet.search(doubles, d) { $0 < $1 }
        case .string(let s): return ValueSet.search(strings, s) { utf8Compare($0, $1) < 0 }
        case .bool(let b): return bools & (b ? 2 : 1) != 0
        case .stringList, .intList: return nil
        }
    }

    private static func search<T>(_ a: [T], _ x: T, _ less: (T, T) -> Bool) -> Bool {
        var lo = 0, hi = a.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if less(a[mid], x) { lo = mid + 1 } else { hi = mid }
        }
        return lo < a.count && !less(x, a[lo])
    }
}

/// The resolved form of a predicate: positions instead of names, literals pre-converted.
package indirect enum BoundNode: Sendable {
    case constant(Bool)
    case and([BoundNode])
    case or([BoundNode])
    case not(BoundNode)
    case isNull(Int, negated: Bool)
    case number(Int, ComparisonOperator, NumberLiteral)
    case numberBetween(Int, NumberLiteral, NumberLiteral)
    case string(Int, ComparisonOperator, String)
    case stringBetween(Int, String, String)
    case bool(Int, ComparisonOperator, Bool)
    case member(Int, ValueSet, negated: Bool)
    case containsString(Int, String)
    case containsNumber(Int, NumberLiteral)

    @inline(__always) static func value(_ row: [AttributeValue], _ i: Int) -> AttributeValue {
        i < row.count ? row[i] : .null
    }

    package func evaluate(_ row: [AttributeValue]) -> Bool? {
        switch self {
        case .constant(let b):
            return b
        case .and(let ns):
            var unknown = false
            for n in ns {
                switch n.evaluate(row) {
                case false?: return false
                case nil: unknown = true
                case true?: break
                }
            }
            return unknown ? nil : true
        case .or(let ns):
            var unknown = false
            for n in ns {
                switch n.evaluate(row) {
                case true?: return true
                case nil: unknown = true
                case false?: break
                }
            }
            return unknown ? nil : false
        case .not(let n):
            return n.evaluate(row).map { !$0 }
        case .isNull(let i, let negated):
            return BoundNode.value(row, i).isNull != negated
        case .number(let i, let op, let lit):
            guard let c = compareNumber(BoundNode.value(row, i), lit) else { return nil }
            return op.holds(c)
        case .numberBetween(let i, let lo, let hi):
            let v = BoundNode.value(row, i)
            guard let a = compareNumber(v, lo), let b = compareNumber(v, hi) else { return nil }
            return a >= 0 && b <= 0
        case .string(let i, let op, let lit):
            guard case .string(let s) = BoundNode.value(row, i) else { return nil }
            return op.holds(utf8Compare(s, lit))
        case .stringBetween(let i, let lo, let hi):
            guard case .string(let s) = BoundNode.value(row, i) else { return nil }
            return utf8Compare(s, lo) >= 0 && utf8Compare(s, hi) <= 0
        case .bool(let i, let op, let lit):
            guard case .bool(let b) = BoundNode.value(row, i) else { return nil }
            return op == .equal ? b == lit : b != lit
        case .member(let i, let set, let negated):
            return set.contains(BoundNode.value(row, i)).map { $0 != negated }
        case .containsString(let i, let lit):
            guard case .stringList(let l) = BoundNode.value(row, i) else { return nil }
            let n = lit.utf8.count  // O(1) for native strings; rejects most elements cheaply
            for s in l where s.utf8.count == n && utf8Compare(s, lit) == 0 { return true }
            return false
        case .containsNumber(let i, let lit):
            guard case .intList(let l) = BoundNode.value(row, i) else { return nil }
            for x in l where compareNumber(.int(x), lit) == 0 { return true }
            return false
        }
    }
}

extension ComparisonOperator {
    /// Whether the operator holds for an ordering result (-1, 0, 1).
    @inline(__always) package func holds(_ c: Int) -> Bool {
        switch self {
        case .equal: c == 0
        case .notEqual: c != 0
        case .less: c < 0
        case .lessOrEqual: c <= 0
        case .greater: c > 0
        case .greaterOrEqual: c >= 0
        }
    }
}

/// The exact `Int64` equal to `d`, if there is one.
@inline(__always) package func exactInt64(_ d: Double) -> Int64? {
    // -2^63 is representable; 2^63 is not (the upper bound is exclusive).
    guard d >= -9.223372036854775808e18, d < 9.223372036854775808e18, d == d.rounded(.towardZero) else { return nil }
    return Int64(d)
}

/// Compares an integer with a double exactly (no rounding of the integer to a double).
/// Returns -1, 0 or 1, or nil when `d` is NaN.
package func compareIntDouble(_ i: Int64, _ d: Double) -> Int? {
    if d.isNaN { return nil }
    if d >= 9.223372036854775808e18 { return -1 }
    if d < -9.223372036854775808e18 { return 1 }
    let t = d.rounded(.towardZero)
    let ti = Int64(t)  // exact: |t| < 2^63, or t == -2^63
    if i < ti { return -1 }
    if i > ti { return 1 }
    // i == trunc(d): the fraction decides.
    return d > t ? -1 : (d < t ? 1 : 0)
}

/// Compares a row value with a numeric literal: -1, 0, 1, or nil when the value is null,
/// not a number, or NaN.
@inline(__always) package func compareNumber(_ v: AttributeValue, _ lit: NumberLiteral) -> Int? {
    switch (v, lit) {
    case (.int(let a), .int(let b)): return a < b ? -1 : (a > b ? 1 : 0)
    case (.int(let a), .double(let d)): return compareIntDouble(a, d)
    case (.double(let x), .int(let b)): return compareIntDouble(b, x).map { -$0 }
    case (.double(let x), .double(let d)):
        if x.isNaN || d.isNaN { return nil }
        return x < d ? -1 : (x > d ? 1 : 0)
    default: return nil
    }
}

/// Orders strings by their UTF-8 bytes: -1, 0 or 1.
package func utf8Compare(_ a: String, _ b: String) -> Int {
    let r = a.utf8.withContiguousStorageIfAvailable { pa in
        b.utf8.withContiguousStorageIfAvailable { pb in compareBytes(pa, pb) }
    }
    if let r = r ?? nil { return r }
    // Non-contiguous (bridged) strings: the generic path.
    if a.utf8.elementsEqual(b.utf8) { return 0 }
    return a.utf8.lexicographicallyPrecedes(b.utf8) ? -1 : 1
}

@inline(__always) private func compareBytes(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Int {
    let n = min(a.count, b.count)
    var i = 0
    while i < n {
        let x = a[i], y = b[i]
        if x != y { return x < y ? -1 : 1 }
        i += 1
    }
    return a.count < b.count ? -1 : (a.count > b.count ? 1 : 0)
}

/// Type-checks a predicate against a schema and builds the bound tree.
private struct Binder {
    let schema: Schema

    func field(_ name: String) throws(SextantError) -> (Int, Field) {
        guard let i = schema.position(of: name) else {
            throw SextantError(.unknownAttribute, "unknown attribute '\(name)'", context: ["field": name])
        }
        return (i, schema.fields[i])
    }

    func mismatch(_ f: Field, _ message: String) -> SextantError {
        SextantError(.typeMismatch, message, context: ["field": f.name, "fieldType": f.type.schemaSpelling])
    }

    func describe(_ v: AttributeValue) -> String {
        switch v {
        case .null: "NULL"
        case .string: "string \(v)"
        case .int, .double: "number \(v)"
        case .bool: "boolean \(v)"
        case .stringList, .intList: "list \(v)"
        }
    }

    func rejectNull(_ f: Field, _ v: AttributeValue) throws(SextantError) {
        if v.isNull {
            throw mismatch(f, "a NULL literal for '\(f.name)' never matches; use IS NULL or IS NOT NULL")
        }
    }

    func number(_ f: Field, _ v: AttributeValue) throws(SextantError) -> NumberLiteral {
        try rejectNull(f, v)
        switch v {
        case .int(let i): return .int(i)
        case .double(let d): return .double(d)
        default: throw mismatch(f, "cannot compare \(f.type) field '\(f.name)' with \(describe(v))")
        }
    }

    func string(_ f: Field, _ v: AttributeValue) throws(SextantError) -> String {
        try rejectNull(f, v)
        guard case .string(let s) = v else {
            throw mismatch(f, "cannot compare \(f.type) field '\(f.name)' with \(describe(v))")
        }
        return s
    }

    func bool(_ f: Field, _ v: AttributeValue) throws(SextantError) -> Bool {
        try rejectNull(f, v)
        guard case .bool(let b) = v else {
            throw mismatch(f, "cannot compare bool field '\(f.name)' with \(describe(v))")
        }
        return b
    }

    func listOnly(_ f: Field, _ what: String) -> SextantError {
        mismatch(f, "\(what) does not apply to list field '\(f.name)'; use CONTAINS or IS [NOT] NULL")
    }

    func bind(_ p: Filter) throws(SextantError) -> BoundNode {
        switch p {
        case .matchAll:
            return .constant(true)
        case .and(let ps):
            var ns: [BoundNode] = []
            for q in ps { ns.append(try bind(q)) }
            return ns.count == 1 ? ns[0] : .and(ns)
        case .or(let ps):
            var ns: [BoundNode] = []
            for q in ps { ns.append(try bind(q)) }
            return ns.count == 1 ? ns[0] : .or(ns)
        case .not(let q):
            let n = try bind(q)
            if case .constant(let b) = n { return .constant(!b) }
            return .not(n)
        case .isNull(let name):
            return .isNull(try field(name).0, negated: false)
        case .isNotNull(let name):
            return .isNull(try field(name).0, negated: true)
        case .compare(let name, let op, let v):
            let (i, f) = try field(name)
            switch f.type {
            case .int, .double: return .number(i, op, try number(f, v))
            case .string: return .string(i, op, try string(f, v))
            case .bool:
                let b = try bool(f, v)
                guard !op.isOrdering else { throw mismatch(f, "'\(op)' needs an ordered type; bool field '\(f.name)' supports only = and !=") }
                return .bool(i, op, b)
            case .stringList, .intList:
                throw listOnly(f, "'\(op)'")
            }
        case .between(let name, let lo, let hi):
            let (i, f) = try field(name)
            switch f.type {
            case .int, .double: return .numberBetween(i, try number(f, lo), try number(f, hi))
            case .string: return .stringBetween(i, try string(f, lo), try string(f, hi))
            case .bool: throw mismatch(f, "BETWEEN needs an ordered type; bool field '\(f.name)' supports only = and !=")
            case .stringList, .intList: throw listOnly(f, "BETWEEN")
            }
        case .in(let name, let vs), .notIn(let name, let vs):
            let (i, f) = try field(name)
            var set = ValueSet()
            switch f.type {
            case .int, .double:
                for v in vs {
                    switch try number(f, v) {
                    case .int(let x): set.ints.append(x)
                    case .double(let d):
                        if let x = exactInt64(d) { set.ints.append(x) } else if !d.isNaN { set.doubles.append(d) }
                    }
                }
                set.ints.sort()
                set.doubles.sort()
            case .string:
                for v in vs { set.strings.append(try string(f, v)) }
                set.strings.sort { utf8Compare($0, $1) < 0 }
            case .bool:
                for v in vs { set.bools |= try bool(f, v) ? 2 : 1 }
            case .stringList, .intList:
                throw listOnly(f, "IN")
            }
            if case .notIn = p { return .member(i, set, negated: true) }
            return .member(i, set, negated: false)
        case .contains(let name, let v):
            let (i, f) = try field(name)
            switch f.type {
            case .stringList:
                try rejectNull(f, v)
                guard case .string(let s) = v else {
                    throw mismatch(f, "CONTAINS on [string] field '\(f.name)' needs a string, not \(describe(v))")
                }
                return .containsString(i, s)
            case .intList:
                try rejectNull(f, v)
                switch v {
                case .int(let x): return .containsNumber(i, .int(x))
                case .double(let d): return .containsNumber(i, .double(d))
                default: throw mismatch(f, "CONTAINS on [int] field '\(f.name)' needs a number, not \(describe(v))")
                }
            default:
                throw mismatch(f, "CONTAINS needs a list field; '\(f.name)' is \(f.type)")
            }
        }
    }
}

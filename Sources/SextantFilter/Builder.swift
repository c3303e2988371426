import SextantCore

/// A field reference for building predicates in Swift:
///
/// ```swift
/// let p = Attr("year") >= 2010 && (Attr("genre") == "jazz" || Attr("tags").contains("live"))
/// let q = !Attr("rank").isNull && Attr("month").between(202401, 202412)
/// ```
public struct Attr: Sendable, Hashable {
    /// The field name.
    public let name: String
    /// A reference to the field `name` (checked against a schema only by ``Filter/bind(to:)``).
    public init(_ name: String) { self.name = name }

    /// `field = value`. (Use ``isNull`` to test for null: `== nil` is rejected when bound.)
    public static func == (a: Attr, v: AttributeValue) -> Filter { .compare(a.name, .equal, v) }
    /// `field != value`.
    public static func != (a: Attr, v: AttributeValue) -> Filter { .compare(a.name, .notEqual, v) }
    /// `field < value`.
    public static func < (a: Attr, v: AttributeValue) -> Filter { .compare(a.name, .less, v) }
    /// `field <= value`.
    public static func <= (a: Attr, v: AttributeValue) -> Filter { .compare(a.name, .lessOrEqual, v) }
    /// `field > value`.
    public static func > (a: Attr, v: AttributeValue) -> Filter { .compare(a.name, .greater, v) }
    /// `field >= value`.
    public static func >= (a: Attr, v: AttributeValue) -> Filter { .compare(a.name, .greaterOrEqual, v) }

    /// `field BETWEEN low AND high` (inclusive).
    public func between(_ low: AttributeValue, _ high: AttributeValue) -> Filter { .between(name, low, high) }
    /// `field IN (values)`.
    public func `in`(_ values: [AttributeValue]) -> Filter { .in(name, values) }
    /// `field NOT IN (values)`.
    public func notIn(_ values: [AttributeValue]) -> Filter { .notIn(name, values) }
    /// `field CONTAINS element` (list fields).
    public func contains(_ element: AttributeValue) -> Filter { .contains(name, element) }
    /// `field IS NULL`.
    public var isNull: Filter { .isNull(name) }
    /// `field IS NOT NULL`.
    public var isNotNull: Filter { .isNotNull(name) }
}

extension Filter {
    /// Conjunction; flattens operands that are already conjunctions.
    public static func && (a: Filter, b: Filter) -> Filter {
        var ps: [Filter] = []
        if case .and(let x) = a { ps += x } else { ps.append(a) }
        if case .and(let y) = b { ps += y } else { ps.append(b) }
        return .and(ps)
    }

    /// Disjunction; flattens operands that are already disjunctions.
    public static func || (a: Filter, b: Filter) -> Filter {
        var ps: [Filter] = []
        if case .or(let x) = a { ps += x } else { ps.append(a) }
        if case .or(let y) = b { ps += y } else { ps.append(b) }
        return .or(ps)
    }

    /// Negation.
    public static prefix func ! (p: Filter) -> Filter { .not(p) }
}

import SextantCore

/// A comparison operator of ``Filter/compare(_:_:_:)``.
public enum ComparisonOperator: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case equal = "="
    case notEqual = "!="
    case less = "<"
    case lessOrEqual = "<="
    case greater = ">"
    case greaterOrEqual = ">="

    /// Whether the operator needs an ordering (not just equality).
    public var isOrdering: Bool { self != .equal && self != .notEqual }
    /// The SQL / JSON spelling.
    public var description: String { rawValue }
}

/// A filter over a row's attributes: one AST behind three front ends.
///
/// - SQL: ``init(sql:)`` and ``toSQL()``, e.g. `year >= 2010 AND tags CONTAINS 'jazz'`.
/// - JSON: ``init(json:)``, ``init(jsonText:)`` and ``toJSON()`` (format documented on ``init(json:)``).
/// - Swift: `Attr("year") >= 2010 && Attr("tags").contains("jazz")` (see ``Attr``).
///
/// Literals are ``AttributeValue`` scalars (string, int, double, bool); a null literal is
/// rejected by every front end and by ``bind(to:)`` (use ``isNull(_:)``). Evaluation follows SQL
/// three-valued logic; bind the predicate to a schema with ``bind(to:)`` to evaluate it.
///
/// Equality is structural: `a AND b` and `b AND a` differ, and so do `NOT x IN (1)` and
/// `x NOT IN (1)` (which mean the same).
public indirect enum Filter: Sendable, Hashable, CustomStringConvertible {
    /// The constant true: the empty filter, matching every row. SQL `TRUE`, JSON `true`.
    case matchAll
    /// All of the operands (n-ary; an empty list is true).
    case and([Filter])
    /// Any of the operands (n-ary; an empty list is false).
    case or([Filter])
    /// Negation (unknown stays unknown).
    case not(Filter)
    /// `field op literal`.
    case compare(String, ComparisonOperator, AttributeValue)
    /// `field BETWEEN low AND high`, both ends inclusive.
    case between(String, AttributeValue, AttributeValue)
    /// `field IN (values)`.
    case `in`(String, [AttributeValue])
    /// `field NOT IN (values)`.
    case notIn(String, [AttributeValue])
    /// `field IS NULL`.
    case isNull(String)
    /// `field IS NOT NULL`.
    case isNotNull(String)
    /// `field CONTAINS element`, for list fields.
    case contains(String, AttributeValue)

    /// The constant false, spelled `NOT TRUE` (SQL `FALSE` parses to it).
    public static var matchNone: Filter { .not(.matchAll) }

    /// Every field name the predicate mentions.
    public var referencedFields: Set<String> {
        var out = Set<String>()
        collectFields(into: &out)
        return out
    }

    private func collectFields(into out: inout Set<String>) {
        switch self {
        case .matchAll: break
        case .and(let ps), .or(let ps): for p in ps { p.collectFields(into: &out) }
        case .not(let p): p.collectFields(into: &out)
        case .compare(let f, _, _), .between(let f, _, _), .in(let f, _), .notIn(let f, _),
            .isNull(let f), .isNotNull(let f), .contains(let f, _):
            out.insert(f)
        }
    }

    /// The canonical SQL text (``toSQL()``).
    public var description: String { toSQL() }

    /// The deepest nesting of `AND`/`OR`/`NOT` and parentheses the SQL and JSON front ends accept.
    /// It keeps the recursive parser, printer and evaluator far from the stack limit.
    public static let maxDepth = 128
}

import Foundation

/// One attribute value, or null.
public enum AttributeValue: Sendable, Hashable, CustomStringConvertible {
    case null
    case string(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)
    case stringList([String])
    case intList([Int64])

    public var isNull: Bool { if case .null = self { true } else { false } }

    /// The schema type this value has (nil for null).
    public var type: AttributeType? {
        switch self {
        case .null: nil
        case .string: .string
        case .int: .int
        case .double: .double
        case .bool: .bool
        case .stringList: .stringList
        case .intList: .intList
        }
    }

    public var description: String {
        switch self {
        case .null: "NULL"
        case .string(let s): "'" + s.replacingOccurrences(of: "'", with: "''") + "'"
        case .int(let i): String(i)
        case .double(let d): String(d)
        case .bool(let b): b ? "TRUE" : "FALSE"
        case .stringList(let l): "[" + l.map { AttributeValue.string($0).description }.joined(separator: ", ") + "]"
        case .intList(let l): "[" + l.map(String.init).joined(separator: ", ") + "]"
        }
    }
}

extension AttributeValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(nilLiteral: ()) { self = .null }
}

/// A row's attributes as values in schema order (`values[i]` belongs to `schema.fields[i]`).
public struct AttributeRow: Sendable, Hashable {
    public var values: [AttributeValue]
    public init(values: [AttributeValue]) { self.values = values }
    /// A row of nulls for a schema of `count` fields.
    public init(nullsFor count: Int) { self.values = Array(repeating: .null, count: count) }
    public subscript(i: Int) -> AttributeValue {
        get { values[i] }
        set { values[i] = newValue }
    }
}

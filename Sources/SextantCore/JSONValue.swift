/// A JSON value (RFC 8259).
///
/// Integer literals (no fraction, no exponent) that fit in `Int64` become ``int(_:)``; larger
/// non-negative ones that fit in `UInt64` (row ids above 2^63 − 1) become ``uint(_:)``, so they
/// round-trip exactly; every other number becomes ``double(_:)``. Objects keep their members in document order.
///
/// Parse with ``init(parsing:)-(String)`` (strict: no comments, no trailing commas, no
/// duplicate keys, valid UTF-8 only, nesting at most ``maxDepth``); serialize with
/// ``jsonText`` (compact and deterministic).
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    /// An integer above `Int64.max` (at most `UInt64.max`). Smaller integers are always
    /// ``int(_:)``; build values with ``unsigned(_:)`` to keep that form canonical.
    case uint(UInt64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// The deepest nesting of arrays and objects the parser accepts.
    public static let maxDepth = 512

    /// The member named `key` when this is an object, else nil.
    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    /// An unsigned integer in its canonical form: ``int(_:)`` when it fits `Int64`, else ``uint(_:)``.
    public static func unsigned(_ u: UInt64) -> JSONValue {
        u <= UInt64(Int64.max) ? .int(Int64(u)) : .uint(u)
    }

    /// The value as an unsigned integer when it is a non-negative integer literal, else nil
    /// (doubles are not accepted: above 2^53 they no longer name one integer).
    public var unsignedValue: UInt64? {
        switch self {
        case .int(let i) where i >= 0: UInt64(i)
        case .uint(let u): u
        default: nil
        }
    }

    /// The string payload, or nil.
    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    /// The array payload, or nil.
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { a } else { nil } }
    /// The object payload, or nil.
    public var objectValue: JSONObject? { if case .object(let o) = self { o } else { nil } }
}

/// A JSON object: members in document order. Equality and hashing respect that order.
public struct JSONObject: Sendable, Hashable {
    /// The members in order; keys are unique when produced by the parser.
    public var members: [(key: String, value: JSONValue)]

    /// An object with these members, in this order (duplicates are not checked here).
    public init(_ members: [(key: String, value: JSONValue)] = []) { self.members = members }

    /// The number of members.
    public var count: Int { members.count }
    /// Whether there are no members.
    public var isEmpty: Bool { members.isEmpty }
    /// The keys in order.
    public var keys: [String] { members.map(\.key) }

    /// The value of the first member named `key` (a linear search: objects are usually small).
    public subscript(key: String) -> JSONValue? {
        for m in members where m.key == key { return m.value }
        return nil
    }

    /// Same members in the same order.
    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        guard a.members.count == b.members.count else { return false }
        for (x, y) in zip(a.members, b.members) where x.key != y.key || x.value != y.value { return false }
        return true
    }

    public func hash(into h: inout Hasher) {
        h.combine(members.count)
        for m in members {
            h.combine(m.key)
            h.combine(m.value)
        }
    }
}

extension JSONObject: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.members = elements.map { (key: $0.0, value: $0.1) }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements.map { (key: $0.0, value: $0.1) }))
    }
}

import Foundation

/// The type of one attribute field.
public enum AttributeType: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case string
    case int
    case double
    case bool
    /// A list of strings ("tags").
    case stringList
    /// A list of 64-bit integers.
    case intList

    /// The spelling used by the CLI's `--schema` option: `string`, `int`, `double`, `bool`,
    /// `[string]`, `[int]`.
    public var schemaSpelling: String {
        switch self {
        case .string: "string"
        case .int: "int"
        case .double: "double"
        case .bool: "bool"
        case .stringList: "[string]"
        case .intList: "[int]"
        }
    }

    public var isList: Bool { self == .stringList || self == .intList }
    public var description: String { schemaSpelling }

    /// Parses a schema spelling; also accepts the aliases `str`, `float`, `list`,
    /// `list<string>`, `[str]`, `tags`.
    public init(spelling raw: String) throws(SextantError) {
        switch raw.lowercased().replacingOccurrences(of: " ", with: "") {
        case "string", "str", "text": self = .string
        case "int", "int64", "integer": self = .int
        case "double", "float", "float64", "real": self = .double
        case "bool", "boolean": self = .bool
        case "[string]", "[str]", "list", "tags", "list<string>", "list[string]": self = .stringList
        case "[int]", "list<int>", "list[int]": self = .intList
        default:
            throw SextantError(.invalidArgument, "unknown attribute type '\(raw)'; expected string, int, double, bool, [string] or [int]")
        }
    }
}

/// One declared attribute.
public struct Field: Sendable, Codable, Equatable, Hashable {
    public var name: String
    public var type: AttributeType
    /// Whether the field may be null (absent). Defaults to true: a missing key is null.
    public var nullable: Bool
    /// Whether the field gets a secondary index (used by the attribute-index layer).
    public var indexed: Bool

    public init(_ name: String, _ type: AttributeType, nullable: Bool = true, indexed: Bool = true) {
        self.name = name
        self.type = type
        self.nullable = nullable
        self.indexed = indexed
    }
}

/// A collection's typed attribute schema: an ordered list of uniquely named fields.
public struct Schema: Sendable, Codable, Equatable, Hashable {
    public private(set) var fields: [Field]
    private var positions: [String: Int]

    /// The most fields a schema may declare.
    public static let maxFields = 1024

    public init(_ fields: [Field] = []) throws(SextantError) {
        guard fields.count <= Schema.maxFields else {
            throw SextantError(.limitExceeded, "a schema has at most \(Schema.maxFields) fields")
        }
        var pos: [String: Int] = [:]
        for (i, f) in fields.enumerated() {
            guard Schema.isValidName(f.name) else {
                throw SextantError(.invalidArgument, "invalid field name '\(f.name)': use letters, digits and '_', not starting with a digit, at most 64 bytes, not a keyword", context: ["field": f.name])
            }
            guard pos[f.name] == nil else {
                throw SextantError(.invalidArgument, "duplicate field '\(f.name)'", context: ["field": f.name])
            }
            pos[f.name] = i
        }
        self.fields = fields
        self.positions = pos
    }

    /// Parses the CLI form `name:string,year:int,tags:[string]`; a trailing `!` on the type
    /// (`id:int!`) makes the field non-nullable, a trailing `-` (`note:string-`) leaves it unindexed.
    public init(parsing text: String) throws(SextantError) {
        var fields: [Field] = []
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty { try self.init([]); return }
        for part in Schema.splitTopLevel(trimmed) {
            let item = part.trimmingCharacters(in: .whitespaces)
            guard let colon = item.firstIndex(of: ":") else {
                throw SextantError(.invalidArgument, "schema entry '\(item)' needs the form name:type")
            }
            let name = String(item[..<colon]).trimmingCharacters(in: .whitespaces)
            var typeText = String(item[item.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
            var nullable = true
            var indexed = true
            while let last = typeText.last, last == "!" || last == "-" {
                if last == "!" { nullable = false } else { indexed = false }
                typeText.removeLast()
            }
            fields.append(Field(name, try AttributeType(spelling: typeText), nullable: nullable, indexed: indexed))
        }
        try self.init(fields)
    }

    /// The CLI spelling, which ``init(parsing:)`` reads back.
    public var spelling: String {
        fields.map { f in
            f.name + ":" + f.type.schemaSpelling + (f.nullable ? "" : "!") + (f.indexed ? "" : "-")
        }.joined(separator: ",")
    }

    public var count: Int { fields.count }
    public func position(of name: String) -> Int? { positions[name] }
    public func field(named name: String) -> Field? { positions[name].map { fields[$0] } }

    static let keywords: Set<String> = ["and", "or", "not", "in", "is", "null", "between", "contains", "true", "false"]

    public static func isValidName(_ name: String) -> Bool {
        let u = Array(name.utf8)
        guard !u.isEmpty, u.count <= 64 else { return false }
        if keywords.contains(name.lowercased()) { return false }
        for (i, c) in u.enumerated() {
            let alpha = (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95
            let digit = c >= 48 && c <= 57
            if !(alpha || (digit && i > 0)) { return false }
        }
        return true
    }

    private static func splitTopLevel(_ s: String) -> [Substring] {
        var parts: [Substring] = []
        var depth = 0
        var start = s.startIndex
        for i in s.indices {
            switch s[i] {
            case "[", "<": depth += 1
            case "]", ">": depth -= 1
            case "," where depth == 0:
                parts.append(s[start..<i])
                start = s.index(after: i)
            default: break
            }
        }
        parts.append(s[start...])
        return parts
    }

    enum CodingKeys: String, CodingKey { case fields }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(try c.decode([Field].self, forKey: .fields))
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(fields, forKey: .fields)
    }
}

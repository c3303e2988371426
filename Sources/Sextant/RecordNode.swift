import SextantCore

// MARK: - Encoding and decoding

/// A value on its way between a record's properties and a row's attributes.
indirect enum RecordNode {
    case null
    case string(String)
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case bool(Bool)
    case list([RecordNode])
    case object([String: RecordNode])

    init(_ v: AttributeValue) {
        switch v {
        case .null: self = .null
        case .string(let s): self = .string(s)
        case .int(let i): self = .int(i)
        case .double(let d): self = .double(d)
        case .bool(let b): self = .bool(b)
        case .stringList(let l): self = .list(l.map { .string($0) })
        case .intList(let l): self = .list(l.map { .int($0) })
        }
    }

    /// The attribute this value is, when it is one (nil for objects, nested or mixed lists).
    var attributeValue: AttributeValue? {
        switch self {
        case .null: return .null
        case .string(let s): return .string(s)
        case .int(let i): return .int(i)
        case .uint(let u): return Int64(exactly: u).map { .int($0) }
        case .double(let d): return .double(d)
        case .bool(let b): return .bool(b)
        case .object: return nil
        case .list(let items):
            if items.isEmpty { return .stringList([]) }
            var strings: [String] = [], ints: [Int64] = []
            for item in items {
                switch item {
                case .string(let s): strings.append(s)
                case .int(let i): ints.append(i)
                case .uint(let u): guard let i = Int64(exactly: u) else { return nil }; ints.append(i)
                default: return nil
                }
            }
            if ints.isEmpty { return .stringList(strings) }
            if strings.isEmpty { return .intList(ints) }
            return nil
        }
    }

    var kind: String {
        switch self {
        case .null: "null"
        case .string: "a string"
        case .int, .uint: "an integer"
        case .double: "a floating-point number"
        case .bool: "a boolean"
        case .list: "a list"
        case .object: "a nested object"
        }
    }
}

struct RecordCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) { self.stringValue = String(intValue); self.intValue = intValue }
}

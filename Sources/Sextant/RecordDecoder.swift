struct RecordDecoder: Decoder {
    let node: RecordNode
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let fields) = node else {
            throw DecodingError.typeMismatch([String: Any].self, .init(codingPath: codingPath, debugDescription: "expected keyed properties, found \(node.kind)"))
        }
        return KeyedDecodingContainer(KeyedDecoder<Key>(fields: fields, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .list(let items) = node else {
            throw DecodingError.typeMismatch([Any].self, .init(codingPath: codingPath, debugDescription: "expected a list, found \(node.kind)"))
        }
        return UnkeyedDecoder(items: items, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleDecoder(node: node, codingPath: codingPath) }

    static func value<T: Decodable>(_ type: T.Type, from node: RecordNode, codingPath: [any CodingKey]) throws -> T {
        func mismatch() -> DecodingError {
            .typeMismatch(T.self, .init(codingPath: codingPath, debugDescription: "expected \(T.self), found \(node.kind)"))
        }
        func integer<I: FixedWidthInteger>(_: I.Type) throws -> I {
            switch node {
            case .int(let i): if let v = I(exactly: i) { return v }
            case .uint(let u): if let v = I(exactly: u) { return v }
            case .double(let d): if let v = I(exactly: d) { return v }
            case .null: throw DecodingError.valueNotFound(T.self, .init(codingPath: codingPath, debugDescription: "null"))
            default: break
            }
            throw mismatch()
        }
        if case .null = node, !(T.self is any ExpressibleByNilLiteral.Type) {
            throw DecodingError.valueNotFound(T.self, .init(codingPath: codingPath, debugDescription: "the value is null"))
        }
        switch T.self {
        case is String.Type:
            guard case .string(let s) = node else { throw mismatch() }
            return s as! T
        case is Bool.Type:
            guard case .bool(let b) = node else { throw mismatch() }
            return b as! T
        case is Double.Type, is Float.Type:
            let d: Double
            switch node {
            case .double(let x): d = x
            case .int(let i): d = Double(i)
            case .uint(let u): d = Double(u)
            default: throw mismatch()
            }
            return (T.self is Float.Type ? Float(d) as Any : d as Any) as! T
        case is Int.Type: return try integer(Int.self) as! T
        case is Int8.Type: return try integer(Int8.self) as! T
        case is Int16.Type: return try integer(Int16.self) as! T
        case is Int32.Type: return try integer(Int32.self) as! T
        case is Int64.Type: return try integer(Int64.self) as! T
        case is UInt.Type: return try integer(UInt.self) as! T
        case is UInt8.Type: return try integer(UInt8.self) as! T
        case is UInt16.Type: return try integer(UInt16.self) as! T
        case is UInt32.Type: return try integer(UInt32.self) as! T
        case is UInt64.Type: return try integer(UInt64.self) as! T
        default:
            return try T(from: RecordDecoder(node: node, codingPath: codingPath))
        }
    }
}

struct KeyedDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let fields: [String: RecordNode]
    let codingPath: [any CodingKey]
    var allKeys: [Key] { fields.keys.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { fields[key.stringValue] != nil }

    private func node(_ key: Key) throws -> RecordNode {
        guard let n = fields[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "no value for '\(key.stringValue)' (null)"))
        }
        return n
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        if case .null = fields[key.stringValue] ?? .null { return true }
        return false
    }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try RecordDecoder.value(T.self, from: try node(key), codingPath: codingPath + [key])
    }
    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try RecordDecoder(node: try node(key), codingPath: codingPath + [key]).container(keyedBy: NestedKey.self)
    }
    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try RecordDecoder(node: try node(key), codingPath: codingPath + [key]).unkeyedContainer()
    }
    func superDecoder() throws -> any Decoder { RecordDecoder(node: .object(fields), codingPath: codingPath) }
    func superDecoder(forKey key: Key) throws -> any Decoder { RecordDecoder(node: try node(key), codingPath: codingPath + [key]) }
}

struct UnkeyedDecoder: UnkeyedDecodingContainer {
    let items: [RecordNode]
    let codingPath: [any CodingKey]
    var currentIndex = 0
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    init(items: [RecordNode], codingPath: [any CodingKey]) {
        self.items = items
        self.codingPath = codingPath
    }

    private mutating func next<T>(_ type: T.Type) throws -> (RecordNode, [any CodingKey]) {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(T.self, .init(codingPath: codingPath, debugDescription: "the list has \(items.count) items"))
        }
        defer { currentIndex += 1 }
        return (items[currentIndex], codingPath + [RecordCodingKey(intValue: currentIndex)])
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, case .null = items[currentIndex] else { return false }
        currentIndex += 1
        return true
    }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let (n, path) = try next(T.self)
        return try RecordDecoder.value(T.self, from: n, codingPath: path)
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let (n, path) = try next([String: Any].self)
        return try RecordDecoder(node: n, codingPath: path).container(keyedBy: NestedKey.self)
    }
    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let (n, path) = try next([Any].self)
        return try RecordDecoder(node: n, codingPath: path).unkeyedContainer()
    }
    mutating func superDecoder() throws -> any Decoder {
        let (n, path) = try next(Any.self)
        return RecordDecoder(node: n, codingPath: path)
    }
}

struct SingleDecoder: SingleValueDecodingContainer {
    let node: RecordNode
    let codingPath: [any CodingKey]
    func decodeNil() -> Bool { if case .null = node { true } else { false } }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try RecordDecoder.value(T.self, from: node, codingPath: codingPath) }
}

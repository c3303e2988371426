/// Where an encoder's value goes: filled in by whichever container the encoder hands out.
final class RecordBox {
    var node: RecordNode = .null
    var keyed: [String: RecordBox]? = nil
    var unkeyed: [RecordBox]? = nil

    /// The finished tree.
    var resolved: RecordNode {
        if let keyed { return .object(keyed.mapValues(\.resolved)) }
        if let unkeyed { return .list(unkeyed.map(\.resolved)) }
        return node
    }
}

final class RecordEncoder: Encoder {
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    let root: RecordBox

    init(codingPath: [any CodingKey], box: RecordBox = RecordBox()) {
        self.codingPath = codingPath
        self.root = box
    }

    /// The encoded value.
    var result: RecordNode { root.resolved }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if root.keyed == nil { root.keyed = [:] }
        return KeyedEncodingContainer(KeyedEncoder<Key>(box: root, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if root.unkeyed == nil { root.unkeyed = [] }
        return UnkeyedEncoder(box: root, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleEncoder(box: root, codingPath: codingPath)
    }

    static func node<T: Encodable>(_ value: T, codingPath: [any CodingKey], into box: RecordBox) throws {
        switch value {
        case let v as String: box.node = .string(v)
        case let v as Bool: box.node = .bool(v)
        case let v as Double: box.node = .double(v)
        case let v as Float: box.node = .double(Double(v))
        case let v as Int: box.node = .int(Int64(v))
        case let v as Int8: box.node = .int(Int64(v))
        case let v as Int16: box.node = .int(Int64(v))
        case let v as Int32: box.node = .int(Int64(v))
        case let v as Int64: box.node = .int(v)
        case let v as UInt: box.node = .uint(UInt64(v))
        case let v as UInt8: box.node = .uint(UInt64(v))
        case let v as UInt16: box.node = .uint(UInt64(v))
        case let v as UInt32: box.node = .uint(UInt64(v))
        case let v as UInt64: box.node = .uint(v)
        default: try value.encode(to: RecordEncoder(codingPath: codingPath, box: box))
        }
    }
}

struct KeyedEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let box: RecordBox
    let codingPath: [any CodingKey]

    private func child(_ key: Key) -> RecordBox {
        let b = RecordBox()
        box.keyed![key.stringValue] = b
        return b
    }

    mutating func encodeNil(forKey key: Key) throws { child(key).node = .null }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try RecordEncoder.node(value, codingPath: codingPath + [key], into: child(key))
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let b = child(key)
        b.keyed = [:]
        return KeyedEncodingContainer(KeyedEncoder<NestedKey>(box: b, codingPath: codingPath + [key]))
    }
    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let b = child(key)
        b.unkeyed = []
        return UnkeyedEncoder(box: b, codingPath: codingPath + [key])
    }
    mutating func superEncoder() -> any Encoder { RecordEncoder(codingPath: codingPath, box: child(Key(stringValue: "super")!)) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { RecordEncoder(codingPath: codingPath + [key], box: child(key)) }
}

struct UnkeyedEncoder: UnkeyedEncodingContainer {
    let box: RecordBox
    let codingPath: [any CodingKey]
    var count: Int { box.unkeyed!.count }

    private func next() -> RecordBox {
        let b = RecordBox()
        box.unkeyed!.append(b)
        return b
    }

    mutating func encodeNil() throws { next().node = .null }
    mutating func encode<T: Encodable>(_ value: T) throws {
        try RecordEncoder.node(value, codingPath: codingPath + [RecordCodingKey(intValue: count)], into: next())
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let b = next()
        b.keyed = [:]
        return KeyedEncodingContainer(KeyedEncoder<NestedKey>(box: b, codingPath: codingPath))
    }
    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let b = next()
        b.unkeyed = []
        return UnkeyedEncoder(box: b, codingPath: codingPath)
    }
    mutating func superEncoder() -> any Encoder { RecordEncoder(codingPath: codingPath, box: next()) }
}

struct SingleEncoder: SingleValueEncodingContainer {
    let box: RecordBox
    let codingPath: [any CodingKey]
    mutating func encodeNil() throws { box.node = .null }
    mutating func encode<T: Encodable>(_ value: T) throws {
        try RecordEncoder.node(value, codingPath: codingPath, into: box)
    }
}

import Foundation
import SextantStorage

/// An application type stored as a row: an id, a vector, and `Codable` properties that are the
/// row's attributes.
///
/// Conform a struct and read and write it directly, instead of building ``Row`` values and
/// attribute dictionaries:
///
/// ```swift
/// struct Song: VectorRecord {
///     var id: UInt64
///     var vector: [Float]
///     var genre: String
///     var year: Int
///     var tags: [String]
///     var rating: Double?          // nullable field
/// }
/// try await songs.upsert(mySongs)
/// let hits: [Match<Song>] = try await songs.search(query, k: 10, filter: Attr("year") >= 2010)
/// ```
///
/// Every coding key other than ``idKey`` and ``vectorKey`` must name a field of the schema.
/// Property types map to field types: `String` (and `String`-raw-valued enums) to `string`;
/// any fixed-width integer to `int` (Int64 range); `Double`, `Float` and `Date` (as its
/// encoded `Double`) to `double`; `Bool` to `bool`; `[String]` to `[string]`; integer arrays
/// to `[int]`; an `Optional` (or a property left out when encoding) to null. A property that
/// does not fit its field throws a `SextantError` whose `context["field"]` names it
/// (`unknownAttribute`, `typeMismatch`, `nullViolation` or `nonFiniteValue`).
public protocol VectorRecord: Codable, Sendable {
    /// The row's external id.
    var id: UInt64 { get }
    /// The row's vector (the collection's dimension).
    var vector: [Float] { get }
    /// The coding key of ``id``, which is not an attribute (default `"id"`).
    static var idKey: String { get }
    /// The coding key of ``vector``, which is not an attribute (default `"vector"`).
    static var vectorKey: String { get }
}

extension VectorRecord {
    public static var idKey: String { "id" }
    public static var vectorKey: String { "vector" }
}

/// A search hit decoded as a ``VectorRecord``.
public struct Match<R: VectorRecord>: Sendable {
    /// The matching row.
    public var record: R
    /// Its distance to the query under the collection's metric (smaller is closer).
    public var distance: Float
    /// The row's id.
    public var id: UInt64 { record.id }

    /// A hit: `record` at `distance` from the query.
    public init(record: R, distance: Float) {
        self.record = record
        self.distance = distance
    }
}

extension Match: Equatable where R: Equatable {}

// MARK: - Collections of records

extension VectorCollection {
    /// The row a record is stored as: its id, vector, and its other properties as attributes,
    /// checked against the schema.
    ///
    /// - Throws: `unknownAttribute` for a property the schema lacks, `typeMismatch` for one
    ///   whose type does not fit its field, `nullViolation`, `nonFiniteValue` — each with
    ///   `context["field"]` naming the property and `context["record"]` the type.
    public func row<R: VectorRecord>(for record: R) throws -> Row {
        Row(id: record.id, vector: record.vector, attributes: try attributes(of: record, position: nil))
    }

    func attributes<R: VectorRecord>(of record: R, position: Int?) throws -> [String: AttributeValue] {
        var ctx: [String: String] = ["collection": name, "record": String(describing: R.self)]
        if let position { ctx["row"] = String(position) }
        let node: RecordNode
        do {
            let encoder = RecordEncoder(codingPath: [])
            try record.encode(to: encoder)
            node = encoder.result
        } catch let e as SextantError {
            throw e.adding(ctx)
        } catch let EncodingError.invalidValue(value, c) {
            let field = c.codingPath.first?.stringValue ?? ""
            ctx["field"] = field
            throw SextantError(.typeMismatch, "property '\(field)' of \(R.self) cannot be stored: \(c.debugDescription) (\(type(of: value)))", context: ctx)
        }
        guard case .object(let fields) = node else {
            throw SextantError(.typeMismatch, "\(R.self) must encode as keyed properties", context: ctx)
        }
        var out: [String: AttributeValue] = [:]
        for (key, value) in fields where key != R.idKey && key != R.vectorKey {
            guard let pos = schema.position(of: key) else {
                ctx["field"] = key
                throw SextantError(.unknownAttribute, "property '\(key)' of \(R.self) is not a field of collection '\(name)'", context: ctx)
            }
            let field = schema.fields[pos]
            guard let raw = value.attributeValue else {
                throw VectorCollection.mismatch(field, got: "\(value.kind) (property '\(key)' of \(R.self))", context: ctx)
            }
            var fieldCtx = ctx
            fieldCtx["field"] = key
            do {
                out[key] = try VectorCollection.coerce(raw, to: field, context: ctx)
            } catch {
                throw SextantError(error.code, "property '\(key)' of \(R.self): \(error.message)", context: error.context.merging(fieldCtx) { a, _ in a })
            }
        }
        for f in schema.fields where !f.nullable && (out[f.name] ?? .null).isNull {
            ctx["field"] = f.name
            throw SextantError(.nullViolation, "\(R.self) has no value for non-nullable field '\(f.name)'", context: ctx)
        }
        return out
    }

    /// Decodes a stored row as `R`.
    ///
    /// - Throws: `typeMismatch` (or `nullViolation` for a null field read into a non-optional
    ///   property) with `context["field"]` naming the property.
    public func decode<R: VectorRecord>(_ record: Record, as type: R.Type = R.self) throws -> R {
        var fields: [String: RecordNode] = [:]
        for (k, v) in record.attributes { fields[k] = RecordNode(v) }
        fields[R.idKey] = .uint(record.id)
        fields[R.vectorKey] = .list(record.vector.map { .double(Double($0)) })
        var ctx: [String: String] = ["collection": name, "record": String(describing: R.self), "id": String(record.id)]
        do {
            return try R(from: RecordDecoder(node: .object(fields), codingPath: []))
        } catch let e as SextantError {
            throw e.adding(ctx)
        } catch let e as DecodingError {
            switch e {
            case .keyNotFound(let key, let c):
                ctx["field"] = (c.codingPath.first ?? key).stringValue
                throw SextantError(.nullViolation, "field '\(ctx["field"]!)' is null; property of \(R.self) is not optional", context: ctx)
            case .valueNotFound(_, let c):
                ctx["field"] = c.codingPath.first?.stringValue ?? ""
                throw SextantError(.nullViolation, "field '\(ctx["field"]!)' is null; property of \(R.self) is not optional", context: ctx)
            case .typeMismatch(_, let c), .dataCorrupted(let c):
                ctx["field"] = c.codingPath.first?.stringValue ?? ""
                throw SextantError(.typeMismatch, "field '\(ctx["field"]!)' does not decode as the property of \(R.self): \(c.debugDescription)", context: ctx)
            @unknown default:
                throw SextantError(.typeMismatch, "\(R.self) does not decode: \(e)", context: ctx)
            }
        }
    }

    /// Inserts or replaces `records` in one transaction: all of them or, on any error, none.
    ///
    /// - Throws: as ``row(for:)``, with `context["row"]` the position of the record, and as
    ///   `upsert(_:)`.
    public func upsert<R: VectorRecord>(_ records: [R]) throws {
        try upsert(try rows(of: records, control: .silent))
    }

    /// Inserts or replaces `records` in one transaction, off the calling task's thread,
    /// reporting ``OperationProgress/Phase/writing``; a cancelled task leaves the collection as
    /// it was.
    ///
    /// - Throws: as `upsert(_:)`; `cancelled`.
    public func upsert<R: VectorRecord>(_ records: [R], onProgress: (@Sendable (OperationProgress) -> Void)? = nil) async throws {
        let control = OperationControl(onProgress: onProgress)
        try await WorkerThreads.shared.run(control: control) {
            try self.upsert(try self.rows(of: records, control: control), control: control)
        }
    }

    func rows<R: VectorRecord>(of records: [R], control: OperationControl) throws -> [Row] {
        var out: [Row] = []
        out.reserveCapacity(records.count)
        for (i, r) in records.enumerated() {
            if i & 4095 == 0 { try control.checkCancellation("the upsert") }
            out.append(Row(id: r.id, vector: r.vector, attributes: try attributes(of: r, position: i)))
        }
        return out
    }

    /// The row with id `id` as an `R`, or nil.
    ///
    /// - Throws: as ``decode(_:as:)``; `notFound` (collection dropped), storage errors.
    public func get<R: VectorRecord>(_ id: UInt64, as type: R.Type = R.self) throws -> R? {
        try get(id).map { try decode($0, as: R.self) }
    }

    /// The row with id `id` as an `R`, or nil, off the calling task's thread.
    ///
    /// - Throws: as ``get(_:as:)``.
    public func get<R: VectorRecord>(_ id: UInt64, as type: R.Type = R.self) async throws -> R? {
        try await store.run { try self.get(id, as: R.self) }
    }

    /// The `k` nearest rows satisfying `filter`, decoded as `R`, nearest first.
    ///
    /// The rows are read in a second read transaction after the search; a row deleted in
    /// between is left out.
    ///
    /// - Throws: as `search(_:k:filter:options:)` and ``decode(_:as:)``.
    public func search<R: VectorRecord>(_ vector: [Float], k: Int, filter: Filter? = nil, options: SearchOptions = SearchOptions(),
                                        as type: R.Type = R.self) throws -> [Match<R>] {
        try matches(try search(vector, k: k, filter: filter, options: options), as: R.self)
    }

    /// The `k` nearest rows satisfying `filter`, decoded as `R`, off the calling task's thread.
    ///
    /// - Throws: as `search(_:k:filter:options:as:)`.
    public func search<R: VectorRecord>(_ vector: [Float], k: Int, filter: Filter? = nil, options: SearchOptions = SearchOptions(),
                                        as type: R.Type = R.self) async throws -> [Match<R>] {
        try await store.run { try self.search(vector, k: k, filter: filter, options: options, as: R.self) }
    }

    /// Answers many queries, decoding the hits as `R` (see ``search(_:options:onProgress:)``).
    ///
    /// - Throws: as ``search(_:options:onProgress:)`` and ``decode(_:as:)``.
    public func search<R: VectorRecord>(_ queries: [Query], options: SearchOptions = SearchOptions(), as type: R.Type = R.self,
                                        onProgress: (@Sendable (OperationProgress) -> Void)? = nil) async throws -> [[Match<R>]] {
        let control = OperationControl(onProgress: onProgress)
        return try await WorkerThreads.shared.run(control: control) {
            try self.search(queries, options: options, control: control).map { try self.matches($0, as: R.self) }
        }
    }

    /// Reads and decodes the rows of `results` in one read transaction.
    func matches<R: VectorRecord>(_ results: [SearchResult], as type: R.Type) throws -> [Match<R>] {
        let records: [Record?] = try store.env.read { txn in
            _ = try state(txn)
            return try results.map { r in
                guard let slot = try Keys.withExternalKey(cid, r.id, { k in try txn.withValue(db.ids, key: k) { v in try VectorCollection.slot(v) } }) else { return nil }
                return try record(txn, slot: slot)
            }
        }
        var out: [Match<R>] = []
        out.reserveCapacity(results.count)
        for (r, rec) in zip(results, records) {
            guard let rec else { continue }
            out.append(Match(record: try decode(rec, as: R.self), distance: r.distance))
        }
        return out
    }
}

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

struct RecordCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) { self.stringValue = String(intValue); self.intValue = intValue }
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

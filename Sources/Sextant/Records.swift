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

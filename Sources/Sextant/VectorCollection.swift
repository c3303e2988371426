import Foundation
import SextantKernels
import SextantStorage

/// A handle on one collection of a ``Store``. Cheap; thread-safe; valid until the store closes
/// or the collection is dropped (operations then throw `SextantError.Code.notFound`).
///
/// (Named so that it does not shadow the standard library's `Collection` protocol in files
/// that import Sextant.)
public final class VectorCollection: Sendable {
    /// The store holding the collection.
    public let store: Store
    /// The catalog entry, as read when the handle was made.
    public let info: CollectionInfo
    let parsedRecipe: IndexRecipe

    init(store: Store, info: CollectionInfo) {
        self.store = store
        self.info = info
        parsedRecipe = (try? IndexRecipe(parsing: info.indexRecipe)) ?? IndexRecipe.flat
    }

    /// The collection's name.
    public var name: String { info.name }
    /// Components per vector.
    public var dimension: Int { info.dimension }
    /// The distance (smaller is closer).
    public var metric: Metric { info.metric }
    /// The typed attribute fields.
    public var schema: Schema { info.schema }

    var db: Store.Databases { store.db }
    var cid: UInt32 { info.id }

    /// Throws notFound unless this collection (this id, not just this name) still exists.
    func state(_ txn: Transaction) throws -> CollectionState {
        guard let s = try CollectionState.read(txn, db.state, cid: cid) else {
            throw SextantError(.notFound, "collection '\(name)' was dropped", context: ["collection": name])
        }
        return s
    }

    // MARK: Validation

    /// Checks a vector against the collection: dimension, finiteness, non-zero for cosine.
    func validate(vector: [Float], row: Int?) throws(SextantError) {
        // The error context is built only for an error: this runs for every written row and
        // every query, on several threads at once in a batch.
        func context(_ extra: [String: String] = [:]) -> [String: String] {
            var ctx: [String: String] = ["collection": name]
            if let row { ctx["row"] = String(row) }
            return ctx.merging(extra) { $1 }
        }
        guard vector.count == dimension else {
            throw SextantError(.dimensionMismatch, "vector has \(vector.count) components; collection '\(name)' has dimension \(dimension)",
                               context: context(["expected": String(dimension), "got": String(vector.count)]))
        }
        var nonZero = false
        var bad = -1
        // Eight components at a time on their bits (exponent all ones: infinite or NaN); the
        // component at fault is looked for only once a chunk has one.
        vector.withUnsafeBytes { raw in
            let n = raw.count / 4
            let exponent = SIMD8<UInt32>(repeating: 0x7f80_0000), magnitude = SIMD8<UInt32>(repeating: 0x7fff_ffff)
            var i = 0
            var anyBits = SIMD8<UInt32>()
            while i + 8 <= n {
                let bits = raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<UInt32>.self)
                if any((bits & exponent) .== exponent) { break }
                anyBits |= bits & magnitude
                i += 8
            }
            nonZero = anyBits != SIMD8()
            while i < n {
                let x = raw.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
                if !x.isFinite { bad = i; return }
                if x != 0 { nonZero = true }
                i += 1
            }
        }
        if bad >= 0 {
            throw SextantError(.nonFiniteValue, "vector component \(bad) is \(vector[bad])", context: context(["component": String(bad)]))
        }
        if metric == .cosine && !nonZero {
            throw SextantError(.invalidArgument, "a zero vector has no cosine distance", context: context())
        }
    }

    /// Converts named attributes into a schema-ordered row, checking names, types and nullability.
    func attributeRow(_ attrs: [String: AttributeValue], row: Int?) throws(SextantError) -> AttributeRow {
        var out = AttributeRow(nullsFor: schema.count)
        var ctx: [String: String] = ["collection": name]
        if let row { ctx["row"] = String(row) }
        for (key, value) in attrs {
            guard let pos = schema.position(of: key) else {
                ctx["field"] = key
                throw SextantError(.unknownAttribute, "unknown attribute '\(key)'", context: ctx)
            }
            out.values[pos] = try VectorCollection.coerce(value, to: schema.fields[pos], context: ctx)
        }
        for (i, f) in schema.fields.enumerated() where !f.nullable && out.values[i].isNull {
            ctx["field"] = f.name
            throw SextantError(.nullViolation, "attribute '\(f.name)' may not be null", context: ctx)
        }
        return out
    }

    /// Checks `v` against field `f`, converting where the meaning is unambiguous (an int for a
    /// double field, an integral double for an int field, an empty list of either kind).
    static func coerce(_ v: AttributeValue, to f: Field, context: [String: String]) throws(SextantError) -> AttributeValue {
        var ctx = context
        ctx["field"] = f.name
        func mismatch() -> SextantError { VectorCollection.mismatch(f, got: v.description, context: context) }
        switch (f.type, v) {
        case (_, .null): return .null
        case (.string, .string), (.int, .int), (.bool, .bool), (.stringList, .stringList), (.intList, .intList):
            return v
        case (.double, .double(let d)):
            guard d.isFinite else { throw SextantError(.nonFiniteValue, "attribute '\(f.name)' is \(d)", context: ctx) }
            return v
        case (.double, .int(let i)):
            return .double(Double(i))
        case (.int, .double(let d)):
            // JSON writers print 3 as 3.0; accept integral values exactly representable.
            guard let i = Int64(exactly: d) else { throw mismatch() }
            return .int(i)
        case (.intList, .stringList(let l)) where l.isEmpty:
            return .intList([])
        case (.stringList, .intList(let l)) where l.isEmpty:
            return .stringList([])
        default:
            throw mismatch()
        }
    }

    static func mismatch(_ f: Field, got: String, context: [String: String]) -> SextantError {
        var ctx = context
        ctx["field"] = f.name
        ctx["expected"] = f.type.schemaSpelling
        return SextantError(.typeMismatch, "attribute '\(f.name)' is \(f.type.schemaSpelling); got \(got)", context: ctx)
    }

    // MARK: Writes

    /// Inserts or replaces one row.
    ///
    /// - Throws: as `upsert(_:)` of many rows.
    public func upsert(_ row: Row) throws {
        try upsert([row])
    }

    /// Inserts or replaces `id`'s vector and attributes.
    ///
    /// - Throws: as `upsert(_:)` of many rows.
    public func upsert(id: UInt64, vector: [Float], attributes: [String: AttributeValue] = [:]) throws {
        try upsert([Row(id: id, vector: vector, attributes: attributes)])
    }

    /// Inserts or replaces many rows in one transaction: all of them or, on any error, none.
    /// A later row with the same id replaces an earlier one.
    ///
    /// - Throws: `dimensionMismatch`, `nonFiniteValue`, `invalidArgument` (a zero vector under
    ///   cosine), `unknownAttribute`, `typeMismatch`, `nullViolation` — with `context["row"]` the
    ///   position and `context["field"]` the attribute — `notFound` when the collection was
    ///   dropped, `readOnly`, storage errors (`mapFull`, `io`, `storage`, ...).
    public func upsert(_ rows: [Row]) throws {
        try rejectSingleVectorWrite()
        var encoded: [PreparedRow] = []
        encoded.reserveCapacity(rows.count)
        for (i, r) in rows.enumerated() {
            encoded.append(try prepare(r, position: i))
        }
        try store.env.write { txn in try write(encoded, txn) }
    }

    struct PreparedRow {
        var id: UInt64
        var vector: [Float]
        var attributes: [UInt8]
        var row: AttributeRow
    }

    func prepare(_ r: Row, position: Int) throws(SextantError) -> PreparedRow {
        try validate(vector: r.vector, row: position)
        let attrs = try attributeRow(r.attributes, row: position)
        var bytes: [UInt8] = []
        withUnsafeBytes(of: r.id.littleEndian) { bytes.append(contentsOf: $0) }
        AttributeCodec.encode(attrs, schema: schema, into: &bytes)
        return PreparedRow(id: r.id, vector: r.vector, attributes: bytes, row: attrs)
    }

    func write(_ rows: [PreparedRow], _ txn: Transaction) throws {
        var st = try state(txn)
        let vectorWriter = SlotBlocks.Writer(vectorBlocks)
        let routing = try partitionRouting(txn)
        // The secondary structures (postings, cells, codes, graph), told of every row.
        var indexes = try IndexMaintenance(self, txn, cellQuantizer: routing?.quantizer)
        for r in rows {
            let cell = indexes.cell(of: r.vector)
            let existing = try Keys.withExternalKey(cid, r.id) { k in try txn.withValue(db.ids, key: k) { v in try VectorCollection.slot(v) } }
            let slot: UInt32
            var fresh = false
            if let existing {
                slot = existing
                let old = try Keys.withRowKey(cid, slot) { k in try txn.withValue(db.rows, key: k) { v in try decodeRowRecord(v).1 } }
                guard let old else {
                    throw SextantError(.corrupted, "slot \(slot) is mapped but has no row record", context: ["collection": name, "slot": String(slot)])
                }
                // The replaced vector, read once for every structure that needs it.
                let oldVector = indexes.needsOldVector ? try vectorWriter.read(txn, slot: slot, region: 1) : nil
                try indexes.written(slot, r, cell: cell, replacing: StoredRow(slot: slot, attributes: old, vector: oldVector))
            } else {
                let before = st.nextSlot
                slot = try allocateSlot(txn, &st, routing: routing, row: r.row, cell: cell)
                fresh = st.nextSlot != before
                try Keys.withExternalKey(cid, r.id) { k in
                    try withUnsafeBytes(of: slot.littleEndian) { v in try txn.put(db.ids, key: k, value: v) }
                }
                st.count += 1
                try indexes.written(slot, r, cell: cell, replacing: nil)
            }
            try Keys.withRowKey(cid, slot) { k in
                try txn.reserve(db.rows, key: k, count: r.attributes.count, appending: fresh) { out in
                    r.attributes.withUnsafeBytes { out.copyMemory(from: $0) }
                }
            }
            try withUnsafeBytes(of: r.id.littleEndian) { try vectorWriter.set(txn, slot: slot, region: 0, $0) }
            // Float32 little-endian on every platform Swift targets here.
            try r.vector.withUnsafeBytes { try vectorWriter.set(txn, slot: slot, region: 1, $0) }
            let norm = r.vector.withUnsafeBytes { Distance.norm($0.baseAddress!, dimension: dimension) }
            try withUnsafeBytes(of: norm) { try vectorWriter.set(txn, slot: slot, region: 2, $0) }
        }
        try vectorWriter.flush(txn)
        // The graph reads the new vectors and the state's slot bound.
        try st.write(txn, db.state, cid: cid)
        try indexes.finish()
    }

    /// Vectors, `slotsPerBlock` to a record: the external ids (u64 LE) of the block's slots,
    /// their float32 components (contiguous, so kernels read them straight from the map), and
    /// their Euclidean norms (float32; cosine then needs one dot product per vector).
    var vectorBlocks: SlotBlocks { SlotBlocks(db: db.vectors, cid: cid, strides: VectorCollection.vectorStrides(dimension)) }

    static func vectorStrides(_ dimension: Int) -> [Int] { [8, 4 * dimension, 4] }

    /// The stored norm of a live slot's vector (as ``Distance/norm(_:dimension:)`` gave it).
    @inline(__always)
    func storedNorm(_ reader: SlotBlocks.Reader, _ slot: UInt32) throws -> Float {
        guard let base = try reader.blockPointer(reader.blocks.block(of: slot)) else {
            throw SextantError(.corrupted, "live slot \(slot) has no vector block", context: ["collection": name, "slot": String(slot)])
        }
        return base.loadUnaligned(fromByteOffset: reader.blocks.offset(slot, region: 2), as: Float.self)
    }

    func vectorReader(_ txn: Transaction) throws -> SlotBlocks.Reader {
        SlotBlocks.Reader(vectorBlocks, txn: txn, slotBound: try state(txn).nextSlot, shared: store.blockPointers)
    }

    /// The external id and a pointer to the vector of a live slot (valid until the transaction
    /// ends). A live slot without its block is corruption.
    @inline(__always)
    func vectorEntry(_ reader: SlotBlocks.Reader, _ slot: UInt32) throws -> (id: UInt64, vector: UnsafeRawPointer) {
        guard let base = try reader.blockPointer(reader.blocks.block(of: slot)) else {
            throw SextantError(.corrupted, "live slot \(slot) has no vector block", context: ["collection": name, "slot": String(slot)])
        }
        let id = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: reader.blocks.offset(slot, region: 0), as: UInt64.self))
        return (id, base + reader.blocks.offset(slot, region: 1))
    }

    static func slot(_ v: UnsafeRawBufferPointer) throws(SextantError) -> UInt32 {
        guard v.count == 4 else { throw SextantError(.corrupted, "id map entry has \(v.count) bytes") }
        return UInt32(littleEndian: v.loadUnaligned(as: UInt32.self))
    }

    /// A slot for a new row: without a partition layout the lowest freed slot; with one, the
    /// lowest freed slot of the row's leaf, else the lowest freed slot past every leaf (free
    /// slots of other leaves are kept for their own rows); else a new one past the end.
    private func allocateSlot(_ txn: Transaction, _ st: inout CollectionState, routing: PartitionRouting?,
                              row: AttributeRow, cell: Int?) throws -> UInt32 {
        var ranges: [Range<UInt32>] = [0..<UInt32.max]
        if let routing {
            ranges = [routing.end..<UInt32.max]
            if let leaf = routing.leaf(of: row, cell: cell) { ranges.insert(leaf.slots, at: 0) }
        }
        for range in ranges where !range.isEmpty {
            let reused: UInt32? = try txn.withCursor(db.free) { c in
                guard try Keys.withRowKey(cid, range.lowerBound, { try c.seek($0) }),
                      let (kc, slot) = Keys.decodeRow(c.key), kc == cid, range.contains(slot) else { return nil }
                try c.deleteCurrent()
                return slot
            }
            if let reused { return reused }
        }
        guard st.nextSlot < UInt32.max else {
            throw SextantError(.limitExceeded, "collection '\(name)' has used all 2^32-1 row slots", context: ["collection": name])
        }
        defer { st.nextSlot += 1 }
        return st.nextSlot
    }

    /// Deletes a row; returns whether it existed.
    ///
    /// - Throws: `notFound` when the collection was dropped, `readOnly`, storage errors (`mapFull`,
    ///   `io`, `storage`, ...).
    @discardableResult
    public func delete(_ id: UInt64) throws -> Bool {
        try delete([id]) == 1
    }

    /// Deletes rows in one transaction; returns how many existed.
    ///
    /// - Throws: `notFound` when the collection was dropped, `readOnly`, storage errors (`mapFull`,
    ///   `io`, `storage`, ...).
    @discardableResult
    public func delete(_ ids: [UInt64]) throws -> Int {
        try store.env.write { txn in
            var st = try state(txn)
            let vectorWriter = SlotBlocks.Writer(vectorBlocks)
            let cells = try partitionLayout(txn).flatMap { $0.cells > 0 ? try coarseQuantizer(txn) : nil }
            var indexes = try IndexMaintenance(self, txn, cellQuantizer: cells)
            var n = 0
            for id in ids {
                guard let slot = try Keys.withExternalKey(cid, id, { k in try txn.withValue(db.ids, key: k) { v in try VectorCollection.slot(v) } }) else { continue }
                try Keys.withExternalKey(cid, id) { k in _ = try txn.delete(db.ids, key: k) }
                try Keys.withRowKey(cid, slot) { k in
                    let old = try txn.withValue(db.rows, key: k, { v in try decodeRowRecord(v).1 })
                    let vector = indexes.needsOldVector ? try vectorWriter.read(txn, slot: slot, region: 1) : nil
                    try indexes.deleted(StoredRow(slot: slot, attributes: old, vector: vector))
                    _ = try txn.delete(db.rows, key: k)
                    try deleteTokens(txn, id: id)
                    try vectorWriter.clear(txn, slot: slot)
                    try txn.put(db.free, key: k, value: UnsafeRawBufferPointer(start: nil, count: 0))
                }
                st.count -= 1
                n += 1
            }
            try st.write(txn, db.state, cid: cid)
            // The graph is repaired while the deleted vectors are still readable.
            try indexes.finish()
            try vectorWriter.flush(txn)
            return n
        }
    }

    // MARK: Reads

    /// The number of live rows.
    ///
    /// - Throws: `notFound` when the collection was dropped, storage errors (`mapFull`, `io`,
    ///   `storage`, ...).
    public func count() throws -> Int {
        try store.env.read { txn in Int(try state(txn).count) }
    }

    /// The row with external id `id`, or nil.
    ///
    /// - Throws: `notFound` when the collection was dropped, `corrupted`, storage errors
    ///   (`mapFull`, `io`, `storage`, ...).
    public func get(_ id: UInt64) throws -> Record? {
        try store.env.read { txn in
            _ = try state(txn)
            guard let slot = try Keys.withExternalKey(cid, id, { k in try txn.withValue(db.ids, key: k) { v in try VectorCollection.slot(v) } }) else { return nil }
            return try record(txn, slot: slot)
        }
    }

    func record(_ txn: Transaction, slot: UInt32) throws -> Record {
        try Keys.withRowKey(cid, slot) { k in
            guard let (ext, attrs) = try txn.withValue(db.rows, key: k, { v in try decodeRowRecord(v) }) else {
                throw SextantError(.corrupted, "slot \(slot) is mapped but has no row record", context: ["collection": name, "slot": String(slot)])
            }
            let (vid, p) = try vectorEntry(try vectorReader(txn), slot)
            guard vid == ext else {
                throw SextantError(.corrupted, "vector of slot \(slot) belongs to id \(vid), row record to \(ext)", context: ["collection": name, "slot": String(slot)])
            }
            let vec = VectorCollection.floats(p, dimension)
            var named: [String: AttributeValue] = [:]
            for (i, f) in schema.fields.enumerated() where !attrs.values[i].isNull { named[f.name] = attrs.values[i] }
            return Record(id: ext, vector: vec, attributes: named)
        }
    }

    func decodeRowRecord(_ v: UnsafeRawBufferPointer) throws -> (UInt64, AttributeRow) {
        guard v.count >= 9 else { throw SextantError(.corrupted, "row record has \(v.count) bytes", context: ["collection": name]) }
        let ext = UInt64(littleEndian: v.loadUnaligned(as: UInt64.self))
        let attrs = try AttributeCodec.decode(UnsafeRawBufferPointer(rebasing: v[8...]), schema: schema)
        return (ext, attrs)
    }

    static func floats(_ p: UnsafeRawPointer, _ d: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: d) { buf, n in
            UnsafeMutableRawBufferPointer(buf).copyMemory(from: UnsafeRawBufferPointer(start: p, count: 4 * d))
            n = d
        }
    }

}

import SextantKernels
import SextantStorage

// The secondary structures a write or delete keeps in step with the rows, one component each:
// attribute postings and the live set, vector cells, PQ or SQ8 codes, the HNSW graph. The row records,
// id map, vectors and free list are the primary data and stay with the writer
// (VectorCollection.write / delete); each component is told of every row changed in the
// transaction and writes its own records once, in `finish`.

/// A stored row being replaced or deleted, as the structures need it.
struct StoredRow {
    let slot: UInt32
    /// Its attributes (nil when a delete finds no row record).
    let attributes: AttributeRow?
    /// Its vector's bytes, read once when a structure needs it (``IndexMaintainer/needsOldVector``).
    let vector: [UInt8]?
}

/// One secondary structure, kept in step with the rows inside a write transaction.
protocol IndexMaintainer {
    /// Whether the structure needs a replaced or deleted row's vector.
    var needsOldVector: Bool { get }
    /// Row `row` was written at `slot` (in cell `cell` when the collection has cells), replacing
    /// `old` (nil: a new row).
    mutating func written(_ slot: UInt32, _ row: VectorCollection.PreparedRow, cell: Int?, replacing old: StoredRow?) throws
    /// The row `old` was deleted.
    mutating func deleted(_ old: StoredRow) throws
    /// Writes the structure's changes, once per transaction: after the written rows' vectors and
    /// the collection state are stored; for deletes, while the deleted vectors still are.
    mutating func finish() throws
}

/// Every secondary structure the collection has, as one.
struct IndexMaintenance {
    private var parts: [any IndexMaintainer]
    private let cells: CellPostings?
    let needsOldVector: Bool

    /// The structures present in `txn`: postings always; cells (with `cellQuantizer`), codes
    /// and graph when they exist.
    init(_ c: VectorCollection, _ txn: Transaction, cellQuantizer: CoarseQuantizer?) throws {
        var parts: [any IndexMaintainer] = [AttributePostings(c, txn)]
        cells = cellQuantizer.map { CellPostings(c, txn, quantizer: $0) }
        if let cells { parts.append(cells) }
        if let pq = try c.quantizer(txn) { parts.append(CodeStore(c, txn, pq)) }
        if let sq = try c.scalarQuantizer(txn) { parts.append(CodeStore(c, txn, sq)) }
        if try c.graphBuilt(txn) { parts.append(GraphLinks(c, txn)) }
        self.parts = parts
        needsOldVector = parts.contains { $0.needsOldVector }
    }

    /// The cell a vector belongs to (nil without cells).
    func cell(of vector: [Float]) -> Int? { cells?.cell(of: vector) }

    mutating func written(_ slot: UInt32, _ row: VectorCollection.PreparedRow, cell: Int?, replacing old: StoredRow?) throws {
        for i in parts.indices { try parts[i].written(slot, row, cell: cell, replacing: old) }
    }

    mutating func deleted(_ old: StoredRow) throws {
        for i in parts.indices { try parts[i].deleted(old) }
    }

    mutating func finish() throws {
        for i in parts.indices { try parts[i].finish() }
    }
}

/// Attribute postings (one bitmap per indexed value) and the live-row set.
struct AttributePostings: IndexMaintainer {
    private let txn: Transaction
    private let db: Database
    private let schema: Schema
    private let cid: UInt32
    private var delta = AttributeIndex.Delta()

    init(_ c: VectorCollection, _ txn: Transaction) {
        (self.txn, db, schema, cid) = (txn, c.db.postings, c.schema, c.cid)
    }

    var needsOldVector: Bool { false }

    mutating func written(_ slot: UInt32, _ row: VectorCollection.PreparedRow, cell: Int?, replacing old: StoredRow?) throws {
        // The replaced values leave first: the last change to a (key, slot) wins, so a value the
        // new row keeps stays.
        if let old {
            if let a = old.attributes { delta.row(a, slot: slot, schema: schema, cid: cid, present: false) }
        } else {
            delta.live(slot, cid: cid, present: true)
        }
        delta.row(row.row, slot: slot, schema: schema, cid: cid, present: true)
    }

    mutating func deleted(_ old: StoredRow) throws {
        if let a = old.attributes { delta.row(a, slot: old.slot, schema: schema, cid: cid, present: false) }
        delta.live(old.slot, cid: cid, present: false)
    }

    mutating func finish() throws { try delta.apply(txn, db) }
}

/// The rows of each vector cell of a partition layout with cells.
struct CellPostings: IndexMaintainer {
    private let collection: VectorCollection
    private let txn: Transaction
    private let quantizer: CoarseQuantizer
    private var delta = AttributeIndex.Delta()

    init(_ c: VectorCollection, _ txn: Transaction, quantizer: CoarseQuantizer) {
        (collection, self.txn, self.quantizer) = (c, txn, quantizer)
    }

    var needsOldVector: Bool { true }

    func cell(of vector: [Float]) -> Int { vector.withUnsafeBytes { collection.cell(quantizer, of: $0.baseAddress!) } }

    private func cell(ofStored bytes: [UInt8]) -> Int { bytes.withUnsafeBytes { collection.cell(quantizer, of: $0.baseAddress!) } }

    mutating func written(_ slot: UInt32, _ row: VectorCollection.PreparedRow, cell: Int?, replacing old: StoredRow?) throws {
        // Unindexed from the old cell, indexed under the new one (the last change to a key wins,
        // so an unchanged cell stays).
        if let v = old?.vector { delta.cell(self.cell(ofStored: v), slot, cid: collection.cid, present: false) }
        let new = cell ?? self.cell(of: row.vector)
        delta.cell(new, slot, cid: collection.cid, present: true)
    }

    mutating func deleted(_ old: StoredRow) throws {
        if let v = old.vector { delta.cell(cell(ofStored: v), old.slot, cid: collection.cid, present: false) }
    }

    mutating func finish() throws { try delta.apply(txn, collection.db.postings) }
}

/// PQ or SQ8 codes: once the quantizer is trained, every written row gets its codes in the
/// same transaction, and a deleted row's codes go with it.
struct CodeStore: IndexMaintainer {
    private let txn: Transaction
    private let writer: SlotBlocks.Writer
    private var codes: [UInt8]
    private let encode: ([Float], inout [UInt8]) throws -> Void

    init(_ c: VectorCollection, _ txn: Transaction, _ pq: ProductQuantizer) {
        self.init(txn, c.codeBlocks(pq), codeSize: pq.codeSize) { v, out in try c.encode(pq, v, into: &out) }
    }

    init(_ c: VectorCollection, _ txn: Transaction, _ sq: ScalarQuantizer) {
        self.init(txn, c.scalarCodeBlocks, codeSize: sq.dimension) { v, out in
            v.withUnsafeBufferPointer { x in
                out.withUnsafeMutableBytes { sq.encode(x.baseAddress!, into: $0.baseAddress!.assumingMemoryBound(to: Int8.self)) }
            }
        }
    }

    private init(_ txn: Transaction, _ blocks: SlotBlocks, codeSize: Int, encode: @escaping ([Float], inout [UInt8]) throws -> Void) {
        (self.txn, self.encode) = (txn, encode)
        writer = SlotBlocks.Writer(blocks)
        codes = [UInt8](repeating: 0, count: codeSize)
    }

    var needsOldVector: Bool { false }

    mutating func written(_ slot: UInt32, _ row: VectorCollection.PreparedRow, cell: Int?, replacing old: StoredRow?) throws {
        try encode(row.vector, &codes)
        try codes.withUnsafeBytes { try writer.set(txn, slot: slot, $0) }
    }

    mutating func deleted(_ old: StoredRow) throws { try writer.clear(txn, slot: old.slot) }

    mutating func finish() throws { try writer.flush(txn) }
}

/// The HNSW graph: new rows linked, rows whose vector changed re-placed, deleted rows unlinked
/// and their neighbourhoods repaired.
struct GraphLinks: IndexMaintainer {
    private let collection: VectorCollection
    private let txn: Transaction
    private var inserted: [UInt32] = []
    private var insertedSet = Set<UInt32>()
    private var moved = Set<UInt32>()
    private var removed: [UInt32] = []

    init(_ c: VectorCollection, _ txn: Transaction) { (collection, self.txn) = (c, txn) }

    var needsOldVector: Bool { true }

    mutating func written(_ slot: UInt32, _ row: VectorCollection.PreparedRow, cell: Int?, replacing old: StoredRow?) throws {
        guard let old else {
            inserted.append(slot)
            insertedSet.insert(slot)
            return
        }
        // A slot new in this transaction is linked with its last vector anyway.
        guard !insertedSet.contains(slot) else { return }
        if old.vector.map({ o in row.vector.withUnsafeBytes { !$0.elementsEqual(o) } }) ?? true { moved.insert(slot) }
    }

    mutating func deleted(_ old: StoredRow) throws { removed.append(old.slot) }

    mutating func finish() throws {
        try collection.linkIntoGraph(txn, inserted: inserted, moved: moved.sorted())
        try collection.unlinkFromGraph(txn, deleted: removed)
    }
}

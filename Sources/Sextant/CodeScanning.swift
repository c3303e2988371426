import Foundation
import SextantKernels
import SextantStorage

// The per-thread scanning state of the codes plans: one query's pass over the code blocks
// holding its candidates, and what a search thread's queries share in one transaction.

/// One query's scan over the code blocks holding its candidates: rows of the current block
/// are collected, then scored all at once — the whole block contiguously when at least a
/// quarter of it are candidates, else just the candidates.
struct CodeBlockScanner {
    let table: PQDistanceTable
    let per: Int
    var heap: TopK
    var rows: [Int]
    var dist: [Float]
    var n = 0

    init(table: PQDistanceTable, keep: Int, slotsPerBlock per: Int) {
        self.table = table
        self.per = per
        heap = TopK(k: keep)
        rows = [Int](repeating: 0, count: per)
        dist = [Float](repeating: 0, count: per)
    }

    @inline(__always)
    mutating func add(_ row: Int) {
        rows[n] = row
        n += 1
    }

    mutating func flush(_ codes: UnsafePointer<UInt8>, first: UInt64) throws {
        guard n > 0 else { return }
        let (n, per, table) = (self.n, self.per, self.table)
        rows.withUnsafeBufferPointer { r in
            dist.withUnsafeMutableBufferPointer { d in
                if n * 4 >= per {
                    table.distances(codes: codes, count: per, into: d.baseAddress!)
                    for j in 0..<n { _ = heap.insert(distance: d[r[j]], id: first + UInt64(r[j])) }
                } else {
                    table.distances(codes: codes, rows: UnsafeBufferPointer(rebasing: r[0..<n]), into: d.baseAddress!)
                    for j in 0..<n { _ = heap.insert(distance: d[j], id: first + UInt64(r[j])) }
                }
            }
        }
        self.n = 0
    }
}

/// What one thread's searches of a batch share in one transaction: the block readers of the
/// collection, made on first use, so block addresses resolve once per thread instead of once
/// (with a lock on the shared cache) per query; and the code lookup tables of each query
/// vector, so a vector asked with several predicates builds its tables once.
final class ScanSession {
    /// The collection in the session's transaction (readers resolved there once).
    let view: CollectionSnapshot
    private var tables: [Int: PQDistanceTable] = [:]
    private var fastTables: [Int: PQFastScanTable] = [:]
    private var group: PQGroupTable?
    private var byteTables: [Int: PQByteTable] = [:]
    private var codeLists: ([UnsafeRawPointer], [UInt32]) = ([], [])
    /// The batch's tables, shared with its other threads (nil: this session's own only).
    private let shared: BatchTables?

    init(_ view: CollectionSnapshot, shared: BatchTables? = nil) {
        self.view = view
        self.shared = shared
    }

    func vectors() throws -> SlotBlocks.Reader { try view.vectors() }

    /// The float lookup table of a query (the codebook is fixed for the transaction).
    func table(_ q: VectorCollection.PreparedQuery, _ pq: ProductQuantizer) -> PQDistanceTable {
        if let t = tables[q.vectorID] { return t }
        let t = q.vector.withUnsafeBufferPointer { pq.distanceTable(query: $0) }
        tables[q.vectorID] = t
        return t
    }

    /// The quantized (fast-scan) lookup table of a query.
    func fastTable(_ q: VectorCollection.PreparedQuery, _ pq: ProductQuantizer) -> PQFastScanTable {
        if let t = fastTables[q.vectorID] { return t }
        let build = { PQFastScanTable(self.table(q, pq)) }
        let t = shared?.fast.table(q.vectorID, build: build) ?? build()
        fastTables[q.vectorID] = t
        return t
    }

    /// The byte-quantized lookup table of a query (8-bit shared passes).
    func byteTable(_ q: VectorCollection.PreparedQuery, _ pq: ProductQuantizer) -> PQByteTable {
        if let t = byteTables[q.vectorID] { return t }
        // Straight from the vector: the float table is not kept (48 KiB a vector at m = 48).
        let build = { q.vector.withUnsafeBufferPointer { PQByteTable(pq, query: $0) } }
        let t = shared?.bytes.table(q.vectorID, build: build) ?? build()
        byteTables[q.vectorID] = t
        return t
    }

    /// The thread's lists of code addresses and slots (taken, then returned, by a shared pass).
    func takeCodeLists() -> ([UnsafeRawPointer], [UInt32]) {
        defer { codeLists = ([], []) }
        return codeLists
    }

    func returnCodeLists(_ addresses: [UnsafeRawPointer], _ slots: [UInt32]) { codeLists = (addresses, slots) }

    /// The thread's interleaved table buffer for 8-bit shared passes (reused: it is `m · 8` KiB).
    func groupTable(_ pq: ProductQuantizer) -> PQGroupTable {
        if let g = group, g.subspaceCount == pq.subspaceCount { return g }
        let g = PQGroupTable(subspaceCount: pq.subspaceCount)
        group = g
        return g
    }

    func codes(_ pq: ProductQuantizer) throws -> SlotBlocks.Reader { try view.codes(pq) }
}

/// The quantized lookup tables of one batch's query vectors, shared by its search threads: a
/// vector whose groups run on different threads has its tables built once (with 2 threads,
/// building them per thread took twice the time of one thread's share). Keyed by vector number,
/// unique within a batch.
final class BatchTables: Sendable {
    let fast = SharedTables<PQFastScanTable>()
    let bytes = SharedTables<PQByteTable>()
}

/// One kind of table by vector number, for concurrent threads. A table is built outside the
/// lock: two threads may both build one, and the first stored wins.
final class SharedTables<T: Sendable>: @unchecked Sendable {
    private var tables: [Int: T] = [:]
    private let lock = NSLock()

    func table(_ id: Int, build: () -> T) -> T {
        lock.lock()
        if let t = tables[id] { lock.unlock(); return t }
        lock.unlock()
        let t = build()
        lock.lock(); defer { lock.unlock() }
        if let other = tables[id] { return other }
        tables[id] = t
        return t
    }
}

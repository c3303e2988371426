import CSextantSIMD
import Foundation
import SextantFilter
import SextantKernels
import SextantStorage

/// Decoded codebooks shared by every handle of a store, keyed by collection id and checked
/// against the stored version on each use (a rebuild bumps it).
final class QuantizerCache: @unchecked Sendable {
    private var entries: [UInt32: (version: UInt64, pq: ProductQuantizer)] = [:]
    private let lock = NSLock()

    func get(_ cid: UInt32, version: UInt64) -> ProductQuantizer? {
        lock.lock(); defer { lock.unlock() }
        guard let e = entries[cid], e.version == version else { return nil }
        return e.pq
    }

    func put(_ cid: UInt32, version: UInt64, _ pq: ProductQuantizer) {
        lock.lock(); entries[cid] = (version, pq); lock.unlock()
    }
}

/// The state of a collection's approximate index, for `stat` and the planner.
public struct IndexStatus: Sendable, Equatable {
    /// The recipe, canonical form.
    public var recipe: String
    /// Whether the recipe asks for codes: product quantization or SQ8.
    public var wantsCodes: Bool
    /// Whether the quantizer is trained (rows then carry codes, kept up to date on every write).
    public var codesTrained: Bool
    /// Whether the recipe asks for an HNSW graph.
    public var wantsGraph: Bool
    /// Whether the graph is built (rows written later are linked in as they are written).
    public var graphBuilt: Bool
    /// Bytes of code per row.
    public var codeBytes: Int
    /// Rows whose codes were written (all live rows once trained).
    public var codedRows: Int
}

extension VectorCollection {
    /// The parsed recipe (parsed once, when the handle is made: every search consults it).
    var recipe: IndexRecipe { parsedRecipe }

    var pqComponent: (m: Int, bits: Int, fastScan: Bool)? {
        for c in recipe.components { if case .pq(let m, let bits, let fs) = c { return (m, bits, fs) } }
        return nil
    }

    var refines: Bool { recipe.components.contains(.refine) }

    /// The codes plan's re-rank depth when neither the caller nor the recall model sets one:
    /// `max(100, 10k)` with `Refine`, `max(2k, 20)` over SQ8 codes (as SQ8 graph searches re-rank
    /// their beam), else 0 (the codes' own distances).
    func defaultRerank(k: Int) -> Int {
        refines ? max(100, 10 * k) : sq8Component ? max(2 * k, 20) : 0
    }

    var kernelMetric: DistanceKind {
        switch metric { case .l2: .l2; case .ip: .ip; case .cosine: .cosine }
    }

    func indexKey(_ name: String) -> [UInt8] { Keys.prefix(cid) + Array(name.utf8) }

    /// The trained quantizer, or nil before training. Stored as `version u64 LE ‖ serialized`.
    func quantizer(_ txn: Transaction) throws -> ProductQuantizer? {
        guard pqComponent != nil else { return nil }
        let version: UInt64? = try txn.withValue(db.index, key: indexKey("pq")) { v in
            guard v.count > 8 else { throw SextantError(.corrupted, "codebook record has \(v.count) bytes", context: ["collection": name]) }
            return UInt64(littleEndian: v.loadUnaligned(as: UInt64.self))
        }
        guard let version else { return nil }
        if let pq = store.quantizers.get(cid, version: version) { return pq }
        let pq: ProductQuantizer = try txn.withValue(db.index, key: indexKey("pq")) { v in
            do { return try ProductQuantizer(serialized: Array(v[8...])) } catch {
                throw SextantError(.corrupted, "codebook of '\(name)' does not decode: \(error)", context: ["collection": name])
            }
        }!
        guard pq.dimension == dimension else {
            throw SextantError(.corrupted, "codebook of '\(name)' has dimension \(pq.dimension)", context: ["collection": name])
        }
        store.quantizers.put(cid, version: version, pq)
        return pq
    }

    func codeBlocks(_ pq: ProductQuantizer) -> SlotBlocks {
        SlotBlocks(db: db.codes, cid: cid, stride: pq.codeSize)
    }

    /// Builds the recipe's indexes over the collection's rows: trains PQ codebooks (on a
    /// deterministic sample of at most 65,536 rows) and encodes every row, and builds the
    /// HNSW graph on `threads` threads (default: ``Store/Configuration/searchThreads``), then
    /// measures the planner's cost model. Codes and graph are written in one write transaction,
    /// so readers see either the old index or the new one. Rows written later are encoded and
    /// linked as they are written. Safe to call again: it rebuilds.
    ///
    /// `progress` receives free-form log lines (what is being built, on how many rows); for
    /// typed values with a fraction and a rate use `buildIndex(threads:onProgress:)`.
    ///
    /// - Throws: `invalidArgument` when the recipe has neither PQ nor HNSW, the dimension is
    ///   not divisible by the PQ sub-space count, or there are fewer rows than centroids;
    ///   `notFound` when the collection was dropped; storage errors (`mapFull`, `io`, ...).
    public func buildIndex(threads: Int? = nil, progress: ((String) -> Void)? = nil) throws {
        try buildIndex(threads: threads, control: OperationControl(log: progress))
    }

    /// Builds the recipe's indexes (see ``buildIndex(threads:progress:)``), reporting typed
    /// progress: `reading` and `training` for PQ or SQ8, then `reading`, `linking` and `storing`
    /// for the graph, then `encoding` (the codes), then `calibrating`.
    ///
    /// - Throws: as ``buildIndex(threads:progress:)``.
    public func buildIndex(threads: Int? = nil, onProgress: @escaping @Sendable (OperationProgress) -> Void) throws {
        try buildIndex(threads: threads, control: OperationControl(onProgress: onProgress))
    }

    /// The index build, checking `control` for cancellation up to its commit.
    func buildIndex(threads: Int?, control: OperationControl) throws {
        guard pqComponent != nil || hnswComponent != nil || sq8Component else {
            throw SextantError(.invalidArgument, "collection '\(name)' has index \(info.indexRecipe): nothing to build", context: ["collection": name])
        }
        control.expect(steps: (pqComponent != nil || sq8Component ? 3 : 0) + (hnswComponent != nil ? 3 : 0) + 1)
        // Codebooks are trained outside the write transaction (it takes seconds and must not
        // hold the writer); graph and codes are then written in one transaction.
        let pq = pqComponent != nil ? try trainCodebook(control: control) : nil
        let sq = sq8Component ? try trainScalarQuantizer(control: control) : nil
        try control.checkCancellation("the index build")
        // Peak memory: each phase's pages, not those of the rows written or sampled before it.
        store.env.releaseMappedPages()
        try store.env.write { txn in
            _ = try state(txn)
            // The graph first (it links with the float vectors, not the codes): the codes' changed
            // pages, held until the commit, then never sit beside the graph linked in memory,
            // which is freed once stored (1M x 128 SQ8: peak resident memory 1.28 GB with the
            // codes first).
            if hnswComponent != nil {
                try buildGraph(txn, threads: max(1, threads ?? store.configuration.searchThreads), control: control)
                store.env.releaseMappedPages()
            }
            if let pq { try storeCodes(pq, txn, control: control) }
            if let sq { try storeScalarCodes(sq, txn, control: control) }
            // The last point at which stopping leaves the store unchanged.
            try control.checkCancellation("the index build")
        }
        // Committed: the cost model is measured whatever happens to the caller now.
        control.note("measuring the planner's cost model")
        store.env.releaseMappedPages()
        try control.phase(.calibrating) { _ = try calibrate() }
    }

    /// Samples the rows (in a read transaction) and trains a codebook on them.
    func trainCodebook(control: OperationControl) throws -> ProductQuantizer? {
        guard let (m, bits, _) = pqComponent else { return nil }
        let (sample, rows) = try trainingSample(control: control)
        let n = sample.count / dimension
        guard n >= 1 << bits else {
            throw SextantError(.invalidArgument, "collection '\(name)' has \(rows) rows; PQ with \(bits)-bit codes needs at least \(1 << bits) to train", context: ["collection": name])
        }
        control.note("training \(m)x\(bits) codebooks on \(n) vectors")
        return try control.phase(.training) {
            do {
                return try ProductQuantizer(training: sample, dimension: dimension, subspaceCount: m, bits: bits, metric: kernelMetric,
                                            options: PQTrainingOptions(seed: UInt64(cid)))
            } catch {
                throw SextantError(.invalidArgument, "cannot train PQ\(m)x\(bits) for '\(name)': \(error)", context: ["collection": name])
            }
        }
    }

    /// A deterministic sample of at most 65,536 live rows' vectors (row-major) and the row count.
    func trainingSample(control: OperationControl) throws -> (sample: [Float], rows: Int) {
        let sampleLimit = 65_536
        return try store.env.read { txn in
            let st = try state(txn)
            let live = try IndexReader(txn: txn, db: db.postings, cid: cid).live()
            let step = max(1, live.count / sampleLimit)
            var out = [Float]()
            var i = 0
            out.reserveCapacity(min(live.count, sampleLimit) * dimension)
            let reader = try vectorReader(txn)
            control.begin(.reading, total: live.count)
            for slot in live {
                defer { i += 1 }
                if i & 4095 == 0 {
                    try control.checkCancellation("the index build")
                    control.report(i)
                }
                guard i % step == 0, out.count < sampleLimit * dimension else { continue }
                let (_, x) = try vectorEntry(reader, slot)
                out.append(contentsOf: UnsafeBufferPointer(start: x.assumingMemoryBound(to: Float.self), count: dimension))
            }
            control.finishPhase()
            return (out, Int(st.count))
        }
    }

    /// Stores `pq` as the codebook (a new version) and encodes every live row with it.
    func storeCodes(_ pq: ProductQuantizer, _ txn: Transaction, control: OperationControl) throws {
        var codes = [UInt8](repeating: 0, count: pq.codeSize)
        try storeQuantizer(key: "pq", pq.serialized(), codes: codeBlocks(pq), txn, control: control) { x in
            try encode(pq, VectorCollection.floats(x, dimension), into: &codes)
            return codes
        }
    }

    /// Stores a quantizer under index key `key` (`version u64 LE ‖ serialized`, the version one
    /// past the old record's) and replaces every code block with each live row's `encode` of
    /// its vector (the codes of PQ and SQ8 share the codes database; a new quantizer may have
    /// another code size).
    func storeQuantizer(key: String, _ serialized: [UInt8], codes: SlotBlocks, _ txn: Transaction, control: OperationControl,
                        encode: (UnsafeRawPointer) throws -> [UInt8]) throws {
        let live = try IndexReader(txn: txn, db: db.postings, cid: cid).live()
        control.note("encoding \(live.count) rows")
        control.begin(.encoding, total: live.count)
        let old: UInt64 = try txn.withValue(db.index, key: indexKey(key)) { v in
            v.count >= 8 ? UInt64(littleEndian: v.loadUnaligned(as: UInt64.self)) : 0
        } ?? 0
        try txn.put(db.index, key: indexKey(key), value: withUnsafeBytes(of: (old + 1).littleEndian) { Array($0) } + serialized)
        try txn.deleteAll(db.codes, prefix: Keys.prefix(cid))
        let writer = SlotBlocks.Writer(codes)
        let reader = try vectorReader(txn)
        var i = 0
        for slot in live {
            if i & 4095 == 0 {
                try control.checkCancellation("the index build")
                control.report(i)
            }
            i += 1
            let (_, x) = try vectorEntry(reader, slot)
            try encode(x).withUnsafeBytes { try writer.set(txn, slot: slot, $0) }
        }
        try writer.flush(txn)
        control.finishPhase()
    }

    func encode(_ pq: ProductQuantizer, _ vector: [Float], into codes: inout [UInt8]) throws {
        vector.withUnsafeBufferPointer { v in
            codes.withUnsafeMutableBufferPointer { c in pq.encode(vectors: v, into: c) }
        }
    }

    /// The index's state.
    ///
    /// - Throws: `notFound` when the collection was dropped, `corrupted`, storage errors
    ///   (`mapFull`, `io`, `storage`, ...).
    public func indexStatus() throws -> IndexStatus {
        try store.env.read { txn in
            let st = try state(txn)
            let pq = try quantizer(txn)
            let sq = try scalarQuantizer(txn)
            let trained = pq != nil || sq != nil
            return IndexStatus(recipe: info.indexRecipe, wantsCodes: pqComponent != nil || sq8Component, codesTrained: trained,
                               wantsGraph: hnswComponent != nil, graphBuilt: try graphBuilt(txn),
                               codeBytes: pq?.codeSize ?? (sq != nil ? dimension : 0), codedRows: trained ? Int(st.count) : 0)
        }
    }

    // MARK: Search over codes

    /// Approximate search: scan the codes of the candidate rows (all live rows, or the filter's
    /// exact matches) with the query's lookup table, keep the best `rerank` by approximate
    /// distance, and re-score those with their full vectors (or, with `rerank == 0`, return the
    /// best `k` by approximate distance).
    func codeSearch(_ q: PreparedQuery, pq: ProductQuantizer, rerank: Int, candidates: Bitmap, _ txn: Transaction,
                    session: ScanSession? = nil) throws -> TopK {
        let session = try session ?? ScanSession(CollectionSnapshot(self, txn))
        let heap = try codeCandidates(q, pq: pq, keep: rerank > 0 ? max(rerank, q.k) : q.k, candidates: candidates, txn, session: session)
        return try rerankCodes(q, heap, rerank: rerank, txn, vectors: try session.vectors())
    }

    /// The `keep` candidates with the smallest approximate (code) distances, by slot.
    func codeCandidates(_ q: PreparedQuery, pq: ProductQuantizer, keep: Int, candidates: Bitmap, _ txn: Transaction,
                        session: ScanSession) throws -> TopK {
        let table = session.table(q, pq)
        let reader = try session.codes(pq)
        let blocks = reader.blocks
        let per = blocks.slotsPerBlock
        // A local value with mutating methods: its accesses are checked statically (variables
        // captured by a nested function cost a runtime exclusivity check per access).
        var scanner = CodeBlockScanner(table: table, keep: keep, slotsPerBlock: per)
        var currentBlock: UInt32 = .max
        for slot in candidates {
            let b = slot / UInt32(per)
            if b != currentBlock {
                if currentBlock != .max { try scanner.flush(try codeBlock(reader, currentBlock), first: UInt64(currentBlock) * UInt64(per)) }
                currentBlock = b
            }
            scanner.add(Int(slot % UInt32(per)))
        }
        if currentBlock != .max { try scanner.flush(try codeBlock(reader, currentBlock), first: UInt64(currentBlock) * UInt64(per)) }
        return scanner.heap
    }

    private func codeBlock(_ reader: SlotBlocks.Reader, _ b: UInt32) throws -> UnsafePointer<UInt8> {
        guard let base = try reader.blockPointer(b) else {
            throw SextantError(.corrupted, "rows of block \(b) have no codes", context: ["collection": name])
        }
        return base.assumingMemoryBound(to: UInt8.self)
    }

    /// Slots → rows: the best candidates by approximate distance re-scored with full vectors
    /// (or reported with their approximate distances when `rerank` is 0). `vectors` is the
    /// caller's reader of this transaction, so block addresses resolve once per thread.
    func rerankCodes(_ q: PreparedQuery, _ heap: TopK, rerank: Int, _ txn: Transaction,
                     vectors given: SlotBlocks.Reader? = nil) throws -> TopK {
        var out = TopK(k: q.k)
        let d = dimension
        let kind: DistanceKind = metric == .l2 ? .l2 : .ip
        let vectors = try given ?? vectorReader(txn)
        let candidates = heap.unorderedResults
        guard rerank > 0 else {
            for cand in candidates { _ = out.insert(distance: cand.distance, id: try vectorEntry(vectors, UInt32(cand.id)).id) }
            return out
        }
        // Candidates are scattered through the map: resolve their blocks first (no row is
        // read), then score with each row's id, vector and norm requested a few rows ahead.
        let blocks = vectors.blocks
        var bases: [UnsafeRawPointer] = []
        bases.reserveCapacity(candidates.count)
        for cand in candidates {
            let slot = UInt32(cand.id)
            guard let base = try vectors.blockPointer(blocks.block(of: slot)) else {
                throw SextantError(.corrupted, "live slot \(slot) has no vector block", context: ["collection": name, "slot": String(slot)])
            }
            bases.append(base)
        }
        let cosine = metric == .cosine
        let ahead = 6
        q.vector.withUnsafeBytes { qp in
            for j in 0..<(candidates.count + ahead) {
                if j < candidates.count {
                    let slot = UInt32(candidates[j].id)
                    sextant_prefetch(bases[j] + blocks.offset(slot, region: 0), 8)
                    sextant_prefetch(bases[j] + blocks.offset(slot, region: 1), 4 * d)
                    if cosine { sextant_prefetch(bases[j] + blocks.offset(slot, region: 2), 4) }
                }
                let i = j - ahead
                guard i >= 0 else { continue }
                let slot = UInt32(candidates[i].id)
                let base = bases[i]
                var dist = Distance.distance(kind, query: qp.baseAddress!, vector: base + blocks.offset(slot, region: 1), dimension: d)
                if cosine {
                    let norm = base.loadUnaligned(fromByteOffset: blocks.offset(slot, region: 2), as: Float.self)
                    dist = 1 + dist * (norm > 0 ? 1 / norm : 0)
                }
                let id = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: blocks.offset(slot, region: 0), as: UInt64.self))
                _ = out.insert(distance: dist, id: id)
            }
        }
        return out
    }
}

extension IndexRecipe {
    static let flat = try! IndexRecipe(parsing: "Flat")
}

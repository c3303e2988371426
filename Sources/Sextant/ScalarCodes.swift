import SextantKernels
import SextantStorage

// SQ8 recipes: 8-bit scalar codes of every row, which graph traversal scores instead of the
// float32 vectors (a quarter of the bytes per visited node); searches re-rank their beam with
// the full vectors. Stored like PQ codes, in the codes database (`dimension` bytes a slot); the
// quantizer under the collection's `sq8` index key as `version u64 LE ‖ serialized`.

extension VectorCollection {
    var sq8Component: Bool { recipe.components.contains(.sq8) }

    /// The trained scalar quantizer, or nil before training (or without SQ8).
    func scalarQuantizer(_ txn: Transaction) throws -> ScalarQuantizer? {
        guard sq8Component else { return nil }
        let found: ScalarQuantizer?? = try txn.withValue(db.index, key: indexKey("sq8")) { v in
            guard v.count > 8 else { throw SextantError(.corrupted, "SQ8 record has \(v.count) bytes", context: ["collection": name]) }
            do { return try ScalarQuantizer(serialized: UnsafeRawBufferPointer(rebasing: v[8...])) } catch {
                throw SextantError(.corrupted, "SQ8 quantizer of '\(name)' does not decode: \(error)", context: ["collection": name])
            }
        }
        guard let sq = found ?? nil else { return nil }
        guard sq.dimension == dimension else {
            throw SextantError(.corrupted, "SQ8 quantizer of '\(name)' has dimension \(sq.dimension)", context: ["collection": name])
        }
        return sq
    }

    var scalarCodeBlocks: SlotBlocks { SlotBlocks(db: db.codes, cid: cid, stride: dimension) }

    /// Whether rows carry codes a codes plan can score: PQ codebooks or an SQ8 quantizer, trained.
    func hasCodes(_ txn: Transaction) throws -> Bool {
        try quantizer(txn) != nil || scalarQuantizer(txn) != nil
    }

    /// Trains the scalar quantizer on a sample of the rows (outside the write transaction).
    func trainScalarQuantizer(control: OperationControl) throws -> ScalarQuantizer {
        let (sample, rows) = try trainingSample(control: control)
        guard rows > 0 else {
            throw SextantError(.invalidArgument, "collection '\(name)' has no rows to train SQ8 on", context: ["collection": name])
        }
        control.note("training SQ8 on \(sample.count / dimension) vectors")
        return try control.phase(.training) {
            do {
                return try ScalarQuantizer(training: sample, dimension: dimension, kind: metric == .l2 ? .l2 : .ip, normalizes: metric == .cosine)
            } catch {
                throw SextantError(.invalidArgument, "cannot train SQ8 for '\(name)': \(error)", context: ["collection": name])
            }
        }
    }

    /// Stores `sq` (a new version) and encodes every live row with it, replacing all codes.
    func storeScalarCodes(_ sq: ScalarQuantizer, _ txn: Transaction, control: OperationControl) throws {
        var codes = [UInt8](repeating: 0, count: dimension)
        try storeQuantizer(key: "sq8", sq.serialized(), codes: scalarCodeBlocks, txn, control: control) { x in
            codes.withUnsafeMutableBytes { sq.encode(x.assumingMemoryBound(to: Float.self), into: $0.baseAddress!.assumingMemoryBound(to: Int8.self)) }
            return codes
        }
    }
}

extension VectorCollection {
    /// The codes plan over SQ8 codes: the best `keep` of `candidates` by their SQ8 distance
    /// (approximate), as slots with those distances, for ``rerankCodes(_:_:rerank:_:vectors:)``.
    /// A quarter of the bytes of the float vectors per scored row, read a chunk of rows at a time.
    func scalarCandidates(_ q: PreparedQuery, sq: ScalarQuantizer, keep: Int, candidates: Bitmap, _ view: CollectionSnapshot) throws -> TopK {
        var heap = TopK(k: max(1, keep))
        let reader = view.scalarCodes()
        let d = dimension
        let chunk = 256
        try withUnsafeTemporaryAllocation(of: Int16.self, capacity: d) { levels in
            q.vector.withUnsafeBufferPointer { v in sq.quantize(query: v.baseAddress!, into: levels.baseAddress!) }
            try withUnsafeTemporaryAllocation(of: UnsafeRawPointer.self, capacity: chunk) { rows in
                try withUnsafeTemporaryAllocation(of: UInt32.self, capacity: chunk) { slots in
                    try withUnsafeTemporaryAllocation(of: Int32.self, capacity: chunk) { sums in
                        var n = 0
                        func flush() {
                            guard n > 0 else { return }
                            sq.sums(UnsafePointer(levels.baseAddress!), UnsafeBufferPointer(rebasing: rows[0..<n]), into: sums.baseAddress!)
                            for j in 0..<n { heap.insert(distance: sq.distance(fromSum: sums[j]), id: UInt64(slots[j])) }
                            n = 0
                        }
                        for slot in candidates {
                            guard let p = try reader.pointer(slot) else {
                                throw SextantError(.corrupted, "live slot \(slot) has no SQ8 codes", context: ["collection": name, "slot": String(slot)])
                            }
                            rows[n] = p
                            slots[n] = slot
                            n += 1
                            if n == chunk { flush() }
                        }
                        flush()
                    }
                }
            }
        }
        return heap
    }
}

/// The codes a graph search traverses over: the quantizer and a reader of its code blocks.
struct ScalarTraversal {
    let quantizer: ScalarQuantizer
    let reader: SlotBlocks.Reader

    /// Where a node's codes are.
    @inline(__always)
    func codes(_ node: UInt32) throws -> UnsafeRawPointer {
        guard let p = try reader.pointer(node) else {
            throw SextantError(.corrupted, "graph node \(node) has no SQ8 codes", context: ["slot": String(node)])
        }
        return p
    }
}

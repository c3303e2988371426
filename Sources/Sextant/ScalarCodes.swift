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

import Foundation
import CSextantSIMD
import SextantKernels

// Partition-major batch execution (HQI's multi-query optimisation).
//
// Per-predicate groups share work only between queries with the same predicate. A batch often
// holds the same vector under several predicates, and (after `partition`) predicates that cover
// the same partitions. The partition-major pass walks the vector blocks once; in each block every
// distinct query vector whose queries match a row of the block is scored against the rows any of
// its queries needs, with the tiled many-to-many kernel, and each query takes the distances of its
// own matches (its predicate's slots in the block are its mask). A (vector, row) distance is
// computed once however many predicates share it, and a block is read once for the whole batch.
// The pass scores every match of every query in it: it is exact, with the same arithmetic as the
// exact plan, so its results are identical to the exact plan's.

/// The partition-major pass of one batch: its queries, their distinct vectors, and for every block
/// holding a match, which groups match there (a mask of the block's slots per group).
struct PartitionPass: @unchecked Sendable {
    struct Member {
        /// Index of the query in the batch.
        var query: Int
        /// Its vector among the pass's distinct vectors.
        var vector: Int
        var k: Int
    }
    /// The batch groups in the pass.
    let groups: [Int]
    /// Pass members by pass group.
    let members: [[Member]]
    /// Distinct vectors of each pass group.
    let groupVectors: [[Int]]
    /// Distinct query vectors, row-major on 64-byte boundaries (normalised for cosine, as the
    /// exact plan uses them).
    let vectors: AlignedFloats
    let vectorCount: Int
    let memberCount: Int
    let dimension: Int
    let slotsPerBlock: Int
    /// 64-bit words per block mask.
    let words: Int
    /// Blocks holding a match of some pass group, ascending; entries of block i are
    /// entryStart[i]..<entryStart[i + 1].
    let blocks: [UInt32]
    let entryStart: [Int]
    /// Per entry: the pass group and its mask (`words` words) in the block.
    let entryGroup: [Int32]
    let entryMask: [UInt64]

    init(groups: [Int], planned: [VectorCollection.PlannedGroup], dimension: Int, slotsPerBlock: Int) {
        self.groups = groups
        self.dimension = dimension
        self.slotsPerBlock = slotsPerBlock
        let words = (slotsPerBlock + 63) / 64
        self.words = words
        var vectorIndex: [Int: Int] = [:]
        var vectors: [Float] = []
        var members: [[Member]] = []
        var groupVectors: [[Int]] = []
        var memberCount = 0
        for g in groups {
            var mine: [Member] = []
            var seen = Set<Int>()
            for q in planned[g].queries {
                let v: Int
                if let known = vectorIndex[q.vectorID] { v = known } else {
                    v = vectorIndex.count
                    vectorIndex[q.vectorID] = v
                    vectors.append(contentsOf: q.vector)
                }
                mine.append(Member(query: q.index, vector: v, k: q.k))
                seen.insert(v)
            }
            memberCount += mine.count
            members.append(mine)
            groupVectors.append(seen.sorted())
        }
        self.members = members
        self.groupVectors = groupVectors
        self.vectors = AlignedFloats(vectors)
        self.vectorCount = vectorIndex.count
        self.memberCount = memberCount
        // Entries (block, group, mask), grouped by block.
        var raw: [(block: UInt32, group: Int32, mask: [UInt64])] = []
        let per = UInt32(slotsPerBlock)
        for (gi, g) in groups.enumerated() {
            var current: UInt32 = .max
            var mask = [UInt64](repeating: 0, count: words)
            for s in planned[g].candidates {
                let b = s / per
                if b != current {
                    if current != .max { raw.append((current, Int32(gi), mask)) }
                    current = b
                    for w in 0..<words { mask[w] = 0 }
                }
                let bit = Int(s % per)
                mask[bit >> 6] |= 1 << UInt64(bit & 63)
            }
            if current != .max { raw.append((current, Int32(gi), mask)) }
        }
        raw.sort { $0.block < $1.block || ($0.block == $1.block && $0.group < $1.group) }
        var blocks: [UInt32] = [], entryStart: [Int] = [], entryGroup: [Int32] = [], entryMask: [UInt64] = []
        for (i, e) in raw.enumerated() {
            if i == 0 || raw[i - 1].block != e.block {
                blocks.append(e.block)
                entryStart.append(i)
            }
            entryGroup.append(e.group)
            entryMask.append(contentsOf: e.mask)
        }
        entryStart.append(raw.count)
        self.blocks = blocks
        self.entryStart = entryStart
        self.entryGroup = entryGroup
        self.entryMask = entryMask
    }

    /// What one block range produced: a top-k per member (nil: no match there) and matches per group.
    struct Partial {
        var heaps: [[TopK?]]
        var matches: [Int]
    }

    /// A partial result as the batch executor merges it: members in (group, member) order.
    func flatten(_ partial: Partial) -> ([TopK], [VectorCollection.QueryStats]) {
        var heaps: [TopK] = [], stats: [VectorCollection.QueryStats] = []
        heaps.reserveCapacity(memberCount)
        stats.reserveCapacity(memberCount)
        for (g, list) in members.enumerated() {
            for (m, member) in list.enumerated() {
                heaps.append(partial.heaps[g][m] ?? TopK(k: member.k))
                stats.append(.init(rowsScored: partial.matches[g], detail: detail))
            }
        }
        return (heaps, stats)
    }

    /// The explain line of a pass member.
    var detail: String {
        "partition-major pass: \(memberCount) queries of \(groups.count) predicates, \(vectorCount) distinct vectors, \(blocks.count) blocks"
    }

    /// Splits the blocks into about `parts` ranges of similar work (vector-row pairs).
    func ranges(parts: Int) -> [Range<Int>] {
        guard !blocks.isEmpty else { return [] }
        var weight = [Double](repeating: 0, count: blocks.count)
        var total = 0.0
        for i in blocks.indices {
            var w = 0.0
            for e in entryStart[i]..<entryStart[i + 1] {
                w += Double(groupVectors[Int(entryGroup[e])].count)
            }
            weight[i] = w + 1
            total += w + 1
        }
        let target = total / Double(max(1, parts))
        var out: [Range<Int>] = []
        var start = 0, acc = 0.0
        for i in blocks.indices {
            acc += weight[i]
            if acc >= target && out.count < parts - 1 {
                out.append(start..<(i + 1))
                start = i + 1
                acc = 0
            }
        }
        if start < blocks.count { out.append(start..<blocks.count) }
        return out
    }
}

/// Runs block ranges of a ``PartitionPass`` (one per search thread, in its read transaction).
struct PartitionPassRunner {
    let pass: PartitionPass
    let kind: DistanceKind
    let cosine: Bool
    /// Per vector: the words of the rows its queries need in the current block.
    private var need: [UInt64]
    private var stamp: [Int]
    private var active: [Int] = []
    /// Per vector: where its distances start in `out`, and the signature (need mask) it was scored with.
    private var rowStart: [Int]
    /// The current run's query addresses, and its rows' addresses and stored norms in the block.
    private var queryList: [UnsafeRawPointer] = []
    private var rowList: [UnsafeRawPointer] = []
    private var rowNorms: [Float] = []
    private var out: [Float] = []

    init(_ pass: PartitionPass, metric: Metric) {
        self.pass = pass
        kind = metric == .l2 ? .l2 : .ip
        cosine = metric == .cosine
        need = [UInt64](repeating: 0, count: pass.vectorCount * pass.words)
        stamp = [Int](repeating: -1, count: pass.vectorCount)
        rowStart = [Int](repeating: 0, count: pass.vectorCount)
    }

    /// Scores blocks `range` (indices into ``PartitionPass/blocks``); returns a partial top-k per
    /// pass member (by group, then member), nil for members with no match in the range, and the
    /// matches of each pass group in the range.
    mutating func run(_ range: Range<Int>, reader: SlotBlocks.Reader, collection: String) throws -> PartitionPass.Partial {
        var heaps: [[TopK?]] = pass.members.map { [TopK?](repeating: nil, count: $0.count) }
        var matches = [Int](repeating: 0, count: pass.groups.count)
        let layout = reader.blocks
        for i in range {
            let b = pass.blocks[i]
            guard let base = try reader.blockPointer(b) else {
                throw SextantError(.corrupted, "vector block \(b) holding matches is missing",
                                   context: ["collection": collection, "block": String(b)])
            }
            let entries = pass.entryStart[i]..<pass.entryStart[i + 1]
            for e in entries {
                for j in 0..<pass.words { matches[Int(pass.entryGroup[e])] += pass.entryMask[e * pass.words + j].nonzeroBitCount }
            }
            collectNeeds(entries, iteration: i)
            let ids = base + layout.regionOffsets[0]
            scoreBlock(base: base, layout: layout)
            deliver(entries, ids: ids, into: &heaps)
        }
        return PartitionPass.Partial(heaps: heaps, matches: matches)
    }

    /// `need[v]` = OR of the masks of v's groups matching in this block; `active` = those vectors.
    private mutating func collectNeeds(_ entries: Range<Int>, iteration: Int) {
        let w = pass.words
        active.removeAll(keepingCapacity: true)
        for e in entries {
            let g = Int(pass.entryGroup[e])
            for v in pass.groupVectors[g] {
                if stamp[v] != iteration {
                    stamp[v] = iteration
                    for j in 0..<w { need[v * w + j] = 0 }
                    active.append(v)
                }
                for j in 0..<w { need[v * w + j] |= pass.entryMask[e * w + j] }
            }
        }
    }

    private func sameNeed(_ a: Int, _ b: Int) -> Bool {
        let w = pass.words
        for j in 0..<w where need[a * w + j] != need[b * w + j] { return false }
        return true
    }

    /// Scores each run of active vectors sharing a need mask against the mask's rows, with one
    /// tile per run; rows and query vectors are read where they lie.
    private mutating func scoreBlock(base: UnsafeRawPointer, layout: SlotBlocks) {
        let w = pass.words
        active.sort { a, b in
            for j in 0..<w where need[a * w + j] != need[b * w + j] { return need[a * w + j] < need[b * w + j] }
            return a < b
        }
        var total = 0
        var start = 0
        while start < active.count {
            var end = start + 1
            while end < active.count && sameNeed(active[start], active[end]) { end += 1 }
            let v0 = active[start]
            var rows = 0
            for j in 0..<w { rows += need[v0 * w + j].nonzeroBitCount }
            for (r, v) in active[start..<end].enumerated() { rowStart[v] = total + r * rows }
            let count = end - start
            total += count * rows
            if out.count < total { out.append(contentsOf: repeatElement(0, count: total - out.count)) }
            listRows(v0, base: base, layout: layout)
            score(active[start..<end], at: rowStart[v0])
            start = end
        }
    }

    /// The addresses and stored norms of the rows in `need[v]`, where they lie in the block.
    private mutating func listRows(_ v: Int, base: UnsafeRawPointer, layout: SlotBlocks) {
        let w = pass.words
        let per = UInt32(pass.slotsPerBlock)
        rowList.removeAll(keepingCapacity: true)
        rowNorms.removeAll(keepingCapacity: true)
        for j in 0..<w {
            var word = need[v * w + j]
            while word != 0 {
                let slot = UInt32(j * 64 + word.trailingZeroBitCount)
                word &= word - 1
                rowList.append(base + layout.offset(slot % per, region: 1))
                rowNorms.append(base.loadUnaligned(fromByteOffset: layout.offset(slot % per, region: 2), as: Float.self))
            }
        }
    }

    /// One tile of the run's query vectors by the listed rows into `out[at...]` (row stride: the
    /// row count), scored where both lie; then the exact plan's cosine arithmetic:
    /// `1 + (−q̂·x) · (1/‖x‖)`.
    private mutating func score(_ run: ArraySlice<Int>, at offset: Int) {
        let (kind, d, cosine) = (self.kind, pass.dimension, self.cosine)
        let rows = rowList.count
        pass.vectors.withBaseAddress { base in
            queryList.removeAll(keepingCapacity: true)
            for v in run { queryList.append(base + 4 * v * d) }
        }
        let count = run.count
        queryList.withUnsafeBufferPointer { q in
            rowList.withUnsafeBufferPointer { r in
                out.withUnsafeMutableBufferPointer { o in
                    let dst = o.baseAddress! + offset
                    Distance.tile(kind, queries: q.baseAddress!, queryCount: count, rows: r.baseAddress!, rowCount: rows,
                                  dimension: d, into: dst, outputRowStride: rows)
                    guard cosine else { return }
                    rowNorms.withUnsafeMutableBufferPointer { nb in
                        for j in 0..<rows { nb[j] = nb[j] > 0 ? 1 / nb[j] : 0 }
                        for i in 0..<count {
                            for j in 0..<rows { dst[i * rows + j] = 1 + dst[i * rows + j] * nb[j] }
                        }
                    }
                }
            }
        }
    }

    /// Offers each member of each matching group the distances of its own matches in the block.
    private func deliver(_ entries: Range<Int>, ids: UnsafeRawPointer, into heaps: inout [[TopK?]]) {
        let w = pass.words
        out.withUnsafeBufferPointer { o in
            for e in entries {
                let g = Int(pass.entryGroup[e])
                for (m, member) in pass.members[g].enumerated() {
                    let v = member.vector
                    // Taken out of the array while it grows, so that its storage is not copied.
                    var heap = heaps[g][m] ?? TopK(k: member.k)
                    heaps[g][m] = nil
                    var t = heap.threshold
                    // Position of a slot among the rows scored for v: the bits of v's need mask below it.
                    var before = 0
                    for j in 0..<w {
                        let needWord = need[v * w + j]
                        var word = pass.entryMask[e * w + j]
                        while word != 0 {
                            let bit = word.trailingZeroBitCount
                            word &= word - 1
                            let below = needWord & ((1 << UInt64(bit)) &- 1)
                            let dist = o[rowStart[v] + before + below.nonzeroBitCount]
                            if dist <= t {
                                let slot = j * 64 + bit
                                let id = UInt64(littleEndian: ids.loadUnaligned(fromByteOffset: 8 * slot, as: UInt64.self))
                                if heap.insert(distance: dist, id: id) { t = heap.threshold }
                            }
                        }
                        before += needWord.nonzeroBitCount
                    }
                    heaps[g][m] = heap
                }
            }
        }
    }
}

import CSextantSIMD
import SextantKernels
import SextantStorage

// Shared code passes: a group of queries (one predicate, so one candidate set) scores its
// candidates' codes together, each code read once for the whole group.
extension VectorCollection {
    /// The group's best candidates by code distance, re-ranked as in ``codeSearch``: 4-bit codes
    /// by the fast scan, 8-bit codes with byte tables interleaved (``PQGroupTable``). Both rank
    /// by tables quantized to bytes, within a stated bound of the float distances.
    func codeGroupSearch(_ queries: [PreparedQuery], pq: ProductQuantizer, rerank: (Int) -> Int, candidates: Bitmap,
                         _ txn: Transaction, session: ScanSession? = nil) throws -> [TopK] {
        let session = try session ?? ScanSession(CollectionSnapshot(self, txn))
        return pq.bits == 8
            ? try adc8GroupSearch(queries, pq: pq, rerank: rerank, candidates: candidates, txn, session: session)
            : try fastScanGroupSearch(queries, pq: pq, rerank: rerank, candidates: candidates, txn, session: session)
    }

    /// 8-bit codes: the candidates' code addresses are listed once; then each block of 32
    /// queries loads its byte-quantized tables interleaved (``PQGroupTable``) and scores every
    /// listed code (one 32-byte read per sub-space for the 32), keeping per query the codes whose
    /// sum is at or below its heap's bound; the kept sums are dequantized and re-ranked as in
    /// ``codeSearch``.
    private func adc8GroupSearch(_ queries: [PreparedQuery], pq: ProductQuantizer, rerank: (Int) -> Int, candidates: Bitmap,
                                 _ txn: Transaction, session: ScanSession) throws -> [TopK] {
        // Each query keeps its best (sum, slot) pairs; the dequantized distance is increasing in
        // the sum.
        let heaps = SumHeaps(capacities: queries.map { max(rerank($0.k), $0.k) })
        let reader = try session.codes(pq)
        // The session's lists, kept between items: a fresh list of a large group's addresses
        // would be fresh pages to fault in every time.
        var (addresses, slots) = session.takeCodeLists()
        defer { session.returnCodeLists(addresses, slots) }
        addresses.removeAll(keepingCapacity: true)
        slots.removeAll(keepingCapacity: true)
        addresses.reserveCapacity(candidates.count)
        slots.reserveCapacity(candidates.count)
        for slot in candidates {
            addresses.append(try codeAddress(reader, slot))
            slots.append(slot)
        }
        let lanes = PQGroupTable.lanes
        let table = session.groupTable(pq)
        let byteTables = queries.map { session.byteTable($0, pq) }
        // Rows per kernel call: the sums (32 values a row) stay in L1 for the selection.
        let chunk = 256
        var sums = [UInt16](repeating: 0, count: chunk * lanes)
        var hits = [UInt32](repeating: 0, count: chunk * lanes)
        var limits = [UInt16](repeating: 0, count: lanes)
        for first in stride(from: 0, to: queries.count, by: lanes) {
            let block = first..<min(first + lanes, queries.count)
            table.load(Array(byteTables[block]))
            // Lanes past the block's queries: their hits are dropped below.
            for l in 0..<lanes { limits[l] = l < block.count ? heaps.limit(first + l) : 0 }
            // The first call scores only as many codes as the largest heap keeps: every heap is
            // then full, and later codes reach a heap only at or below its threshold.
            var start = 0
            let firstChunk = min(chunk, block.map { heaps.capacity($0) }.max() ?? chunk)
            while start < addresses.count {
                let n = min(start == 0 ? firstChunk : chunk, addresses.count - start)
                defer { start += n }
                addresses.withUnsafeBufferPointer { a in
                    sums.withUnsafeMutableBufferPointer { table.sums(codes: UnsafeBufferPointer(rebasing: a[start..<(start + n)]), into: $0.baseAddress!) }
                }
                let found = sums.withUnsafeBufferPointer { s in
                    limits.withUnsafeBufferPointer { l in
                        hits.withUnsafeMutableBufferPointer { PQGroupTable.atMost(s.baseAddress!, rows: n, limits: l.baseAddress!, into: $0.baseAddress!) }
                    }
                }
                guard found > 0 else { continue }
                hits.withUnsafeBufferPointer { h in
                    sums.withUnsafeBufferPointer { s in
                        slots.withUnsafeBufferPointer { sl in
                            for f in 0..<found {
                                let hit = Int(h[f])
                                let (row, lane) = (hit >> 5, hit & 31)
                                guard lane < block.count else { continue }
                                heaps.offer(first + lane, sum: s[hit], slot: sl[start + row])
                            }
                        }
                    }
                }
                for l in 0..<block.count { limits[l] = heaps.limit(first + l) }
            }
        }
        let vectors = try session.vectors()
        return try queries.indices.map { i in
            var dequantized = TopK(k: heaps.capacity(i))
            for key in heaps.keys(i) {
                _ = dequantized.insert(distance: byteTables[i].distance(sum: UInt16(truncatingIfNeeded: key >> 32)), id: key & 0xFFFF_FFFF)
            }
            return try rerankCodes(queries[i], dequantized, rerank: rerank(queries[i].k), txn, vectors: vectors)
        }
    }

    /// Where a live slot's code lies in the map; a live slot without one is a corrupted store.
    private func codeAddress(_ reader: SlotBlocks.Reader, _ slot: UInt32) throws -> UnsafeRawPointer {
        guard let p = try reader.pointer(slot) else {
            throw SextantError(.corrupted, "row of slot \(slot) has no code", context: ["collection": name])
        }
        return p
    }

    /// Scores the group's candidates' 4-bit codes in one pass: the candidates' codes are
    /// gathered (4,096 at a time) into a contiguous buffer, re-packed for fast scan once, and
    /// scanned with every query's quantized table (`PQFastScanTable`), so reading and
    /// re-packing serve the whole group; then each query's best are re-ranked as in
    /// ``codeSearch``.
    private func fastScanGroupSearch(_ queries: [PreparedQuery], pq: ProductQuantizer, rerank: (Int) -> Int, candidates: Bitmap,
                                     _ txn: Transaction, session: ScanSession) throws -> [TopK] {
        let tables = queries.map { session.fastTable($0, pq) }
        var heaps = queries.map { q in TopK(k: max(rerank(q.k), q.k)) }
        let reader = try session.codes(pq)
        // Buffers sized to the candidates when fewer than a chunk (a lone query over a few
        // hundred matches should not clear 200 KiB).
        let chunk = min(4096, max(32, (candidates.count + 31) / 32 * 32))
        // Addresses of the chunk's codes in the map: packed for fast scan straight from there.
        var addresses: [UnsafeRawPointer] = []
        addresses.reserveCapacity(chunk)
        var slots: [UInt32] = []
        slots.reserveCapacity(chunk)
        var sums = [UInt16](repeating: 0, count: chunk)
        var pairSums = queries.count > 1 ? [UInt16](repeating: 0, count: chunk) : []
        var hits = [UInt32](repeating: 0, count: chunk)
        var iterator = candidates.makeIterator()
        var done = false
        while !done {
            slots.removeAll(keepingCapacity: true)
            addresses.removeAll(keepingCapacity: true)
            while slots.count < chunk, let slot = iterator.next() {
                addresses.append(try codeAddress(reader, slot))
                slots.append(slot)
            }
            done = slots.count < chunk
            guard !slots.isEmpty else { break }
            let codes = addresses.withUnsafeBufferPointer { PQFastScanCodes(codes: $0, subspaceCount: pq.subspaceCount) }
            // Heaps hold raw sums (the dequantized distance is increasing in the sum); one SIMD
            // compare per 16 sums keeps only those at or below the bound.
            let n = slots.count
            // Keeps query i's codes at or below its heap's threshold or, while the heap is not
            // full, the chunk's keep-th smallest sum (one counting pass bounds it from above):
            // the heap sees about `keep` inserts instead of every code of the chunk.
            func select(_ i: Int, _ sums: [UInt16]) {
                // Work on the heap outside the array: no per-insert uniqueness check.
                var heap = TopK(k: 0)
                swap(&heap, &heaps[i])
                let keep = heap.k
                hits.withUnsafeMutableBufferPointer { hp in
                    sums.withUnsafeBufferPointer { sp in
                        slots.withUnsafeBufferPointer { slp in
                            // A full heap's threshold is exact, and after the first chunk it admits
                            // about `keep` sums of a chunk: the counting pass would cost more than
                            // the few extra inserts it saves.
                            let limit = heap.isFull ? UInt16(clamping: Int(heap.threshold))
                                : SumSelection.rankBound(UnsafeBufferPointer(rebasing: sp[0..<n]), rank: min(keep, n))
                            let found = sextant_u16_at_most(sp.baseAddress!, n, limit, hp.baseAddress!)
                            for h in 0..<found {
                                let j = Int(hp[h])
                                _ = heap.insert(distance: Float(sp[j]), id: UInt64(slp[j]))
                            }
                        }
                    }
                }
                swap(&heap, &heaps[i])
            }
            // Heaps hold raw sums (the dequantized distance is increasing in the sum). Queries
            // go in pairs: one pass over the chunk's blocks serves two tables.
            var i = 0
            while i < tables.count {
                if i + 1 < tables.count {
                    sums.withUnsafeMutableBufferPointer { s0 in
                        pairSums.withUnsafeMutableBufferPointer { s1 in PQFastScanTable.sums(tables[i], tables[i + 1], codes: codes, into: s0, s1) }
                    }
                    select(i, sums)
                    select(i + 1, pairSums)
                    i += 2
                } else {
                    sums.withUnsafeMutableBufferPointer { tables[i].sums(codes: codes, into: $0) }
                    select(i, sums)
                    i += 1
                }
            }
        }
        return try queries.indices.map { i in
            var dequantized = TopK(k: heaps[i].k)
            for c in heaps[i].unorderedResults { _ = dequantized.insert(distance: tables[i].distance(sum: UInt16(c.distance)), id: c.id) }
            return try rerankCodes(queries[i], dequantized, rerank: rerank(queries[i].k), txn, vectors: try session.vectors())
        }
    }

}

/// Max-heaps of `sum << 32 | slot` keys, one per query of a shared 8-bit pass, in one buffer:
/// a query keeps its `capacity` smallest keys, i.e. the smallest sums, ties to the smaller slot
/// (``TopK``'s order). One integer compare orders two candidates.
private final class SumHeaps {
    private let storage: UnsafeMutablePointer<UInt64>
    private let offsets: [Int]
    private var counts: [Int]

    init(capacities: [Int]) {
        var offsets = [0]
        for c in capacities { offsets.append(offsets.last! + c) }
        self.offsets = offsets
        storage = .allocate(capacity: max(1, offsets.last!))
        counts = [Int](repeating: 0, count: capacities.count)
    }

    deinit { storage.deallocate() }

    func capacity(_ h: Int) -> Int { offsets[h + 1] - offsets[h] }

    /// The largest sum that can still enter heap `h`. Slots are offered in ascending order, so
    /// once the heap is full a later slot with the top's sum loses the tie: the bound is one
    /// below it (the heap's own compare still decides at a sum of 0).
    func limit(_ h: Int) -> UInt16 {
        let cap = capacity(h)
        guard counts[h] == cap, cap > 0 else { return cap == 0 ? 0 : .max }
        return UInt16(truncatingIfNeeded: max(storage[offsets[h]] >> 32, 1) - 1)
    }

    func keys(_ h: Int) -> UnsafeBufferPointer<UInt64> { UnsafeBufferPointer(start: storage + offsets[h], count: counts[h]) }

    func offer(_ h: Int, sum: UInt16, slot: UInt32) {
        let key = UInt64(sum) << 32 | UInt64(slot)
        let (heap, cap, n) = (storage + offsets[h], offsets[h + 1] - offsets[h], counts[h])
        if n < cap {
            Self.siftUp(heap, from: n, key)
            counts[h] = n + 1
        } else if cap > 0 && key < heap[0] {
            // Replace the largest: move the hole down to a leaf along the larger children (a
            // select per level, no data-dependent exit), then sift the key up from there. Keys
            // arrive in random order, so stopping where the key fits mispredicts a branch at a
            // random depth; this walk mispredicts about once, on the way up.
            var i = 0
            var l = 1
            while l < cap {
                let r = l + 1
                let c = r < cap && heap[r] > heap[l] ? r : l
                heap[i] = heap[c]
                i = c
                l = 2 * i + 1
            }
            Self.siftUp(heap, from: i, key)
        }
    }

    /// Puts `key` in the hole at `i`, moving smaller ancestors down.
    private static func siftUp(_ heap: UnsafeMutablePointer<UInt64>, from hole: Int, _ key: UInt64) {
        var i = hole
        while i > 0 {
            let parent = (i - 1) >> 1
            guard heap[parent] < key else { break }
            heap[i] = heap[parent]
            i = parent
        }
        heap[i] = key
    }
}

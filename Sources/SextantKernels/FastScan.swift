// 4-bit "fast scan" (after FAISS's PQFastScan): codes re-packed 32 vectors to a block, a
// per-query table quantized to bytes, and sums accumulated 32 vectors at a time with
// vpshufb in the C target (portable scalar fallback with identical integer results).

import CSextantSIMD

/// 4-bit PQ codes re-packed for ``PQFastScanTable``: blocks of 32 vectors; within a block,
/// for sub-space `q`, 16 bytes whose byte `i` holds vector `i`'s code in the low nibble and
/// vector `i + 16`'s in the high nibble. The last block is padded with code 0.
public struct PQFastScanCodes: Sendable, Hashable {
    /// Sub-spaces per code (even, at most 256).
    public let subspaceCount: Int
    /// Number of vectors.
    public let count: Int
    /// `blockCount * subspaceCount * 16` bytes.
    public let blocks: [UInt8]

    /// Blocks of 32 vectors (the last possibly partial).
    public var blockCount: Int { (count + 31) / 32 }

    /// Re-packs `count` contiguous 4-bit codes of ``ProductQuantizer/codeSize`` =
    /// `subspaceCount / 2` bytes each.
    public init(packedCodes: UnsafeBufferPointer<UInt8>, count: Int, subspaceCount m: Int) {
        precondition(m > 0 && m % 2 == 0 && m <= 256, "fast scan needs an even subspace count <= 256")
        precondition(count >= 0 && packedCodes.count >= count * (m / 2), "code buffer too small")
        let size = m / 2
        self.init(count: count, subspaceCount: m) { v in packedCodes.baseAddress! + v &* size }
    }

    /// Re-packs the codes at `codes[i]` (each ``ProductQuantizer/codeSize`` bytes, wherever
    /// they lie): scattered codes are packed without first being gathered into one buffer.
    public init(codes: UnsafeBufferPointer<UnsafeRawPointer>, subspaceCount m: Int) {
        precondition(m > 0 && m % 2 == 0 && m <= 256, "fast scan needs an even subspace count <= 256")
        self.init(count: codes.count, subspaceCount: m) { v in codes[v].assumingMemoryBound(to: UInt8.self) }
    }

    @inline(__always)
    private init(count: Int, subspaceCount m: Int, code: (Int) -> UnsafePointer<UInt8>) {
        subspaceCount = m
        self.count = count
        let nb = (count + 31) / 32, size = m / 2
        blocks = [UInt8](unsafeUninitializedCapacity: nb * m * 16) { out, initialized in
            guard count > 0 else { initialized = 0; return }
            let base = out.baseAddress!
            let full = count / 32
            // Whole blocks: 32 code addresses, then a SIMD transpose in C. Scattered codes are
            // cache misses, so the next block's are requested before this one is packed.
            withUnsafeTemporaryAllocation(of: UnsafePointer<UInt8>?.self, capacity: 32) { ptrs in
                for v in 0..<Swift.min(32, count) { sextant_prefetch(code(v), size) }
                for b in 0..<full {
                    for i in 0..<32 { ptrs[i] = code(b &* 32 &+ i) }
                    let next = (b &+ 1) &* 32
                    for v in next..<Swift.min(next &+ 32, count) { sextant_prefetch(code(v), size) }
                    sextant_fastscan_pack32(ptrs.baseAddress!, size, base + b &* m &* 16)
                }
            }
            // The partial last block, padded with code 0.
            if full < nb {
                let tail = base + full &* m &* 16
                tail.initialize(repeating: 0, count: m * 16)
                for v in (full &* 32)..<count {
                    let lane = v & 31, shift: UInt8 = lane < 16 ? 0 : 4
                    let src = code(v)
                    // Byte j of a code holds sub-space 2j (low nibble) and 2j + 1 (high nibble).
                    var dst = tail + (lane & 15)
                    for j in 0..<size {
                        let byte = src[j]
                        dst[0] |= (byte & 15) << shift
                        dst[16] |= (byte >> 4) << shift
                        dst += 32
                    }
                }
            }
            initialized = nb * m * 16
        }
    }

    /// Array form: `packedCodes.count / (subspaceCount / 2)` codes.
    public init(packedCodes: [UInt8], subspaceCount: Int) {
        precondition(subspaceCount > 0 && subspaceCount % 2 == 0, "fast scan needs an even subspace count")
        precondition(packedCodes.count % (subspaceCount / 2) == 0, "codes are not whole vectors")
        let n = packedCodes.count / (subspaceCount / 2)
        self = packedCodes.withUnsafeBufferPointer {
            PQFastScanCodes(packedCodes: $0, count: n, subspaceCount: subspaceCount)
        }
    }
}

/// Which fast-scan accumulation kernel runs. All give identical sums; only speed differs.
public enum FastScanPath: Sendable, Hashable {
    /// The fastest the CPU supports: AVX2, else SSSE3, else scalar.
    case automatic
    /// The portable loop.
    case scalar
    /// 128-bit `pshufb`, one sub-space per step; only valid when ``PQFastScanTable/isSSSE3Available``.
    case ssse3
    /// 256-bit `vpshufb`, two sub-spaces per step; only valid when ``PQFastScanTable/isAVX2Available``.
    case avx2
}

/// A 4-bit ``PQDistanceTable`` quantized to one byte per entry, for ``PQFastScanCodes``.
///
/// Row `j` is shifted by its minimum and all rows share one scale:
/// `lut[j][c] = round((t[j][c] − min_j) · scale)` with `scale = 255 / max_j(max_j − min_j)`,
/// so every entry fits a byte and a code's sum of `m ≤ 256` entries fits 16 bits. The
/// dequantized distance `sum / scale + offset` (`offset = bias + Σ min_j`) differs from the
/// float table's distance by at most ``maxError`` `= m / (2 · scale)` (rounding of each entry
/// by half a step), plus Float rounding of the float sum. The ordering of candidates can
/// therefore differ from the float ADC's only among distances within `2 · maxError`:
/// keep a few hundred candidates and re-rank them exactly.
public struct PQFastScanTable: Sendable, Hashable {
    /// Sub-spaces (`m`).
    public let subspaceCount: Int
    /// `subspaceCount x 16` quantized entries.
    public let lut: [UInt8]
    /// Quantization steps per distance unit.
    public let scale: Float
    /// Added after dividing a sum by ``scale``.
    public let offset: Float

    /// Bound on `|dequantized − float ADC|` from the byte rounding: `m / (2 · scale)`.
    public var maxError: Float { 0.5 * Float(subspaceCount) / scale }

    /// Whether the running CPU has AVX2 (checked once).
    public static var isAVX2Available: Bool { sextant_cpu_has_avx2() != 0 }
    /// Whether the running CPU has SSSE3 (checked once).
    public static var isSSSE3Available: Bool { sextant_cpu_has_ssse3() != 0 }

    /// Quantizes a 4-bit float table.
    public init(_ table: PQDistanceTable) {
        precondition(table.bits == 4, "fast scan needs a 4-bit table")
        let m = table.subspaceCount
        precondition(m % 2 == 0 && m <= 256, "fast scan needs an even subspace count <= 256")
        var mins = [Float](repeating: 0, count: m)
        var widest: Float = 0
        for j in 0..<m {
            let row = table.values[(j * 16)..<(j * 16 + 16)]
            let lo = row.min()!, hi = row.max()!
            mins[j] = lo
            widest = Swift.max(widest, hi - lo)
        }
        // A constant table (all rows flat) quantizes to zeros whatever the scale.
        let scale: Float = widest > 0 && widest.isFinite ? 255 / widest : 1
        var lut = [UInt8](repeating: 0, count: m * 16)
        for j in 0..<m {
            for c in 0..<16 {
                let q = ((table.values[j * 16 + c] - mins[j]) * scale).rounded()
                lut[j * 16 + c] = UInt8(Swift.max(0, Swift.min(255, q.isNaN ? 0 : q)))
            }
        }
        var offset = table.bias
        for j in 0..<m { offset += mins[j] }
        subspaceCount = m
        self.lut = lut
        self.scale = scale
        self.offset = offset
    }

    /// The approximate distance of an accumulated sum.
    @inlinable
    public func distance(sum: UInt16) -> Float { Float(sum) / scale + offset }

    /// Accumulates whole blocks (32 sums each) into `out`.
    private func accumulate(_ codes: PQFastScanCodes, firstBlock: Int, blockCount: Int,
                            path: FastScanPath, into out: UnsafeMutablePointer<UInt16>) {
        precondition(codes.subspaceCount == subspaceCount, "codes and table have different subspace counts")
        var kernel = path
        if kernel == .automatic { kernel = Self.isAVX2Available ? .avx2 : Self.isSSSE3Available ? .ssse3 : .scalar }
        precondition(kernel != .avx2 || Self.isAVX2Available, "AVX2 is not available on this CPU")
        precondition(kernel != .ssse3 || Self.isSSSE3Available, "SSSE3 is not available on this CPU")
        let m = subspaceCount
        codes.blocks.withUnsafeBufferPointer { b in
            lut.withUnsafeBufferPointer { t in
                let start = b.baseAddress! + firstBlock * m * 16
                switch kernel {
                case .avx2: sextant_fastscan_accumulate_avx2(start, blockCount, m, t.baseAddress!, out)
                case .ssse3: sextant_fastscan_accumulate_ssse3(start, blockCount, m, t.baseAddress!, out)
                case .scalar, .automatic: sextant_fastscan_accumulate_scalar(start, blockCount, m, t.baseAddress!, out)
                }
            }
        }
    }

    /// The 16-bit sums of every code into `out`, which must hold `codes.blockCount * 32`
    /// values (the padding of the last block included); for scans that reuse one buffer.
    public func sums(codes: PQFastScanCodes, into out: UnsafeMutableBufferPointer<UInt16>) {
        precondition(out.count >= codes.blockCount * 32, "sum buffer too small")
        guard codes.count > 0 else { return }
        accumulate(codes, firstBlock: 0, blockCount: codes.blockCount, path: .automatic, into: out.baseAddress!)
    }

    /// The sums of two tables over the same codes, into `out0` and `out1` (each
    /// `codes.blockCount * 32` values): identical to two ``sums(codes:into:)`` calls, and with
    /// AVX2 one pass over the blocks serves both (the codes are loaded and split once).
    public static func sums(_ t0: PQFastScanTable, _ t1: PQFastScanTable, codes: PQFastScanCodes,
                            into out0: UnsafeMutableBufferPointer<UInt16>, _ out1: UnsafeMutableBufferPointer<UInt16>) {
        precondition(out0.count >= codes.blockCount * 32 && out1.count >= codes.blockCount * 32, "sum buffer too small")
        precondition(t0.subspaceCount == t1.subspaceCount, "tables have different subspace counts")
        guard codes.count > 0 else { return }
        guard isAVX2Available else {
            t0.sums(codes: codes, into: out0)
            t1.sums(codes: codes, into: out1)
            return
        }
        precondition(codes.subspaceCount == t0.subspaceCount, "codes and table have different subspace counts")
        codes.blocks.withUnsafeBufferPointer { b in
            t0.lut.withUnsafeBufferPointer { l0 in
                t1.lut.withUnsafeBufferPointer { l1 in
                    sextant_fastscan_accumulate2_avx2(b.baseAddress!, codes.blockCount, t0.subspaceCount, l0.baseAddress!, l1.baseAddress!,
                                                      out0.baseAddress!, out1.baseAddress!)
                }
            }
        }
    }

    /// The 16-bit sums of every code (one per vector), before dequantization.
    public func sums(codes: PQFastScanCodes, path: FastScanPath = .automatic) -> [UInt16] {
        guard codes.count > 0 else { return [] }
        var padded = [UInt16](repeating: 0, count: codes.blockCount * 32)
        padded.withUnsafeMutableBufferPointer {
            accumulate(codes, firstBlock: 0, blockCount: codes.blockCount, path: path, into: $0.baseAddress!)
        }
        padded.removeLast(padded.count - codes.count)
        return padded
    }

    /// Approximate (dequantized) distances of every code, within ``maxError`` of the float ADC.
    public func distances(codes: PQFastScanCodes, path: FastScanPath = .automatic) -> [Float] {
        sums(codes: codes, path: path).map { distance(sum: $0) }
    }

    /// The `k` best codes by quantized sum (ties to the smaller id), ids `firstID + index`,
    /// with dequantized distances, best first: the candidates to re-rank exactly. Sums are
    /// computed 256 vectors at a time and filtered against the current k-th best with one
    /// 16-lane compare per 16 sums, so the selection costs little next to the scan.
    public func nearest(codes: PQFastScanCodes, k: Int, firstID: UInt64 = 0,
                        path: FastScanPath = .automatic) -> [Neighbor] {
        var top = TopK(k: k)
        guard k > 0, codes.count > 0 else { return [] }
        // Small chunks keep the rejection limit fresh; sums and hit lists stay in L1.
        let chunkBlocks = 8, chunk = chunkBlocks * 32
        withUnsafeTemporaryAllocation(of: UInt16.self, capacity: chunk) { sumBuf in
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: chunk) { hitBuf in
                let sums = sumBuf.baseAddress!, hits = hitBuf.baseAddress!
                // Sums are integers, exact in Float: select on them, dequantize the winners.
                var limit = UInt16.max
                var block = 0
                while block < codes.blockCount {
                    let nb = Swift.min(chunkBlocks, codes.blockCount - block)
                    accumulate(codes, firstBlock: block, blockCount: nb, path: path, into: sums)
                    let valid = Swift.min(nb * 32, codes.count - block * 32)
                    let found = sextant_u16_at_most(sums, valid, limit, hits)
                    for h in 0..<found {
                        let v = Int(hits[h])
                        if top.insert(distance: Float(sums[v]), id: firstID &+ UInt64(block * 32 + v)), top.isFull {
                            limit = UInt16(top.threshold)
                        }
                    }
                    block += nb
                }
            }
        }
        return top.sortedResults().map { Neighbor(distance: distance(sum: UInt16($0.distance)), id: $0.id) }
    }
}

/// Order statistics of 16-bit sums without a heap.
public enum SumSelection {
    /// A bound `b` with at least `rank` of `sums` at or below it, and few more than needed:
    /// the top of the 256-value bucket (by high byte) that holds the `rank`-th smallest sum.
    /// `UInt16.max` when `rank` exceeds the count. One counting pass; the caller filters with
    /// it and sorts out the survivors (about `rank` plus one bucket) exactly.
    public static func rankBound(_ sums: UnsafeBufferPointer<UInt16>, rank: Int) -> UInt16 {
        guard rank >= 1, rank <= sums.count else { return .max }
        return highBucket(sums, rank: rank) << 8 | 0xFF
    }

    /// The high byte of the `rank`-th smallest sum.
    private static func highBucket(_ sums: UnsafeBufferPointer<UInt16>, rank: Int) -> UInt16 {
        // Four interleaved histograms: sums crowd into few buckets, and a single one would
        // chain every increment on the previous store to the same counter.
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: 4 * 256) { hist -> UInt16 in
            hist.initialize(repeating: 0)
            let h = hist.baseAddress!, s = sums.baseAddress!, n = sums.count
            var j = 0
            while j + 4 <= n {
                h[Int(s[j] &>> 8)] &+= 1
                h[256 + Int(s[j + 1] &>> 8)] &+= 1
                h[512 + Int(s[j + 2] &>> 8)] &+= 1
                h[768 + Int(s[j + 3] &>> 8)] &+= 1
                j += 4
            }
            while j < n { h[Int(s[j] &>> 8)] &+= 1; j += 1 }
            var below = 0, hi = 0
            while true {
                let c = Int(h[hi]) + Int(h[256 + hi]) + Int(h[512 + hi]) + Int(h[768 + hi])
                if below + c >= rank { return UInt16(hi) }
                below += c
                hi += 1
            }
        }
    }
}

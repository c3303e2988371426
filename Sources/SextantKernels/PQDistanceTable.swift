import CSextantSIMD
// Asymmetric distance computation (ADC): per-query tables and the scans that use them.

/// Per-query lookup table for asymmetric distances: entry `(j, c)` is the distance
/// contribution of centroid `c` of sub-space `j`, so a code's approximate distance is
/// `bias + Σ_j table[j][code_j]` — the exact `metric` distance from the (unquantized) query
/// to the code's reconstruction, up to Float rounding.
///
/// Scans sum the entries of each code in the same order (sub-spaces ascending, even and odd
/// sub-spaces in two partial sums added at the end), so contiguous, gathered and top-k
/// scans give bit-identical distances for the same code.
public struct PQDistanceTable: Sendable {
    /// Sub-spaces (`m`).
    public let subspaceCount: Int
    /// 4 or 8: entries per sub-space are `1 << bits`.
    public let bits: Int
    /// `subspaceCount x (1 << bits)` entries, row-major.
    public let values: [Float]
    /// Added to every distance: 1 for cosine (`1 − q·x̂`), 0 otherwise.
    public let bias: Float

    /// A table from its parts (e.g. for tests); ``ProductQuantizer/distanceTable(query:)``
    /// is the usual way to get one.
    public init(subspaceCount: Int, bits: Int, values: [Float], bias: Float = 0) {
        precondition(bits == 4 || bits == 8, "bits must be 4 or 8")
        precondition(subspaceCount > 0 && values.count == subspaceCount << bits, "table size mismatch")
        precondition(bits == 8 || subspaceCount % 2 == 0, "4-bit codes need an even subspace count")
        self.subspaceCount = subspaceCount
        self.bits = bits
        self.values = values
        self.bias = bias
    }

    /// Bytes per code.
    public var codeSize: Int { bits == 8 ? subspaceCount : subspaceCount / 2 }
}

extension ProductQuantizer {
    /// The ADC table of `query` (``dimension`` floats) for this quantizer's metric:
    /// `‖q_j − c‖²` for l2, `−q_j·c` for ip and cosine (cosine normalises the query first and
    /// sets the table's bias to 1).
    public func distanceTable(query: UnsafeBufferPointer<Float>) -> PQDistanceTable {
        let values = [Float](unsafeUninitializedCapacity: subspaceCount * centroidCount) { out, initialized in
            fillDistanceTable(query: query, into: out.baseAddress!)
            initialized = subspaceCount * centroidCount
        }
        return PQDistanceTable(subspaceCount: subspaceCount, bits: bits, values: values,
                               bias: metric == .cosine ? 1 : 0)
    }

    /// Writes the `subspaceCount × centroidCount` entries of ``distanceTable(query:)-(UnsafeBufferPointer<Float>)``
    /// to `out` (the same values; the bias is 1 for cosine, else 0), for callers that keep only
    /// a derived table.
    public func fillDistanceTable(query: UnsafeBufferPointer<Float>, into out: UnsafeMutablePointer<Float>) {
        precondition(query.count == dimension, "dimension mismatch")
        let k = centroidCount, dsub = subspaceDimension
        var scale: Float = 1
        if metric == .cosine, dimension > 0 {
            let norm = Distance.norm(UnsafeRawPointer(query.baseAddress!), dimension: dimension)
            if norm > 0 { scale = 1 / norm }
        }
        // Each entry sums its sub-space's terms in order, one IEEE operation a step (AVX2 eight
        // centroids at a time, or a scalar loop): the same floats on every path.
        centroidsT.withUnsafeBufferPointer { ct in
            sextant_pq_table(ct.baseAddress!, subspaceCount, k, dsub, query.baseAddress!, scale, metric == .l2 ? 1 : 0, out)
        }
    }

    /// Array form of ``distanceTable(query:)-(UnsafeBufferPointer<Float>)``.
    public func distanceTable(query: [Float]) -> PQDistanceTable {
        query.withUnsafeBufferPointer { distanceTable(query: $0) }
    }
}

// MARK: - Scans

extension PQDistanceTable {
    /// Approximate distances of `count` contiguous codes (``codeSize`` bytes each) into `out`.
    public func distances(codes: UnsafePointer<UInt8>, count: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(count >= 0, "negative count")
        let size = codeSize
        scan(count: count, into: out) { codes + $0 * size }
    }

    /// Approximate distances of every code in `codes` (a whole number of codes).
    public func distances(codes: [UInt8]) -> [Float] {
        precondition(codes.count % codeSize == 0, "codes are not whole vectors")
        let n = codes.count / codeSize
        return [Float](unsafeUninitializedCapacity: n) { out, initialized in
            codes.withUnsafeBufferPointer { c in
                if n > 0 { distances(codes: c.baseAddress!, count: n, into: out.baseAddress!) }
            }
            initialized = n
        }
    }

    /// Approximate distances of the codes at `rows` (code `r` starts at `codes + r * codeSize`),
    /// one output per row, in order — for re-scoring a candidate subset in place.
    public func distances(codes: UnsafePointer<UInt8>, rows: UnsafeBufferPointer<Int>, into out: UnsafeMutablePointer<Float>) {
        let size = codeSize
        scan(count: rows.count, into: out) { codes + rows[$0] * size }
    }

    /// Array form of ``distances(codes:rows:into:)``; every row must be in range.
    public func distances(codes: [UInt8], rows: [Int]) -> [Float] {
        let n = codes.count / codeSize
        precondition(rows.allSatisfy { $0 >= 0 && $0 < n }, "row out of range")
        return [Float](unsafeUninitializedCapacity: rows.count) { out, initialized in
            codes.withUnsafeBufferPointer { c in
                rows.withUnsafeBufferPointer { r in
                    if !r.isEmpty { distances(codes: c.baseAddress!, rows: r, into: out.baseAddress!) }
                }
            }
            initialized = rows.count
        }
    }

    /// The `k` nearest of `count` contiguous codes by approximate distance, best first, with
    /// ids `firstID + index` (ties to the smaller id).
    public func nearest(codes: UnsafePointer<UInt8>, count: Int, k: Int, firstID: UInt64 = 0) -> [Neighbor] {
        var top = TopK(k: k)
        let chunk = 512
        withUnsafeTemporaryAllocation(of: Float.self, capacity: chunk) { buf in
            var start = 0
            while start < count {
                let c = Swift.min(chunk, count - start)
                distances(codes: codes + start * codeSize, count: c, into: buf.baseAddress!)
                top.insert(distances: UnsafeBufferPointer(rebasing: buf[0..<c]), firstID: firstID &+ UInt64(start))
                start += c
            }
        }
        return top.sortedResults()
    }

    /// Array form of ``nearest(codes:count:k:firstID:)-(UnsafePointer<UInt8>,_,_,_)``.
    public func nearest(codes: [UInt8], k: Int, firstID: UInt64 = 0) -> [Neighbor] {
        precondition(codes.count % codeSize == 0, "codes are not whole vectors")
        return codes.withUnsafeBufferPointer { c in
            c.isEmpty ? [] : nearest(codes: c.baseAddress!, count: c.count / codeSize, k: k, firstID: firstID)
        }
    }

    /// The `k` nearest of the codes at `rows` (code `r` at `codes + r * codeSize`), best first,
    /// with the row numbers as ids (ties to the smaller row) — e.g. the members of a filter or
    /// of the probed lists.
    public func nearest(codes: UnsafePointer<UInt8>, rows: UnsafeBufferPointer<Int>, k: Int) -> [Neighbor] {
        var top = TopK(k: k)
        let chunk = 512
        withUnsafeTemporaryAllocation(of: Float.self, capacity: chunk) { buf in
            var start = 0
            while start < rows.count {
                let c = Swift.min(chunk, rows.count - start)
                let part = UnsafeBufferPointer(rebasing: rows[start..<(start + c)])
                distances(codes: codes, rows: part, into: buf.baseAddress!)
                var t = top.threshold
                for j in 0..<c where buf[j] <= t {
                    if top.insert(distance: buf[j], id: UInt64(part[j])) { t = top.threshold }
                }
                start += c
            }
        }
        return top.sortedResults()
    }

    /// Array form of ``nearest(codes:rows:k:)-(UnsafePointer<UInt8>,_,_)``; every row must be in range.
    public func nearest(codes: [UInt8], rows: [Int], k: Int) -> [Neighbor] {
        let n = codes.count / codeSize
        precondition(rows.allSatisfy { $0 >= 0 && $0 < n }, "row out of range")
        return codes.withUnsafeBufferPointer { c in
            rows.withUnsafeBufferPointer { r in
                r.isEmpty ? [] : nearest(codes: c.baseAddress!, rows: r, k: k)
            }
        }
    }

    /// Drives the unrolled kernels: four codes at a time, then the rest one by one.
    @inline(__always)
    private func scan(count: Int, into out: UnsafeMutablePointer<Float>, codeAt: (Int) -> UnsafePointer<UInt8>) {
        values.withUnsafeBufferPointer { t in
            let lut = t.baseAddress!, m = subspaceCount, b = bias
            var v = 0
            if bits == 8 {
                while v + 4 <= count {
                    let r = ADC8.four(lut, m, codeAt(v), codeAt(v + 1), codeAt(v + 2), codeAt(v + 3))
                    out[v] = b + r.0; out[v + 1] = b + r.1; out[v + 2] = b + r.2; out[v + 3] = b + r.3
                    v += 4
                }
                while v < count { out[v] = b + ADC8.one(lut, m, codeAt(v)); v += 1 }
            } else {
                while v < count { out[v] = b + ADC4.one(lut, m, codeAt(v)); v += 1 }
            }
        }
    }
}

/// 8-bit ADC sums. Codes are read eight bytes at a time (one load, then shifts) so the table
/// lookups, not the code loads, use the load ports; four codes interleave their independent
/// addition chains. Each code sums even and odd sub-spaces separately, then adds the two:
/// ``ADC8/one(_:_:_:)`` follows the same order, so results never depend on the path.
enum ADC8 {
    @inline(__always)
    static func one(_ lut: UnsafePointer<Float>, _ m: Int, _ c: UnsafePointer<UInt8>) -> Float {
        var e: Float = 0, o: Float = 0
        var j = 0
        while j + 2 <= m {
            e += lut[j &* 256 &+ Int(c[j])]
            o += lut[(j &+ 1) &* 256 &+ Int(c[j &+ 1])]
            j &+= 2
        }
        if j < m { e += lut[j &* 256 &+ Int(c[j])] }
        return e + o
    }

    @inline(__always)
    static func four(
        _ lut: UnsafePointer<Float>, _ m: Int,
        _ c0: UnsafePointer<UInt8>, _ c1: UnsafePointer<UInt8>, _ c2: UnsafePointer<UInt8>, _ c3: UnsafePointer<UInt8>
    ) -> (Float, Float, Float, Float) {
        var e0: Float = 0, e1: Float = 0, e2: Float = 0, e3: Float = 0
        var o0: Float = 0, o1: Float = 0, o2: Float = 0, o3: Float = 0
        var j = 0
        while j + 8 <= m {
            let w0 = UnsafeRawPointer(c0 + j).loadUnaligned(as: UInt64.self)
            let w1 = UnsafeRawPointer(c1 + j).loadUnaligned(as: UInt64.self)
            let w2 = UnsafeRawPointer(c2 + j).loadUnaligned(as: UInt64.self)
            let w3 = UnsafeRawPointer(c3 + j).loadUnaligned(as: UInt64.self)
            let t = lut + j &* 256
            // Unrolled by hand: 8 sub-spaces, alternating even/odd partial sums.
            var s = 0
            while s < 64 {
                let te = t + (s >> 3) &* 256, to = te + 256
                e0 += te[Int((w0 >> UInt64(s)) & 0xFF)]
                e1 += te[Int((w1 >> UInt64(s)) & 0xFF)]
                e2 += te[Int((w2 >> UInt64(s)) & 0xFF)]
                e3 += te[Int((w3 >> UInt64(s)) & 0xFF)]
                o0 += to[Int((w0 >> UInt64(s &+ 8)) & 0xFF)]
                o1 += to[Int((w1 >> UInt64(s &+ 8)) & 0xFF)]
                o2 += to[Int((w2 >> UInt64(s &+ 8)) & 0xFF)]
                o3 += to[Int((w3 >> UInt64(s &+ 8)) & 0xFF)]
                s &+= 16
            }
            j &+= 8
        }
        while j + 2 <= m {
            let te = lut + j &* 256, to = te + 256
            e0 += te[Int(c0[j])]; e1 += te[Int(c1[j])]; e2 += te[Int(c2[j])]; e3 += te[Int(c3[j])]
            o0 += to[Int(c0[j &+ 1])]; o1 += to[Int(c1[j &+ 1])]; o2 += to[Int(c2[j &+ 1])]; o3 += to[Int(c3[j &+ 1])]
            j &+= 2
        }
        if j < m {
            let te = lut + j &* 256
            e0 += te[Int(c0[j])]; e1 += te[Int(c1[j])]; e2 += te[Int(c2[j])]; e3 += te[Int(c3[j])]
        }
        return (e0 + o0, e1 + o1, e2 + o2, e3 + o3)
    }
}

/// 4-bit ADC sums with float tables (the reference the fast scan is checked against):
/// byte `j` holds sub-spaces `2j` (low nibble, "even" sum) and `2j + 1` (high nibble, "odd").
enum ADC4 {
    @inline(__always)
    static func one(_ lut: UnsafePointer<Float>, _ m: Int, _ c: UnsafePointer<UInt8>) -> Float {
        var e: Float = 0, o: Float = 0
        var j = 0
        while j < m {
            let byte = c[j >> 1]
            e += lut[j &* 16 &+ Int(byte & 15)]
            o += lut[(j &+ 1) &* 16 &+ Int(byte >> 4)]
            j &+= 2
        }
        return e + o
    }
}

// Many queries against many vectors: the batch executor's building block.
//
// Two levels of reuse. Cache: vectors are taken in blocks of about `tileBlockBytes`,
// and every query of the batch visits the block while it is still in L1/L2, so one pass
// over a partition's data from memory serves all its queries. Registers: queries go in
// groups of four and vectors in pairs; the 4 × 2 block keeps eight SIMD8 accumulators
// (16 YMM registers on AVX2 hold them plus the operands), so each loaded vector chunk
// serves four queries and each query chunk two vectors.
// Each (query, vector) pair is still accumulated in the canonical order of
// PairKernels.swift, so tile results are bit-identical to ``Distance/oneToMany``.
// Cosine is the dot-product kernel plus each vector's norm², computed once per vector per
// block (in the canonical order, so it equals the fused one-to-many norm bit for bit).

/// Bytes of vector data per cache block: small enough to stay in L2 (512 KiB here) next
/// to the queries it is multiplied with, large enough that the block loop costs nothing.
@usableFromInline let tileBlockBytes = 48 * 1024

/// Four queries against two vectors, each pair in the canonical order. Returns the
/// four sums against `x0` and the four against `x1`.
@inline(__always)
internal func _fourByTwo<T: _PairTerm>(
    _: T.Type, _ q: UnsafeRawPointer, _ qStride: Int, _ x0: UnsafeRawPointer, _ x1: UnsafeRawPointer, _ d: Int
) -> (SIMD4<Float>, SIMD4<Float>) {
    let q0 = q, q1 = q + qStride, q2 = q + 2 &* qStride, q3 = q + 3 &* qStride
    var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
    var b0 = SIMD8<Float>(), b1 = SIMD8<Float>(), b2 = SIMD8<Float>(), b3 = SIMD8<Float>()
    var i = 0
    while i &+ 16 <= d {
        let u0 = _load8(x0, i), u1 = _load8(x0, i &+ 8)
        let v0 = _load8(x1, i), v1 = _load8(x1, i &+ 8)
        var s0 = _load8(q0, i), s1 = _load8(q0, i &+ 8)
        a0 += T.term(s0, u0) + T.term(s1, u1)
        b0 += T.term(s0, v0) + T.term(s1, v1)
        s0 = _load8(q1, i); s1 = _load8(q1, i &+ 8)
        a1 += T.term(s0, u0) + T.term(s1, u1)
        b1 += T.term(s0, v0) + T.term(s1, v1)
        s0 = _load8(q2, i); s1 = _load8(q2, i &+ 8)
        a2 += T.term(s0, u0) + T.term(s1, u1)
        b2 += T.term(s0, v0) + T.term(s1, v1)
        s0 = _load8(q3, i); s1 = _load8(q3, i &+ 8)
        a3 += T.term(s0, u0) + T.term(s1, u1)
        b3 += T.term(s0, v0) + T.term(s1, v1)
        i &+= 16
    }
    if i < d {
        let r = d &- i
        let (u0, u1) = _loadTail(x0, i, r), (v0, v1) = _loadTail(x1, i, r)
        var (s0, s1) = _loadTail(q0, i, r)
        a0 += T.term(s0, u0) + T.term(s1, u1)
        b0 += T.term(s0, v0) + T.term(s1, v1)
        (s0, s1) = _loadTail(q1, i, r)
        a1 += T.term(s0, u0) + T.term(s1, u1)
        b1 += T.term(s0, v0) + T.term(s1, v1)
        (s0, s1) = _loadTail(q2, i, r)
        a2 += T.term(s0, u0) + T.term(s1, u1)
        b2 += T.term(s0, v0) + T.term(s1, v1)
        (s0, s1) = _loadTail(q3, i, r)
        a3 += T.term(s0, u0) + T.term(s1, u1)
        b3 += T.term(s0, v0) + T.term(s1, v1)
    }
    return (SIMD4(_hsum(a0), _hsum(a1), _hsum(a2), _hsum(a3)),
            SIMD4(_hsum(b0), _hsum(b1), _hsum(b2), _hsum(b3)))
}

extension Distance {
    /// The block loop of ``tile(_:queries:queryCount:queryNorms:vectors:vectorCount:dimension:vectorStrideBytes:into:outputRowStride:)``
    /// for one term; `finish(sum, i, j)` turns the pair's sum into its distance.
    @inline(__always)
    internal static func _tile<T: _PairTerm>(
        _: T.Type, queries: UnsafeRawPointer, queryCount: Int, vectors: UnsafeRawPointer, vectorCount: Int,
        dimension d: Int, vectorStride: Int, block: Int, into out: UnsafeMutablePointer<Float>, outputRowStride ldo: Int,
        prepareBlock: (Int, Int) -> Void, finish: (Float, Int, Int) -> Float
    ) {
        let qStride = d &* 4
        var j0 = 0
        while j0 < vectorCount {
            let j1 = min(j0 &+ block, vectorCount)
            prepareBlock(j0, j1)
            var i = 0
            while i &+ 4 <= queryCount {
                let q = queries + i &* qStride
                let o = out + i &* ldo
                var j = j0
                while j &+ 2 <= j1 {
                    let (r0, r1) = _fourByTwo(T.self, q, qStride, vectors + j &* vectorStride,
                                              vectors + (j &+ 1) &* vectorStride, d)
                    for k in 0..<4 {
                        o[k &* ldo &+ j] = finish(r0[k], i &+ k, j)
                        o[k &* ldo &+ j &+ 1] = finish(r1[k], i &+ k, j &+ 1)
                    }
                    j &+= 2
                }
                if j < j1 {
                    // Both terms are symmetric bit for bit, so the vector can play the query.
                    let r = _oneToFour(T.self, vectors + j &* vectorStride,
                                       q, q + qStride, q + 2 &* qStride, q + 3 &* qStride, d)
                    for k in 0..<4 { o[k &* ldo &+ j] = finish(r[k], i &+ k, j) }
                }
                i &+= 4
            }
            while i < queryCount {
                let q = queries + i &* qStride
                var j = j0
                while j &+ 4 <= j1 {
                    let x = vectors + j &* vectorStride
                    let r = _oneToFour(T.self, q, x, x + vectorStride, x + 2 &* vectorStride,
                                       x + 3 &* vectorStride, d)
                    for k in 0..<4 { out[i &* ldo &+ j &+ k] = finish(r[k], i, j &+ k) }
                    j &+= 4
                }
                while j < j1 {
                    out[i &* ldo &+ j] = finish(_pair(T.self, q, vectors + j &* vectorStride, d), i, j)
                    j &+= 1
                }
                i &+= 1
            }
            j0 = j1
        }
    }
}

extension Distance {
    /// A distance matrix: `out[i * outputRowStride + j]` = distance(query i, vector j).
    ///
    /// Results are bit-identical to ``oneToMany(_:query:vectors:count:dimension:strideBytes:queryNorm:into:)``
    /// for every pair.
    ///
    /// - Parameters:
    ///   - queries: `queryCount` packed row-major queries of `dimension` floats, any alignment.
    ///   - queryNorms: cosine only: `queryCount` query norms; computed here when `nil`.
    ///   - vectors: the first vector; vector `j` starts `j * vectorStrideBytes` bytes later
    ///     (`nil`: packed, `dimension * 4`).
    ///   - out: a `queryCount × vectorCount` matrix with rows `outputRowStride` floats apart
    ///     (`nil`: `vectorCount`).
    public static func tile(
        _ kind: DistanceKind,
        queries: UnsafeRawPointer, queryCount: Int, queryNorms: UnsafePointer<Float>? = nil,
        vectors: UnsafeRawPointer, vectorCount: Int, dimension: Int, vectorStrideBytes: Int? = nil,
        into out: UnsafeMutablePointer<Float>, outputRowStride: Int? = nil
    ) {
        precondition(queryCount >= 0 && vectorCount >= 0 && dimension >= 0, "negative size")
        let d = dimension
        let vStride = vectorStrideBytes ?? d &* 4
        let qStride = d &* 4
        let ldo = outputRowStride ?? vectorCount
        precondition(ldo >= vectorCount, "output row stride smaller than vectorCount")
        guard queryCount > 0, vectorCount > 0 else { return }

        // Vectors per cache block (at least a pair, for the 4 × 2 kernel).
        let block = max(2, tileBlockBytes / max(vStride, 1))
        switch kind {
        case .l2:
            _tile(_L2Term.self, queries: queries, queryCount: queryCount, vectors: vectors, vectorCount: vectorCount,
                  dimension: d, vectorStride: vStride, block: block, into: out, outputRowStride: ldo,
                  prepareBlock: { _, _ in }, finish: { s, _, _ in s })
        case .ip:
            _tile(_DotTerm.self, queries: queries, queryCount: queryCount, vectors: vectors, vectorCount: vectorCount,
                  dimension: d, vectorStride: vStride, block: block, into: out, outputRowStride: ldo,
                  prepareBlock: { _, _ in }, finish: { s, _, _ in -s })
        case .cosine:
            // Every query norm (the missing ones computed once) and, per block, every
            // vector's norm²: both in the canonical order, as one-to-many computes them.
            let qNorms = (0..<queryCount).map { i in
                queryNorms?[i] ?? _dot(queries + i &* qStride, queries + i &* qStride, d).squareRoot()
            }
            var xNorms2 = [Float](repeating: 0, count: min(block, vectorCount))
            var base = 0
            qNorms.withUnsafeBufferPointer { qn in
                xNorms2.withUnsafeMutableBufferPointer { xn in
                    _tile(_DotTerm.self, queries: queries, queryCount: queryCount, vectors: vectors,
                          vectorCount: vectorCount, dimension: d, vectorStride: vStride, block: block, into: out,
                          outputRowStride: ldo,
                          prepareBlock: { j0, j1 in
                              base = j0
                              for j in j0..<j1 {
                                  let x = vectors + j &* vStride
                                  xn[j &- j0] = _dot(x, x, d)
                              }
                          },
                          finish: { s, i, j in _cosineDistance(dot: s, queryNorm: qn[i], normSquared: xn[j &- base]) })
                }
            }
        }
    }

    /// Array convenience: the `queries.count / dimension × vectors.count / dimension`
    /// distance matrix, row-major.
    public static func tile(
        _ kind: DistanceKind, queries: [Float], vectors: [Float], dimension: Int
    ) -> [Float] {
        precondition(dimension > 0 && queries.count % dimension == 0 && vectors.count % dimension == 0,
                     "arrays are not whole rows of the dimension")
        let nq = queries.count / dimension, nv = vectors.count / dimension
        return [Float](unsafeUninitializedCapacity: nq * nv) { out, initialized in
            if nq > 0 && nv > 0 {
                queries.withUnsafeBytes { q in
                    vectors.withUnsafeBytes { x in
                        tile(kind, queries: q.baseAddress!, queryCount: nq, vectors: x.baseAddress!,
                             vectorCount: nv, dimension: dimension, into: out.baseAddress!)
                    }
                }
            }
            initialized = nq * nv
        }
    }
}

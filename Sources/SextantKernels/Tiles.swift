// Many queries against many vectors: the batch executor's building block.
//
// Two levels of reuse. Cache: vectors are taken in blocks of about `tileBlockBytes`,
// and every query of the batch visits the block while it is still in L1/L2, so one pass
// over a partition's data from memory serves all its queries. Registers: queries and
// vectors go in pairs; the 2 × 2 block keeps four SIMD16 accumulators (8 YMM registers on
// AVX2, leaving room for the operands), so each loaded chunk serves two pairs.
// Each (query, vector) pair is still accumulated in the canonical order of
// PairKernels.swift, so tile results are bit-identical to ``Distance/oneToMany``.
// Cosine is the dot-product kernel plus each vector's norm², computed once per vector per
// block (in the canonical order, so it equals the fused one-to-many norm bit for bit).

import CSextantSIMD

/// Bytes of vector data per cache block: small enough to stay in L2 (512 KiB here) next
/// to the queries it is multiplied with, large enough that the block loop costs nothing.
/// 48 KiB measured slightly ahead of 24 KiB (3–8 %, 256 × 100,000 × 384, haswell build).
@usableFromInline let tileBlockBytes = 48 * 1024

/// Two queries against two vectors, each pair in the canonical order: four SIMD16
/// accumulators (8 YMM registers on AVX2), each loaded chunk used twice. Returns the
/// four sums (q0 with x0, q1 with x0, q0 with x1, q1 with x1).
@inline(__always)
internal func _twoByTwo<T: _PairTerm>(
    _: T.Type, _ q0: UnsafeRawPointer, _ q1: UnsafeRawPointer, _ x0: UnsafeRawPointer, _ x1: UnsafeRawPointer, _ d: Int
) -> SIMD4<Float> {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), b0 = SIMD16<Float>(), b1 = SIMD16<Float>()
    var i = 0
    while i &+ 16 <= d {
        let u = _load16(x0, i), v = _load16(x1, i)
        var s = _load16(q0, i)
        a0 += T.term(s, u)
        b0 += T.term(s, v)
        s = _load16(q1, i)
        a1 += T.term(s, u)
        b1 += T.term(s, v)
        i &+= 16
    }
    if i < d {
        let r = d &- i
        let u = _loadTail(x0, i, r), v = _loadTail(x1, i, r)
        var s = _loadTail(q0, i, r)
        a0 += T.term(s, u)
        b0 += T.term(s, v)
        s = _loadTail(q1, i, r)
        a1 += T.term(s, u)
        b1 += T.term(s, v)
    }
    return SIMD4(_hsum(a0), _hsum(a1), _hsum(b0), _hsum(b1))
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
        // The AVX2 kernel computes the same raw sums in the same order (tile_avx2.c), twice
        // as wide as the baseline build's SSE.
        let accelerated = sextant_distance_dispatch() != 0
        var j0 = 0
        while j0 < vectorCount {
            let j1 = min(j0 &+ block, vectorCount)
            prepareBlock(j0, j1)
            if accelerated {
                var i = 0
                while i < queryCount {
                    let q0 = queries + i &* qStride
                    let two = i &+ 1 < queryCount
                    let o0 = out + i &* ldo, o1 = o0 + ldo
                    sextant_tile_rows_avx2(T.isL2 ? 1 : 0, q0.assumingMemoryBound(to: Float.self),
                                           two ? (q0 + qStride).assumingMemoryBound(to: Float.self) : nil,
                                           vectors + j0 &* vectorStride, vectorStride, j1 &- j0, d, o0 + j0, two ? o1 + j0 : nil)
                    for j in j0..<j1 { o0[j] = finish(o0[j], i, j) }
                    if two { for j in j0..<j1 { o1[j] = finish(o1[j], i &+ 1, j) } }
                    i &+= two ? 2 : 1
                }
                j0 = j1
                continue
            }
            var i = 0
            while i &+ 2 <= queryCount {
                let q0 = queries + i &* qStride, q1 = q0 + qStride
                let o0 = out + i &* ldo, o1 = o0 + ldo
                var j = j0
                while j &+ 2 <= j1 {
                    let x0 = vectors + j &* vectorStride
                    let r = _twoByTwo(T.self, q0, q1, x0, x0 + vectorStride, d)
                    o0[j] = finish(r[0], i, j)
                    o1[j] = finish(r[1], i &+ 1, j)
                    o0[j &+ 1] = finish(r[2], i, j &+ 1)
                    o1[j &+ 1] = finish(r[3], i &+ 1, j &+ 1)
                    j &+= 2
                }
                if j < j1 {
                    let x = vectors + j &* vectorStride
                    o0[j] = finish(_pair(T.self, q0, x, d), i, j)
                    o1[j] = finish(_pair(T.self, q1, x, d), i &+ 1, j)
                }
                i &+= 2
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

        // Vectors per cache block (at least a pair, for the 2 × 2 kernel).
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

extension Distance {
    /// A distance matrix over queries and vectors given by address: `out[i * outputRowStride + j]`
    /// = distance(the query at `queries[i]`, the vector at `rows[j]`), for `.l2` (squared) and
    /// `.ip` (negated dot).
    ///
    /// Rows scattered through a memory map are scored where they lie, and queries where they are
    /// kept, with no copy; results are bit-identical to ``tile(_:queries:queryCount:queryNorms:vectors:vectorCount:dimension:vectorStrideBytes:into:outputRowStride:)``
    /// and ``oneToMany(_:query:vectors:count:dimension:strideBytes:queryNorm:into:)`` for every
    /// pair. Cosine callers use `.ip` on the normalised query and apply each row's stored norm.
    /// Queries on 64-byte boundaries load fastest (each is read once per vector).
    ///
    /// - Parameters:
    ///   - queries: `queryCount` addresses, each of `dimension` floats at any alignment.
    ///   - rows: `rowCount` addresses, each of `dimension` floats at any alignment.
    ///   - out: a `queryCount × rowCount` matrix with rows `outputRowStride` floats apart.
    public static func tile(
        _ kind: DistanceKind, queries: UnsafePointer<UnsafeRawPointer>, queryCount: Int, rows: UnsafePointer<UnsafeRawPointer>,
        rowCount: Int, dimension d: Int, into out: UnsafeMutablePointer<Float>, outputRowStride ldo: Int
    ) {
        precondition(kind != .cosine, "the listed tile takes .l2 or .ip")
        precondition(queryCount >= 0 && rowCount >= 0 && d >= 0 && ldo >= rowCount, "bad tile shape")
        guard queryCount > 0, rowCount > 0 else { return }
        // Rows per cache block, as in the strided tile: every query visits a block while it
        // is in L1/L2.
        let block = max(2, tileBlockBytes / max(4 &* d, 1))
        var j0 = 0
        while j0 < rowCount {
            let n = min(block, rowCount &- j0)
            if kind == .l2 {
                _tileListed(_L2Term.self, queries, queryCount, rows + j0, n, d, out + j0, ldo)
            } else {
                _tileListed(_DotTerm.self, queries, queryCount, rows + j0, n, d, out + j0, ldo)
            }
            j0 &+= n
        }
        if kind == .ip {
            for i in 0..<queryCount {
                let o = out + i &* ldo
                for j in 0..<rowCount { o[j] = -o[j] }
            }
        }
    }

    /// Raw sums of one block of listed rows: the AVX2 kernel two queries at a time, or the
    /// portable 2 × 2 kernel (the same canonical order).
    @inline(__always)
    internal static func _tileListed<T: _PairTerm>(
        _: T.Type, _ queries: UnsafePointer<UnsafeRawPointer>, _ nq: Int, _ rows: UnsafePointer<UnsafeRawPointer>, _ n: Int,
        _ d: Int, _ out: UnsafeMutablePointer<Float>, _ ldo: Int
    ) {
        if sextant_distance_dispatch() != 0 {
            // The C signature takes `const void *const *`: an array of optional pointers in Swift.
            rows.withMemoryRebound(to: UnsafeRawPointer?.self, capacity: n) { list in
                var i = 0
                while i < nq {
                    let two = i &+ 1 < nq
                    sextant_tile_list_avx2(T.isL2 ? 1 : 0, queries[i].assumingMemoryBound(to: Float.self),
                                           two ? queries[i &+ 1].assumingMemoryBound(to: Float.self) : nil,
                                           list, n, d, out + i &* ldo, two ? out + (i &+ 1) &* ldo : nil)
                    i &+= two ? 2 : 1
                }
            }
            return
        }
        var i = 0
        while i &+ 2 <= nq {
            let q0 = queries[i], q1 = queries[i &+ 1]
            let o0 = out + i &* ldo, o1 = o0 + ldo
            var j = 0
            while j &+ 2 <= n {
                let r = _twoByTwo(T.self, q0, q1, rows[j], rows[j &+ 1], d)
                (o0[j], o1[j], o0[j &+ 1], o1[j &+ 1]) = (r[0], r[1], r[2], r[3])
                j &+= 2
            }
            if j < n {
                o0[j] = _pair(T.self, q0, rows[j], d)
                o1[j] = _pair(T.self, q1, rows[j], d)
            }
            i &+= 2
        }
        if i < nq {
            let q = queries[i]
            for j in 0..<n { out[i &* ldo &+ j] = _pair(T.self, q, rows[j], d) }
        }
    }
}

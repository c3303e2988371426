// Many queries against many vectors: the batch executor's building block.
//
// Two levels of reuse. Cache: vectors are taken in blocks of about `tileBlockBytes`,
// and every query of the batch visits the block while it is still in L1/L2, so one pass
// over a partition's data from memory serves all its queries. Registers: queries go in
// pairs, and each loaded chunk of a vector is used for both queries of the pair.
// Each (query, vector) pair is still accumulated in the canonical order of
// PairKernels.swift, so tile results are bit-identical to ``Distance/oneToMany``.

/// Bytes of vector data per cache block. Half of a 512 KiB L2 would also do; 64 KiB
/// measured as well as larger blocks here (AMD EPYC, 128-d) and leaves room for queries.
@usableFromInline let tileBlockBytes = 64 * 1024

/// Two squared L2 distances sharing the loads of `x`.
@inlinable
internal func _squaredL2x2(
    _ q0: UnsafeRawPointer, _ q1: UnsafeRawPointer, _ x: UnsafeRawPointer, _ d: Int
) -> (Float, Float) {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
    var b0 = SIMD16<Float>(), b1 = SIMD16<Float>()
    var i = 0
    while i &+ 32 <= d {
        let x0 = _load16(x, i), x1 = _load16(x, i &+ 16)
        let p0 = _load16(q0, i) - x0, p1 = _load16(q0, i &+ 16) - x1
        let r0 = _load16(q1, i) - x0, r1 = _load16(q1, i &+ 16) - x1
        a0 += p0 * p0
        a1 += p1 * p1
        b0 += r0 * r0
        b1 += r1 * r1
        i &+= 32
    }
    if i &+ 16 <= d {
        let x0 = _load16(x, i)
        let p0 = _load16(q0, i) - x0, r0 = _load16(q1, i) - x0
        a0 += p0 * p0
        b0 += r0 * r0
        i &+= 16
    }
    var a4 = SIMD4<Float>(), b4 = SIMD4<Float>()
    while i &+ 4 <= d {
        let x0 = _load4(x, i)
        let p0 = _load4(q0, i) - x0, r0 = _load4(q1, i) - x0
        a4 += p0 * p0
        b4 += r0 * r0
        i &+= 4
    }
    var sa = _hsum(a0 + a1) + _hsum(a4)
    var sb = _hsum(b0 + b1) + _hsum(b4)
    while i < d {
        let xv = _load1(x, i)
        let p = _load1(q0, i) - xv, r = _load1(q1, i) - xv
        sa += p * p
        sb += r * r
        i &+= 1
    }
    return (sa, sb)
}

/// Two dot products sharing the loads of `x`.
@inlinable
internal func _dotx2(
    _ q0: UnsafeRawPointer, _ q1: UnsafeRawPointer, _ x: UnsafeRawPointer, _ d: Int
) -> (Float, Float) {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
    var b0 = SIMD16<Float>(), b1 = SIMD16<Float>()
    var i = 0
    while i &+ 32 <= d {
        let x0 = _load16(x, i), x1 = _load16(x, i &+ 16)
        a0 += _load16(q0, i) * x0
        a1 += _load16(q0, i &+ 16) * x1
        b0 += _load16(q1, i) * x0
        b1 += _load16(q1, i &+ 16) * x1
        i &+= 32
    }
    if i &+ 16 <= d {
        let x0 = _load16(x, i)
        a0 += _load16(q0, i) * x0
        b0 += _load16(q1, i) * x0
        i &+= 16
    }
    var a4 = SIMD4<Float>(), b4 = SIMD4<Float>()
    while i &+ 4 <= d {
        let x0 = _load4(x, i)
        a4 += _load4(q0, i) * x0
        b4 += _load4(q1, i) * x0
        i &+= 4
    }
    var sa = _hsum(a0 + a1) + _hsum(a4)
    var sb = _hsum(b0 + b1) + _hsum(b4)
    while i < d {
        let xv = _load1(x, i)
        sa += _load1(q0, i) * xv
        sb += _load1(q1, i) * xv
        i &+= 1
    }
    return (sa, sb)
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

        // Cosine needs every query norm; compute the missing ones once.
        var norms: [Float] = []
        if kind == .cosine {
            norms = (0..<queryCount).map { i in
                queryNorms?[i] ?? _dot(queries + i &* qStride, queries + i &* qStride, d).squareRoot()
            }
        }
        let block = max(1, tileBlockBytes / max(vStride, 1))
        var j0 = 0
        while j0 < vectorCount {
            let j1 = min(j0 &+ block, vectorCount)
            var i = 0
            while i &+ 2 <= queryCount {
                let q0 = queries + i &* qStride, q1 = q0 + qStride
                let o0 = out + i &* ldo, o1 = o0 + ldo
                switch kind {
                case .l2:
                    for j in j0..<j1 {
                        let (a, b) = _squaredL2x2(q0, q1, vectors + j &* vStride, d)
                        o0[j] = a
                        o1[j] = b
                    }
                case .ip:
                    for j in j0..<j1 {
                        let (a, b) = _dotx2(q0, q1, vectors + j &* vStride, d)
                        o0[j] = -a
                        o1[j] = -b
                    }
                case .cosine:
                    // The vector's norm is computed per query (as oneToMany does) so the
                    // result stays bit-identical; the second pass hits L1.
                    let n0 = norms[i], n1 = norms[i &+ 1]
                    for j in j0..<j1 {
                        let x = vectors + j &* vStride
                        let (a, na) = _dotAndNormSquared(q0, x, d)
                        let (b, nb) = _dotAndNormSquared(q1, x, d)
                        o0[j] = _cosineDistance(dot: a, queryNorm: n0, normSquared: na)
                        o1[j] = _cosineDistance(dot: b, queryNorm: n1, normSquared: nb)
                    }
                }
                i &+= 2
            }
            if i < queryCount {
                oneToMany(kind, query: queries + i &* qStride, vectors: vectors + j0 &* vStride,
                          count: j1 &- j0, dimension: d, strideBytes: vStride,
                          queryNorm: kind == .cosine ? norms[i] : nil, into: out + i &* ldo + j0)
            }
            j0 = j1
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

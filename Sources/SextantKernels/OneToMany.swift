import CSextantSIMD

// One query against many vectors: the exact-scan building block.
//
// Vectors are taken one at a time, in memory order. Interleaving several vectors (one
// accumulator chain each) measured slower on the 51 MB scan: reading four rows 512 bytes
// apart in lockstep defeats the hardware prefetcher (1.2–1.9x the streaming time against
// 0.9–1.4x one row at a time, baseline build), while the out-of-order core already overlaps
// consecutive independent rows. Every pair is summed in the canonical order of
// PairKernels.swift.

extension Distance {
    /// The scan behind every form whose vectors are all addressable at once.
    /// `vectorAt(j)` must be cheap and pure (an address computation or a table read).
    @inline(__always)
    internal static func _oneToMany(
        _ kind: DistanceKind, query: UnsafeRawPointer, count: Int, dimension d: Int, queryNorm: Float?,
        into out: UnsafeMutablePointer<Float>, vectorAt: (Int) -> UnsafeRawPointer
    ) {
        // The AVX2 kernel sums in the same canonical order (tile_avx2.c): the same bits.
        let accelerated = d >= 16 && sextant_distance_dispatch() != 0
        let q = query.assumingMemoryBound(to: Float.self)
        switch kind {
        case .l2 where accelerated:
            for j in 0..<count { out[j] = sextant_pair_avx2(1, q, vectorAt(j).assumingMemoryBound(to: Float.self), d) }
        case .l2:
            for j in 0..<count { out[j] = _squaredL2(query, vectorAt(j), d) }
        case .ip where accelerated:
            for j in 0..<count { out[j] = -sextant_pair_avx2(0, q, vectorAt(j).assumingMemoryBound(to: Float.self), d) }
        case .ip:
            for j in 0..<count { out[j] = -_dot(query, vectorAt(j), d) }
        case .cosine:
            let qn = queryNorm ?? _dot(query, query, d).squareRoot()
            for j in 0..<count {
                let (dt, n2) = _dotAndNormSquared(query, vectorAt(j), d)
                out[j] = _cosineDistance(dot: dt, queryNorm: qn, normSquared: n2)
            }
        }
    }
}

extension Distance {
    /// Distances from one query to `count` vectors laid out at a fixed stride.
    ///
    /// - Parameters:
    ///   - query: `dimension` floats, any alignment.
    ///   - vectors: the first vector; vector `j` starts `j * strideBytes` bytes later.
    ///   - strideBytes: bytes between consecutive vectors; `nil` means packed row-major
    ///     (`dimension * 4`). A larger stride scans records in place, e.g. `.fvecs`
    ///     records (`4 + dimension * 4`, starting at byte 4).
    ///   - queryNorm: cosine only; computed from `query` when `nil`.
    ///   - out: receives `count` distances.
    public static func oneToMany(
        _ kind: DistanceKind, query: UnsafeRawPointer, vectors: UnsafeRawPointer,
        count: Int, dimension: Int, strideBytes: Int? = nil, queryNorm: Float? = nil,
        into out: UnsafeMutablePointer<Float>
    ) {
        precondition(count >= 0 && dimension >= 0, "negative count or dimension")
        let stride = strideBytes ?? dimension &* 4
        _oneToMany(kind, query: query, count: count, dimension: dimension, queryNorm: queryNorm,
                   into: out) { vectors + $0 &* stride }
    }

    /// Distances from one query to vectors scattered in memory (read one by one from
    /// storage), one output per pointer.
    public static func gathered(
        _ kind: DistanceKind, query: UnsafeRawPointer, vectors: UnsafeBufferPointer<UnsafeRawPointer>,
        dimension: Int, queryNorm: Float? = nil, into out: UnsafeMutablePointer<Float>
    ) {
        precondition(dimension >= 0, "negative dimension")
        _oneToMany(kind, query: query, count: vectors.count, dimension: dimension, queryNorm: queryNorm,
                   into: out) { vectors[$0] }
    }

    /// Distances from one query to `count` vectors whose addresses a closure supplies
    /// (`vectorAt(j)` is called once per `j`, in increasing order). The pointer it returns
    /// only needs to stay valid until the next call — e.g. a zero-copy value inside a
    /// read transaction.
    @inlinable
    public static func gathered(
        _ kind: DistanceKind, query: UnsafeRawPointer, count: Int, dimension: Int,
        queryNorm: Float? = nil, into out: UnsafeMutablePointer<Float>,
        vectorAt: (Int) throws -> UnsafeRawPointer
    ) rethrows {
        precondition(count >= 0 && dimension >= 0, "negative count or dimension")
        switch kind {
        case .l2:
            for j in 0..<count { out[j] = _squaredL2(query, try vectorAt(j), dimension) }
        case .ip:
            for j in 0..<count { out[j] = -_dot(query, try vectorAt(j), dimension) }
        case .cosine:
            let qn = queryNorm ?? _dot(query, query, dimension).squareRoot()
            for j in 0..<count {
                let (d, n2) = _dotAndNormSquared(query, try vectorAt(j), dimension)
                out[j] = _cosineDistance(dot: d, queryNorm: qn, normSquared: n2)
            }
        }
    }

    /// Buffer form: distances from `query` to each `query.count`-float row of `vectors`,
    /// written to `out` (which must hold at least one slot per row).
    public static func oneToMany(
        _ kind: DistanceKind, query: UnsafeBufferPointer<Float>, vectors: UnsafeBufferPointer<Float>,
        into out: UnsafeMutableBufferPointer<Float>
    ) {
        let d = query.count
        precondition(d > 0 ? vectors.count % d == 0 : vectors.isEmpty, "vectors are not whole rows")
        let n = d > 0 ? vectors.count / d : 0
        precondition(out.count >= n, "output buffer too small")
        guard n > 0 else { return }
        oneToMany(kind, query: UnsafeRawPointer(query.baseAddress!), vectors: UnsafeRawPointer(vectors.baseAddress!),
                  count: n, dimension: d, into: out.baseAddress!)
    }

    /// Array convenience: distances from `query` to each row of `vectors`
    /// (row-major, `vectors.count / query.count` rows).
    public static func oneToMany(_ kind: DistanceKind, query: [Float], vectors: [Float]) -> [Float] {
        let d = query.count
        precondition(d > 0 ? vectors.count % d == 0 : vectors.isEmpty, "vectors are not whole rows")
        let n = d > 0 ? vectors.count / d : 0
        return [Float](unsafeUninitializedCapacity: n) { out, initialized in
            query.withUnsafeBytes { q in
                vectors.withUnsafeBytes { x in
                    if n > 0 {
                        oneToMany(kind, query: q.baseAddress!, vectors: x.baseAddress!, count: n,
                                  dimension: d, into: out.baseAddress!)
                    }
                }
            }
            initialized = n
        }
    }
}

// The primitive kernels and the one canonical accumulation order they all follow.
//
// Every entry point (one-to-one, one-to-many, gathered, tiles) produces bit-identical
// results for the same pair of vectors — batch answers then equal online answers, ties
// included — because every pair is summed in this order:
//
//   1. the vectors are read in chunks of 16 floats; the last, partial chunk is padded
//      with zeros (a padded lane contributes an exact 0);
//   2. per chunk, the 16 per-element terms ((q_i − x_i)² or q_i x_i) are added lane-wise
//      into ONE SIMD16 accumulator per pair: `acc += term(chunk)`;
//   3. the accumulator is reduced pairwise: lanes 0–7 + 8–15, then 0–3 + 4–7, then
//      0–1 + 2–3, then 0 + 1.
//
// Why this order: a single accumulator per pair is what lets a tile keep a block of
// 2 queries × 2 vectors (4 pairs, 8 YMM registers on AVX2) in registers with every loaded
// chunk reused twice. It is also the form LLVM vectorizes cleanly: Swift's SIMD arithmetic
// is lane-wise code that LLVM re-vectorizes, and variants that add the two halves of a chunk
// before the accumulator, or route the step through a generic helper taking `inout acc`,
// came out half-scalar (squared L2 one-to-one 3–5x slower on the haswell build).
//
// Plain `*` and `+` are used on purpose: `addingProduct` becomes a per-lane libcall
// without FMA in the target, and Swift never contracts `a * b + c` into an FMA, so results
// do not depend on the target CPU flags either.
//
// Pointers are raw and read with `loadUnaligned`, so vectors need no alignment at all
// (an `.fvecs` record's floats start 4 bytes into the record; test data starts at odd
// bytes). Preconditions (non-negative dimension, readable memory) are the caller's; the
// public wrappers check what they can outside the loops. No kernel reads past
// `dimension` floats of any vector: the padded tail is copied out first.

/// The per-element term of a kernel: how one chunk of a query and a vector contributes.
@usableFromInline
internal protocol _PairTerm {
    static func term(_ q: SIMD16<Float>, _ x: SIMD16<Float>) -> SIMD16<Float>
    /// True for `(q − x)²`, false for `q x`: which term the C kernels compute.
    static var isL2: Bool { get }
}

/// `(q − x)²`: squared L2. Symmetric bit for bit, since negation is exact.
@usableFromInline
internal enum _L2Term: _PairTerm {
    @usableFromInline static var isL2: Bool { true }
    @inlinable @inline(__always)
    static func term(_ q: SIMD16<Float>, _ x: SIMD16<Float>) -> SIMD16<Float> {
        let t = q - x
        return t * t
    }
}

/// `q x`: inner product.
@usableFromInline
internal enum _DotTerm: _PairTerm {
    @usableFromInline static var isL2: Bool { false }
    @inlinable @inline(__always)
    static func term(_ q: SIMD16<Float>, _ x: SIMD16<Float>) -> SIMD16<Float> { q * x }
}

/// Step 3 of the canonical order.
@inlinable @inline(__always)
internal func _hsum(_ v: SIMD16<Float>) -> Float {
    let v8 = v.lowHalf + v.highHalf
    let v4 = v8.lowHalf + v8.highHalf
    let v2 = v4.lowHalf + v4.highHalf
    return v2[0] + v2[1]
}

@inlinable @inline(__always)
internal func _load16(_ p: UnsafeRawPointer, _ i: Int) -> SIMD16<Float> {
    p.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
}

/// The `count` (< 16) floats at float index `i`, zero-padded to 16 — the canonical last
/// chunk. Copies instead of over-reading: the vector may end at the end of a mapping.
@inlinable @inline(__always)
internal func _loadTail(_ p: UnsafeRawPointer, _ i: Int, _ count: Int) -> SIMD16<Float> {
    var v = SIMD16<Float>()
    withUnsafeMutableBytes(of: &v) { $0.baseAddress!.copyMemory(from: p + i &* 4, byteCount: count &* 4) }
    return v
}

/// One pair in the canonical order.
@inlinable @inline(__always)
internal func _pair<T: _PairTerm>(_: T.Type, _ q: UnsafeRawPointer, _ x: UnsafeRawPointer, _ d: Int) -> Float {
    var acc = SIMD16<Float>()
    var i = 0
    while i &+ 16 <= d {
        acc += T.term(_load16(q, i), _load16(x, i))
        i &+= 16
    }
    if i < d {
        acc += T.term(_loadTail(q, i, d &- i), _loadTail(x, i, d &- i))
    }
    return _hsum(acc)
}

/// Σ (a_i − b_i)² over `d` floats.
@inlinable @inline(__always)
internal func _squaredL2(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ d: Int) -> Float {
    _pair(_L2Term.self, a, b, d)
}

/// Σ a_i b_i over `d` floats.
@inlinable @inline(__always)
internal func _dot(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ d: Int) -> Float {
    _pair(_DotTerm.self, a, b, d)
}

/// (Σ q_i x_i, Σ x_i²) in one pass over `x`: cosine needs both and `x` is the operand
/// that comes from memory, so reading it once matters. Each sum is in the canonical order,
/// so the norm equals `_dot(x, x, d)` bit for bit.
@inlinable @inline(__always)
internal func _dotAndNormSquared(
    _ q: UnsafeRawPointer, _ x: UnsafeRawPointer, _ d: Int
) -> (dot: Float, normSquared: Float) {
    var dot = SIMD16<Float>(), nrm = SIMD16<Float>()
    var i = 0
    while i &+ 16 <= d {
        let x0 = _load16(x, i)
        dot += _DotTerm.term(_load16(q, i), x0)
        nrm += _DotTerm.term(x0, x0)
        i &+= 16
    }
    if i < d {
        let q0 = _loadTail(q, i, d &- i), x0 = _loadTail(x, i, d &- i)
        dot += _DotTerm.term(q0, x0)
        nrm += _DotTerm.term(x0, x0)
    }
    return (_hsum(dot), _hsum(nrm))
}

/// One query against four vectors, each pair in the canonical order: four independent
/// accumulator chains, and each query chunk is loaded once for all four. Used by tiles
/// (cache-resident data); the streaming one-to-many scan goes row by row instead.
@inlinable @inline(__always)
internal func _oneToFour<T: _PairTerm>(
    _: T.Type, _ q: UnsafeRawPointer,
    _ x0: UnsafeRawPointer, _ x1: UnsafeRawPointer, _ x2: UnsafeRawPointer, _ x3: UnsafeRawPointer, _ d: Int
) -> SIMD4<Float> {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
    var i = 0
    while i &+ 16 <= d {
        let s = _load16(q, i)
        a0 += T.term(s, _load16(x0, i))
        a1 += T.term(s, _load16(x1, i))
        a2 += T.term(s, _load16(x2, i))
        a3 += T.term(s, _load16(x3, i))
        i &+= 16
    }
    if i < d {
        let r = d &- i
        let s = _loadTail(q, i, r)
        a0 += T.term(s, _loadTail(x0, i, r))
        a1 += T.term(s, _loadTail(x1, i, r))
        a2 += T.term(s, _loadTail(x2, i, r))
        a3 += T.term(s, _loadTail(x3, i, r))
    }
    return SIMD4(_hsum(a0), _hsum(a1), _hsum(a2), _hsum(a3))
}

/// Turns a dot product and the two norms into `1 − cos`; a zero norm gives 1 (see
/// ``DistanceKind/cosine``). The division happens in Float, once per pair.
@inlinable @inline(__always)
internal func _cosineDistance(dot: Float, queryNorm: Float, normSquared: Float) -> Float {
    let denominator = queryNorm * normSquared.squareRoot()
    return denominator > 0 ? 1 - dot / denominator : 1
}

/// Two pairs sharing the query, each in the canonical order (so each result equals the
/// one-pair kernel bit for bit); the two vectors' loads interleave, so their cache misses
/// overlap — what graph traversal, which scores scattered vectors, is bound by.
@inlinable @inline(__always)
internal func _pair2<T: _PairTerm>(_: T.Type, _ q: UnsafeRawPointer, _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ d: Int) -> (Float, Float) {
    var accA = SIMD16<Float>(), accB = SIMD16<Float>()
    var i = 0
    while i &+ 16 <= d {
        let s = _load16(q, i)
        accA += T.term(s, _load16(a, i))
        accB += T.term(s, _load16(b, i))
        i &+= 16
    }
    if i < d {
        let s = _loadTail(q, i, d &- i)
        accA += T.term(s, _loadTail(a, i, d &- i))
        accB += T.term(s, _loadTail(b, i, d &- i))
    }
    return (_hsum(accA), _hsum(accB))
}

extension Distance {
    /// `(q·a, q·b)`, each equal to ``dot(_:_:dimension:)`` bit for bit.
    @inlinable
    public static func dotPair(_ q: UnsafeRawPointer, _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, dimension: Int) -> (Float, Float) {
        precondition(dimension >= 0, "negative dimension")
        return _pair2(_DotTerm.self, q, a, b, dimension)
    }

    /// `(‖q − a‖², ‖q − b‖²)`, each equal to ``squaredL2(_:_:dimension:)`` bit for bit.
    @inlinable
    public static func squaredL2Pair(_ q: UnsafeRawPointer, _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, dimension: Int) -> (Float, Float) {
        precondition(dimension >= 0, "negative dimension")
        return _pair2(_L2Term.self, q, a, b, dimension)
    }
}

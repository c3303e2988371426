// The primitive kernels and the one canonical accumulation order they all follow.
//
// Every entry point (one-to-one, one-to-many, gathered, tiles) produces bit-identical
// results for the same pair of vectors — batch answers then equal online answers, ties
// included — because every pair is summed in this order:
//
//   1. the vectors are read in chunks of 16 floats; the last, partial chunk is padded
//      with zeros (a padded lane contributes an exact 0);
//   2. per chunk, the 16 per-element terms t_i ((q_i − x_i)² or q_i x_i) are added as
//      `acc += t[0..<8] + t[8..<16]` into ONE SIMD8 accumulator per pair;
//   3. the accumulator is reduced pairwise: (lanes 0–3 + 4–7), then (0–1 + 2–3), then 0 + 1.
//
// Why this order: one SIMD8 accumulator per pair is what lets a tile keep a block of
// 4 queries × 2 vectors (8 pairs) in registers (16 YMM registers on AVX2); adding the two halves before the accumulator halves the
// loop-carried add chain, so a lone one-to-one call is not latency-bound.
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
/// Kernels spell each chunk step out as `acc += T.term(lo) + T.term(hi)`: Swift's SIMD
/// arithmetic is lane-wise code that LLVM re-vectorizes, and routing the step through a
/// generic helper taking `inout acc` defeated that (half-scalar loops, measured 1.8x slower).
@usableFromInline
internal protocol _PairTerm {
    static func term(_ q: SIMD8<Float>, _ x: SIMD8<Float>) -> SIMD8<Float>
}

/// `(q − x)²`: squared L2. Symmetric bit for bit, since negation is exact.
@usableFromInline
internal enum _L2Term: _PairTerm {
    @inlinable @inline(__always)
    static func term(_ q: SIMD8<Float>, _ x: SIMD8<Float>) -> SIMD8<Float> {
        let t = q - x
        return t * t
    }
}

/// `q x`: inner product.
@usableFromInline
internal enum _DotTerm: _PairTerm {
    @inlinable @inline(__always)
    static func term(_ q: SIMD8<Float>, _ x: SIMD8<Float>) -> SIMD8<Float> { q * x }
}

/// Step 3 of the canonical order.
@inlinable @inline(__always)
internal func _hsum(_ v: SIMD8<Float>) -> Float {
    let v4 = v.lowHalf + v.highHalf
    let v2 = v4.lowHalf + v4.highHalf
    return v2[0] + v2[1]
}

@inlinable @inline(__always)
internal func _load8(_ p: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
    p.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
}

/// The `count` (< 16) floats at float index `i`, zero-padded to 16 — the canonical last
/// chunk. Copies instead of over-reading: the vector may end at the end of a mapping.
@inlinable @inline(__always)
internal func _loadTail(_ p: UnsafeRawPointer, _ i: Int, _ count: Int) -> (SIMD8<Float>, SIMD8<Float>) {
    var v = SIMD16<Float>()
    withUnsafeMutableBytes(of: &v) { $0.baseAddress!.copyMemory(from: p + i &* 4, byteCount: count &* 4) }
    return (v.lowHalf, v.highHalf)
}

/// One pair in the canonical order.
@inlinable @inline(__always)
internal func _pair<T: _PairTerm>(_: T.Type, _ q: UnsafeRawPointer, _ x: UnsafeRawPointer, _ d: Int) -> Float {
    var acc = SIMD8<Float>()
    var i = 0
    while i &+ 16 <= d {
        acc += T.term(_load8(q, i), _load8(x, i)) + T.term(_load8(q, i &+ 8), _load8(x, i &+ 8))
        i &+= 16
    }
    if i < d {
        let (q0, q1) = _loadTail(q, i, d &- i), (x0, x1) = _loadTail(x, i, d &- i)
        acc += T.term(q0, x0) + T.term(q1, x1)
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
    var dot = SIMD8<Float>(), nrm = SIMD8<Float>()
    var i = 0
    while i &+ 16 <= d {
        let x0 = _load8(x, i), x1 = _load8(x, i &+ 8)
        dot += _DotTerm.term(_load8(q, i), x0) + _DotTerm.term(_load8(q, i &+ 8), x1)
        nrm += _DotTerm.term(x0, x0) + _DotTerm.term(x1, x1)
        i &+= 16
    }
    if i < d {
        let (q0, q1) = _loadTail(q, i, d &- i), (x0, x1) = _loadTail(x, i, d &- i)
        dot += _DotTerm.term(q0, x0) + _DotTerm.term(q1, x1)
        nrm += _DotTerm.term(x0, x0) + _DotTerm.term(x1, x1)
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
    var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
    var i = 0
    while i &+ 16 <= d {
        let q0 = _load8(q, i), q1 = _load8(q, i &+ 8)
        a0 += T.term(q0, _load8(x0, i)) + T.term(q1, _load8(x0, i &+ 8))
        a1 += T.term(q0, _load8(x1, i)) + T.term(q1, _load8(x1, i &+ 8))
        a2 += T.term(q0, _load8(x2, i)) + T.term(q1, _load8(x2, i &+ 8))
        a3 += T.term(q0, _load8(x3, i)) + T.term(q1, _load8(x3, i &+ 8))
        i &+= 16
    }
    if i < d {
        let r = d &- i
        let (q0, q1) = _loadTail(q, i, r)
        var (v0, v1) = _loadTail(x0, i, r)
        a0 += T.term(q0, v0) + T.term(q1, v1)
        (v0, v1) = _loadTail(x1, i, r)
        a1 += T.term(q0, v0) + T.term(q1, v1)
        (v0, v1) = _loadTail(x2, i, r)
        a2 += T.term(q0, v0) + T.term(q1, v1)
        (v0, v1) = _loadTail(x3, i, r)
        a3 += T.term(q0, v0) + T.term(q1, v1)
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

// The four primitive one-to-one kernels: squared L2, dot, norm² and fused dot + norm².
//
// Every kernel follows one canonical accumulation order so that every entry point
// (one-to-one, one-to-many, gathered, tiles) produces bit-identical results for the same
// pair of vectors — batch answers then equal online answers, ties included:
//
//   1. two SIMD16 accumulators over 32-float chunks (chunk halves alternate between them);
//   2. one more 16-float chunk into the first accumulator, if it fits;
//   3. a SIMD4 accumulator over 4-float chunks;
//   4. reduce: horizontal(acc0 + acc1) + horizontal(acc4), then a scalar tail.
//
// On a baseline x86-64 build a SIMD16<Float> operation is four independent SSE
// operations, so two accumulators already give eight independent add chains (enough to
// hide the add latency); more accumulators only add register pressure for the tiles.
// Plain `acc += d * d` is used on purpose: `addingProduct` becomes a per-lane libcall
// without FMA in the target (see the brief's toolchain facts), and Swift never contracts
// `a * b + c` into an FMA, so results do not depend on the target CPU flags.
//
// Pointers are raw and read with `loadUnaligned`, so vectors need no alignment at all
// (an `.fvecs` record's floats start 4 bytes into the record; test data starts at odd
// bytes). Preconditions (non-negative dimension, readable memory) are the caller's;
// the public wrappers check what they can outside the loops.

/// Adds the lanes of `v` in a fixed pairwise order (the reduction is part of the
/// canonical order; `SIMD.sum()` does not promise one).
@inlinable @inline(__always)
internal func _hsum(_ v: SIMD16<Float>) -> Float {
    let v8 = v.lowHalf + v.highHalf
    let v4 = v8.lowHalf + v8.highHalf
    let v2 = v4.lowHalf + v4.highHalf
    return v2[0] + v2[1]
}

@inlinable @inline(__always)
internal func _hsum(_ v: SIMD4<Float>) -> Float {
    let v2 = v.lowHalf + v.highHalf
    return v2[0] + v2[1]
}

@inlinable @inline(__always)
internal func _load16(_ p: UnsafeRawPointer, _ i: Int) -> SIMD16<Float> {
    p.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
}

@inlinable @inline(__always)
internal func _load4(_ p: UnsafeRawPointer, _ i: Int) -> SIMD4<Float> {
    p.loadUnaligned(fromByteOffset: i &* 4, as: SIMD4<Float>.self)
}

@inlinable @inline(__always)
internal func _load1(_ p: UnsafeRawPointer, _ i: Int) -> Float {
    p.loadUnaligned(fromByteOffset: i &* 4, as: Float.self)
}

/// Σ (a_i − b_i)² over `d` floats.
@inlinable @inline(__always)
internal func _squaredL2(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ d: Int) -> Float {
    var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
    var i = 0
    while i &+ 32 <= d {
        let d0 = _load16(a, i) - _load16(b, i)
        let d1 = _load16(a, i &+ 16) - _load16(b, i &+ 16)
        acc0 += d0 * d0
        acc1 += d1 * d1
        i &+= 32
    }
    if i &+ 16 <= d {
        let d0 = _load16(a, i) - _load16(b, i)
        acc0 += d0 * d0
        i &+= 16
    }
    var acc4 = SIMD4<Float>()
    while i &+ 4 <= d {
        let d0 = _load4(a, i) - _load4(b, i)
        acc4 += d0 * d0
        i &+= 4
    }
    var s = _hsum(acc0 + acc1) + _hsum(acc4)
    while i < d {
        let t = _load1(a, i) - _load1(b, i)
        s += t * t
        i &+= 1
    }
    return s
}

/// Σ a_i b_i over `d` floats.
@inlinable @inline(__always)
internal func _dot(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ d: Int) -> Float {
    var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
    var i = 0
    while i &+ 32 <= d {
        acc0 += _load16(a, i) * _load16(b, i)
        acc1 += _load16(a, i &+ 16) * _load16(b, i &+ 16)
        i &+= 32
    }
    if i &+ 16 <= d {
        acc0 += _load16(a, i) * _load16(b, i)
        i &+= 16
    }
    var acc4 = SIMD4<Float>()
    while i &+ 4 <= d {
        acc4 += _load4(a, i) * _load4(b, i)
        i &+= 4
    }
    var s = _hsum(acc0 + acc1) + _hsum(acc4)
    while i < d {
        s += _load1(a, i) * _load1(b, i)
        i &+= 1
    }
    return s
}

/// (Σ q_i x_i, Σ x_i²) in one pass over `x`: cosine needs both and `x` is the operand
/// that comes from memory, so reading it once matters.
@inlinable @inline(__always)
internal func _dotAndNormSquared(
    _ q: UnsafeRawPointer, _ x: UnsafeRawPointer, _ d: Int
) -> (dot: Float, normSquared: Float) {
    var dot0 = SIMD16<Float>(), dot1 = SIMD16<Float>()
    var nrm0 = SIMD16<Float>(), nrm1 = SIMD16<Float>()
    var i = 0
    while i &+ 32 <= d {
        let x0 = _load16(x, i), x1 = _load16(x, i &+ 16)
        dot0 += _load16(q, i) * x0
        dot1 += _load16(q, i &+ 16) * x1
        nrm0 += x0 * x0
        nrm1 += x1 * x1
        i &+= 32
    }
    if i &+ 16 <= d {
        let x0 = _load16(x, i)
        dot0 += _load16(q, i) * x0
        nrm0 += x0 * x0
        i &+= 16
    }
    var dot4 = SIMD4<Float>(), nrm4 = SIMD4<Float>()
    while i &+ 4 <= d {
        let x0 = _load4(x, i)
        dot4 += _load4(q, i) * x0
        nrm4 += x0 * x0
        i &+= 4
    }
    var sd = _hsum(dot0 + dot1) + _hsum(dot4)
    var sn = _hsum(nrm0 + nrm1) + _hsum(nrm4)
    while i < d {
        let xv = _load1(x, i)
        sd += _load1(q, i) * xv
        sn += xv * xv
        i &+= 1
    }
    return (sd, sn)
}

/// Turns a dot product and the two norms into `1 − cos`; a zero norm gives 1 (see
/// ``DistanceKind/cosine``). The division happens in Float, once per pair.
@inlinable @inline(__always)
internal func _cosineDistance(dot: Float, queryNorm: Float, normSquared: Float) -> Float {
    let denominator = queryNorm * normSquared.squareRoot()
    return denominator > 0 ? 1 - dot / denominator : 1
}

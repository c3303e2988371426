import CSextantSIMD

/// Distance kernels for graph traversal, dispatched at run time: AVX2 + FMA C kernels when
/// the CPU has them (a plain release build cannot assume either, and Swift has no per-function
/// target attribute), otherwise the portable ``Distance`` kernels.
///
/// The accelerated kernels sum in another order and fuse multiply-adds, so a distance may
/// differ from ``Distance``'s in the last bits: with u = 2⁻²⁴ and t_i the exact per-element
/// terms, each is within `(⌈d/8⌉ + 8) · u · Σ|t_i|` of the exact value. That is fine for
/// choosing which nodes to visit, not for exact plans, which need identical results however
/// pairs are batched: those keep ``Distance``. Searches report their results' distances with
/// the reference kernels (``GraphDistanceSource/resultDistance(_:to:)``).
public enum TraversalDistance {
    /// True when the AVX2 + FMA kernels are in use on this thread. Setting the environment
    /// variable `SEXTANT_PORTABLE_KERNELS=1` before the first search turns them off for the
    /// whole process.
    @inlinable
    public static var isAccelerated: Bool { sextant_distance_dispatch() != 0 }

    /// Forces the portable kernels (`true`) or restores run-time dispatch (`false`) on the
    /// calling thread only: a test hook that cannot switch kernels under other threads' work.
    public static func forcePortable(_ force: Bool) {
        sextant_distance_force_portable(force ? 1 : 0)
    }

    /// `Σ (a_i − b_i)²`.
    @inlinable
    public static func squaredL2(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, dimension: Int) -> Float {
        isAccelerated ? sextant_l2sq_avx2(a, b, dimension) : _squaredL2(a, b, dimension)
    }

    /// `Σ a_i b_i`.
    @inlinable
    public static func dot(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, dimension: Int) -> Float {
        isAccelerated ? sextant_dot_avx2(a, b, dimension) : _dot(a, b, dimension)
    }

    /// `(q·x, ‖x‖²)` in one pass over `x`.
    @inlinable
    public static func dotAndNormSquared(
        query: UnsafeRawPointer, vector: UnsafeRawPointer, dimension: Int
    ) -> (dot: Float, normSquared: Float) {
        guard isAccelerated else { return _dotAndNormSquared(query, vector, dimension) }
        var d: Float = 0, n: Float = 0
        sextant_dot_norm_avx2(query, vector, dimension, &d, &n)
        return (d, n)
    }

    /// `out[i] = ‖q − vectors[i]‖²` for every pointer in `vectors`. The accelerated path
    /// scores four vectors at a time and prefetches the next four.
    @inlinable
    public static func squaredL2(
        _ q: UnsafeRawPointer, _ vectors: UnsafeBufferPointer<UnsafeRawPointer>, dimension: Int,
        into out: UnsafeMutablePointer<Float>
    ) {
        guard let base = vectors.baseAddress else { return }
        if isAccelerated {
            sextant_l2sq_batch_avx2(q, _optionals(base), vectors.count, dimension, out)
            return
        }
        // Prefetch everything, then pairs: two vectors' cache misses in flight at once.
        let n = vectors.count
        let bytes = Swift.min(4 &* dimension, 512)
        for p in vectors { sextant_prefetch(p, bytes) }
        var i = 0
        while i &+ 1 < n {
            (out[i], out[i &+ 1]) = _squaredL2Pair(q, vectors[i], vectors[i &+ 1], dimension)
            i &+= 2
        }
        if i < n { out[i] = _squaredL2(q, vectors[i], dimension) }
    }

    /// `out[i] = q · vectors[i]` for every pointer in `vectors` (as the squared-L2 form).
    @inlinable
    public static func dot(
        _ q: UnsafeRawPointer, _ vectors: UnsafeBufferPointer<UnsafeRawPointer>, dimension: Int,
        into out: UnsafeMutablePointer<Float>
    ) {
        guard let base = vectors.baseAddress else { return }
        if isAccelerated {
            sextant_dot_batch_avx2(q, _optionals(base), vectors.count, dimension, out)
            return
        }
        // Prefetch everything, then pairs: two vectors' cache misses in flight at once.
        let n = vectors.count
        let bytes = Swift.min(4 &* dimension, 512)
        for p in vectors { sextant_prefetch(p, bytes) }
        var i = 0
        while i &+ 1 < n {
            (out[i], out[i &+ 1]) = _dotPair(q, vectors[i], vectors[i &+ 1], dimension)
            i &+= 2
        }
        if i < n { out[i] = _dot(q, vectors[i], dimension) }
    }

    /// The C kernels take `const void *const *`, which Swift imports with optional elements;
    /// `Optional<UnsafeRawPointer>` has the same layout.
    @inlinable @inline(__always)
    static func _optionals(_ p: UnsafePointer<UnsafeRawPointer>) -> UnsafePointer<UnsafeRawPointer?> {
        UnsafeRawPointer(p).assumingMemoryBound(to: UnsafeRawPointer?.self)
    }
}

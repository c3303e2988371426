import CSextantSIMD
/// SIMD distance kernels over Float32 vectors of any dimension.
///
/// All entry points share one accumulation order, so the same pair of vectors gives the
/// bit-identical distance whether it is computed one-to-one, one-to-many, gathered or in
/// a tile. Raw-pointer forms accept vectors at any byte alignment; the caller guarantees
/// that `dimension` floats are readable behind every pointer for the duration of the
/// call (the pointers are not retained).
///
/// Accuracy (tested for every dimension 1…300 at every alignment by `KernelAccuracyTests`):
/// with u = 2⁻²⁴ and t_i the exact per-element terms ((q_i − x_i)² or q_i x_i),
///
///     |l2 or ip − exact| ≤ (⌈d/16⌉ + 8) · u · Σ|t_i|
///     |cosine − exact|   ≤ (2 (⌈d/16⌉ + 8) + 4) · u
///
/// L2 is computed directly as Σ (q_i − x_i)², never as ‖q‖² − 2 q·x + ‖x‖², so nearly
/// equal vectors keep full relative accuracy (identical vectors give exactly 0).
///
/// For ``DistanceKind/cosine``, callers that compare one query with many vectors should
/// pass the query's norm (``norm(_:dimension:)``) once; the kernels then make a single
/// fused dot + norm² pass over each vector.
public enum Distance {}

// MARK: - One to one, raw pointers

extension Distance {
    /// Squared Euclidean distance `Σ (a_i − b_i)²`.
    @inlinable
    public static func squaredL2(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, dimension: Int) -> Float {
        precondition(dimension >= 0, "negative dimension")
        return _squaredL2(a, b, dimension)
    }

    /// Inner product `Σ a_i b_i` (the ``DistanceKind/ip`` distance is its negation).
    @inlinable
    public static func dot(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, dimension: Int) -> Float {
        precondition(dimension >= 0, "negative dimension")
        // The AVX2 kernel sums in the same canonical order (tile_avx2.c): the same bits.
        if dimension >= 16 && sextant_distance_dispatch() != 0 {
            return sextant_pair_avx2(0, a.assumingMemoryBound(to: Float.self), b.assumingMemoryBound(to: Float.self), dimension)
        }
        return _dot(a, b, dimension)
    }

    /// `Σ a_i²`.
    @inlinable
    public static func normSquared(_ a: UnsafeRawPointer, dimension: Int) -> Float {
        precondition(dimension >= 0, "negative dimension")
        return _dot(a, a, dimension)
    }

    /// Euclidean norm `‖a‖` (what the cosine forms take as `queryNorm`).
    @inlinable
    public static func norm(_ a: UnsafeRawPointer, dimension: Int) -> Float {
        normSquared(a, dimension: dimension).squareRoot()
    }

    /// `(q·x, ‖x‖²)` in one pass over `x`.
    @inlinable
    public static func dotAndNormSquared(
        query: UnsafeRawPointer, vector: UnsafeRawPointer, dimension: Int
    ) -> (dot: Float, normSquared: Float) {
        precondition(dimension >= 0, "negative dimension")
        return _dotAndNormSquared(query, vector, dimension)
    }

    /// Cosine distance `1 − q·x / (‖q‖ ‖x‖)` given the query's precomputed norm; one pass
    /// over `vector`. A zero norm on either side gives 1.
    @inlinable
    public static func cosine(
        query: UnsafeRawPointer, queryNorm: Float, vector: UnsafeRawPointer, dimension: Int
    ) -> Float {
        let (d, n2) = dotAndNormSquared(query: query, vector: vector, dimension: dimension)
        return _cosineDistance(dot: d, queryNorm: queryNorm, normSquared: n2)
    }

    /// The `kind` distance between `query` and `vector`. For cosine, pass `queryNorm` when
    /// you have it; otherwise it is computed here (an extra pass over the query).
    @inlinable
    public static func distance(
        _ kind: DistanceKind, query: UnsafeRawPointer, vector: UnsafeRawPointer,
        dimension: Int, queryNorm: Float? = nil
    ) -> Float {
        precondition(dimension >= 0, "negative dimension")
        switch kind {
        case .l2:
            // The AVX2 kernel sums in the same canonical order (tile_avx2.c): the same bits.
            if dimension >= 16 && sextant_distance_dispatch() != 0 {
                return sextant_pair_avx2(1, query.assumingMemoryBound(to: Float.self), vector.assumingMemoryBound(to: Float.self), dimension)
            }
            return _squaredL2(query, vector, dimension)
        case .ip:
            if dimension >= 16 && sextant_distance_dispatch() != 0 {
                return -sextant_pair_avx2(0, query.assumingMemoryBound(to: Float.self), vector.assumingMemoryBound(to: Float.self), dimension)
            }
            return -_dot(query, vector, dimension)
        case .cosine:
            let qn = queryNorm ?? _dot(query, query, dimension).squareRoot()
            let (d, n2) = _dotAndNormSquared(query, vector, dimension)
            return _cosineDistance(dot: d, queryNorm: qn, normSquared: n2)
        }
    }
}

// MARK: - One to one, buffers and arrays

extension Distance {
    /// The `kind` distance between two equally long buffers.
    @inlinable
    public static func distance(
        _ kind: DistanceKind, _ query: UnsafeBufferPointer<Float>, _ vector: UnsafeBufferPointer<Float>
    ) -> Float {
        precondition(query.count == vector.count, "dimension mismatch")
        guard let q = query.baseAddress, let x = vector.baseAddress else { return kind == .cosine ? 1 : 0 }
        return distance(kind, query: UnsafeRawPointer(q), vector: UnsafeRawPointer(x), dimension: query.count)
    }

    /// The `kind` distance between two equally long arrays.
    @inlinable
    public static func distance(_ kind: DistanceKind, _ query: [Float], _ vector: [Float]) -> Float {
        query.withUnsafeBufferPointer { q in
            vector.withUnsafeBufferPointer { x in distance(kind, q, x) }
        }
    }

    /// Euclidean norm of an array.
    @inlinable
    public static func norm(_ vector: [Float]) -> Float {
        guard !vector.isEmpty else { return 0 }
        return vector.withUnsafeBytes { norm($0.baseAddress!, dimension: vector.count) }
    }

    /// `vector / ‖vector‖`, or `nil` for a zero (or non-finite) norm.
    public static func normalized(_ vector: [Float]) -> [Float]? {
        let n = norm(vector)
        guard n > 0, n.isFinite else { return nil }
        return vector.map { $0 / n }
    }
}

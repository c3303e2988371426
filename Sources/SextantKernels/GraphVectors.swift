import CSextantSIMD

/// A ``GraphDistanceSource`` over Float32 vectors in memory: at a fixed stride (a flat array,
/// a memory-mapped file, records in place) or wherever a table of addresses says (vectors
/// read in place from scattered storage pages, as an index build does). Traversal distances come from
/// ``TraversalDistance`` (AVX2 + FMA when the CPU has them), within a few units in the last
/// place of the canonical kernels'; ``exactDistance(_:to:)`` and the distances searches
/// report (``resultDistance(_:to:)``) are the canonical kernels' (``Distance``), bit-identical
/// to an exact scan.
///
/// The source does not own its memory: the caller keeps `count` vectors readable at `base`
/// (and `normsSquared`, when given) for as long as the source is used. Reads are pure, so
/// one source may be shared by concurrent searches and by a parallel build.
public struct FlatVectors: GraphDistanceSource, @unchecked Sendable {
    /// The distance computed.
    public let kind: DistanceKind
    /// Floats per vector.
    public let dimension: Int
    /// Number of vectors; node `i` is the vector at `base + i * strideBytes`.
    public let count: Int
    @usableFromInline let base: UnsafeRawPointer
    @usableFromInline let strideBytes: Int
    /// When set, node `i`'s vector is at `table[i]` (and `base`/`strideBytes` are unused).
    @usableFromInline let table: UnsafePointer<UnsafeRawPointer>?
    /// Cosine only: `‖x_i‖²` per vector (as ``Distance/normSquared(_:dimension:)`` gives it),
    /// so scoring a node is one dot product instead of a fused dot + norm pass.
    @usableFromInline let normsSquared: UnsafePointer<Float>?

    /// A query: its floats (not copied) and, for cosine, its norm.
    public struct Query {
        public let pointer: UnsafeRawPointer
        public let norm: Float

        @inlinable
        public init(pointer: UnsafeRawPointer, norm: Float) {
            self.pointer = pointer
            self.norm = norm
        }
    }

    /// - Parameters:
    ///   - base: the first vector (any alignment).
    ///   - strideBytes: bytes between vectors; `nil` means packed (`dimension * 4`).
    ///   - normsSquared: cosine only, optional: `count` precomputed squared norms.
    public init(kind: DistanceKind, base: UnsafeRawPointer, count: Int, dimension: Int,
                strideBytes: Int? = nil, normsSquared: UnsafePointer<Float>? = nil) {
        precondition(count >= 0 && dimension > 0, "bad count or dimension")
        self.kind = kind
        self.base = base
        self.count = count
        self.dimension = dimension
        self.strideBytes = strideBytes ?? dimension &* 4
        self.normsSquared = normsSquared
        table = nil
    }

    /// Vectors wherever `addresses` says: node `i` is the `dimension` floats at `addresses[i]`
    /// (any alignment). The caller keeps the table and the vectors readable while the source
    /// is used.
    public init(kind: DistanceKind, addresses: UnsafePointer<UnsafeRawPointer>, count: Int, dimension: Int,
                normsSquared: UnsafePointer<Float>? = nil) {
        precondition(count >= 0 && dimension > 0, "bad count or dimension")
        self.kind = kind
        base = UnsafeRawPointer(addresses)
        self.count = count
        self.dimension = dimension
        strideBytes = dimension &* 4
        self.normsSquared = normsSquared
        table = addresses
    }

    /// Address of node `i`'s vector.
    @inlinable @inline(__always)
    public func vector(_ node: UInt32) -> UnsafeRawPointer {
        if let table { return table[Int(node)] }
        return base + Int(node) &* strideBytes
    }

    /// Prepares `dimension` floats at `pointer` as a query (the pointer must stay valid
    /// while the query is used).
    @inlinable
    public func query(_ pointer: UnsafeRawPointer) -> Query {
        Query(pointer: pointer, norm: kind == .cosine ? _dot(pointer, pointer, dimension).squareRoot() : 0)
    }

    @inlinable
    public func query(for node: UInt32) -> Query { query(vector(node)) }

    /// The traversal distance: ``TraversalDistance``'s kernels (AVX2 + FMA when available).
    @inlinable @inline(__always)
    public func distance(_ query: Query, to node: UInt32) -> Float {
        let x = vector(node)
        switch kind {
        case .l2: return TraversalDistance.squaredL2(query.pointer, x, dimension: dimension)
        case .ip: return -TraversalDistance.dot(query.pointer, x, dimension: dimension)
        case .cosine:
            if let normsSquared {
                return _cosineDistance(dot: TraversalDistance.dot(query.pointer, x, dimension: dimension),
                                       queryNorm: query.norm, normSquared: normsSquared[Int(node)])
            }
            let (d, n2) = TraversalDistance.dotAndNormSquared(query: query.pointer, vector: x, dimension: dimension)
            return _cosineDistance(dot: d, queryNorm: query.norm, normSquared: n2)
        }
    }

    /// Fetches the first two cache lines of the node's vector (the batch kernels fetch the
    /// rest while scoring the vectors before it).
    @inlinable @inline(__always)
    public func prefetch(_ node: UInt32) {
        sextant_prefetch(vector(node), Swift.min(dimension &* 4, 128))
    }

    /// The canonical kernels' distance (``Distance``), bit-identical to an exact scan's.
    @inlinable
    public func exactDistance(_ query: Query, to node: UInt32) -> Float {
        let x = vector(node)
        switch kind {
        case .l2: return _squaredL2(query.pointer, x, dimension)
        case .ip: return -_dot(query.pointer, x, dimension)
        case .cosine:
            if let normsSquared {
                return _cosineDistance(dot: _dot(query.pointer, x, dimension), queryNorm: query.norm,
                                       normSquared: normsSquared[Int(node)])
            }
            let (d, n2) = _dotAndNormSquared(query.pointer, x, dimension)
            return _cosineDistance(dot: d, queryNorm: query.norm, normSquared: n2)
        }
    }

    /// Searches report ``exactDistance(_:to:)``, so results match an exact scan's distances.
    @inlinable
    public func resultDistance(_ query: Query, to node: UInt32) -> Float? {
        exactDistance(query, to: node)
    }

    @inlinable
    public func distances(_ query: Query, to nodes: UnsafeBufferPointer<UInt32>, into out: UnsafeMutablePointer<Float>) {
        if kind == .cosine && normsSquared == nil {
            for i in nodes.indices { out[i] = distance(query, to: nodes[i]) }
            return
        }
        // The vectors' addresses in chunks, so one kernel call scores (and prefetches) many.
        let chunk = 64
        withUnsafeTemporaryAllocation(of: UnsafeRawPointer.self, capacity: chunk) { pointers in
            var start = 0
            while start < nodes.count {
                let n = Swift.min(chunk, nodes.count &- start)
                for j in 0..<n { pointers[j] = vector(nodes[start &+ j]) }
                scoreChunk(query, UnsafeBufferPointer(rebasing: pointers[0..<n]),
                           nodes: UnsafeBufferPointer(rebasing: nodes[start..<start &+ n]), into: out + start)
                start &+= n
            }
        }
    }

    /// One chunk of ``distances(_:to:into:)`` (l2, ip, cosine with stored norms).
    @inlinable @inline(__always)
    func scoreChunk(_ query: Query, _ pointers: UnsafeBufferPointer<UnsafeRawPointer>, nodes: UnsafeBufferPointer<UInt32>,
                    into out: UnsafeMutablePointer<Float>) {
        switch kind {
        case .l2:
            TraversalDistance.squaredL2(query.pointer, pointers, dimension: dimension, into: out)
        case .ip:
            TraversalDistance.dot(query.pointer, pointers, dimension: dimension, into: out)
            for i in 0..<pointers.count { out[i] = -out[i] }
        case .cosine:
            TraversalDistance.dot(query.pointer, pointers, dimension: dimension, into: out)
            let norms = normsSquared!
            for i in 0..<pointers.count {
                out[i] = _cosineDistance(dot: out[i], queryNorm: query.norm, normSquared: norms[Int(nodes[i])])
            }
        }
    }

    @inlinable
    public func distance(between a: UInt32, and b: UInt32) -> Float {
        distance(query(for: a), to: b)
    }
}

/// Owns Float32 vectors (and, for cosine, their squared norms) in one flat buffer, for
/// in-memory graphs, tests and benchmarks. ``source`` borrows the memory: keep the buffer
/// alive while the source is in use.
public final class FlatVectorBuffer: @unchecked Sendable {
    public let kind: DistanceKind
    public let dimension: Int
    public let count: Int
    private let vectors: UnsafeMutablePointer<Float>
    private let norms: UnsafeMutablePointer<Float>

    /// Copies `rows.count / dimension` row-major vectors.
    public init(kind: DistanceKind, dimension: Int, rows: [Float]) {
        precondition(dimension > 0 && rows.count % dimension == 0, "rows are not whole vectors")
        self.kind = kind
        self.dimension = dimension
        count = rows.count / dimension
        let vectors = UnsafeMutablePointer<Float>.allocate(capacity: max(rows.count, 1))
        rows.withUnsafeBufferPointer { if let b = $0.baseAddress { vectors.initialize(from: b, count: $0.count) } }
        self.vectors = vectors
        norms = .allocate(capacity: max(count, 1))
        for i in 0..<count { norms[i] = _dot(vectors + i * dimension, vectors + i * dimension, dimension) }
    }

    deinit {
        vectors.deallocate()
        norms.deallocate()
    }

    /// A distance source over the buffer (valid while the buffer is alive).
    public var source: FlatVectors {
        FlatVectors(kind: kind, base: UnsafeRawPointer(vectors), count: count, dimension: dimension,
                    normsSquared: kind == .cosine ? UnsafePointer(norms) : nil)
    }

    /// Overwrites vector `i` (for update tests); the caller must not race with readers.
    public func setVector(_ i: Int, _ v: [Float]) {
        precondition(i >= 0 && i < count && v.count == dimension, "bad index or dimension")
        v.withUnsafeBufferPointer { vectors.advanced(by: i * dimension).update(from: $0.baseAddress!, count: dimension) }
        norms[i] = _dot(vectors + i * dimension, vectors + i * dimension, dimension)
    }

    /// Vector `i` as an array.
    public func vector(_ i: Int) -> [Float] {
        Array(UnsafeBufferPointer(start: vectors + i * dimension, count: dimension))
    }
}

// Two-vector forms of the canonical kernels (PairKernels.swift), so they equal the one-vector
// results bit for bit.

@inlinable @inline(__always)
func _dotPair(_ q: UnsafeRawPointer, _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ d: Int) -> (Float, Float) {
    _pair2(_DotTerm.self, q, a, b, d)
}

@inlinable @inline(__always)
func _squaredL2Pair(_ q: UnsafeRawPointer, _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ d: Int) -> (Float, Float) {
    _pair2(_L2Term.self, q, a, b, d)
}

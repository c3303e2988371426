import CSextantSIMD
import SextantKernels

/// Distances between a query and stored vectors, read in place from the vector blocks. For
/// cosine the query is normalised and a node scores `1 − q̂·x / ‖x‖`, the exact plan's formula.
struct BlockVectors: GraphDistanceSource {
    let reader: SlotBlocks.Reader
    let kind: DistanceKind
    let cosine: Bool
    let dimension: Int
    let vectorOffset: Int
    let normOffset: Int
    /// SQ8 codes the traversal scores instead of the vectors (searches only: builds and
    /// repairs link with the full vectors); results are re-ranked with the vectors.
    let traversal: ScalarTraversal?
    /// The SQ8 hot path's state as plain values. Binding `traversal` (a reader and the
    /// quantizer's arrays) on every expansion cost two retains and two releases, about 6 % of a
    /// search at a million rows; `traversal` keeps the reader alive.
    private let codeReader: Unmanaged<SlotBlocks.Reader>?
    private let codeKernel: Bool
    private let codeL2: Int32
    private let codeScale2: Float
    private let codeFlip: Float, codeBias: Float

    init(reader: SlotBlocks.Reader, kind: DistanceKind, cosine: Bool, dimension: Int, traversal: ScalarTraversal? = nil) {
        self.reader = reader
        self.kind = kind
        self.cosine = cosine
        self.dimension = dimension
        self.traversal = traversal
        vectorOffset = reader.blocks.regionOffsets[1]
        normOffset = reader.blocks.regionOffsets[2]
        codeReader = traversal.map { Unmanaged.passUnretained($0.reader) }
        codeKernel = TraversalDistance.isAccelerated
        let q = traversal?.quantizer
        codeL2 = q?.kind == .l2 ? 1 : 0
        codeScale2 = (q?.scale ?? 1) * (q?.scale ?? 1)
        // distance(fromSum:) as flip · scale² · sum + bias: l2 (1, 0), cosine (−1, 1), ip (−1, 0).
        (codeFlip, codeBias) = q?.kind == .l2 ? (1, 0) : q?.normalizes == true ? (-1, 1) : (-1, 0)
    }

    struct Query {
        let pointer: UnsafeRawPointer
        /// `1/‖q‖` for cosine (1 for a normalised search query), unused otherwise.
        let inverseNorm: Float
        /// The query's SQ8 levels when the traversal scores codes.
        var levels: UnsafePointer<Int16>? = nil
    }

    /// Runs `body` with a search query for `vector` (normalised already for cosine): with SQ8
    /// codes, its levels live for the call.
    func withQuery<R>(_ vector: [Float], _ body: (Query) throws -> R) rethrows -> R {
        try vector.withUnsafeBytes { qp in
            guard let traversal else { return try body(Query(pointer: qp.baseAddress!, inverseNorm: 1)) }
            return try withUnsafeTemporaryAllocation(of: Int16.self, capacity: dimension) { levels in
                traversal.quantizer.quantize(query: qp.baseAddress!.assumingMemoryBound(to: Float.self), into: levels.baseAddress!)
                return try body(Query(pointer: qp.baseAddress!, inverseNorm: 1, levels: UnsafePointer(levels.baseAddress!)))
            }
        }
    }

    /// With SQ8 codes, the head of the beam is re-ranked with the full vectors (its order is approximate).
    var rescoresBeam: Bool { traversal != nil }

    /// The node's vector and, for cosine only, its stored norm (the norms sit on other cache
    /// lines than the vector: l2 and ip must not pay that miss).
    @inline(__always)
    func vector(_ node: UInt32) throws -> (UnsafeRawPointer, Float) {
        let (x, n) = try locate(node)
        return (x, cosine ? n.loadUnaligned(as: Float.self) : 0)
    }

    /// Where the node's vector and stored norm are, without reading either.
    @inline(__always)
    func locate(_ node: UInt32) throws -> (vector: UnsafeRawPointer, norm: UnsafeRawPointer) {
        let blocks = reader.blocks
        guard let base = try reader.blockPointer(blocks.block(of: node)) else {
            throw SextantError(.corrupted, "graph node \(node) has no vector block", context: ["slot": String(node)])
        }
        let i = Int(node % UInt32(blocks.slotsPerBlock))
        return (base + vectorOffset + i * 4 * dimension, base + normOffset + 4 * i)
    }

    func query(for node: UInt32) throws -> Query {
        let (p, n) = try vector(node)
        return Query(pointer: p, inverseNorm: n > 0 ? 1 / n : 0)
    }

    /// The exact plan's arithmetic: cosine is `1 + (−q̂·x) · (1/‖x‖)` with the stored norm.
    @inline(__always)
    func score(_ q: Query, _ x: UnsafeRawPointer, _ norm: Float) -> Float {
        if cosine {
            let d = Distance.dot(q.pointer, x, dimension: dimension)
            return 1 + (-d * q.inverseNorm) * (norm > 0 ? 1 / norm : 0)
        }
        return Distance.distance(kind, query: q.pointer, vector: x, dimension: dimension)
    }

    /// The traversal's score: ``TraversalDistance`` (AVX2 + FMA when the CPU has them).
    @inline(__always)
    func fastScore(_ q: Query, _ x: UnsafeRawPointer, _ norm: Float) -> Float {
        if cosine {
            let d = TraversalDistance.dot(q.pointer, x, dimension: dimension)
            return 1 + (-d * q.inverseNorm) * (norm > 0 ? 1 / norm : 0)
        }
        return kind == .l2 ? TraversalDistance.squaredL2(q.pointer, x, dimension: dimension)
            : -TraversalDistance.dot(q.pointer, x, dimension: dimension)
    }

    @inline(__always)
    func distance(_ query: Query, to node: UInt32) throws -> Float {
        if let traversal, let levels = query.levels {
            var row = try traversal.codes(node)
            var sum: Int32 = 0
            withUnsafePointer(to: &row) { traversal.quantizer.sums(levels, UnsafeBufferPointer(start: $0, count: 1), into: &sum) }
            return traversal.quantizer.distance(fromSum: sum)
        }
        let (x, n) = try vector(node)
        return fastScore(query, x, n)
    }

    /// The result's vector (and, for cosine, its norm), ahead of ``resultDistance(_:to:)``.
    func prefetchResult(_ node: UInt32) {
        guard let (x, n) = try? locate(node) else { return }
        sextant_prefetch(x, 4 * dimension)
        if cosine { sextant_prefetch(n, 4) }
    }

    /// Results are reported with the exact plan's arithmetic, so a graph hit carries the
    /// distance an exact scan gives the same row.
    func resultDistance(_ query: Query, to node: UInt32) throws -> Float? {
        let (x, n) = try vector(node)
        return score(query, x, n)
    }

    /// Scores neighbours in chunks through the batch kernels, which prefetch the vectors
    /// ahead of the ones being scored (their addresses are known up front). Cosine norms are
    /// only prefetched while gathering and read after the kernel: each is another cache
    /// miss, and reading it up front would serialize those misses before any scoring.
    func distances(_ query: Query, to nodes: UnsafeBufferPointer<UInt32>, into out: UnsafeMutablePointer<Float>) throws {
        if let levels = query.levels, let codeReader, codeKernel { return try codeDistances(codeReader, levels, nodes, out) }
        if let traversal, let levels = query.levels { return try portableCodeDistances(traversal, levels, nodes, out) }
        let chunk = 64
        try withUnsafeTemporaryAllocation(of: UnsafeRawPointer.self, capacity: 2 * chunk) { pointers in
            var start = 0
            while start < nodes.count {
                let n = min(chunk, nodes.count - start)
                for j in 0..<n {
                    let (x, norm) = try locate(nodes[start + j])
                    pointers[j] = x
                    pointers[chunk + j] = norm
                    sextant_prefetch(x, 4 * dimension)
                    if cosine { sextant_prefetch(norm, 4) }
                }
                let xs = UnsafeBufferPointer(rebasing: pointers[0..<n])
                let o = out + start
                if kind == .l2 && !cosine {
                    TraversalDistance.squaredL2(query.pointer, xs, dimension: dimension, into: o)
                } else {
                    TraversalDistance.dot(query.pointer, xs, dimension: dimension, into: o)
                    for j in 0..<n {
                        if cosine {
                            let norm = pointers[chunk + j].loadUnaligned(as: Float.self)
                            o[j] = 1 + (-o[j] * query.inverseNorm) * (norm > 0 ? 1 / norm : 0)
                        } else {
                            o[j] = -o[j]
                        }
                    }
                }
                start += n
            }
        }
    }

    /// The SQ8 path of ``distances(_:to:into:)`` with the AVX2 kernel: the nodes' code rows
    /// located through the unretained reader, summed in chunks, turned into distances as
    /// ``ScalarQuantizer/distance(fromSum:)`` does.
    private func codeDistances(_ codes: Unmanaged<SlotBlocks.Reader>, _ levels: UnsafePointer<Int16>, _ nodes: UnsafeBufferPointer<UInt32>,
                               _ out: UnsafeMutablePointer<Float>) throws {
        let chunk = 64
        try withUnsafeTemporaryAllocation(of: UnsafePointer<Int8>?.self, capacity: chunk) { rows in
            try withUnsafeTemporaryAllocation(of: Int32.self, capacity: chunk) { sums in
                var start = 0
                while start < nodes.count {
                    let n = min(chunk, nodes.count - start)
                    try codes._withUnsafeGuaranteedRef { reader in
                        for j in 0..<n {
                            guard let p = try reader.pointer(nodes[start + j]) else {
                                throw SextantError(.corrupted, "graph node \(nodes[start + j]) has no SQ8 codes", context: ["slot": String(nodes[start + j])])
                            }
                            rows[j] = p.assumingMemoryBound(to: Int8.self)
                            sextant_prefetch(p, dimension)
                        }
                    }
                    sextant_sq8_batch_avx2(codeL2, levels, rows.baseAddress, n, dimension, sums.baseAddress!)
                    let f = codeFlip * codeScale2
                    for j in 0..<n { out[start + j] = f * Float(sums[j]) + codeBias }
                    start += n
                }
            }
        }
    }

    /// The SQ8 path without the AVX2 kernel (the portable sums).
    private func portableCodeDistances(_ t: ScalarTraversal, _ levels: UnsafePointer<Int16>, _ nodes: UnsafeBufferPointer<UInt32>,
                               _ out: UnsafeMutablePointer<Float>) throws {
        let chunk = 64
        try withUnsafeTemporaryAllocation(of: UnsafeRawPointer.self, capacity: chunk) { rows in
            try withUnsafeTemporaryAllocation(of: Int32.self, capacity: chunk) { sums in
                var start = 0
                while start < nodes.count {
                    let n = min(chunk, nodes.count - start)
                    for j in 0..<n { rows[j] = try t.codes(nodes[start + j]) }
                    t.quantizer.sums(levels, UnsafeBufferPointer(rebasing: rows[0..<n]), into: sums.baseAddress!)
                    for j in 0..<n { out[start + j] = t.quantizer.distance(fromSum: sums[j]) }
                    start += n
                }
            }
        }
    }

    func distance(between a: UInt32, and b: UInt32) throws -> Float {
        let (x, nx) = try vector(a)
        let (y, ny) = try vector(b)
        if cosine {
            let den = nx * ny
            return den > 0 ? 1 - Distance.dot(x, y, dimension: dimension) / den : 1
        }
        return score(Query(pointer: x, inverseNorm: 1), y, ny)
    }
}

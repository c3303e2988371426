/// Why a product quantizer could not be built, trained or decoded.
public enum PQError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The dimension is not positive (or implausibly large).
    case invalidDimension(Int)
    /// `subspaceCount` must be positive and divide the dimension.
    case invalidSubspaceCount(dimension: Int, subspaceCount: Int)
    /// Only 4 and 8 bits per sub-quantizer are supported.
    case unsupportedBits(Int)
    /// 4-bit codes pack two sub-quantizers per byte: `subspaceCount` must be even. (Fast scan
    /// further needs at most 256, for its sums to fit 16 bits: see ``PQFastScanTable``.)
    case invalidSubspaceCountForFourBits(Int)
    /// The codebook array does not have `subspaceCount * centroidCount * subspaceDimension` floats,
    /// or the training array is not whole rows.
    case sizeMismatch(expected: Int, actual: Int)
    /// Training needs at least one vector per centroid.
    case notEnoughTrainingVectors(have: Int, need: Int)
    /// A NaN or infinity in the training vectors or the codebook.
    case nonFiniteValue
    /// Serialized bytes that are not a valid quantizer (the reason says which check failed).
    case invalidSerialization(String)

    public var description: String {
        switch self {
        case .invalidDimension(let d): "invalid dimension \(d)"
        case .invalidSubspaceCount(let d, let m): "\(m) sub-spaces do not divide dimension \(d)"
        case .unsupportedBits(let b): "unsupported bits per code \(b) (use 4 or 8)"
        case .invalidSubspaceCountForFourBits(let m): "4-bit codes need an even sub-space count, got \(m)"
        case .sizeMismatch(let e, let a): "expected \(e) floats, got \(a)"
        case .notEnoughTrainingVectors(let h, let n): "\(h) training vectors, need at least \(n)"
        case .nonFiniteValue: "NaN or infinity in the input"
        case .invalidSerialization(let why): "invalid serialized product quantizer: \(why)"
        }
    }
}

/// How ``ProductQuantizer`` trains its codebooks.
public struct PQTrainingOptions: Sendable, Hashable {
    /// Lloyd iterations after k-means++ seeding, per sub-space.
    public var iterations: Int
    /// Seeds the training sample and the k-means++ draws; same data + same seed = same codebook.
    public var seed: UInt64
    /// At most this many vectors (a seeded random sample) are used; training time is linear in
    /// it. The default, 65,536, is 256 points per centroid for 8-bit codebooks (FAISS's cap);
    /// 4-bit codebooks are cheap enough to train on the same sample.
    public var maxTrainingVectors: Int

    /// Defaults: 25 iterations, seed 0, at most 65,536 training vectors.
    public init(iterations: Int = 25, seed: UInt64 = 0, maxTrainingVectors: Int = 65_536) {
        self.iterations = iterations
        self.seed = seed
        self.maxTrainingVectors = maxTrainingVectors
    }
}

/// A product quantizer: each vector is split into `subspaceCount` equal sub-vectors and each
/// sub-vector is replaced by the index of its nearest centroid in that sub-space's codebook
/// (256 centroids with 8 bits, 16 with 4 bits).
///
/// Codes: 8-bit codes take `subspaceCount` bytes per vector (byte `j` = sub-space `j`); 4-bit
/// codes take `subspaceCount / 2` bytes, sub-space `2j` in the low nibble of byte `j` and
/// `2j + 1` in the high nibble. Batches of codes are contiguous, ``codeSize`` bytes per vector.
///
/// Metrics: ``DistanceKind/l2`` approximates squared L2; ``DistanceKind/ip`` approximates
/// `−q·x`; ``DistanceKind/cosine`` is inner product on unit vectors — training and encoding
/// normalise each vector (zero vectors stay zero), the distance table normalises the query,
/// and distances come out as `1 − q·x̂`, comparable with exact cosine distances.
///
/// Search: build a ``PQDistanceTable`` per query (``distanceTable(query:)``), scan codes with
/// it, keep the best few hundred and re-rank them with exact distances. 4-bit codes can
/// also be re-packed into ``PQFastScanCodes`` and scanned with a byte-quantized table.
public struct ProductQuantizer: Sendable, Hashable {
    /// Vector dimension.
    public let dimension: Int
    /// Number of sub-spaces (`m`); the dimension is a multiple of it.
    public let subspaceCount: Int
    /// Bits per sub-space code: 4 or 8.
    public let bits: Int
    /// The distance the quantizer approximates.
    public let metric: DistanceKind
    /// The codebooks: `subspaceCount x centroidCount x subspaceDimension` floats, row-major.
    public let centroids: [Float]

    /// The same centroids dimension-major per sub-space (`subspaceDimension x centroidCount`),
    /// so kernels read 16 centroids' coordinate `i` in one vector load.
    @usableFromInline let centroidsT: [Float]
    /// `‖c‖²` per centroid, `subspaceCount x centroidCount`.
    @usableFromInline let centroidNorms: [Float]

    /// `dimension / subspaceCount`.
    public var subspaceDimension: Int { dimension / subspaceCount }
    /// Centroids per sub-space: `1 << bits`.
    public var centroidCount: Int { 1 << bits }
    /// Bytes of code per vector.
    public var codeSize: Int { bits == 8 ? subspaceCount : subspaceCount / 2 }

    /// A quantizer from an existing codebook (e.g. trained elsewhere).
    ///
    /// - Throws: ``PQError`` for an invalid shape, a codebook of the wrong size or a
    ///   non-finite centroid.
    public init(dimension: Int, subspaceCount: Int, bits: Int, metric: DistanceKind, centroids: [Float]) throws {
        try Self.validate(dimension: dimension, subspaceCount: subspaceCount, bits: bits)
        let expected = dimension << bits  // m * k * dsub
        guard centroids.count == expected else { throw PQError.sizeMismatch(expected: expected, actual: centroids.count) }
        guard centroids.allSatisfy(\.isFinite) else { throw PQError.nonFiniteValue }
        self.dimension = dimension
        self.subspaceCount = subspaceCount
        self.bits = bits
        self.metric = metric
        self.centroids = centroids
        let k = 1 << bits, dsub = dimension / subspaceCount
        var t = [Float](repeating: 0, count: expected)
        var norms = [Float](repeating: 0, count: subspaceCount * k)
        for j in 0..<subspaceCount {
            let book = KMeansCentroids(rows: Array(centroids[(j * k * dsub)..<((j + 1) * k * dsub)]), k: k, dimension: dsub)
            t.replaceSubrange((j * k * dsub)..<((j + 1) * k * dsub), with: book.transposed())
            norms.replaceSubrange((j * k)..<((j + 1) * k), with: book.squaredNorms())
        }
        centroidsT = t
        centroidNorms = norms
    }

    /// Trains a quantizer on row-major vectors (`vectors.count / dimension` rows) by k-means
    /// per sub-space: k-means++ seeding, then ``PQTrainingOptions/iterations`` Lloyd steps with
    /// empty-cluster repair. Single-threaded and deterministic.
    ///
    /// - Throws: ``PQError`` for an invalid shape, partial rows, fewer vectors than
    ///   centroids, or a non-finite value.
    public init(
        training vectors: UnsafeBufferPointer<Float>, dimension: Int, subspaceCount: Int, bits: Int,
        metric: DistanceKind, options: PQTrainingOptions = PQTrainingOptions()
    ) throws {
        try Self.validate(dimension: dimension, subspaceCount: subspaceCount, bits: bits)
        guard vectors.count % dimension == 0 else {
            throw PQError.sizeMismatch(expected: (vectors.count / dimension + 1) * dimension, actual: vectors.count)
        }
        let n = vectors.count / dimension, k = 1 << bits
        guard n >= k else { throw PQError.notEnoughTrainingVectors(have: n, need: k) }
        guard vectors.allSatisfy(\.isFinite) else { throw PQError.nonFiniteValue }
        let rows = Self.trainingSample(count: n, limit: Swift.max(options.maxTrainingVectors, k), seed: options.seed)
        let dsub = dimension / subspaceCount, ns = rows.count
        // Rows (normalised for cosine) gathered once, so each sub-space reads a compact array.
        var sample = [Float](repeating: 0, count: ns * dimension)
        for (r, row) in rows.enumerated() {
            let src = vectors[(row * dimension)..<((row + 1) * dimension)]
            var scale: Float = 1
            if metric == .cosine {
                let norm = src.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
                if norm > 0 { scale = 1 / norm }
            }
            for (i, v) in src.enumerated() { sample[r * dimension + i] = v * scale }
        }
        var book = [Float]()
        book.reserveCapacity(dimension << bits)
        var points = [Float](repeating: 0, count: ns * dsub)
        for j in 0..<subspaceCount {
            for p in 0..<ns {
                for i in 0..<dsub { points[i * ns + p] = sample[p * dimension + j * dsub + i] }
            }
            let seed = options.seed &+ 0x1000_0000_01B3 &* UInt64(j + 1)
            let c = KMeans.train(KMeansPoints(values: points, count: ns, dimension: dsub), k: k,
                                 iterations: Swift.max(options.iterations, 0), seed: seed)
            book += c.rows
        }
        try self.init(dimension: dimension, subspaceCount: subspaceCount, bits: bits, metric: metric, centroids: book)
    }

    /// Array form of ``init(training:dimension:subspaceCount:bits:metric:options:)``.
    public init(
        training vectors: [Float], dimension: Int, subspaceCount: Int, bits: Int,
        metric: DistanceKind, options: PQTrainingOptions = PQTrainingOptions()
    ) throws {
        self = try vectors.withUnsafeBufferPointer {
            try ProductQuantizer(training: $0, dimension: dimension, subspaceCount: subspaceCount, bits: bits,
                                 metric: metric, options: options)
        }
    }

    static func validate(dimension: Int, subspaceCount: Int, bits: Int) throws {
        // The cap keeps every size computed from a header far from overflow.
        guard dimension > 0, dimension <= 1 << 20 else { throw PQError.invalidDimension(dimension) }
        guard subspaceCount > 0, dimension % subspaceCount == 0 else {
            throw PQError.invalidSubspaceCount(dimension: dimension, subspaceCount: subspaceCount)
        }
        guard bits == 4 || bits == 8 else { throw PQError.unsupportedBits(bits) }
        if bits == 4 && subspaceCount % 2 != 0 {
            throw PQError.invalidSubspaceCountForFourBits(subspaceCount)
        }
    }

    /// Sorted row indices: all rows, or `limit` of them drawn without replacement.
    static func trainingSample(count n: Int, limit: Int, seed: UInt64) -> [Int] {
        guard n > limit else { return Array(0..<n) }
        var rng = PQRandom(seed: seed ^ 0x5EED_5A3B_1E00_0000)
        var idx = Array(0..<n)
        for i in 0..<limit { idx.swapAt(i, i + rng.below(n - i)) }
        return idx[0..<limit].sorted()
    }
}

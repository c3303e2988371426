// A coarse quantizer: k-means centroids over whole vectors, numbered so that neighbouring
// numbers are neighbouring regions. It gives every vector a cell id — vector locality as one
// more integer attribute a partitioning can cut on (`cell < j`) and a query can probe.

/// k-means cells over whole vectors (squared L2), numbered along the centroids' first
/// principal direction: cells with close numbers lie close together, so a range cut
/// `cell < j` splits the space into two coherent halves.
public struct CoarseQuantizer: Sendable, Equatable {
    /// Number of cells, a multiple of 16 (the assignment kernel works on 16 centroids at once).
    public let cells: Int
    public let dimension: Int
    /// Row-major `cells × dimension`.
    public let centroids: [Float]
    private let norms: [Float]

    /// Centroids as given (row-major); `cells` must be a positive multiple of 16.
    public init(centroids: [Float], dimension: Int) throws(PQError) {
        guard dimension > 0 && dimension <= 65_536 else { throw .invalidDimension(dimension) }
        guard !centroids.isEmpty, centroids.count % dimension == 0 else {
            throw .sizeMismatch(expected: max(16, centroids.count / max(1, dimension)) * dimension, actual: centroids.count)
        }
        let k = centroids.count / dimension
        guard k % 16 == 0 else { throw .invalidSerialization("\(k) cells is not a multiple of 16") }
        guard centroids.allSatisfy(\.isFinite) else { throw .nonFiniteValue }
        self.cells = k
        self.dimension = dimension
        self.centroids = centroids
        norms = (0..<k).map { c in
            centroids.withUnsafeBytes { Distance.normSquared($0.baseAddress! + 4 * c * dimension, dimension: dimension) }
        }
    }

    /// Trains `cells` centroids (a multiple of 16) on `training` (row-major, whole rows):
    /// k-means++ then `iterations` Lloyd steps, deterministic for a seed; then renumbers them
    /// along their first principal direction.
    public init(training: [Float], dimension: Int, cells: Int, iterations: Int = 12, seed: UInt64) throws(PQError) {
        guard dimension > 0 && dimension <= 65_536 else { throw .invalidDimension(dimension) }
        guard training.count % dimension == 0 else {
            throw .sizeMismatch(expected: (training.count / dimension + 1) * dimension, actual: training.count)
        }
        guard cells >= 16 && cells % 16 == 0 && cells <= 4096 else {
            throw .invalidSerialization("cells must be a multiple of 16 between 16 and 4096, got \(cells)")
        }
        let n = training.count / dimension
        guard n >= cells else { throw .notEnoughTrainingVectors(have: n, need: cells) }
        guard training.allSatisfy(\.isFinite) else { throw .nonFiniteValue }
        // Dimension-major, as the k-means kernels read points.
        var soa = [Float](repeating: 0, count: training.count)
        for p in 0..<n { for i in 0..<dimension { soa[i * n + p] = training[p * dimension + i] } }
        let trained = KMeans.train(KMeansPoints(values: soa, count: n, dimension: dimension), k: cells,
                                   iterations: max(1, iterations), seed: seed)
        try self.init(centroids: CoarseQuantizer.principalOrder(trained.rows, cells: cells, dimension: dimension),
                      dimension: dimension)
    }

    /// The centroids reordered by their projection on the first principal direction (power
    /// iteration on the centred centroids, fixed start, so the order is deterministic).
    static func principalOrder(_ rows: [Float], cells k: Int, dimension d: Int) -> [Float] {
        var mean = [Double](repeating: 0, count: d)
        for c in 0..<k { for i in 0..<d { mean[i] += Double(rows[c * d + i]) } }
        for i in 0..<d { mean[i] /= Double(k) }
        var v = (0..<d).map { 1 / Double(d).squareRoot() * (($0 % 2 == 0) ? 1 : 0.5) }
        for _ in 0..<30 {
            var next = [Double](repeating: 0, count: d)
            for c in 0..<k {
                var dot = 0.0
                for i in 0..<d { dot += (Double(rows[c * d + i]) - mean[i]) * v[i] }
                for i in 0..<d { next[i] += dot * (Double(rows[c * d + i]) - mean[i]) }
            }
            let norm = next.reduce(0) { $0 + $1 * $1 }.squareRoot()
            guard norm > 0 else { break }
            v = next.map { $0 / norm }
        }
        let projection = (0..<k).map { c in (0..<d).reduce(0.0) { $0 + (Double(rows[c * d + $1]) - mean[$1]) * v[$1] } }
        let order = (0..<k).sorted { projection[$0] < projection[$1] || (projection[$0] == projection[$1] && $0 < $1) }
        return order.flatMap { rows[$0 * d..<($0 + 1) * d] }
    }

    /// Squared L2 distance from `x` to every centroid (`‖c‖² − 2 x·c`, plus the constant `‖x‖²`).
    private func distances(_ x: UnsafeRawPointer) -> [Float] {
        let xx = Distance.normSquared(x, dimension: dimension)
        return centroids.withUnsafeBytes { c in
            (0..<cells).map { j in
                norms[j] + xx + 2 * Distance.distance(.ip, query: x, vector: c.baseAddress! + 4 * j * dimension, dimension: dimension)
            }
        }
    }

    /// Squared L2 distance from `x` (`dimension` floats) to every centroid, by cell number.
    public func distances(to x: [Float]) -> [Float] {
        precondition(x.count == dimension, "dimension mismatch")
        return x.withUnsafeBytes { distances($0.baseAddress!) }
    }

    /// The `count` cells with the smallest of `distances` (one per cell), nearest first, ties to
    /// the smaller number. A bounded heap: a query probes a few cells of up to 4,096.
    public static func nearest(_ distances: [Float], count: Int) -> [Int] {
        let n = min(max(0, count), distances.count)
        guard n > 0 else { return [] }
        guard n < distances.count / 4 else {
            return Array(distances.indices.sorted { distances[$0] < distances[$1] || (distances[$0] == distances[$1] && $0 < $1) }.prefix(n))
        }
        var heap = TopK(k: n)
        for (j, d) in distances.enumerated() { _ = heap.insert(distance: d, id: UInt64(j)) }
        return heap.sortedResults().map { Int($0.id) }
    }

    /// The cell of `x` (`dimension` floats): its nearest centroid, ties to the smaller number.
    public func cell(of x: UnsafeRawPointer) -> Int {
        let d = distances(x)
        var best = 0
        for j in 1..<cells where d[j] < d[best] { best = j }
        return best
    }

    public func cell(of x: [Float]) -> Int {
        precondition(x.count == dimension, "dimension mismatch")
        return x.withUnsafeBytes { cell(of: $0.baseAddress!) }
    }

    /// The `count` cells nearest to `x`, nearest first (ties to the smaller number).
    public func nearest(_ x: [Float], count: Int) -> [Int] {
        CoarseQuantizer.nearest(distances(to: x), count: count)
    }

    /// `"SXCQ" ‖ version u32 ‖ cells u32 ‖ dimension u32 ‖ centroids f32…` (little-endian).
    public func serialized() -> [UInt8] {
        var out = Array("SXCQ".utf8)
        for v in [UInt32(1), UInt32(cells), UInt32(dimension)] { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        for f in centroids { withUnsafeBytes(of: f.bitPattern.littleEndian) { out += $0 } }
        return out
    }

    public init(serialized bytes: UnsafeRawBufferPointer) throws(PQError) {
        guard bytes.count >= 16, Array(bytes[0..<4]) == Array("SXCQ".utf8) else { throw .invalidSerialization("bad magic or length") }
        func u32(_ at: Int) -> Int { Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }
        guard u32(4) == 1 else { throw .invalidSerialization("unknown version \(u32(4))") }
        let k = u32(8), d = u32(12)
        guard k > 0, d > 0, k <= 4096, d <= 65_536, bytes.count == 16 + 4 * k * d else {
            throw .invalidSerialization("\(bytes.count) bytes for \(k) cells of dimension \(d)")
        }
        let floats = (0..<(k * d)).map { Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 16 + 4 * $0, as: UInt32.self))) }
        try self.init(centroids: floats, dimension: d)
    }
}

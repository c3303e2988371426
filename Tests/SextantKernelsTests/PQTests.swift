import SextantTestSupport
import Testing
import SextantKernels

/// Row-major Gaussian clusters: `clusters` centres in [-1, 1]^d, points at spread `noise`.
func clusteredVectors(_ n: Int, _ d: Int, clusters: Int, noise: Float, seed: UInt64) -> [Float] {
    var rng = SeededRandom(seed: seed)
    let centres = (0..<(clusters * d)).map { _ in Float.random(in: -1...1, using: &rng) }
    var out = [Float]()
    out.reserveCapacity(n * d)
    for _ in 0..<n {
        let c = Int.random(in: 0..<clusters, using: &rng)
        for i in 0..<d { out.append(centres[c * d + i] + noise * Float(rng.gaussian())) }
    }
    return out
}

func row(_ v: [Float], _ r: Int, _ d: Int) -> [Float] { Array(v[(r * d)..<((r + 1) * d)]) }

/// Small quantizers, each trained once per test process (debug builds are slow).
enum Fixture {
    static let d = 16, n = 400
    static let data = clusteredVectors(n, d, clusters: 12, noise: 0.3, seed: 7)
    static let options = PQTrainingOptions(iterations: 4, seed: 3)
    static func train(bits: Int, m: Int, metric: DistanceKind) -> ProductQuantizer {
        try! ProductQuantizer(training: data, dimension: d, subspaceCount: m, bits: bits, metric: metric, options: options)
    }
    static let pq8 = DistanceKind.allCases.map { train(bits: 8, m: 4, metric: $0) }
    static let pq4 = DistanceKind.allCases.map { train(bits: 4, m: 8, metric: $0) }
    static func pq(bits: Int, metric: DistanceKind) -> ProductQuantizer {
        (bits == 8 ? pq8 : pq4)[Int(metric.rawValue)]
    }
}

@Suite struct PQTests {
    /// ADC equals the exact distance from the query to the reconstructed vector.
    @Test(arguments: [(8, DistanceKind.l2), (8, .ip), (8, .cosine), (4, .l2), (4, .ip), (4, .cosine)])
    func adcMatchesReconstruction(bits: Int, metric: DistanceKind) {
        let d = Fixture.d
        let pq = Fixture.pq(bits: bits, metric: metric)
        let codes = pq.encode(vectors: Fixture.data)
        #expect(codes.count == Fixture.n * pq.codeSize)
        let recon = pq.decode(codes)
        var rng = SeededRandom(seed: 11)
        for _ in 0..<5 {
            let q = (0..<d).map { _ in Float.random(in: -1.5...1.5, using: &rng) }
            let table = pq.distanceTable(query: q)
            let adc = table.distances(codes: codes)
            let qn = Distance.norm(q)
            for r in 0..<Fixture.n {
                let x = row(recon, r, d)
                let exact: Float = switch metric {
                case .l2: Distance.distance(.l2, q, x)
                case .ip: Distance.distance(.ip, q, x)
                // Reconstructions approximate the normalised vector: compare 1 − q̂·x̂ directly.
                case .cosine: 1 - (0..<d).reduce(Float(0)) { $0 + q[$1] / qn * x[$1] }
                }
                #expect(abs(adc[r] - exact) <= 1e-4 * (1 + abs(exact)), "row \(r): \(adc[r]) vs \(exact)")
            }
            // Gathered and top-k scans give bit-identical distances.
            let rows = [Fixture.n - 1, 0, 17, 17, 300, 4, 5, 6, 7, 8]
            #expect(table.distances(codes: codes, rows: rows) == rows.map { adc[$0] })
            let top = table.nearest(codes: codes, k: 10, firstID: 1000)
            let expected = adc.enumerated().map { Neighbor(distance: $0.element, id: 1000 + UInt64($0.offset)) }.sorted().prefix(10)
            #expect(top == Array(expected))
            let subset = Array(stride(from: 3, to: Fixture.n, by: 7))
            let subsetExpected = subset.map { Neighbor(distance: adc[$0], id: UInt64($0)) }.sorted().prefix(10)
            #expect(table.nearest(codes: codes, rows: subset, k: 10) == Array(subsetExpected))
        }
    }

    /// Every sub-vector is encoded to its nearest centroid; batch and single encodes agree.
    @Test func encodingPicksNearestCentroids() {
        let pq = Fixture.pq(bits: 8, metric: .l2)
        let d = Fixture.d, dsub = pq.subspaceDimension, k = pq.centroidCount
        let codes = pq.encode(vectors: Fixture.data)
        for r in stride(from: 0, to: Fixture.n, by: 37) {
            let x = row(Fixture.data, r, d)
            #expect(pq.encode(x) == Array(codes[(r * pq.codeSize)..<((r + 1) * pq.codeSize)]))
            for j in 0..<pq.subspaceCount {
                let sub = Array(x[(j * dsub)..<((j + 1) * dsub)])
                let dist = (0..<k).map { c in
                    Distance.distance(.l2, sub, Array(pq.centroids[((j * k + c) * dsub)..<((j * k + c + 1) * dsub)]))
                }
                let best = dist.min()!
                // The kernel ranks by ‖c‖² − 2x·c; allow Float slack between the two forms.
                #expect(dist[Int(codes[r * pq.codeSize + j])] <= best + 1e-4 * (1 + best))
            }
        }
    }

    @Test func trainingIsDeterministic() throws {
        let a = Fixture.train(bits: 4, m: 8, metric: .l2)
        let b = Fixture.train(bits: 4, m: 8, metric: .l2)
        #expect(a == b)
        let c = try ProductQuantizer(training: Fixture.data, dimension: Fixture.d, subspaceCount: 8, bits: 4,
                                     metric: .l2, options: PQTrainingOptions(iterations: 4, seed: 4))
        #expect(a.centroids != c.centroids)
        // A sample smaller than the data is drawn deterministically too.
        let small = PQTrainingOptions(iterations: 3, seed: 9, maxTrainingVectors: 100)
        let s1 = try ProductQuantizer(training: Fixture.data, dimension: Fixture.d, subspaceCount: 8, bits: 4, metric: .ip, options: small)
        let s2 = try ProductQuantizer(training: Fixture.data, dimension: Fixture.d, subspaceCount: 8, bits: 4, metric: .ip, options: small)
        #expect(s1 == s2)
    }

    /// Duplicate-heavy data leaves clusters empty; repair must keep every centroid finite.
    @Test func emptyClustersAreRepaired() throws {
        let d = 8
        var data = [Float]()
        for r in 0..<300 { for i in 0..<d { data.append(Float((r % 5) * 3 + i % 2)) } }
        let pq = try ProductQuantizer(training: data, dimension: d, subspaceCount: 4, bits: 8, metric: .l2,
                                      options: PQTrainingOptions(iterations: 4))
        let finite = pq.centroids.allSatisfy(\.isFinite)
        #expect(finite)
        // Every training vector is one of 5 points: reconstruction is (near) exact.
        let recon = pq.decode(pq.encode(vectors: data))
        let worst = zip(recon, data).map { abs($0 - $1) }.max() ?? 0
        #expect(worst < 0.01)
    }

    @Test func badArgumentsThrow() {
        let data = [Float](repeating: 0.5, count: 300 * 8)
        func train(_ v: [Float], d: Int, m: Int, bits: Int) throws {
            _ = try ProductQuantizer(training: v, dimension: d, subspaceCount: m, bits: bits, metric: .l2,
                                     options: PQTrainingOptions(iterations: 1))
        }
        #expect(throws: PQError.invalidDimension(0)) { try train(data, d: 0, m: 1, bits: 8) }
        #expect(throws: PQError.invalidSubspaceCount(dimension: 8, subspaceCount: 3)) { try train(data, d: 8, m: 3, bits: 8) }
        #expect(throws: PQError.invalidSubspaceCount(dimension: 8, subspaceCount: 0)) { try train(data, d: 8, m: 0, bits: 8) }
        #expect(throws: PQError.unsupportedBits(6)) { try train(data, d: 8, m: 4, bits: 6) }
        #expect(throws: PQError.invalidSubspaceCountForFourBits(1)) { try train(data, d: 8, m: 1, bits: 4) }
        #expect(throws: PQError.invalidSubspaceCount(dimension: 8, subspaceCount: 3)) { try train(data, d: 8, m: 3, bits: 4) }
        #expect(throws: PQError.notEnoughTrainingVectors(have: 100, need: 256)) {
            try train(Array(data.prefix(800)), d: 8, m: 4, bits: 8)
        }
        #expect(throws: PQError.self) { try train(Array(data.dropLast()), d: 8, m: 4, bits: 8) }
        var nan = data
        nan[77] = .nan
        #expect(throws: PQError.nonFiniteValue) { try train(nan, d: 8, m: 4, bits: 8) }
        #expect(throws: PQError.sizeMismatch(expected: 8 * 256, actual: 5)) {
            _ = try ProductQuantizer(dimension: 8, subspaceCount: 4, bits: 8, metric: .l2, centroids: [1, 2, 3, 4, 5])
        }
    }

    @Test func serializationRoundTrips() throws {
        for (bits, metric) in [(8, DistanceKind.cosine), (4, .ip)] {
            let pq = Fixture.pq(bits: bits, metric: metric)
            let bytes = pq.serialized()
            let back = try ProductQuantizer(serialized: bytes)
            #expect(back == pq)
            #expect(back.serialized() == bytes)
        }
    }

    /// Random, truncated and bit-flipped inputs are rejected with an error, never a trap.
    @Test func serializationRejectsMalformedBytes() throws {
        let good = try ProductQuantizer(dimension: 4, subspaceCount: 2, bits: 4, metric: .l2,
                                        centroids: (0..<64).map { Float($0) / 8 }).serialized()
        var rng = SeededRandom(seed: 99)
        for n in 0..<good.count {
            #expect(throws: PQError.self) { try ProductQuantizer(serialized: Array(good.prefix(n))) }
        }
        for _ in 0..<300 {
            var bad = good
            let i = Int.random(in: 0..<bad.count, using: &rng)
            bad[i] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
            #expect(throws: PQError.self) { try ProductQuantizer(serialized: bad) }
        }
        for _ in 0..<300 {
            var bytes = (0..<Int.random(in: 0..<400, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            // Half of them start like a real header so the deeper checks run.
            if Bool.random(using: &rng) && bytes.count >= 20 { bytes.replaceSubrange(0..<20, with: good[0..<20]) }
            #expect(throws: PQError.self) { try ProductQuantizer(serialized: bytes) }
        }
        // Extra bytes at the end are not silently ignored.
        #expect(throws: PQError.self) { try ProductQuantizer(serialized: good + [0]) }
    }
}

import SextantTestSupport
import Testing
import SextantKernels
import CSextantSIMD

@Suite struct PQFastScanTests {
    /// The quantized scan stays within the documented bound of the float 4-bit ADC.
    @Test(arguments: [DistanceKind.l2, .ip, .cosine])
    func fastScanWithinQuantizationBound(metric: DistanceKind) {
        let pq = Fixture.pq(bits: 4, metric: metric)
        let n = Fixture.n  // not a multiple of 32: the last block is partial
        let packed = pq.encode(vectors: Fixture.data)
        let fast = PQFastScanCodes(packedCodes: packed, subspaceCount: 8)
        #expect(fast.count == n && fast.blockCount == 13)
        var rng = SeededRandom(seed: 5)
        for _ in 0..<4 {
            let q = (0..<Fixture.d).map { _ in Float.random(in: -1...1, using: &rng) }
            let table = pq.distanceTable(query: q)
            let reference = table.distances(codes: packed)
            let quantized = PQFastScanTable(table)
            let approx = quantized.distances(codes: fast)
            #expect(approx.count == n)
            let bound = quantized.maxError
            // Coarse but not vacuous: under 2% of the spread of the distances.
            #expect(bound > 0 && bound < 0.02 * (reference.max()! - reference.min()!))
            for r in 0..<n {
                #expect(abs(approx[r] - reference[r]) <= bound + 1e-4 * (1 + abs(reference[r])),
                        "row \(r): \(approx[r]) vs \(reference[r]) bound \(bound)")
            }
            // Top-k agrees with sorting the sums (ties by id).
            let sums = quantized.sums(codes: fast)
            let expected = sums.enumerated().map { Neighbor(distance: Float($0.element), id: 7 + UInt64($0.offset)) }
                .sorted().prefix(25).map { Neighbor(distance: quantized.distance(sum: UInt16($0.distance)), id: $0.id) }
            #expect(quantized.nearest(codes: fast, k: 25, firstID: 7) == expected)
        }
    }

    /// Packing (the SIMD transpose for whole blocks, a loop for the partial last one) puts every
    /// nibble where the layout says, for code sizes below, at and across 16 bytes; the scattered
    /// form packs the same bytes as the contiguous one, and the C scalar packer agrees.
    @Test func packingFollowsTheLayout() {
        var rng = SeededRandom(seed: 33)
        for (m, n) in [(2, 40), (16, 31), (32, 64), (48, 77), (96, 100), (256, 33)] {
            let size = m / 2
            let packed = (0..<(n * size)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let codes = PQFastScanCodes(packedCodes: packed, subspaceCount: m)
            #expect(codes.blocks.count == codes.blockCount * m * 16)
            for v in 0..<(codes.blockCount * 32) {
                for q in 0..<m {
                    let expected = v < n ? (packed[v * size + q / 2] >> (q % 2 == 0 ? 0 : 4)) & 15 : 0
                    let byte = codes.blocks[(v / 32) * m * 16 + q * 16 + (v % 32) % 16]
                    let got = (v % 32) < 16 ? byte & 15 : byte >> 4
                    #expect(got == expected, "m \(m) vector \(v) sub-space \(q)")
                }
            }
            // Scattered addresses, in reverse order: the same codes reversed.
            let reversed = packed.withUnsafeBufferPointer { p in
                let addresses = (0..<n).reversed().map { UnsafeRawPointer(p.baseAddress! + $0 * size) }
                return addresses.withUnsafeBufferPointer { PQFastScanCodes(codes: $0, subspaceCount: m) }
            }
            let reversedCodes = (0..<n).reversed().flatMap { packed[($0 * size)..<(($0 + 1) * size)] }
            #expect(reversed == PQFastScanCodes(packedCodes: reversedCodes, subspaceCount: m))
            if n >= 32 {
                packed.withUnsafeBufferPointer { p in
                    let ptrs = (0..<32).map { Optional(p.baseAddress! + $0 * size) }
                    var simd = [UInt8](repeating: 0xAA, count: 32 * size), scalar = [UInt8](repeating: 0x55, count: 32 * size)
                    sextant_fastscan_pack32(ptrs, size, &simd)
                    sextant_fastscan_pack32_scalar(ptrs, size, &scalar)
                    #expect(simd == scalar && Array(codes.blocks[0..<(32 * size)]) == simd, "m \(m)")
                }
            }
        }
    }

    /// The AVX2 and SSSE3 paths produce exactly the scalar path's sums, at the 16-bit extreme (m = 256,
    /// entries up to 255) and for every block position.
    @Test func simdPathsMatchScalarExactly() throws {
        try #require(PQFastScanTable.isAVX2Available && PQFastScanTable.isSSSE3Available, "AVX2 or SSSE3 not available")
        var rng = SeededRandom(seed: 21)
        for (m, n) in [(2, 1), (16, 33), (96, 200), (256, 64)] {
            let packed = (0..<(n * m / 2)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let codes = PQFastScanCodes(packedCodes: packed, subspaceCount: m)
            var values = (0..<(m * 16)).map { _ in Float.random(in: -3...3, using: &rng) }
            if m == 256 { for j in 0..<m { values[j * 16] = -10; values[j * 16 + 15] = 10 } }  // all rows max width
            let table = PQFastScanTable(PQDistanceTable(subspaceCount: m, bits: 4, values: values))
            let scalar = table.sums(codes: codes, path: .scalar)
            #expect(scalar == table.sums(codes: codes, path: .avx2))
            #expect(scalar == table.sums(codes: codes, path: .ssse3))
            #expect(scalar == table.sums(codes: codes))
            // And both are the plain sum of table bytes.
            for v in 0..<n {
                var s = 0
                for j in 0..<m {
                    let nibble = Int(packed[v * m / 2 + j / 2] >> (j % 2 == 0 ? 0 : 4)) & 15
                    s += Int(table.lut[j * 16 + nibble])
                }
                #expect(Int(scalar[v]) == s)
            }
            // Two tables in one pass give each table's own sums.
            var other = values
            other.reverse()
            let second = PQFastScanTable(PQDistanceTable(subspaceCount: m, bits: 4, values: other))
            var s0 = [UInt16](repeating: 0, count: codes.blockCount * 32), s1 = s0
            s0.withUnsafeMutableBufferPointer { a in s1.withUnsafeMutableBufferPointer { b in PQFastScanTable.sums(table, second, codes: codes, into: a, b) } }
            #expect(Array(s0.prefix(n)) == scalar && Array(s1.prefix(n)) == second.sums(codes: codes, path: .scalar))
            let top = table.nearest(codes: codes, k: 10, path: .scalar)
            #expect(top == table.nearest(codes: codes, k: 10, path: .avx2))
            #expect(top == table.nearest(codes: codes, k: 10, path: .ssse3))
        }
    }

    /// PQ scan + exact re-rank of the top R finds the true top 10 on clustered data.
    @Test(arguments: [8, 4])
    func recallAfterReranking(bits: Int) throws {
        let d = 16, n = 1200, m = bits == 8 ? 4 : 8, R = 60
        let data = clusteredVectors(n, d, clusters: 40, noise: 0.25, seed: 31)
        let pq = try ProductQuantizer(training: data, dimension: d, subspaceCount: m, bits: bits, metric: .l2,
                                      options: PQTrainingOptions(iterations: 4, seed: 1, maxTrainingVectors: 600))
        let codes = pq.encode(vectors: data)
        let fast = bits == 4 ? PQFastScanCodes(packedCodes: codes, subspaceCount: m) : nil
        let queries = clusteredVectors(20, d, clusters: 40, noise: 0.25, seed: 31 ^ 0xFF)
        var hits = 0
        for qi in 0..<20 {
            let q = row(queries, qi, d)
            let table = pq.distanceTable(query: q)
            let candidates = if let fast { PQFastScanTable(table).nearest(codes: fast, k: R) }
                             else { table.nearest(codes: codes, k: R) }
            let reranked = candidates.map { Neighbor(distance: Distance.distance(.l2, q, row(data, Int($0.id), d)), id: $0.id) }
                .sorted().prefix(10).map(\.id)
            let truth = Distance.oneToMany(.l2, query: q, vectors: data).enumerated()
                .map { Neighbor(distance: $0.element, id: UInt64($0.offset)) }.sorted().prefix(10).map(\.id)
            hits += Set(reranked).intersection(truth).count
        }
        let recall = Double(hits) / 200
        #expect(recall >= 0.9, "recall@10 \(recall)")
    }
}

@Suite struct SumSelectionTests {
    /// The bound is the top of the high-byte bucket holding the sorted array's rank-th element
    /// (so at least `rank` sums lie at or below it), over spreads that put every rank in one
    /// bucket, across buckets, with heavy ties, and out of range.
    @Test func rankBoundMatchesSorting() {
        var rng = SeededRandom(seed: 11)
        for trial in 0..<200 {
            let n = Int.random(in: 1...3000, using: &rng)
            let spread: ClosedRange<UInt16> = [0...255, 0...7, 1000...1300, 0...UInt16.max][trial % 4]
            let sums = (0..<n).map { _ in UInt16.random(in: spread, using: &rng) }
            let sorted = sums.sorted()
            for rank in [1, 2, n / 3 + 1, n, n + 1, 0, Int.random(in: 1...n, using: &rng)] {
                let got = sums.withUnsafeBufferPointer { SumSelection.rankBound($0, rank: rank) }
                let want: UInt16 = rank >= 1 && rank <= n ? sorted[rank - 1] | 0xFF : .max
                #expect(got == want, "n \(n) rank \(rank)")
                if rank >= 1 && rank <= n { #expect(sums.filter { $0 <= got }.count >= rank) }
            }
        }
    }
}

import SextantTestSupport
import Testing
import SextantKernels
import CSextantSIMD

@Suite struct PQGroupTableTests {
    /// 8-bit quantizers with an odd (1), even (4) and wider (16) sub-space count.
    static func quantizer(m: Int, metric: DistanceKind) -> ProductQuantizer {
        m == 4 ? Fixture.pq(bits: 8, metric: metric) : Fixture.train(bits: 8, m: m, metric: metric)
    }

    static func queries(_ count: Int, seed: UInt64) -> [[Float]] {
        var rng = SeededRandom(seed: seed)
        return (0..<count).map { _ in (0..<Fixture.d).map { _ in Float.random(in: -1.5...1.5, using: &rng) } }
    }

    /// Every lane's sum is the plain sum of its byte entries (AVX2 and scalar paths alike), and
    /// dequantized it stays within the stated bound of the float ADC distance.
    @Test(arguments: [(1, DistanceKind.l2), (4, .l2), (4, .ip), (4, .cosine), (16, .l2), (16, .cosine)])
    func sumsAreExactAndWithinTheBound(m: Int, metric: DistanceKind) {
        let pq = Self.quantizer(m: m, metric: metric)
        let codes = pq.encode(vectors: Fixture.data)
        let n = Fixture.n
        // 5 lanes (a partial group: the other lanes repeat the first table) and a full group.
        for laneCount in [5, 32] {
            let floatTables = Self.queries(laneCount, seed: UInt64(m * 100 + laneCount)).map { pq.distanceTable(query: $0) }
            let bytes = floatTables.map { PQByteTable($0) }
            // Quantized straight from the query: the same table.
            for (i, q) in Self.queries(laneCount, seed: UInt64(m * 100 + laneCount)).enumerated() {
                let direct = q.withUnsafeBufferPointer { PQByteTable(pq, query: $0) }
                #expect(direct.entries == bytes[i].entries && direct.scale == bytes[i].scale && direct.offset == bytes[i].offset)
            }
            let group = PQGroupTable(subspaceCount: m)
            group.load(bytes)
            #expect(group.count == laneCount)
            // Codes listed by address in a shuffled order, as a filtered scan lists them.
            let order = (0..<n).map { ($0 * 37) % n }
            var fast = [UInt16](repeating: 0, count: 32 * n), portable = fast
            codes.withUnsafeBytes { raw in
                let addresses = order.map { UnsafeRawPointer(raw.baseAddress! + $0 * m) }
                addresses.withUnsafeBufferPointer { list in
                    group.sums(codes: list, into: &fast)
                    group.sums(codes: list, into: &portable, portable: true)
                }
            }
            #expect(fast == portable)
            for (l, table) in bytes.enumerated() {
                let reference = floatTables[l].distances(codes: codes)
                #expect(table.maxError > 0 && table.maxError < 0.05 * (reference.max()! - reference.min()! + 1e-3))
                for (i, r) in order.enumerated() {
                    var sum = 0
                    for j in 0..<m { sum += Int(table.entries[j * 256 + Int(codes[r * m + j])]) }
                    #expect(Int(fast[32 * i + l]) == sum, "lane \(l) code \(r)")
                    let approx = table.distance(sum: fast[32 * i + l])
                    #expect(abs(approx - reference[r]) <= table.maxError + 1e-4 * (1 + abs(reference[r])),
                            "lane \(l) code \(r): \(approx) vs \(reference[r]) bound \(table.maxError)")
                }
            }
        }
    }

    /// The selection lists exactly the sums at or below each lane's limit, in order, on every path.
    @Test func selectionListsEverySumAtOrBelowItsLimit() {
        var rng = SeededRandom(seed: 9)
        let rows = 77
        let sums = (0..<(32 * rows)).map { _ in UInt16.random(in: 0...2000, using: &rng) }
        var limits = (0..<32).map { UInt16(100 * $0) }
        limits[3] = 0
        limits[4] = .max
        var hits = [UInt32](repeating: 0, count: 32 * rows)
        let found = PQGroupTable.atMost(sums, rows: rows, limits: limits, into: &hits)
        let expected = (0..<(32 * rows)).filter { sums[$0] <= limits[$0 % 32] }.map(UInt32.init)
        #expect(Array(hits[0..<found]) == expected)
        #expect(expected.contains { $0 % 32 == 4 } && expected.count > rows)
    }

    /// Interleaving (16 x 16 transposes, then a loop for the tail) puts every byte in its lane.
    @Test func interleavingPutsEveryEntryInItsLane() {
        for entries in [16, 40, 512] {
            let tables = (0..<32).map { l in (0..<entries).map { UInt8(truncatingIfNeeded: $0 * 7 + l * 31 + ($0 >> 3)) } }
            var out = [UInt8](repeating: 0, count: entries * 32)
            var pointers: [UnsafePointer<UInt8>?] = []
            let copies = tables.map { t -> UnsafeMutablePointer<UInt8> in
                let p = UnsafeMutablePointer<UInt8>.allocate(capacity: entries)
                p.initialize(from: t, count: entries)
                return p
            }
            defer { copies.forEach { $0.deallocate() } }
            pointers = copies.map { UnsafePointer($0) }
            sextant_interleave32(pointers, entries, &out)
            for e in 0..<entries {
                for l in 0..<32 { #expect(out[e * 32 + l] == tables[l][e], "entry \(e) lane \(l)") }
            }
        }
    }

    /// Quantization: entries within half a step of the scaled table, a flat table all zeros.
    @Test func quantizationRoundsToTheNearestStep() {
        let pq = Fixture.pq(bits: 8, metric: .l2)
        let table = pq.distanceTable(query: Self.queries(1, seed: 4)[0])
        let q = PQByteTable(table)
        for j in 0..<table.subspaceCount {
            let row = table.values[(j * 256)..<(j * 256 + 256)]
            let lo = row.min()!
            for c in 0..<256 {
                let ideal = (table.values[j * 256 + c] - lo) * q.scale
                #expect(abs(Float(q.entries[j * 256 + c]) - ideal) <= 0.5 + 1e-3)
            }
        }
        let flat = PQByteTable(PQDistanceTable(subspaceCount: 2, bits: 8, values: [Float](repeating: 3, count: 512), bias: 1))
        #expect(flat.entries.allSatisfy { $0 == 0 } && flat.distance(sum: 0) == 7)
    }

    /// The C table kernels (AVX2 and scalar) give the floats of the plain per-lane loop, for
    /// 8-bit (k = 256) and 4-bit (k = 16) codebooks and every metric.
    @Test(arguments: [(8, DistanceKind.l2), (8, .ip), (8, .cosine), (4, .l2), (4, .ip)])
    func tableKernelsAgreeBitForBit(bits: Int, metric: DistanceKind) {
        let pq = Fixture.pq(bits: bits, metric: metric)
        let (m, k, dsub) = (pq.subspaceCount, pq.centroidCount, pq.subspaceDimension)
        for q in Self.queries(3, seed: UInt64(bits * 10 + Int(metric.rawValue))) {
            let table = pq.distanceTable(query: q)
            var scale: Float = 1
            if metric == .cosine {
                let norm = Distance.norm(q)
                if norm > 0 { scale = 1 / norm }
            }
            // The reference: per entry, terms in order, each a separate operation.
            // The codebooks dimension-major per sub-space, as the kernels read them.
            var ct = [Float](repeating: 0, count: m * k * dsub)
            for j in 0..<m {
                for c in 0..<k {
                    for i in 0..<dsub { ct[j * k * dsub + i * k + c] = pq.centroids[(j * k + c) * dsub + i] }
                }
            }
            var reference = [Float](repeating: 0, count: m * k)
            for j in 0..<m {
                for c in 0..<k {
                    var acc: Float = 0
                    for i in 0..<dsub {
                        let x = ct[j * k * dsub + i * k + c], qi = q[j * dsub + i] * scale
                        if metric == .l2 { let d = x - qi; acc = acc + d * d } else { acc = acc - qi * x }
                    }
                    reference[j * k + c] = acc
                }
            }
            var scalar = [Float](repeating: 0, count: m * k)
            ct.withUnsafeBufferPointer { ctp in
                q.withUnsafeBufferPointer { qp in
                    sextant_pq_table_scalar(ctp.baseAddress!, m, k, dsub, qp.baseAddress!, scale, metric == .l2 ? 1 : 0, &scalar)
                }
            }
            #expect(table.values.map(\.bitPattern) == reference.map(\.bitPattern))
            #expect(scalar.map(\.bitPattern) == reference.map(\.bitPattern))
        }
    }
}

import SextantTestSupport
import Testing
import SextantKernels

// The dispatched traversal kernels (AVX2 + FMA when the CPU has them, else the Swift ones)
// against the exact value and the Swift reference. Stated bound for the accelerated kernels
// (sextant_simd.h): |computed − exact| ≤ (⌈d/8⌉ + 8) · u · Σ|t_i| (each lane sums ⌈d/8⌉
// terms with one rounding per FMA, 3 reduction adds, ≤ 3 roundings in a term). Against the
// reference (bound (⌈d/16⌉ + 8) · u · Σ|t_i|) the difference is at most the sum of the two.

private let u = 0x1p-24

private func fastBound(_ d: Int) -> Double { Double((d + 7) / 8 + 8) * u }
private func referenceGap(_ d: Int) -> Double { Double((d + 7) / 8 + (d + 15) / 16 + 16) * u }

/// Floats stored at `byteOffset` (odd offsets included) behind NaN padding, so an over-read
/// would show in the result.
private final class Rows {
    let raw: UnsafeMutableRawBufferPointer
    let d: Int, offset: Int, stride: Int
    init(_ rows: [[Float]], byteOffset: Int) {
        d = rows[0].count
        offset = byteOffset
        stride = d * 4 + (byteOffset & 1)
        raw = .allocate(byteCount: byteOffset + rows.count * stride + 64, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0xFF)
        for (r, v) in rows.enumerated() {
            for (i, f) in v.enumerated() { raw.storeBytes(of: f, toByteOffset: byteOffset + r * stride + i * 4, as: Float.self) }
        }
    }
    deinit { raw.deallocate() }
    func row(_ r: Int) -> UnsafeRawPointer { UnsafeRawPointer(raw.baseAddress! + offset + r * stride) }
}

private func randomRows(_ n: Int, _ d: Int, _ rng: inout SeededRandom) -> [[Float]] {
    (0..<n).map { k in
        let mag = Float([1, 1e-3, 1e3][k % 3])
        return (0..<d).map { _ in Float.random(in: -2...2, using: &rng) * mag }
    }
}

/// Exact l2, dot, Σ|(q−x)²|, Σ|q x| and ‖x‖² in Double.
private func exact(_ q: [Float], _ x: [Float]) -> (l2: Double, dot: Double, absDot: Double, norm: Double) {
    var l2 = 0.0, dot = 0.0, absDot = 0.0, norm = 0.0
    for i in q.indices {
        let a = Double(q[i]), b = Double(x[i])
        l2 += (a - b) * (a - b)
        dot += a * b
        absDot += abs(a * b)
        norm += b * b
    }
    return (l2, dot, absDot, norm)
}

@Suite struct TraversalDistanceTests {
    /// Every dimension 1…300 at odd and even alignments: one-to-one, fused dot + norm and
    /// batch forms meet the bound, batches equal single calls bit for bit, and the forced
    /// portable path equals ``Distance`` bit for bit.
    @Test(arguments: [false, true])
    func everyDimensionAgainstReference(portable: Bool) {
        TraversalDistance.forcePortable(portable)
        defer { TraversalDistance.forcePortable(false) }
        if portable { #expect(!TraversalDistance.isAccelerated) }
        var rng = SeededRandom(seed: portable ? 11 : 12)
        let offsets = [0, 4, 1, 3, 5, 7, 13]
        for d in 1...300 {
            let nv = 9  // two groups of four and a leftover
            let Q = Rows(randomRows(1, d, &rng), byteOffset: offsets[d % offsets.count])
            let xs = randomRows(nv, d, &rng)
            let X = Rows(xs, byteOffset: offsets[(d / 7) % offsets.count])
            let q = Q.row(0)
            let qv = (0..<d).map { q.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
            let pointers = (0..<nv).map { X.row($0) }
            var l2Batch = [Float](repeating: .nan, count: nv), dotBatch = l2Batch
            pointers.withUnsafeBufferPointer { p in
                TraversalDistance.squaredL2(q, p, dimension: d, into: &l2Batch)
                TraversalDistance.dot(q, p, dimension: d, into: &dotBatch)
            }
            for j in 0..<nv {
                let x = X.row(j)
                let e = exact(qv, xs[j])
                let l2 = TraversalDistance.squaredL2(q, x, dimension: d)
                let dot = TraversalDistance.dot(q, x, dimension: d)
                let (fd, fn) = TraversalDistance.dotAndNormSquared(query: q, vector: x, dimension: d)
                let refL2 = Distance.squaredL2(q, x, dimension: d), refDot = Distance.dot(q, x, dimension: d)
                let refNorm = Distance.normSquared(x, dimension: d)
                #expect(abs(Double(l2) - e.l2) <= fastBound(d) * e.l2, "l2 d \(d) j \(j)")
                #expect(abs(Double(dot) - e.dot) <= fastBound(d) * e.absDot, "dot d \(d) j \(j)")
                #expect(abs(Double(fn) - e.norm) <= fastBound(d) * e.norm, "norm d \(d) j \(j)")
                #expect(abs(Double(l2) - Double(refL2)) <= referenceGap(d) * e.l2, "l2 vs reference d \(d)")
                #expect(abs(Double(dot) - Double(refDot)) <= referenceGap(d) * e.absDot, "dot vs reference d \(d)")
                #expect(fd.bitPattern == dot.bitPattern, "fused dot d \(d) j \(j)")
                #expect(l2Batch[j].bitPattern == l2.bitPattern, "batch l2 d \(d) j \(j)")
                #expect(dotBatch[j].bitPattern == dot.bitPattern, "batch dot d \(d) j \(j)")
                if portable {
                    #expect(l2.bitPattern == refL2.bitPattern && dot.bitPattern == refDot.bitPattern && fn.bitPattern == refNorm.bitPattern)
                }
            }
        }
    }

    /// A graph source's traversal distances are within the bound of the exact ones, and what
    /// searches report (``FlatVectors/resultDistance(_:to:)``) is the exact plan's value.
    @Test(arguments: DistanceKind.allCases)
    func flatVectorsReportExactDistances(kind: DistanceKind) {
        var rng = SeededRandom(seed: 5 &+ UInt64(kind.rawValue))
        for d in [1, 7, 8, 9, 31, 128, 129, 384] {
            let rows = randomRows(12, d, &rng).map { $0.map { $0 / 1000 + 1 } }
            let vectors = FlatVectorBuffer(kind: kind, dimension: d, rows: rows.flatMap { $0 })
            let source = vectors.source
            let q = randomRows(1, d, &rng)[0]
            q.withUnsafeBytes { qb in
                let prepared = source.query(qb.baseAddress!)
                for id in 0..<UInt32(12) {
                    let reference = Distance.distance(kind, q, vectors.vector(Int(id)))
                    #expect(source.resultDistance(prepared, to: id)?.bitPattern == reference.bitPattern)
                    let e = exact(q, rows[Int(id)])
                    let scale = kind == .l2 ? e.l2 : kind == .ip ? e.absDot : 1
                    let tolerance = kind == .cosine ? 2 * referenceGap(d) + 8 * u : referenceGap(d) * scale
                    #expect(abs(Double(source.distance(prepared, to: id)) - Double(reference)) <= tolerance, "\(kind) d \(d)")
                }
            }
        }
    }
}

import SextantKernels
import SextantTestSupport
import Testing

@Suite struct FDETests {
    func randomTokens(_ n: Int, _ d: Int, _ rng: inout SeededRandom) -> [Float] {
        (0..<(n * d)).map { _ in Float.random(in: -1...1, using: &rng) }
    }

    /// SimHash bucket of a token in repetition 0, through the encoder itself: a one-token query
    /// has exactly one non-zero block (when the identity projection keeps it non-zero).
    func bucket(_ e: FDEEncoder, _ x: [Float]) -> Int {
        let f = e.encode(x, side: .query)
        let dp = e.parameters.projectionDimension
        let blocks = (0..<e.parameters.buckets).filter { b in f[(b * dp)..<(b + 1) * dp].contains { $0 != 0 } }
        #expect(blocks.count == 1)
        return blocks[0]
    }

    @Test func querySumsAndDocumentAverages() {
        // Identity projection, one repetition: blocks are literally the bucket's sum / mean.
        let d = 8
        let p = FDEParameters(tokenDimension: d, repetitions: 1, simhashBits: 3, projectionDimension: d, seed: 7)
        let e = FDEEncoder(p)
        var rng = SeededRandom(seed: 1)
        let tokens = randomTokens(40, d, &rng)
        let q = e.encode(tokens, side: .query), doc = e.encode(tokens, side: .document)
        var sums = [[Double]](repeating: [Double](repeating: 0, count: d), count: 8)
        var counts = [Int](repeating: 0, count: 8)
        for t in 0..<40 {
            let x = Array(tokens[t * d..<(t + 1) * d])
            let b = bucket(e, x)
            counts[b] += 1
            for j in 0..<d { sums[b][j] += Double(x[j]) }
        }
        for b in 0..<8 where counts[b] > 0 {
            for j in 0..<d {
                #expect(abs(Double(q[b * d + j]) - sums[b][j]) < 1e-4)
                #expect(abs(Double(doc[b * d + j]) - sums[b][j] / Double(counts[b])) < 1e-5)
            }
        }
        #expect(counts.filter { $0 > 0 }.count >= 4)
    }

    @Test func emptyDocumentBucketsTakeTheNearestTokenByHamming() {
        let d = 6
        let p = FDEParameters(tokenDimension: d, repetitions: 1, simhashBits: 4, projectionDimension: d, seed: 11)
        let e = FDEEncoder(p)
        var rng = SeededRandom(seed: 2)
        let tokens = randomTokens(3, d, &rng)
        let codes = (0..<3).map { bucket(e, Array(tokens[$0 * d..<($0 + 1) * d])) }
        let q = e.encode(tokens, side: .query), doc = e.encode(tokens, side: .document)
        for b in 0..<16 {
            let block = Array(doc[b * d..<(b + 1) * d])
            if codes.contains(b) { continue }
            // Query: empty stays zero.
            #expect(q[b * d..<(b + 1) * d].allSatisfy { $0 == 0 })
            let best = (0..<3).min { (codes[$0] ^ b).nonzeroBitCount < (codes[$1] ^ b).nonzeroBitCount
                || ((codes[$0] ^ b).nonzeroBitCount == (codes[$1] ^ b).nonzeroBitCount && $0 < $1) }!
            #expect(block == Array(tokens[best * d..<(best + 1) * d]))
        }
        // Documents have no zero block at all.
        for b in 0..<16 { #expect(doc[b * d..<(b + 1) * d].contains { $0 != 0 }) }
    }

    @Test func deterministicFromTheSeed() {
        var rng = SeededRandom(seed: 3)
        let tokens = randomTokens(20, 32, &rng)
        let p = FDEParameters(tokenDimension: 32, repetitions: 4, simhashBits: 3, projectionDimension: 8, seed: 5)
        let a = FDEEncoder(p).encode(tokens, side: .document)
        let b = FDEEncoder(p).encode(tokens, side: .document)
        #expect(a.map(\.bitPattern) == b.map(\.bitPattern))
        var other = p
        other.seed = 6
        #expect(FDEEncoder(other).encode(tokens, side: .document) != a)
        #expect(a.count == 4 * 8 * 8)
    }

    /// Golden values: these bits are part of the on-disk contract (encoder version 1). A change
    /// here means stored FDEs no longer match new queries: bump the encoder version instead.
    @Test func goldenValues() {
        var tokens: [Float] = []
        for t in 0..<5 { for j in 0..<16 { tokens.append(Float((t * 7 + j * 3) % 11) / 7 - 0.6) } }
        let p = FDEParameters(tokenDimension: 16, repetitions: 3, simhashBits: 2, projectionDimension: 4, seed: 42)
        let e = FDEEncoder(p)
        let doc = e.encode(tokens, side: .document), q = e.encode(tokens, side: .query)
        var g = SplitMix64.stream(seed: 42, repetition: 0, purpose: 1)
        let first = g.gaussian()
        let picks = [1, 5, 13, 22, 30, 47]
        let golden = (first.bitPattern, picks.map { doc[$0].bitPattern }, picks.map { q[$0].bitPattern })
        // Printed on failure, to pin a deliberate new version.
        print("FDE golden:", golden.0, golden.1, golden.2)
        #expect(golden.0 == FDEGolden.gaussian)
        #expect(golden.1 == FDEGolden.document)
        #expect(golden.2 == FDEGolden.query)
        var sketched = p
        sketched.finalDimension = 10
        let s = FDEEncoder(sketched).encode(tokens, side: .document)
        #expect(s.count == 10)
        // Each output is a signed sum of inputs: the total magnitude cannot grow.
        let sketchedMass: Float = s.reduce(0) { $0 + abs($1) }
        let mass: Float = doc.reduce(0) { $0 + abs($1) }
        #expect(sketchedMass <= mass + 1e-3)
        #expect(sketchedMass > 0)
    }

    @Test func innerProductTracksChamfer() {
        // On generated late-interaction data the FDE inner product ranks a query's target
        // document near the top far more often than chance, and correlates with Chamfer.
        let data = MultiVectorDataset(documents: 300, queries: 20, dimension: 32, concepts: 128, minTokens: 8, maxTokens: 24,
                                      queryTokens: 8, seed: 9)
        let e = FDEEncoder(FDEParameters(tokenDimension: 32, repetitions: 10, simhashBits: 4, projectionDimension: 8, seed: 1))
        let docs = (0..<data.documentCount).map { e.encode(data.document($0), side: .document) }
        var hits = 0, pairs = 0, concordant = 0
        for qi in 0..<data.queryCount {
            let qf = e.encode(data.query(qi), side: .query)
            let fde = docs.map { d in zip(qf, d).reduce(Float(0)) { $0 + $1.0 * $1.1 } }
            let best = data.exactTop(data.query(qi), k: 1)[0].index
            let byFDE = fde.indices.sorted { fde[$0] > fde[$1] }
            if byFDE.prefix(30).contains(best) { hits += 1 }
            let ch = (0..<data.documentCount).map { Chamfer.similarity(query: data.query(qi), document: data.document($0), dimension: 32) }
            for _ in 0..<200 {
                let a = Int.random(in: 0..<data.documentCount), b = Int.random(in: 0..<data.documentCount)
                guard a != b, abs(ch[a] - ch[b]) > 0.5 else { continue }
                pairs += 1
                if (ch[a] > ch[b]) == (fde[a] > fde[b]) { concordant += 1 }
            }
        }
        #expect(hits >= 16, "Chamfer-best document in the FDE top 30 for \(hits) of 20 queries")
        #expect(Double(concordant) / Double(max(1, pairs)) > 0.8, "\(concordant) of \(pairs) pairs ordered alike")
    }

    @Test func chamferKernelMatchesTheOracle() {
        var rng = SeededRandom(seed: 4)
        for d in [1, 7, 16, 33, 128] {
            for (nq, np) in [(1, 1), (3, 5), (32, 17), (5, 64)] {
                let q = randomTokens(nq, d, &rng), p = randomTokens(np, d, &rng)
                let got = Double(Chamfer.similarity(query: q, document: p, dimension: d))
                let want = MultiVectorDataset.referenceChamfer(q, p, dimension: d)
                #expect(abs(got - want) <= 1e-5 * Double(nq * d) + 1e-6, "d \(d) \(nq)x\(np): \(got) vs \(want)")
                // Stacked form: bit-identical per segment.
                let q2 = randomTokens(4, d, &rng)
                var scratch: [Float] = []
                var out = [Float](repeating: 0, count: 2)
                (q + q2).withUnsafeBytes { qq in
                    p.withUnsafeBytes { pp in
                        out.withUnsafeMutableBufferPointer { o in
                            Chamfer.similarities(queries: qq.baseAddress!, segments: [0..<nq, nq..<(nq + 4)], document: pp.baseAddress!,
                                                 documentCount: np, dimension: d, scratch: &scratch, into: o.baseAddress!)
                        }
                    }
                }
                #expect(out[0].bitPattern == Float(got).bitPattern)
                #expect(out[1].bitPattern == Chamfer.similarity(query: q2, document: p, dimension: d).bitPattern)
            }
        }
    }

    @Test func halfFloatRoundTrip() {
        var rng = SeededRandom(seed: 8)
        var values: [Float] = [0, -0, 1, -1, 65504, -65504, 6.1035156e-05, 5.9604645e-08, 1e-7, 0.1, 3.14159, 1000.7]
        for _ in 0..<2000 { values.append(Float.random(in: -4...4, using: &rng)) }
        let bits = values.map(HalfFloat.encode)
        for (x, h) in zip(values, bits) { #expect(h == Float16(x).bitPattern, "\(x)") }
        var out = [Float](repeating: 0, count: values.count)
        bits.withUnsafeBytes { b in out.withUnsafeMutableBufferPointer { HalfFloat.decode(b.baseAddress!, count: values.count, into: $0.baseAddress!) } }
        for (h, y) in zip(bits, out) { #expect(y == Float(Float16(bitPattern: h))) }
        #expect(HalfFloat.encode(70000) == 0x7C00)
    }
}

/// Pinned outputs of encoder version 1 (see ``FDETests/goldenValues()``).
enum FDEGolden {
    static let gaussian: UInt32 = 3_206_269_689
    static let document: [UInt32] = [3_189_828_109, 1_056_485_259, 3_161_067_168, 3_177_844_368, 1_061_997_775, 1_041_385_768]
    static let query: [UInt32] = [3_198_216_717, 0, 3_169_455_776, 0, 1_061_997_775, 1_041_385_768]
}

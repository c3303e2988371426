import SextantTestSupport
import Testing
import SextantKernels

func randomVector(_ d: Int, _ rng: inout SeededRandom) -> [Float] {
    (0..<d).map { _ in Float.random(in: -2...2, using: &rng) }
}

/// Reference in Double, plus the magnitude Σ|term| that bounds the Float rounding error.
func reference(_ kind: DistanceKind, _ q: [Float], _ x: [Float]) -> (value: Double, scale: Double) {
    var l2 = 0.0, dot = 0.0, absDot = 0.0, qq = 0.0, xx = 0.0
    for i in q.indices {
        let a = Double(q[i]), b = Double(x[i])
        l2 += (a - b) * (a - b)
        dot += a * b
        absDot += abs(a * b)
        qq += a * a
        xx += b * b
    }
    switch kind {
    case .l2: return (l2, l2)
    case .ip: return (-dot, absDot)
    case .cosine:
        let den = qq.squareRoot() * xx.squareRoot()
        // |error of q·x/(‖q‖‖x‖)| ≤ rel · Σ|q_i x_i| / (‖q‖‖x‖) ≤ rel (Cauchy–Schwarz).
        return (den > 0 ? 1 - dot / den : 1, 1)
    }
}

/// Relative tolerance, stated once: Float accumulation of ≤ 300 terms in the canonical
/// order errs by well under 1e-5 of Σ|term| in practice; 1e-4 leaves margin without
/// hiding real bugs (a lost lane or tail element errs by ~1/d of the result, > 3e-3).
let relativeTolerance = 1e-4

/// Copies `v` into `raw` at `byteOffset` (any alignment).
func store(_ v: [Float], into raw: UnsafeMutableRawBufferPointer, at byteOffset: Int) {
    for (i, f) in v.enumerated() {
        raw.storeBytes(of: f, toByteOffset: byteOffset + i * 4, as: Float.self)
    }
}

@Suite struct DistanceAgreesWithReference {
    @Test(arguments: DistanceKind.allCases)
    func everyDimensionAndAlignment(kind: DistanceKind) {
        var rng = SeededRandom(seed: 42 &+ UInt64(kind.rawValue))
        let offsets = [0, 1, 2, 3, 4, 5, 7, 8, 12]  // odd bytes and 1–3 floats
        for d in 1...300 {
            let q = randomVector(d, &rng), x = randomVector(d, &rng)
            let (ref, scale) = reference(kind, q, x)
            let qo = offsets[Int.random(in: 0..<offsets.count, using: &rng)]
            let xo = offsets[Int.random(in: 0..<offsets.count, using: &rng)]
            let qRaw = UnsafeMutableRawBufferPointer.allocate(byteCount: d * 4 + 16, alignment: 64)
            let xRaw = UnsafeMutableRawBufferPointer.allocate(byteCount: d * 4 + 16, alignment: 64)
            defer { qRaw.deallocate(); xRaw.deallocate() }
            store(q, into: qRaw, at: qo)
            store(x, into: xRaw, at: xo)
            let qp = UnsafeRawPointer(qRaw.baseAddress! + qo), xp = UnsafeRawPointer(xRaw.baseAddress! + xo)
            let got = Distance.distance(kind, query: qp, vector: xp, dimension: d)
            #expect(abs(Double(got) - ref) <= relativeTolerance * scale + 1e-7,
                    "kind \(kind) d \(d) offsets \(qo)/\(xo): \(got) vs \(ref)")

            // Every other entry point gives the bit-identical value.
            let arrayForm = Distance.distance(kind, q, x)
            #expect(arrayForm.bitPattern == got.bitPattern, "array form, d \(d)")
            var out: Float = .nan
            Distance.oneToMany(kind, query: qp, vectors: xp, count: 1, dimension: d, into: &out)
            #expect(out.bitPattern == got.bitPattern, "oneToMany, d \(d)")
            Distance.gathered(kind, query: qp, count: 1, dimension: d, into: &out) { _ in xp }
            #expect(out.bitPattern == got.bitPattern, "gathered, d \(d)")
            if kind == .cosine {
                let qn = Distance.norm(qp, dimension: d)
                let c = Distance.cosine(query: qp, queryNorm: qn, vector: xp, dimension: d)
                #expect(c.bitPattern == got.bitPattern, "precomputed norm, d \(d)")
            }
        }
    }

    @Test func primitivesAgreeWithReference() {
        var rng = SeededRandom(seed: 7)
        for d in [1, 3, 4, 15, 16, 17, 31, 32, 33, 100, 128, 384] {
            let q = randomVector(d, &rng), x = randomVector(d, &rng)
            let (dot, n2) = q.withUnsafeBytes { qb in
                x.withUnsafeBytes { xb in
                    Distance.dotAndNormSquared(query: qb.baseAddress!, vector: xb.baseAddress!, dimension: d)
                }
            }
            let refDot = zip(q, x).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let absDot = zip(q, x).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
            let refN2 = x.reduce(0.0) { $0 + Double($1) * Double($1) }
            #expect(abs(Double(dot) - refDot) <= relativeTolerance * absDot)
            #expect(abs(Double(n2) - refN2) <= relativeTolerance * refN2)
            #expect(abs(Double(Distance.norm(x)) - refN2.squareRoot()) <= relativeTolerance * refN2.squareRoot())
        }
    }

    @Test func edgeCases() {
        // Identical vectors: exactly 0 for l2; zero vectors are "orthogonal" for cosine.
        let v: [Float] = [1, 2, 3, 4, 5]
        #expect(Distance.distance(.l2, v, v) == 0)
        #expect(Distance.distance(.ip, v, v) == -55)
        #expect(Distance.distance(.cosine, v, [0, 0, 0, 0, 0]) == 1)
        #expect(abs(Distance.distance(.cosine, v, v.map { $0 * 3 })) < 1e-6)
        #expect(Distance.distance(.l2, [], []) == 0)
        #expect(Distance.distance(.cosine, [], []) == 1)
        #expect(Distance.normalized([0, 0]) == nil)
        let n = Distance.normalized([3, 4])!
        #expect(abs(n[0] - 0.6) < 1e-7 && abs(n[1] - 0.8) < 1e-7)
    }
}

@Suite struct OneToManyAndTiles {
    @Test(arguments: DistanceKind.allCases)
    func tilesAreBitIdenticalToOneToMany(kind: DistanceKind) {
        var rng = SeededRandom(seed: 99)
        // 300 vectors of 128 floats is 150 KiB: crosses the 64 KiB cache block.
        for (d, nq, nv) in [(128, 9, 300), (7, 5, 3000), (1, 3, 17), (33, 1, 40), (384, 8, 200), (100, 4, 0), (16, 2, 3), (47, 3, 5), (1536, 3, 31)] {
            let queries = (0..<nq).flatMap { _ in randomVector(d, &rng) }
            let vectors = (0..<nv).flatMap { _ in randomVector(d, &rng) }
            let matrix = Distance.tile(kind, queries: queries, vectors: vectors, dimension: d)
            #expect(matrix.count == nq * nv)
            // The AVX2 tile kernel (when the CPU has it) and the Swift one agree bit for bit.
            TraversalDistance.forcePortable(true)
            let portable = Distance.tile(kind, queries: queries, vectors: vectors, dimension: d)
            TraversalDistance.forcePortable(false)
            #expect(portable.map(\.bitPattern) == matrix.map(\.bitPattern), "kind \(kind) d \(d): accelerated vs portable")
            for i in 0..<nq {
                let q = Array(queries[i * d..<(i + 1) * d])
                let row = Distance.oneToMany(kind, query: q, vectors: vectors)
                #expect(row.map(\.bitPattern) == matrix[i * nv..<(i + 1) * nv].map(\.bitPattern),
                        "kind \(kind) d \(d) query \(i)")
                // One-to-many and one-to-one, accelerated and portable: the same bits.
                TraversalDistance.forcePortable(true)
                let portableRow = Distance.oneToMany(kind, query: q, vectors: vectors)
                let portableOne = (0..<min(nv, 5)).map { Distance.distance(kind, q, Array(vectors[$0 * d..<($0 + 1) * d])) }
                TraversalDistance.forcePortable(false)
                let one = (0..<min(nv, 5)).map { Distance.distance(kind, q, Array(vectors[$0 * d..<($0 + 1) * d])) }
                #expect(portableRow.map(\.bitPattern) == row.map(\.bitPattern), "kind \(kind) d \(d): portable one-to-many")
                #expect(portableOne.map(\.bitPattern) == one.map(\.bitPattern) && one.map(\.bitPattern) == Array(row.prefix(5)).map(\.bitPattern),
                        "kind \(kind) d \(d): one-to-one")
            }
        }
    }

    /// The listed-rows tile (rows scored where they lie) gives the strided tile's bits for
    /// every pair, accelerated and portable, across odd query and row counts, rows in any order
    /// at 4-byte offsets, and more rows than one cache block.
    @Test(arguments: [DistanceKind.l2, .ip])
    func listedRowsAreBitIdenticalToTheTile(kind: DistanceKind) {
        var rng = SeededRandom(seed: 41)
        for (d, nq, nv) in [(384, 5, 67), (128, 8, 300), (17, 3, 9), (1, 1, 1), (33, 2, 0), (1536, 3, 40)] {
            let queries = (0..<nq).flatMap { _ in randomVector(d, &rng) }
            let vectors = (0..<nv).flatMap { _ in randomVector(d, &rng) }
            let matrix = Distance.tile(kind, queries: queries, vectors: vectors, dimension: d)
            // The rows one float past each record's start, listed in reverse order.
            var records = [Float](repeating: 0, count: nv * (d + 1))
            for j in 0..<nv { for t in 0..<d { records[j * (d + 1) + 1 + t] = vectors[j * d + t] } }
            let ldo = nv + 3
            for portable in [false, true] {
                var out = [Float](repeating: -7, count: nq * ldo)
                records.withUnsafeBytes { r in
                    let list = (0..<nv).reversed().map { UnsafeRawPointer(r.baseAddress! + 4 * ($0 * (d + 1) + 1)) }
                    queries.withUnsafeBytes { q in
                        let qlist = (0..<nq).map { q.baseAddress! + 4 * $0 * d }
                        list.withUnsafeBufferPointer { l in
                            out.withUnsafeMutableBufferPointer { o in
                                TraversalDistance.forcePortable(portable)
                                Distance.tile(kind, queries: qlist, queryCount: nq, rows: l.baseAddress!, rowCount: nv,
                                              dimension: d, into: o.baseAddress!, outputRowStride: ldo)
                                TraversalDistance.forcePortable(false)
                            }
                        }
                    }
                }
                for i in 0..<nq {
                    for j in 0..<nv {
                        #expect(out[i * ldo + j].bitPattern == matrix[i * nv + (nv - 1 - j)].bitPattern,
                                "kind \(kind) d \(d) portable \(portable) query \(i) row \(j)")
                    }
                    #expect(out[(i * ldo + nv)..<((i + 1) * ldo)].allSatisfy { $0 == -7 }, "padding untouched")
                }
            }
        }
    }

    @Test func stridedVectorsAndOutputStride() {
        // Vectors laid out as .fvecs records (4-byte prefix), output rows padded.
        var rng = SeededRandom(seed: 5)
        let d = 20, nv = 50, nq = 3, ldo = 64
        let vectors = (0..<nv).map { _ in randomVector(d, &rng) }
        let queries = (0..<nq).flatMap { _ in randomVector(d, &rng) }
        var records = [UInt8]()
        for v in vectors {
            withUnsafeBytes(of: Int32(d).littleEndian) { records += $0 }
            v.withUnsafeBytes { records += $0 }
        }
        let stride = 4 + 4 * d
        for kind in DistanceKind.allCases {
            var out = [Float](repeating: -7, count: nq * ldo)
            records.withUnsafeBytes { r in
                queries.withUnsafeBytes { q in
                    out.withUnsafeMutableBufferPointer { o in
                        Distance.tile(kind, queries: q.baseAddress!, queryCount: nq,
                                      vectors: r.baseAddress! + 4, vectorCount: nv, dimension: d,
                                      vectorStrideBytes: stride, into: o.baseAddress!, outputRowStride: ldo)
                    }
                }
            }
            for i in 0..<nq {
                let q = Array(queries[i * d..<(i + 1) * d])
                for j in 0..<nv {
                    #expect(out[i * ldo + j].bitPattern == Distance.distance(kind, q, vectors[j]).bitPattern)
                }
                #expect(out[i * ldo + nv..<(i + 1) * ldo].allSatisfy { $0 == -7 }, "padding untouched")
            }
            // Gathered over a pointer list, in reverse order.
            let q = Array(queries[0..<d])
            var got = [Float](repeating: 0, count: nv)
            records.withUnsafeBytes { r in
                let ptrs = (0..<nv).map { UnsafeRawPointer(r.baseAddress! + 4 + (nv - 1 - $0) * stride) }
                q.withUnsafeBytes { qb in
                    ptrs.withUnsafeBufferPointer { p in
                        got.withUnsafeMutableBufferPointer { o in
                            Distance.gathered(kind, query: qb.baseAddress!, vectors: p, dimension: d, into: o.baseAddress!)
                        }
                    }
                }
            }
            for j in 0..<nv {
                #expect(got[j].bitPattern == Distance.distance(kind, q, vectors[nv - 1 - j]).bitPattern)
            }
        }
    }
}

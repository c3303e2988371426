import SextantTestSupport
import Testing
import SextantKernels

enum BitmapDistribution: String, CaseIterable, Sendable {
    case sparse, dense, runs, mixed
}

/// Chunks used by the generators: low chunks, a middle one and the very top.
private let chunkChoices: [UInt32] = [0, 1, 2, 3, 7, 0x8000, 0xFFFE, 0xFFFF]
private let edges: [UInt32] = [0, 1, 65534, 65535, 65536, 65537, 131071, 0x7FFF_FFFF, UInt32.max - 1, UInt32.max]

private func bitmapValues(_ d: BitmapDistribution, _ rng: inout SeededRandom) -> [UInt32] {
    var out = [UInt32]()
    func chunk() -> UInt32 { chunkChoices.randomElement(using: &rng)! << 16 }
    switch d {
    case .sparse:
        for _ in 0..<Int.random(in: 0...3000, using: &rng) {
            out.append(chunk() | UInt32.random(in: 0...0xFFFF, using: &rng))
        }
    case .dense:
        for _ in 0..<Int.random(in: 1...2, using: &rng) {
            let base = chunk()
            // Density around the 4096 threshold or well above.
            let n = [4000, 4096, 4097, 4200, 12000, 40000].randomElement(using: &rng)!
            for _ in 0..<n { out.append(base | UInt32.random(in: 0...0xFFFF, using: &rng)) }
        }
    case .runs:
        for _ in 0..<Int.random(in: 1...40, using: &rng) {
            let base = chunk()
            let start = UInt32.random(in: 0...0xFFFF, using: &rng)
            let len = UInt32.random(in: 1...3000, using: &rng)
            let end = min(0xFFFF, start + len)
            for v in start...end { out.append(base | v) }
        }
        if Bool.random(using: &rng) {
            for v in UInt32(0)...0xFFFF { out.append((3 << 16) | v) } // a full chunk
        }
    case .mixed:
        for sub in [BitmapDistribution.sparse, .dense, .runs] where Bool.random(using: &rng) {
            out += bitmapValues(sub, &rng)
        }
    }
    for e in edges where Int.random(in: 0..<3, using: &rng) == 0 { out.append(e) }
    out.shuffle(using: &rng)
    return out
}

private func makeBitmap(_ values: [UInt32], _ rng: inout SeededRandom) -> Bitmap {
    var b: Bitmap
    switch Int.random(in: 0..<3, using: &rng) {
    case 0: b = Bitmap(values)
    case 1: b = Bitmap(values.sorted())
    default:
        b = Bitmap()
        for v in values { b.insert(v) }
    }
    if Bool.random(using: &rng) { b.runOptimize() }
    return b
}

private func sortedArray(_ s: Set<UInt32>) -> [UInt32] { s.sorted() }

@Suite struct BitmapTests {
    static let cases: [(BitmapDistribution, BitmapDistribution, UInt64)] = {
        var out = [(BitmapDistribution, BitmapDistribution, UInt64)]()
        var seed: UInt64 = 1
        for a in BitmapDistribution.allCases {
            for b in BitmapDistribution.allCases {
                out.append((a, b, seed)); seed += 1
            }
        }
        return out
    }()

    @Test(arguments: 0..<16)
    func algebraAgreesWithSet(caseIndex: Int) throws {
        let (da, db, seed) = Self.cases[caseIndex]
        var rng = SeededRandom(seed: seed)
        for round in 0..<2 {
            let va = bitmapValues(da, &rng), vb = bitmapValues(db, &rng)
            let sa = Set(va), sb = Set(vb)
            let a = makeBitmap(va, &rng), b = makeBitmap(vb, &rng)
            let ctx = "\(da) \(db) seed \(seed) round \(round)"

            #expect(Array(a) == sortedArray(sa), "\(ctx) iteration")
            var viaForEach = [UInt32]()
            a.forEach { viaForEach.append($0) }
            #expect(viaForEach == sortedArray(sa), "\(ctx) forEach")
            #expect(a.count == sa.count && b.count == sb.count, "\(ctx)")
            #expect(a.isEmpty == sa.isEmpty, "\(ctx)")
            #expect(a.min() == sa.min() && a.max() == sa.max(), "\(ctx)")
            #expect(b.min() == sb.min() && b.max() == sb.max(), "\(ctx)")

            for _ in 0..<500 {
                let probe = Bool.random(using: &rng) && !vb.isEmpty
                    ? vb.randomElement(using: &rng)! ^ UInt32.random(in: 0...3, using: &rng)
                    : UInt32.random(in: 0...UInt32.max, using: &rng)
                #expect(a.contains(probe) == sa.contains(probe), "\(ctx) contains \(probe)")
            }
            for e in edges { #expect(a.contains(e) == sa.contains(e), "\(ctx) edge \(e)") }

            let expAnd = sa.intersection(sb), expOr = sa.union(sb)
            let expAB = sa.subtracting(sb), expBA = sb.subtracting(sa)
            let expXor = expAB.union(expBA)
            let and = a.intersection(b)
            #expect(and.toArray() == sortedArray(expAnd), "\(ctx) and")
            #expect(and.count == expAnd.count, "\(ctx)")
            #expect(a.intersectionCount(b) == expAnd.count, "\(ctx) intersectionCount")
            var formed = a
            formed.formIntersection(b)
            #expect(formed == and, "\(ctx)")
            let or = a.union(b)
            #expect(or.toArray() == sortedArray(expOr) && or.count == expOr.count, "\(ctx) or")
            let ab = a.subtracting(b), ba = b.subtracting(a)
            #expect(ab.toArray() == sortedArray(expAB) && ab.count == expAB.count, "\(ctx) andNot")
            #expect(ba.toArray() == sortedArray(expBA) && ba.count == expBA.count, "\(ctx) andNot rev")
            let x = a.symmetricDifference(b)
            #expect(x.toArray() == sortedArray(expXor) && x.count == expXor.count, "\(ctx) xor")
            #expect(a.isSubset(of: b) == expAB.isEmpty, "\(ctx) subset")
            #expect(b.isSubset(of: a) == expBA.isEmpty, "\(ctx) subset rev")
            #expect(and.isSubset(of: a) && and.isSubset(of: b), "\(ctx)")
            #expect(a.isSubset(of: or), "\(ctx)")
            #expect(a.isDisjoint(with: b) == expAnd.isEmpty, "\(ctx)")
            #expect(a.isSubset(of: a) && Bitmap().isSubset(of: a), "\(ctx)")

            // Complement within universes that cut chunks in odd places.
            let lo = UInt32.random(in: 0...0x3_FFFF, using: &rng)
            let hi = Bool.random(using: &rng) ? UInt32.max : lo + UInt32.random(in: 0...0x3_0000, using: &rng)
            let universe = lo..<hi
            let comp = a.complement(universe: universe)
            let insideCount = sa.reduce(0) { $0 + (universe.contains($1) ? 1 : 0) }
            #expect(comp.count == (Int(hi) - Int(lo)) - insideCount, "\(ctx) complement count")
            #expect(comp.isDisjoint(with: a), "\(ctx)")
            #expect(comp.min().map { universe.contains($0) } ?? true, "\(ctx)")
            #expect(comp.max().map { universe.contains($0) } ?? true, "\(ctx)")
            if hi - lo <= 0x3_0000 {
                var expected = [UInt32]()
                for v in universe where !sa.contains(v) { expected.append(v) }
                #expect(Array(comp) == expected, "\(ctx) complement")
            }
            // Double complement restores the part inside the universe.
            let inside = a.intersection(Bitmap(range: universe))
            #expect(comp.complement(universe: universe) == inside, "\(ctx) double complement")

            // Representation-independent equality and hashing.
            var opt = a
            opt.runOptimize()
            #expect(opt == a && opt.hashValue == a.hashValue, "\(ctx)")
            #expect(Bitmap(Array(sa)) == a, "\(ctx)")
            #expect((a == b) == (sa == sb), "\(ctx)")

            // Serialization round trip (before and after run optimisation).
            for m in [a, opt, and, x] {
                let bytes = m.serialized()
                #expect(bytes.count == m.serializedByteCount, "\(ctx)")
                let back = try Bitmap(serialized: bytes)
                #expect(back == m && Array(back) == Array(m), "\(ctx) round trip")
                #expect(back.serialized() == bytes, "\(ctx)")
            }
        }
    }

    @Test(arguments: BitmapDistribution.allCases)
    func mutationAgreesWithSet(distribution: BitmapDistribution) {
        var rng = SeededRandom(seed: 0xB17_0000 &+ UInt64(distribution.rawValue.count))
        let values = bitmapValues(distribution, &rng)
        var set = Set(values)
        var b = makeBitmap(values, &rng)
        for step in 0..<20_000 {
            let v: UInt32 = Bool.random(using: &rng) && !values.isEmpty
                ? values.randomElement(using: &rng)! &+ UInt32.random(in: 0...2, using: &rng)
                : (edges.randomElement(using: &rng)! ^ UInt32.random(in: 0...1, using: &rng))
            if Bool.random(using: &rng) {
                #expect(b.insert(v) == set.insert(v).inserted, "insert \(v) step \(step)")
            } else {
                #expect(b.remove(v) == (set.remove(v) != nil), "remove \(v) step \(step)")
            }
            if step % 5000 == 0 { b.runOptimize() }
        }
        #expect(b.count == set.count)
        #expect(Array(b) == set.sorted())
        #expect(b == Bitmap(Array(set)))
    }

    /// The dense form used by filtered traversal holds exactly the members below its bound,
    /// whatever containers (array, bitset, runs) hold them, in fresh or reused memory.
    @Test(arguments: BitmapDistribution.allCases)
    func denseBitsetAgreesWithMembership(distribution: BitmapDistribution) {
        var rng = SeededRandom(seed: 0xDE5E_0000 &+ UInt64(distribution.rawValue.count))
        // Low chunks only: the bitset is sized by its bound.
        let values = bitmapValues(distribution, &rng).filter { $0 >> 16 < 8 }
        let set = Set(values)
        var runs = Bitmap(values)
        runs.runOptimize()
        // Neighbours of the members: what a reused buffer would wrongly keep if not cleared.
        let neighbours = Bitmap(values.flatMap { [$0 &+ 1, $0 &- 1, $0 &+ 64] })
        var spare: [UInt64] = []
        for b in [makeBitmap(values, &rng), runs] {
        for bound: UInt32 in [0, 1, 63, 64, 65, 4097, 65535, 65536, 65600, (3 << 16) + 17, 8 << 16] {
            // Fresh memory, and memory last used (same size, then another) by a different set.
            let fresh = DenseBitset(b, bound: bound)
            spare = DenseBitset(neighbours, bound: bound, reusing: &spare).storage
            let reused = DenseBitset(b, bound: bound, reusing: &spare)
            #expect(spare.isEmpty)
            spare = reused.storage
            for dense in [fresh, reused] {
                for id in set { #expect(dense.contains(id) == (id < bound), "id \(id) bound \(bound)") }
                // Non-members, near members and at the bound's edges.
                for probe in set.prefix(200).flatMap({ [$0 &+ 1, $0 &- 1, $0 &+ 64] }) + [bound, bound &+ 1, bound &- 1, bound | 63] where !set.contains(probe) {
                    #expect(!dense.contains(probe), "non-member \(probe) bound \(bound)")
                }
            }
        }
        }
    }

    /// Members per range of ids, counted container by container (words, runs), equal the
    /// counts of the members one by one, for widths that split words and containers or span them.
    @Test(arguments: BitmapDistribution.allCases)
    func rangeCountsAgreeWithMembers(distribution: BitmapDistribution) {
        var rng = SeededRandom(seed: 0x4A46_0000 &+ UInt64(distribution.rawValue.count))
        let values = bitmapValues(distribution, &rng)
        var runs = Bitmap(values)
        runs.runOptimize()
        for b in [makeBitmap(values, &rng), runs] {
            for width in [1, 3, 63, 64, 100, 128, 4096, 65535, 65536, 70_000, 1 << 40] {
                var expected: [(Int, Int)] = []
                b.forEach { v in
                    let r = Int(v) / width
                    if expected.last?.0 == r { expected[expected.count - 1].1 += 1 } else { expected.append((r, 1)) }
                }
                var got: [(Int, Int)] = []
                b.forEachRangeCount(width: width) { got.append(($0, $1)) }
                #expect(got.map(\.0) == expected.map(\.0), "width \(width)")
                #expect(got.map(\.1) == expected.map(\.1), "width \(width)")
            }
        }
    }

    /// The builder a range scan fills (single ids, and chunks of little-endian low halves in
    /// any order of high keys) builds exactly the set inserted.
    @Test(arguments: BitmapDistribution.allCases)
    func builderAgreesWithSet(distribution: BitmapDistribution) {
        var rng = SeededRandom(seed: 0xB11D_0000 &+ UInt64(distribution.rawValue.count))
        let values = bitmapValues(distribution, &rng)
        var builder = BitmapBuilder()
        var byHigh: [UInt16: [UInt16]] = [:]
        for (i, v) in values.enumerated() {
            if i % 3 == 0 { builder.insert(v) } else { byHigh[UInt16(v >> 16), default: []].append(UInt16(truncatingIfNeeded: v)) }
        }
        for (high, lows) in byHigh.shuffled(using: &rng) {
            // Chunks of up to 50 lows, each behind a one-byte header as postings store them.
            for start in stride(from: 0, to: lows.count, by: 50) {
                let chunk = lows[start..<min(lows.count, start + 50)]
                let bytes: [UInt8] = [0] + chunk.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] }
                bytes.withUnsafeBytes { builder.insert(high: high, lows: $0, littleEndianUInt16At: 1, count: chunk.count) }
            }
        }
        let built = builder.build()
        #expect(built == Bitmap(values))
        #expect(Array(built) == Set(values).sorted())
    }

    @Test func arrayBitsetThresholds() throws {
        var b = Bitmap()
        let base: UInt32 = 5 << 16
        for i in 0..<4096 { b.insert(base + UInt32(i) * 16) }
        #expect(b.statistics.arrayContainers == 1 && b.statistics.bitsetContainers == 0)
        b.insert(base + 1)
        #expect(b.count == 4097)
        #expect(b.statistics.bitsetContainers == 1 && b.statistics.arrayContainers == 0)
        b.insert(base + 1) // duplicate: no change
        #expect(b.count == 4097)
        b.remove(base + 1)
        #expect(b.statistics.arrayContainers == 1 && b.statistics.bitsetContainers == 0)
        #expect(b.count == 4096)
        // Built directly from 4096 / 4097 values.
        #expect(Bitmap((0..<4096).map { UInt32($0) * 3 }).statistics.arrayContainers == 1)
        #expect(Bitmap((0..<4097).map { UInt32($0) * 3 }).statistics.bitsetContainers == 1)
        // Union of two 3000-value arrays crosses into a bitset; intersection back to an array.
        let x = Bitmap((0..<3000).map { UInt32($0) * 2 }), y = Bitmap((0..<3000).map { UInt32($0) * 2 + 1 })
        let u = x.union(y)
        #expect(u.statistics.bitsetContainers == 1 && u.count == 6000)
        #expect(u.intersection(x).statistics.arrayContainers == 1)
        #expect(u.subtracting(y) == x && u.symmetricDifference(y) == x)
        // Serialized sizes follow the representation.
        #expect(try Bitmap(serialized: u.serialized()) == u)
    }

    @Test func runConversions() throws {
        var r = Bitmap(range: 10..<50_000)
        #expect(r.statistics.runContainers == 1 && r.count == 49_990)
        #expect(r.serializedByteCount == 5 + 7 + 6)
        r.runOptimize()
        #expect(r.statistics.runContainers == 1)
        // Splitting and merging runs by mutation.
        r.remove(100)
        r.remove(10)
        r.remove(49_999)
        #expect(r.count == 49_987 && !r.contains(100) && r.contains(101) && r.contains(11))
        r.insert(100)
        #expect(r.count == 49_988 && r.statistics.runContainers == 1)
        // A dense random bitset does not become runs; a striped array does not either.
        var rng = SeededRandom(seed: 77)
        var d = Bitmap((0..<30_000).map { _ in UInt32.random(in: 0...0xFFFF, using: &rng) })
        let dChanged = d.runOptimize()
        #expect(dChanged == false)
        #expect(d.statistics.bitsetContainers == 1)
        // A bitset of a few long runs becomes runs, and back to a bitset when broken up.
        var runsBits = Bitmap(Array(UInt32(0)..<20_000) + Array(UInt32(30_000)..<40_000))
        #expect(runsBits.statistics.bitsetContainers == 1)
        let c1 = runsBits.runOptimize()
        #expect(c1)
        #expect(runsBits.statistics.runContainers == 1)
        for v in stride(from: UInt32(0), to: 20_000, by: 2) { runsBits.remove(v) }
        #expect(runsBits.count == 20_000)
        let c2 = runsBits.runOptimize()
        #expect(c2)
        #expect(runsBits.statistics.bitsetContainers == 1)
        // An array of short runs: runs only when smaller (3 runs of 100 -> runs).
        var arr = Bitmap(Array(UInt32(0)..<100) + Array(UInt32(200)..<300) + Array(UInt32(400)..<500))
        #expect(arr.statistics.arrayContainers == 1)
        let c3 = arr.runOptimize()
        #expect(c3 && arr.statistics.runContainers == 1)
        // Isolated values stay an array.
        var iso = Bitmap([1, 3, 5, 7])
        let c4 = iso.runOptimize()
        #expect(c4 == false && iso.statistics.arrayContainers == 1)
        // Round trip keeps the kinds.
        let back = try Bitmap(serialized: arr.serialized())
        #expect(back.statistics == arr.statistics && back == arr)
    }

    @Test func rangesAndEdges() {
        let all = Bitmap(range: 0...UInt32.max)
        #expect(all.count == 1 << 32 && all.min() == 0 && all.max() == UInt32.max)
        #expect(all.statistics.runContainers == 65536)
        #expect(Bitmap(range: 0..<UInt32.max).count == Int(UInt32.max))
        #expect(Bitmap(range: 5..<5).isEmpty)
        let r = Bitmap(range: 65535..<65537)
        #expect(Array(r) == [65535, 65536])
        let e = Bitmap([UInt32.max, 0, 65535, 65536])
        #expect(Array(e) == [0, 65535, 65536, UInt32.max])
        #expect(e.complement(universe: 0..<UInt32.max).count == Int(UInt32.max) - 3)
        #expect(all.subtracting(e).count == (1 << 32) - 4)
        #expect(all.intersection(e) == e && all.intersectionCount(e) == 4 && e.isSubset(of: all))
        #expect(Bitmap().complement(universe: 3..<10) == Bitmap(range: 3..<10))
        #expect(Bitmap().min() == nil && Bitmap().max() == nil && Array(Bitmap()).isEmpty)
        let lit: Bitmap = [3, 1, 2, 2]
        #expect(lit.count == 3)
    }

    @Test func hostileBytesNeverTrap() throws {
        var rng = SeededRandom(seed: 0xF00D)
        var seeds = [[UInt8]]()
        for d in BitmapDistribution.allCases {
            for _ in 0..<3 {
                var b = Bitmap(bitmapValues(d, &rng))
                if Bool.random(using: &rng) { b.runOptimize() }
                seeds.append(b.serialized())
            }
        }
        seeds.append(Bitmap(range: 100..<70_000).serialized())
        seeds.append(Bitmap([1, 2, 3]).serialized())
        seeds.append(Bitmap().serialized())
        var accepted = 0, rejected = 0
        for iteration in 0..<6000 {
            var bytes: [UInt8]
            if iteration % 10 == 0 {
                bytes = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if !bytes.isEmpty && Bool.random(using: &rng) { bytes[0] = 1 }
            } else {
                bytes = seeds.randomElement(using: &rng)!
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    guard !bytes.isEmpty else { break }
                    switch Int.random(in: 0..<5, using: &rng) {
                    case 0: // flip a bit, biased towards headers
                        let i = Bool.random(using: &rng) ? Int.random(in: 0..<min(bytes.count, 16), using: &rng) : Int.random(in: 0..<bytes.count, using: &rng)
                        bytes[i] ^= 1 << UInt8.random(in: 0...7, using: &rng)
                    case 1: bytes.removeLast(Int.random(in: 1...min(bytes.count, 9), using: &rng))
                    case 2: bytes.append(UInt8.random(in: 0...255, using: &rng))
                    case 3: bytes[Int.random(in: 0..<bytes.count, using: &rng)] = [0, 1, 2, 0xFF].randomElement(using: &rng)!
                    default:
                        let i = Int.random(in: 0..<bytes.count, using: &rng)
                        bytes.insert(UInt8.random(in: 0...255, using: &rng), at: i)
                    }
                }
            }
            do throws(BitmapError) {
                let b = try Bitmap(serialized: bytes)
                accepted += 1
                // Validation is strict enough that anything accepted is canonical.
                #expect(b.serialized() == bytes)
                #expect(b.count == Array(b).count)
            } catch {
                rejected += 1
                #expect(error.offset >= 0 && error.offset <= bytes.count)
                #expect(!error.message.isEmpty)
            }
        }
        #expect(rejected > 4000)
        _ = accepted
    }

    @Test func specificMalformedInputs() {
        func rejects(_ bytes: [UInt8], _ what: String) {
            #expect(throws: BitmapError.self, "\(what)") { try Bitmap(serialized: bytes) }
        }
        let header: [UInt8] = [1, 1, 0, 0, 0]
        rejects([], "empty")
        rejects([2, 0, 0, 0, 0], "version")
        rejects([1, 0, 0, 0], "short header")
        rejects([1, 0, 0, 0, 0, 0], "trailing byte")
        rejects([1, 0xFF, 0xFF, 0xFF, 0xFF], "huge count")
        rejects(header + [0, 0, 0, 2, 0, 0, 0, 5, 0, 5, 0], "array not increasing")
        rejects(header + [0, 0, 0, 0, 0, 0, 0], "zero cardinality")
        rejects(header + [0, 0, 3, 1, 0, 0, 0, 5, 0], "bad kind")
        rejects(header + [0, 0, 0, 2, 0, 0, 0, 5, 0], "truncated array")
        rejects(header + [0, 0, 2, 2, 0, 0, 0, 1, 0, 0xFF, 0xFF, 1, 0], "run past 65535")
        rejects(header + [0, 0, 2, 4, 0, 0, 0, 2, 0, 0, 0, 1, 0, 2, 0, 1, 0], "adjacent runs")
        rejects(header + [0, 0, 2, 4, 0, 0, 0, 2, 0, 0, 0, 2, 0, 2, 0, 0, 0], "overlapping runs")
        rejects(header + [0, 0, 2, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0], "run cardinality mismatch")
        rejects(header + [0, 0, 2, 1, 0, 0, 0, 0, 0], "zero runs")
        rejects(header + [0, 0, 1, 1, 0, 0, 0] + [UInt8](repeating: 0, count: 8192), "small bitset")
        rejects(header + [0, 0, 1, 0, 0x20, 0, 0] + [UInt8](repeating: 0xFF, count: 8192), "bitset popcount")
        rejects(header + [0, 0, 0, 0x01, 0x10, 0, 0] + [UInt8](repeating: 0, count: 2 * 4097), "array too big")
        rejects([1, 2, 0, 0, 0, 5, 0, 0, 1, 0, 0, 0, 1, 0, 5, 0, 0, 1, 0, 0, 0, 2, 0], "duplicate key")
        rejects([1, 2, 0, 0, 0, 5, 0, 0, 1, 0, 0, 0, 1, 0, 4, 0, 0, 1, 0, 0, 0, 2, 0], "decreasing key")
        #expect(throws: Never.self) {
            try Bitmap(serialized: [1, 2, 0, 0, 0, 4, 0, 0, 1, 0, 0, 0, 1, 0, 5, 0, 0, 1, 0, 0, 0, 2, 0])
        }
        #expect((try? Bitmap(serialized: header + [0, 0, 2, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0])) == Bitmap(range: 0..<3))
    }
}

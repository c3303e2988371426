import Foundation
import SextantTestSupport
import Testing
import SextantKernels

/// 8-bit scalar quantization: exact integer sums on every path, the approximation it makes,
/// and its serialisation.
@Suite struct ScalarQuantizerTests {
    private struct Rng {
        var s: UInt64
        mutating func next() -> UInt64 { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s }
        mutating func gaussian() -> Float {
            let u1 = Double(next() >> 11 | 1) / Double(1 << 53), u2 = Double(next() >> 11) / Double(1 << 53)
            return Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
        }
    }

    private func sample(_ rows: Int, _ d: Int, seed: UInt64) -> [Float] {
        var r = Rng(s: seed)
        return (0..<(rows * d)).map { i in r.gaussian() * Float(1 + i % d % 3) + Float(i % d) * 0.1 }
    }

    /// The dispatched kernel equals the portable loop and a 64-bit reference, at every length
    /// around the 16-component step, on rows at odd addresses.
    @Test(arguments: [1, 7, 15, 16, 17, 33, 128, 384, 1001])
    func sumsAreExactOnEveryPath(d: Int) throws {
        var r = Rng(s: UInt64(d) &* 0x9E37_79B9)
        let n = 9
        let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: n * (d + 1) + 64, alignment: 64)
        defer { raw.deallocate() }
        var rows: [UnsafeRawPointer] = []
        for j in 0..<n {
            let p = raw.baseAddress! + 1 + j * (d + 1)
            for i in 0..<d { p.storeBytes(of: Int8(truncatingIfNeeded: Int(r.next() % 255) - 127), toByteOffset: i, as: Int8.self) }
            rows.append(UnsafeRawPointer(p))
        }
        let q = (0..<d).map { _ in Int16(Int(r.next() % 255) - 127) }
        for kind in [DistanceKind.l2, .ip] {
            let sq = try ScalarQuantizer(dimension: d, kind: kind, normalizes: false, offsets: [Float](repeating: 0, count: d), scale: 1)
            var fast = [Int32](repeating: 0, count: n), portable = fast
            q.withUnsafeBufferPointer { qp in
                rows.withUnsafeBufferPointer { rp in
                    sq.sums(qp.baseAddress!, rp, into: &fast)
                    TraversalDistance.forcePortable(true)
                    sq.sums(qp.baseAddress!, rp, into: &portable)
                    TraversalDistance.forcePortable(false)
                }
            }
            #expect(fast == portable)
            for j in 0..<n {
                let x = rows[j].assumingMemoryBound(to: Int8.self)
                var want: Int64 = 0
                for i in 0..<d {
                    let a = Int64(q[i]), b = Int64(x[i])
                    want += kind == .l2 ? (a - b) * (a - b) : a * b
                }
                #expect(Int64(fast[j]) == want, "row \(j), \(kind)")
            }
        }
    }

    /// Approximate distances follow the true ones: within a few quantization steps, and they
    /// rank a query's true nearest rows near the top.
    @Test(arguments: [DistanceKind.l2, .ip, .cosine])
    func approximateDistancesTrackTheTrueOnes(kind: DistanceKind) throws {
        let d = 48, n = 400
        let data = sample(n, d, seed: 3)
        let sq = try ScalarQuantizer(training: data, dimension: d, kind: kind == .l2 ? .l2 : .ip, normalizes: kind == .cosine)
        var codes = [Int8](repeating: 0, count: n * d)
        data.withUnsafeBufferPointer { x in
            codes.withUnsafeMutableBufferPointer { c in
                for j in 0..<n { sq.encode(x.baseAddress! + j * d, into: c.baseAddress! + j * d) }
            }
        }
        func normalized(_ v: [Float]) -> [Float] {
            let s = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return v.map { $0 / s }
        }
        for qi in 0..<10 {
            var query = Array(data[(qi * 37 % n) * d..<(qi * 37 % n + 1) * d]).map { $0 + 0.05 }
            if kind == .cosine { query = normalized(query) }
            func exact(_ j: Int) -> Float {
                let x = Array(data[j * d..<(j + 1) * d])
                switch kind {
                case .l2: return zip(query, x).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
                case .ip: return -zip(query, x).reduce(0) { $0 + $1.0 * $1.1 }
                case .cosine: return 1 - zip(query, normalized(x)).reduce(0) { $0 + $1.0 * $1.1 }
                }
            }
            var q16 = [Int16](repeating: 0, count: d)
            query.withUnsafeBufferPointer { sq.quantize(query: $0.baseAddress!, into: &q16) }
            var sums = [Int32](repeating: 0, count: n)
            codes.withUnsafeBytes { c in
                let rows = (0..<n).map { UnsafeRawPointer(c.baseAddress! + $0 * d) }
                rows.withUnsafeBufferPointer { sq.sums(q16, $0, into: &sums) }
            }
            let approx = sums.map { sq.distance(fromSum: $0) }
            let truth = (0..<n).sorted { exact($0) < exact($1) }
            let ranked = (0..<n).sorted { approx[$0] < approx[$1] }
            // The true 10 nearest are among the approximate 40 nearest.
            #expect(Set(truth.prefix(10)).isSubset(of: Set(ranked.prefix(40))), "query \(qi), \(kind)")
        }
    }

    @Test func serialisationRoundTripsAndRejectsDamage() throws {
        let d = 20
        let sq = try ScalarQuantizer(training: sample(50, d, seed: 9), dimension: d, kind: .l2, normalizes: false)
        let bytes = sq.serialized()
        let back = try bytes.withUnsafeBytes { try ScalarQuantizer(serialized: $0) }
        #expect(back == sq)
        for cut in [0, 5, 17, bytes.count - 1] {
            #expect(throws: PQError.self) { try Array(bytes.prefix(cut)).withUnsafeBytes { try ScalarQuantizer(serialized: $0) } }
        }
        var bad = bytes
        bad[14] = 0xFF; bad[15] = 0xFF; bad[16] = 0xFF; bad[17] = 0xFF  // scale NaN
        #expect(throws: PQError.self) { try bad.withUnsafeBytes { try ScalarQuantizer(serialized: $0) } }
        #expect(throws: PQError.self) { try ScalarQuantizer(dimension: ScalarQuantizer.maxDimension + 1, kind: .l2, normalizes: false, offsets: [], scale: 1) }
    }

    /// Values beyond the trained range clamp to ±127 instead of wrapping.
    @Test func outOfRangeValuesClamp() throws {
        let sq = try ScalarQuantizer(dimension: 2, kind: .l2, normalizes: false, offsets: [0, 0], scale: 0.01)
        var out = [Int8](repeating: 0, count: 2)
        [Float(1e6), -1e6].withUnsafeBufferPointer { sq.encode($0.baseAddress!, into: &out) }
        #expect(out == [127, -127])
    }
}

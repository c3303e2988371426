// SIMD distance kernels on in-memory data (no storage):
//   - one-to-many squared L2: one query against 100,000 x 128 floats (51.2 MB, far beyond the
//     caches), next to a plain SIMD sum over the same bytes: the memory-bandwidth bound that a
//     one-query scan cannot beat;
//   - tiled many-to-many squared L2: 64 queries x 20,000 vectors x 384 dimensions, where each
//     vector read serves many queries and the kernel is compute-bound;
//   - product-quantization scans over 100,000 codes of 48 bytes (dimension 384): the 8-bit ADC
//     scan (48 sub-spaces, float table lookups) and the 4-bit fast scan (96 sub-spaces, byte
//     tables, vpshufb), each keeping the best 100 — the candidates a search re-ranks exactly.
//     The codebooks are random (scan speed does not depend on training); one query's table
//     build is included in the fast-scan figure as it is per query in a search.

import Benchmark
import BenchSupport
import SextantKernels

/// Deterministic pseudo-random floats in [-1, 1) (xorshift64*; no dependency on test support).
func randomFloats(_ count: Int, seed: UInt64) -> [Float] {
    var s = seed | 1
    return (0..<count).map { _ in
        s ^= s >> 12; s ^= s << 25; s ^= s >> 27
        let r = s &* 0x2545_F491_4F6C_DD1D
        return Float(r >> 40) / Float(1 << 23) - 1
    }
}

/// Sum of all floats, 16 lanes at a time: reads every byte once and does almost nothing else.
@inline(never)
func streamingSum(_ p: UnsafeRawBufferPointer) -> Float {
    let n = p.count / 4
    var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
    var i = 0
    while i + 32 <= n {
        acc0 += p.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
        acc1 += p.loadUnaligned(fromByteOffset: 4 * (i + 16), as: SIMD16<Float>.self)
        i += 32
    }
    var total = (acc0 + acc1).sum()
    while i < n {
        total += p.load(fromByteOffset: 4 * i, as: Float.self)
        i += 1
    }
    return total
}

struct OneToManyData: @unchecked Sendable {
    static let count = 100_000, dimension = 128
    let vectors = randomFloats(count * dimension, seed: 1)
    let query = randomFloats(dimension, seed: 2)
    var bytes: Int { vectors.count * 4 }
}

struct TileData: @unchecked Sendable {
    static let queries = 64, count = 20_000, dimension = 384
    let vectors = randomFloats(count * dimension, seed: 3)
    let queryBlock = randomFloats(queries * dimension, seed: 4)
}

/// Codes scanned per second (millions), for the PQ scans.
extension BenchmarkMetric {
    static let megacodesPerSecond = BenchmarkMetric.custom("Mcodes/s", polarity: .prefersLarger, useScalingFactor: false)
}

struct PQScanData: @unchecked Sendable {
    static let count = 100_000, dimension = 384, k = 100
    let query = randomFloats(dimension, seed: 5)
    let pq8: ProductQuantizer
    let codes8: [UInt8]
    let pq4: ProductQuantizer
    let fastCodes: PQFastScanCodes

    init() {
        pq8 = try! ProductQuantizer(dimension: Self.dimension, subspaceCount: 48, bits: 8, metric: .l2,
                                    centroids: randomFloats(Self.dimension << 8, seed: 6))
        pq4 = try! ProductQuantizer(dimension: Self.dimension, subspaceCount: 96, bits: 4, metric: .l2,
                                    centroids: randomFloats(Self.dimension << 4, seed: 7))
        // Uniform random bytes are valid codes for both layouts.
        let bytes = randomFloats(Self.count * 48, seed: 8).map { UInt8(truncatingIfNeeded: Int(($0 + 1) * 128)) }
        codes8 = bytes
        fastCodes = PQFastScanCodes(packedCodes: bytes, subspaceCount: 96)
    }
}

let benchmarks: @Sendable () -> Void = {
    let scan = Benchmark.Configuration.rates([.megabytesPerSecond, .megaflopsPerSecond, .wallClock],
        warmupIterations: 3, maxDuration: .seconds(3), maxIterations: 200)

    Benchmark("oneToMany l2 100000 x 128", configuration: scan) { benchmark, data in
        var out = [Float](repeating: 0, count: OneToManyData.count)
        let (_, s) = timed {
            data.query.withUnsafeBytes { q in
                data.vectors.withUnsafeBytes { v in
                    out.withUnsafeMutableBufferPointer { o in
                        Distance.oneToMany(.l2, query: q.baseAddress!, vectors: v.baseAddress!,
                                           count: OneToManyData.count, dimension: OneToManyData.dimension, into: o.baseAddress!)
                    }
                }
            }
        }
        blackHole(out)
        report(.megabytesPerSecond, count: Double(data.bytes) / 1e6, seconds: s, in: benchmark)
        report(.megaflopsPerSecond, count: 3 * Double(data.vectors.count) / 1e6, seconds: s, in: benchmark)
    } setup: {
        OneToManyData()
    }

    Benchmark("streaming sum 100000 x 128 (bandwidth bound)", configuration: scan) { benchmark, data in
        let (sum, s) = timed { data.vectors.withUnsafeBytes { streamingSum($0) } }
        blackHole(sum)
        report(.megabytesPerSecond, count: Double(data.bytes) / 1e6, seconds: s, in: benchmark)
        report(.megaflopsPerSecond, count: Double(data.vectors.count) / 1e6, seconds: s, in: benchmark)
    } setup: {
        OneToManyData()
    }

    Benchmark(
        "tile l2 64 x 20000 x 384",
        configuration: .rates([.megaflopsPerSecond, .wallClock], warmupIterations: 1,
                             maxDuration: .seconds(4), maxIterations: 50)
    ) { benchmark, data in
        var out = [Float](repeating: 0, count: TileData.queries * TileData.count)
        let (_, s) = timed {
            data.queryBlock.withUnsafeBytes { q in
                data.vectors.withUnsafeBytes { v in
                    out.withUnsafeMutableBufferPointer { o in
                        Distance.tile(.l2, queries: q.baseAddress!, queryCount: TileData.queries, vectors: v.baseAddress!,
                                      vectorCount: TileData.count, dimension: TileData.dimension, into: o.baseAddress!)
                    }
                }
            }
        }
        blackHole(out)
        report(.megaflopsPerSecond, count: 3 * Double(TileData.queries * TileData.count * TileData.dimension) / 1e6, seconds: s, in: benchmark)
    } setup: {
        TileData()
    }

    let pqScan = Benchmark.Configuration.rates([.megacodesPerSecond, .megabytesPerSecond, .wallClock],
        warmupIterations: 3, maxDuration: .seconds(3), maxIterations: 500)

    Benchmark("PQ 8-bit ADC scan top-100, 100000 x 48 B", configuration: pqScan) { benchmark, data in
        let table = data.pq8.distanceTable(query: data.query)
        let (top, s) = timed { table.nearest(codes: data.codes8, k: PQScanData.k) }
        blackHole(top)
        report(.megacodesPerSecond, count: Double(PQScanData.count) / 1e6, seconds: s, in: benchmark)
        report(.megabytesPerSecond, count: Double(data.codes8.count) / 1e6, seconds: s, in: benchmark)
    } setup: {
        PQScanData()
    }

    Benchmark("PQ 4-bit fast scan top-100 (incl. table), 100000 x 48 B", configuration: pqScan) { benchmark, data in
        let (top, s) = timed {
            PQFastScanTable(data.pq4.distanceTable(query: data.query)).nearest(codes: data.fastCodes, k: PQScanData.k)
        }
        blackHole(top)
        report(.megacodesPerSecond, count: Double(PQScanData.count) / 1e6, seconds: s, in: benchmark)
        report(.megabytesPerSecond, count: Double(data.fastCodes.blocks.count) / 1e6, seconds: s, in: benchmark)
    } setup: {
        PQScanData()
    }

    Benchmark("PQ 4-bit fast scan top-100, scalar fallback, 100000 x 48 B", configuration: pqScan) { benchmark, data in
        let table = PQFastScanTable(data.pq4.distanceTable(query: data.query))
        let (top, s) = timed { table.nearest(codes: data.fastCodes, k: PQScanData.k, path: .scalar) }
        blackHole(top)
        report(.megacodesPerSecond, count: Double(PQScanData.count) / 1e6, seconds: s, in: benchmark)
        report(.megabytesPerSecond, count: Double(data.fastCodes.blocks.count) / 1e6, seconds: s, in: benchmark)
    } setup: {
        PQScanData()
    }
}

// Same-run ratios for the distance kernels, outside package-benchmark so that each ratio's
// two sides run interleaved in one process (the machine is shared and noisy; only ratios
// against a baseline measured alongside are meaningful).
//
//   swift run -c release KernelMeasure [stream|tile|topk|all] [runs] [l2,ip,cosine]
//
// - stream: one-to-many squared L2 over 100,000 × 128 floats (51.2 MB, beyond L3) against a
//   plain SIMD sum over the same bytes — the memory-bandwidth bound.
// - tile: 256 queries × 100,000 vectors × 384 dimensions, L2 / IP / cosine; compare with
//   `Bench/peers/numpy_tile.py` run right before or after.
// - topk: bounded heap (`TopK`) against partial-sort selection (`TopK.select`) over 100,000
//   distances for several k.
//
// Reports medians of `runs` (default 7) timed repetitions after one warm-up.

import Foundation
import SextantKernels

/// Deterministic pseudo-random floats in [-1, 1) (xorshift64*).
func randomFloats(_ count: Int, seed: UInt64) -> [Float] {
    var s = seed | 1
    return (0..<count).map { _ in
        s ^= s >> 12; s ^= s << 25; s ^= s >> 27
        let r = s &* 0x2545_F491_4F6C_DD1D
        return Float(r >> 40) / Float(1 << 23) - 1
    }
}

@inline(never) func consume<T>(_ x: T) { withExtendedLifetime(x) {} }

func seconds(_ body: () -> Void) -> Double {
    let t0 = DispatchTime.now().uptimeNanoseconds
    body()
    return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
}

func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

/// Runs the bodies round-robin (warm-up round first) and returns each body's median seconds
/// and, for every body, the median over rounds of (its time / body 0's time in that round):
/// a ratio taken within a round is robust to the load of the shared machine drifting.
func interleaved(_ runs: Int, _ bodies: [() -> Void]) -> (seconds: [Double], ratios: [Double]) {
    for b in bodies { b() }
    var times = Array(repeating: [Double](), count: bodies.count)
    for _ in 0..<runs {
        for (k, b) in bodies.enumerated() { times[k].append(seconds(b)) }
    }
    let ratios = times.indices.map { k in median(zip(times[k], times[0]).map { $0 / $1 }) }
    return (times.map(median), ratios)
}

/// Sum of all floats, 32 lanes at a time: reads every byte once and does almost nothing else.
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

func f(_ x: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", x) }

func stream(runs: Int) {
    let n = 100_000, d = 128
    let vectors = randomFloats(n * d, seed: 1), query = randomFloats(d, seed: 2)
    var out = [Float](repeating: 0, count: n)
    let bytes = Double(n * d * 4)
    var sink: Float = 0
    let (t, r) = interleaved(runs, [
        { sink += vectors.withUnsafeBytes { streamingSum($0) } },
        {
            query.withUnsafeBytes { q in
                vectors.withUnsafeBytes { v in
                    out.withUnsafeMutableBufferPointer { o in
                        Distance.oneToMany(.l2, query: q.baseAddress!, vectors: v.baseAddress!, count: n,
                                           dimension: d, into: o.baseAddress!)
                    }
                }
            }
        },
        {
            query.withUnsafeBytes { q in
                vectors.withUnsafeBytes { v in
                    out.withUnsafeMutableBufferPointer { o in
                        Distance.oneToMany(.ip, query: q.baseAddress!, vectors: v.baseAddress!, count: n,
                                           dimension: d, into: o.baseAddress!)
                    }
                }
            }
        },
    ])
    consume(sink); consume(out)
    print("stream 100000x128: sum \(f(t[0] * 1e3, 3)) ms (\(f(bytes / t[0] / 1e9)) GB/s)")
    for (name, k) in [("l2", 1), ("ip", 2)] {
        let s = t[k]
        print("stream 100000x128: oneToMany \(name) \(f(s * 1e3, 3)) ms (\(f(bytes / s / 1e9)) GB/s, "
              + "\(f(3 * Double(n * d) / s / 1e9)) GFLOP/s) = \(f(r[k], 3))x the sum's time (median of per-round ratios)")
    }
}

func tile(runs: Int, kinds: [DistanceKind]) {
    let nq = 256, nv = 100_000, d = 384
    let vectors = randomFloats(nv * d, seed: 3), queries = randomFloats(nq * d, seed: 4)
    var out = [Float](repeating: 0, count: nq * nv)
    let (t, _) = interleaved(runs, kinds.map { kind in
        {
            queries.withUnsafeBytes { q in
                vectors.withUnsafeBytes { v in
                    out.withUnsafeMutableBufferPointer { o in
                        Distance.tile(kind, queries: q.baseAddress!, queryCount: nq, vectors: v.baseAddress!,
                                      vectorCount: nv, dimension: d, into: o.baseAddress!)
                    }
                }
            }
        }
    })
    consume(out)
    for (kind, s) in zip(kinds, t) {
        // 2·nq·nv·d: the sgemm flop count numpy_tile.py also uses, whatever the kind.
        print("tile \(nq)x\(nv)x\(d) \(kind): \(f(s, 4)) s, \(f(2 * Double(nq * nv * d) / s / 1e9)) GFLOP/s")
    }
}

func topk(runs: Int) {
    let n = 100_000
    let distances = randomFloats(n, seed: 5).map { ($0 * 64).rounded() }  // many ties
    for k in [10, 100, 1000, 3000, 10_000, 50_000] {
        var a: [Neighbor] = [], b: [Neighbor] = []
        let (t, r) = interleaved(runs, [
            {
                var h = TopK(k: k)
                distances.withUnsafeBufferPointer { h.insert(distances: $0, firstID: 0) }
                a = h.sortedResults()
            },
            { b = distances.withUnsafeBufferPointer { TopK.select(k: k, distances: $0, firstID: 0) } },
        ])
        precondition(a == b, "selections differ at k \(k)")
        print("topk n \(n) k \(k): heap \(f(t[0] * 1e3, 3)) ms, select \(f(t[1] * 1e3, 3)) ms (select takes \(f(r[1]))x the heap's time)")
    }
}

let args = CommandLine.arguments.dropFirst()
let what = args.first ?? "all"
let runs = args.count > 1 ? Int(args[args.startIndex + 1])! : 7
if what == "stream" || what == "all" { stream(runs: runs) }
let kinds = args.count > 2
    ? args[args.startIndex + 2].split(separator: ",").map { k in DistanceKind.allCases.first { $0.description == k }! }
    : DistanceKind.allCases
if what == "tile" || what == "all" { tile(runs: runs, kinds: kinds) }
if what == "topk" || what == "all" { topk(runs: runs) }

// HNSW measurements: build time, then single-thread recall@10 and QPS over an ef sweep,
// one query at a time; printed as JSON lines for comparison with Bench/peers/hnswlib_ref.py
// in the same run.
//
//   swift build -c release --product HNSWMeasure [-Xswiftc -target-cpu -Xswiftc haswell]
//   HNSWMeasure pypi [DIR]                   # DIR defaults to /work/shared/data/pypi-50k
//   HNSWMeasure generate [N] [PREFIX]        # synthetic L2 data: PREFIX-base.fvecs, PREFIX-queries.fvecs
//   HNSWMeasure synthetic [PREFIX]           # needs PREFIX-gt.ivecs (written by hnswlib_ref.py)
//
// pypi also measures filtered search (random filters of 50%, 10%, 1%, 0.1% at ef 64; set
// HNSW_FILTERED=0 to skip).
// Environment: HNSW_THREADS (build threads, 2), HNSW_RUNS (timed runs per ef, median, 3),
// HNSW_EFS (comma-separated, "16,32,64,128,256"), HNSW_M (16), HNSW_EFC (200),
// SEXTANT_PORTABLE_KERNELS=1 (the portable Swift distance kernels instead of the run-time
// dispatched AVX2 + FMA ones, for build and search; the first output line says which).
// The build uses the threads asked for; the query sweep then pins itself to CPU 0.
// `qps` is wall-clock; `qps_cpu` divides by the thread's CPU time, which other processes
// on a shared machine do not inflate.

import SextantKernels
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Files

func readAll(_ path: String) -> [UInt8] {
    guard let f = fopen(path, "rb") else { fatalError("cannot open \(path)") }
    defer { fclose(f) }
    fseek(f, 0, SEEK_END)
    let size = ftell(f)
    fseek(f, 0, SEEK_SET)
    var bytes = [UInt8](repeating: 0, count: size)
    let read = bytes.withUnsafeMutableBytes { fread($0.baseAddress, 1, size, f) }
    precondition(read == size, "short read of \(path)")
    return bytes
}

/// `.fvecs` / `.ivecs`: records of an Int32 dimension then that many 4-byte values.
func readVecs<T>(_ path: String, as: T.Type) -> (rows: [T], dimension: Int) {
    let bytes = readAll(path)
    return bytes.withUnsafeBytes { raw in
        let d = Int(raw.loadUnaligned(as: Int32.self))
        let record = 4 + 4 * d
        let n = bytes.count / record
        var out = [T]()
        out.reserveCapacity(n * d)
        for i in 0..<n {
            for j in 0..<d { out.append(raw.loadUnaligned(fromByteOffset: i * record + 4 + 4 * j, as: T.self)) }
        }
        return (out, d)
    }
}

func writeFvecs(_ path: String, _ rows: UnsafeBufferPointer<Float>, dimension: Int) {
    guard let f = fopen(path, "wb") else { fatalError("cannot create \(path)") }
    defer { fclose(f) }
    var d = Int32(dimension)
    for i in 0..<rows.count / dimension {
        fwrite(&d, 4, 1, f)
        fwrite(rows.baseAddress! + i * dimension, 4, dimension, f)
    }
}

/// A 2-D little-endian float16 or float32 `.npy` array, as Float32.
func readNpy(_ path: String) -> (rows: [Float], dimension: Int) {
    let bytes = readAll(path)
    let major = bytes[6]
    let headerLength = major == 1 ? Int(bytes[8]) | Int(bytes[9]) << 8
        : Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
    let start = major == 1 ? 10 : 12
    let header = String(decoding: bytes[start..<start + headerLength], as: UTF8.self)
    let shape = header.split(separator: "(")[1].split(separator: ")")[0].split(separator: ",")
        .compactMap { Int($0.trimmingCharacters()) }
    let (n, d) = (shape[0], shape[1])
    let offset = start + headerLength
    var out = [Float](repeating: 0, count: n * d)
    bytes.withUnsafeBytes { raw in
        if header.contains("<f2") {
            for i in 0..<n * d { out[i] = Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: offset + 2 * i, as: UInt16.self))) }
        } else {
            precondition(header.contains("<f4"), "unsupported dtype in \(header)")
            for i in 0..<n * d { out[i] = raw.loadUnaligned(fromByteOffset: offset + 4 * i, as: Float.self) }
        }
    }
    return (out, d)
}

extension Substring {
    func trimmingCharacters() -> Substring {
        var s = self
        while let c = s.first, c == " " || c == "'" { s.removeFirst() }
        while let c = s.last, c == " " || c == "'" { s.removeLast() }
        return s
    }
}

func normalize(_ rows: inout [Float], dimension d: Int) {
    for i in 0..<rows.count / d {
        var s: Float = 0
        for j in 0..<d { s += rows[i * d + j] * rows[i * d + j] }
        let inv = 1 / s.squareRoot()
        for j in 0..<d { rows[i * d + j] *= inv }
    }
}

// MARK: - Timing and output

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// CPU time of the calling thread: unaffected by other processes sharing the cores, so it
/// compares implementations fairly on a busy machine (reported next to wall-clock rates).
func threadCPUNow() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

func env(_ name: String, _ fallback: String) -> String {
    getenv(name).map { String(cString: $0) } ?? fallback
}

func pinToCPU0() {
    var set = cpu_set_t()
    withUnsafeMutableBytes(of: &set) { $0.initializeMemory(as: UInt8.self, repeating: 0); $0[0] = 1 }
    // sched_setaffinity is a GNU extension the Glibc module does not import; look it up.
    typealias SetAffinity = @convention(c) (pid_t, Int, UnsafeRawPointer) -> Int32
    guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "sched_setaffinity") else {
        print("# warning: could not pin to CPU 0")
        return
    }
    let setAffinity = unsafeBitCast(sym, to: SetAffinity.self)
    if withUnsafeBytes(of: &set, { setAffinity(0, MemoryLayout<cpu_set_t>.size, $0.baseAddress!) }) != 0 {
        print("# warning: could not pin to CPU 0")
    }
}

func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

// MARK: - The measurement

func measure(name: String, kind: DistanceKind, base: [Float], queries: [Float], dimension d: Int,
             truth: [Int32], truthDimension: Int, filtered: Bool = false) {
    let threads = Int(env("HNSW_THREADS", "2"))!
    let runs = Int(env("HNSW_RUNS", "3"))!
    let efs = env("HNSW_EFS", "16,32,64,128,256").split(separator: ",").map { Int($0)! }
    let p = HNSWParameters(m: Int(env("HNSW_M", "16"))!, efConstruction: Int(env("HNSW_EFC", "200"))!)
    let vectors = FlatVectorBuffer(kind: kind, dimension: d, rows: base)
    let source = vectors.source
    let n = vectors.count
    let nq = queries.count / d

    let t0 = now()
    let step = max(64, n / 10 / 64 * 64)
    let graph = try! InMemoryGraph.build(count: n, parameters: p, distances: source, threads: threads) { done, total in
        if done % step == 0 && done > 0 && done < total { print("# built \(done)/\(total)") }
    }
    let buildSeconds = now() - t0
    let report = try! HNSW.check(storage: graph, parameters: p)
    print("""
        {"impl":"sextant","dataset":"\(name)","n":\(n),"dim":\(d),"M":\(p.m),"efConstruction":\(p.efConstruction),\
        "build_threads":\(threads),"build_s":\(buildSeconds),"mean_degree0":\(report.degrees[0].meanDegree),\
        "unreachable":\(report.unreachableCount),"issues":\(report.issueCount),"graph_bytes":\(graph.memoryFootprint)}
        """)

    pinToCPU0()
    let context = HNSWSearchContext()
    let k = 10
    queries.withUnsafeBytes { qraw in
        // Warm-up pass (page faults, caches).
        for i in 0..<nq {
            _ = try! HNSW.search(source.query(qraw.baseAddress! + i * d * 4), k: k, ef: efs[0], storage: graph, distances: source, context: context)
        }
        for ef in efs {
            var times = [Double]()
            var cpuTimes = [Double]()
            var hits = 0
            context.distanceCount = 0
            for run in 0..<runs {
                let t = now()
                let c = threadCPUNow()
                for i in 0..<nq {
                    let r = try! HNSW.search(source.query(qraw.baseAddress! + i * d * 4), k: k, ef: ef,
                                             storage: graph, distances: source, context: context)
                    if run == 0 {
                        let gt = Set(truth[i * truthDimension..<i * truthDimension + k].map { UInt64($0) })
                        hits += r.filter { gt.contains($0.id) }.count
                    }
                }
                cpuTimes.append(threadCPUNow() - c)
                times.append(now() - t)
            }
            let qps = Double(nq) / median(times)
            print("""
                {"impl":"sextant","dataset":"\(name)","ef":\(ef),"recall10":\(Double(hits) / Double(nq * k)),\
                "qps":\(qps),"qps_cpu":\(Double(nq) / median(cpuTimes)),"us_per_query":\(1e6 / qps),"distances_per_query":\(context.distanceCount / (nq * runs))}
                """)
        }
        if filtered { measureFiltered(name: name, graph: graph, source: source, queries: qraw, count: nq, ef: 64) }
    }
}

// MARK: - Filtered search

/// Random filters (each id kept with probability `selectivity`, seeded) against exact
/// filtered top-10: recall, result counts and CPU-time QPS, for the default strategy and
/// with the graph forced (no exhaustive shortcut for few matches).
func measureFiltered(name: String, graph: InMemoryGraph, source: FlatVectors, queries: UnsafeRawBufferPointer,
                     count nq: Int, ef: Int) {
    let d = source.dimension
    let n = source.count
    let context = HNSWSearchContext()
    var g = Generator(seed: 99)
    for selectivity in [0.5, 0.1, 0.01, 0.001] {
        let allowedIDs = (0..<UInt32(n)).filter { _ in g.unit() < selectivity }
        let allowed = Bitmap(allowedIDs)
        var truth = [Set<UInt64>]()
        for i in 0..<nq {
            let q = source.query(queries.baseAddress! + i * d * 4)
            var top = TopK(k: 10)
            for id in allowedIDs { top.insert(distance: source.distance(q, to: id), id: UInt64(id)) }
            truth.append(Set(top.sortedResults().map(\.id)))
        }
        for (label, filter) in [("auto", HNSWFilter(allowed: allowed)),
                                ("graph", HNSWFilter(allowed: allowed, exhaustiveBelowMatches: 0))] {
            var hits = 0, wanted = 0, short = 0
            var strategies = [String: Int]()
            let c = threadCPUNow()
            for i in 0..<nq {
                let r = try! HNSW.search(source.query(queries.baseAddress! + i * d * 4), k: 10, ef: ef, filter: filter,
                                         storage: graph, distances: source, context: context)
                hits += r.neighbors.filter { truth[i].contains($0.id) }.count
                wanted += truth[i].count
                if r.neighbors.count < min(10, allowedIDs.count) { short += 1 }
                strategies["\(r.strategy)", default: 0] += 1
            }
            let cpu = threadCPUNow() - c
            let s = strategies.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",")
            print("""
                {"impl":"sextant","dataset":"\(name)","filter":"\(label)","selectivity":\(selectivity),\
                "matches":\(allowedIDs.count),"ef":\(ef),"recall10":\(Double(hits) / Double(max(1, wanted))),\
                "short_results":\(short),"qps_cpu":\(Double(nq) / cpu),"strategies":{\(s)}}
                """)
        }
    }
}

// MARK: - Synthetic data

/// splitmix64-seeded xoshiro256**: the same stream on every platform.
struct Generator {
    var s: (UInt64, UInt64, UInt64, UInt64)
    init(seed: UInt64) {
        var x = seed
        func next() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (next(), next(), next(), next())
    }
    mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3; s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }
    mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
    mutating func gaussian() -> Float {
        let u1 = max(unit(), 1e-300), u2 = unit()
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}

/// `n` points of 128 floats around 1,000 Gaussian centres (centre coordinates N(0, 2²),
/// offsets N(0, 1)), then 1,000 queries from the same mixture.
func generate(n: Int, prefix: String) {
    let d = 128, clusters = 1000
    var g = Generator(seed: 20_261_127)
    let centres = (0..<clusters * d).map { _ in 2 * g.gaussian() }
    func points(_ count: Int) -> [Float] {
        var out = [Float](repeating: 0, count: count * d)
        for i in 0..<count {
            let c = Int(g.next() % UInt64(clusters))
            for j in 0..<d { out[i * d + j] = centres[c * d + j] + g.gaussian() }
        }
        return out
    }
    let base = points(n)
    let queries = points(1000)
    base.withUnsafeBufferPointer { writeFvecs(prefix + "-base.fvecs", $0, dimension: d) }
    queries.withUnsafeBufferPointer { writeFvecs(prefix + "-queries.fvecs", $0, dimension: d) }
    print("# wrote \(n) + 1000 vectors of \(d) floats to \(prefix)-{base,queries}.fvecs")
}

// MARK: - Main

let args = CommandLine.arguments
print("# kernels: \(TraversalDistance.isAccelerated ? "avx2+fma" : "portable")")
switch args.count > 1 ? args[1] : "" {
case "pypi":
    let dir = args.count > 2 ? args[2] : "/work/shared/data/pypi-50k"
    var (base, d) = readNpy(dir + "/base.npy")
    normalize(&base, dimension: d)
    var (queries, qd) = readVecs(dir + "/queries.fvecs", as: Float.self)
    precondition(qd == d)
    normalize(&queries, dimension: d)
    let (truth, td) = readVecs(dir + "/gt-unfiltered.ivecs", as: Int32.self)
    measure(name: "pypi-50k", kind: .cosine, base: base, queries: queries, dimension: d, truth: truth, truthDimension: td,
            filtered: env("HNSW_FILTERED", "1") == "1")
case "generate":
    generate(n: args.count > 2 ? Int(args[2])! : 1_000_000, prefix: args.count > 3 ? args[3] : "/tmp/hnsw-syn")
case "synthetic":
    let prefix = args.count > 2 ? args[2] : "/tmp/hnsw-syn"
    let (base, d) = readVecs(prefix + "-base.fvecs", as: Float.self)
    let (queries, _) = readVecs(prefix + "-queries.fvecs", as: Float.self)
    let (truth, td) = readVecs(prefix + "-gt.ivecs", as: Int32.self)
    measure(name: "synthetic-\(base.count / d)", kind: .l2, base: base, queries: queries, dimension: d, truth: truth, truthDimension: td)
default:
    print("usage: HNSWMeasure pypi [DIR] | generate [N] [PREFIX] | synthetic [PREFIX]")
    exit(2)
}

// Product-quantization figures on pypi-50k (50,000 x 384, cosine), single-threaded:
// training time, encode time, recall@10 after exact re-ranking of the best R codes, and
// codes scanned per second (8-bit ADC scan; 4-bit fast scan, AVX2, SSSE3 and scalar).
//
//   swift build -c release --product PQMeasure
//   taskset -c 0 .build/release/PQMeasure [DATA_DIR] [runs]   # default /work/shared/data/pypi-50k, 5
//
// Prints one JSON object per configuration. Rates are medians of `runs` timed passes over
// all queries.

import Foundation
import SextantKernels

let dataDir = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "/work/shared/data/pypi-50k"
let runs = CommandLine.arguments.count > 2 ? Int(CommandLine.arguments[2]) ?? 5 : 5
let rerank = 100, k = 10

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

/// `.npy` of little-endian float16 or float32 rows, as Float32 (row-major).
func readNpy(_ path: String) -> (values: [Float], rows: Int, cols: Int) {
    let data = try! Data(contentsOf: URL(fileURLWithPath: path))
    let bytes = [UInt8](data)
    let major = bytes[6]
    let headerLen = major == 1 ? Int(bytes[8]) | Int(bytes[9]) << 8
        : Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
    let start = (major == 1 ? 10 : 12) + headerLen
    let header = String(decoding: bytes[(major == 1 ? 10 : 12)..<start], as: UTF8.self)
    let shape = header.split(separator: "(")[1].split(separator: ")")[0].split(separator: ",")
        .compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    let (rows, cols) = (shape[0], shape[1])
    let half = header.contains("<f2")
    precondition(half || header.contains("<f4"), "unsupported dtype: \(header)")
    var out = [Float](repeating: 0, count: rows * cols)
    bytes.withUnsafeBytes { raw in
        for i in 0..<(rows * cols) {
            out[i] = half ? Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: start + 2 * i, as: UInt16.self)))
                : raw.loadUnaligned(fromByteOffset: start + 4 * i, as: Float.self)
        }
    }
    return (out, rows, cols)
}

/// `.fvecs` / `.ivecs` records (Int32 dimension, then that many 4-byte values).
func readVecs<T>(_ path: String, as: T.Type) -> (values: [T], rows: Int, cols: Int) {
    let data = [UInt8](try! Data(contentsOf: URL(fileURLWithPath: path)))
    return data.withUnsafeBytes { raw in
        let d = Int(raw.loadUnaligned(as: Int32.self))
        let rows = data.count / (4 + 4 * d)
        var out = [T]()
        out.reserveCapacity(rows * d)
        for r in 0..<rows {
            for i in 0..<d { out.append(raw.loadUnaligned(fromByteOffset: r * (4 + 4 * d) + 4 + 4 * i, as: T.self)) }
        }
        return (out, rows, d)
    }
}

let base = readNpy(dataDir + "/base.npy")
let queries = readVecs(dataDir + "/queries.fvecs", as: Float.self)
let gt = readVecs(dataDir + "/gt-unfiltered.ivecs", as: Int32.self)
let n = base.rows, d = base.cols, nq = queries.rows

func query(_ i: Int) -> [Float] { Array(queries.values[(i * d)..<((i + 1) * d)]) }

/// recall@k of `candidates` after exact cosine re-ranking, against the ground truth of query `qi`.
func rerankedRecall(_ qi: Int, _ candidates: [Neighbor]) -> Int {
    let q = query(qi)
    let exact = base.values.withUnsafeBytes { b in
        q.withUnsafeBytes { qb in
            candidates.map { c in
                Neighbor(distance: Distance.distance(.cosine, query: qb.baseAddress!,
                                                     vector: b.baseAddress! + Int(c.id) * d * 4, dimension: d),
                         id: c.id)
            }
        }
    }.sorted().prefix(k).map { Int($0.id) }
    let truth = Set(gt.values[(qi * gt.cols)..<(qi * gt.cols + k)].map { Int($0) })
    return exact.filter { truth.contains($0) }.count
}

func emit(_ fields: [(String, Any)]) {
    print("{" + fields.map { "\"\($0.0)\": \($0.1 is String ? "\"\($0.1)\"" : "\($0.1)")" }.joined(separator: ", ") + "}")
}

func measure(m: Int, bits: Int) {
    var t0 = now()
    let pq = try! ProductQuantizer(training: base.values, dimension: d, subspaceCount: m, bits: bits, metric: .cosine)
    let trainSeconds = now() - t0
    t0 = now()
    let codes = pq.encode(vectors: base.values)
    let encodeSeconds = now() - t0
    let tables = (0..<nq).map { pq.distanceTable(query: query($0)) }
    let codesPerRun = Double(n * nq)
    var fields: [(String, Any)] = [
        ("config", "PQ\(m)x\(bits)"), ("bytes_per_vector", pq.codeSize), ("train_s", trainSeconds),
        ("encode_s", encodeSeconds), ("R", rerank),
    ]
    if bits == 8 {
        var hits = 0
        for qi in 0..<nq { hits += rerankedRecall(qi, tables[qi].nearest(codes: codes, k: rerank)) }
        fields.append(("recall_at_10", Double(hits) / Double(nq * k)))
        var scan = [Double](), top = [Double]()
        var out = [Float](repeating: 0, count: n)
        for _ in 0..<runs {
            t0 = now()
            codes.withUnsafeBufferPointer { c in
                out.withUnsafeMutableBufferPointer { o in
                    for t in tables { t.distances(codes: c.baseAddress!, count: n, into: o.baseAddress!) }
                }
            }
            scan.append(codesPerRun / (now() - t0))
            t0 = now()
            var sink = 0
            for t in tables { sink &+= t.nearest(codes: codes, k: rerank).count }
            top.append(codesPerRun / (now() - t0))
            precondition(sink == nq * rerank && out[0].isFinite)
        }
        fields += [("adc_scan_codes_per_s", median(scan)), ("adc_top100_codes_per_s", median(top))]
    } else {
        let fast = PQFastScanCodes(packedCodes: codes, subspaceCount: m)
        var hits = 0, floatHits = 0
        for qi in 0..<nq {
            hits += rerankedRecall(qi, PQFastScanTable(tables[qi]).nearest(codes: fast, k: rerank))
            floatHits += rerankedRecall(qi, tables[qi].nearest(codes: codes, k: rerank))
        }
        fields += [("recall_at_10", Double(hits) / Double(nq * k)),
                   ("recall_at_10_float_adc", Double(floatHits) / Double(nq * k))]
        var avx = [Double](), ssse3 = [Double](), scalar = [Double](), floatScan = [Double](), withLUT = [Double]()
        let quantized = tables.map { PQFastScanTable($0) }
        for _ in 0..<runs {
            var sink = 0
            t0 = now()
            for t in quantized { sink &+= t.nearest(codes: fast, k: rerank, path: .avx2).count }
            avx.append(codesPerRun / (now() - t0))
            t0 = now()
            // Including the per-query table build and quantization.
            for qi in 0..<nq {
                sink &+= PQFastScanTable(pq.distanceTable(query: query(qi))).nearest(codes: fast, k: rerank).count
            }
            withLUT.append(codesPerRun / (now() - t0))
            t0 = now()
            for t in quantized { sink &+= t.nearest(codes: fast, k: rerank, path: .ssse3).count }
            ssse3.append(codesPerRun / (now() - t0))
            t0 = now()
            for t in quantized { sink &+= t.nearest(codes: fast, k: rerank, path: .scalar).count }
            scalar.append(codesPerRun / (now() - t0))
            t0 = now()
            for t in tables { sink &+= t.nearest(codes: codes, k: rerank).count }
            floatScan.append(codesPerRun / (now() - t0))
            precondition(sink == 5 * nq * rerank)
        }
        fields += [("fastscan_avx2_top100_codes_per_s", median(avx)),
                   ("fastscan_avx2_top100_incl_lut_codes_per_s", median(withLUT)),
                   ("fastscan_ssse3_top100_codes_per_s", median(ssse3)),
                   ("fastscan_scalar_top100_codes_per_s", median(scalar)),
                   ("float_adc4_top100_codes_per_s", median(floatScan))]
    }
    emit(fields)
}

let configs = ProcessInfo.processInfo.environment["PQ_CONFIGS"] ?? "48x8,96x4"
for c in configs.split(separator: ",") {
    let parts = c.split(separator: "x").map { Int($0)! }
    measure(m: parts[0], bits: parts[1])
}

import CSextantSIMD

/// Symmetric 8-bit scalar quantization, for graph traversal over compact codes.
///
/// Each component becomes `clamp(round((x_i − offset_i) / scale), −127, 127)` with one `scale`
/// for every component, so that the squared L2 distance and the dot product of two code rows
/// are those of the vectors up to the factor `scale²` (the offsets cancel in L2; for inner
/// product and cosine they are zero). Cosine collections encode normalised vectors. A query is
/// quantized the same way and widened to `Int16`; distances are then exact integer sums, so the
/// AVX2 kernel and the portable loop agree bit for bit.
///
/// A traversal over 8-bit codes reads a quarter of the bytes per visited node of one over
/// float32 vectors; the search re-ranks its beam with the full vectors (``GraphDistanceSource``'s
/// result distances), so only which nodes the beam holds is approximate.
public struct ScalarQuantizer: Sendable, Equatable {
    public let dimension: Int
    /// `.l2` (offsets per component) or `.ip` (offsets zero).
    public let kind: DistanceKind
    /// Whether vectors are normalised before encoding (cosine collections).
    public let normalizes: Bool
    public let offsets: [Float]
    public let scale: Float

    /// Largest dimension whose squared L2 sums fit `Int32` (254² per component).
    public static let maxDimension = 32_768

    public init(dimension: Int, kind: DistanceKind, normalizes: Bool, offsets: [Float], scale: Float) throws(PQError) {
        guard dimension > 0, dimension <= Self.maxDimension else { throw .invalidDimension(dimension) }
        guard offsets.count == dimension, scale.isFinite, scale > 0, offsets.allSatisfy(\.isFinite) else {
            throw .invalidSerialization("offsets or scale out of range")
        }
        (self.dimension, self.kind, self.normalizes, self.offsets, self.scale) = (dimension, kind == .l2 ? .l2 : .ip, normalizes, offsets, scale)
    }

    /// Trains on `sample` (row-major, `dimension` floats a row): offsets at the middle of each
    /// component's range (L2; zero otherwise) and the scale that maps the 99.99th percentile of
    /// the centred magnitudes to 127 (the rare larger values clamp, so that one outlier does
    /// not coarsen every other component).
    public init(training sample: [Float], dimension: Int, kind: DistanceKind, normalizes: Bool) throws(PQError) {
        guard dimension > 0, dimension <= Self.maxDimension else { throw .invalidDimension(dimension) }
        let rows = sample.count / dimension
        guard rows > 0, sample.count == rows * dimension else { throw .notEnoughTrainingVectors(have: rows, need: 1) }
        func row(_ r: Int) -> [Float] {
            let x = Array(sample[r * dimension..<(r + 1) * dimension])
            return normalizes ? Self.normalized(x) : x
        }
        var offsets = [Float](repeating: 0, count: dimension)
        if kind == .l2 {
            var lo = [Float](repeating: .infinity, count: dimension), hi = [Float](repeating: -.infinity, count: dimension)
            for r in 0..<rows {
                let x = row(r)
                for i in 0..<dimension { lo[i] = min(lo[i], x[i]); hi[i] = max(hi[i], x[i]) }
            }
            for i in 0..<dimension { offsets[i] = (lo[i] + hi[i]) / 2 }
        }
        // At most 2^20 magnitudes, spread over the sample.
        let total = rows * dimension
        let step = max(1, total / (1 << 20))
        var magnitudes: [Float] = []
        magnitudes.reserveCapacity(total / step + 1)
        var r = 0
        var current = row(0)
        for j in stride(from: 0, to: total, by: step) {
            if j / dimension != r { r = j / dimension; current = row(r) }
            magnitudes.append(abs(current[j % dimension] - offsets[j % dimension]))
        }
        magnitudes.sort()
        let top = magnitudes[min(magnitudes.count - 1, Int(Double(magnitudes.count - 1) * 0.9999))]
        let scale = top > 0 && top.isFinite ? top / 127 : 1
        try self.init(dimension: dimension, kind: kind, normalizes: normalizes, offsets: offsets, scale: scale)
    }

    static func normalized(_ x: [Float]) -> [Float] {
        var s: Double = 0
        for v in x { s += Double(v) * Double(v) }
        guard s > 0 else { return x }
        let inv = Float(1 / s.squareRoot())
        return x.map { $0 * inv }
    }

    @inline(__always)
    private func level(_ v: Float, _ i: Int) -> Int16 {
        let t = ((v - offsets[i]) / scale).rounded()
        return Int16(max(-127, min(127, t.isNaN ? 0 : t)))
    }

    /// Encodes `dimension` floats at `x` (normalised first for cosine) into `out`.
    public func encode(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Int8>) {
        let v = normalizes ? Self.normalized(Array(UnsafeBufferPointer(start: x, count: dimension))) : Array(UnsafeBufferPointer(start: x, count: dimension))
        for i in 0..<dimension { out[i] = Int8(level(v[i], i)) }
    }

    /// The query's levels, widened: `query` is already normalised for cosine (searches normalise
    /// their queries), so it is not normalised again.
    public func quantize(query: UnsafePointer<Float>, into out: UnsafeMutablePointer<Int16>) {
        for i in 0..<dimension { out[i] = level(query[i], i) }
    }

    /// Raw integer sums of `query` against each code row: squared differences (L2) or products
    /// (inner product, cosine).
    public func sums(_ query: UnsafePointer<Int16>, _ rows: UnsafeBufferPointer<UnsafeRawPointer>, into out: UnsafeMutablePointer<Int32>) {
        guard !rows.isEmpty else { return }
        let l2: Int32 = kind == .l2 ? 1 : 0
        if TraversalDistance.isAccelerated {
            rows.withMemoryRebound(to: UnsafePointer<Int8>?.self) { p in
                sextant_sq8_batch_avx2(l2, query, p.baseAddress, rows.count, dimension, out)
            }
            return
        }
        for j in rows.indices {
            let x = rows[j].assumingMemoryBound(to: Int8.self)
            var s: Int32 = 0
            for i in 0..<dimension {
                let a = Int32(query[i]), b = Int32(x[i])
                s &+= l2 != 0 ? (a - b) * (a - b) : a * b
            }
            out[j] = s
        }
    }

    /// The approximate distance from a raw sum: `scale² · sum` (L2), `−scale² · sum` (inner
    /// product), `1 − scale² · sum` (cosine, both sides normalised).
    @inline(__always)
    public func distance(fromSum s: Int32) -> Float {
        let v = scale * scale * Float(s)
        return kind == .l2 ? v : normalizes ? 1 - v : -v
    }

    /// `"SXSQ" ‖ version u32 ‖ dimension u32 ‖ kind u8 ‖ normalizes u8 ‖ scale f32 ‖ offsets f32…`
    /// (little-endian).
    public func serialized() -> [UInt8] {
        var out = Array("SXSQ".utf8)
        for v in [UInt32(1), UInt32(dimension)] { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        out.append(kind.rawValue)
        out.append(normalizes ? 1 : 0)
        withUnsafeBytes(of: scale.bitPattern.littleEndian) { out += $0 }
        for f in offsets { withUnsafeBytes(of: f.bitPattern.littleEndian) { out += $0 } }
        return out
    }

    public init(serialized bytes: UnsafeRawBufferPointer) throws(PQError) {
        guard bytes.count >= 18, Array(bytes[0..<4]) == Array("SXSQ".utf8) else { throw .invalidSerialization("bad magic or length") }
        func u32(_ at: Int) -> Int { Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }
        func f32(_ at: Int) -> Float { Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }
        guard u32(4) == 1 else { throw .invalidSerialization("unknown version \(u32(4))") }
        let d = u32(8)
        guard d > 0, d <= Self.maxDimension, bytes.count == 18 + 4 * d,
              let kind = DistanceKind(rawValue: bytes[12]), kind != .cosine, bytes[13] <= 1 else {
            throw .invalidSerialization("\(bytes.count) bytes for dimension \(d)")
        }
        try self.init(dimension: d, kind: kind, normalizes: bytes[13] == 1, offsets: (0..<d).map { f32(18 + 4 * $0) }, scale: f32(14))
    }
}

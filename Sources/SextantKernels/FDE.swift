// Fixed-dimensional encodings (FDE) of token sets, after MUVERA (Dhulipala et al., 2024):
// the inner product of a query's FDE with a document's FDE approximates their Chamfer
// similarity Σ_q max_p ⟨q, p⟩, so an ordinary single-vector index over document FDEs yields
// candidates for an exact Chamfer re-rank.
//
// Construction, per repetition r = 0 ..< R:
//   1. SimHash: k_sim Gaussian vectors g_0 … g_{k−1}; a token x falls in bucket
//      b(x) = Σ_i 2^i · [⟨g_i, x⟩ > 0]  (plain binary, bit i from g_i).
//   2. Per bucket, the tokens' sum (queries) or mean (documents), in token order.
//   3. Documents only: an empty bucket b takes the token whose bucket id has the smallest
//      Hamming distance to b (ties: the lowest token index).
//   4. Inner projection of each block: ψ(v) = (1/√d_proj) · S_r v with S_r a d_proj × d
//      matrix of ±1 entries, or the identity when d_proj = d. (Projection is linear, so the
//      raw tokens are summed per bucket first and each block projected once.)
//   5. The repetition's B = 2^k_sim blocks of d_proj floats are concatenated, bucket order.
// Repetitions are concatenated (R · B · d_proj floats), then optionally count-sketched to
// d_final: out[h(j)] += s(j) · fde[j] in j order.
//
// Determinism. Every random number comes from SplitMix64 seeded from (seed, repetition,
// purpose), never from the platform's generator. Gaussians are Irwin–Hall sums of twelve
// 24-bit uniforms, computed in integers and converted once, so the SimHash directions are
// bit-identical everywhere (no libm call is involved; the sign test needs only a direction
// distribution close to isotropic, which twelve terms give). Inner products use one fixed
// lane order (SIMD8 accumulator, fixed reduction tree) with plain `*` and `+`, which Swift
// never contracts into FMA, so an encoder version and a seed determine every output bit on
// every IEEE-754 machine. ``FDEParameters/encoderVersion`` changes whenever any of this does.

/// The parameters of a fixed-dimensional encoding. Stored with a multi-vector collection.
public struct FDEParameters: Sendable, Codable, Equatable, Hashable {
    /// Components per token.
    public var tokenDimension: Int
    /// R: independent repetitions, concatenated.
    public var repetitions: Int
    /// k_sim: SimHash bits per repetition (2^k_sim buckets).
    public var simhashBits: Int
    /// d_proj: each block's dimension after the ±1 projection (`tokenDimension`: identity).
    public var projectionDimension: Int
    /// Optional final count-sketch dimension (nil: none).
    public var finalDimension: Int?
    /// Seed of every random choice; queries and documents must share it.
    public var seed: UInt64

    /// The version of the construction above; part of what a collection stores.
    public static let encoderVersion = 1

    /// The defaults of the paper's end-to-end runs: R = 20, k_sim = 5, d_proj = 16 (10,240 dims).
    public static func standard(tokenDimension: Int, seed: UInt64 = 42) -> FDEParameters {
        FDEParameters(tokenDimension: tokenDimension, repetitions: 20, simhashBits: 5,
                      projectionDimension: min(16, tokenDimension), finalDimension: nil, seed: seed)
    }

    /// The low-memory preset: R = 20, k_sim = 4, d_proj = 8 (2,560 dims), one of the paper's
    /// Pareto-optimal settings.
    public static func lowMemory(tokenDimension: Int, seed: UInt64 = 42) -> FDEParameters {
        FDEParameters(tokenDimension: tokenDimension, repetitions: 20, simhashBits: 4,
                      projectionDimension: min(8, tokenDimension), finalDimension: nil, seed: seed)
    }

    public init(tokenDimension: Int, repetitions: Int, simhashBits: Int, projectionDimension: Int,
                finalDimension: Int? = nil, seed: UInt64 = 42) {
        self.tokenDimension = tokenDimension
        self.repetitions = repetitions
        self.simhashBits = simhashBits
        self.projectionDimension = projectionDimension
        self.finalDimension = finalDimension
        self.seed = seed
    }

    /// 2^k_sim.
    public var buckets: Int { 1 << simhashBits }
    /// Floats before the final projection: R · 2^k_sim · d_proj.
    public var concatenatedDimension: Int { repetitions * buckets * projectionDimension }
    /// The encoding's dimension.
    public var dimension: Int { finalDimension ?? concatenatedDimension }

    /// Why the parameters are unusable, or nil. Limits: token dimension 1…65,536; R 1…1,024;
    /// k_sim 0…10; d_proj 1…token dimension; encoding dimension ≤ 65,536; d_final ≥ 1.
    public var problem: String? {
        guard (1...65_536).contains(tokenDimension) else { return "token dimension must be 1…65536, got \(tokenDimension)" }
        guard (1...1024).contains(repetitions) else { return "repetitions must be 1…1024, got \(repetitions)" }
        guard (0...10).contains(simhashBits) else { return "SimHash bits must be 0…10, got \(simhashBits)" }
        guard (1...tokenDimension).contains(projectionDimension) else {
            return "projection dimension must be 1…\(tokenDimension) (the token dimension), got \(projectionDimension)"
        }
        if let f = finalDimension, f < 1 { return "final dimension must be at least 1, got \(f)" }
        guard repetitions * buckets * projectionDimension <= 1 << 20 else {
            return "R · 2^k_sim · d_proj must be at most 1048576, got \(repetitions * buckets * projectionDimension)"
        }
        guard dimension <= 65_536 else { return "the encoding has \(dimension) dimensions; at most 65536" }
        return nil
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): the encoder's own portable generator.
public struct SplitMix64: Sendable {
    public var state: UInt64
    public init(state: UInt64) { self.state = state }
    @inlinable
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A stream for (seed, repetition, purpose): independent of every other such stream.
    public static func stream(seed: UInt64, repetition: Int, purpose: UInt64) -> SplitMix64 {
        var g = SplitMix64(state: seed)
        let a = g.next()
        var h = SplitMix64(state: a ^ (UInt64(truncatingIfNeeded: repetition) &* 0xD6E8_FEB8_6659_FD93) ^ (purpose &* 0xA076_1D64_78BD_642F))
        _ = h.next()
        return h
    }

    /// An approximately standard normal value: the Irwin–Hall sum of twelve 24-bit
    /// uniforms minus six, computed exactly in integers, converted once (round to nearest).
    public mutating func gaussian() -> Float {
        var s: Int64 = 0
        for _ in 0..<12 { s += Int64(next() >> 40) }
        s -= 6 << 24
        return Float(s) * 0x1p-24
    }
}

/// Which side of the asymmetric encoding a token set is on.
public enum FDESide: Sendable {
    /// Blocks are sums; empty buckets stay zero.
    case query
    /// Blocks are means; empty buckets are filled from the nearest token by Hamming distance.
    case document
}

/// A fixed-dimensional encoder: the random matrices of ``FDEParameters``, drawn once.
/// Immutable and thread-safe; encoding allocates only its output and small scratch.
public final class FDEEncoder: Sendable {
    public let parameters: FDEParameters
    /// Per repetition, k_sim × d Gaussian rows.
    private let gaussians: [[Float]]
    /// Per repetition, d_proj × d entries of ±1 (empty for the identity).
    private let projections: [[Float]]
    private let projectionScale: Float
    /// Final count-sketch: target index and sign per concatenated coordinate.
    private let sketchIndex: [Int32]
    private let sketchSign: [Float]

    /// Draws the matrices. The parameters must be valid (``FDEParameters/problem`` nil).
    public init(_ p: FDEParameters) {
        precondition(p.problem == nil, p.problem ?? "")
        parameters = p
        let d = p.tokenDimension
        var gs: [[Float]] = [], ps: [[Float]] = []
        for r in 0..<p.repetitions {
            var g = SplitMix64.stream(seed: p.seed, repetition: r, purpose: 1)
            gs.append((0..<(p.simhashBits * d)).map { _ in g.gaussian() })
            if p.projectionDimension == d {
                ps.append([])
            } else {
                var s = SplitMix64.stream(seed: p.seed, repetition: r, purpose: 2)
                var m = [Float](repeating: 0, count: p.projectionDimension * d)
                var bits: UInt64 = 0
                for i in 0..<m.count {
                    if i % 64 == 0 { bits = s.next() }
                    m[i] = (bits >> UInt64(i % 64)) & 1 == 0 ? 1 : -1
                }
                ps.append(m)
            }
        }
        gaussians = gs
        projections = ps
        projectionScale = p.projectionDimension == d ? 1 : 1 / Float(p.projectionDimension).squareRoot()
        if let f = p.finalDimension {
            var s = SplitMix64.stream(seed: p.seed, repetition: 0, purpose: 3)
            var idx = [Int32](repeating: 0, count: p.concatenatedDimension)
            var sg = [Float](repeating: 0, count: p.concatenatedDimension)
            for j in 0..<idx.count {
                let x = s.next()
                idx[j] = Int32(truncatingIfNeeded: (x >> 1) % UInt64(f))
                sg[j] = x & 1 == 0 ? 1 : -1
            }
            sketchIndex = idx
            sketchSign = sg
        } else {
            sketchIndex = []
            sketchSign = []
        }
    }

    /// The encoding's dimension.
    public var dimension: Int { parameters.dimension }

    /// Encodes `count` packed tokens of `tokenDimension` floats (any alignment).
    public func encode(_ tokens: UnsafeRawPointer, count: Int, side: FDESide) -> [Float] {
        [Float](unsafeUninitializedCapacity: dimension) { buf, n in
            encode(tokens, count: count, side: side, into: buf.baseAddress!)
            n = dimension
        }
    }

    /// Array convenience: `tokens.count / tokenDimension` packed tokens.
    public func encode(_ tokens: [Float], side: FDESide) -> [Float] {
        precondition(tokens.count % parameters.tokenDimension == 0, "not whole tokens")
        return tokens.withUnsafeBytes { encode($0.baseAddress!, count: tokens.count / parameters.tokenDimension, side: side) }
    }

    /// Encodes into `out` (``dimension`` floats).
    public func encode(_ tokens: UnsafeRawPointer, count m: Int, side: FDESide, into out: UnsafeMutablePointer<Float>) {
        let p = parameters
        let d = p.tokenDimension, k = p.simhashBits, nb = p.buckets, dp = p.projectionDimension
        let blockFloats = nb * dp
        // With a final projection the concatenation is built in scratch first.
        let concat: UnsafeMutablePointer<Float>
        if p.finalDimension == nil {
            concat = out
        } else {
            concat = .allocate(capacity: p.concatenatedDimension)
        }
        defer { if p.finalDimension != nil { concat.deallocate() } }
        concat.initialize(repeating: 0, count: p.concatenatedDimension)
        // Tokens copied into aligned scratch once.
        let x = UnsafeMutablePointer<Float>.allocate(capacity: max(1, m * d))
        defer { x.deallocate() }
        UnsafeMutableRawPointer(x).copyMemory(from: tokens, byteCount: m * d * 4)
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: nb * d)
        defer { sums.deallocate() }
        var counts = [Int](repeating: 0, count: nb)
        var codes = [Int](repeating: 0, count: m)
        for r in 0..<p.repetitions {
            gaussians[r].withUnsafeBufferPointer { g in
                for t in 0..<m {
                    var c = 0
                    for i in 0..<k where _fdeDot(g.baseAddress! + i * d, x + t * d, d) > 0 { c |= 1 << i }
                    codes[t] = c
                }
            }
            sums.initialize(repeating: 0, count: nb * d)
            for b in 0..<nb { counts[b] = 0 }
            for t in 0..<m {
                let b = codes[t]
                counts[b] += 1
                let s = sums + b * d, v = x + t * d
                for j in 0..<d { s[j] += v[j] }
            }
            let base = concat + r * blockFloats
            for b in 0..<nb {
                let s = sums + b * d
                if counts[b] == 0 {
                    guard side == .document, m > 0 else { continue }
                    var best = 0, bestDistance = Int.max
                    for t in 0..<m {
                        let h = (codes[t] ^ b).nonzeroBitCount
                        if h < bestDistance { bestDistance = h; best = t }
                    }
                    let v = x + best * d
                    for j in 0..<d { s[j] = v[j] }
                } else if side == .document && counts[b] > 1 {
                    let c = Float(counts[b])
                    for j in 0..<d { s[j] = s[j] / c }
                }
                project(r, s, base + b * dp)
            }
        }
        if p.finalDimension != nil {
            let f = p.dimension
            out.initialize(repeating: 0, count: f)
            for j in 0..<p.concatenatedDimension {
                out[Int(sketchIndex[j])] += sketchSign[j] * concat[j]
            }
        }
    }

    /// ψ_r(v) into `out` (d_proj floats).
    @inline(__always)
    private func project(_ r: Int, _ v: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
        let d = parameters.tokenDimension, dp = parameters.projectionDimension
        if projections[r].isEmpty {
            for j in 0..<d { out[j] = v[j] }
            return
        }
        let scale = projectionScale
        projections[r].withUnsafeBufferPointer { s in
            for i in 0..<dp { out[i] = _fdeDot(s.baseAddress! + i * d, v, d) * scale }
        }
    }
}

/// The encoder's inner product, in one fixed order on every machine: lane i of a SIMD8
/// accumulator sums the terms j ≡ i (mod 8) in order (a partial last chunk zero-padded), then
/// lanes 0–3 + 4–7, 0–1 + 2–3, 0 + 1.
@inline(__always)
func _fdeDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ d: Int) -> Float {
    var acc = SIMD8<Float>()
    var j = 0
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    while j &+ 8 <= d {
        acc += ra.loadUnaligned(fromByteOffset: j &* 4, as: SIMD8<Float>.self) * rb.loadUnaligned(fromByteOffset: j &* 4, as: SIMD8<Float>.self)
        j &+= 8
    }
    if j < d {
        var u = SIMD8<Float>(), v = SIMD8<Float>()
        for i in 0..<(d &- j) { u[i] = a[j &+ i]; v[i] = b[j &+ i] }
        acc += u * v
    }
    let h4 = acc.lowHalf + acc.highHalf
    let h2 = h4.lowHalf + h4.highHalf
    return h2[0] + h2[1]
}

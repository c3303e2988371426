// Chamfer (late-interaction, "MaxSim") similarity of token sets:
//
//     Chamfer(Q, P) = Σ_{q ∈ Q} max_{p ∈ P} ⟨q, p⟩
//
// computed as a tile of query-token × document-token inner products (the tiled kernel of
// Tiles.swift, so each loaded document token serves two query tokens from registers) followed
// by a maximum per row and a sum over rows in query-token order. Several queries scored
// against the same document are stacked into one tile: the document's tokens are then read
// once for all of them (a batch re-ranking shared candidates).

/// Chamfer similarity kernels. Pure compute; pointers need no alignment.
public enum Chamfer {
    /// Σ_q max_p ⟨q, p⟩ for `queryCount` packed query tokens against `documentCount` packed
    /// document tokens of `dimension` floats. `scratch` is resized as needed (reuse it).
    public static func similarity(
        query: UnsafeRawPointer, queryCount: Int, document: UnsafeRawPointer, documentCount: Int, dimension: Int,
        scratch: inout [Float]
    ) -> Float {
        precondition(queryCount >= 1 && documentCount >= 1 && dimension >= 1, "empty token set")
        let n = queryCount * documentCount
        if scratch.count < n { scratch = [Float](repeating: 0, count: n) }
        return scratch.withUnsafeMutableBufferPointer { s in
            Distance.tile(.ip, queries: query, queryCount: queryCount, vectors: document, vectorCount: documentCount,
                          dimension: dimension, into: s.baseAddress!)
            return _rowMaxSum(s.baseAddress!, rows: 0..<queryCount, columns: documentCount)
        }
    }

    /// Several token sets against one document, stacked into one tile: `queries` holds the
    /// token sets back to back, `segments[i]` the token range of set i; `out[i]` receives
    /// set i's Chamfer similarity. Equal to calling ``similarity(query:queryCount:document:documentCount:dimension:scratch:)``
    /// per set, bit for bit.
    public static func similarities(
        queries: UnsafeRawPointer, segments: [Range<Int>], document: UnsafeRawPointer, documentCount: Int, dimension: Int,
        scratch: inout [Float], into out: UnsafeMutablePointer<Float>
    ) {
        guard let total = segments.map(\.upperBound).max(), total > 0 else { return }
        precondition(documentCount >= 1 && dimension >= 1, "empty token set")
        let n = total * documentCount
        if scratch.count < n { scratch = [Float](repeating: 0, count: n) }
        scratch.withUnsafeMutableBufferPointer { s in
            Distance.tile(.ip, queries: queries, queryCount: total, vectors: document, vectorCount: documentCount,
                          dimension: dimension, into: s.baseAddress!)
            for (i, seg) in segments.enumerated() {
                out[i] = _rowMaxSum(s.baseAddress!, rows: seg, columns: documentCount)
            }
        }
    }

    /// Array convenience for tests and tools.
    public static func similarity(query: [Float], document: [Float], dimension: Int) -> Float {
        precondition(query.count % dimension == 0 && document.count % dimension == 0, "not whole tokens")
        var scratch: [Float] = []
        return query.withUnsafeBytes { q in
            document.withUnsafeBytes { p in
                similarity(query: q.baseAddress!, queryCount: query.count / dimension, document: p.baseAddress!,
                           documentCount: document.count / dimension, dimension: dimension, scratch: &scratch)
            }
        }
    }

    /// The tile holds −⟨q, p⟩: each row's maximum similarity is minus its minimum.
    @inline(__always)
    static func _rowMaxSum(_ s: UnsafeMutablePointer<Float>, rows: Range<Int>, columns: Int) -> Float {
        var total: Float = 0
        for i in rows {
            let row = s + i &* columns
            var j = 0
            var m = SIMD8<Float>(repeating: .infinity)
            while j &+ 8 <= columns {
                m = pointwiseMin(m, UnsafeRawPointer(row + j).loadUnaligned(as: SIMD8<Float>.self))
                j &+= 8
            }
            var best = m.min()
            while j < columns { best = Swift.min(best, row[j]); j &+= 1 }
            total += -best
        }
        return total
    }
}

/// IEEE half-precision conversion for stored tokens.
public enum HalfFloat {
    /// Decodes `count` little-endian binary16 values (any alignment) into floats, exactly
    /// (on the little-endian platforms Sextant supports).
    public static func decode(_ src: UnsafeRawPointer, count: Int, into out: UnsafeMutablePointer<Float>) {
        var i = 0
        while i &+ 8 <= count {
            let h = SIMD8<UInt32>(truncatingIfNeeded: src.loadUnaligned(fromByteOffset: i &* 2, as: SIMD8<UInt16>.self))
            UnsafeMutableRawPointer(out + i).storeBytes(of: _widen(h), as: SIMD8<Float>.self)
            i &+= 8
        }
        while i < count {
            let h = UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self)))
            out[i] = _widen(SIMD8<UInt32>(repeating: h))[0]
            i &+= 1
        }
    }

    /// Exponent and mantissa moved into place and rescaled by 2^112 (exact for normal and
    /// subnormal halves), infinities and NaNs given the full exponent, the sign restored.
    @inline(__always)
    static func _widen(_ h: SIMD8<UInt32>) -> SIMD8<Float> {
        let magnitude = (h & 0x7FFF) &<< 13
        let scaled = unsafeBitCast(magnitude, to: SIMD8<Float>.self) * SIMD8<Float>(repeating: 0x1p112)
        var bits = unsafeBitCast(scaled, to: SIMD8<UInt32>.self)
        let special = (h & 0x7C00) .== 0x7C00
        bits.replace(with: magnitude | 0x7F80_0000, where: special)
        return unsafeBitCast(bits | ((h & 0x8000) &<< 16), to: SIMD8<Float>.self)
    }

    /// The nearest binary16 value of `x` (ties to even), as its bit pattern.
    public static func encode(_ x: Float) -> UInt16 {
        let b = x.bitPattern
        let sign = UInt16(truncatingIfNeeded: (b >> 16) & 0x8000)
        let a = b & 0x7FFF_FFFF
        if a >= 0x7F80_0000 { return sign | (a > 0x7F80_0000 ? 0x7E00 : 0x7C00) }
        if a >= 0x477F_F000 { return sign | 0x7C00 } // rounds to ≥ 65520: infinity
        if a < 0x3880_0000 {
            // Subnormal half (or zero): value / 2^-24, rounded to nearest even.
            let v = Float(bitPattern: a) * 0x1p24
            return sign | UInt16(v.rounded(.toNearestOrEven))
        }
        // Normal: rebias the exponent, round the 13 dropped mantissa bits to nearest even.
        let r = a &- 0x3800_0000
        let rounded = r &+ 0xFFF &+ ((r >> 13) & 1)
        return sign | UInt16(truncatingIfNeeded: rounded >> 13)
    }

    /// The largest finite binary16 value.
    public static let maxFinite: Float = 65504
}

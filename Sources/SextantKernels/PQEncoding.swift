// Encoding (nearest centroid per sub-space) and decoding (reconstruction).

import CSextantSIMD

extension ProductQuantizer {
    /// Encodes `count` row-major vectors into `codes` (``codeSize`` bytes each, contiguous).
    /// Nearest centroid by squared L2 per sub-space, ties to the smaller index; for cosine the
    /// vectors are normalised first. Works in chunks, so memory stays small.
    ///
    /// - Precondition: `vectors.count == count * dimension`, `codes.count >= count * codeSize`.
    public func encode(vectors: UnsafeBufferPointer<Float>, into codes: UnsafeMutableBufferPointer<UInt8>) {
        precondition(vectors.count % dimension == 0, "vectors are not whole rows")
        let n = vectors.count / dimension
        precondition(codes.count >= n * codeSize, "code buffer too small")
        guard n > 0 else { return }
        let chunk = 256, dsub = subspaceDimension, k = centroidCount, m = subspaceCount
        // Dimension-major sub-vectors of one chunk, one sub-space at a time.
        var sub = [Float](repeating: 0, count: dsub * chunk)
        var scale = [Float](repeating: 1, count: chunk)
        let nearest = UnsafeMutablePointer<Int32>.allocate(capacity: chunk)
        defer { nearest.deallocate() }
        let src = vectors.baseAddress!, out = codes.baseAddress!
        centroidsT.withUnsafeBufferPointer { ct in
            centroidNorms.withUnsafeBufferPointer { cn in
                sub.withUnsafeMutableBufferPointer { s in
                    var start = 0
                    while start < n {
                        let c = Swift.min(chunk, n - start)
                        for p in 0..<c {
                            var f: Float = 1
                            if metric == .cosine {
                                let norm = Distance.norm(UnsafeRawPointer(src + (start + p) * dimension), dimension: dimension)
                                if norm > 0 { f = 1 / norm }
                            }
                            scale[p] = f
                        }
                        if bits == 4 {
                            (out + start * codeSize).update(repeating: 0, count: c * codeSize)
                        }
                        for j in 0..<m {
                            for p in 0..<c {
                                let row = src + (start + p) * dimension + j * dsub
                                for i in 0..<dsub { s[i * chunk + p] = row[i] * scale[p] }
                            }
                            sextant_nearest_centroids(s.baseAddress!, c, chunk, dsub, ct.baseAddress! + j * k * dsub,
                                                      cn.baseAddress! + j * k, k, nearest)
                            for p in 0..<c {
                                let v = start + p, centroid = UInt8(truncatingIfNeeded: nearest[p])
                                if bits == 8 {
                                    out[v * m + j] = centroid
                                } else {
                                    out[v * (m / 2) + j / 2] |= centroid << (j % 2 == 0 ? 0 : 4)
                                }
                            }
                        }
                        start += c
                    }
                }
            }
        }
    }

    /// Encodes row-major vectors (`vectors.count / dimension` of them) into one contiguous
    /// array of ``codeSize`` bytes per vector.
    public func encode(vectors: [Float]) -> [UInt8] {
        precondition(vectors.count % dimension == 0, "vectors are not whole rows")
        let n = vectors.count / dimension
        return [UInt8](unsafeUninitializedCapacity: n * codeSize) { buf, initialized in
            vectors.withUnsafeBufferPointer { encode(vectors: $0, into: buf) }
            initialized = n * codeSize
        }
    }

    /// The ``codeSize``-byte code of one vector.
    public func encode(_ vector: [Float]) -> [UInt8] {
        precondition(vector.count == dimension, "dimension mismatch")
        return encode(vectors: vector)
    }

    /// The sub-space code `j` of the vector whose code starts at `code`.
    @inlinable
    func centroidIndex(_ code: UnsafePointer<UInt8>, _ j: Int) -> Int {
        bits == 8 ? Int(code[j]) : Int((code[j >> 1] >> ((j & 1) << 2)) & 15)
    }

    /// Reconstructs the vectors of `codes` (``codeSize`` bytes each): the concatenated
    /// centroids. For cosine this approximates the *normalised* vector.
    public func decode(_ codes: [UInt8]) -> [Float] {
        precondition(codes.count % codeSize == 0, "codes are not whole vectors")
        let n = codes.count / codeSize, dsub = subspaceDimension, k = centroidCount
        var out = [Float](repeating: 0, count: n * dimension)
        codes.withUnsafeBufferPointer { c in
            for v in 0..<n {
                let code = c.baseAddress! + v * codeSize
                for j in 0..<subspaceCount {
                    let base = (j * k + centroidIndex(code, j)) * dsub
                    for i in 0..<dsub { out[v * dimension + j * dsub + i] = centroids[base + i] }
                }
            }
        }
        return out
    }
}

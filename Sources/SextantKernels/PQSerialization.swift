// Versioned, checksummed byte format for ProductQuantizer.
//
// Layout (little-endian):
//   0  "SXPQ"                magic
//   4  UInt16 version = 1
//   6  UInt8  bits (4 | 8), UInt8 metric (DistanceKind raw value)
//   8  UInt32 dimension, 12 UInt32 subspaceCount, 16 UInt32 reserved = 0
//   20 Float32 x (dimension << bits)   centroids, as ProductQuantizer.centroids
//   .. UInt64 FNV-1a of every preceding byte

extension ProductQuantizer {
    static let magic: [UInt8] = Array("SXPQ".utf8)
    static let formatVersion: UInt16 = 1
    static let headerSize = 20

    /// The quantizer as bytes: readable by ``init(serialized:)`` on any platform.
    public func serialized() -> [UInt8] {
        var out = Self.magic
        out.reserveCapacity(Self.headerSize + centroids.count * 4 + 8)
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        put(Self.formatVersion)
        put(UInt8(bits))
        put(metric.rawValue)
        put(UInt32(dimension))
        put(UInt32(subspaceCount))
        put(UInt32(0))
        for c in centroids { put(c.bitPattern) }
        put(Self.fnv1a(out[...]))
        return out
    }

    /// Reads ``serialized()`` bytes, validating everything: never traps on malformed input.
    ///
    /// - Throws: ``PQError/invalidSerialization(_:)`` (or another ``PQError`` for a
    ///   well-formed header describing an invalid quantizer).
    public init(serialized bytes: [UInt8]) throws {
        func fail(_ why: String) -> PQError { .invalidSerialization(why) }
        guard bytes.count >= Self.headerSize + 8 else { throw fail("truncated header") }
        guard Array(bytes[0..<4]) == Self.magic else { throw fail("bad magic") }
        func read<T: FixedWidthInteger>(_ offset: Int, as: T.Type) -> T {
            var v: T = 0
            for i in 0..<MemoryLayout<T>.size { v |= T(truncatingIfNeeded: bytes[offset + i]) << (8 * i) }
            return v
        }
        guard read(4, as: UInt16.self) == Self.formatVersion else { throw fail("unsupported version") }
        let bits = Int(bytes[6])
        guard let metric = DistanceKind(rawValue: bytes[7]) else { throw fail("unknown metric") }
        let dimension = Int(read(8, as: UInt32.self)), m = Int(read(12, as: UInt32.self))
        guard read(16, as: UInt32.self) == 0 else { throw fail("reserved field set") }
        try Self.validate(dimension: dimension, subspaceCount: m, bits: bits)
        // validate() caps dimension at 2^20 and bits at 8, so this cannot overflow.
        let floats = dimension << bits
        guard bytes.count == Self.headerSize + floats * 4 + 8 else { throw fail("length does not match header") }
        let end = bytes.count - 8
        guard read(end, as: UInt64.self) == Self.fnv1a(bytes[0..<end]) else { throw fail("checksum mismatch") }
        var centroids = [Float](repeating: 0, count: floats)
        for i in 0..<floats {
            let f = Float(bitPattern: read(Self.headerSize + 4 * i, as: UInt32.self))
            guard f.isFinite else { throw fail("non-finite centroid") }
            centroids[i] = f
        }
        try self.init(dimension: dimension, subspaceCount: m, bits: bits, metric: metric, centroids: centroids)
    }

    static func fnv1a(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h
    }
}

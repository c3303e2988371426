/// Key layouts. All multi-byte integers in keys are big-endian so that LMDB's byte order is
/// numeric order and one collection's keys form one contiguous range (prefix = collection id).
enum Keys {
    /// `cid(4) ‖ iid(4)`: rows, vectors and free slots.
    @inline(__always)
    static func row(_ cid: UInt32, _ iid: UInt32) -> UInt64 {
        (UInt64(cid) << 32 | UInt64(iid)).bigEndian
    }

    /// `cid(4) ‖ external id(8)`.
    @inline(__always)
    static func external(_ cid: UInt32, _ ext: UInt64) -> (UInt32, UInt64) {
        (cid.bigEndian, ext.bigEndian)
    }

    static func prefix(_ cid: UInt32) -> [UInt8] {
        withUnsafeBytes(of: cid.bigEndian) { Array($0) }
    }

    static func collectionState(_ cid: UInt32) -> [UInt8] { prefix(cid) }

    /// Calls `body` with the bytes of a row key.
    @inline(__always)
    static func withRowKey<R>(_ cid: UInt32, _ iid: UInt32, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var k = row(cid, iid)
        return try withUnsafeBytes(of: &k) { try body($0) }
    }

    /// Calls `body` with the bytes of an external-id key (12 bytes, no padding).
    @inline(__always)
    static func withExternalKey<R>(_ cid: UInt32, _ ext: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var buf: (UInt64, UInt64) = (0, 0)
        return try withUnsafeMutableBytes(of: &buf) { raw in
            raw.storeBytes(of: cid.bigEndian, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: ext.bigEndian, toByteOffset: 4, as: UInt64.self)
            return try body(UnsafeRawBufferPointer(rebasing: raw[0..<12]))
        }
    }

    /// Decodes the collection id and internal id of a row key.
    @inline(__always)
    static func decodeRow(_ key: UnsafeRawBufferPointer) -> (cid: UInt32, iid: UInt32)? {
        guard key.count == 8 else { return nil }
        let v = UInt64(bigEndian: key.loadUnaligned(as: UInt64.self))
        return (UInt32(truncatingIfNeeded: v >> 32), UInt32(truncatingIfNeeded: v))
    }

    static func decodeExternal(_ key: UnsafeRawBufferPointer) -> (cid: UInt32, ext: UInt64)? {
        guard key.count == 12 else { return nil }
        return (UInt32(bigEndian: key.loadUnaligned(as: UInt32.self)),
                UInt64(bigEndian: key.loadUnaligned(fromByteOffset: 4, as: UInt64.self)))
    }
}

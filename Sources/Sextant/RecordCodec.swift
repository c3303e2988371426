import Foundation
import SextantKernels
import SextantStorage

/// The on-disk record codecs, exposed for fuzzing and format tests: hostile bytes given to any
/// decoder must produce `SextantError.Code.corrupted`, never a trap.
@_spi(Testing)
public enum RecordCodec {
    /// Encodes an attribute record (flags, optional LZ4, payload) as stored in `sextant.rows`
    /// after the 8-byte id.
    public static func encodeAttributes(_ row: AttributeRow, schema: Schema) -> [UInt8] {
        var out: [UInt8] = []
        AttributeCodec.encode(row, schema: schema, into: &out)
        return out
    }

    /// Decodes an attribute record.
    public static func decodeAttributes(_ bytes: [UInt8], schema: Schema) throws -> AttributeRow {
        try bytes.withUnsafeBytes { try AttributeCodec.decode($0, schema: schema) }
    }

    /// Decodes a catalog entry.
    public static func decodeCollectionInfo(_ bytes: [UInt8]) throws -> CollectionInfo {
        do { return try Store.decoder.decode(CollectionInfo.self, from: Data(bytes)) } catch {
            throw SextantError(.corrupted, "catalog entry does not decode: \(error)")
        }
    }

    /// Decodes a collection state record: (row count, next slot).
    public static func decodeState(_ bytes: [UInt8]) throws -> (count: UInt64, nextSlot: UInt32) {
        let st = try bytes.withUnsafeBytes { try CollectionState.decode($0, cid: 0) }
        return (st.count, st.nextSlot)
    }

    /// Decodes a posting-list chunk of `sextant.postings` (the slots of chunk `high`, ascending).
    public static func decodePostingChunk(_ bytes: [UInt8], high: UInt16) throws -> [UInt32] {
        try bytes.withUnsafeBytes { try AttributeIndex.decodeChunk($0, high: high) }.toArray()
    }

    /// Encodes the slots of chunk `high` as stored in `sextant.postings`.
    public static func encodePostingChunk(_ slots: [UInt32], high: UInt16) -> [UInt8] {
        AttributeIndex.encodeChunk(Bitmap(slots), high: high)
    }

    /// Decodes an id-map value (a slot).
    public static func decodeSlot(_ bytes: [UInt8]) throws -> UInt32 {
        try bytes.withUnsafeBytes { try VectorCollection.slot($0) }
    }

    /// Decodes a vector block of a collection of `dimension`: (external id, components) for
    /// each of its slots, in slot order.
    public static func decodeVectorBlock(_ bytes: [UInt8], dimension: Int) throws -> [(id: UInt64, vector: [Float])] {
        let blocks = SlotLayout(strides: VectorCollection.vectorStrides(dimension))
        return try bytes.withUnsafeBytes { v in
            guard v.count == blocks.blockBytes else {
                throw SextantError(.corrupted, "vector block has \(v.count) bytes, expected \(blocks.blockBytes)")
            }
            return (0..<UInt32(blocks.slotsPerBlock)).map { slot in
                let id = UInt64(littleEndian: v.loadUnaligned(fromByteOffset: blocks.offset(slot, region: 0), as: UInt64.self))
                return (id, VectorCollection.floats(v.baseAddress! + blocks.offset(slot, region: 1), dimension))
            }
        }
    }

    /// Decodes a row record (external id, then the attribute record).
    public static func decodeRowRecord(_ bytes: [UInt8], schema: Schema) throws -> (id: UInt64, attributes: AttributeRow) {
        try bytes.withUnsafeBytes { v in
            guard v.count >= 9 else { throw SextantError(.corrupted, "row record has \(v.count) bytes") }
            return (UInt64(littleEndian: v.loadUnaligned(as: UInt64.self)),
                    try AttributeCodec.decode(UnsafeRawBufferPointer(rebasing: v[8...]), schema: schema))
        }
    }

    /// Decodes an LZ4 block that should expand to `size` bytes.
    public static func decompressLZ4(_ bytes: [UInt8], size: Int) throws -> [UInt8] {
        try bytes.withUnsafeBytes { try LZ4.decompress($0, originalSize: size) }
    }
}

import Foundation
import SextantStorage

/// The on-disk record codecs, exposed for fuzzing and format tests: hostile bytes given to any
/// decoder must produce ``SextantError/Code/corrupted``, never a trap.
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

    /// Decodes an LZ4 block that should expand to `size` bytes.
    public static func decompressLZ4(_ bytes: [UInt8], size: Int) throws -> [UInt8] {
        try bytes.withUnsafeBytes { try LZ4.decompress($0, originalSize: size) }
    }
}

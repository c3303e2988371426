import Foundation
@_spi(Testing) import Sextant

/// The on-disk record decoders fed hostile bytes. The first byte picks the decoder (and the
/// schema); the rest is the record.
///
/// Invariants: every failure is a `SextantError` with code `.corrupted`; a decoded attribute
/// row has one value per field, each null or of the field's type, and re-encodes to a record
/// that decodes to the same row (compared by encoding, so NaN payloads count too); an LZ4 block
/// decodes to exactly the size asked for.
enum RecordDecodersFuzz {
    static let schemas: [Schema] = [
        "",
        "a:int",
        "s:string",
        "d:double",
        "b:bool",
        "t:[string]",
        "n:[int]",
        "a:int,s:string,d:double,b:bool,t:[string],n:[int]",
        "f0:int,f1:int,f2:int,f3:int,f4:int,f5:int,f6:int,f7:int",
        "f0:bool,f1:bool,f2:bool,f3:bool,f4:bool,f5:bool,f6:bool,f7:bool,f8:string",
        "category:string,price:double,date:int,tags:[string],in_stock:bool",
        "a:int!,s:string-,t:[string]!",
    ].map { try! Schema(parsing: $0) }

    static func run(_ data: [UInt8]) throws {
        var input = FuzzBytes(data)
        let selector = input.byte()
        switch selector % 4 {
        case 0, 1:
            try attributes(input.rest(), schema: schemas[Int(selector / 4) % schemas.count])
        case 2:
            // (selector >> 2) & 3 picks the record: the catalog entry, or a fixed-layout record.
            let rest = input.rest()
            switch (selector >> 2) & 3 {
            case 0: try collectionInfo(rest)
            case 1:
                _ = try corrupted("decodeState") { _ = try RecordCodec.decodeState(rest) }
                _ = try corrupted("decodeSlot") { _ = try RecordCodec.decodeSlot(rest) }
                // A posting chunk that decodes re-encodes to the same bytes (one encoding each).
                let high = UInt16(selector >> 4)
                var ids: [UInt32] = []
                if try corrupted("decodePostingChunk", { ids = try RecordCodec.decodePostingChunk(rest, high: high) }) {
                    try require(ids.allSatisfy { $0 >> 16 == UInt32(high) }, "posting chunk decoded a slot of another chunk")
                    try require(RecordCodec.encodePostingChunk(ids, high: high).count <= max(rest.count, 1 + 2 * ids.count), "posting chunk re-encodes larger")
                }
                try tokenRecord(rest, dimension: 1 + Int(selector >> 4) % 8)
            case 2:
                let dim = 1 + Int(selector >> 4)
                var decoded: [(id: UInt64, vector: [Float])] = []
                if try corrupted("decodeVectorBlock", { decoded = try RecordCodec.decodeVectorBlock(rest, dimension: dim) }) {
                    try require(decoded.allSatisfy { $0.vector.count == dim }, "vector block decoded a vector of the wrong dimension")
                    try require(decoded.count * (12 + 4 * dim) == rest.count, "vector block decoded \(decoded.count) slots from \(rest.count) bytes")
                }
            default:
                let schema = schemas[Int(selector >> 4) % schemas.count]
                _ = try corrupted("decodeRowRecord") { _ = try RecordCodec.decodeRowRecord(rest, schema: schema) }
            }
        default:
            let size = Int(input.uint16()) >> Int(selector >> 5)  // mostly small sizes
            try lz4(input.rest(), size: size)
        }
    }

    static func corrupted(_ what: String, _ body: () throws -> Void) throws -> Bool {
        do {
            try body()
            return true
        } catch let e as SextantError {
            try require(e.code == .corrupted, "\(what) threw \(e.code), not corrupted: \(e)")
            return false
        } catch let f as FuzzFailure {
            throw f
        } catch {
            throw FuzzFailure(message: "\(what) threw a non-Sextant error: \(error)")
        }
    }

    static func attributes(_ bytes: [UInt8], schema: Schema) throws {
        var row: AttributeRow? = nil
        guard try corrupted("decodeAttributes", { row = try RecordCodec.decodeAttributes(bytes, schema: schema) }), let row else { return }
        try require(row.values.count == schema.count, "decoded \(row.values.count) values for \(schema.count) fields")
        for (v, f) in zip(row.values, schema.fields) {
            try require(v.isNull || v.type == f.type, "field \(f.name) (\(f.type)) decoded as \(v)")
        }
        let encoded = RecordCodec.encodeAttributes(row, schema: schema)
        let again: AttributeRow
        do { again = try RecordCodec.decodeAttributes(encoded, schema: schema) } catch {
            throw FuzzFailure(message: "re-encoded row does not decode: \(error)")
        }
        try require(RecordCodec.encodeAttributes(again, schema: schema) == encoded, "attribute record does not round-trip: \(row.values)")
        // (Not canonical: the decoder accepts over-long varints such as 0x80 0x00 for 0, which
        // re-encode shorter; the re-encoded form must be a fixed point, checked above.)
    }

    static func collectionInfo(_ bytes: [UInt8]) throws {
        var info: CollectionInfo? = nil
        guard try corrupted("decodeCollectionInfo", { info = try RecordCodec.decodeCollectionInfo(bytes) }), let info else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let text = try? encoder.encode(info) else { return }  // e.g. a non-finite createdAt
        let again = try? RecordCodec.decodeCollectionInfo(Array(text))
        try require(again == info, "catalog entry does not round-trip through JSON: \(String(decoding: text, as: UTF8.self))")
    }

    /// A token record of `sextant.tokens`: decoded only when its length is exactly the count's.
    static func tokenRecord(_ bytes: [UInt8], dimension: Int) throws {
        for half in [false, true] {
            var tokens: [Float] = []
            guard try corrupted("decodeTokenRecord", { tokens = try RecordCodec.decodeTokenRecord(bytes, dimension: dimension, float16: half) }) else { continue }
            try require(!tokens.isEmpty && tokens.count % dimension == 0, "token record decoded \(tokens.count) components")
            try require(bytes.count == 4 + tokens.count * (half ? 2 : 4), "token record of \(bytes.count) bytes decoded \(tokens.count) components")
        }
    }

    static func lz4(_ bytes: [UInt8], size: Int) throws {
        var out: [UInt8]? = nil
        guard try corrupted("decompressLZ4", { out = try RecordCodec.decompressLZ4(bytes, size: size) }), let out else { return }
        try require(out.count == size, "LZ4 block decoded to \(out.count) bytes, asked for \(size)")
        // Garbage sizes must be rejected too.
        try require(!(try corrupted("decompressLZ4(size: -1)", { _ = try RecordCodec.decompressLZ4(bytes, size: -1) })),
                    "decompressLZ4 accepted size -1")
    }
}

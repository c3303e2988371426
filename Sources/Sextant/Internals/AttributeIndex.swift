import SextantCore
import SextantKernels
import SextantStorage

/// Secondary indexes over attributes, stored in `sextant.postings` (format version 2).
///
/// One LMDB entry per (field, value, 2^16-slot chunk), holding the slots of that chunk whose
/// field has that value:
///
/// ```
/// key   := cid(4 BE) ‖ field(2 BE) ‖ tag(1) ‖ value ‖ chunk(2 BE)
/// tag   := 0x00 live rows (field 0xFFFF, no value) | 0x01 null (no value)
///        | 0x02 value — also the vector cells of a partition layout (field 0xFFFE, int value)
///        | 0x02 value | 0x03 long string, key holds a prefix only
/// value := int     8 bytes BE, sign bit flipped            (order-preserving)
///        | double  8 bytes BE, IEEE bits with the sign bit flipped for positives and all
///                  bits flipped for negatives; -0.0 stored as +0.0  (order-preserving)
///        | bool    1 byte
///        | string  UTF-8 with 0x00 escaped as 0x00 0xFF, terminated by 0x00 0x01
///                  (order-preserving and prefix-free)
/// chunk value := 0x00 ‖ low16 LE* (strictly increasing)  — up to 4096 slots
///              | 0x01 ‖ Bitmap.serialized() of the chunk's slots (more than 4096)
/// ```
///
/// Because values are order-preserving and prefix-free, equality is a prefix lookup and
/// `<`, `BETWEEN`, … are key-range scans. List fields index each distinct element. Strings whose
/// escaped form exceeds ``maxStringKey`` bytes are indexed under a prefix (tag 0x03), so a
/// lookup there yields candidates that are checked against the row.
///
/// The chunk values were measured for LZ4: a bitset chunk of a 50 % posting over random slots
/// does not compress, array chunks compress by less than an eighth; so none is compressed.
enum AttributeIndex {
    static let liveField: UInt16 = 0xFFFF
    /// The cell (coarse-quantizer centroid) of each row's vector, when a layout has cells.
    static let cellField: UInt16 = 0xFFFE
    static let tagLive: UInt8 = 0x00
    static let tagNull: UInt8 = 0x01
    static let tagValue: UInt8 = 0x02
    static let tagLongString: UInt8 = 0x03
    /// Longest escaped string (with terminator) that is indexed exactly.
    static let maxStringKey = 256

    // MARK: Keys

    /// `cid ‖ field ‖ tag`: the start of every key of one field and tag.
    static func fieldPrefix(_ cid: UInt32, _ field: UInt16, _ tag: UInt8) -> [UInt8] {
        var k = [UInt8]()
        k.reserveCapacity(24)
        appendBE(cid, &k)
        appendBE(field, &k)
        k.append(tag)
        return k
    }

    static func appendBE<T: FixedWidthInteger>(_ v: T, _ out: inout [UInt8]) {
        withUnsafeBytes(of: v.bigEndian) { out.append(contentsOf: $0) }
    }

    static func encodeInt(_ x: Int64, _ out: inout [UInt8]) {
        appendBE(UInt64(bitPattern: x) ^ (1 << 63), &out)
    }

    static func encodeDouble(_ d: Double, _ out: inout [UInt8]) {
        let bits = (d == 0 ? 0.0 : d).bitPattern
        appendBE(bits & (1 << 63) != 0 ? ~bits : bits | (1 << 63), &out)
    }

    static func decodeOrdered64(_ p: UnsafeRawBufferPointer, _ at: Int) -> UInt64 {
        UInt64(bigEndian: p.loadUnaligned(fromByteOffset: at, as: UInt64.self))
    }

    static func decodeInt(_ u: UInt64) -> Int64 { Int64(bitPattern: u ^ (1 << 63)) }

    static func decodeDouble(_ u: UInt64) -> Double {
        Double(bitPattern: u & (1 << 63) != 0 ? u & ~(1 << 63) : ~u)
    }

    /// Appends the escaped, terminated string; returns false (appending a truncated prefix
    /// and terminator instead) when it exceeds ``maxStringKey``.
    @discardableResult
    static func encodeString(_ s: String, _ out: inout [UInt8]) -> Bool {
        let start = out.count
        for b in s.utf8 {
            out.append(b)
            if b == 0 { out.append(0xFF) }
        }
        if out.count - start + 2 <= maxStringKey {
            out.append(0); out.append(1)
            return true
        }
        var cut = start + maxStringKey - 2
        // Never end inside an escape pair.
        if out[cut - 1] == 0 { cut -= 1 }
        out.removeSubrange(cut...)
        out.append(0); out.append(1)
        return false
    }

    /// Decodes an escaped string starting at `at`; returns it and the offset after the terminator.
    static func decodeString(_ p: UnsafeRawBufferPointer, _ at: Int) -> (bytes: [UInt8], end: Int)? {
        var out = [UInt8]()
        var i = at
        while i + 1 < p.count || (i < p.count && p[i] != 0) {
            let b = p[i]
            if b != 0 { out.append(b); i += 1; continue }
            let n = p[i + 1]
            if n == 1 { return (out, i + 2) }
            if n == 0xFF { out.append(0); i += 2; continue }
            return nil
        }
        return nil
    }

    /// The key bytes after the field prefix for a value of `type` (nil for a null or an
    /// unindexable value). Returns the tag with it.
    static func valueKey(_ v: AttributeValue) -> (tag: UInt8, bytes: [UInt8])? {
        var out = [UInt8]()
        switch v {
        case .null, .stringList, .intList: return nil
        case .int(let x): encodeInt(x, &out)
        case .double(let d): encodeDouble(d, &out)
        case .bool(let b): out.append(b ? 1 : 0)
        case .string(let s):
            let exact = encodeString(s, &out)
            return (exact ? tagValue : tagLongString, out)
        }
        return (tagValue, out)
    }

    /// Every (tag ‖ value) entry a row contributes for field `i` (deduplicated for lists).
    static func entries(of value: AttributeValue, type: AttributeType) -> [[UInt8]] {
        func tagged(_ v: AttributeValue) -> [UInt8]? {
            guard let (tag, bytes) = valueKey(v) else { return nil }
            return [tag] + bytes
        }
        switch value {
        case .null: return [[tagNull]]
        case .stringList(let l):
            var seen = Set<[UInt8]>()
            var out: [[UInt8]] = []
            for s in l { if let k = tagged(.string(s)), seen.insert(k).inserted { out.append(k) } }
            return out
        case .intList(let l):
            var seen = Set<[UInt8]>()
            var out: [[UInt8]] = []
            for x in l { if let k = tagged(.int(x)), seen.insert(k).inserted { out.append(k) } }
            return out
        default:
            // An int field stores ints, a double field doubles (coercion happened on write).
            return tagged(value).map { [$0] } ?? []
        }
    }

    // MARK: Chunk values

    static func encodeChunk(_ b: Bitmap, high: UInt16) -> [UInt8] {
        let lows = b.lows(ofChunk: high)
        if lows.count <= 4096 {
            var out = [UInt8](repeating: 0, count: 1 + 2 * lows.count)
            out.withUnsafeMutableBytes { p in
                for (i, v) in lows.enumerated() { p.storeBytes(of: v.littleEndian, toByteOffset: 1 + 2 * i, as: UInt16.self) }
            }
            return out
        }
        var c = b.chunk(high)
        _ = c.runOptimize()
        return [1] + c.serialized()
    }

    static func decodeChunk(_ v: UnsafeRawBufferPointer, high: UInt16) throws(SextantError) -> Bitmap {
        guard let kind = v.first else { throw SextantError(.corrupted, "empty posting chunk") }
        switch kind {
        case 0:
            guard v.count % 2 == 1, v.count > 1 else { throw SextantError(.corrupted, "posting chunk has \(v.count) bytes") }
            let n = (v.count - 1) / 2
            var lows = [UInt16](repeating: 0, count: n)
            lows.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: v[1...])) }
            for i in 0..<n { lows[i] = UInt16(littleEndian: lows[i]) }
            guard let b = lows.withUnsafeBufferPointer({ p in try? Bitmap(high: high, sortedLows: p) }) else {
                throw SextantError(.corrupted, "posting chunk values are not strictly increasing")
            }
            return b
        case 1:
            let b: Bitmap
            do { b = try Bitmap(serialized: UnsafeRawBufferPointer(rebasing: v[1...])) } catch {
                throw SextantError(.corrupted, "posting chunk: \(error.message)")
            }
            guard b.chunkKeys == [high] else { throw SextantError(.corrupted, "posting chunk holds slots of another chunk") }
            return b
        default:
            throw SextantError(.corrupted, "posting chunk of unknown kind \(kind)")
        }
    }

    /// `cid ‖ 0xFFFE ‖ 0x02 ‖ cell`: the posting of one vector cell.
    static func cellKey(_ cid: UInt32, _ cell: Int) -> [UInt8] {
        var k = fieldPrefix(cid, cellField, tagValue)
        encodeInt(Int64(cell), &k)
        return k
    }

    // MARK: Maintenance

    /// Index changes of one write transaction, applied at its end; the last change to a
    /// (key, slot) pair wins, so a row rewritten twice in one batch ends up indexed once.
    struct Delta {
        var changes: [[UInt8]: [UInt32: Bool]] = [:]

        mutating func set(_ key: [UInt8], _ slot: UInt32, _ present: Bool) {
            changes[key, default: [:]][slot] = present
        }

        /// Adds or removes every entry of `row` at `slot`.
        mutating func row(_ row: AttributeRow, slot: UInt32, schema: Schema, cid: UInt32, present: Bool) {
            for (i, f) in schema.fields.enumerated() where f.indexed {
                let prefix = fieldPrefix(cid, UInt16(i), 0).dropLast()
                for e in entries(of: row.values[i], type: f.type) {
                    set(Array(prefix) + e, slot, present)
                }
            }
        }

        mutating func live(_ slot: UInt32, cid: UInt32, present: Bool) {
            set(fieldPrefix(cid, liveField, tagLive), slot, present)
        }

        mutating func cell(_ cell: Int, _ slot: UInt32, cid: UInt32, present: Bool) {
            set(cellKey(cid, cell), slot, present)
        }

        func apply(_ txn: Transaction, _ db: Database) throws {
            for key in changes.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                var byChunk: [UInt16: [(UInt16, Bool)]] = [:]
                for (slot, present) in changes[key]! {
                    byChunk[UInt16(truncatingIfNeeded: slot >> 16), default: []].append((UInt16(truncatingIfNeeded: slot), present))
                }
                for (high, ops) in byChunk {
                    var full = key
                    appendBE(high, &full)
                    var b = try txn.withValue(db, key: full) { v in try decodeChunk(v, high: high) } ?? Bitmap()
                    for (low, present) in ops {
                        let id = UInt32(high) << 16 | UInt32(low)
                        if present { b.insert(id) } else { b.remove(id) }
                    }
                    if b.isEmpty {
                        _ = try txn.delete(db, key: full)
                    } else {
                        try txn.put(db, key: full, value: encodeChunk(b, high: high))
                    }
                }
            }
        }
    }
}

/// Reads postings inside one transaction, counting the work for `explain` and the cost model.
final class IndexReader {
    let txn: Transaction
    let db: Database
    let cid: UInt32
    // Counted per index entry; a reader belongs to one transaction on one thread.
    @exclusivity(unchecked) private(set) var keysRead = 0
    @exclusivity(unchecked) private var liveCache: Bitmap?
    @exclusivity(unchecked) private var nonNullCache: [Int: Bitmap] = [:]

    init(txn: Transaction, db: Database, cid: UInt32) {
        self.txn = txn
        self.db = db
        self.cid = cid
    }

    /// Slots of every live row.
    func live() throws -> Bitmap {
        if let l = liveCache { return l }
        let l = try posting(AttributeIndex.fieldPrefix(cid, AttributeIndex.liveField, AttributeIndex.tagLive))
        liveCache = l
        return l
    }

    /// Slots whose vector lies in `cell` of the layout's coarse quantizer.
    func cell(_ cell: Int) throws -> Bitmap {
        try posting(AttributeIndex.cellKey(cid, cell))
    }

    /// Slots whose field `i` is null.
    func nulls(_ i: Int) throws -> Bitmap {
        try posting(AttributeIndex.fieldPrefix(cid, UInt16(i), AttributeIndex.tagNull))
    }

    /// Slots whose field `i` is not null (live minus nulls).
    func nonNull(_ i: Int) throws -> Bitmap {
        if let b = nonNullCache[i] { return b }
        let b = try live().subtracting(nulls(i))
        nonNullCache[i] = b
        return b
    }

    /// The posting list whose keys are `prefix ‖ chunk`, assembled chunk by chunk.
    func posting(_ prefix: [UInt8]) throws -> Bitmap {
        var out = Bitmap()
        try txn.scan(db, prefix: prefix) { k, v in
            guard k.count == prefix.count + 2 else { return true }  // a longer key: another value
            keysRead += 1
            let high = UInt16(bigEndian: k.loadUnaligned(fromByteOffset: prefix.count, as: UInt16.self))
            out.append(try AttributeIndex.decodeChunk(v, high: high))
            return true
        }
        return out
    }

    /// Slots of every key of field `i` (tag `tag`) from `start` (value bytes) on, while
    /// `keep(valueBytes)` says whether the value qualifies: `.match`, `.skip` or `.stop`.
    func scan(field i: Int, tag: UInt8, from start: [UInt8], _ keep: (UnsafeRawBufferPointer) -> RangeDecision) throws -> Bitmap {
        let prefix = AttributeIndex.fieldPrefix(cid, UInt16(i), tag)
        var builder = BitmapBuilder()
        var chunks = Bitmap()
        var useChunks = false
        try (prefix + start).withUnsafeBytes { s in
            try txn.scan(db, from: s) { k, v in
                guard k.count >= prefix.count + 2, k.starts(with: prefix) else { return false }
                keysRead += 1
                let value = UnsafeRawBufferPointer(rebasing: k[prefix.count..<(k.count - 2)])
                switch keep(value) {
                case .stop: return false
                case .skip: return true
                case .match: break
                }
                let high = UInt16(bigEndian: k.loadUnaligned(fromByteOffset: k.count - 2, as: UInt16.self))
                if v.first == 0 {
                    // Small chunks arrive in value order: set bits, no sorting and no unions.
                    guard v.count % 2 == 1, v.count > 1 else { throw SextantError(.corrupted, "posting chunk has \(v.count) bytes") }
                    builder.insert(high: high, lows: v, littleEndianUInt16At: 1, count: (v.count - 1) / 2)
                } else {
                    chunks.formUnion(try AttributeIndex.decodeChunk(v, high: high))
                    useChunks = true
                }
                return true
            }
        }
        let gathered = builder.build()
        return useChunks ? gathered.union(chunks) : gathered
    }

    enum RangeDecision { case match, skip, stop }
}

import SextantStorage

/// The compact binary encoding of an attribute row (format version 1).
///
/// ```
/// payload  := nullmap value*
/// nullmap  := ceil(fieldCount / 8) bytes; bit i set = field i is NOT null
/// value    := for each non-null field, in schema order:
///   string      varint(byteCount) utf8-bytes
///   int         zigzag-varint
///   double      8 bytes, IEEE-754 bits little-endian
///   bool        1 byte (0 or 1)
///   [string]    varint(count) (varint(byteCount) utf8-bytes)*
///   [int]       varint(count) zigzag-varint*
/// ```
/// The stored record wraps the payload: `flags(1)` then, when flag bit 0 (LZ4) is set,
/// `varint(payloadSize)` and an LZ4 block; otherwise the payload itself. Rows are compressed
/// only when LZ4 saves at least an eighth (long strings and tag lists do; short rows do not).
enum AttributeCodec {
    static let flagLZ4: UInt8 = 1
    /// Rows shorter than this are never worth an LZ4 attempt (measured: <1 % savings below it).
    static let compressionThreshold = 96

    static func encode(_ row: AttributeRow, schema: Schema, into out: inout [UInt8]) {
        var payload: [UInt8] = []
        payload.reserveCapacity(64)
        encodePayload(row, schema: schema, into: &payload)
        if payload.count >= compressionThreshold, let z = LZ4.compress(payload), z.count + 5 <= payload.count - payload.count / 8 {
            out.append(flagLZ4)
            appendVarint(UInt64(payload.count), to: &out)
            out.append(contentsOf: z)
        } else {
            out.append(0)
            out.append(contentsOf: payload)
        }
    }

    static func encodePayload(_ row: AttributeRow, schema: Schema, into p: inout [UInt8]) {
        let n = schema.count
        let mapStart = p.count
        p.append(contentsOf: repeatElement(0, count: (n + 7) / 8))
        for i in 0..<n {
            let v = row.values[i]
            if v.isNull { continue }
            p[mapStart + i / 8] |= UInt8(1) << UInt8(i % 8)
            switch v {
            case .null: break
            case .string(let s): appendString(s, to: &p)
            case .int(let x): appendVarint(zigzag(x), to: &p)
            case .double(let d): appendLE(d.bitPattern, to: &p)
            case .bool(let b): p.append(b ? 1 : 0)
            case .stringList(let l):
                appendVarint(UInt64(l.count), to: &p)
                for s in l { appendString(s, to: &p) }
            case .intList(let l):
                appendVarint(UInt64(l.count), to: &p)
                for x in l { appendVarint(zigzag(x), to: &p) }
            }
        }
    }

    /// Decodes a stored record's attribute part. Any inconsistency is ``SextantError/Code/corrupted``.
    static func decode(_ bytes: UnsafeRawBufferPointer, schema: Schema, only wanted: [Bool]? = nil) throws -> AttributeRow {
        var r = ByteReader(bytes)
        let flags = try r.byte()
        if flags & ~flagLZ4 != 0 { throw SextantError(.corrupted, "attribute record has unknown flags \(flags)") }
        if flags & flagLZ4 != 0 {
            let size = try r.varint()
            guard size <= UInt64(1 << 26) else { throw SextantError(.corrupted, "attribute record claims \(size) bytes") }
            let raw = try LZ4.decompress(r.rest(), originalSize: Int(size))
            return try raw.withUnsafeBytes { p in
                var pr = ByteReader(p)
                return try decodePayload(&pr, schema: schema, only: wanted)
            }
        }
        return try decodePayload(&r, schema: schema, only: wanted)
    }

    /// Decodes the payload; with `wanted`, fields not wanted are skipped (validated for length
    /// only, not materialised) and read as null.
    static func decodePayload(_ r: inout ByteReader, schema: Schema, only wanted: [Bool]? = nil) throws(SextantError) -> AttributeRow {
        let n = schema.count
        let mapBytes = (n + 7) / 8
        let map = try r.bytes(mapBytes)
        var row = AttributeRow(nullsFor: n)
        for i in 0..<n where map[i / 8] & (UInt8(1) << UInt8(i % 8)) != 0 {
            if let wanted, !wanted[i] {
                try skip(&r, schema.fields[i].type)
                continue
            }
            switch schema.fields[i].type {
            case .string: row.values[i] = .string(try r.string())
            case .int: row.values[i] = .int(unzigzag(try r.varint()))
            case .double: row.values[i] = .double(Double(bitPattern: try r.uint64LE()))
            case .bool:
                let b = try r.byte()
                guard b <= 1 else { throw SextantError(.corrupted, "bool attribute holds \(b)") }
                row.values[i] = .bool(b == 1)
            case .stringList:
                let c = try r.count(minimumBytesEach: 1)
                var l: [String] = []
                l.reserveCapacity(c)
                for _ in 0..<c { l.append(try r.string()) }
                row.values[i] = .stringList(l)
            case .intList:
                let c = try r.count(minimumBytesEach: 1)
                var l: [Int64] = []
                l.reserveCapacity(c)
                for _ in 0..<c { l.append(unzigzag(try r.varint())) }
                row.values[i] = .intList(l)
            }
        }
        // Bits past the last field must be clear; bytes past the last value must not exist.
        if n % 8 != 0, map[mapBytes - 1] >> UInt8(n % 8) != 0 {
            throw SextantError(.corrupted, "attribute null map has bits past the last field")
        }
        guard r.isAtEnd else { throw SextantError(.corrupted, "attribute record has \(r.remaining) trailing bytes") }
        return row
    }

    /// Steps over one encoded value without building it.
    static func skip(_ r: inout ByteReader, _ type: AttributeType) throws(SextantError) {
        switch type {
        case .string: _ = try r.bytes(try r.count(minimumBytesEach: 1))
        case .int: _ = try r.varint()
        case .double: _ = try r.bytes(8)
        case .bool: _ = try r.byte()
        case .stringList:
            let c = try r.count(minimumBytesEach: 1)
            for _ in 0..<c { _ = try r.bytes(try r.count(minimumBytesEach: 1)) }
        case .intList:
            let c = try r.count(minimumBytesEach: 1)
            for _ in 0..<c { _ = try r.varint() }
        }
    }

    @inline(__always) static func zigzag(_ x: Int64) -> UInt64 { UInt64(bitPattern: (x << 1) ^ (x >> 63)) }
    @inline(__always) static func unzigzag(_ u: UInt64) -> Int64 { Int64(bitPattern: u >> 1) ^ -Int64(bitPattern: u & 1) }

    static func appendVarint(_ v: UInt64, to out: inout [UInt8]) {
        var v = v
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    static func appendString(_ s: String, to out: inout [UInt8]) {
        var s = s
        s.withUTF8 { u in
            appendVarint(UInt64(u.count), to: &out)
            out.append(contentsOf: u)
        }
    }

    static func appendLE<T: FixedWidthInteger>(_ v: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }
}

/// A bounds-checked reader over untrusted bytes: every read that would overrun throws
/// ``SextantError/Code/corrupted`` instead of trapping.
struct ByteReader {
    let base: UnsafeRawBufferPointer
    var offset = 0

    init(_ base: UnsafeRawBufferPointer) { self.base = base }

    var isAtEnd: Bool { offset == base.count }
    var remaining: Int { base.count - offset }

    private func short(_ what: String) -> SextantError {
        SextantError(.corrupted, "record ends early reading \(what)", context: ["offset": String(offset), "size": String(base.count)])
    }

    mutating func byte() throws(SextantError) -> UInt8 {
        guard offset < base.count else { throw short("a byte") }
        defer { offset += 1 }
        return base[offset]
    }

    mutating func bytes(_ n: Int) throws(SextantError) -> UnsafeRawBufferPointer {
        guard n >= 0, n <= remaining else { throw short("\(n) bytes") }
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: base[offset..<offset + n])
    }

    mutating func rest() -> UnsafeRawBufferPointer {
        defer { offset = base.count }
        return UnsafeRawBufferPointer(rebasing: base[offset...])
    }

    mutating func varint() throws(SextantError) -> UInt64 {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try byte()
            if shift == 63 && b > 1 { throw SextantError(.corrupted, "varint overflows 64 bits", context: ["offset": String(offset)]) }
            v |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 {
                // One encoding per value: a final zero byte after others is an over-long form.
                if b == 0 && shift > 0 { throw SextantError(.corrupted, "over-long varint", context: ["offset": String(offset)]) }
                return v
            }
            shift += 7
            if shift > 63 { throw SextantError(.corrupted, "varint too long", context: ["offset": String(offset)]) }
        }
    }

    /// A count of items that each take at least `minimumBytesEach` bytes (rejects absurd counts early).
    mutating func count(minimumBytesEach: Int) throws(SextantError) -> Int {
        let c = try varint()
        guard c <= UInt64(remaining / max(minimumBytesEach, 1)) else {
            throw SextantError(.corrupted, "count \(c) exceeds the record", context: ["offset": String(offset)])
        }
        return Int(c)
    }

    mutating func string() throws(SextantError) -> String {
        let n = try count(minimumBytesEach: 1)
        let b = try bytes(n)
        guard let s = String(validating: b, as: UTF8.self) else {
            throw SextantError(.corrupted, "string attribute is not valid UTF-8", context: ["offset": String(offset)])
        }
        return s
    }

    mutating func uint64LE() throws(SextantError) -> UInt64 {
        let b = try bytes(8)
        return UInt64(littleEndian: b.loadUnaligned(as: UInt64.self))
    }

    mutating func uint32LE() throws(SextantError) -> UInt32 {
        let b = try bytes(4)
        return UInt32(littleEndian: b.loadUnaligned(as: UInt32.self))
    }
}

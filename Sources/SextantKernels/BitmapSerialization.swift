// Serialized bitmap format (version 1). All integers little-endian.
//
//   header:   UInt8  version (= 1)
//             UInt32 containerCount (0...65536)
//   then containerCount containers, keys strictly increasing:
//             UInt16 key            high 16 bits of the ids in this container
//             UInt8  kind           0 = array, 1 = bitset, 2 = run
//             UInt32 cardinality    number of ids in the container (1...65536)
//             payload:
//               array  (cardinality 1...4096):   cardinality x UInt16, strictly increasing
//               bitset (cardinality 4097...65536): 1024 x UInt64 words, bit (v & 63) of word
//                      (v >> 6) set for low value v; popcount must equal cardinality
//               run:   UInt16 runCount (>= 1), then runCount x (UInt16 start,
//                      UInt16 lengthMinusOne) covering start...start+lengthMinusOne;
//                      each run ends <= 65535, runs are sorted and separated by at least one
//                      absent value (no overlap, no adjacency); lengths sum to cardinality
//   The buffer must end exactly after the last container.
// `init(serialized:)` validates every rule above and throws `BitmapError` (never traps).

/// A malformed serialized bitmap: what was wrong and the byte offset where it was detected.
public struct BitmapError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var offset: Int

    public init(message: String, offset: Int) {
        self.message = message
        self.offset = offset
    }

    public var description: String { "BitmapError at byte \(offset): \(message)" }
}

extension Bitmap {
    /// The format version written by `serialized()`.
    public static let serializationVersion: UInt8 = 1

    static let headerBytes = 5
    static let containerHeaderBytes = 7

    /// Exact size of `serialized()`.
    public var serializedByteCount: Int {
        var n = Self.headerBytes
        for c in containers {
            n += Self.containerHeaderBytes
            switch c {
            case .array(let a): n += BitmapContainer.arrayBytes(a.count)
            case .bitset: n += BitmapContainer.bitsetBytes
            case .run(let r, _): n += BitmapContainer.runBytes(r.count)
            }
        }
        return n
    }

    /// The bitmap in the documented little-endian format (see the top of BitmapSerialization.swift).
    public func serialized() -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(serializedByteCount)
        @inline(__always) func put16(_ v: UInt16) {
            out.append(UInt8(truncatingIfNeeded: v))
            out.append(UInt8(truncatingIfNeeded: v >> 8))
        }
        @inline(__always) func put32(_ v: UInt32) {
            for s in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: v >> UInt32(s))) }
        }
        out.append(Self.serializationVersion)
        put32(UInt32(keys.count))
        for i in 0..<keys.count {
            var c = containers[i]
            // Arrays above 4096 or bitsets at or below never exist; normalise defensively.
            if case .bitset(let w, let n) = c, n <= BitmapContainer.arrayMax {
                c = .array(BitmapContainer.array(fromWords: w, count: n))
            }
            put16(keys[i])
            out.append(c.kind.rawValue)
            put32(UInt32(c.cardinality))
            switch c {
            case .array(let a):
                for v in a { put16(v) }
            case .bitset(let w, _):
                for x in w {
                    for s in stride(from: 0, to: 64, by: 8) { out.append(UInt8(truncatingIfNeeded: x >> UInt64(s))) }
                }
            case .run(let r, _):
                put16(UInt16(r.count))
                for run in r { put16(run.start); put16(run.lengthMinusOne) }
            }
        }
        return out
    }

    /// Parses and fully validates `serialized()` output. Hostile input throws, never traps.
    public init(serialized bytes: UnsafeRawBufferPointer) throws(BitmapError) {
        var reader = BitmapReader(bytes: bytes)
        let version = try reader.u8()
        guard version == Self.serializationVersion else {
            throw BitmapError(message: "unsupported version \(version)", offset: 0)
        }
        let count = Int(try reader.u32())
        guard count <= 65536 else {
            throw BitmapError(message: "container count \(count) exceeds 65536", offset: 1)
        }
        // Each container takes at least 9 bytes; refuse counts the buffer cannot hold before
        // reserving anything.
        guard count <= reader.remaining / (Self.containerHeaderBytes + 2) else {
            throw BitmapError(message: "container count \(count) exceeds the buffer", offset: 1)
        }
        var keys = [UInt16]()
        var containers = [BitmapContainer]()
        keys.reserveCapacity(count)
        containers.reserveCapacity(count)
        for _ in 0..<count {
            let start = reader.offset
            let key = try reader.u16()
            if let last = keys.last, key <= last {
                throw BitmapError(message: "container key \(key) not greater than previous key \(last)", offset: start)
            }
            let kindOffset = reader.offset
            let kindByte = try reader.u8()
            let cardOffset = reader.offset
            let card = Int(try reader.u32())
            guard card >= 1 && card <= 65536 else {
                throw BitmapError(message: "cardinality \(card) outside 1...65536", offset: cardOffset)
            }
            switch BitmapContainerKind(rawValue: kindByte) {
            case .array: containers.append(try Self.readArray(&reader, card: card, cardOffset: cardOffset))
            case .bitset: containers.append(try Self.readBitset(&reader, card: card, cardOffset: cardOffset))
            case .run: containers.append(try Self.readRuns(&reader, card: card, cardOffset: cardOffset))
            case nil: throw BitmapError(message: "unknown container kind \(kindByte)", offset: kindOffset)
            }
            keys.append(key)
        }
        guard reader.remaining == 0 else {
            throw BitmapError(message: "\(reader.remaining) trailing bytes", offset: reader.offset)
        }
        self.init(keys: keys, containers: containers)
    }

    /// An array container's payload: `card` strictly increasing values.
    private static func readArray(_ reader: inout BitmapReader, card: Int, cardOffset: Int) throws(BitmapError) -> BitmapContainer {
        guard card <= BitmapContainer.arrayMax else {
            throw BitmapError(message: "array container with \(card) values (max 4096)", offset: cardOffset)
        }
        try reader.need(2 * card)
        var a = [UInt16]()
        a.reserveCapacity(card)
        for _ in 0..<card {
            let o = reader.offset
            let v = try reader.u16()
            if let p = a.last, v <= p {
                throw BitmapError(message: "array values not strictly increasing (\(v) after \(p))", offset: o)
            }
            a.append(v)
        }
        return .array(a)
    }

    /// A bitset container's payload: its words, whose population must be `card`.
    private static func readBitset(_ reader: inout BitmapReader, card: Int, cardOffset: Int) throws(BitmapError) -> BitmapContainer {
        guard card > BitmapContainer.arrayMax else {
            throw BitmapError(message: "bitset container with \(card) values (min 4097)", offset: cardOffset)
        }
        let payload = reader.offset
        try reader.need(8 * BitmapContainer.wordCount)
        var w = [UInt64](repeating: 0, count: BitmapContainer.wordCount)
        var pop = 0
        for i in 0..<BitmapContainer.wordCount {
            let x = try reader.u64()
            w[i] = x
            pop += x.nonzeroBitCount
        }
        guard pop == card else {
            throw BitmapError(message: "bitset popcount \(pop) differs from cardinality \(card)", offset: payload)
        }
        return .bitset(w, card)
    }

    /// A run container's payload: disjoint, non-touching, increasing runs summing to `card`.
    private static func readRuns(_ reader: inout BitmapReader, card: Int, cardOffset: Int) throws(BitmapError) -> BitmapContainer {
        let nOffset = reader.offset
        let n = Int(try reader.u16())
        guard n >= 1 && n <= 32768 else {
            throw BitmapError(message: "run count \(n) outside 1...32768", offset: nOffset)
        }
        try reader.need(4 * n)
        var r = [BitmapRun]()
        r.reserveCapacity(n)
        var total = 0
        for _ in 0..<n {
            let o = reader.offset
            let s = try reader.u16()
            let l = try reader.u16()
            let run = BitmapRun(start: s, lengthMinusOne: l)
            guard run.end <= 0xFFFF else {
                throw BitmapError(message: "run \(s)+\(l) ends past 65535", offset: o)
            }
            if let p = r.last, UInt32(s) <= p.end + 1 {
                throw BitmapError(message: "run starting at \(s) overlaps or touches the previous run", offset: o)
            }
            total += run.length
            r.append(run)
        }
        guard total == card else {
            throw BitmapError(message: "run lengths sum to \(total), cardinality is \(card)", offset: cardOffset)
        }
        return .run(r, card)
    }

    /// Convenience over `init(serialized: UnsafeRawBufferPointer)`.
    public init(serialized bytes: [UInt8]) throws(BitmapError) {
        var result: Result<Bitmap, BitmapError> = .success(Bitmap())
        bytes.withUnsafeBytes { raw in
            do throws(BitmapError) {
                result = .success(try Bitmap(serialized: raw))
            } catch {
                result = .failure(error)
            }
        }
        self = try result.get()
    }
}

/// Bounds-checked little-endian reader.
struct BitmapReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    var remaining: Int { bytes.count - offset }

    func need(_ n: Int) throws(BitmapError) {
        guard n >= 0 && n <= remaining else {
            throw BitmapError(message: "truncated: need \(n) bytes, \(remaining) left", offset: offset)
        }
    }

    mutating func u8() throws(BitmapError) -> UInt8 {
        try need(1)
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func u16() throws(BitmapError) -> UInt16 {
        try need(2)
        defer { offset += 2 }
        return UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    mutating func u32() throws(BitmapError) -> UInt32 {
        try need(4)
        defer { offset += 4 }
        return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    mutating func u64() throws(BitmapError) -> UInt64 {
        try need(8)
        defer { offset += 8 }
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
}

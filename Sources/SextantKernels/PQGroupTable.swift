import CSextantSIMD

/// A query's 8-bit ADC table quantized to bytes for group scans: entry `(j, c)` is
/// `round((table[j][c] − min_j) · scale)`, so a code's sum of entries `s` approximates its
/// float distance as `s / scale + offset`, within ``maxError``.
public struct PQByteTable: Sendable {
    /// Sub-spaces (`m`).
    public let subspaceCount: Int
    /// `subspaceCount × 256` quantized entries.
    public let entries: [UInt8]
    /// Quantization steps per distance unit (255 over the widest sub-space's range).
    public let scale: Float
    /// Added after dividing a sum by ``scale`` (the sub-spaces' minima and the table's bias).
    public let offset: Float

    /// Quantizes an 8-bit float table.
    public init(_ table: PQDistanceTable) {
        precondition(table.bits == 8, "needs an 8-bit table")
        self = table.values.withUnsafeBufferPointer { PQByteTable(values: $0.baseAddress!, subspaceCount: table.subspaceCount, bias: table.bias) }
    }

    /// The quantized table of `query` for an 8-bit quantizer: the same as quantizing
    /// ``ProductQuantizer/distanceTable(query:)-(UnsafeBufferPointer<Float>)``, without keeping
    /// (or allocating anew) the float table.
    public init(_ pq: ProductQuantizer, query: UnsafeBufferPointer<Float>) {
        precondition(pq.bits == 8, "needs an 8-bit quantizer")
        let count = pq.subspaceCount * pq.centroidCount
        self = withUnsafeTemporaryAllocation(of: Float.self, capacity: count) { scratch in
            pq.fillDistanceTable(query: query, into: scratch.baseAddress!)
            return PQByteTable(values: scratch.baseAddress!, subspaceCount: pq.subspaceCount, bias: pq.metric == .cosine ? 1 : 0)
        }
    }

    private init(values: UnsafePointer<Float>, subspaceCount m: Int, bias: Float) {
        precondition(m <= 257, "16-bit sums hold at most 257 sub-spaces")
        var scale: Float = 1, offset: Float = 0
        entries = [UInt8](unsafeUninitializedCapacity: m * 256) { out, initialized in
            sextant_quantize_table(values, m, 256, out.baseAddress!, &scale, &offset)
            initialized = m * 256
        }
        subspaceCount = m
        self.scale = scale
        self.offset = offset + bias
    }

    /// Bound on `|dequantized − float ADC|` from the byte rounding: `m / (2 · scale)`.
    public var maxError: Float { 0.5 * Float(subspaceCount) / scale }

    /// The approximate distance of a sum.
    @inlinable
    public func distance(sum: UInt16) -> Float { Float(sum) / scale + offset }
}

/// Up to 32 queries' quantized 8-bit ADC tables (``PQByteTable``), interleaved so that one pass
/// over codes scores every query at once: entry `c` of sub-space `j` of all lanes is 32
/// contiguous bytes, so a code costs `m` reads for the whole group where one-query scans read
/// `32 · m` scattered floats, and the table (`m · 8` KiB) stays in L2. Sums are exact integers
/// of the quantized entries, the same on every path.
///
/// One buffer is reused as groups are loaded in turn: a shared pass loads each block of 32
/// queries once and scans all its candidates' codes with it.
public final class PQGroupTable {
    /// Queries scored per pass.
    public static let lanes = 32
    /// Sub-spaces (`m`).
    public let subspaceCount: Int
    /// Lanes loaded by the last ``load(_:)``.
    public private(set) var count = 0
    private let storage: UnsafeMutablePointer<UInt8>

    /// An empty table for codes of `subspaceCount` (at most 257) 8-bit sub-spaces.
    public init(subspaceCount: Int) {
        precondition(subspaceCount > 0 && subspaceCount <= 257, "1 to 257 sub-spaces")
        self.subspaceCount = subspaceCount
        let bytes = subspaceCount * 256 * Self.lanes
        // 64-byte alignment: an entry never straddles a line, and the AVX2 loads are aligned.
        storage = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64).bindMemory(to: UInt8.self, capacity: bytes)
        storage.initialize(repeating: 0, count: bytes)
    }

    deinit { storage.deallocate() }

    /// Interleaves 1…32 tables of this sub-space count into lanes `0..<tables.count`; the other
    /// lanes repeat the first table and their sums mean nothing.
    public func load(_ tables: [PQByteTable]) {
        precondition(!tables.isEmpty && tables.count <= Self.lanes, "1 to 32 tables")
        precondition(tables.allSatisfy { $0.subspaceCount == subspaceCount }, "tables of another sub-space count")
        let entries = (0..<Self.lanes).map { tables[$0 < tables.count ? $0 : 0].entries }
        Self.withPointers(entries, [], 0) { sextant_interleave32($0, subspaceCount * 256, storage) }
        count = tables.count
    }

    /// Calls `body` with the base addresses of `arrays` (kept alive and still while it runs).
    private static func withPointers<R>(_ arrays: [[UInt8]], _ bases: [UnsafePointer<UInt8>?], _ i: Int,
                                        _ body: (UnsafePointer<UnsafePointer<UInt8>?>) -> R) -> R {
        guard i < arrays.count else { return bases.withUnsafeBufferPointer { body($0.baseAddress!) } }
        return arrays[i].withUnsafeBufferPointer { withPointers(arrays, bases + [$0.baseAddress], i + 1, body) }
    }

    /// Sums of every listed code (``subspaceCount`` bytes at each address) for all 32 lanes:
    /// code `i`'s lane `l` goes to `out[32 · i + l]`; `out` holds `32 · codes.count` values.
    public func sums(codes: UnsafeBufferPointer<UnsafeRawPointer>, into out: UnsafeMutablePointer<UInt16>, portable: Bool = false) {
        guard let base = codes.baseAddress, !codes.isEmpty else { return }
        // An array of non-optional raw pointers is laid out as the C `const void *const *`.
        base.withMemoryRebound(to: UnsafeRawPointer?.self, capacity: codes.count) { list in
            if portable {
                sextant_adc8_group32_scalar(storage, subspaceCount, list, codes.count, out)
            } else {
                sextant_adc8_group32(storage, subspaceCount, list, codes.count, out)
            }
        }
    }

    /// The selection after ``sums(codes:into:portable:)``: the positions `32 · i + l` (ascending)
    /// of sums at or below lane `l`'s limit among `rows` rows, written to `hits` (room for
    /// `32 · rows`); returns how many.
    public static func atMost(_ sums: UnsafePointer<UInt16>, rows: Int, limits: UnsafePointer<UInt16>,
                              into hits: UnsafeMutablePointer<UInt32>) -> Int {
        sextant_lanes_at_most(sums, rows, limits, hits)
    }
}

/// Collects ids in any order into a ``Bitmap`` without sorting: each touched 2^16 chunk gets a
/// bitset while building (8 KiB), converted to its compact container at the end. For gathering
/// the slots of many index entries in value order, which are not in id order.
public struct BitmapBuilder {
    /// One 65,536-bit page per high key met, back to back (page `i` at word `i * 1024`);
    /// `page[high]` is the page's index plus one (0: none yet). A range scan adds thousands of
    /// small posting chunks cycling through the same few high keys, so the lookup is an array
    /// index, not a hash.
    private var words: [UInt64] = []
    private var page: [Int32] = []
    private var highs: [UInt16] = []

    public init() {}

    /// The word offset of `high`'s page, created when new.
    @inline(__always)
    private mutating func offset(of high: UInt16) -> Int {
        let h = Int(high)
        if h >= page.count { page.append(contentsOf: repeatElement(0, count: h + 1 - page.count)) }
        if page[h] == 0 {
            highs.append(high)
            page[h] = Int32(highs.count)
            words.append(contentsOf: repeatElement(0, count: BitmapContainer.wordCount))
        }
        return (Int(page[h]) - 1) * BitmapContainer.wordCount
    }

    public mutating func insert(_ id: UInt32) {
        let base = offset(of: UInt16(truncatingIfNeeded: id >> 16))
        let low = Int(id & 0xFFFF)
        words[base + (low >> 6)] |= 1 << UInt64(low & 63)
    }

    /// Inserts `high << 16 | low` for every low value.
    public mutating func insert(high: UInt16, lows: UnsafeRawBufferPointer, littleEndianUInt16At offset: Int, count: Int) {
        let base = self.offset(of: high)
        words.withUnsafeMutableBufferPointer { p in
            for j in 0..<count {
                let low = Int(UInt16(littleEndian: lows.loadUnaligned(fromByteOffset: offset + 2 * j, as: UInt16.self)))
                p[base + (low >> 6)] |= 1 << UInt64(low & 63)
            }
        }
    }

    public func build() -> Bitmap {
        var b = Bitmap()
        for high in highs.sorted() {
            let base = (Int(page[Int(high)]) - 1) * BitmapContainer.wordCount
            let w = Array(words[base..<(base + BitmapContainer.wordCount)])
            var n = 0
            for x in w { n += x.nonzeroBitCount }
            if let c = BitmapContainer.fromWords(w, count: n) {
                b.keys.append(high)
                b.containers.append(c)
            }
        }
        return b
    }
}

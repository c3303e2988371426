/// A flat bitset over `0..<bound`: one bit per id, constant-time membership. For hot loops
/// that test many ids against one set (graph traversal); ``Bitmap`` stays the compact form.
public struct DenseBitset: Sendable {
    @usableFromInline let words: [UInt64]

    /// The members of `bitmap` below `bound` (ids at or above it are left out).
    ///
    /// Built container by container: a bitset container is its 1,024 words copied, a run
    /// container whole words at a time, so a predicate matching half of a million rows costs
    /// a copy of 125 KB rather than half a million single-bit updates (a filtered graph
    /// search builds one per query).
    public init(_ bitmap: Bitmap, bound: UInt32) {
        var none: [UInt64] = []
        self.init(bitmap, bound: bound, reusing: &none)
    }

    /// As ``init(_:bound:)``, in `storage`'s memory (taken; left empty): a search that builds
    /// one per query then neither allocates nor faults in 125 KB of fresh pages per million
    /// rows each time. Hand the memory back with ``storage``.
    public init(_ bitmap: Bitmap, bound: UInt32, reusing storage: inout [UInt64]) {
        let count = (Int(bound) + 63) / 64
        var w: [UInt64] = []
        swap(&w, &storage)
        // Reused memory is cleared only where no bitset container overwrites it whole.
        let reused = w.count == count
        if !reused { w = [UInt64](repeating: 0, count: count) }
        w.withUnsafeMutableBufferPointer { p in
            var cleared = 0
            func clear(upTo end: Int) {
                if reused && cleared < end { (p.baseAddress! + cleared).update(repeating: 0, count: end - cleared) }
                cleared = Swift.max(cleared, end)
            }
            for (key, container) in zip(bitmap.keys, bitmap.containers) {
                let base = Int(key) << 10
                guard base < count else { break }
                let end = Swift.min(base + 1024, count)
                switch container {
                case .array(let values):
                    clear(upTo: end)
                    for v in values {
                        let i = base + Int(v >> 6)
                        if i < count { p[i] |= 1 << UInt64(v & 63) }
                    }
                case .bitset(let words, _):
                    clear(upTo: base)
                    for j in 0..<Swift.min(words.count, count - base) { p[base + j] = words[j] }
                    cleared = Swift.max(cleared, base + Swift.min(words.count, count - base))
                case .run(let runs, _):
                    clear(upTo: end)
                    for r in runs { Self.setRange(p, from: base * 64 + Int(r.start), through: base * 64 + Int(r.end)) }
                }
            }
            clear(upTo: count)
            // Ids at or above `bound` that shared the last word with ids below it.
            if bound % 64 != 0, count > 0 { p[count - 1] &= (1 << UInt64(bound % 64)) - 1 }
        }
        words = w
    }

    /// Sets bits `lo...hi` (clipped to the buffer).
    private static func setRange(_ p: UnsafeMutableBufferPointer<UInt64>, from lo: Int, through hi: Int) {
        let last = Swift.min(hi, p.count * 64 - 1)
        guard lo <= last else { return }
        let (wl, wh) = (lo >> 6, last >> 6)
        let low: UInt64 = ~0 << UInt64(lo & 63)
        let high: UInt64 = ~0 >> UInt64(63 - (last & 63))
        if wl == wh {
            p[wl] |= low & high
            return
        }
        p[wl] |= low
        if wl + 1 < wh { for i in (wl + 1)..<wh { p[i] = ~0 } }
        p[wh] |= high
    }

    /// The words, for reuse by a later bitset once this one is dropped.
    public var storage: [UInt64] { words }

    @inlinable @inline(__always)
    public func contains(_ id: UInt32) -> Bool {
        let i = Int(id >> 6)
        return i < words.count && words[i] & (1 << UInt64(id & 63)) != 0
    }
}

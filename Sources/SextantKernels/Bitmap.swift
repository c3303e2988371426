/// A compressed set of `UInt32` ids in the style of Roaring bitmaps.
///
/// Ids are split into a high 16-bit key and a low 16-bit value. Each key present owns one
/// container holding its low values as a sorted array (up to 4096 values), a 65536-bit bitset,
/// or a list of runs (after `runOptimize()`, `init(range:)` or complements). Set algebra works
/// container by container. Equality and hashing are by content, independent of representation.
public struct Bitmap: Sendable, Hashable, Sequence {
    /// High keys, strictly increasing; `containers[i]` belongs to `keys[i]` and is never empty.
    var keys: [UInt16]
    var containers: [BitmapContainer]

    init(keys: [UInt16], containers: [BitmapContainer]) {
        self.keys = keys
        self.containers = containers
    }

    /// The empty bitmap.
    public init() {
        keys = []
        containers = []
    }

    /// A bitmap holding every id of `range` (stored as runs: O(number of 2^16 chunks)).
    public init(range: Range<UInt32>) {
        self.init()
        guard !range.isEmpty else { return }
        appendRange(range.lowerBound, range.upperBound - 1)
    }

    /// A bitmap holding every id of `range`.
    public init(range: ClosedRange<UInt32>) {
        self.init()
        appendRange(range.lowerBound, range.upperBound)
    }

    private mutating func appendRange(_ lo: UInt32, _ hi: UInt32) {
        let hk = hi >> 16
        var k = lo >> 16
        while true {
            let l = k == lo >> 16 ? UInt16(truncatingIfNeeded: lo) : 0
            let h = k == hk ? UInt16(truncatingIfNeeded: hi) : 0xFFFF
            keys.append(UInt16(k))
            containers.append(.range(l, h))
            if k == hk { break }
            k += 1
        }
    }

    /// A bitmap of the ids in `elements` (any order, duplicates allowed). Sorted input is
    /// detected and built in one pass.
    public init<S: Sequence>(_ elements: S) where S.Element == UInt32 {
        var values = Array(elements)
        var sorted = true
        values.withUnsafeBufferPointer { p in
            if p.count > 1 {
                for i in 1..<p.count where p[i] < p[i - 1] { sorted = false; break }
            }
        }
        if !sorted { values.sort() }
        self.init(sortedValues: values)
    }

    /// Builds from ascending values (duplicates allowed).
    init(sortedValues values: [UInt32]) {
        self.init()
        values.withUnsafeBufferPointer { p in
            var i = 0
            var low = [UInt16]()
            while i < p.count {
                let key = UInt16(truncatingIfNeeded: p[i] >> 16)
                low.removeAll(keepingCapacity: true)
                while i < p.count && p[i] >> 16 == UInt32(key) {
                    let v = UInt16(truncatingIfNeeded: p[i])
                    if low.last != v { low.append(v) }
                    i += 1
                }
                keys.append(key)
                containers.append(.fromSorted(low))
            }
        }
    }

    // MARK: Lookup helpers

    /// Index of `key` in `keys`, or the insertion point (negative-encoded as `-(i + 1)`).
    @inline(__always)
    func index(ofKey key: UInt16) -> Int {
        var lo = 0, hi = keys.count
        while lo < hi {
            let m = (lo &+ hi) &>> 1
            if keys[m] < key { lo = m &+ 1 } else { hi = m }
        }
        if lo < keys.count && keys[lo] == key { return lo }
        return -(lo + 1)
    }

    // MARK: Basic queries

    /// Number of ids (sum of the cached container cardinalities).
    public var count: Int {
        var n = 0
        for c in containers { n += c.cardinality }
        return n
    }

    public var isEmpty: Bool { keys.isEmpty }

    /// The exact count: O(number of containers).
    public var underestimatedCount: Int { count }

    public func contains(_ id: UInt32) -> Bool {
        let i = index(ofKey: UInt16(truncatingIfNeeded: id >> 16))
        return i >= 0 && containers[i].contains(UInt16(truncatingIfNeeded: id))
    }

    /// The smallest id, or nil when empty.
    public func min() -> UInt32? {
        guard let k = keys.first else { return nil }
        return UInt32(k) << 16 | UInt32(containers[0].minimum)
    }

    /// The largest id, or nil when empty.
    public func max() -> UInt32? {
        guard let k = keys.last else { return nil }
        return UInt32(k) << 16 | UInt32(containers[containers.count - 1].maximum)
    }

    // MARK: Mutation

    /// Inserts `id`; returns whether it was absent.
    @discardableResult
    public mutating func insert(_ id: UInt32) -> Bool {
        let key = UInt16(truncatingIfNeeded: id >> 16), low = UInt16(truncatingIfNeeded: id)
        let i = index(ofKey: key)
        if i >= 0 { return containers[i].insert(low) }
        let at = -(i + 1)
        keys.insert(key, at: at)
        containers.insert(.array([low]), at: at)
        return true
    }

    /// Removes `id`; returns whether it was present.
    @discardableResult
    public mutating func remove(_ id: UInt32) -> Bool {
        let i = index(ofKey: UInt16(truncatingIfNeeded: id >> 16))
        guard i >= 0 else { return false }
        let removed = containers[i].remove(UInt16(truncatingIfNeeded: id))
        if removed && containers[i].cardinality == 0 {
            keys.remove(at: i)
            containers.remove(at: i)
        }
        return removed
    }

    /// Removes every id.
    public mutating func removeAll() {
        keys.removeAll()
        containers.removeAll()
    }

    /// Converts every container to its smallest representation (run containers where runs are
    /// smaller than an array or bitset, and back). Returns whether any container changed kind.
    @discardableResult
    public mutating func runOptimize() -> Bool {
        var changed = false
        for i in containers.indices {
            let before = containers[i].kind
            containers[i] = containers[i].optimized()
            if containers[i].kind != before { changed = true }
        }
        return changed
    }

    /// `runOptimize()` plus releasing excess array capacity; call before persisting.
    public mutating func optimize() {
        runOptimize()
        keys = Array(keys)
        for i in containers.indices {
            if case .array(let a) = containers[i], a.capacity > a.count {
                containers[i] = .array(Array(a))
            }
        }
    }

    /// Container counts by kind (for diagnostics and size reporting).
    public var statistics: BitmapStatistics {
        var s = BitmapStatistics()
        for c in containers {
            switch c {
            case .array: s.arrayContainers += 1
            case .bitset: s.bitsetContainers += 1
            case .run: s.runContainers += 1
            }
        }
        s.serializedByteCount = serializedByteCount
        return s
    }

    // MARK: Sequence

    /// Ascending iteration; no allocation per element.
    public struct Iterator: IteratorProtocol {
        let keys: [UInt16]
        let containers: [BitmapContainer]
        var ci = -1
        var high: UInt32 = 0
        var kind = BitmapContainerKind.array
        var array: [UInt16] = []
        var words: [UInt64] = []
        var runs: [BitmapRun] = []
        var pos = 0
        var word: UInt64 = 0
        var runNext: UInt32 = 1
        var runEnd: UInt32 = 0

        init(_ b: Bitmap) {
            keys = b.keys
            containers = b.containers
        }

        mutating func advanceContainer() -> Bool {
            ci += 1
            guard ci < containers.count else {
                array = []; words = []; runs = []
                return false
            }
            high = UInt32(keys[ci]) << 16
            pos = 0
            switch containers[ci] {
            case .array(let a):
                kind = .array; array = a
            case .bitset(let w, _):
                kind = .bitset; words = w; word = w[0]
            case .run(let r, _):
                kind = .run; runs = r
                runNext = UInt32(r[0].start); runEnd = r[0].end
            }
            return true
        }

        public mutating func next() -> UInt32? {
            while true {
                if ci >= 0 {
                    switch kind {
                    case .array:
                        if pos < array.count {
                            let v = array[pos]
                            pos &+= 1
                            return high | UInt32(v)
                        }
                    case .bitset:
                        while word == 0 && pos < BitmapContainer.wordCount - 1 {
                            pos &+= 1
                            word = words[pos]
                        }
                        if word != 0 {
                            let v = UInt32(pos &<< 6) | UInt32(word.trailingZeroBitCount)
                            word &= word &- 1
                            return high | v
                        }
                    case .run:
                        if runNext <= runEnd {
                            let v = runNext
                            runNext &+= 1
                            return high | v
                        }
                        pos &+= 1
                        if pos < runs.count {
                            runNext = UInt32(runs[pos].start) &+ 1
                            runEnd = runs[pos].end
                            return high | UInt32(runs[pos].start)
                        }
                    }
                }
                if !advanceContainer() { return nil }
            }
        }
    }

    public func makeIterator() -> Iterator { Iterator(self) }

    /// Calls `body` on every id in ascending order (faster than the iterator).
    public func forEach(_ body: (UInt32) throws -> Void) rethrows {
        for i in 0..<keys.count {
            let high = UInt32(keys[i]) << 16
            try containers[i].forEach { try body(high | UInt32($0)) }
        }
    }

    /// Calls `body(range, count)` for each range of ids `range·width ..< (range+1)·width` that
    /// holds members, with how many, in ascending order. Bitset containers are counted a word at
    /// a time and runs by their length, so a dense set costs its words, not its members.
    public func forEachRangeCount(width: Int, _ body: (Int, Int) -> Void) {
        precondition(width > 0, "range width must be positive")
        var current = -1, n = 0
        @inline(__always) func add(_ range: Int, _ c: Int) {
            if range != current {
                if n > 0 { body(current, n) }
                current = range
                n = 0
            }
            n += c
        }
        /// Members of `bits` (ids `first ..< first + 64`), split at range edges.
        @inline(__always) func addWord(_ first: Int, _ bits: UInt64) {
            var w = bits
            while w != 0 {
                let lo = first + w.trailingZeroBitCount
                let r = lo / width
                let end = (r + 1) * width - first
                let inRange = end >= 64 ? w : w & ((1 << UInt64(end)) &- 1)
                add(r, inRange.nonzeroBitCount)
                w &= ~inRange
            }
        }
        for i in 0..<keys.count {
            let base = Int(keys[i]) << 16
            switch containers[i] {
            case .array(let values):
                for v in values { add((base + Int(v)) / width, 1) }
            case .bitset(let words, _):
                for j in 0..<words.count where words[j] != 0 { addWord(base + j * 64, words[j]) }
            case .run(let runs, _):
                for run in runs {
                    var lo = base + Int(run.start)
                    let hi = base + Int(run.end)
                    while lo <= hi {
                        let r = lo / width
                        let end = Swift.min(hi, (r + 1) * width - 1)
                        add(r, end - lo + 1)
                        lo = end + 1
                    }
                }
            }
        }
        if n > 0 { body(current, n) }
    }

    /// The ids in ascending order.
    public func toArray() -> [UInt32] {
        var out = [UInt32]()
        out.reserveCapacity(count)
        forEach { out.append($0) }
        return out
    }

    // MARK: Equality

    public static func == (a: Bitmap, b: Bitmap) -> Bool {
        guard a.keys == b.keys else { return false }
        for i in 0..<a.containers.count {
            let ca = a.containers[i], cb = b.containers[i]
            let n = ca.cardinality
            guard n == cb.cardinality, ca.minimum == cb.minimum, ca.maximum == cb.maximum else { return false }
            if BitmapContainer.andCount(ca, cb) != n { return false }
        }
        return true
    }

    public func hash(into h: inout Hasher) {
        h.combine(keys.count)
        for i in 0..<keys.count {
            let c = containers[i]
            h.combine(keys[i])
            h.combine(c.cardinality)
            h.combine(c.minimum)
            h.combine(c.maximum)
        }
    }
}

/// Container counts of a bitmap.
public struct BitmapStatistics: Sendable, Hashable {
    public var arrayContainers = 0
    public var bitsetContainers = 0
    public var runContainers = 0
    /// Size of `serialized()`.
    public var serializedByteCount = 0
}

extension Bitmap: CustomStringConvertible {
    public var description: String {
        var parts = [String]()
        for v in self.prefix(16) { parts.append(String(v)) }
        let n = count
        return "Bitmap(count: \(n), [" + parts.joined(separator: ", ") + (n > 16 ? ", ..." : "") + "])"
    }
}

extension Bitmap: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: UInt32...) {
        self.init(elements)
    }
}

// MARK: - Chunks (persisted posting lists store one 2^16-id chunk per record)

extension Bitmap {
    /// The ids of one chunk: `high << 16 | low` for each of `sortedLows`, which must be
    /// strictly increasing (checked; a violation throws, so stored bytes can be passed in).
    public init(high: UInt16, sortedLows: UnsafeBufferPointer<UInt16>) throws(BitmapError) {
        self.init()
        guard !sortedLows.isEmpty else { return }
        for i in 1..<sortedLows.count where sortedLows[i] <= sortedLows[i - 1] {
            throw BitmapError(message: "chunk values not strictly increasing at \(i)", offset: 2 * i)
        }
        keys = [high]
        containers = [.fromSorted(Array(sortedLows))]
    }

    /// Appends the ids of `other`, all of which must exceed every id of `self` chunk-wise
    /// (its smallest high key above our largest). O(number of chunks): this is how a posting
    /// list read chunk by chunk is assembled. Falls back to a union otherwise.
    public mutating func append(_ other: Bitmap) {
        guard let last = keys.last, let first = other.keys.first else {
            if keys.isEmpty { self = other }
            return
        }
        guard first > last else {
            formUnion(other)
            return
        }
        keys.append(contentsOf: other.keys)
        containers.append(contentsOf: other.containers)
    }

    /// The high keys (chunk numbers) present, ascending.
    public var chunkKeys: [UInt16] { keys }

    /// The ids of chunk `high` as low 16-bit values, ascending (empty when absent).
    public func lows(ofChunk high: UInt16) -> [UInt16] {
        let i = index(ofKey: high)
        guard i >= 0 else { return [] }
        switch containers[i] {
        case .array(let a): return a
        case .bitset(let w, let n): return BitmapContainer.array(fromWords: w, count: n)
        case .run(let r, let n): return BitmapContainer.array(fromRuns: r, count: n)
        }
    }

    /// Only the ids of chunk `high`.
    public func chunk(_ high: UInt16) -> Bitmap {
        let i = index(ofKey: high)
        guard i >= 0 else { return Bitmap() }
        return Bitmap(keys: [high], containers: [containers[i]])
    }
}

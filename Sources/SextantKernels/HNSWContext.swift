// Per-thread search state and the packed-key heaps the traversal runs on.

// A candidate is packed into one UInt64: an order-preserving image of its distance in the
// high word and its id in the low word. Comparing keys then compares (distance, id) — the
// same order as `Neighbor` — with one integer compare, and heaps move 8-byte values.

@inlinable @inline(__always)
func _hnswKey(_ distance: Float, _ id: UInt32) -> UInt64 {
    // `+ 0` turns -0 into +0 so the two zeros compare equal, as they do as floats.
    let b = (distance + 0).bitPattern
    let ordered = b & 0x8000_0000 != 0 ? ~b : b | 0x8000_0000
    return UInt64(ordered) << 32 | UInt64(id)
}

@inlinable @inline(__always)
func _hnswDistance(_ key: UInt64) -> Float {
    let o = UInt32(truncatingIfNeeded: key >> 32)
    return Float(bitPattern: o & 0x8000_0000 != 0 ? o & 0x7FFF_FFFF : ~o)
}

@inlinable @inline(__always)
func _hnswID(_ key: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: key) }

/// A binary min-heap of keys in manually managed memory. A plain struct of a pointer and two
/// counts: search copies it into a local for the duration of a traversal, so the hot loop
/// has no class-property access, exclusivity check or reference counting.
@usableFromInline
struct _KeyHeap {
    @usableFromInline var base: UnsafeMutablePointer<UInt64>
    @usableFromInline var count: Int
    @usableFromInline var capacity: Int

    @usableFromInline
    init(capacity: Int) {
        self.capacity = Swift.max(capacity, 16)
        base = .allocate(capacity: self.capacity)
        count = 0
    }

    @usableFromInline
    func deallocate() { base.deallocate() }

    @usableFromInline
    mutating func grow() {
        let c = capacity &* 2
        let p = UnsafeMutablePointer<UInt64>.allocate(capacity: c)
        p.update(from: base, count: count)
        base.deallocate()
        base = p
        capacity = c
    }

    @inlinable @inline(__always)
    var top: UInt64 { base[0] }

    @inlinable @inline(__always)
    mutating func push(_ key: UInt64) {
        if count == capacity { grow() }
        var i = count
        count &+= 1
        while i > 0 {
            let parent = (i &- 1) >> 1
            let p = base[parent]
            if p <= key { break }
            base[i] = p
            i = parent
        }
        base[i] = key
    }

    @inlinable @inline(__always)
    mutating func pop() -> UInt64 {
        let t = base[0]
        count &-= 1
        if count > 0 { siftDown(base[count]) }
        return t
    }

    /// Replaces the top with `key` (a pop and a push in one sift).
    @inlinable @inline(__always)
    mutating func replaceTop(_ key: UInt64) { siftDown(key) }

    @inlinable @inline(__always)
    mutating func siftDown(_ key: UInt64) {
        var i = 0
        let n = count
        while true {
            var child = 2 &* i &+ 1
            if child >= n { break }
            var c = base[child]
            if child &+ 1 < n {
                let r = base[child &+ 1]
                if r < c { child &+= 1; c = r }
            }
            if key <= c { break }
            base[i] = c
            i = child
        }
        base[i] = key
    }
}

/// The nodes one traversal has reached: one bit per node, so a million nodes take 128 KB
/// and stay in the core's L2 cache (a 16-bit epoch per node took 2 MB and missed it on
/// every neighbour check). Clearing zeroes only the words set since the last clear (listed
/// as they go from zero to non-zero), so a short search on a large graph clears little.
///
/// A value type over memory its owning ``HNSWSearchContext`` allocates: a traversal copies
/// it into a local (no class access in the loop) and stores it back for the count.
@usableFromInline
struct _VisitedSet {
    @usableFromInline var words: UnsafeMutablePointer<UInt64>
    /// Indices of the words that went from zero to non-zero since the last clear.
    @usableFromInline var touched: UnsafeMutablePointer<UInt32>
    @usableFromInline var touchedCount = 0
    /// Words allocated (bits = 64 × this).
    @usableFromInline var wordCapacity = 0

    init() {
        words = .allocate(capacity: 1)
        words.initialize(to: 0)
        touched = .allocate(capacity: 1)
        wordCapacity = 1
    }

    func deallocate() {
        words.deallocate()
        touched.deallocate()
    }

    /// Ids below this bound fit.
    @usableFromInline var bound: Int { wordCapacity &* 64 }

    /// Room for ids `< bound`, all clear.
    @usableFromInline
    mutating func reset(bound: Int) {
        let need = (bound &+ 63) >> 6
        if need > wordCapacity {
            words.deallocate()
            touched.deallocate()
            wordCapacity = Swift.max(need, wordCapacity &* 3 / 2)
            words = .allocate(capacity: wordCapacity)
            words.initialize(repeating: 0, count: wordCapacity)
            touched = .allocate(capacity: wordCapacity)
            touchedCount = 0
            return
        }
        if touchedCount > wordCapacity >> 3 {
            words.update(repeating: 0, count: wordCapacity)
        } else {
            for i in 0..<touchedCount { words[Int(touched[i])] = 0 }
        }
        touchedCount = 0
    }

    @inlinable @inline(__always)
    func contains(_ id: UInt32) -> Bool {
        words[Int(id >> 6)] & (1 &<< UInt64(id & 63)) != 0
    }

    /// Marks `id`; false if it was already marked. `id` must be below ``bound``.
    @inlinable @inline(__always)
    mutating func insert(_ id: UInt32) -> Bool {
        let w = Int(id >> 6)
        let bit: UInt64 = 1 &<< UInt64(id & 63)
        let word = words[w]
        if word & bit != 0 { return false }
        if word == 0 {
            touched[touchedCount] = UInt32(truncatingIfNeeded: w)
            touchedCount &+= 1
        }
        words[w] = word | bit
        return true
    }
}

/// Reusable per-thread state for HNSW searches and inserts: the visited set, the candidate
/// and result heaps and scratch buffers.
/// After warm-up a search allocates nothing but its result array.
///
/// Not thread-safe: give each thread its own context (they are cheap to keep around).
public final class HNSWSearchContext {
    @usableFromInline var visited = _VisitedSet()
    @usableFromInline var candidates = _KeyHeap(capacity: 256)
    /// A min-heap of complemented keys, i.e. a max-heap of the kept results.
    @usableFromInline var results = _KeyHeap(capacity: 256)
    /// Neighbour ids gathered for one expansion, and their distances.
    @usableFromInline var ids: UnsafeMutablePointer<UInt32>
    @usableFromInline var dists: UnsafeMutablePointer<Float>
    @usableFromInline let scratchCapacity = 8192
    /// Non-matching neighbours whose own neighbours a two-hop expansion visits.
    @usableFromInline var hops: UnsafeMutablePointer<UInt32>
    @usableFromInline let hopCapacity = 256
    /// Keys and ids for neighbour selection (grown on demand).
    @usableFromInline var keys: UnsafeMutablePointer<UInt64>
    @usableFromInline var keysCapacity = 0
    @usableFromInline var selected: UnsafeMutablePointer<UInt32>
    @usableFromInline var selectedCapacity = 0
    @usableFromInline var linkKeys: UnsafeMutablePointer<UInt64>
    @usableFromInline var linkIDs: UnsafeMutablePointer<UInt32>
    @usableFromInline var linkCapacity = 0
    /// Distance evaluations since the counter was last reset (diagnostics and benchmarks).
    public var distanceCount = 0
    /// Memory for the next filtered search's eligibility bitset
    /// (``DenseBitset/init(_:bound:reusing:)``), kept with the context so that a thread's
    /// searches reuse one buffer.
    public var spareBitsetWords: [UInt64] = []

    /// An empty context; buffers grow to the graph's size on first use.
    public init() {
        ids = .allocate(capacity: scratchCapacity)
        dists = .allocate(capacity: scratchCapacity)
        hops = .allocate(capacity: hopCapacity)
        keys = .allocate(capacity: 1)
        selected = .allocate(capacity: 1)
        linkKeys = .allocate(capacity: 1)
        linkIDs = .allocate(capacity: 1)
    }

    /// Marks `id` visited (ids beyond the set, never reached by a traversal, are ignored).
    @usableFromInline
    func markVisited(_ id: UInt32) {
        if Int(id) < visited.bound { _ = visited.insert(id) }
    }

    deinit {
        visited.deallocate()
        candidates.deallocate()
        results.deallocate()
        ids.deallocate()
        dists.deallocate()
        hops.deallocate()
        keys.deallocate()
        selected.deallocate()
        linkKeys.deallocate()
        linkIDs.deallocate()
    }

    /// Starts a traversal over ids `< bound`: an empty visited set and empty heaps.
    @usableFromInline
    func begin(bound: UInt32) {
        visited.reset(bound: Int(bound))
        candidates.count = 0
        results.count = 0
    }

    @usableFromInline
    func reserveSelection(keys k: Int, selected s: Int, link l: Int) {
        if k > keysCapacity {
            keys.deallocate()
            keysCapacity = Swift.max(k, keysCapacity &* 2)
            keys = .allocate(capacity: keysCapacity)
        }
        if s > selectedCapacity {
            selected.deallocate()
            selectedCapacity = Swift.max(s, selectedCapacity &* 2)
            selected = .allocate(capacity: selectedCapacity)
        }
        if l > linkCapacity {
            linkKeys.deallocate()
            linkIDs.deallocate()
            linkCapacity = Swift.max(l, linkCapacity &* 2)
            linkKeys = .allocate(capacity: linkCapacity)
            linkIDs = .allocate(capacity: linkCapacity)
        }
    }

    /// Moves the results heap into `keys` in ascending order; returns how many.
    @usableFromInline
    func drainResultsAscending() -> Int {
        let n = results.count
        reserveSelection(keys: n, selected: 0, link: 0)
        var i = n
        while results.count > 0 {
            i &-= 1
            keys[i] = ~results.pop()
        }
        return n
    }

    /// The best `k` results as neighbours, best first (empties the results heap).
    @usableFromInline
    func takeResults(_ k: Int) -> [Neighbor] {
        let n = drainResultsAscending()
        let m = Swift.min(n, k)
        return [Neighbor](unsafeUninitializedCapacity: m) { out, initialized in
            for i in 0..<m {
                (out.baseAddress! + i).initialize(to: Neighbor(distance: _hnswDistance(keys[i]), id: UInt64(_hnswID(keys[i]))))
            }
            initialized = m
        }
    }
}

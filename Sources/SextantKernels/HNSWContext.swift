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

/// Reusable per-thread state for HNSW searches and inserts: an epoch-stamped visited set
/// (clearing it is one increment), the candidate and result heaps and scratch buffers.
/// After warm-up a search allocates nothing but its result array.
///
/// Not thread-safe: give each thread its own context (they are cheap to keep around).
public final class HNSWSearchContext {
    @usableFromInline var visited: UnsafeMutablePointer<UInt16>
    @usableFromInline var visitedCapacity: Int
    @usableFromInline var epoch: UInt16 = 0
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

    /// An empty context; buffers grow to the graph's size on first use.
    public init() {
        visited = .allocate(capacity: 1)
        visitedCapacity = 0
        ids = .allocate(capacity: scratchCapacity)
        dists = .allocate(capacity: scratchCapacity)
        hops = .allocate(capacity: hopCapacity)
        keys = .allocate(capacity: 1)
        selected = .allocate(capacity: 1)
        linkKeys = .allocate(capacity: 1)
        linkIDs = .allocate(capacity: 1)
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

    /// Starts a traversal over ids `< bound`: a fresh visited epoch and empty heaps.
    @usableFromInline
    func begin(bound: UInt32) {
        let b = Int(bound)
        if b > visitedCapacity {
            visited.deallocate()
            visitedCapacity = Swift.max(b, visitedCapacity &* 3 / 2)
            visited = .allocate(capacity: visitedCapacity)
            visited.initialize(repeating: 0, count: visitedCapacity)
            epoch = 0
        }
        if epoch == UInt16.max {
            // Wrapped: stamps from 65,535 traversals ago would alias the new epoch.
            visited.update(repeating: 0, count: visitedCapacity)
            epoch = 0
        }
        epoch &+= 1
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

/// A scored candidate. Ordered by `(distance, id)` lexicographically, so equal distances
/// resolve to the smaller id and every result list is deterministic.
public struct Neighbor: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Smaller is closer.
    public var distance: Float
    /// The candidate's id (dense internal id or external id; the caller decides).
    public var id: UInt64

    /// A candidate with its distance.

    @inlinable
    public init(distance: Float, id: UInt64) {
        self.distance = distance
        self.id = id
    }

    /// `(distance, id)` lexicographic order.
    @inlinable
    public static func < (a: Neighbor, b: Neighbor) -> Bool {
        a.distance < b.distance || (a.distance == b.distance && a.id < b.id)
    }

    /// `id@distance`, for logs and test failures.
    public var description: String { "\(id)@\(distance)" }
}

/// The `k` smallest `(distance, id)` pairs seen so far.
///
/// A bounded max-heap: the root is the worst kept candidate, so a full heap rejects most
/// candidates with one comparison against ``threshold``. NaN distances are never kept.
/// Ids are not deduplicated; offer each id once (partitions of a scan are disjoint).
public struct TopK: Sendable {
    /// How many results are kept.
    public let k: Int
    /// Max-heap by `(distance, id)`.
    @usableFromInline internal var heap: [Neighbor]

    /// An empty selection keeping the `k` best (`k >= 0`).
    public init(k: Int) {
        precondition(k >= 0, "k must be non-negative")
        self.k = k
        heap = []
        heap.reserveCapacity(Swift.min(k, 1 << 16))
    }

    /// Number of candidates kept (at most `k`).
    @inlinable public var count: Int { heap.count }
    /// True once `k` candidates are kept; from then on only better ones get in.
    @inlinable public var isFull: Bool { heap.count >= k }

    /// The distance a candidate must not exceed to have a chance: the worst kept distance
    /// when full, `+infinity` before. A candidate *equal* to the threshold still gets in if
    /// its id is smaller than the worst one's.
    @inlinable public var threshold: Float {
        heap.count >= k ? (k == 0 ? -Float.infinity : heap[0].distance) : Float.infinity
    }

    /// The worst kept candidate (the one the next better candidate evicts), if any.
    @inlinable public var worst: Neighbor? { heap.first }

    /// Offers a candidate; returns whether it was kept.
    @inlinable @discardableResult
    public mutating func insert(distance: Float, id: UInt64) -> Bool {
        let c = Neighbor(distance: distance, id: id)
        if heap.count < k {
            if distance.isNaN { return false }
            heap.append(c)
            siftUp(heap.count - 1)
            return true
        }
        // Full (or k == 0): fast reject; NaN fails both comparisons.
        guard k > 0, c < heap[0] else { return false }
        heap[0] = c
        siftDown(0)
        return true
    }

    /// Offers `distances[j]` with id `firstID + j` for every `j` — the exact-scan inner
    /// loop, rejecting with a register-held threshold.
    @inlinable
    public mutating func insert(distances: UnsafeBufferPointer<Float>, firstID: UInt64) {
        var t = threshold
        for j in distances.indices {
            let dist = distances[j]
            if dist <= t, insert(distance: dist, id: firstID &+ UInt64(j)) { t = threshold }
        }
    }

    /// Offers `distances[j]` with id `ids[j]` for every `j`.
    @inlinable
    public mutating func insert(distances: UnsafeBufferPointer<Float>, ids: UnsafeBufferPointer<UInt64>) {
        precondition(distances.count == ids.count, "distances and ids differ in length")
        var t = threshold
        for j in distances.indices {
            let dist = distances[j]
            if dist <= t, insert(distance: dist, id: ids[j]) { t = threshold }
        }
    }

    /// The kept candidates in no particular order (for callers that re-score them anyway).
    public var unorderedResults: [Neighbor] { heap }

    /// The kept candidates, best first (ascending `(distance, id)`).
    public func sortedResults() -> [Neighbor] {
        heap.sorted()
    }

    /// Adds every candidate of `other` (results of another partition of the same query).
    public mutating func merge(_ other: TopK) {
        for c in other.heap { insert(distance: c.distance, id: c.id) }
    }

    /// The `k` best of several partial selections.
    public static func merged(_ parts: some Sequence<TopK>, k: Int) -> TopK {
        var result = TopK(k: k)
        for p in parts { result.merge(p) }
        return result
    }

    @inlinable
    internal mutating func siftUp(_ start: Int) {
        var i = start
        let c = heap[i]
        while i > 0 {
            let parent = (i &- 1) >> 1
            guard heap[parent] < c else { break }
            heap[i] = heap[parent]
            i = parent
        }
        heap[i] = c
    }

    @inlinable
    internal mutating func siftDown(_ start: Int) {
        var i = start
        let n = heap.count
        let c = heap[i]
        while true {
            var child = 2 &* i &+ 1
            if child >= n { break }
            if child &+ 1 < n && heap[child] < heap[child &+ 1] { child &+= 1 }
            guard c < heap[child] else { break }
            heap[i] = heap[child]
            i = child
        }
        heap[i] = c
    }
}

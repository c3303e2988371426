// Selection of the k best of a whole distance array at once, for large k.
//
// The bounded heap (`TopK`) rejects most candidates with one comparison once it is full,
// which is ideal when k is small against n. When k is a sizeable fraction of n, most
// candidates get in and each costs a sift of log k; a quickselect partition (expected
// O(n)) followed by sorting only the k winners is then cheaper. Both give the same list:
// `(distance, id)` ascending, NaN never kept, ties broken by the smaller id.

extension TopK {
    /// The `k` smallest `(distances[j], firstID + j)`, best first — the same list as
    /// offering every distance to a `TopK(k:)` and calling ``sortedResults()``.
    ///
    /// Partial-sort selection: expected O(n + k log k) time and O(n) scratch. Prefer it to
    /// the heap when k is more than a few percent of the candidates: over 100,000 distances
    /// it breaks even at k ≈ 3,000 and takes 0.2–0.7x the heap's time at k = 10,000, 0.4x
    /// at 50,000, but 9–27x at k ≤ 100 (KernelMeasure `topk`). The heap streams and needs
    /// only O(k) memory.
    public static func select(k: Int, distances: UnsafeBufferPointer<Float>, firstID: UInt64) -> [Neighbor] {
        precondition(k >= 0, "k must be non-negative")
        guard k > 0 else { return [] }
        var all = [Neighbor]()
        all.reserveCapacity(distances.count)
        for j in distances.indices where !distances[j].isNaN {
            all.append(Neighbor(distance: distances[j], id: firstID &+ UInt64(j)))
        }
        return _selectSmallest(&all, k)
    }

    /// The `k` smallest `(distances[j], ids[j])`, best first (see
    /// ``select(k:distances:firstID:)``). Ids are expected to be distinct.
    public static func select(
        k: Int, distances: UnsafeBufferPointer<Float>, ids: UnsafeBufferPointer<UInt64>
    ) -> [Neighbor] {
        precondition(k >= 0, "k must be non-negative")
        precondition(distances.count == ids.count, "distances and ids differ in length")
        guard k > 0 else { return [] }
        var all = [Neighbor]()
        all.reserveCapacity(distances.count)
        for j in distances.indices where !distances[j].isNaN {
            all.append(Neighbor(distance: distances[j], id: ids[j]))
        }
        return _selectSmallest(&all, k)
    }
}

/// Moves the `k` smallest of `all` to its front (quickselect), then sorts just those.
internal func _selectSmallest(_ all: inout [Neighbor], _ k: Int) -> [Neighbor] {
    let n = all.count
    if k < n {
        all.withUnsafeMutableBufferPointer { _quickselect($0, k) }
        all.removeSubrange(k...)
    }
    all.sort()
    return all
}

/// Partitions `a` so that its first `k` elements are the `k` smallest (in any order).
/// Hoare partition around a median-of-three pivot; the loop narrows to the side holding
/// position `k`. Elements are totally ordered (distinct ids, no NaN), so it terminates.
private func _quickselect(_ a: UnsafeMutableBufferPointer<Neighbor>, _ k: Int) {
    var lo = 0, hi = a.count - 1
    while hi - lo > 16 {
        let mid = lo + (hi - lo) / 2
        // Median of three at `mid`, so both partitions are non-empty.
        if a[mid] < a[lo] { a.swapAt(mid, lo) }
        if a[hi] < a[lo] { a.swapAt(hi, lo) }
        if a[hi] < a[mid] { a.swapAt(hi, mid) }
        let pivot = a[mid]
        var i = lo, j = hi
        while i <= j {
            while a[i] < pivot { i += 1 }
            while pivot < a[j] { j -= 1 }
            if i <= j {
                a.swapAt(i, j)
                i += 1
                j -= 1
            }
        }
        // Now a[lo...j] ≤ pivot ≤ a[i...hi], and j < i.
        if k <= j { hi = j } else if k >= i { lo = i } else { return }
    }
    // Small range: insertion sort settles the boundary.
    if lo < hi {
        for x in (lo + 1)...hi {
            let v = a[x]
            var y = x
            while y > lo && v < a[y - 1] {
                a[y] = a[y - 1]
                y -= 1
            }
            a[y] = v
        }
    }
}

import SextantTestSupport
import Testing
import SextantKernels

@Suite struct TopKTests {
    @Test(arguments: [0, 1, 2, 5, 10, 100, 1000])
    func agreesWithSorting(k: Int) {
        var rng = SeededRandom(seed: UInt64(k) &+ 1)
        for n in [0, 1, 7, 50, 999] {
            // Distances drawn from few values so ties are common and ids must break them.
            let items = (0..<n).map { i in
                Neighbor(distance: Float(Int.random(in: 0..<20, using: &rng)) / 4, id: UInt64(i * 7919 % 1009))
            }
            var top = TopK(k: k)
            for c in items.shuffled(using: &rng) { top.insert(distance: c.distance, id: c.id) }
            let expected = Array(items.sorted().prefix(k))
            #expect(top.sortedResults() == expected, "k \(k) n \(n)")
            #expect(top.count == min(k, n))
        }
    }

    @Test func thresholdAndTies() {
        var top = TopK(k: 2)
        #expect(top.threshold == .infinity)
        let r1 = top.insert(distance: 1, id: 10)
        #expect(r1)
        let r2 = top.insert(distance: 1, id: 20)
        #expect(r2)
        #expect(top.isFull && top.threshold == 1)
        let r3 = top.insert(distance: 1, id: 30)
        #expect(!r3, "equal distance, larger id: rejected")
        let r4 = top.insert(distance: 1, id: 5)
        #expect(r4, "equal distance, smaller id: kept")
        #expect(top.sortedResults().map(\.id) == [5, 10])
        let r5 = top.insert(distance: .nan, id: 1)
        #expect(!r5)
        let r6 = top.insert(distance: 2, id: 0)
        #expect(!r6)
        let r7 = top.insert(distance: -.infinity, id: 99)
        #expect(r7)
        #expect(top.sortedResults().map(\.id) == [99, 5])

        var notFull = TopK(k: 3)
        let r8 = notFull.insert(distance: .nan, id: 1)
        #expect(!r8, "NaN never kept")
        #expect(notFull.count == 0)
        var zero = TopK(k: 0)
        let r9 = zero.insert(distance: 0, id: 0)
        #expect(!r9)
        #expect(zero.sortedResults().isEmpty)
    }

    @Test func bulkInsertAndMergeEqualWholeScan() {
        var rng = SeededRandom(seed: 3)
        let n = 10_000, k = 10
        let distances = (0..<n).map { _ in Float(Int.random(in: 0..<500, using: &rng)) }
        var whole = TopK(k: k)
        distances.withUnsafeBufferPointer { whole.insert(distances: $0, firstID: 0) }
        let expected = (0..<n).map { Neighbor(distance: distances[$0], id: UInt64($0)) }.sorted().prefix(k)
        #expect(whole.sortedResults() == Array(expected))

        // Four partitions with explicit ids, merged.
        var parts: [TopK] = []
        for p in 0..<4 {
            var t = TopK(k: k)
            let ids = (0..<n).filter { $0 % 4 == p }
            let ds = ids.map { distances[$0] }
            ds.withUnsafeBufferPointer { d in
                ids.map(UInt64.init).withUnsafeBufferPointer { t.insert(distances: d, ids: $0) }
            }
            parts.append(t)
        }
        #expect(TopK.merged(parts, k: k).sortedResults() == Array(expected))
        var acc = parts[0]
        for p in parts.dropFirst() { acc.merge(p) }
        #expect(acc.sortedResults() == Array(expected))
    }
}

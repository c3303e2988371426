import SextantTestSupport
import Testing
@testable import Sextant
@testable import SextantKernels

/// The qd-tree scores nested cell cuts (`cell < t`) from per-cell counts; the tree must be the
/// one scoring every cut's bitmaps gives.
@Suite struct QDTreeCellCutTests {
    @Test(arguments: [1, 2, 3])
    func cellCutsChooseAsBitmapsDo(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let rows = 6_000, cells = 32
        // Rows in cells of uneven sizes; predicates uniform, concentrated in a few cells, or
        // spanning a run of cells (so cell cuts really win some splits).
        let cellOf = (0..<rows).map { _ in Int(rng.next() % UInt64(cells)) * Int(rng.next() % 2 == 0 ? 1 : 0) + Int(rng.next() % UInt64(cells / 2)) }
            .map { min($0, cells - 1) }
        var cellSlots = [[UInt32]](repeating: [], count: cells)
        for (slot, c) in cellOf.enumerated() { cellSlots[c].append(UInt32(slot)) }
        let cellRows = cellSlots.map { Bitmap($0) }
        let live = Bitmap(range: 0..<UInt32(rows))
        var cuts: [Bitmap] = (0..<6).map { _ in
            Bitmap((0..<UInt32(rows)).filter { _ in rng.next() % 3 == 0 })
        }
        var below = Bitmap()
        for t in 1..<cells {
            below.formUnion(cellRows[t - 1])
            cuts.append(below)
        }
        var workload: [(Bitmap, Double)] = []
        for q in 0..<12 {
            let lo = Int(rng.next() % UInt64(cells)), width = 1 + Int(rng.next() % 6)
            let set: Bitmap
            switch q % 3 {
            case 0: set = Bitmap((0..<UInt32(rows)).filter { _ in rng.next() % 10 == 0 })
            case 1: set = Bitmap((0..<rows).filter { cellOf[$0] >= lo && cellOf[$0] < lo + width }.map(UInt32.init))
            default: set = cuts[Int(rng.next() % 6)].intersection(cellRows[lo])
            }
            workload.append((set, Double(1 + rng.next() % 5)))
        }
        var fast = QDTreeBuilder(live: live, cuts: cuts, cellRows: cellRows, workload: workload, minRows: 100, maxLeaves: 16)
        var plain = QDTreeBuilder(live: live, cuts: cuts, workload: workload, minRows: 100, maxLeaves: 16)
        fast.build()
        plain.build()
        #expect(fast.leaves.count > 4)
        #expect(fast.leaves.map(\.rows) == plain.leaves.map(\.rows))
        #expect(fast.leaves.map { $0.path.map(\.cut) } == plain.leaves.map { $0.path.map(\.cut) })
        #expect(fast.totalCost == plain.totalCost)
        // Some split used a cell cut.
        #expect(fast.leaves.contains { $0.path.contains { $0.cut >= 6 } })
    }
}

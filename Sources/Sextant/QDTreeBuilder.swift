import SextantKernels

/// Greedy qd-tree construction over bitmaps: the cost of a partition is its size times the
/// weight of the workload queries with at least one match in it (they must read it).
struct QDTreeBuilder {
    struct Leaf {
        var rows: Bitmap
        var path: [PartitionLayout.Step]
        var node: Int
        var cost: Double
    }

    let cuts: [Bitmap]
    /// Rows of each vector cell, when the last `cellRows.count − 1` cuts are the cell cuts
    /// `cell < t` (t = 1…C−1): those are scored from per-cell counts instead of bitmaps.
    let cellRows: [Bitmap]
    let workload: [(Bitmap, Double)]
    let minRows: Int
    let maxLeaves: Int
    var leaves: [Leaf]
    var nodes: [PartitionLayout.Node] = [.leaf(0)]
    let rootCost: Double

    init(live: Bitmap, cuts: [Bitmap], cellRows: [Bitmap] = [], workload: [(Bitmap, Double)], minRows: Int, maxLeaves: Int) {
        precondition(cellRows.isEmpty || cuts.count >= cellRows.count - 1, "cell cuts missing")
        self.cuts = cuts
        self.cellRows = cellRows
        self.workload = workload
        self.minRows = max(1, minRows)
        self.maxLeaves = maxLeaves
        let c = Self.cost(live, workload)
        rootCost = c
        leaves = [Leaf(rows: live, path: [], node: 0, cost: c)]
    }

    var totalCost: Double { leaves.reduce(0) { $0 + $1.cost } }

    static func cost(_ rows: Bitmap, _ workload: [(Bitmap, Double)]) -> Double {
        guard !rows.isEmpty else { return 0 }
        var w = 0.0
        for (m, weight) in workload where !m.isDisjoint(with: rows) { w += weight }
        return Double(rows.count) * w
    }

    /// The best split of leaf `i`: (gain, cut, rows where it holds, the others, their costs).
    typealias Split = (gain: Double, cut: Int, yes: Bitmap, no: Bitmap, yesCost: Double, noCost: Double)

    func bestSplit(_ i: Int) -> Split? {
        let leaf = leaves[i]
        guard leaf.rows.count >= 2 * minRows else { return nil }
        var best: Split? = nil
        let firstCellCut = cellRows.isEmpty ? cuts.count : cuts.count - (cellRows.count - 1)
        for c in 0..<firstCellCut where !leaf.path.contains(where: { $0.cut == c }) {
            let yes = leaf.rows.intersection(cuts[c])
            guard yes.count >= minRows, leaf.rows.count - yes.count >= minRows else { continue }
            let no = leaf.rows.subtracting(cuts[c])
            let (yc, nc) = (Self.cost(yes, workload), Self.cost(no, workload))
            let gain = leaf.cost - yc - nc
            if gain > 0, gain > (best?.gain ?? 0) { best = (gain, c, yes, no, yc, nc) }
        }
        if let cell = bestCellSplit(leaf, firstCut: firstCellCut, beating: best?.gain ?? 0) { best = cell }
        return best
    }

    /// The best cell cut `cell < t` of a leaf, if it gains more than `beating`. The cuts are
    /// nested, so one pass over the cells gives every cut's sides: a side's size is a prefix
    /// (or suffix) sum of the leaf's rows per cell, and a query touches the `cell < t` side
    /// when its first matching cell is below t, the other side when its last one is at or
    /// above t. The gains are those `cost` computes on the two bitmaps (the same sums of
    /// weights in workload order), so the choice is the same as scoring every cut's bitmaps.
    private func bestCellSplit(_ leaf: Leaf, firstCut: Int, beating: Double) -> Split? {
        let cells = cellRows.count
        guard cells > 1 else { return nil }
        let perCell = cellRows.map { leaf.rows.intersectionCount($0) }
        // First and last cell holding a match of each query within the leaf (nil: none).
        var span: [(first: Int, last: Int)?] = []
        for (m, _) in workload {
            let inLeaf = m.intersection(leaf.rows)
            guard !inLeaf.isEmpty else { span.append(nil); continue }
            let first = (0..<cells).first { !cellRows[$0].isDisjoint(with: inLeaf) }
            let last = (0..<cells).reversed().first { !cellRows[$0].isDisjoint(with: inLeaf) }
            if let first, let last { span.append((first, last)) } else { span.append(nil) }
        }
        let total = leaf.rows.count
        var below = 0
        var best: (gain: Double, t: Int, yesCost: Double, noCost: Double)? = nil
        for t in 1..<cells {
            below += perCell[t - 1]
            let cut = firstCut + t - 1
            guard below >= minRows, total - below >= minRows, !leaf.path.contains(where: { $0.cut == cut }) else { continue }
            var yesWeight = 0.0, noWeight = 0.0
            for (q, s) in span.enumerated() {
                guard let s else { continue }
                if s.first < t { yesWeight += workload[q].1 }
                if s.last >= t { noWeight += workload[q].1 }
            }
            let yc = below == 0 ? 0 : Double(below) * yesWeight
            let nc = total - below == 0 ? 0 : Double(total - below) * noWeight
            let gain = leaf.cost - yc - nc
            if gain > 0, gain > (best?.gain ?? beating) { best = (gain, t, yc, nc) }
        }
        guard let best else { return nil }
        let cut = firstCut + best.t - 1
        return (best.gain, cut, leaf.rows.intersection(cuts[cut]), leaf.rows.subtracting(cuts[cut]), best.yesCost, best.noCost)
    }

    mutating func build() {
        var candidates: [Int: Split] = [:]
        for i in leaves.indices { candidates[i] = bestSplit(i) }
        while leaves.count < maxLeaves {
            guard let (i, s) = candidates.compactMapValues({ $0 }).max(by: { $0.value.gain < $1.value.gain || ($0.value.gain == $1.value.gain && $0.key > $1.key) }) else { break }
            let leaf = leaves[i]
            let yesNode = nodes.count, noNode = nodes.count + 1
            nodes[leaf.node] = .split(cut: s.cut, left: yesNode, right: noNode)
            nodes.append(.leaf(i))
            nodes.append(.leaf(leaves.count))
            leaves[i] = Leaf(rows: s.yes, path: leaf.path + [.init(cut: s.cut, holds: true)], node: yesNode, cost: s.yesCost)
            leaves.append(Leaf(rows: s.no, path: leaf.path + [.init(cut: s.cut, holds: false)], node: noNode, cost: s.noCost))
            candidates[i] = bestSplit(i)
            candidates[leaves.count - 1] = bestSplit(leaves.count - 1)
        }
        // Leaf ids in tree order (left before right), which is also slot order.
        var order: [Int] = []
        func walk(_ n: Int) {
            switch nodes[n] {
            case .leaf(let l): order.append(l)
            case .split(_, let l, let r): walk(l); walk(r)
            }
        }
        walk(0)
        let old = leaves
        leaves = order.map { old[$0] }
        for (newID, oldID) in order.enumerated() { nodes[old[oldID].node] = .leaf(newID) }
    }
}

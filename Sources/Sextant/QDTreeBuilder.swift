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
    let workload: [(Bitmap, Double)]
    let minRows: Int
    let maxLeaves: Int
    var leaves: [Leaf]
    var nodes: [PartitionLayout.Node] = [.leaf(0)]
    let rootCost: Double

    init(live: Bitmap, cuts: [Bitmap], workload: [(Bitmap, Double)], minRows: Int, maxLeaves: Int) {
        self.cuts = cuts
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
    func bestSplit(_ i: Int) -> (gain: Double, cut: Int, yes: Bitmap, no: Bitmap, yesCost: Double, noCost: Double)? {
        let leaf = leaves[i]
        guard leaf.rows.count >= 2 * minRows else { return nil }
        var best: (gain: Double, cut: Int, yes: Bitmap, no: Bitmap, yesCost: Double, noCost: Double)? = nil
        for (c, set) in cuts.enumerated() where !leaf.path.contains(where: { $0.cut == c }) {
            let yes = leaf.rows.intersection(set)
            guard yes.count >= minRows, leaf.rows.count - yes.count >= minRows else { continue }
            let no = leaf.rows.subtracting(set)
            let (yc, nc) = (Self.cost(yes, workload), Self.cost(no, workload))
            let gain = leaf.cost - yc - nc
            if gain > 0, gain > (best?.gain ?? 0) { best = (gain, c, yes, no, yc, nc) }
        }
        return best
    }

    mutating func build() {
        var candidates: [Int: (gain: Double, cut: Int, yes: Bitmap, no: Bitmap, yesCost: Double, noCost: Double)] = [:]
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

import Foundation
import SextantKernels
import SextantStorage

/// A workload-aware layout of a collection (a qd-tree, after HQI): binary cuts on predicates
/// drawn from a workload split the rows into partitions (leaves) so that each workload query
/// needs as few rows as possible, and each partition's rows occupy one contiguous range of
/// slots — its scans read whole blocks.
///
/// A partition is defined by its predicates (row ∈ leaf ⇔ every cut on its path is TRUE for the
/// row on a left branch, not TRUE on a right one), so membership is always exact: a row written
/// later belongs to its leaf at once. Only its *place* can drift: rows written after the layout
/// get new slots outside their leaf's range (see ``PartitionStatistics``); `partition` again
/// restores it.
public struct PartitionLayout: Sendable {
    /// The cut predicates, referenced by index from ``nodes`` (indexes `0..<cuts.count`).
    public var cuts: [Filter]
    /// Vector cells of the layout's coarse quantizer (0: none). Each row's cell is its nearest
    /// centroid; cells are numbered along the centroids' principal direction.
    public var cells: Int = 0
    /// Cell cuts `cell < t`, referenced by index `cuts.count + i`.
    public var cellCuts: [Int] = []
    /// The tree, root first.
    public var nodes: [Node]
    /// The partitions, in slot order.
    public var leaves: [Leaf]
    /// Live rows when the layout was made.
    public var liveRows: Int
    /// Workload queries (lines) it was made for.
    public var workloadQueries: Int
    /// Rows the workload touches when a query reads every partition holding one of its
    /// matches: over the whole collection (one partition) and with this layout.
    public var rowsTouchedUnpartitioned: Double
    /// Rows the workload touches with the layout (weighted by query frequency).
    public var rowsTouchedPartitioned: Double

    /// A node of the qd-tree: a cut with two children, or a leaf.
    public enum Node: Sendable, Equatable {
        /// Rows for which `cut` is TRUE go left, the others (FALSE or NULL) right.
        case split(cut: Int, left: Int, right: Int)
        /// A partition, by leaf id.
        case leaf(Int)
    }

    /// A partition: the rows satisfying its path's cuts, stored in consecutive slots.
    public struct Leaf: Sendable, Equatable {
        /// The leaf's number, left to right.
        public var id: Int
        /// The cuts on the path, with the branch taken (true: the cut holds).
        public var path: [Step]
        /// Rows when the layout was made.
        public var rows: Int
        /// The slots its rows were given.
        public var slots: Range<UInt32>
    }

    /// One cut on the path to a leaf and which side the leaf is on.
    public struct Step: Sendable, Equatable {
        /// The cut's index in ``PartitionLayout/cuts`` (or, past them, a cell cut).
        public var cut: Int
        /// Whether the leaf's rows satisfy the cut (left) or not (right).
        public var holds: Bool
    }

    /// Cut `i` as text: a predicate, or `cell < t`.
    public func describeCut(_ i: Int) -> String {
        i < cuts.count ? cuts[i].toSQL() : "cell < \(cellCuts[i - cuts.count])"
    }

    /// A leaf's defining condition as text.
    public func describe(_ leaf: Leaf) -> String {
        if leaf.path.isEmpty { return "TRUE" }
        return leaf.path.map { s in
            s.cut >= cuts.count ? (s.holds ? "cell < \(cellCuts[s.cut - cuts.count])" : "cell >= \(cellCuts[s.cut - cuts.count])")
                : s.holds ? "(\(cuts[s.cut].toSQL()))" : "(\(cuts[s.cut].toSQL())) IS NOT TRUE"
        }.joined(separator: " AND ")
    }

    /// The leaves a query probing `cells` can find rows in: a leaf whose cell cuts exclude
    /// every probed cell holds none of them.
    public func leaves(probing cells: Set<Int>) -> [Leaf] {
        leaves.filter { leaf in
            cells.contains { c in
                leaf.path.allSatisfy { s in s.cut < cuts.count || (c < cellCuts[s.cut - cuts.count]) == s.holds }
            }
        }
    }
}

/// How far a collection's rows have drifted from its layout.
public struct PartitionStatistics: Sendable {
    /// One partition's figures.
    public struct Leaf: Sendable {
        /// The leaf's number.
        public var id: Int
        /// The leaf's condition, as SQL.
        public var description: String
        /// Rows when the layout was made, now, and now inside the leaf's slot range.
        public var rowsAtLayout: Int
        /// Rows that belong to the leaf now.
        public var rows: Int
        /// Of those, rows inside the leaf's slot range.
        public var rowsInPlace: Int
    }
    /// Per partition.
    public var leaves: [Leaf]
    /// Live rows now.
    public var liveRows: Int
    /// Live rows outside their partition's slot range, as a fraction of live rows.
    public var drift: Double
    /// Vector cells of the layout (0: none).
    public var cells: Int = 0
}

extension VectorCollection {
    // MARK: Building

    /// Re-lays the collection out for `workload` (one predicate per query; nil matches every
    /// row): builds a qd-tree whose cuts are the workload's atomic predicates, choosing greedily
    /// the cut that most reduces the rows the workload touches, until no cut helps, a partition
    /// would fall under `minRows`, or there are `maxPartitions`; then rewrites the rows so each
    /// partition occupies consecutive slots, and rebuilds the graph (codes keep their codebook).
    ///
    /// Vector locality: with `cells` > 0 (a multiple of 16) a coarse quantizer is trained on the
    /// rows' vectors and every row gets a cell (its nearest centroid), kept in an index under
    /// writes. Rows of a partition are laid out in cell order, and `cell < t` joins the
    /// candidate cuts. With `queryVectors` (one per workload line), each workload query counts
    /// as probing its `probes` nearest cells, so cuts on cells pay where the workload's vectors
    /// concentrate; searches that set ``SearchOptions/probes`` then read only those cells.
    ///
    /// The rows are rewritten in one write transaction (holding them in memory); the new graph
    /// is built in memory before that commits and stored in a second transaction, between which
    /// searches run without a graph. Row ids, vectors and attributes do not change, nor do
    /// search results of exact plans.
    ///
    /// `progress` receives free-form log lines; for typed values use
    /// `partition(workload:maxPartitions:minRows:cells:queryVectors:probes:threads:onProgress:)`.
    ///
    /// - Throws: `invalidArgument` for an empty workload, `maxPartitions` < 1, a bad `cells` or
    ///   `probes`, query vectors not matching the workload or the collection; `unknownAttribute`
    ///   or `typeMismatch` for a predicate that does not bind to the schema; `notFound` when the
    ///   collection was dropped; storage errors.
    @discardableResult
    public func partition(workload: [Filter?], maxPartitions: Int = 64, minRows: Int? = nil,
                          cells: Int = 0, queryVectors: [[Float]]? = nil, probes: Int = 1,
                          threads: Int? = nil, progress: ((String) -> Void)? = nil) throws -> PartitionLayout {
        try partition(workload: workload, maxPartitions: maxPartitions, minRows: minRows, cells: cells, queryVectors: queryVectors,
                      probes: probes, threads: threads, control: OperationControl(log: progress))
    }

    /// Re-lays the collection out for `workload` (see
    /// ``partition(workload:maxPartitions:minRows:cells:queryVectors:probes:threads:progress:)``),
    /// reporting typed progress: with cells `reading` and `training`; then `placing` (rows into
    /// partitions), `linking` (the new graph, with HNSW), `writing`, `storing` (the graph) and
    /// `calibrating`.
    ///
    /// - Throws: as ``partition(workload:maxPartitions:minRows:cells:queryVectors:probes:threads:progress:)``.
    @discardableResult
    public func partition(workload: [Filter?], maxPartitions: Int = 64, minRows: Int? = nil,
                          cells: Int = 0, queryVectors: [[Float]]? = nil, probes: Int = 1,
                          threads: Int? = nil, onProgress: @escaping @Sendable (OperationProgress) -> Void) throws -> PartitionLayout {
        try partition(workload: workload, maxPartitions: maxPartitions, minRows: minRows, cells: cells, queryVectors: queryVectors,
                      probes: probes, threads: threads, control: OperationControl(onProgress: onProgress))
    }

    /// The partitioning, checking `control` for cancellation until the rows are committed.
    func partition(workload: [Filter?], maxPartitions: Int, minRows: Int?, cells: Int, queryVectors: [[Float]]?,
                   probes: Int, threads: Int?, control: OperationControl) throws -> PartitionLayout {
        let progress: (String) -> Void = { control.note($0) }
        let graphThreads = max(1, threads ?? store.configuration.searchThreads)
        // Cells: reading, training; then placing, (linking), writing, (storing), (calibrating).
        control.expect(steps: (cells > 0 ? 2 : 0) + 2 + (hnswComponent != nil ? 2 : 0) + (pqComponent != nil || hnswComponent != nil ? 1 : 0))
        guard maxPartitions >= 1 else { throw SextantError(.invalidArgument, "maxPartitions must be at least 1, got \(maxPartitions)") }
        guard !workload.isEmpty else { throw SextantError(.invalidArgument, "the workload is empty") }
        guard cells == 0 || (cells >= 16 && cells <= 4096 && cells % 16 == 0) else {
            throw SextantError(.invalidArgument, "cells must be 0 or a multiple of 16 between 16 and 4096, got \(cells)")
        }
        guard probes >= 1 else { throw SextantError(.invalidArgument, "probes must be at least 1, got \(probes)") }
        if let queryVectors {
            guard queryVectors.count == workload.count else {
                throw SextantError(.invalidArgument, "\(queryVectors.count) query vectors for \(workload.count) workload queries")
            }
            for (i, v) in queryVectors.enumerated() {
                do { try validate(vector: v, row: nil) } catch { throw error.adding(["query": String(i)]) }
            }
        }
        let quantizer = cells > 0 ? try trainCells(cells, control: control) : nil
        try control.checkCancellation("the partitioning")
        let bound = try workload.map { f in try f.map { try $0.bind(to: schema) } }
        // Atomic predicates of the workload, by weight (how many queries use them).
        var weights: [Filter: Int] = [:]
        var order: [Filter] = []
        for f in workload.compactMap({ $0 }) {
            for atom in Set(f.atoms) {
                if weights[atom] == nil { order.append(atom) }
                weights[atom, default: 0] += 1
            }
        }
        let cuts = Array(order.sorted { weights[$0]! > weights[$1]! }.prefix(64))
        let boundCuts = try cuts.map { try $0.bind(to: schema) }
        // Distinct workload queries: a predicate, and the cells it probes when vectors are given.
        struct WorkloadQuery: Hashable {
            var filter: Filter?
            var cells: [Int]?
        }
        var queryWeights: [WorkloadQuery: Int] = [:]
        var queryOrder: [WorkloadQuery] = []
        for (i, (f, _)) in zip(workload, bound).enumerated() {
            var probed: [Int]? = nil
            if let quantizer, let v = queryVectors?[i] {
                probed = quantizer.nearest(metric == .cosine ? VectorCollection.normalized(v) : v, count: probes).sorted()
            }
            let q = WorkloadQuery(filter: f, cells: probed)
            if queryWeights[q] == nil { queryOrder.append(q) }
            queryWeights[q, default: 0] += 1
        }
        // The tree's cost is evaluated per distinct query: keep the heaviest thousand.
        if queryOrder.count > 1024 {
            queryOrder = Array(queryOrder.enumerated().sorted { (queryWeights[$0.element]!, -$0.offset) > (queryWeights[$1.element]!, -$1.offset) }
                .prefix(1024).map(\.element))
        }
        progress("\(cuts.count) candidate cuts\(cells > 0 ? " and \(cells - 1) cell cuts" : "") from \(workload.count) queries (\(queryOrder.count) distinct)")
        var pendingGraph: PendingGraph? = nil
        var rewriteID = 0
        var layout = try store.env.write { txn -> PartitionLayout in
            _ = try state(txn)
            pendingGraph = nil
            rewriteID = txn.snapshotID
            let live = try IndexReader(txn: txn, db: db.postings, cid: cid).live()
            control.begin(.placing, total: live.count)
            var cutSets = try boundCuts.map { try match(txn, $0).slots }
            // Every row's cell, and the rows of each cell.
            var cellOfSlot: [UInt32: Int] = [:]
            var cellRows: [Bitmap] = []
            if let quantizer {
                progress("assigning \(live.count) rows to \(cells) cells")
                let vectors = try vectorReader(txn)
                var builders = [[UInt32]](repeating: [], count: cells)
                var i = 0
                for slot in live {
                    if i & 4095 == 0 {
                        try control.checkCancellation("the partitioning")
                        control.report(i / 2)
                    }
                    i += 1
                    let (_, x) = try vectorEntry(vectors, slot)
                    let c = cell(quantizer, of: x)
                    cellOfSlot[slot] = c
                    builders[c].append(slot)
                }
                cellRows = builders.map { Bitmap($0) }
                var below = Bitmap()
                for t in 1..<cells {
                    below.formUnion(cellRows[t - 1])
                    cutSets.append(below)
                }
            }
            let querySets = try queryOrder.map { q -> (Bitmap, Double) in
                var rows = try match(txn, try q.filter.map { try $0.bind(to: schema) }).slots
                if let probed = q.cells {
                    var inCells = Bitmap()
                    for c in probed { inCells.formUnion(cellRows[c]) }
                    rows.formIntersection(inCells)
                }
                return (rows, Double(queryWeights[q]!))
            }
            let floor = minRows ?? max(64, live.count / (4 * maxPartitions))
            var tree = QDTreeBuilder(live: live, cuts: cutSets, workload: querySets, minRows: floor, maxLeaves: maxPartitions)
            try control.checkCancellation("the partitioning")
            tree.build()
            try control.checkCancellation("the partitioning")
            progress("\(tree.leaves.count) partitions; rows the workload touches: \(Int(tree.rootCost)) → \(Int(tree.totalCost))")
            // Rows in leaf order, then the collection rewritten with slots 0, 1, 2, … in that order.
            let vectors = try vectorReader(txn)
            var rows: [PreparedRow] = []
            rows.reserveCapacity(live.count)
            var leaves: [PartitionLayout.Leaf] = []
            for (i, leaf) in tree.leaves.enumerated() {
                let start = UInt32(rows.count)
                // Within a partition, rows in cell order: neighbouring vectors in neighbouring slots.
                let ordered = quantizer == nil ? Array(leaf.rows)
                    : Array(leaf.rows).sorted { (cellOfSlot[$0]!, $0) < (cellOfSlot[$1]!, $1) }
                for slot in ordered {
                    if rows.count & 4095 == 0 {
                        try control.checkCancellation("the partitioning")
                        control.report(quantizer == nil ? rows.count : (live.count + rows.count) / 2)
                    }
                    let (id, x) = try vectorEntry(vectors, slot)
                    let record = try Keys.withRowKey(cid, slot) { k in try txn.withValue(db.rows, key: k) { Array($0) } }
                    guard let record, record.count >= 9 else {
                        throw SextantError(.corrupted, "live slot \(slot) has no row record", context: ["collection": name, "slot": String(slot)])
                    }
                    let attributes = try record.withUnsafeBytes { try decodeRowRecord($0).1 }
                    rows.append(PreparedRow(id: id, vector: Array(UnsafeBufferPointer(start: x.assumingMemoryBound(to: Float.self), count: dimension)),
                                            attributes: record, row: attributes))
                }
                leaves.append(PartitionLayout.Leaf(id: i, path: leaf.path, rows: leaf.rows.count, slots: start..<UInt32(rows.count)))
            }
            control.finishPhase()
            // The new graph, in memory, before anything is written: row i gets slot i.
            if hnswComponent != nil {
                var flat = [Float]()
                flat.reserveCapacity(rows.count * dimension)
                for r in rows { flat += r.vector }
                pendingGraph = try linkGraph(slots: (0..<UInt32(rows.count)).map { $0 }, vectors: flat, threads: graphThreads, control: control)
            }
            try clearRows(txn)
            var layout = PartitionLayout(cuts: cuts, nodes: tree.nodes, leaves: leaves, liveRows: live.count, workloadQueries: workload.count,
                                         rowsTouchedUnpartitioned: tree.rootCost, rowsTouchedPartitioned: tree.totalCost)
            layout.cells = cells
            layout.cellCuts = cells > 0 ? Array(1..<cells) : []
            // The new layout and cells first: writing the rows indexes their cells (the free
            // list is empty, so slots are handed out in order).
            try txn.put(db.index, key: indexKey("layout"), value: layout.serialized())
            if let quantizer {
                try txn.put(db.index, key: indexKey("cells"), value: quantizer.serialized())
            } else {
                _ = try txn.delete(db.index, key: indexKey("cells"))
            }
            control.begin(.writing, total: rows.count)
            var start = 0
            while start < rows.count {
                try control.checkCancellation("the partitioning")
                let end = min(rows.count, start + 8192)
                try write(Array(rows[start..<end]), txn)
                start = end
                control.report(start)
            }
            control.finishPhase()
            // The last point at which stopping leaves the store unchanged.
            try control.checkCancellation("the partitioning")
            return layout
        }
        store.costModels.drop(cid)
        // Committed: the rest runs to its end whatever happens to the caller.
        if let pendingGraph {
            progress("storing the graph")
            try store.env.write { txn in
                _ = try state(txn)
                if txn.snapshotID == rewriteID + 1 {
                    try storeGraph(txn, pendingGraph, control: control, cancellable: false)
                } else {
                    // Another writer committed in between: build over the rows as they are now.
                    try buildGraph(txn, threads: graphThreads, control: control, cancellable: false)
                }
            }
        }
        if pqComponent != nil || hnswComponent != nil { try control.phase(.calibrating) { _ = try calibrate() } }
        layout.liveRows = try count()
        return layout
    }

    /// Removes every row of the collection (ids, rows, vectors, free list, postings, codes,
    /// graph) and resets its counters; the catalog entry, codebook, layout and cost model stay.
    private func clearRows(_ txn: Transaction) throws {
        let prefix = Keys.prefix(cid)
        for d in [db.ids, db.rows, db.vectors, db.free, db.postings, db.codes, db.graph, db.links] {
            try txn.withCursor(d) { c in
                var more = try c.seek(prefix)
                while more, c.key.count >= 4, c.key.starts(with: prefix) {
                    try c.deleteCurrent()
                    more = try c.seek(prefix)
                }
            }
        }
        _ = try txn.delete(db.index, key: indexKey("hnsw"))
        try CollectionState(count: 0, nextSlot: 0).write(txn, db.state, cid: cid)
    }

    // MARK: Reading

    /// The collection's layout, or nil when it was never partitioned.
    ///
    /// - Throws: `notFound` when the collection was dropped, `corrupted` for a layout that does not
    ///   decode, storage errors (`mapFull`, `io`, `storage`, ...).
    public func partitionLayout() throws -> PartitionLayout? {
        try store.env.read { txn in
            _ = try state(txn)
            return try partitionLayout(txn)
        }
    }

    func partitionLayout(_ txn: Transaction) throws -> PartitionLayout? {
        let found: PartitionLayout?? = try txn.withValue(db.index, key: indexKey("layout")) { v in
            try PartitionLayout(serialized: v, schema: schema, collection: name)
        }
        return found ?? nil
    }

    /// The layout with its cuts bound to the schema, for placing new rows; nil without one.
    func partitionRouting(_ txn: Transaction) throws -> PartitionRouting? {
        guard let layout = try partitionLayout(txn) else { return nil }
        return PartitionRouting(layout: layout, cuts: try layout.cuts.map { try $0.bind(to: schema) },
                                quantizer: layout.cells > 0 ? try coarseQuantizer(txn) : nil)
    }

    /// The coarse quantizer of the collection's layout (stored under its `cells` key), or nil.
    func coarseQuantizer(_ txn: Transaction) throws -> CoarseQuantizer? {
        let found: CoarseQuantizer?? = try txn.withValue(db.index, key: indexKey("cells")) { v in
            do { return try CoarseQuantizer(serialized: v) } catch {
                throw SextantError(.corrupted, "cells of '\(name)': \(error)", context: ["collection": name])
            }
        }
        guard let cq = found ?? nil else { return nil }
        guard cq.dimension == dimension else {
            throw SextantError(.corrupted, "cells of '\(name)' have dimension \(cq.dimension), the collection \(dimension)", context: ["collection": name])
        }
        return cq
    }

    /// The cell of a stored or given vector (`dimension` floats): cosine collections assign
    /// normalised vectors, as queries probe with normalised ones.
    func cell(_ quantizer: CoarseQuantizer, of x: UnsafeRawPointer) -> Int {
        guard metric == .cosine else { return quantizer.cell(of: x) }
        let v = VectorCollection.normalized(VectorCollection.floats(x, dimension))
        return quantizer.cell(of: v)
    }

    /// Trains the coarse quantizer on up to 64 rows per cell (at least 16,384) of the live rows.
    private func trainCells(_ cells: Int, control: OperationControl) throws -> CoarseQuantizer {
        let limit = max(16_384, 64 * cells)
        let sample: [Float] = try store.env.read { txn in
            let live = try IndexReader(txn: txn, db: db.postings, cid: cid).live()
            let step = max(1, live.count / limit)
            let reader = try vectorReader(txn)
            var out: [Float] = []
            var i = 0
            control.begin(.reading, total: live.count)
            defer { control.finishPhase() }
            for slot in live {
                defer { i += 1 }
                if i & 4095 == 0 {
                    try control.checkCancellation("the partitioning")
                    control.report(i)
                }
                guard i % step == 0, out.count < limit * dimension else { continue }
                let (_, x) = try vectorEntry(reader, slot)
                let v = VectorCollection.floats(x, dimension)
                out += metric == .cosine ? VectorCollection.normalized(v) : v
            }
            return out
        }
        let n = sample.count / dimension
        guard n >= cells else {
            throw SextantError(.invalidArgument, "collection '\(name)' has \(n) rows; \(cells) cells need at least as many", context: ["collection": name])
        }
        control.note("training \(cells) cells on \(n) vectors")
        return try control.phase(.training) {
            do {
                return try CoarseQuantizer(training: sample, dimension: dimension, cells: cells, seed: UInt64(cid) &+ 0x5EC7)
            } catch {
                throw SextantError(.invalidArgument, "cannot train \(cells) cells for '\(name)': \(error)", context: ["collection": name])
            }
        }
    }

    /// Each partition's rows now (exact, from its predicates) as slots.
    func partitionMembers(_ txn: Transaction, _ layout: PartitionLayout) throws -> [Bitmap] {
        let live = try IndexReader(txn: txn, db: db.postings, cid: cid).live()
        let reader = IndexReader(txn: txn, db: db.postings, cid: cid)
        var cutSets = try layout.cuts.map { try match(txn, try $0.bind(to: schema)).slots }
        if !layout.cellCuts.isEmpty {
            // `cell < t`: the union of the cell postings below t.
            var below = Bitmap()
            var byThreshold: [Int: Bitmap] = [:]
            for c in 0..<layout.cells {
                byThreshold[c] = below
                below.formUnion(try reader.cell(c))
            }
            cutSets += layout.cellCuts.map { byThreshold[$0] ?? Bitmap() }
        }
        return layout.leaves.map { leaf in
            var s = live
            for step in leaf.path { s = step.holds ? s.intersection(cutSets[step.cut]) : s.subtracting(cutSets[step.cut]) }
            return s
        }
    }

    /// Rows per partition now, how many still sit in their partition's slot range, and the drift.
    ///
    /// - Throws: `notFound`, `corrupted`, storage errors (`mapFull`, `io`, `storage`, ...).
    public func partitionStatistics() throws -> PartitionStatistics? {
        try store.env.read { txn in
            _ = try state(txn)
            guard let layout = try partitionLayout(txn) else { return nil }
            let members = try partitionMembers(txn, layout)
            var leaves: [PartitionStatistics.Leaf] = []
            var inPlace = 0, live = 0
            for (leaf, m) in zip(layout.leaves, members) {
                let here = m.intersectionCount(Bitmap(range: leaf.slots))
                inPlace += here
                live += m.count
                leaves.append(.init(id: leaf.id, description: layout.describe(leaf), rowsAtLayout: leaf.rows, rows: m.count, rowsInPlace: here))
            }
            var stats = PartitionStatistics(leaves: leaves, liveRows: live, drift: live == 0 ? 0 : Double(live - inPlace) / Double(live))
            stats.cells = layout.cells
            return stats
        }
    }

    /// Partitions holding at least one of `candidates` (1 without a layout).
    func partitionsTouched(_ txn: Transaction, _ candidates: Bitmap) throws -> Int {
        guard let layout = try partitionLayout(txn) else { return 1 }
        return try partitionMembers(txn, layout).filter { !$0.isDisjoint(with: candidates) }.count
    }
}

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

extension Filter {
    /// The comparisons a predicate is made of (each a candidate cut), outermost first.
    var atoms: [Filter] {
        switch self {
        case .matchAll: return []
        case .and(let ps), .or(let ps): return ps.flatMap(\.atoms)
        case .not(let p): return p.atoms
        default: return [self]
        }
    }
}

// MARK: Persistence

extension PartitionLayout {
    /// JSON record under the collection's `layout` key of `sextant.index`.
    func serialized() -> [UInt8] {
        let nodes: [JSONValue] = self.nodes.map { n in
            switch n {
            case .leaf(let l): return .object(JSONObject([("leaf", .int(Int64(l)))]))
            case .split(let c, let l, let r): return .object(JSONObject([("cut", .int(Int64(c))), ("left", .int(Int64(l))), ("right", .int(Int64(r)))]))
            }
        }
        let leaves: [JSONValue] = self.leaves.map { leaf in
            .object(JSONObject([
                ("id", .int(Int64(leaf.id))), ("rows", .int(Int64(leaf.rows))),
                ("start", .int(Int64(leaf.slots.lowerBound))), ("end", .int(Int64(leaf.slots.upperBound))),
                ("path", .array(leaf.path.map { .array([.int(Int64($0.cut)), .bool($0.holds)]) })),
            ]))
        }
        return Array(JSONValue.object(JSONObject([
            ("version", .int(2)), ("cuts", .array(cuts.map { .string($0.toSQL()) })),
            ("cells", .int(Int64(cells))), ("cellCuts", .array(cellCuts.map { .int(Int64($0)) })),
            ("nodes", .array(nodes)), ("leaves", .array(leaves)),
            ("liveRows", .int(Int64(liveRows))), ("workloadQueries", .int(Int64(workloadQueries))),
            ("rowsTouchedUnpartitioned", .double(rowsTouchedUnpartitioned)), ("rowsTouchedPartitioned", .double(rowsTouchedPartitioned)),
        ])).jsonText.utf8)
    }

    init(serialized v: UnsafeRawBufferPointer, schema: Schema, collection: String) throws {
        func bad(_ why: String) -> SextantError { SextantError(.corrupted, "partition layout of '\(collection)': \(why)", context: ["collection": collection]) }
        let json: JSONValue
        do { json = try JSONValue(parsing: v) } catch { throw bad("not JSON") }
        guard case .int(let version)? = json["version"], version == 1 || version == 2,
              case .array(let cutTexts)? = json["cuts"], case .array(let nodeValues)? = json["nodes"],
              case .array(let leafValues)? = json["leaves"], case .int(let live)? = json["liveRows"], case .int(let wq)? = json["workloadQueries"]
        else { throw bad("missing fields") }
        func int(_ x: JSONValue?) throws -> Int {
            guard case .int(let i)? = x, i >= 0, i <= Int64(UInt32.max) else { throw bad("expected a count") }
            return Int(i)
        }
        func double(_ x: JSONValue?) -> Double {
            switch x { case .double(let d)?: return d; case .int(let i)?: return Double(i); default: return 0 }
        }
        cuts = try cutTexts.map { t in
            guard case .string(let s) = t else { throw bad("a cut is not text") }
            do { let f = try Filter(sql: s); _ = try f.bind(to: schema); return f } catch { throw bad("cut '\(s)' does not parse") }
        }
        var cellCount = 0, thresholds: [Int] = []
        if version == 2 {
            guard case .array(let cc)? = json["cellCuts"] else { throw bad("missing cell cuts") }
            cellCount = try int(json["cells"])
            thresholds = try cc.map { try int($0) }
            guard thresholds.allSatisfy({ $0 >= 1 && $0 < max(1, cellCount) }) else { throw bad("cell cut out of range") }
        }
        cells = cellCount
        cellCuts = thresholds
        let cutCount = cutTexts.count + thresholds.count
        nodes = try nodeValues.map { n in
            if let l = n["leaf"] { return .leaf(try int(l)) }
            let c = try int(n["cut"]), l = try int(n["left"]), r = try int(n["right"])
            guard c < cutCount, l < nodeValues.count, r < nodeValues.count else { throw bad("node out of range") }
            return .split(cut: c, left: l, right: r)
        }
        leaves = try leafValues.enumerated().map { i, x in
            guard case .array(let steps)? = x["path"] else { throw bad("leaf without path") }
            let path = try steps.map { s -> Step in
                guard case .array(let p) = s, p.count == 2, case .bool(let holds) = p[1] else { throw bad("bad path step") }
                let c = try int(p[0])
                guard c < cutCount else { throw bad("path cut out of range") }
                return Step(cut: c, holds: holds)
            }
            let start = try int(x["start"]), end = try int(x["end"])
            guard start <= end, try int(x["id"]) == i else { throw bad("bad leaf \(i)") }
            return Leaf(id: i, path: path, rows: try int(x["rows"]), slots: UInt32(start)..<UInt32(end))
        }
        for n in nodes { if case .leaf(let l) = n, l >= leaves.count { throw bad("leaf node out of range") } }
        liveRows = Int(live)
        workloadQueries = Int(wq)
        rowsTouchedUnpartitioned = double(json["rowsTouchedUnpartitioned"])
        rowsTouchedPartitioned = double(json["rowsTouchedPartitioned"])
    }
}

/// Where a row written after partitioning belongs: the leaf whose path of cuts its
/// attributes (and vector cell) satisfy (TRUE on a left step, FALSE or NULL on a right one).
struct PartitionRouting {
    let layout: PartitionLayout
    let cuts: [BoundFilter]
    /// The layout's cells, when it has them.
    let quantizer: CoarseQuantizer?

    /// The end of the partitioned slot range: freed slots past it belong to no leaf.
    var end: UInt32 { layout.leaves.map(\.slots.upperBound).max() ?? 0 }

    func leaf(of row: AttributeRow, cell: Int? = nil) -> PartitionLayout.Leaf? {
        layout.leaves.first { leaf in
            leaf.path.allSatisfy { s in
                s.cut < cuts.count ? cuts[s.cut].matches(row) == s.holds
                    : ((cell ?? 0) < layout.cellCuts[s.cut - cuts.count]) == s.holds
            }
        }
    }
}

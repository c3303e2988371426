import Foundation
import SextantKernels
import SextantStorage

extension VectorCollection {
    // MARK: Building

    /// Re-lays the collection out for `workload` (one predicate per query; nil matches every
    /// row): builds a qd-tree whose cuts are the workload's atomic predicates, choosing greedily
    /// the cut that most reduces the rows the workload touches, until no cut helps, a partition
    /// would fall under `minRows`, or there are `maxPartitions`; then rewrites the rows so each
    /// partition occupies consecutive slots, renaming the graph's nodes to the new slots (the
    /// same vectors keep the same edges; codes keep their codebook).
    ///
    /// Vector locality: with `cells` > 0 (a multiple of 16) a coarse quantizer is trained on the
    /// rows' vectors and every row gets a cell (its nearest centroid), kept in an index under
    /// writes. Rows of a partition are laid out in cell order, and `cell < t` joins the
    /// candidate cuts. With `queryVectors` (one per workload line), each workload query counts
    /// as probing its `probes` nearest cells, so cuts on cells pay where the workload's vectors
    /// concentrate; searches that set ``SearchOptions/probes`` then read only those cells.
    ///
    /// Everything is rewritten in one write transaction, reading the old rows a chunk at a time
    /// from the snapshot it started from (memory stays bounded: the graph and one chunk), so
    /// readers see the old layout or the new, never a mix. Row ids, vectors and attributes do
    /// not change, nor do search results of exact plans, nor the graph's recall. The pages
    /// of the old layout go to the free list, where later writes reuse them; the file does not
    /// shrink by itself (`sextant partition` compacts the store afterwards; a library caller
    /// can close the store and call `Store.compact(path:)`). `threads` is accepted for
    /// source compatibility and unused: nothing is rebuilt in parallel any more.
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
    /// partitions), `writing`, `storing` (the graph, with HNSW) and
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
        // Cells: reading, training; then placing, writing, (storing a built graph), (calibrating).
        let storesGraph = try store.env.read { try graphBuilt($0) }
        control.expect(steps: (cells > 0 ? 2 : 0) + 2 + (storesGraph ? 1 : 0) + (pqComponent != nil || hnswComponent != nil ? 1 : 0))
        try checkPartitionArguments(workload: workload, maxPartitions: maxPartitions, cells: cells, queryVectors: queryVectors, probes: probes)
        let quantizer = cells > 0 ? try trainCells(cells, control: control) : nil
        try control.checkCancellation("the partitioning")
        let queries = try workloadQueries(workload, quantizer: quantizer, queryVectors: queryVectors, probes: probes)
        let cuts = candidateCuts(workload)
        let boundCuts = try cuts.map { try $0.bind(to: schema) }
        progress("\(cuts.count) candidate cuts\(cells > 0 ? " and \(cells - 1) cell cuts" : "") from \(workload.count) queries (\(queries.order.count) distinct)")
        var keptRecall: RecallModel? = nil
        var layout = try store.env.write { txn -> PartitionLayout in
            _ = try state(txn)
            let live = try IndexReader(txn: txn, db: db.postings, cid: cid).live()
            let key = CostModelCache.CalibrationKey(hasGraph: try graphBuilt(txn), hasCodes: try hasCodes(txn), liveRows: live.count)
            keptRecall = try storedCostModel(txn, key)?.recall
            control.begin(.placing, total: live.count)
            var cutSets = try boundCuts.map { try match(txn, $0).slots }
            // Every row's cell, and the rows of each cell.
            var cellOfSlot: [UInt32: Int]? = nil
            var cellRows: [Bitmap] = []
            if let quantizer {
                let assigned = try assignCells(txn, live: live, quantizer: quantizer, cells: cells, control: control)
                cellOfSlot = assigned.cellOfSlot
                cellRows = assigned.cellRows
                var below = Bitmap()
                for t in 1..<cells {
                    below.formUnion(cellRows[t - 1])
                    cutSets.append(below)
                }
            }
            let tree = try placementTree(txn, live: live, cutSets: cutSets, queries: queries, cellRows: cellRows,
                                         minRows: minRows, maxPartitions: maxPartitions, control: control)
            // Rows in leaf order, then the collection rewritten with slots 0, 1, 2, … in that order.
            let (order, leaves) = slotOrder(tree, liveRows: live.count, cellOfSlot: cellOfSlot)
            control.finishPhase()
            var layout = PartitionLayout(cuts: cuts, nodes: tree.nodes, leaves: leaves, liveRows: live.count, workloadQueries: workload.count,
                                         rowsTouchedUnpartitioned: tree.rootCost, rowsTouchedPartitioned: tree.totalCost)
            layout.cells = cells
            layout.cellCuts = cells > 0 ? Array(1..<cells) : []
            try rewrite(txn, to: layout, order: order, quantizer: quantizer, control: control)
            return layout
        }
        store.costModels.drop(cid)
        if pqComponent != nil || hnswComponent != nil { try control.phase(.calibrating) { _ = try calibrate(queries: nil, recall: keptRecall) } }
        layout.liveRows = try count()
        return layout
    }

    /// Throws `invalidArgument` for an empty workload, `maxPartitions` < 1, a bad `cells` or
    /// `probes`, or query vectors not matching the workload or the collection.
    private func checkPartitionArguments(workload: [Filter?], maxPartitions: Int, cells: Int, queryVectors: [[Float]]?, probes: Int) throws {
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

    /// The workload's distinct queries in first-seen order with their weights (how many lines
    /// repeat them), after binding every predicate to the schema (which throws for one that
    /// does not bind).
    private func workloadQueries(_ workload: [Filter?], quantizer: CoarseQuantizer?, queryVectors: [[Float]]?,
                                 probes: Int) throws -> (order: [WorkloadQuery], weights: [WorkloadQuery: Int]) {
        let bound = try workload.map { f in try f.map { try $0.bind(to: schema) } }
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
        return (queryOrder, queryWeights)
    }

    /// The candidate cuts: the workload's 64 heaviest atomic predicates.
    private func candidateCuts(_ workload: [Filter?]) -> [Filter] {
        // Atomic predicates of the workload, by weight (how many queries use them).
        var weights: [Filter: Int] = [:]
        var order: [Filter] = []
        for f in workload.compactMap({ $0 }) {
            for atom in Set(f.atoms) {
                if weights[atom] == nil { order.append(atom) }
                weights[atom, default: 0] += 1
            }
        }
        return Array(order.sorted { weights[$0]! > weights[$1]! }.prefix(64))
    }

    /// Every live row's cell (its nearest centroid), and the rows of each cell.
    private func assignCells(_ txn: Transaction, live: Bitmap, quantizer: CoarseQuantizer, cells: Int,
                             control: OperationControl) throws -> (cellOfSlot: [UInt32: Int], cellRows: [Bitmap]) {
        control.note("assigning \(live.count) rows to \(cells) cells")
        let vectors = try vectorReader(txn)
        var cellOfSlot: [UInt32: Int] = [:]
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
        return (cellOfSlot, builders.map { Bitmap($0) })
    }

    /// The qd-tree over `cutSets` for the workload: each distinct query weighs on the rows it
    /// matches (within the cells it probes, when it has vectors); partitions keep at least
    /// `minRows` rows (by default a quarter of an even share).
    private func placementTree(_ txn: Transaction, live: Bitmap, cutSets: [Bitmap], queries: (order: [WorkloadQuery], weights: [WorkloadQuery: Int]),
                               cellRows: [Bitmap], minRows: Int?, maxPartitions: Int, control: OperationControl) throws -> QDTreeBuilder {
        let querySets = try queries.order.map { q -> (Bitmap, Double) in
            var rows = try match(txn, try q.filter.map { try $0.bind(to: schema) }).slots
            if let probed = q.cells {
                var inCells = Bitmap()
                for c in probed { inCells.formUnion(cellRows[c]) }
                rows.formIntersection(inCells)
            }
            return (rows, Double(queries.weights[q]!))
        }
        let floor = minRows ?? max(64, live.count / (4 * maxPartitions))
        var tree = QDTreeBuilder(live: live, cuts: cutSets, cellRows: cellRows, workload: querySets, minRows: floor, maxLeaves: maxPartitions)
        try control.checkCancellation("the partitioning")
        tree.build()
        try control.checkCancellation("the partitioning")
        control.note("\(tree.leaves.count) partitions; rows the workload touches: \(Int(tree.rootCost)) → \(Int(tree.totalCost))")
        return tree
    }

    /// The rows in leaf order (their new slots) and each leaf's slot range.
    private func slotOrder(_ tree: QDTreeBuilder, liveRows: Int, cellOfSlot: [UInt32: Int]?) -> (order: [UInt32], leaves: [PartitionLayout.Leaf]) {
        var order: [UInt32] = []
        order.reserveCapacity(liveRows)
        var leaves: [PartitionLayout.Leaf] = []
        for (i, leaf) in tree.leaves.enumerated() {
            let start = UInt32(order.count)
            // Within a partition, rows in cell order: neighbouring vectors in neighbouring slots.
            if let cellOfSlot {
                order += Array(leaf.rows).sorted { (cellOfSlot[$0]!, $0) < (cellOfSlot[$1]!, $1) }
            } else {
                order += leaf.rows
            }
            leaves.append(PartitionLayout.Leaf(id: i, path: leaf.path, rows: leaf.rows.count, slots: start..<UInt32(order.count)))
        }
        return (order, leaves)
    }

    /// Rewrites the collection in `txn` to `layout`: the rows of `order` at slots 0, 1, 2, …,
    /// the graph renamed to them, the layout and its cells stored.
    private func rewrite(_ txn: Transaction, to layout: PartitionLayout, order: [UInt32], quantizer: CoarseQuantizer?,
                         control: OperationControl) throws {
        // The graph keeps its edges under the new slot numbers: the same vectors, the same
        // graph, so nothing is searched again (and the recall model still holds).
        let relabelled = try relabelledGraph(txn, order: order)
        try clearRows(txn)
        // The new layout and cells first: writing the rows indexes their cells (the free
        // list is empty, so slots are handed out in order).
        try txn.put(db.index, key: indexKey("layout"), value: layout.serialized())
        if let quantizer {
            try txn.put(db.index, key: indexKey("cells"), value: quantizer.serialized())
        } else {
            _ = try txn.delete(db.index, key: indexKey("cells"))
        }
        try rewriteRows(txn, order: order, control: control)
        if let relabelled { try storeGraph(txn, relabelled, control: control, cancellable: true) }
        // The last point at which stopping leaves the store unchanged.
        try control.checkCancellation("the partitioning")
    }

    /// The collection's graph with every node renamed from its slot to its position in `order`
    /// (the new slots), in memory; nil without a built graph. Read before the rows are cleared.
    private func relabelledGraph(_ txn: Transaction, order: [UInt32]) throws -> PendingGraph? {
        guard let g = try graph(txn) else { return nil }
        var renamed = [UInt32](repeating: .max, count: Int(g.nodeIDBound))
        for (i, slot) in order.enumerated() { renamed[Int(slot)] = UInt32(i) }
        let built = InMemoryGraph(parameters: g.parameters, capacity: order.count)
        var list: [UInt32] = []
        for (i, slot) in order.enumerated() {
            guard let top = try g.level(of: slot) else { continue }
            built.setLevel(top, of: UInt32(i))
            for l in 0...top {
                list.removeAll(keepingCapacity: true)
                try g.withNeighbors(of: slot, level: l) { for n in $0 where Int(n) < renamed.count && renamed[Int(n)] != .max { list.append(renamed[Int(n)]) } }
                list.withUnsafeBufferPointer { built.setNeighbors(of: UInt32(i), level: l, to: $0) }
            }
        }
        built.setEntryPoint(try g.entryPoint().flatMap { e in
            renamed[Int(e.node)] == .max ? nil : GraphEntryPoint(node: renamed[Int(e.node)], level: e.level)
        })
        return PendingGraph(slots: (0..<UInt32(order.count)).map { $0 }, graph: built)
    }

    /// Writes the rows of `order` (slots of the snapshot `txn` started from) again, at slots
    /// 0, 1, 2, …, after ``clearRows(_:)`` emptied the collection in `txn`. The old rows are
    /// read from a read transaction on that snapshot (the writer lock is held, so it is the
    /// one `txn` began from), a chunk at a time: memory stays bounded whatever the size.
    private func rewriteRows(_ txn: Transaction, order: [UInt32], control: OperationControl) throws {
        control.begin(.writing, total: order.count)
        try store.env.read { old in
            guard old.snapshotID + 1 == txn.snapshotID else {
                throw SextantError(.storage, "the partitioning could not read the snapshot it started from", context: ["collection": name])
            }
            let vectors = try vectorReader(old)
            var start = 0
            var chunk: [PreparedRow] = []
            while start < order.count {
                try control.checkCancellation("the partitioning")
                let end = min(order.count, start + 8192)
                chunk.removeAll(keepingCapacity: true)
                for slot in order[start..<end] {
                    let (id, x) = try vectorEntry(vectors, slot)
                    let record = try Keys.withRowKey(cid, slot) { k in try old.withValue(db.rows, key: k) { Array($0) } }
                    guard let record, record.count >= 9 else {
                        throw SextantError(.corrupted, "live slot \(slot) has no row record", context: ["collection": name, "slot": String(slot)])
                    }
                    let attributes = try record.withUnsafeBytes { try decodeRowRecord($0).1 }
                    chunk.append(PreparedRow(id: id, vector: Array(UnsafeBufferPointer(start: x.assumingMemoryBound(to: Float.self), count: dimension)),
                                             attributes: record, row: attributes))
                }
                try write(chunk, txn)
                start = end
                control.report(start)
                // The old rows already copied need not stay resident.
                if (start / 8192) % 16 == 0 { store.env.releaseMappedPages() }
            }
        }
        control.finishPhase()
    }

    /// Removes every row of the collection (ids, rows, vectors, free list, postings, codes,
    /// graph) and resets its counters; the catalog entry, codebook, layout and cost model stay.
    private func clearRows(_ txn: Transaction) throws {
        for d in [db.ids, db.rows, db.vectors, db.free, db.postings, db.codes, db.graph, db.links] {
            try txn.deleteAll(d, prefix: Keys.prefix(cid))
        }
        _ = try txn.delete(db.index, key: indexKey("hnsw"))
        try CollectionState(count: 0, nextSlot: 0).write(txn, db.state, cid: cid)
    }
}

/// A distinct workload query: a predicate, and the cells it probes when vectors are given.
private struct WorkloadQuery: Hashable {
    var filter: Filter?
    var cells: [Int]?
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

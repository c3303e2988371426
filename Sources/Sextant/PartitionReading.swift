import SextantKernels
import SextantStorage

extension VectorCollection {
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

    /// The coarse quantizer of the collection's layout (stored under its `cells` key), or nil;
    /// decoded once per read snapshot.
    func coarseQuantizer(_ txn: Transaction) throws -> CoarseQuantizer? {
        if txn.isWritable { return try readCoarseQuantizer(txn) }
        return try cellEntry(txn).quantizer
    }

    /// The snapshot's cells (read transactions only).
    func cellEntry(_ txn: Transaction) throws -> CellCache.Entry {
        try store.cellCache.entry(cid, snapshot: txn.snapshotID) { try readCoarseQuantizer(txn) }
    }

    /// The slots of cell `c` in the snapshot of `txn`, decoded once per read snapshot.
    func cellSlots(_ txn: Transaction, _ c: Int, reader: IndexReader) throws -> Bitmap {
        if txn.isWritable { return try reader.cell(c) }
        return try cellEntry(txn).cell(c) { try reader.cell(c) }
    }

    private func readCoarseQuantizer(_ txn: Transaction) throws -> CoarseQuantizer? {
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

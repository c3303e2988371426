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

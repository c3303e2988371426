import SextantKernels

/// The state of a collection's graph, for `stat --graph`.
public struct GraphStatistics: Sendable {
    /// Nodes (live rows linked into the graph).
    public var nodes: Int
    /// Live rows level-0 traversal from the entry point does not reach (0 after every write).
    public var unreachable: Int
    /// The entry point of traversals (node and top level); nil for an empty graph.
    public var entryPoint: GraphEntryPoint?
    /// Out-degree statistics per level, level 0 first.
    public var degrees: [GraphDegreeStatistics]
    /// Structural problems found (see `check`).
    public var problems: Int
}

extension VectorCollection {
    /// Walks the graph once (structure, reachability, degrees); nil when it is not built.
    ///
    /// - Throws: `notFound` when the collection was dropped, `corrupted`, storage errors
    ///   (`mapFull`, `io`, `storage`, ...).
    public func graphStatistics() throws -> GraphStatistics? {
        try store.env.read { txn in
            _ = try state(txn)
            guard let g = try graph(txn) else { return nil }
            let r = try HNSW.check(storage: g, parameters: g.parameters, issueLimit: 0)
            return GraphStatistics(nodes: r.nodeCount, unreachable: r.unreachableCount, entryPoint: r.entryPoint,
                                   degrees: r.degrees, problems: r.issueCount)
        }
    }
}

// The storage abstraction the HNSW algorithms run over.
//
// Nodes are dense `UInt32` ids (the engine's row slots). A node present in the graph has a
// top level `L >= 0` and one neighbour list per level `0...L`. Lists have a fixed maximum
// length — `2M` at level 0 and `M` above (``HNSWParameters/maxDegree(atLevel:)``) — so a
// store can keep each list in a fixed-size record (`count` + ids) and hand it out in place.
//
// Backing a store (e.g. LMDB): one fixed-size record per (node, level) — `count: UInt32`
// then `maxDegree(atLevel:)` ids — read in place from the map by `withNeighbors`; the
// node's level in a small per-node field (or implied by which records exist); the entry
// point and `HNSWParameters` in the index's metadata. Searches only read, so any number of
// threads may search one snapshot, each with its own `HNSWSearchContext`. Inserts, repair
// and update need a single writer (or a store that locks per node, as the in-memory
// parallel build does through `updateNeighbors`).
//
// The algorithms are generic over these protocols and `@inlinable`, so a caller in another
// module gets them specialised for its own store and distance source: no existential
// dispatch and no allocation per hop. Every storage method may throw (I/O, corruption);
// errors propagate unchanged out of search, insert, repair and check.

/// The node searches start from: the graph's entry point and the graph's top level.
public struct GraphEntryPoint: Sendable, Hashable {
    /// A node whose top level is ``level``.
    public var node: UInt32
    /// The graph's top level (no node has a higher one).
    public var level: Int

    @inlinable
    public init(node: UInt32, level: Int) {
        self.node = node
        self.level = level
    }
}

/// Read access to a layered proximity graph.
///
/// Implementations for a memory-mapped store can hand out adjacency records in place:
/// the buffer passed to `withNeighbors` only has to stay valid for the duration of the call.
public protocol GraphStorage {
    /// One past the largest node id that may be in the graph. Sizes the per-query visited
    /// set; ids at or above it met in adjacency are ignored by search and reported by check.
    var nodeIDBound: UInt32 { get }

    /// The entry point and top level, or `nil` for an empty graph.
    func entryPoint() throws -> GraphEntryPoint?

    /// The node's top level, or `nil` when the node is not in the graph.
    func level(of node: UInt32) throws -> Int?

    /// Calls `body` with the neighbours of `node` at `level` (empty when the node has no
    /// list there). The buffer is only valid during the call; search copies what it needs
    /// out of it, so `body` is always short.
    func withNeighbors<R>(
        of node: UInt32, level: Int, _ body: (UnsafeBufferPointer<UInt32>) throws -> R
    ) throws -> R

    /// A hint that `node`'s list at `level` is about to be read: a store in memory can ask
    /// the CPU to fetch it. The default does nothing.
    func prefetchNeighbors(of node: UInt32, level: Int)
}

extension GraphStorage {
    @inlinable @inline(__always)
    public func prefetchNeighbors(of node: UInt32, level: Int) {}
}

/// Write access to a layered proximity graph (single writer unless the store says otherwise).
public protocol MutableGraphStorage: GraphStorage {
    /// Adds `node` with top level `level` and empty lists at `0...level`, or, when it is
    /// already present, resets it to that level with empty lists.
    mutating func setLevel(_ level: Int, of node: UInt32) throws

    /// Replaces the neighbours of `node` at `level` (`level` is at most the node's level;
    /// `neighbors.count` is at most the level's maximum degree).
    mutating func setNeighbors(of node: UInt32, level: Int, to neighbors: UnsafeBufferPointer<UInt32>) throws

    /// Replaces the entry point (`nil` empties the graph's entry).
    mutating func setEntryPoint(_ entry: GraphEntryPoint?) throws

    /// Removes `node` and its lists; its slot may then be reused by an insert.
    mutating func removeNode(_ node: UInt32) throws

    /// Read-modify-write of one list: `body` gets the current list and returns the new one
    /// (memory owned by the caller, valid during the call) or `nil` to leave it unchanged.
    ///
    /// A default implementation reads, then calls `setNeighbors`; a store shared by several
    /// inserting threads overrides it to hold the node's lock across both steps.
    mutating func updateNeighbors(
        of node: UInt32, level: Int,
        _ body: (UnsafeBufferPointer<UInt32>) throws -> UnsafeBufferPointer<UInt32>?
    ) throws
}

extension MutableGraphStorage {
    @inlinable
    public mutating func updateNeighbors(
        of node: UInt32, level: Int,
        _ body: (UnsafeBufferPointer<UInt32>) throws -> UnsafeBufferPointer<UInt32>?
    ) throws {
        // The new list may alias scratch memory that `body` fills while reading the old
        // one, so the write happens after the read has finished.
        let replacement = try withNeighbors(of: node, level: level) { try body($0) }
        if let replacement { try setNeighbors(of: node, level: level, to: replacement) }
    }
}

/// Scores a prepared query against stored nodes, and stored nodes against each other.
///
/// The graph code never sees vectors: a source may compute exact float distances from a
/// zero-copy pointer to each node's vector, or approximate ones from compressed codes.
/// Search and insert call it only with node ids that are present in the graph.
public protocol GraphDistanceSource {
    /// A query ready to be scored (e.g. a pointer to its floats plus its norm, or a
    /// PQ distance table). Only needs to stay valid while the search or insert runs.
    associatedtype Query

    /// The query that inserting `node` searches with: the node's own stored vector.
    func query(for node: UInt32) throws -> Query

    /// Distance from `query` to `node` (smaller is closer).
    func distance(_ query: Query, to node: UInt32) throws -> Float

    /// Distances from `query` to each of `nodes`, written to `out[0..<nodes.count]`. Search
    /// calls this once per expanded node with its unvisited neighbours, so a source can
    /// batch its reads; the default loops over ``distance(_:to:)``.
    func distances(_ query: Query, to nodes: UnsafeBufferPointer<UInt32>, into out: UnsafeMutablePointer<Float>) throws

    /// Distance between two stored nodes (neighbour selection, repair).
    func distance(between a: UInt32, and b: UInt32) throws -> Float

    /// The distance a search reports for a result, when it must differ from the traversal's:
    /// a source whose traversal kernels are faster but not bit-identical to the exact plans'
    /// (``FlatVectors``) returns the reference value, which searches then report and order
    /// their final results by. `nil` (the default) keeps the traversal's distance.
    func resultDistance(_ query: Query, to node: UInt32) throws -> Float?

    /// A hint that `node` is about to be scored: a source in memory can ask the CPU to fetch
    /// the start of its vector. The default does nothing.
    func prefetch(_ node: UInt32)

    /// A hint that `node`'s result distance is about to be computed (the default does nothing).
    func prefetchResult(_ node: UInt32)

    /// Whether searches re-rank the head of their beam (its best `max(2k, 20)`) by
    /// ``resultDistance(_:to:)`` before taking the best `k` (a source whose traversal distances are approximations, e.g. of quantized
    /// codes), instead of re-scoring only the final `k`. The default is false.
    var rescoresBeam: Bool { get }
}

extension GraphDistanceSource {
    @inlinable
    public func resultDistance(_ query: Query, to node: UInt32) throws -> Float? { nil }

    @inlinable
    public var rescoresBeam: Bool { false }

    @inlinable @inline(__always)
    public func prefetchResult(_ node: UInt32) {}

    @inlinable @inline(__always)
    public func prefetch(_ node: UInt32) {}

    @inlinable
    public func distances(_ query: Query, to nodes: UnsafeBufferPointer<UInt32>, into out: UnsafeMutablePointer<Float>) throws {
        for i in nodes.indices { out[i] = try distance(query, to: nodes[i]) }
    }
}

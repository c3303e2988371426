import CSextantSIMD
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An HNSW graph in flat memory: level-0 lists in one array of fixed-size records
/// (`count` + `2m` ids, hnswlib's layout, so a hop reads one contiguous record), upper-level
/// lists in one small allocation per node that has any.
///
/// Concurrent reads (searches) are safe while nobody writes; writes need exclusive access,
/// except inside ``build(count:parameters:distances:threads:progress:isCancelled:)``, which locks per node.
public final class InMemoryGraph: MutableGraphStorage, @unchecked Sendable {
    /// The parameters the record sizes come from.
    public let parameters: HNSWParameters
    @usableFromInline let stride0: Int
    @usableFromInline let strideUpper: Int
    @usableFromInline var capacity: Int
    /// Level-0 records, `stride0` words per node slot: `[count, id0, id1, …]`.
    @usableFromInline var level0: UnsafeMutablePointer<UInt32>
    /// Top level per slot; -1 for an absent node.
    @usableFromInline var levels: UnsafeMutablePointer<Int8>
    /// Per slot: `level` records of `strideUpper` words for levels 1…level, or nil.
    @usableFromInline var upper: UnsafeMutablePointer<UnsafeMutablePointer<UInt32>?>
    @usableFromInline var entry: GraphEntryPoint?
    @usableFromInline var bound: UInt32 = 0
    /// Number of nodes in the graph.
    public private(set) var count = 0

    /// An empty graph with room for `capacity` node slots (it grows as needed).
    public init(parameters: HNSWParameters, capacity: Int = 0) {
        precondition(parameters.maxLevel <= Int(Int8.max), "maxLevel too large")
        self.parameters = parameters
        stride0 = 2 &* parameters.m &+ 1
        strideUpper = parameters.m &+ 1
        self.capacity = 0
        level0 = .allocate(capacity: 1)
        levels = .allocate(capacity: 1)
        upper = .allocate(capacity: 1)
        reserve(capacity)
    }

    /// A graph with the given adjacency: `neighbors[l]` is each node's list at level `l`
    /// (so its level is `neighbors.count - 1`). Lists must fit the degree bounds.
    public convenience init(parameters: HNSWParameters, nodes: [(node: UInt32, neighbors: [[UInt32]])],
                            entryPoint: GraphEntryPoint?) {
        self.init(parameters: parameters, capacity: Int(nodes.map(\.node).max().map { $0 + 1 } ?? 0))
        for (node, lists) in nodes {
            precondition(!lists.isEmpty, "a node needs a level-0 list")
            setLevel(lists.count - 1, of: node)
            for (l, list) in lists.enumerated() {
                list.withUnsafeBufferPointer { setNeighbors(of: node, level: l, to: $0) }
            }
        }
        setEntryPoint(entryPoint)
    }

    deinit {
        for i in 0..<capacity { upper[i]?.deallocate() }
        level0.deallocate()
        levels.deallocate()
        upper.deallocate()
    }

    /// Grows the slot arrays to at least `slots`.
    public func reserve(_ slots: Int) {
        guard slots > capacity else { return }
        let newCapacity = max(slots, capacity &* 3 / 2)
        let l0 = UnsafeMutablePointer<UInt32>.allocate(capacity: newCapacity &* stride0)
        l0.update(from: level0, count: capacity &* stride0)
        l0.advanced(by: capacity &* stride0).initialize(repeating: 0, count: (newCapacity &- capacity) &* stride0)
        let lv = UnsafeMutablePointer<Int8>.allocate(capacity: newCapacity)
        lv.update(from: levels, count: capacity)
        lv.advanced(by: capacity).initialize(repeating: -1, count: newCapacity &- capacity)
        let up = UnsafeMutablePointer<UnsafeMutablePointer<UInt32>?>.allocate(capacity: newCapacity)
        up.update(from: upper, count: capacity)
        up.advanced(by: capacity).initialize(repeating: nil, count: newCapacity &- capacity)
        level0.deallocate()
        levels.deallocate()
        upper.deallocate()
        level0 = l0
        levels = lv
        upper = up
        capacity = newCapacity
    }

    // MARK: GraphStorage

    @inlinable
    public var nodeIDBound: UInt32 { bound }

    @inlinable
    public func entryPoint() -> GraphEntryPoint? { entry }

    @inlinable
    public func level(of node: UInt32) -> Int? {
        let n = Int(node)
        guard n < capacity else { return nil }
        let l = levels[n]
        return l < 0 ? nil : Int(l)
    }

    /// The record (`[count, ids…]`) of `node` at `level`, or nil.
    @inlinable @inline(__always)
    func record(_ node: UInt32, _ level: Int) -> UnsafeMutablePointer<UInt32>? {
        let n = Int(node)
        // Level 0 needs no level lookup: an absent node's record has count 0.
        if level == 0 { return n < capacity ? level0 + n &* stride0 : nil }
        guard n < capacity, level > 0, level <= Int(levels[n]) else { return nil }
        return upper[n]! + (level &- 1) &* strideUpper
    }

    /// Level 0 only: the record the next hop reads (upper levels are few and small).
    @inlinable @inline(__always)
    public func prefetchNeighbors(of node: UInt32, level: Int) {
        let n = Int(node)
        if level == 0 && n < capacity { sextant_prefetch(level0 + n &* stride0, stride0 &* 4) }
    }

    @inlinable
    public func withNeighbors<R>(
        of node: UInt32, level: Int, _ body: (UnsafeBufferPointer<UInt32>) throws -> R
    ) rethrows -> R {
        guard let r = record(node, level) else { return try body(UnsafeBufferPointer(start: nil, count: 0)) }
        return try body(UnsafeBufferPointer(start: r + 1, count: Int(r[0])))
    }

    // MARK: MutableGraphStorage

    public func setLevel(_ level: Int, of node: UInt32) {
        precondition(level >= 0 && level <= parameters.maxLevel, "level out of range")
        let n = Int(node)
        reserve(n &+ 1)
        if levels[n] < 0 { count &+= 1 }
        upper[n]?.deallocate()
        upper[n] = nil
        if level > 0 {
            let p = UnsafeMutablePointer<UInt32>.allocate(capacity: level &* strideUpper)
            p.initialize(repeating: 0, count: level &* strideUpper)
            upper[n] = p
        }
        levels[n] = Int8(level)
        level0[n &* stride0] = 0
        if node >= bound { bound = node &+ 1 }
    }

    public func setNeighbors(of node: UInt32, level: Int, to neighbors: UnsafeBufferPointer<UInt32>) {
        guard let r = record(node, level) else { preconditionFailure("node \(node) has no level \(level)") }
        precondition(neighbors.count <= parameters.maxDegree(atLevel: level), "too many neighbours")
        if neighbors.count > 0 { (r + 1).update(from: neighbors.baseAddress!, count: neighbors.count) }
        r[0] = UInt32(neighbors.count)
    }

    public func setEntryPoint(_ entry: GraphEntryPoint?) {
        self.entry = entry
    }

    public func removeNode(_ node: UInt32) {
        let n = Int(node)
        guard n < capacity, levels[n] >= 0 else { return }
        upper[n]?.deallocate()
        upper[n] = nil
        levels[n] = -1
        level0[n &* stride0] = 0
        count &-= 1
    }

    /// Bytes held by adjacency (records and per-node upper allocations).
    public var memoryFootprint: Int {
        var bytes = capacity &* (stride0 &* 4 &+ 1 &+ 8)
        for i in 0..<capacity where levels[i] > 0 { bytes &+= Int(levels[i]) &* strideUpper &* 4 }
        return bytes
    }
}

/// Striped spin locks: node `i` is guarded by lock `i % count`. Only used during a parallel build.
@usableFromInline
final class _GraphLocks: @unchecked Sendable {
    /// One spin lock (a byte) per stripe of nodes.
    @usableFromInline let locks: UnsafeMutablePointer<UInt8>
    @usableFromInline let mask: Int

    @usableFromInline
    init(stripes: Int) {
        var n = 1
        while n < stripes { n <<= 1 }
        mask = n &- 1
        locks = .allocate(capacity: n)
        locks.initialize(repeating: 0, count: n)
    }

    deinit {
        locks.deallocate()
    }

    @inlinable @inline(__always)
    func withLock<R>(_ node: UInt32, _ body: () throws -> R) rethrows -> R {
        let l = locks + (Int(node) & mask)
        sextant_spin_lock(l)
        defer { sextant_spin_unlock(l) }
        return try body()
    }
}

/// The view of an ``InMemoryGraph`` that inserting threads share during a parallel build:
/// every list access holds the node's lock. Levels are all assigned before the threads
/// start and the top node is inserted first, so levels and the entry point never change
/// while threads run.
@usableFromInline
struct _LockedGraph: MutableGraphStorage {
    @usableFromInline let graph: InMemoryGraph
    @usableFromInline let locks: _GraphLocks

    @inlinable init(graph: InMemoryGraph, locks: _GraphLocks) {
        self.graph = graph
        self.locks = locks
    }

    @inlinable var nodeIDBound: UInt32 { graph.bound }
    @inlinable func entryPoint() -> GraphEntryPoint? { graph.entry }
    @inlinable func level(of node: UInt32) -> Int? { graph.level(of: node) }

    @inlinable
    func withNeighbors<R>(of node: UInt32, level: Int, _ body: (UnsafeBufferPointer<UInt32>) throws -> R) throws -> R {
        try locks.withLock(node) { try graph.withNeighbors(of: node, level: level, body) }
    }

    @inlinable
    func setNeighbors(of node: UInt32, level: Int, to neighbors: UnsafeBufferPointer<UInt32>) {
        locks.withLock(node) { graph.setNeighbors(of: node, level: level, to: neighbors) }
    }

    @inlinable
    func updateNeighbors(
        of node: UInt32, level: Int,
        _ body: (UnsafeBufferPointer<UInt32>) throws -> UnsafeBufferPointer<UInt32>?
    ) throws {
        try locks.withLock(node) {
            if let r = try graph.withNeighbors(of: node, level: level, body) {
                graph.setNeighbors(of: node, level: level, to: r)
            }
        }
    }

    @usableFromInline func setLevel(_ level: Int, of node: UInt32) {
        preconditionFailure("levels are fixed during a parallel build")
    }

    @usableFromInline func setEntryPoint(_ entry: GraphEntryPoint?) {
        preconditionFailure("the entry point is fixed during a parallel build")
    }

    @usableFromInline func removeNode(_ node: UInt32) {
        preconditionFailure("no removal during a parallel build")
    }
}

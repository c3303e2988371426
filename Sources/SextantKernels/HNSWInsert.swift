#if canImport(Dispatch)
import Dispatch
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Insert (hnswlib's addPoint): descend greedily to the new node's level, then at each level
// from there down beam-search with efConstruction, keep up to M neighbours chosen by the
// heuristic, and link back, re-selecting a neighbour's list with the heuristic when it is full.

extension HNSW {
    /// Inserts `node` (not yet in the graph; its vector already readable through
    /// `distances`) at its deterministic level ``HNSWParameters/level(for:)``.
    @inlinable
    public static func insert<S: MutableGraphStorage, D: GraphDistanceSource>(
        _ node: UInt32, storage: inout S, distances: D, parameters: HNSWParameters, context: HNSWSearchContext
    ) throws {
        try insert(node, level: parameters.level(for: node), storage: &storage, distances: distances, parameters: parameters, context: context)
    }

    /// Inserts `node` at `level` (``update(_:storage:distances:parameters:context:)`` keeps a
    /// node's level, which edges into it from elsewhere rely on).
    @inlinable
    static func insert<S: MutableGraphStorage, D: GraphDistanceSource>(
        _ node: UInt32, level: Int, storage: inout S, distances: D, parameters: HNSWParameters, context: HNSWSearchContext
    ) throws {
        let present = try storage.level(of: node) != nil
        precondition(!present, "node \(node) is already in the graph; use update")
        let ep = try storage.entryPoint()
        try storage.setLevel(level, of: node)
        guard let ep else {
            try storage.setEntryPoint(GraphEntryPoint(node: node, level: level))
            return
        }
        try link(node, level: level, entry: ep, storage: &storage, distances: distances, parameters: parameters, context: context)
        if level > ep.level {
            try storage.setEntryPoint(GraphEntryPoint(node: node, level: level))
        }
    }

    /// Connects `node` (present at `level`, lists empty) to the graph reached from `ep`.
    @inlinable
    static func link<S: MutableGraphStorage, D: GraphDistanceSource>(
        _ node: UInt32, level: Int, entry ep: GraphEntryPoint, storage: inout S, distances: D,
        parameters: HNSWParameters, context: HNSWSearchContext
    ) throws {
        let query = try distances.query(for: node)
        var cur = ep.node
        var curDistance: Float
        if level < ep.level {
            (cur, curDistance) = try descend(query, from: ep, toLevel: level, storage: storage, distances: distances, context: context)
        } else {
            curDistance = try distances.distance(query, to: cur)
        }
        let m = parameters.m
        context.reserveSelection(keys: parameters.efConstruction &+ 1, selected: m, link: 2 &* m &+ 1)
        var lc = Swift.min(level, ep.level)
        while lc >= 0 {
            let bound = storage.nodeIDBound
            context.begin(bound: bound)
            // The node itself must not come back as its own neighbour.
            if node < bound { context.markVisited(node) }
            if cur < bound { context.markVisited(cur) }
            let key = _hnswKey(curDistance, cur)
            context.candidates.push(key)
            context.results.push(~key)
            try beamSearch(query, level: lc, ef: parameters.efConstruction, storage: storage, distances: distances,
                           context: context, eligible: _EveryNode(), twoHop: false)
            let found = context.drainResultsAscending()
            let keys = context.keys
            cur = _hnswID(keys[0])
            curDistance = _hnswDistance(keys[0])
            // hnswlib keeps M (not 2M) at level 0 too; back-links fill level 0 up to 2M.
            let selected = context.selected
            let count = try selectNeighbors(keys, count: found, maxCount: m, distances: distances, into: selected)
            try storage.setNeighbors(of: node, level: lc, to: UnsafeBufferPointer(start: selected, count: count))
            for i in 0..<count {
                try addBackLink(from: selected[i], to: node, level: lc, storage: &storage, distances: distances,
                                parameters: parameters, context: context)
            }
            lc &-= 1
        }
    }

    /// hnswlib's neighbour-selection heuristic: walk the candidates from the closest and keep
    /// one only if it is closer to the base than to every neighbour kept so far (so kept
    /// neighbours point in different directions). With fewer than `maxCount` candidates
    /// all are kept.
    ///
    /// - Parameters:
    ///   - keys: candidates as packed `(distance to base, id)` keys, ascending.
    /// - Returns: the number of ids written to `out`.
    @inlinable
    static func selectNeighbors<D: GraphDistanceSource>(
        _ keys: UnsafeMutablePointer<UInt64>, count: Int, maxCount: Int, distances: D, into out: UnsafeMutablePointer<UInt32>
    ) throws -> Int {
        if count < maxCount {
            for i in 0..<count { out[i] = _hnswID(keys[i]) }
            return count
        }
        var kept = 0
        for i in 0..<count where kept < maxCount {
            let c = _hnswID(keys[i])
            let toBase = _hnswDistance(keys[i])
            var good = true
            for j in 0..<kept where try distances.distance(between: c, and: out[j]) < toBase {
                good = false
                break
            }
            if good {
                out[kept] = c
                kept &+= 1
            }
        }
        return kept
    }

    /// Adds `node` to the list of `target` at `level`; a full list is re-selected from its
    /// members plus `node` with the heuristic (by distance to `target`).
    @inlinable
    static func addBackLink<S: MutableGraphStorage, D: GraphDistanceSource>(
        from target: UInt32, to node: UInt32, level: Int, storage: inout S, distances: D,
        parameters: HNSWParameters, context: HNSWSearchContext
    ) throws {
        let maxDegree = parameters.maxDegree(atLevel: level)
        let linkKeys = context.linkKeys
        let linkIDs = context.linkIDs
        let capacity = context.linkCapacity
        try storage.updateNeighbors(of: target, level: level) { list -> UnsafeBufferPointer<UInt32>? in
            if list.contains(node) { return nil }
            if list.count < maxDegree {
                for i in list.indices { linkIDs[i] = list[i] }
                linkIDs[list.count] = node
                return UnsafeBufferPointer(start: linkIDs, count: list.count &+ 1)
            }
            var n = 0
            for x in list where n < capacity &- 1 {
                linkKeys[n] = _hnswKey(try distances.distance(between: target, and: x), x)
                n &+= 1
            }
            linkKeys[n] = _hnswKey(try distances.distance(between: target, and: node), node)
            n &+= 1
            _sortKeys(linkKeys, n)
            let kept = try selectNeighbors(linkKeys, count: n, maxCount: maxDegree, distances: distances, into: linkIDs)
            return UnsafeBufferPointer(start: linkIDs, count: kept)
        }
    }
}

/// Insertion sort: selection lists are at most 2M + 1 long.
@inlinable
func _sortKeys(_ a: UnsafeMutablePointer<UInt64>, _ n: Int) {
    var i = 1
    while i < n {
        let x = a[i]
        var j = i &- 1
        while j >= 0 && a[j] > x {
            a[j &+ 1] = a[j]
            j &-= 1
        }
        a[j &+ 1] = x
        i &+= 1
    }
}

// MARK: - Parallel bulk build

/// Thrown by ``InMemoryGraph/build(count:parameters:distances:threads:progress:isCancelled:)``
/// when its cancellation check says stop.
public struct GraphBuildCancelled: Error, Sendable {
    public init() {}
}

/// State shared by the build threads: the next chunk to claim, progress and the first error.
@usableFromInline
final class _BuildState: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var next = 0
    private var done = 0
    @usableFromInline private(set) var error: (any Error)?

    @usableFromInline init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Claims the next chunk of at most `size` positions below `total`, reporting `finished`
    /// positions of the previous chunk; nil when all are claimed or a thread failed.
    @usableFromInline
    func claim(size: Int, total: Int, finished: Int) -> (Range<Int>, done: Int)? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        done += finished
        guard error == nil, next < total else { return nil }
        let r = next..<Swift.min(total, next + size)
        next = r.upperBound
        return (r, done)
    }

    @usableFromInline
    func fail(_ e: any Error) {
        pthread_mutex_lock(mutex)
        if error == nil { error = e }
        pthread_mutex_unlock(mutex)
    }
}

extension InMemoryGraph {
    /// Builds the graph of nodes `0..<count` on `threads` threads.
    ///
    /// Every node's level is assigned first and the highest node (smallest id on ties) is
    /// inserted first as the entry point; the others are then inserted in id order by the
    /// threads with hnswlib's per-node locking, running exactly the incremental insert.
    /// The result has the same quality as inserting one by one; with one thread it is
    /// identical to it in that order.
    ///
    /// - Parameters:
    ///   - progress: called now and then, from a build thread, with the number of nodes
    ///     inserted so far and `count`.
    ///   - isCancelled: polled by every thread between chunks of 64 nodes; once it returns
    ///     true the build stops and throws ``GraphBuildCancelled``.
    @inlinable
    public static func build<D: GraphDistanceSource & Sendable>(
        count: Int, parameters: HNSWParameters, distances: D, threads: Int = 1,
        progress: (@Sendable (_ done: Int, _ total: Int) -> Void)? = nil,
        isCancelled: (@Sendable () -> Bool)? = nil
    ) throws -> InMemoryGraph {
        precondition(count >= 0 && count <= Int(UInt32.max), "bad count")
        let graph = InMemoryGraph(parameters: parameters, capacity: count)
        guard count > 0 else { return graph }
        var top = 0
        var topLevel = -1
        for i in 0..<count {
            let l = parameters.level(for: UInt32(i))
            graph.setLevel(l, of: UInt32(i))
            if l > topLevel { top = i; topLevel = l }
        }
        let ep = GraphEntryPoint(node: UInt32(top), level: topLevel)
        let topNode = top
        graph.setEntryPoint(ep)
        let state = _BuildState()
        let chunk = 64
        let locks = _GraphLocks(stripes: Swift.min(1 << 16, Swift.max(64, count)))
        let worker: @Sendable (Int) -> Void = { _ in
            let context = HNSWSearchContext()
            var storage = _LockedGraph(graph: graph, locks: locks)
            var finished = 0
            while let (range, done) = state.claim(size: chunk, total: count, finished: finished) {
                progress?(done, count)
                if let isCancelled, isCancelled() {
                    state.fail(GraphBuildCancelled())
                    return
                }
                do {
                    for i in range where i != topNode {
                        try HNSW.link(UInt32(i), level: graph.level(of: UInt32(i))!, entry: ep, storage: &storage,
                                      distances: distances, parameters: parameters, context: context)
                    }
                } catch {
                    state.fail(error)
                    return
                }
                finished = range.count
            }
        }
        if threads <= 1 {
            worker(0)
        } else {
            DispatchQueue.concurrentPerform(iterations: threads, execute: worker)
        }
        if let e = state.error { throw e }
        progress?(count, count)
        return graph
    }
}

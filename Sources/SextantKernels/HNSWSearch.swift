// HNSW search: greedy descent through the upper levels, then a beam search at level 0.

/// Which nodes may be returned (all nodes may be traversed).
@usableFromInline
protocol _HNSWEligibility {
    func isEligible(_ node: UInt32) -> Bool
}

@usableFromInline
struct _EveryNode: _HNSWEligibility {
    @inlinable init() {}
    @inlinable @inline(__always) func isEligible(_ node: UInt32) -> Bool { true }
}

@usableFromInline
struct _FilteredNodes: _HNSWEligibility {
    @usableFromInline let allowed: Bitmap?
    @usableFromInline let bits: DenseBitset?
    @usableFromInline let predicate: ((UInt32) -> Bool)?
    @usableFromInline let deleted: Bitmap?

    @inlinable init(allowed: Bitmap?, bits: DenseBitset?, predicate: ((UInt32) -> Bool)?, deleted: Bitmap?) {
        self.allowed = allowed
        self.bits = bits
        self.predicate = predicate
        self.deleted = deleted
    }

    @inlinable @inline(__always)
    func isEligible(_ node: UInt32) -> Bool {
        if let bits {
            if !bits.contains(node) { return false }
        } else if let allowed, !allowed.contains(node) { return false }
        if let deleted, deleted.contains(node) { return false }
        if let predicate, !predicate(node) { return false }
        return true
    }
}

/// A filter for ``HNSW/search(_:k:ef:filter:storage:distances:context:)``: which nodes may
/// be returned, and how hard to look for them.
///
/// Non-matching and deleted nodes are still traversed (they keep the graph connected); they
/// are never returned.
public struct HNSWFilter {
    /// Only these ids may be returned (`nil`: no restriction). Its count is what decides the
    /// strategy and the "never fewer than `min(k, matches)`" guarantee.
    public var allowed: Bitmap?
    /// `allowed` as a flat bitset: constant-time membership for the traversal's many checks
    /// (a two-hop expansion tests hundreds of ids per step). Must hold exactly `allowed`.
    public var allowedBits: DenseBitset?
    /// Only ids for which this returns true may be returned (`nil`: no restriction).
    public var predicate: ((UInt32) -> Bool)?
    /// Tombstones: never returned, still traversed.
    public var deleted: Bitmap?
    /// Matching ids to start level 0 from, in addition to the descent's entry (helps when
    /// the matches form small islands in the graph).
    public var seeds: [UInt32]
    /// When the filter admits fewer than this fraction of the nodes, level 0 expands
    /// through non-matching neighbours to their neighbours (ACORN-1's two-hop expansion)
    /// and only matching nodes become candidates. Two hops pay only where a node's list holds
    /// too few matches to keep the beam moving; they also confine the beam to matching
    /// regions, so above that plain traversal finds more (measured at 1M rows: at 10 %
    /// selectivity plain traversal reached 0.99 recall where two hops reached 0.78 for
    /// predicates anti-correlated with the query). The default, 1/16, is where a level-0
    /// list of an m = 16 graph (32 entries) expects two matches; pass `1/m` for other graphs.
    public var twoHopBelowSelectivity: Double
    /// In two-hop mode, how many matching ids (spread over `allowed`) seed level 0.
    public var autoSeeds: Int
    /// Selectivity to assume for a predicate-only filter (its count is unknown).
    public var expectedSelectivity: Double
    /// With at most this many matches (known from `allowed`), score them all instead of
    /// searching the graph: exact and cheaper than a traversal.
    public var exhaustiveBelowMatches: Int
    /// When the traversal finds fewer than `min(k, matches)` results, score every matching
    /// node. When false the result is flagged incomplete instead.
    public var exhaustiveFallback: Bool

    public init(allowed: Bitmap? = nil, allowedBits: DenseBitset? = nil, predicate: ((UInt32) -> Bool)? = nil, deleted: Bitmap? = nil,
                seeds: [UInt32] = [], twoHopBelowSelectivity: Double = 0.0625, autoSeeds: Int = 16, expectedSelectivity: Double = 1,
                exhaustiveBelowMatches: Int = 1000, exhaustiveFallback: Bool = true) {
        self.allowed = allowed
        self.allowedBits = allowedBits
        self.predicate = predicate
        self.deleted = deleted
        self.seeds = seeds
        self.twoHopBelowSelectivity = twoHopBelowSelectivity
        self.autoSeeds = autoSeeds
        self.expectedSelectivity = expectedSelectivity
        self.exhaustiveBelowMatches = exhaustiveBelowMatches
        self.exhaustiveFallback = exhaustiveFallback
    }
}

/// What a filtered search returned and how it got there.
public struct HNSWSearchResult: Sendable {
    /// How the results were found.
    public enum Strategy: Sendable, Hashable {
        /// Beam search; non-matching nodes were traversed.
        case graph
        /// Beam search with two-hop expansion through non-matching nodes.
        case graphTwoHop
        /// Every matching node was scored (few matches, or the traversal came up short).
        case exhaustive
    }

    /// Best first; `min(k, matches)` of them when ``isComplete``.
    public var neighbors: [Neighbor]
    public var strategy: Strategy
    /// False only when the traversal found fewer than `min(k, matches)` results and
    /// ``HNSWFilter/exhaustiveFallback`` was off: the caller should scan exactly.
    public var isComplete: Bool

    public init(neighbors: [Neighbor], strategy: Strategy, isComplete: Bool) {
        self.neighbors = neighbors
        self.strategy = strategy
        self.isComplete = isComplete
    }
}

extension HNSW {
    /// The approximate `k` nearest nodes to `query`, best first (ties by id).
    ///
    /// - Parameters:
    ///   - ef: beam width at level 0 (raised to `k` if smaller); larger is slower and more
    ///     accurate.
    ///   - context: per-thread scratch, reused across calls.
    @inlinable
    public static func search<S: GraphStorage, D: GraphDistanceSource>(
        _ query: D.Query, k: Int, ef: Int, storage: S, distances: D, context: HNSWSearchContext
    ) throws -> [Neighbor] {
        guard k > 0, let ep = try storage.entryPoint() else { return [] }
        let bound = storage.nodeIDBound
        let (cur, curDistance) = try descend(query, from: ep, toLevel: 0, storage: storage, distances: distances, context: context)
        context.begin(bound: bound)
        if cur < bound { context.markVisited(cur) }
        let key = _hnswKey(curDistance, cur)
        context.candidates.push(key)
        context.results.push(~key)
        try beamSearch(query, level: 0, ef: Swift.max(ef, k), storage: storage, distances: distances,
                       context: context, eligible: _EveryNode(), twoHop: false)
        return try reportedBest(k, ef: ef, query, distances, context)
    }

    /// Filtered search: the best `min(k, matches)` nodes that pass `filter`.
    ///
    /// Upper levels are descended without the filter; level 0 traverses non-matching nodes
    /// but returns only matching ones, expanding two hops through non-matching neighbours
    /// when the filter is selective. Few matches are scored exhaustively, and so are all
    /// matches when the traversal came up short (unless ``HNSWFilter/exhaustiveFallback``
    /// is off, in which case the result says it is incomplete).
    @inlinable
    public static func search<S: GraphStorage, D: GraphDistanceSource>(
        _ query: D.Query, k: Int, ef: Int, filter: HNSWFilter, storage: S, distances: D, context: HNSWSearchContext
    ) throws -> HNSWSearchResult {
        guard k > 0, let ep = try storage.entryPoint() else {
            return HNSWSearchResult(neighbors: [], strategy: .graph, isComplete: true)
        }
        let eligible = _FilteredNodes(allowed: filter.allowed, bits: filter.allowedBits, predicate: filter.predicate, deleted: filter.deleted)
        let bound = storage.nodeIDBound
        var matches: Int? = nil
        if let allowed = filter.allowed {
            var c = allowed.count
            if let deleted = filter.deleted { c -= allowed.intersectionCount(deleted) }
            matches = c
        }
        if let matches, matches == 0 {
            return HNSWSearchResult(neighbors: [], strategy: .exhaustive, isComplete: true)
        }
        if let matches, matches <= filter.exhaustiveBelowMatches {
            let r = try exhaustiveSearch(query, k: k, eligible: eligible, allowed: filter.allowed, storage: storage, distances: distances)
            return HNSWSearchResult(neighbors: r, strategy: .exhaustive, isComplete: true)
        }
        let selectivity = matches.map { Double($0) / Double(Swift.max(1, bound)) } ?? filter.expectedSelectivity
        let twoHop = selectivity < filter.twoHopBelowSelectivity

        let (cur, _) = try descend(query, from: ep, toLevel: 0, storage: storage, distances: distances, context: context)
        context.begin(bound: bound)
        // Level-0 starting points: the descent's end, the caller's seeds and, for a
        // selective filter, the first few matching ids.
        var starts = [cur] + filter.seeds
        if twoHop, let allowed = filter.allowed, let matches {
            // Matches spread over the id space: the matching subgraph may come in islands
            // (two hops do not always bridge clusters), and seeds in several of them let
            // the beam pick the right ones. Iterating is cheap next to the traversal.
            let wanted = filter.autoSeeds
            let step = Swift.max(1, matches / Swift.max(1, wanted))
            var i = 0
            for id in allowed {
                if i % step == 0, eligible.isEligible(id) { starts.append(id) }
                i += 1
                if starts.count > wanted || i > 100_000 { break }
            }
        }
        for s in starts where s < bound && !context.visited.contains(s) {
            guard try storage.level(of: s) != nil else { continue }
            context.markVisited(s)
            let d = try distances.distance(query, to: s)
            let key = _hnswKey(d, s)
            context.candidates.push(key)
            if eligible.isEligible(s) {
                context.results.push(~key)
                if context.results.count > Swift.max(ef, k) { _ = context.results.pop() }
            }
        }
        try beamSearch(query, level: 0, ef: Swift.max(ef, k), storage: storage, distances: distances,
                       context: context, eligible: eligible, twoHop: twoHop)
        let found = try reportedBest(k, ef: ef, query, distances, context)
        let wanted = Swift.min(k, matches ?? k)
        if found.count >= wanted {
            return HNSWSearchResult(neighbors: found, strategy: twoHop ? .graphTwoHop : .graph, isComplete: true)
        }
        guard filter.exhaustiveFallback else {
            return HNSWSearchResult(neighbors: found, strategy: twoHop ? .graphTwoHop : .graph, isComplete: false)
        }
        let r = try exhaustiveSearch(query, k: k, eligible: eligible, allowed: filter.allowed, storage: storage, distances: distances)
        return HNSWSearchResult(neighbors: r, strategy: .exhaustive, isComplete: true)
    }

    /// The best `k` of the beam in `context`, with the source's result distances: when the
    /// source asks for it, the beam's best `max(2k, 20)` (at most the beam) re-ranked — the
    /// traversal's order is approximate but close, and a row of the true best `k` ranked below
    /// that by it is rare — else the traversal's best `k` re-scored.
    @inlinable
    static func reportedBest<D: GraphDistanceSource>(_ k: Int, ef: Int, _ query: D.Query, _ distances: D,
                                                     _ context: HNSWSearchContext) throws -> [Neighbor] {
        guard distances.rescoresBeam else { return try reported(context.takeResults(k), query, distances) }
        var all = try reported(context.takeResults(Swift.min(Swift.max(ef, k), Swift.max(2 * k, 20))), query, distances)
        if all.count > k { all.removeLast(all.count - k) }
        return all
    }

    /// `results` with the source's result distances (``GraphDistanceSource/resultDistance(_:to:)``)
    /// in place of the traversal's, best first again. Only the final `k` are rescored: the
    /// traversal's distances are within a few ulps of these, which can reorder near-ties but
    /// hardly changes which nodes make the cut.
    @inlinable
    static func reported<D: GraphDistanceSource>(_ results: [Neighbor], _ query: D.Query, _ distances: D) throws -> [Neighbor] {
        var out = results
        var changed = false
        // The results' rows are fetched together instead of one miss after another.
        for r in results { distances.prefetchResult(UInt32(truncatingIfNeeded: r.id)) }
        for i in out.indices {
            guard let d = try distances.resultDistance(query, to: UInt32(truncatingIfNeeded: out[i].id)) else { return results }
            if d.bitPattern != out[i].distance.bitPattern {
                out[i].distance = d
                changed = true
            }
        }
        if changed { out.sort() }
        return out
    }

    /// Scores every eligible node in the graph (those of `allowed` when given).
    @inlinable
    static func exhaustiveSearch<S: GraphStorage, D: GraphDistanceSource, E: _HNSWEligibility>(
        _ query: D.Query, k: Int, eligible: E, allowed: Bitmap?, storage: S, distances: D
    ) throws -> [Neighbor] {
        var top = TopK(k: k)
        let bound = storage.nodeIDBound
        func consider(_ id: UInt32) throws {
            guard id < bound, eligible.isEligible(id), try storage.level(of: id) != nil else { return }
            let d = try distances.resultDistance(query, to: id) ?? distances.distance(query, to: id)
            top.insert(distance: d, id: UInt64(id))
        }
        if let allowed {
            for id in allowed { try consider(id) }
        } else {
            var id: UInt32 = 0
            while id < bound { try consider(id); id &+= 1 }
        }
        return top.sortedResults()
    }

    /// Greedy descent from the entry point to `toLevel` (exclusive of the levels below):
    /// at each level, move to the closest neighbour until none is closer.
    @inlinable
    static func descend<S: GraphStorage, D: GraphDistanceSource>(
        _ query: D.Query, from ep: GraphEntryPoint, toLevel target: Int, storage: S, distances: D,
        context: HNSWSearchContext
    ) throws -> (UInt32, Float) {
        var cur = ep.node
        var curDistance = try distances.distance(query, to: cur)
        var level = ep.level
        let bound = storage.nodeIDBound
        let ids = context.ids
        let dists = context.dists
        let capacity = context.scratchCapacity
        var evaluated = 1
        while level > target {
            var changed = true
            while changed {
                changed = false
                let n = try storage.withNeighbors(of: cur, level: level) { nb -> Int in
                    var m = 0
                    for x in nb where x < bound && m < capacity {
                        ids[m] = x
                        m &+= 1
                    }
                    return m
                }
                if n == 0 { break }
                try distances.distances(query, to: UnsafeBufferPointer(start: ids, count: n), into: dists)
                evaluated &+= n
                for i in 0..<n where dists[i] < curDistance {
                    curDistance = dists[i]
                    cur = ids[i]
                    changed = true
                }
            }
            level &-= 1
        }
        context.distanceCount &+= evaluated
        return (cur, curDistance)
    }

    /// Beam search at one level from the candidates and results already in `context`
    /// (their nodes marked visited). Leaves up to `ef` eligible results in `context.results`.
    @inlinable
    static func beamSearch<S: GraphStorage, D: GraphDistanceSource, E: _HNSWEligibility>(
        _ query: D.Query, level: Int, ef: Int, storage: S, distances: D, context: HNSWSearchContext,
        eligible: E, twoHop: Bool
    ) throws {
        // Everything the loop touches lives in locals: no class-property access inside it.
        var candidates = context.candidates
        var results = context.results
        defer {
            context.candidates = candidates
            context.results = results
        }
        var visited = context.visited
        defer { context.visited = visited }
        let bound = UInt32(truncatingIfNeeded: Swift.min(Int(storage.nodeIDBound), visited.bound))
        let ids = context.ids
        let dists = context.dists
        let capacity = context.scratchCapacity
        let hops = context.hops
        let hopCapacity = context.hopCapacity
        var evaluated = 0
        var worst: Float = results.count >= ef ? _hnswDistance(~results.top) : .infinity

        while candidates.count > 0 {
            let ck = candidates.pop()
            if _hnswDistance(ck) > worst { break }
            let c = _hnswID(ck)
            // The likely next expansion's list, fetched while this one is scored.
            if candidates.count > 0 { storage.prefetchNeighbors(of: _hnswID(candidates.top), level: level) }
            var n: Int
            if !twoHop {
                n = try storage.withNeighbors(of: c, level: level) { nb -> Int in
                    var m = 0
                    for x in nb where x < bound && m < capacity && visited.insert(x) {
                        distances.prefetch(x)
                        ids[m] = x
                        m &+= 1
                    }
                    return m
                }
            } else {
                // ACORN-1: matching neighbours become candidates; a non-matching one is
                // looked through, its matching neighbours becoming candidates instead.
                var h = 0
                n = try storage.withNeighbors(of: c, level: level) { nb -> Int in
                    var m = 0
                    for x in nb where x < bound && !visited.contains(x) {
                        if eligible.isEligible(x) {
                            _ = visited.insert(x)
                            if m < capacity { ids[m] = x; m &+= 1 }
                        } else if h < hopCapacity {
                            // Not marked: other candidates sharing this neighbour must be
                            // able to look through it too.
                            hops[h] = x
                            h &+= 1
                        }
                    }
                    return m
                }
                for j in 0..<h {
                    n = try storage.withNeighbors(of: hops[j], level: level) { nb -> Int in
                        var m = n
                        for x in nb where x < bound && m < capacity && !visited.contains(x) && eligible.isEligible(x) {
                            _ = visited.insert(x)
                            ids[m] = x
                            m &+= 1
                        }
                        return m
                    }
                }
            }
            if n == 0 { continue }
            try distances.distances(query, to: UnsafeBufferPointer(start: ids, count: n), into: dists)
            evaluated &+= n
            for i in 0..<n {
                let d = dists[i]
                guard d < worst || results.count < ef else { continue }
                let id = ids[i]
                let key = _hnswKey(d, id)
                candidates.push(key)
                if eligible.isEligible(id) {
                    if results.count < ef {
                        results.push(~key)
                    } else {
                        results.replaceTop(~key)
                    }
                    if results.count >= ef { worst = _hnswDistance(~results.top) }
                }
            }
        }
        context.distanceCount &+= evaluated
    }
}

import Foundation
import SextantKernels
import SextantStorage

/// A small free list of search contexts shared by a store's searches.
final class ContextPool: @unchecked Sendable {
    private var free: [HNSWSearchContext] = []
    private let lock = NSLock()

    func take() -> HNSWSearchContext {
        lock.lock(); defer { lock.unlock() }
        return free.popLast() ?? HNSWSearchContext()
    }

    func give(_ c: HNSWSearchContext) {
        lock.lock(); if free.count < 16 { free.append(c) }; lock.unlock()
    }
}

extension VectorCollection {
    /// Graph search of one prepared query in `txn`. `g` and `src` belong to `txn` and are
    /// shared by the queries of one transaction, so block pointers are resolved once for all.
    ///
    /// Filtered traversal: the best `min(k, matches)` rows of `allowed` (every row when nil).
    /// With at most `exhaustiveBelow` matches the graph scores them all instead.
    func graphSearch(_ q: PreparedQuery, ef: Int, allowed: Bitmap?, bits: DenseBitset? = nil, exhaustiveBelow: Int = 1000, _ txn: Transaction,
                     graph g: LMDBGraph, source src: BlockVectors, context: HNSWSearchContext) throws -> (TopK, String) {
        var detail = "graph"
        let found: [Neighbor] = try src.withQuery(q.vector) { query in
            if let allowed {
                // Two hops only where a level-0 list (2m entries) is expected to hold fewer than
                // two matches: above that, plain traversal keeps enough matching candidates and
                // also crosses regions without matches, which the two-hop beam cannot.
                let twoHop = 1 / Double(max(1, g.parameters.m))
                let r = try HNSW.search(query, k: q.k, ef: ef, filter: HNSWFilter(allowed: allowed, allowedBits: bits ?? DenseBitset(allowed, bound: g.nodeIDBound),
                                                                              twoHopBelowSelectivity: twoHop, exhaustiveBelowMatches: exhaustiveBelow),
                                        storage: g, distances: src, context: context)
                switch r.strategy {
                case .graph: detail = "graph"
                case .graphTwoHop: detail = "graph, two-hop expansion"
                case .exhaustive: detail = "every match scored (few matches, or the traversal came up short)"
                }
                return r.neighbors
            }
            return try HNSW.search(query, k: q.k, ef: ef, storage: g, distances: src, context: context)
        }
        return (try externalIDs(found, k: q.k, src.reader), detail)
    }

    /// Unfiltered traversal with the beam widened by 1/selectivity; results outside `allowed`
    /// are dropped, and the beam doubles until `min(k, matches)` remain (past every row, the
    /// matches are scored exactly). `startWidth`: the first traversal's width, when a wider one
    /// than the beam's already came up short.
    func postFilterSearch(_ q: PreparedQuery, ef: Int, allowed: Bitmap?, matches: Int, live: Int, startWidth: Int? = nil, _ txn: Transaction,
                          graph g: LMDBGraph, source src: BlockVectors, context: HNSWSearchContext) throws -> (TopK, String) {
        let wanted = min(q.k, matches)
        guard wanted > 0 else { return (TopK(k: q.k), "no matches") }
        let beam = max(ef, q.k)
        var width = startWidth ?? (allowed == nil ? beam : Self.postFilterWidth(beam: beam, matches: matches, live: live))
        var rounds = 0
        while true {
            rounds += 1
            let found: [Neighbor] = try src.withQuery(q.vector) { query in
                try HNSW.search(query, k: width, ef: width,
                                storage: g, distances: src, context: context)
            }
            let kept = allowed.map { a in found.filter { a.contains(UInt32($0.id)) } } ?? found
            if kept.count >= wanted {
                return (try externalIDs(Array(kept.prefix(q.k)), k: q.k, src.reader), rounds == 1 ? "beam \(width)" : "beam widened to \(width) (\(rounds) rounds)")
            }
            if width >= live {
                // The traversal cannot reach enough matches (disconnected or tiny): score them all.
                let heaps = try scan([q], candidates: allowed ?? IndexReader(txn: txn, db: db.postings, cid: cid).live(), txn)
                return (heaps[0], "beam reached every row; matches scored exactly")
            }
            width = min(live, width * 2)
        }
    }

    func externalIDs(_ found: [Neighbor], k: Int, _ reader: SlotBlocks.Reader) throws -> TopK {
        var out = TopK(k: k)
        for n in found {
            let (ext, _) = try vectorEntry(reader, UInt32(n.id))
            _ = out.insert(distance: n.distance, id: ext)
        }
        return out
    }
}

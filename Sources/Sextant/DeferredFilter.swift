import Foundation
import SextantFilter
import SextantKernels
import SextantStorage

/// Decoded attributes of a fixed sample of live rows, per collection and snapshot: the
/// planner's estimate of a broad predicate's selectivity without evaluating it over the indexes.
///
/// A predicate matching a tenth or half of the rows costs milliseconds to evaluate as a set
/// (range scans of 100k+ index entries), while a post-filter traversal needs it checked on
/// only the few dozen rows it returns. The sample decides whether that shortcut is safe to plan.
final class AttributeSampleCache: @unchecked Sendable {
    struct Sample {
        var rows: [AttributeRow]
        var live: Int
    }
    private struct Key: Hashable {
        var cid: UInt32
        var snapshot: Int
    }
    private var entries: [Key: Sample] = [:]
    private let lock = NSLock()

    /// Rows in a sample: enough that a predicate matching 5 % of the rows has about 50 hits
    /// (relative error near 14 %); reading them costs ~1,000 row lookups once per snapshot.
    static let size = 1024

    func get(_ cid: UInt32, snapshot: Int) -> Sample? {
        lock.lock(); defer { lock.unlock() }
        return entries[Key(cid: cid, snapshot: snapshot)]
    }

    func put(_ cid: UInt32, snapshot: Int, _ s: Sample) {
        lock.lock(); defer { lock.unlock() }
        // One sample per collection, of its newest snapshot: an older reader's is not kept.
        if entries.keys.contains(where: { $0.cid == cid && $0.snapshot > snapshot }) { return }
        entries = entries.filter { $0.key.cid != cid }
        entries[Key(cid: cid, snapshot: snapshot)] = s
    }
}

extension VectorCollection {
    /// Smallest number of sample hits for which a predicate is checked row by row instead of
    /// evaluated as a set: a quarter of a full sample, so the post-filter beam widens at most
    /// about 4x. Narrower predicates widen it so far that the traversal costs more than the set
    /// it saves (measured at 1M rows: 10 % predicates slower by a fifth, 50 % ones 2.5x faster).
    static let deferredMinimumHits = AttributeSampleCache.size / 4
    /// Largest predicate group that defers: a bigger group amortises one set evaluation over
    /// its queries, and its members may share traversals or partition passes that need the set.
    static let deferredMaximumGroup = 4

    /// A lower bound on the time to evaluate a predicate as a set, per matching row: each
    /// row is inserted into a bitmap after its index entry is read (10–40 ns measured).
    static let setSecondsPerMatch = 10e-9

    /// The sample of this snapshot (built on first use).
    func attributeSample(_ txn: Transaction, reader: IndexReader) throws -> AttributeSampleCache.Sample {
        let snapshot = txn.snapshotID
        if !txn.isWritable, let s = store.attributeSamples.get(cid, snapshot: snapshot) { return s }
        let live = try reader.live()
        let bound = try state(txn).nextSlot
        var rows: [AttributeRow] = []
        if !live.isEmpty && bound > 0 {
            rows.reserveCapacity(min(AttributeSampleCache.size, live.count))
            let all = [Bool](repeating: true, count: schema.count)
            // A fixed pseudo-random sequence: the same store state gives the same plans.
            var rng = SplitMix64(state: 0x5EC7_A17 &+ UInt64(cid))
            var tries = 0
            while rows.count < min(AttributeSampleCache.size, live.count) && tries < 8 * AttributeSampleCache.size {
                tries += 1
                let slot = UInt32(truncatingIfNeeded: rng.next() % UInt64(bound))
                guard live.contains(slot) else { continue }
                if let row = try storedAttributes(txn, slot: slot, only: all) { rows.append(row) }
            }
        }
        let s = AttributeSampleCache.Sample(rows: rows, live: live.count)
        if !txn.isWritable { store.attributeSamples.put(cid, snapshot: snapshot, s) }
        return s
    }

    /// The estimated number of live rows matching `filter` when the sample shows it broad
    /// enough to check row by row; nil when it must be evaluated as a set.
    func broadPredicateEstimate(_ filter: BoundFilter, _ txn: Transaction, reader: IndexReader) throws -> Int? {
        let sample = try attributeSample(txn, reader: reader)
        guard sample.rows.count >= AttributeSampleCache.size / 2 else { return nil }
        var hits = 0
        for row in sample.rows where filter.matches(row) { hits += 1 }
        guard hits >= Self.deferredMinimumHits else { return nil }
        return Int((Double(hits) / Double(sample.rows.count) * Double(sample.live)).rounded())
    }

    /// Post-filter search whose predicate is checked on the traversal's candidates, nearest
    /// first, until `k` pass. If fewer pass, the predicate is evaluated as a set and the search
    /// continues as an ordinary post-filter search from twice the width, so the guarantee of
    /// `min(k, matches)` rows holds whatever the estimate was.
    func deferredPostFilterSearch(_ q: PreparedQuery, ef: Int, filter: BoundFilter, estimate: Int, live: Int, _ txn: Transaction,
                                  graph g: LMDBGraph, source src: BlockVectors, context: HNSWSearchContext) throws -> (TopK, String) {
        let width = Self.postFilterWidth(beam: max(ef, q.k), matches: estimate, live: live)
        let found: [Neighbor] = try src.withQuery(q.vector) { query in
            try HNSW.search(query, k: width, ef: width,
                            storage: g, distances: src, context: context)
        }
        var check = RowCheck(collection: self, filter: filter, txn: txn)
        var kept: [Neighbor] = []
        // A slot without a row (deleted since the graph was read) never passes.
        for n in found where try check.passes(UInt32(truncatingIfNeeded: n.id)) ?? false {
            kept.append(n)
            if kept.count == q.k { break }
        }
        if kept.count == q.k {
            return (try externalIDs(kept, k: q.k, src.reader), "beam \(width), predicate checked on \(check.checked) rows")
        }
        let m = try match(txn, filter)
        if kept.count >= min(q.k, m.slots.count) {
            return (try externalIDs(kept, k: q.k, src.reader), "beam \(width), predicate checked on \(check.checked) rows; every match found")
        }
        let (heap, detail) = try postFilterSearch(q, ef: ef, allowed: m.slots, matches: m.slots.count, live: live, startWidth: 2 * width, txn,
                                                   graph: g, source: src, context: context)
        return (heap, "\(check.checked) rows checked found \(kept.count); predicate evaluated, \(detail)")
    }
}

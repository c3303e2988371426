import Foundation
import SextantFilter
import SextantKernels

/// Matching slots of recently evaluated predicates, each valid only in the snapshot it was
/// evaluated in (LMDB's transaction id changes with every committed write, so a write never
/// serves a stale set). Least recently used entries go first past the byte budget.
final class FilterCache: @unchecked Sendable {
    private struct Key: Hashable {
        var cid: UInt32
        var predicate: Filter
    }
    private struct Entry {
        var snapshot: Int
        var match: FilterMatch
        var bytes: Int
        var used: UInt64
    }
    private var entries: [Key: Entry] = [:]
    private var bytes = 0
    private var clock: UInt64 = 0
    private let budget: Int
    private let lock = NSLock()

    init(budgetBytes: Int = 64 << 20) { budget = budgetBytes }

    func get(_ cid: UInt32, _ predicate: Filter, snapshot: Int) -> FilterMatch? {
        lock.lock(); defer { lock.unlock() }
        let key = Key(cid: cid, predicate: predicate)
        guard var e = entries[key], e.snapshot == snapshot else { return nil }
        clock &+= 1
        e.used = clock
        entries[key] = e
        return e.match
    }

    func put(_ cid: UInt32, _ predicate: Filter, snapshot: Int, _ match: FilterMatch) {
        var m = match
        m.explanation = nil
        let size = m.slots.statistics.serializedByteCount + 64
        guard size <= budget / 4 else { return }
        lock.lock(); defer { lock.unlock() }
        let key = Key(cid: cid, predicate: predicate)
        if let old = entries[key] {
            // Keep the newer snapshot's result.
            guard old.snapshot <= snapshot else { return }
            bytes -= old.bytes
        }
        clock &+= 1
        entries[key] = Entry(snapshot: snapshot, match: m, bytes: size, used: clock)
        bytes += size
        while bytes > budget, let victim = entries.min(by: { $0.value.used < $1.value.used }) {
            bytes -= victim.value.bytes
            entries[victim.key] = nil
        }
    }
}

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

/// Flat bitsets of predicates that filtered graph searches met more than once in one
/// snapshot, so repeated predicates (a tenant, a category) are laid out once per snapshot, not
/// once per call: building one is a 125 KB fill per million rows, about 5 % of a filtered
/// search at 10 % selectivity. A predicate enters on its second sighting (a stream of distinct
/// ranges would only churn it); at most `capacity` bitsets are kept, least recently used first
/// out, so the cache holds at most `capacity` × slots / 8 bytes.
final class DenseBitsetCache: @unchecked Sendable {
    struct Key: Hashable {
        var cid: UInt32
        var predicate: Filter
        var snapshot: Int
        var bound: UInt32
    }
    private var entries: [(key: Key, bits: DenseBitset)] = []
    private var seen: [Key] = []
    private let capacity: Int
    private let lock = NSLock()

    init(capacity: Int = 8) { self.capacity = capacity }

    /// The cached bitset of `key`, or nil — then `shouldKeep` says whether the caller should
    /// build it in memory of its own and ``put(_:_:)`` it (a second sighting).
    func get(_ key: Key) -> (bits: DenseBitset?, shouldKeep: Bool) {
        lock.lock(); defer { lock.unlock() }
        if let i = entries.firstIndex(where: { $0.key == key }) {
            let e = entries.remove(at: i)
            entries.append(e)
            return (e.bits, false)
        }
        if let i = seen.firstIndex(of: key) {
            seen.remove(at: i)
            return (nil, true)
        }
        seen.append(key)
        if seen.count > 4 * capacity { seen.removeFirst() }
        return (nil, false)
    }

    func put(_ key: Key, _ bits: DenseBitset) {
        lock.lock(); defer { lock.unlock() }
        entries.removeAll { $0.key == key || $0.key.snapshot < key.snapshot && $0.key.cid == key.cid }
        entries.append((key, bits))
        if entries.count > capacity { entries.removeFirst() }
    }
}

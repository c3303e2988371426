import Foundation
import SextantFilter
import SextantKernels
import SextantStorage

/// The outcome of evaluating a filter inside a transaction.
struct FilterMatch {
    /// Exactly the live slots that satisfy the filter.
    var slots: Bitmap
    var rowsChecked: Int
    var keysRead: Int
    var liveRows: Int
    var explanation: FilterExplanation.Node?
}

extension VectorCollection {
    /// The exact set of live slots satisfying `filter`: the index's proven matches plus the
    /// undecided rows that pass a check against their stored attributes.
    func match(_ txn: Transaction, _ filter: BoundFilter?, explain: Bool = false) throws -> FilterMatch {
        // Workloads repeat predicates: a result evaluated in the same snapshot is reused. No
        // predicate is every live row, cached as TRUE (an unfiltered search read and decoded the
        // whole live set on every call: 128 KB at a million rows).
        let snapshot = txn.isWritable ? nil : txn.snapshotID
        let key = filter?.predicate ?? .matchAll
        if !explain, let snapshot, let hit = store.filterCache.get(cid, key, snapshot: snapshot) { return hit }
        let m = try evaluateMatch(txn, filter, explain: explain)
        if !explain, let snapshot { store.filterCache.put(cid, key, snapshot: snapshot, m) }
        return m
    }

    private func evaluateMatch(_ txn: Transaction, _ filter: BoundFilter?, explain: Bool) throws -> FilterMatch {
        let reader = IndexReader(txn: txn, db: db.postings, cid: cid)
        let live = try reader.live()
        guard let filter, !filter.matchesEverything else {
            let node = explain ? FilterExplanation.Node(expression: "TRUE", access: "live rows", matches: live.count, undecided: 0, keysRead: reader.keysRead, children: []) : nil
            return FilterMatch(slots: live, rowsChecked: 0, keysRead: reader.keysRead, liveRows: live.count, explanation: node)
        }
        let evaluator = FilterEvaluator(reader: reader, schema: schema, explain: explain)
        let (r, node) = try evaluator.evaluate(filter.root, needFalse: false)
        var slots = r.t.intersection(live)
        let undecided = r.m.subtracting(r.t).intersection(live)
        if !undecided.isEmpty {
            var check = RowCheck(collection: self, filter: filter, txn: txn)
            var passed = [UInt32]()
            for slot in undecided {
                guard let ok = try check.passes(slot) else {
                    throw SextantError(.corrupted, "live slot \(slot) has no row record", context: ["collection": name, "slot": String(slot)])
                }
                if ok { passed.append(slot) }
            }
            slots.formUnion(Bitmap(passed))
        }
        return FilterMatch(slots: slots, rowsChecked: undecided.count, keysRead: reader.keysRead, liveRows: live.count, explanation: node)
    }

    /// The exact number of live rows satisfying `filter` (all rows when nil), from the
    /// attribute indexes; fields that are not indexed are checked row by row.
    ///
    /// - Throws: `unknownAttribute` or `typeMismatch` when the filter does not bind to the schema,
    ///   `notFound` when the collection was dropped, storage errors (`mapFull`, `io`, `storage`,
    ///   ...).
    public func count(where filter: Filter?) throws -> Int {
        let bound = try filter.map { try $0.bind(to: schema) }
        return try store.env.read { txn in
            _ = try state(txn)
            return try match(txn, bound).slots.count
        }
    }

    /// Evaluates `filter` and reports which index answered each part, with row counts and time.
    ///
    /// - Throws: `unknownAttribute` or `typeMismatch` when the filter does not bind to the schema,
    ///   `notFound`, storage errors (`mapFull`, `io`, `storage`, ...).
    public func explain(_ filter: Filter?) throws -> FilterExplanation {
        let bound = try filter.map { try $0.bind(to: schema) }
        return try store.env.read { txn in
            _ = try state(txn)
            let start = DispatchTime.now().uptimeNanoseconds
            let m = try match(txn, bound, explain: true)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            return FilterExplanation(root: m.explanation!, matchCount: m.slots.count, liveRows: m.liveRows,
                                     rowsChecked: m.rowsChecked, indexKeysRead: m.keysRead, seconds: seconds,
                                     estimatedCost: Double(m.keysRead) + 8 * Double(m.rowsChecked))
        }
    }
}

extension VectorCollection {
    /// Counts matching rows by reading and evaluating every stored row, ignoring the indexes —
    /// the reference the index path is checked against, and the baseline it is measured against.
    ///
    /// - Throws: `unknownAttribute` or `typeMismatch` when the filter does not bind to the schema,
    ///   `notFound`, storage errors (`mapFull`, `io`, `storage`, ...).
    public func countByScan(where filter: Filter?) throws -> Int {
        let bound = try filter.map { try $0.bind(to: schema) }
        return try store.env.read { txn in
            let st = try state(txn)
            guard let bound, !bound.matchesEverything else { return Int(st.count) }
            let wanted = fieldsRead(by: bound)
            var n = 0
            try scanSlots(txn, db.rows, nil) { _, v in
                guard v.count >= 9 else { throw SextantError(.corrupted, "row record has \(v.count) bytes", context: ["collection": name]) }
                if bound.matches(try AttributeCodec.decode(UnsafeRawBufferPointer(rebasing: v[8...]), schema: schema, only: wanted)) { n += 1 }
            }
            return n
        }
    }
}

extension VectorCollection {
    /// The schema positions a predicate reads (decoding only those is enough to check it).
    func fieldsRead(by filter: BoundFilter) -> [Bool] {
        var wanted = [Bool](repeating: false, count: schema.count)
        for f in filter.predicate.referencedFields { if let p = schema.position(of: f) { wanted[p] = true } }
        return wanted
    }

    /// The stored attributes of `slot` (only the `wanted` fields decoded); nil when the slot
    /// has no row record.
    func storedAttributes(_ txn: Transaction, slot: UInt32, only wanted: [Bool]) throws -> AttributeRow? {
        try Keys.withRowKey(cid, slot) { k in
            try txn.withValue(db.rows, key: k) { v -> AttributeRow in
                guard v.count >= 9 else { throw SextantError(.corrupted, "row record has \(v.count) bytes", context: ["collection": name]) }
                return try AttributeCodec.decode(UnsafeRawBufferPointer(rebasing: v[8...]), schema: schema, only: wanted)
            }
        }
    }
}

/// Checks a predicate against single rows' stored attributes (only the fields it reads).
struct RowCheck {
    let collection: VectorCollection
    let filter: BoundFilter
    let txn: Transaction
    let wanted: [Bool]
    private(set) var checked = 0

    init(collection: VectorCollection, filter: BoundFilter, txn: Transaction) {
        self.collection = collection
        self.filter = filter
        self.txn = txn
        wanted = collection.fieldsRead(by: filter)
    }

    /// Whether the slot's row satisfies the predicate; nil when the slot has no row.
    mutating func passes(_ slot: UInt32) throws -> Bool? {
        checked += 1
        return try collection.storedAttributes(txn, slot: slot, only: wanted).map { filter.matches($0) }
    }
}

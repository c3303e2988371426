import Foundation
import Testing
@testable import Sextant
import SextantTestSupport

/// Workload-aware partitioning: the layout covers every row once, in consecutive slots;
/// exact results are identical to an unpartitioned twin before and after further writes;
/// membership follows writes while drift is reported; the layout persists and is validated.
@Suite struct PartitionTests {
    static let workload = [
        "category = 'cat1'", "category = 'cat1'", "category = 'cat1'", "in_stock = TRUE", "price < 10",
        "price < 10 AND in_stock = TRUE", "tags CONTAINS 'red'", "tags CONTAINS 'red' OR category = 'cat2'",
    ]

    static func twins(_ tag: String, recipe: String) throws -> (Store, VectorCollection, Store, VectorCollection, SyntheticDataset) {
        let data = SyntheticDataset(rows: 4000, dimension: 16, queries: 20, clusters: 16, seed: 23)
        var out: [(Store, VectorCollection)] = []
        for side in ["plain", "partitioned"] {
            let store = try Store(path: temporaryStorePath("\(tag)-\(side)"))
            let coll = try store.createCollection("c", dimension: 16, metric: .l2, schema: SyntheticDataset.schema, indexRecipe: recipe)
            // Written in two batches with deletes between, so that slots are not in id order.
            try coll.upsert((0..<2500).map { Row(id: UInt64($0), vector: data.vector($0), attributes: data.attributes[$0]) })
            try coll.delete((0..<2500).filter { $0 % 7 == 0 }.map(UInt64.init))
            try coll.upsert((2500..<4000).map { Row(id: UInt64($0), vector: data.vector($0), attributes: data.attributes[$0]) })
            if recipe != "Flat" { try coll.buildIndex(threads: 2) }
            out.append((store, coll))
        }
        return (out[0].0, out[0].1, out[1].0, out[1].1, data)
    }

    static func queries(_ data: SyntheticDataset) throws -> [Query] {
        let preds = workload + ["date >= 0", "category = 'none'", "price BETWEEN 20 AND 30"]
        return try (0..<data.queryCount * 3).map { i in
            Query(vector: data.query(i % data.queryCount), k: 5 + i % 7, filter: i % 5 == 4 ? nil : try Filter(sql: preds[i % preds.count]))
        }
    }

    /// `check(deep:)` finds nothing wrong (its problems are the failure's message).
    static func expectConsistent(_ store: Store, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let report = try store.check(deep: true)
        #expect(report.isConsistent, "\(report.problems)", sourceLocation: sourceLocation)
    }

    static func expectIdenticalExactResults(_ a: VectorCollection, _ b: VectorCollection, _ qs: [Query]) throws {
        let ra = try a.search(qs, options: SearchOptions(exact: true))
        let rb = try b.search(qs, options: SearchOptions(exact: true))
        #expect(ra == rb)
        for (i, q) in qs.enumerated() where i % 4 == 0 {
            #expect(try b.search(q.vector, k: q.k, filter: q.filter, options: SearchOptions(exact: true)) == ra[i])
        }
    }

    @Test func partitionedCollectionAnswersExactlyAsBeforeAndFollowsWrites() throws {
        let (s1, plain, s2, parted, data) = try Self.twins("part", recipe: "HNSW8,PQ8x4fs,Refine")
        defer { s1.close(); s2.close() }
        let workload = try Self.workload.map { try Filter(sql: $0) } + [nil]
        let live = try parted.count()
        let layout = try parted.partition(workload: workload, maxPartitions: 12, minRows: 100)
        // Every row in exactly one partition; partitions in consecutive slot ranges from 0.
        #expect(layout.leaves.count > 1 && layout.leaves.count <= 12)
        #expect(layout.leaves.map(\.rows).reduce(0, +) == live)
        #expect(layout.leaves.allSatisfy { $0.rows >= 100 && $0.slots.count == $0.rows })
        #expect(layout.leaves.first?.slots.lowerBound == 0)
        #expect(zip(layout.leaves, layout.leaves.dropFirst()).allSatisfy { $0.slots.upperBound == $1.slots.lowerBound })
        #expect(layout.rowsTouchedPartitioned < layout.rowsTouchedUnpartitioned)
        try Self.expectConsistent(s2)
        #expect(try parted.indexStatus().graphBuilt && parted.indexStatus().codesTrained)
        let stats = try #require(try parted.partitionStatistics())
        #expect(stats.drift == 0 && stats.liveRows == live)
        #expect(stats.leaves.allSatisfy { $0.rows == $0.rowsAtLayout && $0.rowsInPlace == $0.rows })
        let qs = try Self.queries(data)
        try Self.expectIdenticalExactResults(plain, parted, qs)
        // Every plan still returns min(k, matches) matching rows.
        for plan in PlanKind.allCases {
            for q in qs.prefix(12) {
                let got = try parted.search(q.vector, k: q.k, filter: q.filter, options: SearchOptions(plan: plan))
                #expect(got.count == min(q.k, try parted.count(where: q.filter)), "\(plan)")
            }
        }

        // The same writes on both: new rows, deletes, attribute changes moving rows between partitions.
        for c in [plain, parted] {
            try c.upsert((4000..<4300).map { Row(id: UInt64($0), vector: data.vector($0 % 4000), attributes: data.attributes[($0 * 3) % 4000]) })
            try c.delete((0..<4000).filter { $0 % 11 == 3 }.map(UInt64.init))
            try c.upsert((1..<200).map { Row(id: UInt64($0 * 13), vector: data.vector($0), attributes: ["category": .string("cat1"), "in_stock": .bool(true)]) })
        }
        try Self.expectIdenticalExactResults(plain, parted, qs)
        try Self.expectConsistent(s2)
        let after = try #require(try parted.partitionStatistics())
        let nowLive = try parted.count()
        #expect(after.liveRows == nowLive)
        #expect(after.drift > 0 && after.drift < 1)
        let outside = after.leaves.map { $0.rows - $0.rowsInPlace }.reduce(0, +)
        #expect(abs(after.drift - Double(outside) / Double(nowLive)) < 1e-12)
        // Membership comes from the predicates: the rows moved into 'cat1' count in its partitions.
        let cat1 = try parted.count(where: try Filter(sql: "category = 'cat1'"))
        let e = try parted.explainSearch(data.query(0), k: 5, filter: try Filter(sql: "category = 'cat1'"))
        #expect(e.plan.matches == cat1)
        #expect(e.partitionsTouched >= 1 && e.partitionsTouched < layout.leaves.count)
        let all = try parted.explainSearch(data.query(0), k: 5)
        #expect(all.partitionsTouched == layout.leaves.count)
        // Partitioning again restores the layout.
        try parted.partition(workload: workload, maxPartitions: 12, minRows: 100)
        #expect(try parted.partitionStatistics()?.drift == 0)
        try Self.expectIdenticalExactResults(plain, parted, qs)
    }

    @Test func newRowsTakeFreedSlotsOfTheirOwnPartition() throws {
        let (s1, plain, s2, parted, data) = try Self.twins("part-route", recipe: "HNSW8")
        defer { s1.close(); s2.close() }
        let layout = try parted.partition(workload: try Self.workload.map { try Filter(sql: $0) }, maxPartitions: 8, minRows: 100)
        let routing = try parted.store.env.read { txn in try #require(try parted.partitionRouting(txn)) }
        let rows = try parted.store.env.read { txn in
            try (0..<4000).compactMap { id -> (UInt64, UInt32, AttributeRow)? in
                guard let slot = try Keys.withExternalKey(parted.cid, UInt64(id), { k in
                    try txn.withValue(parted.db.ids, key: k) { v in try VectorCollection.slot(v) }
                }) else { return nil }
                return (UInt64(id), slot, try parted.attributeRow(data.attributes[id], row: nil))
            }
        }
        // Every row sits in the leaf its attributes route it to.
        for (_, slot, attributes) in rows { #expect(routing.leaf(of: attributes)?.slots.contains(slot) == true) }
        // Free 20 slots in the first leaf; 30 new rows routed there fill those 20 and then go
        // past the partitioned range, not into other leaves' freed slots.
        let first = layout.leaves[0]
        let inFirst = rows.filter { first.slots.contains($0.1) }
        let other = rows.filter { !first.slots.contains($0.1) }
        for c in [plain, parted] {
            try c.delete(inFirst.prefix(20).map(\.0))
            try c.delete(other.prefix(5).map(\.0))
        }
        let template = inFirst[0].0
        let fresh = (0..<30).map { i in Row(id: UInt64(10_000 + i), vector: data.vector(i), attributes: data.attributes[Int(template)]) }
        for c in [plain, parted] { try c.upsert(fresh) }
        let placed = try parted.store.env.read { txn in
            try fresh.map { r in
                try #require(try Keys.withExternalKey(parted.cid, r.id, { k in try txn.withValue(parted.db.ids, key: k) { v in try VectorCollection.slot(v) } }))
            }
        }
        #expect(placed.filter { first.slots.contains($0) }.count == 20)
        #expect(placed.filter { $0 >= routing.end }.count == 10)
        let stats = try #require(try parted.partitionStatistics())
        #expect(stats.leaves[0].rowsInPlace == first.rows)
        #expect(stats.leaves[0].rows == first.rows + 10)
        try Self.expectConsistent(s2)
        try Self.expectIdenticalExactResults(plain, parted, try Self.queries(data))
    }

    @Test func cellsFollowWritesAndProbedSearchesKeepTheirGuarantees() throws {
        let (s1, plain, s2, parted, data) = try Self.twins("part-cells", recipe: "HNSW8,PQ8x4fs,Refine")
        defer { s1.close(); s2.close() }
        let preds = try Self.workload.map { try Filter(sql: $0) }
        let workload = (0..<60).map { preds[$0 % preds.count] as Filter? }
        let vectors = (0..<60).map { data.query($0 % data.queryCount) }
        #expect(sextantError { _ = try parted.partition(workload: workload, cells: 20) }?.code == .invalidArgument)
        #expect(sextantError { _ = try parted.partition(workload: workload, cells: 16, queryVectors: Array(vectors.prefix(3))) }?.code == .invalidArgument)
        let layout = try parted.partition(workload: workload, maxPartitions: 16, minRows: 60, cells: 16, queryVectors: vectors, probes: 4)
        #expect(layout.cells == 16 && layout.cellCuts == Array(1..<16))
        // Probing queries make cell cuts pay on clustered vectors.
        #expect(layout.leaves.contains { $0.path.contains { $0.cut >= layout.cuts.count } })
        try Self.expectConsistent(s2)
        let again = try #require(try parted.partitionLayout())
        #expect(again.cells == 16 && again.cellCuts == layout.cellCuts && again.leaves == layout.leaves)

        func expectProbedGuarantees() throws {
            let qs = try Self.queries(data)
            try Self.expectIdenticalExactResults(plain, parted, qs)
            // The exact plan ignores probes.
            #expect(try parted.search(qs, options: SearchOptions(exact: true, probes: 1)) == (try plain.search(qs, options: SearchOptions(exact: true))))
            var hits = 0, total = 0
            for plan in [PlanKind?.none, .codes, .filteredGraph, .postFilter] {
                let got = try parted.search(qs, options: SearchOptions(plan: plan, probes: 4))
                for (i, q) in qs.enumerated() {
                    let matches = try parted.count(where: q.filter)
                    #expect(got[i].count == min(q.k, matches), "\(String(describing: plan)) query \(i)")
                    let allowed = Set(try parted.search(q.vector, k: max(1, matches), filter: q.filter, options: SearchOptions(exact: true)).map(\.id))
                    #expect(got[i].allSatisfy { allowed.contains($0.id) })
                    let exact = try parted.search(q.vector, k: q.k, filter: q.filter, options: SearchOptions(exact: true))
                    hits += Set(exact.map(\.id)).intersection(got[i].map(\.id)).count
                    total += exact.count
                }
            }
            #expect(Double(hits) / Double(max(1, total)) >= 0.7, "probed recall \(Double(hits) / Double(max(1, total)))")
            let e = try parted.explainSearch(data.query(0), k: 5, filter: preds[0], options: SearchOptions(plan: .codes, probes: 2))
            #expect(e.detail.contains("of 16 cells probed"))
        }
        try expectProbedGuarantees()
        // Writes keep every row's cell indexed: new rows, moved vectors, deletes.
        for c in [plain, parted] {
            try c.upsert((4000..<4200).map { Row(id: UInt64($0), vector: data.vector($0 % 4000), attributes: data.attributes[($0 * 3) % 4000]) })
            try c.upsert((1..<150).map { Row(id: UInt64($0 * 17), vector: data.vector(($0 * 31) % 4000), attributes: data.attributes[$0]) })
            try c.delete((0..<4000).filter { $0 % 9 == 4 }.map(UInt64.init))
        }
        try Self.expectConsistent(s2)
        try expectProbedGuarantees()
        // A cell posting lost behind the engine's back is reported.
        try parted.store.env.write { txn in
            let key = AttributeIndex.cellKey(parted.cid, 3)
            try txn.withCursor(parted.store.db.postings) { c in
                if try c.seek(key), c.key.starts(with: key) { try c.deleteCurrent() }
            }
        }
        #expect(try !s2.check(deep: true).isConsistent)
        // Partitioning again without cells drops them.
        try parted.partition(workload: workload, maxPartitions: 8)
        #expect(try parted.partitionLayout()?.cells == 0)
        #expect(try parted.store.env.read { txn in try parted.coarseQuantizer(txn) } == nil)
        try Self.expectConsistent(s2)
        #expect(try parted.search(Self.queries(data), options: SearchOptions(probes: 2)).count == Self.queries(data).count)
    }

    @Test func layoutPersistsAndBadInputIsTyped() throws {
        let (s1, _, s2, parted, _) = try Self.twins("part-persist", recipe: "Flat")
        s1.close()
        let path = s2.path
        #expect(sextantError { _ = try parted.partition(workload: []) }?.code == .invalidArgument)
        #expect(sextantError { _ = try parted.partition(workload: [try Filter(sql: "nope = 1")]) }?.code == .unknownAttribute)
        #expect(sextantError { _ = try parted.partition(workload: [nil], maxPartitions: 0) }?.code == .invalidArgument)
        #expect(try parted.partitionLayout() == nil)
        // A workload without predicates has nothing to cut on: one partition.
        let one = try parted.partition(workload: [nil, nil])
        #expect(one.leaves.count == 1 && one.leaves[0].path.isEmpty)
        let layout = try parted.partition(workload: try Self.workload.map { try Filter(sql: $0) }, maxPartitions: 6)
        s2.close()
        let reopened = try Store(path: path)
        defer { reopened.close() }
        let c = try reopened.collection("c")
        let again = try #require(try c.partitionLayout())
        #expect(again.leaves == layout.leaves && again.nodes == layout.nodes && again.cuts == layout.cuts)
        // A damaged record is reported as corruption, not trusted.
        try reopened.env.write { txn in try txn.put(reopened.db.index, key: c.indexKey("layout"), value: Array("{\"version\":1,\"cuts\":[\"nope = 1\"]}".utf8)) }
        #expect(sextantError { _ = try c.partitionLayout() }?.code == .corrupted)
    }
}

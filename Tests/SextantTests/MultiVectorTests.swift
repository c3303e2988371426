import Foundation
@testable import Sextant
import SextantKernels
import SextantStorage
import SextantTestSupport
import Testing

/// Small FDE parameters for tests (R = 8, k_sim = 3, identity projection of 16-d tokens:
/// 1,024 dimensions).
func testFDE(_ d: Int) -> FDEParameters {
    FDEParameters(tokenDimension: d, repetitions: 8, simhashBits: 3, projectionDimension: min(16, d), seed: 3)
}

/// A store with a multi-vector collection holding `data`'s documents (ids = index).
func multiVectorStore(_ data: MultiVectorDataset, recipe: String = "Flat", storage: TokenStorage = .float32,
                      tag: String = #function) throws -> (Store, VectorCollection) {
    let store = try Store(path: temporaryStorePath(tag))
    let c = try store.createMultiVectorCollection("docs", fde: testFDE(data.dimension), tokenStorage: storage,
                                                   schema: MultiVectorDataset.schema, indexRecipe: recipe)
    var batch: [MultiVectorRow] = []
    for i in 0..<data.documentCount {
        batch.append(MultiVectorRow(id: UInt64(i), tokens: data.document(i), attributes: data.attributes[i]))
        if batch.count == 200 { try c.upsert(documents: batch); batch = [] }
    }
    try c.upsert(documents: batch)
    return (store, c)
}

/// Every document as (id, tokens bits, attributes), for "nothing changed" checks.
func documentSnapshot(_ c: VectorCollection, ids: some Sequence<UInt64>) throws -> [String] {
    try ids.map { id in
        guard let r = try c.getDocument(id) else { return "\(id): none" }
        return "\(id): \(r.tokens.map(\.bitPattern)) \(r.attributes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })"
    }
}

/// The oracle: exact Chamfer over the documents of `data` still present (by id), filtered.
func oracle(_ data: MultiVectorDataset, query: [Float], k: Int, candidates: [Int]? = nil) -> [SearchResult] {
    data.exactTop(query, k: k, candidates: candidates).map { SearchResult(id: UInt64($0.index), distance: -$0.chamfer) }
}

@Suite struct MultiVectorTests {
    static let data = MultiVectorDataset(documents: 600, queries: 12, dimension: 16, concepts: 96, minTokens: 4, maxTokens: 20,
                                         queryTokens: 6, seed: 21)

    @Test func writeReadDeleteUpsertAndCheck() throws {
        let data = MultiVectorTests.data
        let (store, c) = try multiVectorStore(MultiVectorDataset(documents: 50, queries: 1, dimension: 16, concepts: 20,
                                                                 minTokens: 1, maxTokens: 9, seed: 2))
        defer { store.close() }
        _ = data
        #expect(try c.count() == 50)
        #expect(c.info.multiVector?.fde == testFDE(16))
        #expect(c.dimension == testFDE(16).dimension)
        let r = try #require(try c.getDocument(7))
        let small = MultiVectorDataset(documents: 50, queries: 1, dimension: 16, concepts: 20, minTokens: 1, maxTokens: 9, seed: 2)
        #expect(r.tokens == small.document(7))
        #expect(r.encoding == FDEEncoder(testFDE(16)).encode(small.document(7), side: .document))
        #expect(try store.check().problems.isEmpty)
        #expect(try c.checkTokens().isEmpty)
        // Replace: new tokens and attributes, same id.
        try c.upsert(document: MultiVectorRow(id: 7, tokens: [Float](repeating: 0.25, count: 32), attributes: ["group": 5]))
        #expect(try c.getDocument(7)?.tokens == [Float](repeating: 0.25, count: 32))
        #expect(try c.count() == 50)
        // Delete removes the token record with the row.
        #expect(try c.delete([7, 8, 999]) == 2)
        #expect(try c.getDocument(7) == nil)
        #expect(try c.count() == 48)
        #expect(try c.checkTokens().isEmpty)
        #expect(try store.check().problems.isEmpty)
        // Freed slots are reused by new documents, whose tokens are their own.
        try c.upsert(document: MultiVectorRow(id: 1000, tokens: small.document(3)))
        #expect(try c.getDocument(1000)?.tokens == small.document(3))
        #expect(try c.checkTokens().isEmpty)
        // Single-vector writes are refused on a multi-vector collection.
        let e = sextantError { try c.upsert(Row(id: 1, vector: [Float](repeating: 0, count: c.dimension))) }
        #expect(e?.code == .invalidArgument)
        // Drop removes the token records.
        try store.dropCollection("docs")
        let left = try store.env.read { txn in try txn.count(store.db.tokens!) }
        #expect(left == 0)
    }

    @Test func float16TokensAreRoundedAndConsistent() throws {
        let small = MultiVectorDataset(documents: 20, queries: 2, dimension: 16, concepts: 10, minTokens: 2, maxTokens: 6, seed: 5)
        let (store, c) = try multiVectorStore(small, storage: .float16)
        defer { store.close() }
        let r = try #require(try c.getDocument(3))
        let rounded = small.document(3).map { Float(Float16($0)) }
        #expect(r.tokens == rounded)
        #expect(r.encoding == FDEEncoder(testFDE(16)).encode(rounded, side: .document))
        #expect(try c.checkTokens().isEmpty)
        // Bytes: half of float32's per component.
        let bytes = try store.env.read { txn -> Int in
            var n = 0
            try txn.scan(store.db.tokens!, prefix: Keys.prefix(c.info.id)) { _, v in n += v.count; return true }
            return n
        }
        #expect(bytes == small.counts.reduce(0, +) * 16 * 2 + 4 * 20)
        let e = sextantError { try c.upsert(document: MultiVectorRow(id: 99, tokens: [Float](repeating: 1e6, count: 16))) }
        #expect(e?.code == .invalidArgument)
    }

    @Test func badInputGetsATypedErrorAndChangesNothing() throws {
        let small = MultiVectorDataset(documents: 10, queries: 1, dimension: 16, concepts: 10, minTokens: 2, maxTokens: 6, seed: 6)
        let (store, c) = try multiVectorStore(small)
        defer { store.close() }
        let before = try documentSnapshot(c, ids: 0..<12)
        let good = MultiVectorRow(id: 11, tokens: small.document(0))
        var nan = small.document(1)
        nan[5] = .nan
        let cases: [(MultiVectorRow, SextantError.Code)] = [
            (MultiVectorRow(id: 10, tokens: []), .invalidArgument),
            (MultiVectorRow(id: 10, tokens: [Float](repeating: 0.5, count: 17)), .dimensionMismatch),
            (MultiVectorRow(id: 2, tokens: nan), .nonFiniteValue),
            (MultiVectorRow(id: 10, tokens: small.document(2), attributes: ["nope": 1]), .unknownAttribute),
        ]
        for (bad, code) in cases {
            let e = sextantError { try c.upsert(documents: [good, bad]) }
            #expect(e?.code == code, "\(bad.tokens.count) components")
        }
        #expect(try documentSnapshot(c, ids: 0..<12) == before)
        #expect(try c.count() == 10)
        #expect(try c.checkTokens().isEmpty)
        // Queries too.
        #expect(sextantError { _ = try c.search(tokens: [], k: 3) }?.code == .invalidArgument)
        #expect(sextantError { _ = try c.search(tokens: [1, 2, 3], k: 3) }?.code == .dimensionMismatch)
        #expect(sextantError { _ = try c.search(tokens: nan, k: 3) }?.code == .nonFiniteValue)
        #expect(sextantError { _ = try c.search(tokens: small.query(0), k: 0) }?.code == .invalidArgument)
        // Multi-vector calls on a single-vector collection.
        let single = try store.createCollection("single", dimension: 16, metric: .ip)
        #expect(sextantError { _ = try single.search(tokens: small.query(0), k: 3) }?.code == .invalidArgument)
        #expect(sextantError { try single.upsert(document: good) }?.code == .invalidArgument)
    }

    @Test func exactPlanMatchesTheOracle() throws {
        let data = MultiVectorTests.data
        let (store, c) = try multiVectorStore(data)
        defer { store.close() }
        for qi in 0..<data.queryCount {
            let got = try c.search(tokens: data.query(qi), k: 10, options: MultiVectorSearchOptions(exact: true))
            let want = oracle(data, query: data.query(qi), k: 10)
            #expect(got.map(\.id) == want.map(\.id))
            for (g, w) in zip(got, want) { #expect(abs(g.distance - w.distance) < 1e-4) }
            // Filtered exact: every selectivity, min(k, matches) rows.
            for t in [0, 3, 50, 400, 1000] {
                let f = try Filter(sql: "group < \(t)")
                let matches = data.attributes.indices.filter { if case .int(let g) = data.attributes[$0]["group"]! { g < t } else { false } }
                let got = try c.search(tokens: data.query(qi), k: 10, filter: f, options: MultiVectorSearchOptions(exact: true))
                let want = oracle(data, query: data.query(qi), k: 10, candidates: matches)
                #expect(got.count == min(10, matches.count))
                #expect(got.map(\.id) == want.map(\.id))
            }
        }
    }

    /// Recall of the candidate plan (index over encodings + exact re-rank) against the oracle,
    /// for each index kind, unfiltered and filtered, never fewer than min(k, matches) rows.
    @Test(arguments: ["Flat", "HNSW16", "PQ64x8,Refine", "HNSW16,PQ64x4fs"])
    func candidatePlansAgainstTheOracle(recipe: String) throws {
        let data = MultiVectorTests.data
        let (store, c) = try multiVectorStore(data, recipe: recipe, tag: "candidates" + recipe)
        defer { store.close() }
        if recipe != "Flat" { try c.buildIndex() }
        var hits = 0, total = 0
        for qi in 0..<data.queryCount {
            for t in [1000, 300, 60, 5] {
                let f: Filter? = t == 1000 ? nil : try Filter(sql: "group < \(t)")
                let matches = data.attributes.indices.filter { if case .int(let g) = data.attributes[$0]["group"]! { g < t } else { false } }
                let options = MultiVectorSearchOptions(candidates: 60, exactBelow: 0)
                let e = try c.explainSearch(tokens: data.query(qi), k: 10, filter: f, options: options)
                #expect(e.plan == "fde-candidates" || matches.isEmpty)
                let got = e.results
                let want = oracle(data, query: data.query(qi), k: 10, candidates: matches)
                #expect(got.count == min(10, matches.count), "\(recipe) t=\(t)")
                hits += Set(got.map(\.id)).intersection(want.map(\.id)).count
                total += want.count
                // Re-ranked distances are exact Chamfer.
                for r in got {
                    let exact = MultiVectorDataset.referenceChamfer(data.query(qi), data.document(Int(r.id)), dimension: data.dimension)
                    #expect(abs(Double(-r.distance) - exact) < 1e-3)
                }
            }
        }
        let recall = Double(hits) / Double(total)
        print("multi-vector \(recipe): recall@10 \(recall) with 60 candidates")
        #expect(recall >= 0.8, "\(recipe): recall \(recall)")
        // The planner's default takes the exact plan for a selective predicate.
        let e = try c.explainSearch(tokens: data.query(0), k: 10, filter: try Filter(sql: "group < 20"))
        #expect(e.plan == "exact-chamfer")
        #expect(e.description.contains("exact-chamfer"))
    }

    /// Every plan of the candidate stage, forced, under a filter: min(k, matches) rows, exact
    /// Chamfer distances, recall against the oracle.
    @Test func forcedCandidatePlansAgainstTheOracle() throws {
        let data = MultiVectorTests.data
        let (store, c) = try multiVectorStore(data, recipe: "HNSW16,PQ64x8")
        defer { store.close() }
        try c.buildIndex()
        for plan in PlanKind.allCases {
            var hits = 0, total = 0
            for qi in 0..<data.queryCount {
                for t in [400, 100, 8] {
                    let matches = data.attributes.indices.filter { if case .int(let g) = data.attributes[$0]["group"]! { g < t } else { false } }
                    let options = MultiVectorSearchOptions(candidates: 80, exactBelow: 0, candidatePlan: plan)
                    let got = try c.search(tokens: data.query(qi), k: 10, filter: try Filter(sql: "group < \(t)"), options: options)
                    let want = oracle(data, query: data.query(qi), k: 10, candidates: matches)
                    #expect(got.count == min(10, matches.count), "\(plan) t=\(t)")
                    hits += Set(got.map(\.id)).intersection(want.map(\.id)).count
                    total += want.count
                    if let first = got.first {
                        let exact = MultiVectorDataset.referenceChamfer(data.query(qi), data.document(Int(first.id)), dimension: data.dimension)
                        #expect(abs(Double(-first.distance) - exact) < 1e-3)
                    }
                }
            }
            let recall = Double(hits) / Double(total)
            print("multi-vector forced \(plan.rawValue): recall@10 \(recall) with 80 candidates")
            #expect(recall >= 0.8, "\(plan): recall \(recall)")
        }
    }

    /// The graph traversed with code distances (4-bit codes wider than fast scan allows), the
    /// beam re-scored with full encodings: recall against the oracle, filtered and not, and
    /// the choice shown by explain.
    @Test func graphOverCodesAgainstTheOracle() throws {
        let data = MultiVectorTests.data
        let (store, c) = try multiVectorStore(data, recipe: "HNSW16,PQ512x4,Refine")
        defer { store.close() }
        try c.buildIndex()
        var hits = 0, total = 0
        for qi in 0..<data.queryCount {
            for t in [1000, 300, 60] {
                let f: Filter? = t == 1000 ? nil : try Filter(sql: "group < \(t)")
                let matches = data.attributes.indices.filter { if case .int(let g) = data.attributes[$0]["group"]! { g < t } else { false } }
                let options = MultiVectorSearchOptions(candidates: 60, exactBelow: 0, traverseCodes: true)
                let e = try c.explainSearch(tokens: data.query(qi), k: 10, filter: f, options: options)
                #expect(e.candidateSource == "graph-over-codes")
                #expect(e.description.contains("graph-over-codes"))
                let want = oracle(data, query: data.query(qi), k: 10, candidates: matches)
                #expect(e.results.count == min(10, matches.count), "t=\(t)")
                hits += Set(e.results.map(\.id)).intersection(want.map(\.id)).count
                total += want.count
                for r in e.results {
                    let exact = MultiVectorDataset.referenceChamfer(data.query(qi), data.document(Int(r.id)), dimension: data.dimension)
                    #expect(abs(Double(-r.distance) - exact) < 1e-3)
                }
            }
        }
        let recall = Double(hits) / Double(total)
        print("multi-vector graph over PQ512x4 codes: recall@10 \(recall) with 60 candidates")
        #expect(recall >= 0.8, "recall \(recall)")
        // Unforced, explain lists the candidate stages weighed.
        let e = try c.explainSearch(tokens: data.query(0), k: 10, options: MultiVectorSearchOptions(candidates: 60, exactBelow: 0))
        #expect(e.candidateEstimates.contains { $0.source == "graph-over-codes" })
        #expect(e.candidateEstimates.contains { $0.source == PlanKind.filteredGraph.rawValue })
        #expect(e.candidateSource == e.candidateEstimates.first?.source)
    }

    @Test func batchEqualsOneByOne() throws {
        let data = MultiVectorTests.data
        let (store, c) = try multiVectorStore(data, recipe: "HNSW16")
        defer { store.close() }
        try c.buildIndex()
        var queries: [MultiVectorQuery] = []
        for qi in 0..<data.queryCount {
            queries.append(MultiVectorQuery(tokens: data.query(qi), k: 5, filter: qi % 3 == 0 ? try Filter(sql: "lang = 'en'") : nil))
            queries.append(MultiVectorQuery(tokens: data.query(qi), k: 5, filter: try Filter(sql: "group < 10")))
        }
        let options = MultiVectorSearchOptions(candidates: 40)
        let batch = try c.search(queries, options: options)
        for (q, r) in zip(queries, batch) {
            #expect(try c.search(tokens: q.tokens, k: q.k, filter: q.filter, options: options) == r)
        }
    }

    @Test func reopenKeepsTheCollection() throws {
        let small = MultiVectorDataset(documents: 30, queries: 2, dimension: 16, concepts: 10, minTokens: 2, maxTokens: 6, seed: 7)
        let path: String
        do {
            let (store, c) = try multiVectorStore(small)
            path = store.path
            _ = c
            store.close()
        }
        let store = try Store(path: path)
        defer { store.close() }
        let c = try store.collection("docs")
        #expect(c.info.multiVector?.tokenStorage == .float32)
        #expect(try c.getDocument(4)?.tokens == small.document(4))
        let got = try c.search(tokens: small.query(1), k: 3)
        #expect(got.map(\.id) == oracle(small, query: small.query(1), k: 3).map(\.id))
    }
    @Test func dumpAndLoadCarryTheTokens() throws {
        let small = MultiVectorDataset(documents: 40, queries: 3, dimension: 16, concepts: 12, minTokens: 1, maxTokens: 7, seed: 8)
        for storage in TokenStorage.allCases {
            let (store, c) = try multiVectorStore(small, recipe: "HNSW8", storage: storage, tag: "dump" + storage.rawValue)
            defer { store.close() }
            var lines: [[UInt8]] = []
            try c.dump { lines.append($0) }
            #expect(lines.count == 41)
            let header = String(decoding: lines[0], as: UTF8.self)
            #expect(header.contains("\"multi_vector\""), "\(header)")
            #expect(String(decoding: lines[1], as: UTF8.self).contains("\"tokens\":[["))
            let other = try Store(path: temporaryStorePath("dumpTarget" + storage.rawValue))
            defer { other.close() }
            let loaded = try other.load { body in
                for (i, l) in lines.enumerated() { try l.withUnsafeBytes { try body($0, i) } }
            }
            #expect(loaded.info.multiVector == c.info.multiVector)
            #expect(try documentSnapshot(loaded, ids: 0..<40) == documentSnapshot(c, ids: 0..<40))
            for i in 0..<40 { #expect(try loaded.getDocument(UInt64(i))?.encoding == c.getDocument(UInt64(i))?.encoding) }
            var again: [[UInt8]] = []
            try loaded.dump { again.append($0) }
            #expect(again == lines)
            #expect(try other.check().problems.isEmpty)
            let q = small.query(0)
            #expect(try loaded.search(tokens: q, k: 5, options: MultiVectorSearchOptions(exact: true))
                    == c.search(tokens: q, k: 5, options: MultiVectorSearchOptions(exact: true)))
        }
    }

    @Test func checkFindsMissingOrphanAndAlteredTokens() throws {
        let small = MultiVectorDataset(documents: 20, queries: 1, dimension: 16, concepts: 12, minTokens: 2, maxTokens: 6, seed: 9)
        let (store, c) = try multiVectorStore(small)
        defer { store.close() }
        #expect(try store.check().problems.isEmpty)
        let t = store.db.tokens!
        // Tokens replaced behind the engine's back: the stored encoding no longer matches (deep).
        try store.env.write { txn in
            let rec = TokenRecord.encode([Float](repeating: 0.5, count: 16), count: 1, storage: .float32)
            try Keys.withExternalKey(c.info.id, 3) { k in try rec.withUnsafeBytes { try txn.put(t, key: k, value: $0) } }
        }
        let deep = try store.check(deep: true).problems
        #expect(deep.contains { $0.contains("id 3") && $0.contains("differs") }, "\(deep)")
        // A missing record and an orphan one.
        try store.env.write { txn in
            try Keys.withExternalKey(c.info.id, 4) { k in _ = try txn.delete(t, key: k) }
            let rec = TokenRecord.encode([Float](repeating: 0.5, count: 16), count: 1, storage: .float32)
            try Keys.withExternalKey(c.info.id, 777) { k in try rec.withUnsafeBytes { try txn.put(t, key: k, value: $0) } }
            // A truncated record.
            try Keys.withExternalKey(c.info.id, 5) { k in try [UInt8](repeating: 1, count: 7).withUnsafeBytes { try txn.put(t, key: k, value: $0) } }
        }
        let problems = try store.check(deep: false).problems
        #expect(problems.contains { $0.contains("777") && $0.contains("not a live row") }, "\(problems)")
        #expect(problems.contains { $0.contains("have token records") }, "\(problems)")
        #expect(problems.contains { $0.contains("id 5") }, "\(problems)")
        // Searching a corrupted record reports corruption rather than a wrong answer.
        #expect(sextantError { _ = try c.search(tokens: small.query(0), k: 20, options: MultiVectorSearchOptions(exact: true)) }?.code == .corrupted)
    }

    @Test func tokenRecordDecoderRejectsHostileBytes() throws {
        var rng = SeededRandom(seed: 10)
        var out: [Float] = []
        for _ in 0..<2000 {
            let n = Int(rng.next() % 80)
            var bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if n >= 4 && rng.next() % 2 == 0 { bytes[0] = UInt8(rng.next() % 4); bytes[1] = 0; bytes[2] = 0; bytes[3] = 0 }
            for storage in TokenStorage.allCases {
                let d = 1 + Int(rng.next() % 8)
                do {
                    let count = try bytes.withUnsafeBytes { try TokenRecord.decode($0, dimension: d, storage: storage, into: &out) }
                    #expect(count >= 1 && bytes.count == 4 + count * d * storage.width)
                } catch let e as SextantError {
                    #expect(e.code == .corrupted)
                }
            }
        }
    }
}

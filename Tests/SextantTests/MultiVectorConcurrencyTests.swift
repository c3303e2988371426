import Foundation
@testable import Sextant
import SextantTestSupport
import Testing

/// Multi-vector searches read one snapshot from the candidate stage to the re-rank, whatever
/// a writer commits meanwhile.
@Suite struct MultiVectorConcurrencyTests {
    static let n = 48

    /// Document `id` at version `v`: one token whose Chamfer similarity with the query token
    /// `[1, 0, 0, 0]` is `1 + id + 1000 v`, so a result's distance names the version scored.
    static func row(_ id: Int, version v: Int) -> MultiVectorRow {
        MultiVectorRow(id: UInt64(id), tokens: [Float(1 + id + 1000 * v), 0.5, 0.25, 0])
    }

    /// What one result list says about the snapshot it came from: nil when it is no state the
    /// writer ever committed. Round `r` deletes the ids `≡ r (mod 3)` in one commit (state:
    /// those missing, version `r − 1`), then writes every id at version `r` in the next (state:
    /// all present, version `r`).
    static func problem(_ results: [SearchResult]) -> String? {
        let ids = results.map { Int($0.id) }
        if Set(ids).count != ids.count { return "duplicate ids \(ids.sorted())" }
        let versions = Set(zip(ids, results).map { id, r in (-Double(r.distance) - 1 - Double(id)) / 1000 })
        guard versions.count == 1, let v = versions.first, v == v.rounded() else { return "versions \(versions.sorted().prefix(4)) in one result" }
        let present = Set(ids)
        if present.count == n { return nil }
        let missing = Set(0..<n).subtracting(present)
        // Missing ids must be exactly the class the round after version v deletes.
        let r = Int(v) + 1
        let expected = Set((0..<n).filter { $0 % 3 == r % 3 })
        return missing == expected ? nil : "version \(Int(v)) with \(missing.count) ids missing (\(missing.sorted().prefix(5)))"
    }

    @Test(arguments: ["Flat", "HNSW8", "HNSW8,PQ16x4,Refine"])
    func candidateStageAndRerankSeeOneSnapshot(recipe: String) throws {
        var config = Store.Configuration()
        config.searchThreads = 2
        config.syncMode = .noSync
        let store = try Store(path: temporaryStorePath("mvsnapshot-\(recipe)"), configuration: config)
        defer { store.close() }
        let c = try store.createMultiVectorCollection("docs", fde: testFDE(4), indexRecipe: recipe)
        try c.upsert(documents: (0..<Self.n).map { Self.row($0, version: 0) })
        if recipe != "Flat" { try c.buildIndex() }
        let stop = ManagedFlag()
        let errors = ErrorBox()
        let rounds = Counter()
        let writer = Thread {
            var r = 1
            while !stop.isSet {
                do {
                    _ = try c.delete((0..<Self.n).filter { $0 % 3 == r % 3 }.map { UInt64($0) })
                    try c.upsert(documents: (0..<Self.n).map { Self.row($0, version: r) })
                    rounds.add()
                    r += 1
                } catch { errors.add("writer: \(error)") }
            }
        }
        writer.start()
        // Every live document is a candidate and is re-ranked (no exact shortcut).
        let options = MultiVectorSearchOptions(candidates: Self.n, exactBelow: 0, traverseCodes: recipe.contains("PQ") ? true : nil)
        let query: [Float] = [1, 0, 0, 0]
        // Enough interleaving whatever the machine's load: rounds and searches, not seconds.
        let deadline = Date().addingTimeInterval(120)
        var searches = 0
        while (rounds.value < 30 || searches < 30) && Date() < deadline {
            let one = try c.search(tokens: query, k: Self.n, options: options)
            let batch = try c.search([MultiVectorQuery(tokens: query, k: Self.n), MultiVectorQuery(tokens: query + [0, 1, 0, 0], k: Self.n)],
                                     options: options)
            for r in [one, batch[0]] {
                if let p = Self.problem(r) { errors.add(p) }
            }
            // The batch's queries share the snapshot: the same ids.
            if Set(batch[0].map(\.id)) != Set(batch[1].map(\.id)) { errors.add("one batch, two id sets") }
            searches += 1
        }
        stop.set()
        while !writer.isFinished { Thread.sleep(forTimeInterval: 0.01) }
        #expect(errors.items.isEmpty, "\(errors.items.prefix(3))")
        #expect(rounds.value >= 30, "writer rounds: \(rounds.value)")
        #expect(searches >= 30)
        #expect(try c.checkTokens().isEmpty)
    }
}

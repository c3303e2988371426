import Foundation
import Sextant
import SextantTestSupport
import Testing

/// Crash campaign for multi-vector collections: `sextant import` of token sets (one transaction
/// per batch) is killed with SIGKILL at random moments; after each kill `check --deep` passes
/// (every live row has its token record, whose encoding is the stored vector), the rows present
/// are whole batches, and every present document holds exactly its generated tokens.
@Suite(.serialized) struct MultiVectorCampaignTests {
    static var trials: Int { max(1, CampaignTests.crashTrials / 10) }

    @Test func killedMultiVectorImportsLeaveWholeBatches() throws {
        guard CrashTests.sextantBinary != nil else { print("multi-vector crash campaign: no sextant binary; skipped"); return }
        let dir = temporaryStorePath("mvcampaign")
        let data = dir + "/data"
        #expect(try CrashTests.run(["generate", data, "--multi-vector", "--rows", "1500", "--dim", "16", "--queries", "2",
                                    "--tokens", "2,12", "--query-tokens", "4", "--concepts", "40", "--seed", "5"]) == 0)
        let reference = MultiVectorDataset(documents: 1500, queries: 2, dimension: 16, concepts: 40, minTokens: 2, maxTokens: 12,
                                           queryTokens: 4, seed: 5)
        let batch = 40
        var rng = SeededRandom(seed: 77)
        var partial = 0
        for trial in 0..<MultiVectorCampaignTests.trials {
            let db = "\(dir)/db\(trial)"
            #expect(try CrashTests.run(["create", db, "docs", "--dim", "16", "--multi-vector", "--fde", "4,3,8",
                                        "--schema", MultiVectorDataset.schema.spelling]) == 0)
            let w = try Child(["import", db, "docs", "--vectors", data + "/tokens.npy", "--counts", data + "/counts.npy",
                               "--attributes", data + "/attributes.jsonl", "--batch", String(batch)])
            usleep(UInt32(20_000 + rng.next() % 600_000))
            w.kill9()
            _ = w.finish()
            #expect(try CrashTests.run(["check", db, "--deep"]) == 0, "trial \(trial): check --deep failed")
            let store = try Store(path: db)
            defer { store.close() }
            let c = try store.collection("docs")
            let n = try c.count()
            if n > 0 && n < reference.documentCount { partial += 1 }
            #expect(n % batch == 0 || n == reference.documentCount, "trial \(trial): \(n) rows is not whole batches")
            for id in 0..<reference.documentCount {
                let doc = try c.getDocument(UInt64(id))
                if id < n {
                    #expect(doc?.tokens == reference.document(id), "trial \(trial): document \(id)")
                } else {
                    #expect(doc == nil, "trial \(trial): document \(id) beyond \(n) rows")
                }
            }
            // Searching the survivor is exact against the oracle over the rows present.
            let got = try c.search(tokens: reference.query(0), k: 5, options: MultiVectorSearchOptions(exact: true))
            let want = reference.exactTop(reference.query(0), k: 5, candidates: Array(0..<n)).map { UInt64($0.index) }
            #expect(got.map(\.id) == want)
        }
        print("multi-vector crash campaign: \(MultiVectorCampaignTests.trials) trials, \(partial) killed mid-import")
    }
}

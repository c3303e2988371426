import Foundation
import Testing
import Sextant
import SextantTestSupport

/// Runs the `sextant` binary built next to the tests.
struct Child {
    let process = Process()
    let out = Pipe()

    init(_ args: [String]) throws {
        process.executableURL = URL(fileURLWithPath: CrashTests.sextantBinary!)
        process.arguments = args
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    func kill9() { if process.isRunning { kill(process.processIdentifier, SIGKILL) }; process.waitUntilExit() }

    /// Waits for exit and returns (status, stdout).
    func finish() -> (Int32, String) {
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Reads stdout until `line` appears (or EOF).
    func waitFor(_ line: String) -> Bool {
        var text = ""
        while true {
            let d = out.fileHandleForReading.availableData
            if d.isEmpty { return false }
            text += String(decoding: d, as: UTF8.self)
            if text.contains(line) { return true }
        }
    }
}

@Suite(.serialized) struct CampaignTests {
    static var crashTrials: Int { Int(ProcessInfo.processInfo.environment["SEXTANT_CRASH_TRIALS"] ?? "") ?? 100 }

    /// The crash campaign: a writer that upserts and deletes is killed with SIGKILL at random
    /// moments; after each kill `check --deep` passes, every acknowledged step is present and
    /// nothing beyond the step in flight is.
    @Test func writersKilledAtRandomLoseNothingAcknowledged() throws {
        guard CrashTests.sextantBinary != nil else { print("crash campaign: no sextant binary; skipped"); return }
        let dir = temporaryStorePath("campaign")
        let dim = 8
        var rng = SeededRandom(seed: 2026)
        var acknowledged = 0, killed = 0
        for trial in 0..<CampaignTests.crashTrials {
            let db = "\(dir)/db\(trial)"
            #expect(try CrashTests.run(["create", db, "c", "--dim", String(dim), "--metric", "l2", "--schema", StressWorkload.schema.spelling]) == 0)
            let seed = UInt64(trial + 1)
            let w = try Child(["stress", db, "c", "--mode", "write", "--seed", String(seed)])
            usleep(UInt32(5_000 + rng.next() % 250_000))
            w.kill9()
            killed += 1
            let (_, output) = w.finish()
            let acks = output.split(separator: "\n").compactMap { l -> Int? in l.hasPrefix("ack ") ? Int(l.dropFirst(4)) : nil }
            let last = acks.last ?? -1
            acknowledged += last + 1
            #expect(try CrashTests.run(["check", db, "--deep"]) == 0, "trial \(trial): check --deep failed")
            let store = try Store(path: db)
            defer { store.close() }
            let c = try store.collection("c")
            var actual: [UInt64: Record] = [:]
            for id in 0..<StressWorkload.idSpace { if let r = try c.get(id) { actual[id] = r } }
            // Acknowledged steps 0…last are in; the step in flight may be absent, half or whole.
            let candidates = [
                StressWorkload.model(seed: seed, steps: last + 1, dimension: dim),
                StressWorkload.model(seed: seed, steps: last + 1, dimension: dim, halfStep: true),
                StressWorkload.model(seed: seed, steps: last + 2, dimension: dim),
            ]
            let matches = candidates.contains { m in
                m.rows.count == actual.count && m.rows.allSatisfy { id, r in
                    actual[id]?.vector == r.vector && actual[id]?.attributes == r.attributes.filter { !$0.value.isNull }
                }
            }
            #expect(matches, "trial \(trial): store differs from every state consistent with \(last + 1) acknowledged steps")
            try? FileManager.default.removeItem(atPath: db)
        }
        print("crash campaign: \(killed) writers killed with SIGKILL, \(acknowledged) acknowledged steps all present, check --deep passed after each")
    }

    static var graphCrashTrials: Int { Int(ProcessInfo.processInfo.environment["SEXTANT_GRAPH_CRASH_TRIALS"] ?? "") ?? 20 }

    /// The same campaign on an HNSW collection whose graph changes in every transaction:
    /// after each kill the graph passes `check --deep` and a graph search (with a beam wider
    /// than the collection) for every acknowledged row's vector finds that row.
    /// `sextant partition` killed at random moments: the store is consistent after each kill,
    /// holds the same rows with the same exact results, and is either untouched, rewritten
    /// without its graph yet (`index` rebuilds it), or fully partitioned.
    @Test func partitionKilledAtRandomLeavesAConsistentStore() throws {
        guard CrashTests.sextantBinary != nil else { print("partition crash campaign: no sextant binary; skipped"); return }
        let dir = temporaryStorePath("partition-campaign")
        let template = "\(dir)/template"
        let data = SyntheticDataset(rows: 4000, dimension: 16, queries: 8, clusters: 12, seed: 31)
        let filters = try ["category = 'cat1'", "in_stock = TRUE", "price < 10", "tags CONTAINS 'red'"].map { try Filter(sql: $0) }
        var expected: [[SearchResult]] = []
        do {
            let store = try Store(path: template)
            defer { store.close() }
            let c = try store.createCollection("c", dimension: 16, metric: .l2, schema: SyntheticDataset.schema, indexRecipe: "HNSW8,PQ8x4fs,Refine")
            try c.upsert((0..<4000).map { Row(id: UInt64($0), vector: data.vector($0), attributes: data.attributes[$0]) })
            try c.buildIndex(threads: 2)
            for i in 0..<data.queryCount { expected.append(try c.search(data.query(i), k: 10, filter: filters[i % 4], options: SearchOptions(exact: true))) }
        }
        let workload = "\(dir)/workload.jsonl"
        let lines = (0..<40).map { i in "{\"query\": \(i), \"where\": \"\(filters[i % 4].toSQL().replacingOccurrences(of: "\"", with: "\\\""))\"}" }
        try lines.joined(separator: "\n").write(toFile: workload, atomically: true, encoding: .utf8)
        var rng = SeededRandom(seed: 404)
        var outcomes: [String: Int] = [:]
        for trial in 0..<8 {
            let db = "\(dir)/db\(trial)"
            try FileManager.default.copyItem(atPath: template, toPath: db)
            // Odd trials also train cells, whose index is written with the rows.
            let p = try Child(["partition", db, "c", "--workload", workload, "--max-partitions", "8"] + (trial % 2 == 1 ? ["--cells", "16"] : []))
            if trial < 7 {
                usleep(UInt32(rng.next() % 1_500_000))
                p.kill9()
            }
            // The last trial runs to completion: the fully partitioned outcome is checked too.
            _ = p.finish()
            #expect(try CrashTests.run(["check", db, "--deep"]) == 0, "trial \(trial): check --deep failed")
            let store = try Store(path: db)
            defer { store.close() }
            let c = try store.collection("c")
            #expect(try c.count() == 4000)
            let layout = try c.partitionLayout()
            let graph = try c.indexStatus().graphBuilt
            outcomes[layout == nil ? "untouched" : graph ? "partitioned" : "rewritten, graph pending", default: 0] += 1
            if layout == nil { #expect(graph) }
            if !graph { try c.buildIndex(threads: 2) }
            if layout != nil { #expect(try c.partitionStatistics()?.drift == 0) }
            for i in 0..<data.queryCount {
                #expect(try c.search(data.query(i), k: 10, filter: filters[i % 4], options: SearchOptions(exact: true)) == expected[i], "trial \(trial)")
            }
            try? FileManager.default.removeItem(atPath: db)
        }
        #expect(outcomes["partitioned", default: 0] >= 1)
        print("partition crash campaign: 7 kills and a completed run; outcomes \(outcomes.sorted { $0.key < $1.key }); check --deep passed after each")
    }

    /// With SQ8 too: the writer's codes are written in the same transactions as its rows.
    @Test(arguments: ["HNSW4_32", "HNSW4_32,SQ8"])
    func graphWritersKilledAtRandomLoseNothingAcknowledged(recipe: String) throws {
        guard CrashTests.sextantBinary != nil else { print("graph crash campaign: no sextant binary; skipped"); return }
        let sq8 = recipe.hasSuffix("SQ8")
        let dir = temporaryStorePath(sq8 ? "graph-campaign-sq8" : "graph-campaign")
        let dim = 8
        var rng = SeededRandom(seed: sq8 ? 78 : 77)
        var acknowledged = 0, found = 0
        if sq8 {
            // SQ8 trains on rows: 300 of them, with ids outside the writer's id space.
            #expect(try CrashTests.run(["generate", dir + "/data", "--rows", "300", "--dim", String(dim), "--queries", "0"]) == 0)
            try (0..<300).map { String(1_000_000 + $0) }.joined(separator: "\n").write(toFile: dir + "/ids.txt", atomically: true, encoding: .utf8)
        }
        for trial in 0..<(sq8 ? max(1, CampaignTests.graphCrashTrials / 2) : CampaignTests.graphCrashTrials) {
            let db = "\(dir)/db\(trial)"
            #expect(try CrashTests.run(["create", db, "c", "--dim", String(dim), "--metric", "l2", "--index", recipe, "--schema", StressWorkload.schema.spelling]) == 0)
            if sq8 {
                #expect(try CrashTests.run(["import", db, "c", "--vectors", dir + "/data/base.fvecs", "--ids", dir + "/ids.txt"]) == 0)
            } else {
                #expect(try CrashTests.run(["index", db, "c"]) == 0)  // an empty graph: rows are linked as written
            }
            let seed = UInt64(trial + 1000)
            let w = try Child(["stress", db, "c", "--mode", "write", "--seed", String(seed)])
            usleep(UInt32(20_000 + rng.next() % 400_000))
            w.kill9()
            let (_, output) = w.finish()
            let last = output.split(separator: "\n").compactMap { l -> Int? in l.hasPrefix("ack ") ? Int(l.dropFirst(4)) : nil }.last ?? -1
            acknowledged += last + 1
            #expect(try CrashTests.run(["check", db, "--deep"]) == 0, "trial \(trial): check --deep failed")
            let store = try Store(path: db)
            defer { store.close() }
            let c = try store.collection("c")
            #expect(try c.indexStatus().graphBuilt)
            // Every row of the acknowledged steps that is still present is found by its vector.
            let model = StressWorkload.model(seed: seed, steps: last + 1, dimension: dim)
            // The step in flight may have replaced or deleted some of them.
            let inFlight = StressWorkload.transaction(seed: seed, index: last + 1, dimension: dim)
            let touched = Set(inFlight.deletes).union(inFlight.upserts.map(\.id))
            // ef above the id space: the beam never fills, so every node reachable from the
            // entry point (all of them, per check) is visited — a miss is a lost or cut-off row.
            for (id, r) in model.rows where !touched.contains(id) {
                let hit = try c.search(r.vector, k: 1, options: SearchOptions(ef: Int(StressWorkload.idSpace) + 100, plan: .filteredGraph)).first
                #expect(hit?.distance == 0, "trial \(trial): row \(id) not found by its vector")
                found += 1
            }
            try? FileManager.default.removeItem(atPath: db)
        }
        print("graph crash campaign (\(recipe)): writers killed with SIGKILL, \(acknowledged) acknowledged steps, \(found) acknowledged rows found by graph search, check --deep passed after each")
    }

    /// Four reader processes query while a writer process imports: no errors, no torn snapshot.
    @Test func fourReaderProcessesAndAWriter() throws {
        guard CrashTests.sextantBinary != nil else { print("multi-process: no sextant binary; skipped"); return }
        let dir = temporaryStorePath("readers")
        #expect(try CrashTests.run(["generate", dir + "/data", "--rows", "40000", "--dim", "32", "--queries", "0"]) == 0)
        let db = dir + "/db"
        #expect(try CrashTests.run(["create", db, "c", "--dim", "32", "--metric", "l2", "--schema", SyntheticDataset.schema.spelling]) == 0)
        let writer = try Child(["import", db, "c", "--vectors", dir + "/data/base.fvecs", "--attributes", dir + "/data/attributes.jsonl", "--batch", "500"])
        let readers = try (0..<4).map { _ in try Child(["stress", db, "c", "--mode", "read", "--multiple", "500", "--seconds", "3"]) }
        var ops = 0
        for r in readers {
            let (status, out) = r.finish()
            #expect(status == 0, "a reader failed: \(out)")
            ops += Int(out.split(separator: " ").last.map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) } ?? "") ?? 0
        }
        let (ws, _) = writer.finish()
        #expect(ws == 0)
        #expect(ops > 0)
        print("multi-process: 4 reader processes ran \(ops) operations during an import of 40000 rows in 80 transactions; no errors, no torn snapshots")
    }

    /// A reader killed inside a transaction leaves a stale slot that `stat --readers` shows and
    /// the next ordinary open clears; `compact` refuses while another process holds the store.
    @Test func staleReaderSlotsAndCompactionRefusal() throws {
        guard CrashTests.sextantBinary != nil else { print("stale readers: no sextant binary; skipped"); return }
        let dir = temporaryStorePath("stale")
        let db = dir + "/db"
        #expect(try CrashTests.run(["create", db, "c", "--dim", "4", "--metric", "l2"]) == 0)
        do {
            let s = try Store(path: db)
            try s.collection("c").upsert((0..<50).map { Row(id: UInt64($0), vector: [1, 2, 3, Float($0)]) })
            s.close()
        }
        // LMDB resets the reader table when the last process closes the store, so the stale
        // slot is observable while some process (this one) keeps the store open.
        let keeper = try Store(path: db)
        let holder = try Child(["stress", db, "c", "--mode", "hold", "--seconds", "60"])
        #expect(holder.waitFor("holding"))
        // Held by another process: compaction is refused.
        #expect(try CrashTests.run(["compact", db]) == 1)
        let pid = holder.process.processIdentifier
        holder.kill9()
        let stat = try Child(["stat", db, "--readers", "--json"])
        let (_, text) = stat.finish()
        #expect(text.contains(" \(pid) ") || text.contains("\(pid) "), "the dead reader's slot is not listed: \(text)")
        // The next ordinary open (another process's) clears it.
        #expect(try CrashTests.run(["list", db]) == 0)
        let (_, after) = try Child(["stat", db, "--readers", "--json"]).finish()
        #expect(!after.contains(" \(pid) "), "the stale slot survived an open: \(after)")
        keeper.close()
        #expect(try CrashTests.run(["compact", db]) == 0)
        #expect(try CrashTests.run(["check", db, "--deep"]) == 0)
    }
}

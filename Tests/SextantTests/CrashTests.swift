import Foundation
import Testing
import Sextant
import SextantTestSupport

/// Crash safety, tested: a writer process is killed with SIGKILL at random moments; every reopen
/// must pass `check`, and exactly whole committed batches must be present.
@Suite struct CrashTests {
    static var sextantBinary: String? {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let p = candidate.appendingPathComponent("sextant").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    @discardableResult
    static func run(_ args: [String]) throws -> Int32 {
        try Child(args).finish().0
    }

    @Test func killedImportsLeaveWholeBatches() throws {
        guard CrashTests.sextantBinary != nil else {
            print("CrashTests: the sextant binary was not built next to the tests; skipped")
            return
        }
        let dir = temporaryStorePath("crash")
        let rows = 6000, batch = 250
        #expect(try CrashTests.run(["generate", dir + "/data", "--rows", String(rows), "--dim", "16", "--queries", "0"]) == 0)
        let ds = SyntheticDataset(rows: rows, dimension: 16, queries: 0, seed: 42)
        var rng = SeededRandom(seed: 7)
        var kills = 0
        for trial in 0..<12 {
            let db = dir + "/db\(trial)"
            #expect(try CrashTests.run(["create", db, "c", "--dim", "16", "--metric", "l2", "--schema", SyntheticDataset.schema.spelling]) == 0)
            let writer = try Child(["import", db, "c", "--vectors", dir + "/data/base.fvecs", "--attributes", dir + "/data/attributes.jsonl", "--batch", String(batch)])
            usleep(UInt32(20_000 + rng.next() % 400_000))
            if writer.process.isRunning { kills += 1 }
            writer.kill9()
            let store = try Store(path: db)
            defer { store.close() }
            let report = try store.check()
            #expect(report.isConsistent, "trial \(trial): \(report.problems.prefix(3))")
            let c = try store.collection("c")
            let n = try c.count()
            #expect(n % batch == 0 || n == rows, "trial \(trial): \(n) rows is not a whole number of batches")
            // The committed prefix is intact, the rest absent.
            for id in [0, n / 2, n - 1, n, n + 1].filter({ $0 >= 0 && $0 < rows }) {
                let r = try c.get(UInt64(id))
                if id < n { #expect(r?.vector == ds.vector(id), "trial \(trial) id \(id)") } else { #expect(r == nil) }
            }
            // The store keeps working after the crash.
            try c.upsert(id: 999_999, vector: [Float](repeating: 1, count: 16))
        }
        #expect(kills > 0)
    }
}

@Suite struct MultiProcessTests {
    /// Another process imports while this one reads: every snapshot holds whole batches only,
    /// and reads never fail.
    @Test func readerProcessSeesWholeTransactionsWhileAWriterImports() throws {
        guard CrashTests.sextantBinary != nil else {
            print("MultiProcessTests: the sextant binary was not built next to the tests; skipped")
            return
        }
        let dir = temporaryStorePath("mp")
        #expect(try CrashTests.run(["generate", dir + "/data", "--rows", "20000", "--dim", "32", "--queries", "0"]) == 0)
        let db = dir + "/db"
        #expect(try CrashTests.run(["create", db, "c", "--dim", "32", "--metric", "l2", "--schema", SyntheticDataset.schema.spelling]) == 0)
        let writer = try Child(["import", db, "c", "--vectors", dir + "/data/base.fvecs", "--attributes", dir + "/data/attributes.jsonl", "--batch", "500"])
        let p = writer.process
        var config = Store.Configuration()
        config.readOnly = true
        let store = try Store(path: db, configuration: config)
        defer { store.close() }
        let c = try store.collection("c")
        var observations = 0
        var seen = Set<Int>()
        while p.isRunning || observations == 0 {
            let n = try c.count()
            #expect(n % 500 == 0 || n == 20000, "a reader saw \(n) rows")
            // Count and search are two snapshots; the writer may commit between them.
            let hits = try c.search([Float](repeating: 0, count: 32), k: 5)
            let after = try c.count()
            #expect(hits.count >= min(5, n) && hits.count <= min(5, after))
            seen.insert(n)
            observations += 1
        }
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(try c.count() == 20000)
        #expect(observations > 1)
    }
}

import Foundation
import Testing
@testable import Sextant
import SextantFormats
import SextantStorage
import SextantTestSupport

/// Runs the `sextant` binary built next to the tests and returns (status, stdout, stderr); a
/// death by signal is reported as status 128 + signal, so a test can tell it from an exit code.
func runSextant(_ args: [String], timeout: TimeInterval = 120) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: CrashTests.sextantBinary!)
    p.arguments = args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    // Drain both pipes while the child runs (a full pipe would block it).
    let outBox = DataBox(), errBox = DataBox()
    let readers = [Thread { outBox.data = out.fileHandleForReading.readDataToEndOfFile() },
                   Thread { errBox.data = err.fileHandleForReading.readDataToEndOfFile() }]
    readers.forEach { $0.start() }
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
    if p.isRunning { kill(p.processIdentifier, SIGKILL) }
    p.waitUntilExit()
    while readers.contains(where: { !$0.isFinished }) { Thread.sleep(forTimeInterval: 0.005) }
    let status = p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
    return (status, String(decoding: outBox.data, as: UTF8.self), String(decoding: errBox.data, as: UTF8.self))
}

final class DataBox: @unchecked Sendable {
    private var value = Data()
    private let lock = NSLock()
    var data: Data {
        get { lock.lock(); defer { lock.unlock() }; return value }
        set { lock.lock(); value = newValue; lock.unlock() }
    }
}

/// Defects found by probing the tool as a hostile user would; each test failed before its fix.
@Suite(.serialized) struct ReliabilityTests {
    /// Ids anywhere in UInt64 survive every path exactly: import, query, batch, get, dump, load,
    /// copy; an `.ivecs` result file (int32) refuses an id it cannot hold.
    @Test func idsAcrossTheWholeUInt64RangeAreExact() throws {
        guard CrashTests.sextantBinary != nil else { print("ids test: no sextant binary; skipped"); return }
        let dir = temporaryStorePath("large-ids")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let ids: [UInt64] = [0, 1 << 31, UInt64(Int64.max), 1 << 63, 9_223_372_036_854_775_813, UInt64.max]
        let d = 4
        // Row i sits at distance 0 from query i and far from the others.
        let vectors: [Float] = ids.indices.flatMap { i in (0..<d).map { Float($0 == 0 ? 10 * i : 1) } }
        try VectorFileWriter.write(vectors, dimension: d, to: dir + "/v.fvecs", format: .fvecs)
        try (ids.map(String.init).joined(separator: "\n") + "\n").write(toFile: dir + "/ids.txt", atomically: true, encoding: .utf8)
        try (ids.indices.map { "{\"n\": \($0)}" }.joined(separator: "\n") + "\n").write(toFile: dir + "/a.jsonl", atomically: true, encoding: .utf8)
        let db = dir + "/db"
        #expect(try runSextant(["create", db, "c", "--dim", String(d), "--metric", "l2", "--schema", "n:int"]).status == 0)
        let imported = try runSextant(["import", db, "c", "--vectors", dir + "/v.fvecs", "--ids", dir + "/ids.txt", "--attributes", dir + "/a.jsonl"])
        #expect(imported.status == 0, "\(imported.err)")

        func idsOf(_ line: Substring) throws -> [UInt64] {
            let json = try JSONValue(parsing: Array(line.utf8))
            guard case .array(let a)? = json["ids"] else { return [] }
            return a.map { $0.unsignedValue ?? 42 }
        }
        // query: the nearest row of query i is ids[i].
        let q = try runSextant(["query", db, "c", "--queries", dir + "/v.fvecs", "-k", "1", "--out", dir + "/q.jsonl"])
        #expect(q.status == 0, "\(q.err)")
        let qLines = try String(contentsOfFile: dir + "/q.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(try qLines.map { try idsOf($0).first ?? 42 } == ids)
        // The same through the batch command.
        try (ids.indices.map { "{\"query\": \($0), \"where\": null}" }.joined(separator: "\n") + "\n")
            .write(toFile: dir + "/w.jsonl", atomically: true, encoding: .utf8)
        let b = try runSextant(["batch", db, "c", "--workload", dir + "/w.jsonl", "--queries", dir + "/v.fvecs", "-k", "1", "--out", dir + "/b.jsonl"])
        #expect(b.status == 0, "\(b.err)")
        let bLines = try String(contentsOfFile: dir + "/b.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(try bLines.map { try idsOf($0).first ?? 42 } == ids)
        // An .ivecs result file cannot hold ids above 2^31 − 1: a typed error, no file.
        let iv = try runSextant(["query", db, "c", "--queries", dir + "/v.fvecs", "-k", "1", "--out", dir + "/q.ivecs", "--json"])
        #expect(iv.status == 1)
        #expect(iv.err.contains("\"error\":\"invalidArgument\""), "\(iv.err)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/q.ivecs"))
        // get prints each id exactly.
        let g = try runSextant(["get", db, "c"] + ids.map(String.init))
        #expect(g.status == 0, "\(g.err)")
        let got = try g.out.split(separator: "\n").map { try JSONValue(parsing: Array($0.utf8))["id"]?.unsignedValue }
        #expect(got == ids.map { Optional($0) })
        for id in ids { #expect(g.out.contains("\"id\":\(id),")) }
        // dump → load restores the same ids; copy keeps them.
        #expect(try runSextant(["dump", db, "c", "--out", dir + "/dump.jsonl"]).status == 0)
        let dumped = try String(contentsOfFile: dir + "/dump.jsonl", encoding: .utf8)
        for id in ids { #expect(dumped.contains("\"id\":\(id),"), "dump lacks \(id)") }
        #expect(!dumped.contains("e+18"))
        let loaded = try runSextant(["load", dir + "/db2", "--input", dir + "/dump.jsonl"])
        #expect(loaded.status == 0, "\(loaded.err)")
        #expect(try runSextant(["copy", db, dir + "/db3"]).status == 0)
        for other in [dir + "/db2", dir + "/db3"] {
            let store = try Store(path: other)
            defer { store.close() }
            let c = try store.collection("c")
            for (i, id) in ids.enumerated() {
                let r = try c.get(id)
                #expect(r?.attributes["n"] == .int(Int64(i)), "\(other): id \(id)")
            }
            #expect(try c.count() == ids.count)
        }
        // A dump line whose id was written as a double (older dumps) names no single id: refused.
        try "{\"format\":\"sextant-dump\"}\n".write(toFile: dir + "/x", atomically: true, encoding: .utf8)
        let store = try Store(path: dir + "/db4")
        defer { store.close() }
        let c = try store.createCollection("c", dimension: d, metric: .l2, schema: try Schema(parsing: "n:int"))
        for text in ["{\"id\":9.223372036854776e+18,\"vector\":[1,1,1,1]}", "{\"id\":-1,\"vector\":[1,1,1,1]}", "{\"id\":18446744073709551616,\"vector\":[1,1,1,1]}"] {
            let e = sextantError { _ = try c.row(fromDumpLine: try JSONValue(parsing: Array(text.utf8)), line: 2) }
            #expect(e?.code == .malformedFile, "\(text)")
        }
        #expect(try c.count() == 0)
    }

    /// JSON integers keep their exact value across the whole UInt64 and Int64 ranges.
    @Test func jsonIntegersRoundTripExactly() throws {
        for text in ["0", "2147483648", "9223372036854775807", "9223372036854775808", "18446744073709551615", "-9223372036854775808"] {
            let v = try JSONValue(parsing: Array(text.utf8))
            #expect(v.jsonText == text)
            if case .double = v { Issue.record("\(text) parsed as a double") }
        }
        #expect(try JSONValue(parsing: Array("18446744073709551616".utf8)) == .double(18446744073709551616))
        #expect(JSONValue.unsigned(5) == .int(5))
        #expect(JSONValue.unsigned(UInt64.max) == .uint(UInt64.max))
        #expect(JSONValue.int(-1).unsignedValue == nil)
        #expect(JSONValue.double(3).unsignedValue == nil)
    }

    /// A damaged page header (LMDB keeps no checksums and trusts it) makes `check` report
    /// `corrupted` with exit code 2, never die of a signal: the walk runs in a child process.
    @Test func checkReportsDamagedPagesInsteadOfCrashing() throws {
        guard CrashTests.sextantBinary != nil else { print("damaged-page test: no sextant binary; skipped"); return }
        let dir = temporaryStorePath("damaged-page")
        let db = dir + "/db"
        let data = SyntheticDataset(rows: 3000, dimension: 8, queries: 0, seed: 11)
        do {
            let store = try Store(path: db)
            let c = try store.createCollection("c", dimension: 8, metric: .l2, schema: SyntheticDataset.schema)
            try c.upsert((0..<3000).map { Row(id: UInt64($0), vector: data.vector($0), attributes: data.attributes[$0]) })
            store.close()
        }
        #expect(try runSextant(["check", db, "--deep"]).status == 0)
        do {
            let env = try Environment(StorageConfiguration(path: db))
            #expect(try env.verifyPages() == [])
            env.close()
        }
        // Raise the item count of every leaf page (mp_lower's high byte, offset 13 of the
        // 16-byte header): LMDB then reads node offsets from far past the page's real nodes.
        let file = db + "/data.mdb"
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        var damaged = 0
        for p in 2..<(bytes.count / page) {
            let o = p * page
            let pgno = bytes[o..<o + 8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
            let flags = UInt16(bytes[o + 10]) | UInt16(bytes[o + 11]) << 8
            guard pgno == UInt64(p), flags & 0x7F == 0x02 else { continue }
            bytes[o + 13] = 0xE5
            damaged += 1
        }
        #expect(damaged > 0)
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        // In-process, the page walk reports the damage before LMDB follows a damaged page.
        do {
            let env = try Environment(StorageConfiguration(path: db))
            defer { env.close() }
            let problems = try env.verifyPages()
            #expect(!problems.isEmpty)
            #expect(problems.contains { $0.contains("free-space bounds") || $0.contains("outside") }, "\(problems.prefix(3))")
        }
        for args in [["check", db], ["check", db, "--deep"], ["check", db, "--json"]] {
            let r = try runSextant(args)
            #expect(r.status == 2, "\(args): status \(r.status), \(r.err.prefix(300))")
            #expect(r.out.contains("INCONSISTENT") || r.out.contains("\"consistent\":false"), "\(args): \(r.out.prefix(300))")
        }
    }

    /// A full filesystem fails the write with `mapFull` naming the store (not `io` naming the
    /// input file) and loses no committed batch. Needs root to mount a small tmpfs; skipped
    /// otherwise.
    @Test func fullDiskIsMapFullNamingTheStore() throws {
        guard CrashTests.sextantBinary != nil else { print("full-disk test: no sextant binary; skipped"); return }
        let dir = temporaryStorePath("full-disk")
        let mnt = dir + "/mnt"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=6m", "tmpfs", mnt]
        mount.standardError = FileHandle.nullDevice
        guard (try? mount.run()) != nil, ({ mount.waitUntilExit(); return mount.terminationStatus == 0 })() else {
            print("full-disk test: cannot mount a tmpfs (needs root); skipped")
            return
        }
        defer {
            let u = Process()
            u.executableURL = URL(fileURLWithPath: "/bin/umount")
            u.arguments = [mnt]
            try? u.run()
            u.waitUntilExit()
        }
        let rows = 24_000, d = 64, batch = 2000
        var rng = SeededRandom(seed: 5)
        let vectors = (0..<rows * d).map { _ in Float(rng.next() % 1000) / 999 }
        try VectorFileWriter.write(vectors, dimension: d, to: dir + "/v.fvecs", format: .fvecs)
        let db = mnt + "/db"
        #expect(try runSextant(["create", db, "c", "--dim", String(d), "--metric", "l2"]).status == 0)
        let r = try runSextant(["import", db, "c", "--vectors", dir + "/v.fvecs", "--batch", String(batch), "--json"])
        #expect(r.status == 1)
        let error = try? JSONValue(parsing: Array((r.err.split(separator: "\n").last ?? "").utf8))
        #expect(error?["error"]?.stringValue == "mapFull", "\(r.err.suffix(400))")
        #expect(error?["message"]?.stringValue?.contains(db) == true, "\(r.err.suffix(400))")
        // Every committed batch is there, whole, and the store is consistent.
        let store = try Store(path: db, configuration: { var c = Store.Configuration(); c.readOnly = true; return c }())
        defer { store.close() }
        let n = try store.collection("c").count()
        #expect(n > 0 && n < rows && n % batch == 0, "\(n) rows")
        #expect(try store.check(deep: true).isConsistent)
    }

    /// A compaction killed during its copy leaves `<store>.compact-<pid>` behind; the next
    /// open or compact removes it (the name carries the dead process's pid, so nothing else
    /// would), and the store itself is untouched.
    @Test func killedCompactionLeftoversAreRemoved() throws {
        guard CrashTests.sextantBinary != nil else { print("compaction leftovers: no sextant binary; skipped"); return }
        let dir = temporaryStorePath("compact-leftovers")
        let db = dir + "/db"
        let d = 64, rows = 30_000
        var rng = SeededRandom(seed: 9)
        do {
            let store = try Store(path: db)
            let c = try store.createCollection("c", dimension: d, metric: .l2, schema: Schema([]))
            for start in stride(from: 0, to: rows, by: 5000) {
                try c.upsert((start..<start + 5000).map { i in Row(id: UInt64(i), vector: (0..<d).map { _ in Float(rng.next() % 100) }, attributes: [:]) })
            }
            _ = try c.delete(Array(0..<UInt64(rows / 2)))
            store.close()
        }
        func leftovers() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("db.compact-") }
        }
        var leftBehind = 0
        for trial in 0..<12 {
            let child = try Child(["compact", db])
            usleep(UInt32(1_000 + rng.next() % 40_000))
            child.kill9()
            let left = try leftovers()
            if !left.isEmpty { leftBehind += 1 }
            // Alternate the two cleaners: a plain open, then the next compaction.
            if trial % 2 == 0 {
                let store = try Store(path: db)
                #expect(try leftovers().isEmpty, "trial \(trial): open left \(left)")
                #expect(try store.collection("c").count() == rows / 2)
                #expect(try store.check().isConsistent)
                store.close()
            } else if !left.isEmpty {
                #expect(try runSextant(["compact", db]).status == 0)
                #expect(try leftovers().isEmpty, "trial \(trial): compact left \(left)")
            }
        }
        // Not every kill lands during the copy; make sure the path was exercised at least once.
        let fake = db + ".compact-999999"
        try FileManager.default.createDirectory(atPath: fake, withIntermediateDirectories: true)
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: fake + "/data.mdb"))
        #expect(try runSextant(["compact", db]).status == 0)
        #expect(try leftovers().isEmpty)
        // A directory with other files in it is not a compaction's: it stays.
        let foreign = db + ".compact-12345"
        try FileManager.default.createDirectory(atPath: foreign, withIntermediateDirectories: true)
        try Data([1]).write(to: URL(fileURLWithPath: foreign + "/notes.txt"))
        try Data([1]).write(to: URL(fileURLWithPath: foreign + "/data.mdb"))
        try Store(path: db).close()
        #expect(FileManager.default.fileExists(atPath: foreign + "/notes.txt"))
        #expect(FileManager.default.fileExists(atPath: foreign + "/data.mdb"))
        print("killedCompactionLeftoversAreRemoved: \(leftBehind) of 12 kills left a copy behind")
    }

    /// Filters and workload files: an unknown attribute or a type mismatch names the file and
    /// the 1-based line, as a syntax error does. Out-of-range numeric options are usage errors
    /// (exit 64) naming the option and the value, never "Missing value" and never a silent 1.
    @Test func fileErrorsNameTheLineAndOptionsAreChecked() throws {
        guard CrashTests.sextantBinary != nil else { print("option checks: no sextant binary; skipped"); return }
        let dir = temporaryStorePath("file-errors")
        let db = dir + "/db"
        let data = SyntheticDataset(rows: 300, dimension: 8, queries: 4, seed: 4)
        do {
            let store = try Store(path: db)
            let c = try store.createCollection("c", dimension: 8, metric: .l2, schema: SyntheticDataset.schema)
            try c.upsert((0..<300).map { Row(id: UInt64($0), vector: data.vector($0), attributes: data.attributes[$0]) })
            store.close()
        }
        try VectorFileWriter.write(data.queries, dimension: 8, to: dir + "/q.fvecs", format: .fvecs)
        func write(_ lines: [String], _ name: String) throws -> String {
            try (lines.joined(separator: "\n") + "\n").write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
            return dir + "/" + name
        }
        func error(_ args: [String]) throws -> JSONValue? {
            let r = try runSextant(args + ["--json"])
            #expect(r.status == 1, "\(args): \(r.status) \(r.err)")
            return try? JSONValue(parsing: Array((r.err.split(separator: "\n").last ?? "").utf8))
        }
        let filters = try write(["{\"where\": null}", "{\"where\": \"price < 10\"}", "{\"where\": \"colour = 'red'\"}", "{\"where\": null}"], "f.jsonl")
        let e1 = try error(["query", db, "c", "--queries", dir + "/q.fvecs", "--filters", filters])
        #expect(e1?["error"]?.stringValue == "unknownAttribute")
        #expect(e1?["context"]?["file"]?.stringValue == filters)
        #expect(e1?["context"]?["line"]?.stringValue == "3")
        try VectorFileWriter.writeIvecs([Int32](repeating: 0, count: 4 * 10), dimension: 10, to: dir + "/gt.ivecs")
        let e2 = try error(["bench", db, "c", "--queries", dir + "/q.fvecs", "--truth", dir + "/gt.ivecs", "--filters", filters])
        #expect(e2?["context"]?["line"]?.stringValue == "3", "\(String(describing: e2))")
        let workload = try write(["{\"query\": 0, \"where\": null}", "{\"query\": 2, \"where\": \"price < 3\"}", "{\"query\": 1, \"where\": \"price = 'cheap'\"}"], "w.jsonl")
        let e3 = try error(["batch", db, "c", "--workload", workload, "--queries", dir + "/q.fvecs", "--out", dir + "/o.jsonl"])
        #expect(e3?["error"]?.stringValue == "typeMismatch")
        #expect(e3?["context"]?["file"]?.stringValue == workload)
        #expect(e3?["context"]?["line"]?.stringValue == "3")
        let e4 = try error(["partition", db, "c", "--workload", workload])
        #expect(e4?["context"]?["line"]?.stringValue == "3", "\(String(describing: e4))")
        for (args, message) in [(["query", db, "c", "--queries", dir + "/q.fvecs", "-k", "-5"], "-k must be at least 1, got -5"),
                                (["query", db, "c", "--queries", dir + "/q.fvecs", "--ef", "-1"], "--ef must be at least 1, got -1"),
                                (["query", db, "c", "--queries", dir + "/q.fvecs", "--rerank", "-1"], "--rerank must be at least 0, got -1"),
                                (["query", db, "c", "--queries", dir + "/q.fvecs", "--threads", "0"], "--threads must be at least 1, got 0"),
                                (["batch", db, "c", "--workload", workload, "--queries", dir + "/q.fvecs", "--out", "-", "-k", "0"], "-k must be at least 1, got 0"),
                                (["index", db, "c", "--threads", "-2"], "--threads must be at least 1, got -2")] {
            let r = try runSextant(args)
            #expect(r.status == 64, "\(args): \(r.status)")
            #expect(r.err.contains(message), "\(args): \(r.err)")
        }
    }
}

import Foundation
import Sextant
import SextantTestSupport
import Testing

/// `sextant import --counts`: files that do not describe whole token sets are refused with a
/// typed error before anything is written.
@Suite struct MultiVectorImportTests {
    /// Runs the `sextant` binary; returns the exit status and stderr.
    static func run(_ args: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CrashTests.sextantBinary!)
        p.arguments = args
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let data = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// `.fvecs` rows (int32 dimension, then the floats).
    static func writeFvecs(_ path: String, _ rows: [[Float]]) throws {
        var bytes: [UInt8] = []
        for r in rows {
            withUnsafeBytes(of: Int32(r.count).littleEndian) { bytes += $0 }
            for x in r { withUnsafeBytes(of: x.bitPattern.littleEndian) { bytes += $0 } }
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// `.ivecs` with one value per row.
    static func writeCounts(_ path: String, _ counts: [Int32]) throws {
        var bytes: [UInt8] = []
        for c in counts {
            withUnsafeBytes(of: Int32(1).littleEndian) { bytes += $0 }
            withUnsafeBytes(of: c.littleEndian) { bytes += $0 }
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    @Test func countsThatDoNotAddUpToTheTokenRowsChangeNothing() throws {
        guard CrashTests.sextantBinary != nil else { print("multi-vector import: no sextant binary; skipped"); return }
        let dir = temporaryStorePath("mvimport")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let db = dir + "/db"
        #expect(try Self.run(["create", db, "docs", "--dim", "4", "--multi-vector", "--fde", "2,2,4"]).0 == 0)
        // 10 tokens: three documents of 3, 3 and 4 tokens.
        let tokens = (0..<10).map { i in (0..<4).map { j in Float(i * 4 + j + 1) / 40 } }
        try Self.writeFvecs(dir + "/tokens.fvecs", tokens)
        try Self.writeCounts(dir + "/good.ivecs", [3, 3, 4])
        #expect(try Self.run(["import", db, "docs", "--vectors", dir + "/tokens.fvecs", "--counts", dir + "/good.ivecs"]).0 == 0)
        func snapshot() throws -> [String] {
            let store = try Store(path: db)
            defer { store.close() }
            let c = try store.collection("docs")
            return try documentSnapshot(c, ids: 0..<6) + ["count \(try c.count())"]
        }
        let before = try snapshot()
        #expect(before.last == "count 3")
        // Counts adding up to more and to fewer tokens than the file holds; a count of zero.
        let cases: [([Int32], String)] = [([3, 3, 5], "malformedFile"), ([3, 3, 3], "malformedFile"), ([4, 3], "malformedFile"),
                                          ([3, 0, 3, 4], "invalidArgument")]
        for (counts, code) in cases {
            try Self.writeCounts(dir + "/bad.ivecs", counts)
            let (status, err) = try Self.run(["import", db, "docs", "--vectors", dir + "/tokens.fvecs", "--counts", dir + "/bad.ivecs",
                                              "--json"])
            #expect(status != 0, "\(counts)")
            #expect(err.contains("\"error\":\"\(code)\""), "\(counts): \(err)")
            #expect(try snapshot() == before, "\(counts)")
        }
    }
}

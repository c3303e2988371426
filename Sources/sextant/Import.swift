import ArgumentParser
import Foundation
import Sextant
import SextantFormats

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import vectors (.fvecs/.bvecs/.npy) with optional JSONL attributes and ids.",
        discussion: "Row i of the vectors file gets line i of the attributes file and line i of the ids file (default id: i). Existing ids are replaced.")

    @OptionGroup var store: StoreOptions
    @Argument(help: "The collection name.") var collection: String
    @Option(name: .long, help: "Vectors: .fvecs, .bvecs or .npy (<f4, <f2, <f8).") var vectors: String
    @Option(name: .long, help: "JSONL attributes, one object per vector.") var attributes: String?
    @Option(name: .long, help: "Text file of ids, one unsigned integer per line.") var ids: String?
    @Option(name: .long, help: "Rows per transaction.") var batch: Int = 10_000
    @Flag(name: .long, help: "Skip fsync per batch; one sync at the end (a crash mid-import may lose batches).") var noSync = false
    @Flag(name: .long, help: "Do not train the collection's index after the import (run `sextant index` later).") var deferIndex = false

    func run() throws {
        try runReporting(json: store.json) {
            guard batch >= 1 else { throw SextantError(.invalidArgument, "--batch must be at least 1") }
            let file = try VectorFile(path: vectors)
            var config = Store.Configuration()
            config.createIfMissing = false
            if noSync { config.syncMode = .noSync }
            let db = try Store(path: store.db, configuration: config)
            defer { db.close() }
            let coll = try db.collection(collection)
            guard file.dimension == coll.dimension else {
                throw SextantError(.dimensionMismatch, "'\(vectors)' has dimension \(file.dimension); collection '\(collection)' has \(coll.dimension)",
                                   context: ["file": vectors, "expected": String(coll.dimension), "got": String(file.dimension)])
            }
            let idList = try ids.map { try readIDs($0, expected: file.count) }
            let progress = Progress(total: file.count, unit: "rows", json: store.json)
            let started = Date()
            var next = 0
            func flush(_ attrs: [[String: AttributeValue]]?, upTo end: Int) throws {
                guard end > next else { return }
                let flat = try file.rows(next..<end)
                let d = file.dimension
                var rows: [Row] = []
                rows.reserveCapacity(end - next)
                for i in next..<end {
                    let off = (i - next) * d
                    rows.append(Row(id: idList?[i] ?? UInt64(i), vector: Array(flat[off..<off + d]),
                                    attributes: attrs?[i - next] ?? [:]))
                }
                do { try coll.upsert(rows) } catch let e as SextantError {
                    // Row positions in errors are file rows, not batch positions.
                    var e = e
                    if let r = e.context["row"], let ri = Int(r) { e.context["row"] = String(ri + next) }
                    e.context["file"] = vectors
                    throw e
                }
                next = end
                progress.advance(to: next)
            }
            if let attributes {
                var pending: [[String: AttributeValue]] = []
                let lines = try LineReader(path: attributes).forEachLine { bytes, line in
                    guard line < file.count else {
                        throw SextantError(.malformedFile, "'\(attributes)' has more lines than '\(vectors)' has vectors (\(file.count))", context: ["file": attributes, "line": String(line + 1)])
                    }
                    let json: JSONValue
                    do { json = try JSONValue(parsing: bytes) } catch let e as SextantError {
                        throw e.adding(["file": attributes, "line": String(line + 1)])
                    }
                    pending.append(try coll.attributes(fromJSON: json, row: line))
                    if pending.count == batch {
                        try flush(pending, upTo: line + 1)
                        pending.removeAll(keepingCapacity: true)
                    }
                }
                guard lines == file.count else {
                    throw SextantError(.malformedFile, "'\(attributes)' has \(lines) lines; '\(vectors)' has \(file.count) vectors", context: ["file": attributes])
                }
                try flush(pending, upTo: file.count)
            } else {
                while next < file.count { try flush(nil, upTo: min(next + batch, file.count)) }
            }
            if noSync { try db.sync() }
            progress.finish()
            let secs = Date().timeIntervalSince(started)
            // A PQ recipe whose codebooks are not trained yet: train now on what was imported.
            let status = try coll.indexStatus()
            if ((status.wantsCodes && !status.codesTrained) || (status.wantsGraph && !status.graphBuilt)) && !deferIndex {
                let t0 = Date()
                let bar = ProgressBar(json: store.json)
                try coll.buildIndex(onProgress: bar.handler)
                bar.finish()
                Console.err("index built in \(String(format: "%.2f", Date().timeIntervalSince(t0))) s")
            }
            let total = try coll.count()
            if store.json {
                Console.out("{\"imported\":\(file.count),\"rows\":\(total),\"seconds\":\(String(format: "%.3f", secs)),\"rows_per_second\":\(String(format: "%.1f", Double(file.count) / max(secs, 1e-9)))}")
            } else {
                Console.out("imported \(file.count) rows into '\(collection)' in \(String(format: "%.2f", secs)) s (\(Int(Double(file.count) / max(secs, 1e-9))) rows/s); it now holds \(total) rows")
            }
        }
    }

    func readIDs(_ path: String, expected: Int) throws -> [UInt64] {
        var out: [UInt64] = []
        out.reserveCapacity(expected)
        let n = try LineReader(path: path).forEachLine { bytes, line in
            let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            guard let v = UInt64(text) else {
                throw SextantError(.malformedFile, "ids file line \(line + 1) is not an unsigned integer: '\(text.prefix(40))'", context: ["file": path, "line": String(line + 1)])
            }
            out.append(v)
        }
        guard n == expected else {
            throw SextantError(.malformedFile, "ids file has \(n) lines; the vectors file has \(expected) vectors", context: ["file": path])
        }
        return out
    }
}

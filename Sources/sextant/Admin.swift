import ArgumentParser
import Foundation
import Sextant
import SextantFormats

struct Get: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print rows by id as JSON lines.")
    @OptionGroup var store: StoreOptions
    @Argument(help: "The collection name.") var collection: String
    @Argument(help: "External ids.") var ids: [UInt64]

    func run() throws {
        try runReporting(json: store.json) {
            let db = try openStore(store.db, readOnly: true)
            defer { db.close() }
            let c = try db.collection(collection)
            var missing: [UInt64] = []
            for id in ids {
                if let r = try c.get(id) { Console.out(VectorCollection.json(r, schema: c.schema).jsonText) } else { missing.append(id) }
            }
            if !missing.isEmpty {
                throw SextantError(.notFound, "no row with id \(missing.map(String.init).joined(separator: ", "))", context: ["collection": collection])
            }
        }
    }
}

struct Delete: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete rows by id (in one transaction).")
    @OptionGroup var store: StoreOptions
    @Argument(help: "The collection name.") var collection: String
    @Argument(help: "External ids.") var ids: [UInt64]

    func run() throws {
        try runReporting(json: store.json) {
            let db = try openStore(store.db)
            defer { db.close() }
            let n = try db.collection(collection).delete(ids)
            Console.out(store.json ? "{\"deleted\":\(n),\"requested\":\(ids.count)}" : "deleted \(n) of \(ids.count) rows")
        }
    }
}

struct Drop: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete a collection and all its rows.")
    @OptionGroup var store: StoreOptions
    @Argument(help: "The collection name.") var collection: String

    func run() throws {
        try runReporting(json: store.json) {
            let db = try openStore(store.db)
            defer { db.close() }
            try db.dropCollection(collection)
            Console.out(store.json ? "{\"dropped\":\(JSONValue.string(collection).jsonText)}" : "dropped '\(collection)'")
        }
    }
}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List collections.")
    @OptionGroup var store: StoreOptions

    func run() throws {
        try runReporting(json: store.json) {
            let db = try openStore(store.db, readOnly: true)
            defer { db.close() }
            for c in try db.collections() {
                if store.json {
                    Console.out(JSONValue.object(JSONObject([("name", .string(c.name)), ("dimension", .int(Int64(c.dimension))),
                        ("metric", .string(c.metric.rawValue)), ("schema", .string(c.schema.spelling)), ("index", .string(c.indexRecipe))])).jsonText)
                } else {
                    Console.out("\(c.name)\tdim=\(c.dimension)\tmetric=\(c.metric)\tindex=\(c.indexRecipe)\tschema=\(c.schema.spelling)")
                }
            }
        }
    }
}

struct Stat: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show row counts, sizes, map usage and readers.")
    @OptionGroup var store: StoreOptions
    @Flag(name: .long, help: "Also list the reader table (pid, thread, transaction per slot), stale slots of dead processes included.") var readers = false
    @Flag(name: .long, help: "Also walk each HNSW graph: nodes, unreachable nodes, degree statistics per level (reads the whole graph).") var graph = false
    @Flag(name: .long, help: "Also list each partition of a partitioned collection: its condition, rows then and now, rows in place.") var partitions = false

    func run() throws {
        try runReporting(json: store.json) {
            var config = Store.Configuration()
            config.readOnly = true
            config.createIfMissing = false
            config.clearStaleReadersAtOpen = !readers
            let db = try Store(path: store.db, configuration: config)
            defer { db.close() }
            let s = try db.statistics()
            let readerLines = readers ? try db.readers() : []
            if store.json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.sortedKeys]
                var text = String(decoding: try enc.encode(s), as: UTF8.self)
                if readers {
                    text.removeLast()
                    text += ",\"readerTable\":" + JSONValue.array(readerLines.map { .string($0) }).jsonText + "}"
                }
                var layouts: [(String, JSONValue)] = []
                for c in s.collections {
                    guard let p = try db.collection(c.name).partitionStatistics() else { continue }
                    layouts.append((c.name, .object(JSONObject([
                        ("partitions", .int(Int64(p.leaves.count))), ("cells", .int(Int64(p.cells))), ("drift", .double(p.drift)), ("liveRows", .int(Int64(p.liveRows))),
                        ("leaves", .array(p.leaves.map { l in .object(JSONObject([
                            ("id", .int(Int64(l.id))), ("condition", .string(l.description)), ("rowsAtLayout", .int(Int64(l.rowsAtLayout))),
                            ("rows", .int(Int64(l.rows))), ("rowsInPlace", .int(Int64(l.rowsInPlace))),
                        ])) })),
                    ]))))
                }
                if !layouts.isEmpty {
                    text.removeLast()
                    text += ",\"partitioning\":" + JSONValue.object(JSONObject(layouts)).jsonText + "}"
                }
                Console.out(text)
            } else {
                Console.out("store \(s.path) (format \(s.formatVersion))")
                Console.out("  file \(formatBytes(s.fileBytes)), used \(formatBytes(s.usedBytes)), map \(formatBytes(s.mapBytes)), page \(s.pageSize) B")
                Console.out("  readers \(s.readersInUse)/\(s.maxReaders), last transaction \(s.lastTransaction)")
                for c in s.collections {
                    Console.out("  collection \(c.name): \(c.rows) rows, dim \(c.dimension), \(c.metric), index \(c.indexRecipe), \(c.freeSlots) free slots of \(c.slots)")
                    if !c.schema.isEmpty { Console.out("    schema \(c.schema)") }
                    if c.slots > c.rows { Console.out("    tombstones: \(c.slots - c.rows) deleted slots awaiting reuse") }
                    let coll = try db.collection(c.name)
                    let status = try coll.indexStatus()
                    if status.wantsCodes { Console.out("    codes: \(status.codesTrained ? "\(status.codeBytes) B per row" : "not trained")") }
                    if status.wantsGraph { Console.out("    graph: \(status.graphBuilt ? "built" : "not built")") }
                    if let p = try coll.partitionStatistics() {
                        Console.out("    partitions: \(p.leaves.count)\(p.cells > 0 ? "; \(p.cells) vector cells" : ""); drift \(String(format: "%.2f", p.drift * 100)) % of live rows outside their partition's slots")
                        if partitions {
                            for l in p.leaves {
                                Console.out("      \(l.id): \(l.rows) rows (\(l.rowsAtLayout) at layout, \(l.rowsInPlace) in place)  \(l.description)")
                            }
                        }
                    }
                    if graph, let g = try coll.graphStatistics() {
                        Console.out("    graph: \(g.nodes) nodes, entry \(g.entryPoint.map { "slot \($0.node) level \($0.level)" } ?? "none"), \(g.unreachable) unreachable, \(g.problems) problems")
                        for d in g.degrees {
                            Console.out("      level \(d.level): \(d.nodes) nodes, degree min \(d.minDegree) mean \(String(format: "%.1f", d.meanDegree)) max \(d.maxDegree)")
                        }
                    }
                }
                for l in readerLines { Console.out("  " + l) }
            }
        }
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verify the invariants of the store.",
        discussion: "Exit code 0 when consistent, 2 when problems were found, 1 when the store cannot be read. Without --deep, records are checked for presence, size and id only.")
    @OptionGroup var store: StoreOptions
    @Flag(name: .long, help: "Also decode every attribute and vector record.") var deep = false

    /// Set in the child process that walks the store.
    static let childVariable = "SEXTANT_CHECK_CHILD"

    func run() throws {
        // LMDB trusts its page headers (it keeps no checksums), so walking a damaged page can
        // crash the walker. The walk runs in a child process; a child killed by a signal means
        // damaged pages, reported as `corrupted` with exit code 2 instead of dying with it.
        if ProcessInfo.processInfo.environment[Check.childVariable] == nil, let exe = selfExecutable() {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe)
            p.arguments = Array(CommandLine.arguments.dropFirst())
            var env = ProcessInfo.processInfo.environment
            env[Check.childVariable] = "1"
            // A crash is the expected report of damage: no runtime backtrace on the terminal.
            env["SWIFT_BACKTRACE"] = "enable=no"
            p.environment = env
            do { try p.run() } catch {
                throw SextantError(.io, "cannot start the checking process: \(error)", context: ["path": exe])
            }
            p.waitUntilExit()
            if p.terminationReason == .exit { throw ExitCode(p.terminationStatus) }
            let signal = p.terminationStatus
            let message = "walking the store's pages crashed the checker (signal \(signal)): a page of data.mdb is damaged "
                + "(LMDB keeps no page checksums); restore the store from a copy or a dump"
            if store.json {
                Console.out(JSONValue.object(JSONObject([
                    ("consistent", .bool(false)), ("error", .string(SextantError.Code.corrupted.name)),
                    ("problems", .array([.string(message)])),
                ])).jsonText)
            } else {
                Console.out("INCONSISTENT: 1 problem")
                Console.out("  corrupted: " + message)
            }
            throw ExitCode(2)
        }
        var report: CheckReport?
        try runReporting(json: store.json) {
            let db = try openStore(store.db, readOnly: true)
            defer { db.close() }
            report = try db.check(deep: deep)
        }
        guard let report else { return }
        if store.json {
            Console.out(JSONValue.object(JSONObject([
                ("consistent", .bool(report.isConsistent)), ("collections", .int(Int64(report.collectionsChecked))),
                ("rows", .int(Int64(report.rowsChecked))), ("problems", .array(report.problems.map { .string($0) })),
            ])).jsonText)
        } else {
            Console.out(report.isConsistent
                ? "ok: \(report.collectionsChecked) collections, \(report.rowsChecked) rows verified"
                : "INCONSISTENT: \(report.problems.count) problems")
            for p in report.problems { Console.out("  " + p) }
        }
        if !report.isConsistent { throw ExitCode(2) }
    }
}

struct Compact: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rewrite the store without free pages (compacting copy, fsync, atomic swap).",
        discussion: "Refuses while another process has the store open.")
    @OptionGroup var store: StoreOptions

    func run() throws {
        try runReporting(json: store.json) {
            let (before, after) = try Store.compact(path: store.db)
            Console.out(store.json ? "{\"bytes_before\":\(before),\"bytes_after\":\(after)}"
                                   : "compacted: \(formatBytes(before)) -> \(formatBytes(after)) (\(before) -> \(after) bytes)")
        }
    }
}

struct Copy: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Hot backup: a consistent, compact copy while writers go on.")
    @OptionGroup var store: StoreOptions
    @Argument(help: "Destination directory (new or empty).") var destination: String

    func run() throws {
        try runReporting(json: store.json) {
            let db = try openStore(store.db, readOnly: true)
            defer { db.close() }
            try db.copy(to: destination)
            Console.out(store.json ? "{\"copied_to\":\(JSONValue.string(destination).jsonText)}" : "copied to \(destination)")
        }
    }
}

struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a collection as JSONL (header line, then one row per line, ascending id).")
    @OptionGroup var store: StoreOptions
    @Argument(help: "The collection name.") var collection: String
    @Option(name: .long, help: "Output file (default: stdout).") var out: String?

    func run() throws {
        try runReporting(json: store.json) {
            let db = try openStore(store.db, readOnly: true)
            defer { db.close() }
            let c = try db.collection(collection)
            let handle: FileHandle
            var tmp: String? = nil
            if let out {
                tmp = out + ".tmp-\(getpid())"
                guard FileManager.default.createFile(atPath: tmp!, contents: nil), let h = FileHandle(forWritingAtPath: tmp!) else {
                    throw SextantError(.io, "cannot write '\(out)'", context: ["file": out])
                }
                handle = h
            } else { handle = FileHandle.standardOutput }
            var buffer: [UInt8] = []
            do {
                try c.dump { line in
                    buffer.append(contentsOf: line)
                    if buffer.count >= 1 << 20 { handle.write(Data(buffer)); buffer.removeAll(keepingCapacity: true) }
                }
                handle.write(Data(buffer))
            } catch {
                if let tmp { try? handle.close(); unlink(tmp) }
                throw error
            }
            if let out, let tmp {
                try handle.synchronize()
                try handle.close()
                guard rename(tmp, out) == 0 else { throw SextantError(.io, "cannot rename into '\(out)'", context: ["file": out]) }
            }
        }
    }
}

struct Load: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a collection from a dump (all or nothing).")
    @OptionGroup var store: StoreOptions
    @Option(name: .long, help: "The dump file (default: stdin).") var input: String?
    @Option(name: .long, help: "Collection name (default: the dump's).") var collection: String?

    func run() throws {
        try runReporting(json: store.json) {
            let db = try openStore(store.db, create: true)
            defer { db.close() }
            let path = input ?? "/dev/stdin"
            let c = try db.load(as: collection) { body in _ = try LineReader(path: path).forEachLine(body) }
            let n = try c.count()
            Console.out(store.json ? "{\"collection\":\(JSONValue.string(c.name).jsonText),\"rows\":\(n)}" : "loaded \(n) rows into '\(c.name)'")
        }
    }
}

/// The path of the running executable (Linux: /proc/self/exe), or nil where it is unknown.
func selfExecutable() -> String? {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    if n > 0 { return String(decoding: buf.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self) }
    let arg0 = CommandLine.arguments[0]
    return arg0.contains("/") ? arg0 : nil
}

import ArgumentParser
import Foundation
import Sextant

@main
struct SextantCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sextant",
        abstract: "Administer Sextant stores: embedded vector databases with filtered (hybrid) search.",
        discussion: """
            Data goes to stdout; progress and logs to stderr. Exit codes: 0 success, 1 error, \
            2 `check` found the store inconsistent, 64 usage error.
            """,
        version: "0.1.0 (format \(Store.formatVersion))",
        subcommands: [
            Create.self, Import.self, Query.self, Batch.self, Count.self, Explain.self, Index.self, Calibrate.self, Partition.self, Get.self, Delete.self, Drop.self, List.self, Stat.self,
            Check.self, Compact.self, Copy.self, Dump.self, Load.self, Bench.self, Generate.self, Stress.self,
        ]
    )
}

/// Options every command that opens a store shares.
struct StoreOptions: ParsableArguments {
    @Argument(help: "The store directory.")
    var db: String

    @Flag(name: .long, help: "Print machine-readable JSON.")
    var json = false
}

/// Runs `body`, turning Sextant errors into a message on stderr and exit code 1.
func runReporting(json: Bool, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as SextantError {
        if json {
            var ctx: [(key: String, value: JSONValue)] = []
            for (k, v) in e.context.sorted(by: { $0.key < $1.key }) { ctx.append((k, .string(v))) }
            let obj: JSONValue = .object(JSONObject([
                ("error", .string(e.code.name)), ("message", .string(e.message)), ("context", .object(JSONObject(ctx))),
            ]))
            Console.err(obj.jsonText)
        } else {
            Console.err("error: \(e)")
        }
        throw ExitCode(1)
    } catch let e as ExitCode {
        throw e
    } catch let e as CleanExit {
        throw e
    } catch {
        Console.err("error: \(error)")
        throw ExitCode(1)
    }
}

enum Console {
    /// Writes a line to stdout (data).
    static func out(_ s: String, terminator: String = "\n") {
        FileHandle.standardOutput.write((s + terminator).data(using: .utf8)!)
    }
    /// Writes a line to stderr (progress, logs, errors).
    static func err(_ s: String) {
        FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
    }
    static var stderrIsTTY: Bool { isatty(2) == 1 }
}

func openStore(_ path: String, readOnly: Bool = false, create: Bool = false) throws -> Store {
    var c = Store.Configuration()
    c.readOnly = readOnly
    c.createIfMissing = create
    return try Store(path: path, configuration: c)
}

func formatBytes(_ n: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n)
    var i = 0
    while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
    return i == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[i])
}

/// Whether `batch` and `bench` map the whole data file before searching (`Store.prefault()`).
enum PrefaultChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, on, off

    /// Prefaults `db` when asked, or (auto) when its data file fits in half the machine's
    /// memory: a batch then takes no page faults, as a long-running process would not. The time
    /// it takes goes to stderr, outside the timed search.
    func apply(_ db: Store, path: String, json: Bool) {
        let file = (try? FileManager.default.attributesOfItem(atPath: path + "/data.mdb")[.size] as? Int) ?? nil
        let wanted = self == .on || (self == .auto && (file ?? Int.max) <= Int(ProcessInfo.processInfo.physicalMemory / 2))
        guard wanted else { return }
        let start = Date()
        let done = db.prefault()
        let seconds = String(format: "%.3f", Date().timeIntervalSince(start))
        let line = json ? "{\"prefault\":\(done),\"seconds\":\(seconds)}" : "prefault: \(done ? "mapped" : "not supported here") in \(seconds) s"
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

import ArgumentParser
import Foundation
import Sextant

/// Parses `--where` as SQL, or as the JSON predicate form when it starts with `{`.
func parsePredicate(_ text: String) throws -> Filter {
    let trimmed = text.drop(while: { $0 == " " })
    if trimmed.first == "{" { return try Filter(json: try JSONValue(parsing: Array(text.utf8))) }
    return try Filter(sql: text)
}

struct Count: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the exact number of rows matching a predicate, and the time taken.",
        discussion: "The count comes from the attribute indexes; --scan evaluates every row instead (for comparison)."
    )
    @OptionGroup var store: StoreOptions
    @Argument(help: "The collection name.") var collection: String
    @Option(name: .customLong("where"), help: "Predicate (SQL WHERE syntax, or the JSON form). Omit to count every row.") var predicate: String?
    @Flag(name: .long, help: "Evaluate row by row instead of using the indexes.") var scan = false

    func run() throws {
        try runReporting(json: store.json) {
            let db = try openStore(store.db, readOnly: true)
            defer { db.close() }
            let c = try db.collection(collection)
            let filter = try predicate.map(parsePredicate)
            let start = DispatchTime.now().uptimeNanoseconds
            let n = try scan ? c.countByScan(where: filter) : c.count(where: filter)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if store.json {
                Console.out(JSONValue.object(JSONObject([
                    ("count", .int(Int64(n))), ("seconds", .double(seconds)), ("method", .string(scan ? "scan" : "index")),
                ])).jsonText)
            } else {
                Console.out("\(n)")
                Console.err(String(format: "%.3f ms (%@)", seconds * 1000, scan ? "row scan" : "indexes"))
            }
        }
    }
}

struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show how a predicate is answered: which index serves each part, with row counts and time."
    )
    @OptionGroup var store: StoreOptions
    @Argument(help: "The collection name.") var collection: String
    @Option(name: .customLong("where"), help: "Predicate (SQL WHERE syntax, or the JSON form).") var predicate: String

    func run() throws {
        try runReporting(json: store.json) {
            let db = try openStore(store.db, readOnly: true)
            defer { db.close() }
            let c = try db.collection(collection)
            let e = try c.explain(try parsePredicate(predicate))
            if store.json {
                func node(_ n: FilterExplanation.Node) -> JSONValue {
                    .object(JSONObject([
                        ("expression", .string(n.expression)), ("access", .string(n.access)), ("matches", .int(Int64(n.matches))),
                        ("undecided", .int(Int64(n.undecided))), ("keysRead", .int(Int64(n.keysRead))), ("children", .array(n.children.map(node))),
                    ]))
                }
                Console.out(JSONValue.object(JSONObject([
                    ("matches", .int(Int64(e.matchCount))), ("liveRows", .int(Int64(e.liveRows))), ("rowsChecked", .int(Int64(e.rowsChecked))),
                    ("indexKeysRead", .int(Int64(e.indexKeysRead))), ("seconds", .double(e.seconds)), ("estimatedCost", .double(e.estimatedCost)),
                    ("plan", node(e.root)),
                ])).jsonText)
            } else {
                Console.out(e.description, terminator: "")
            }
        }
    }
}

import ArgumentParser
import Foundation
import Sextant

struct Index: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build the collection's index over its rows: train PQ codebooks and encode every row, build the HNSW graph.",
        discussion: "Runs after `import --defer-index`, or again to retrain on data that has changed. Rows written after training are encoded as they are written.",
        aliases: ["reindex"]
    )
    @OptionGroup var store: StoreOptions
    @Argument(help: "The collection name.") var collection: String
    @Option(name: .long, help: "Threads for the graph build (default: all cores).") var threads: Int?

    func run() throws {
        try runReporting(json: store.json) {
            let db = try openStore(store.db)
            defer { db.close() }
            let c = try db.collection(collection)
            let t0 = Date()
            try c.buildIndex(threads: threads) { Console.err($0) }
            let s = try c.indexStatus()
            let secs = Date().timeIntervalSince(t0)
            if store.json {
                Console.out("{\"recipe\":\"\(s.recipe)\",\"rows\":\(s.codedRows),\"codeBytes\":\(s.codeBytes),\"seconds\":\(String(format: "%.3f", secs))}")
            } else {
                Console.out("indexed '\(collection)' (\(s.recipe): codes \(s.codesTrained ? "\(s.codeBytes) B/row" : "none"), graph \(s.graphBuilt ? "built" : "none")) in \(String(format: "%.2f", secs)) s")
            }
        }
    }
}

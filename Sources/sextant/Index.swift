import ArgumentParser
import Foundation
import Sextant

struct Index: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train the collection's index (PQ codebooks) on its rows and encode every row.",
        discussion: "Runs after `import --defer-index`, or again to retrain on data that has changed. Rows written after training are encoded as they are written."
    )
    @OptionGroup var store: StoreOptions
    @Argument(help: "The collection name.") var collection: String

    func run() throws {
        try runReporting(json: store.json) {
            let db = try openStore(store.db)
            defer { db.close() }
            let c = try db.collection(collection)
            let t0 = Date()
            try c.buildIndex { Console.err($0) }
            let s = try c.indexStatus()
            let secs = Date().timeIntervalSince(t0)
            if store.json {
                Console.out("{\"recipe\":\"\(s.recipe)\",\"rows\":\(s.codedRows),\"codeBytes\":\(s.codeBytes),\"seconds\":\(String(format: "%.3f", secs))}")
            } else {
                Console.out("indexed \(s.codedRows) rows of '\(collection)' (\(s.recipe), \(s.codeBytes) bytes of code per row) in \(String(format: "%.2f", secs)) s")
            }
        }
    }
}

import ArgumentParser
import Sextant

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a collection (and the store, if needed).",
        discussion: "Schema: comma-separated name:type with types string, int, double, bool, [string], [int]; a trailing ! makes a field non-nullable.")

    @OptionGroup var store: StoreOptions
    @Argument(help: "The collection name.") var collection: String
    @Option(name: .long, help: "Vector dimension.") var dim: Int
    @Option(name: .long, help: "Distance: l2 (squared Euclidean), ip (negative inner product) or cosine (1 - cosine).") var metric: String
    @Option(name: .long, help: "Attribute schema, e.g. 'name:string,year:int,tags:[string]'.") var schema: String = ""
    @Option(name: .long, help: "Index recipe, e.g. Flat or HNSW32,PQ48x8,Refine (persisted with the collection).") var index: String = "Flat"

    func run() throws {
        try runReporting(json: store.json) {
            let m = try Metric(parsing: metric)
            let s = try Schema(parsing: schema)
            let db = try openStore(store.db, create: true)
            defer { db.close() }
            let c = try db.createCollection(collection, dimension: dim, metric: m, schema: s, indexRecipe: index)
            if store.json {
                Console.out(JSONValue.object(JSONObject([
                    ("collection", .string(c.name)), ("dimension", .int(Int64(c.dimension))),
                    ("metric", .string(c.metric.rawValue)), ("schema", .string(c.schema.spelling)),
                    ("index", .string(c.info.indexRecipe)),
                ])).jsonText)
            } else {
                Console.out("created collection '\(c.name)': dimension \(c.dimension), metric \(c.metric), index \(c.info.indexRecipe), schema \(c.schema.spelling.isEmpty ? "(none)" : c.schema.spelling)")
            }
        }
    }
}

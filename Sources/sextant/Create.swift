import ArgumentParser
import Sextant

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a collection (and the store, if needed).",
        discussion: """
            Schema: comma-separated name:type with types string, int, double, bool, [string], [int]; a trailing ! makes a field non-nullable.
            With --multi-vector each row holds a set of tokens of dimension --dim, searched by Chamfer similarity (distance -Chamfer); \
            the index is built over their fixed-dimensional encodings (--fde R,K,P[,F]: R repetitions, 2^K SimHash buckets, \
            projection to P dimensions, optional final count-sketch to F; default 20,5,16 = 10,240 dimensions, --fde low-memory = 20,4,8 = 2,560).
            """)

    @OptionGroup var store: StoreOptions
    @Argument(help: "The collection name.") var collection: String
    @Option(name: .long, help: "Vector dimension.") var dim: Int
    @Option(name: .long, help: "Distance: l2 (squared Euclidean), ip (negative inner product) or cosine (1 - cosine). Not with --multi-vector.") var metric: String?
    @Option(name: .long, help: "Attribute schema, e.g. 'name:string,year:int,tags:[string]'.") var schema: String = ""
    @Option(name: .long, help: "Index recipe, e.g. Flat or HNSW32,PQ48x8,Refine (persisted with the collection).") var index: String = "Flat"
    @Flag(name: .long, help: "Rows are token sets (late interaction); --dim is the token dimension.") var multiVector = false
    @Option(name: .long, help: "With --multi-vector: FDE parameters R,K,P[,F], 'standard' (20,5,16) or 'low-memory' (20,4,8).") var fde: String = "standard"
    @Option(name: .long, help: "With --multi-vector: the FDE seed.") var seed: UInt64 = 42
    @Option(name: .long, help: "With --multi-vector: token storage, float32 or float16.") var tokenStorage: String = "float32"

    func run() throws {
        try runReporting(json: store.json) {
            let s = try Schema(parsing: schema)
            let c: VectorCollection
            if multiVector {
                if let metric, metric != "chamfer" {
                    throw SextantError(.invalidArgument, "a multi-vector collection's distance is -Chamfer; --metric \(metric) does not apply")
                }
                guard let storage = TokenStorage(rawValue: tokenStorage) else {
                    throw SextantError(.invalidArgument, "--token-storage must be float32 or float16, got '\(tokenStorage)'")
                }
                let p = try parseFDE(fde, tokenDimension: dim, seed: seed)
                let db = try openStore(store.db, create: true)
                defer { db.close() }
                c = try db.createMultiVectorCollection(collection, fde: p, tokenStorage: storage, schema: s, indexRecipe: index)
            } else {
                guard let metric else { throw SextantError(.invalidArgument, "--metric is required (l2, ip or cosine)") }
                let m = try Metric(parsing: metric)
                let db = try openStore(store.db, create: true)
                defer { db.close() }
                c = try db.createCollection(collection, dimension: dim, metric: m, schema: s, indexRecipe: index)
            }
            if let mv = c.info.multiVector {
                let p = mv.fde
                let shape = "\(p.repetitions),\(p.simhashBits),\(p.projectionDimension)" + (p.finalDimension.map { ",\($0)" } ?? "")
                if store.json {
                    Console.out(JSONValue.object(JSONObject([
                        ("collection", .string(c.name)), ("multiVector", .bool(true)), ("tokenDimension", .int(Int64(p.tokenDimension))),
                        ("fde", .string(shape)), ("fdeDimension", .int(Int64(c.dimension))), ("seed", .int(Int64(bitPattern: p.seed))),
                        ("tokenStorage", .string(mv.tokenStorage.rawValue)), ("schema", .string(c.schema.spelling)),
                        ("index", .string(c.info.indexRecipe)),
                    ])).jsonText)
                } else {
                    Console.out("created multi-vector collection '\(c.name)': tokens of dimension \(p.tokenDimension) (\(mv.tokenStorage.rawValue)), FDE \(shape) = \(c.dimension) dimensions, seed \(p.seed), index \(c.info.indexRecipe), schema \(c.schema.spelling.isEmpty ? "(none)" : c.schema.spelling)")
                }
                return
            }
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

/// `--fde`: `standard`, `low-memory`, or `R,K,P[,F]`.
func parseFDE(_ text: String, tokenDimension: Int, seed: UInt64) throws -> FDEParameters {
    var p: FDEParameters
    switch text {
    case "standard": p = .standard(tokenDimension: tokenDimension, seed: seed)
    case "low-memory": p = .lowMemory(tokenDimension: tokenDimension, seed: seed)
    default:
        let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard (3...4).contains(parts.count), parts.allSatisfy({ $0 != nil }) else {
            throw SextantError(.invalidArgument, "--fde must be R,K,P[,F] (e.g. 20,5,16), 'standard' or 'low-memory'; got '\(text)'")
        }
        p = FDEParameters(tokenDimension: tokenDimension, repetitions: parts[0]!, simhashBits: parts[1]!, projectionDimension: parts[2]!,
                          finalDimension: parts.count == 4 ? parts[3]! : nil, seed: seed)
    }
    if let problem = p.problem { throw SextantError(.invalidArgument, "--fde: \(problem)") }
    return p
}

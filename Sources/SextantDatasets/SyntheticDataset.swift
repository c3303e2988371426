import Sextant

/// A deterministic synthetic dataset: Gaussian clusters of vectors with correlated attributes —
/// a Zipfian `category` over `categories` values, a lognormal `price`, a `date` (yyyymmdd int),
/// a `tags` list, an `in_stock` bool — with some nulls, like real catalogue data.
public struct SyntheticDataset: Sendable {
    public var dimension: Int
    /// Row-major base vectors.
    public var vectors: [Float]
    public var attributes: [[String: AttributeValue]]
    /// Row-major query vectors (drawn from the same clusters).
    public var queries: [Float]
    public var count: Int { attributes.count }
    public var queryCount: Int { queries.count / dimension }

    public static let schema: Schema = try! Schema(parsing: "category:string,price:double,date:int,tags:[string],in_stock:bool")
    public static let tagVocabulary = ["red", "green", "blue", "sale", "new", "eco", "premium", "bulk", "gift", "local", "imported", "organic"]

    public init(rows: Int, dimension: Int, queries: Int = 100, clusters: Int = 32, categories: Int = 100, seed: UInt64 = 42) {
        var rng = SeededRandom(seed: seed)
        self.dimension = dimension
        let centers: [[Float]] = (0..<max(1, clusters)).map { _ in (0..<dimension).map { _ in Float(rng.gaussian() * 2) } }
        let zipf = SeededRandom.zipfCDF(n: max(1, categories), s: 1.1)
        var vectors = [Float]()
        vectors.reserveCapacity(rows * dimension)
        var attrs: [[String: AttributeValue]] = []
        attrs.reserveCapacity(rows)
        for _ in 0..<rows {
            let c = Int(rng.next() % UInt64(centers.count))
            for j in 0..<dimension { vectors.append(centers[c][j] + Float(rng.gaussian())) }
            // Category correlates with the cluster half of the time (predicates and locality interact).
            let cat = rng.unit() < 0.5 ? (c * 7) % max(1, categories) : rng.zipf(zipf)
            var a: [String: AttributeValue] = ["category": .string("cat\(cat)")]
            if rng.unit() > 0.05 { a["price"] = .double((_exp(rng.gaussian() * 1.0 + 3.0) * 100).rounded() / 100) }
            let year = 2015 + Int(rng.next() % 11), month = 1 + Int(rng.next() % 12), day = 1 + Int(rng.next() % 28)
            a["date"] = .int(Int64(year * 10000 + month * 100 + day))
            let nt = Int(rng.next() % 4)
            var tags: [String] = []
            for _ in 0..<nt {
                let t = SyntheticDataset.tagVocabulary[rng.zipf(SeededRandom.zipfCDF(n: SyntheticDataset.tagVocabulary.count, s: 0.8))]
                if !tags.contains(t) { tags.append(t) }
            }
            a["tags"] = .stringList(tags)
            if rng.unit() > 0.1 { a["in_stock"] = .bool(rng.unit() < 0.7) }
            attrs.append(a)
        }
        var qs = [Float]()
        qs.reserveCapacity(queries * dimension)
        for _ in 0..<queries {
            let c = Int(rng.next() % UInt64(centers.count))
            for j in 0..<dimension { qs.append(centers[c][j] + Float(rng.gaussian())) }
        }
        self.vectors = vectors
        self.attributes = attrs
        self.queries = qs
    }

    public func vector(_ i: Int) -> [Float] { Array(vectors[i * dimension..<(i + 1) * dimension]) }
    public func query(_ i: Int) -> [Float] { Array(queries[i * dimension..<(i + 1) * dimension]) }

    /// Example predicates over ``schema`` of varied selectivity, in SQL form.
    public static let samplePredicates = [
        "category = 'cat0'",
        "category IN ('cat1', 'cat2', 'cat3') AND price < 20",
        "tags CONTAINS 'sale' AND in_stock = TRUE",
        "price BETWEEN 10 AND 50 AND date >= 20200101",
        "NOT (category = 'cat0') AND tags CONTAINS 'eco'",
        "price IS NULL OR category = 'cat5'",
        "date < 20160101 AND (tags CONTAINS 'new' OR tags CONTAINS 'gift')",
    ]
}

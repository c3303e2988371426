import Sextant
import SextantKernels

/// A deterministic synthetic late-interaction dataset in which Chamfer similarity means
/// something: unit "concept" centroids (plus a few shared "stopword" centroids), documents of
/// `minTokens…maxTokens` tokens drawn from a handful of concepts each (Zipfian popularity),
/// queries whose tokens come from a few of a target document's concepts plus filler, and some
/// near-duplicate documents (a copy of another with a share of its tokens redrawn) as hard
/// negatives. Every token is unit-norm, as ColBERT's are. `popularity` is the Zipf exponent of
/// concept popularity (0: uniform, so fewer documents share a query's concepts by chance). Attributes: `group` (int, uniform
/// 0…999, for predicates of any selectivity) and `lang` (string, 4 values).
public struct MultiVectorDataset: Sendable {
    public var dimension: Int
    /// Every document's tokens, row-major, in document order.
    public var tokens: [Float]
    /// Tokens per document.
    public var counts: [Int]
    /// Offset (in tokens) of each document's first token, plus the total at the end.
    public var offsets: [Int]
    public var attributes: [[String: AttributeValue]]
    /// Every query's tokens, row-major.
    public var queryTokens: [Float]
    public var queryCounts: [Int]
    public var queryOffsets: [Int]
    /// The document each query was drawn from.
    public var queryTargets: [Int]

    public static let schema: Schema = try! Schema(parsing: "group:int,lang:string")

    public var documentCount: Int { counts.count }
    public var queryCount: Int { queryCounts.count }

    public init(documents: Int, queries: Int, dimension: Int = 128, concepts: Int = 2048, stopwords: Int = 16,
                minTokens: Int = 32, maxTokens: Int = 128, queryTokens queryLength: Int = 32,
                nearDuplicateFraction: Double = 0.05, popularity: Double = 0.8, seed: UInt64 = 42) {
        precondition(documents >= 1 && dimension >= 1 && minTokens >= 1 && maxTokens >= minTokens && queryLength >= 1)
        var rng = SeededRandom(seed: seed)
        self.dimension = dimension
        func unit(_ v: [Float]) -> [Float] {
            var s: Float = 0
            for x in v { s += x * x }
            let inv = 1 / max(s.squareRoot(), 1e-12)
            return v.map { $0 * inv }
        }
        func gaussianVector() -> [Float] { (0..<dimension).map { _ in Float(rng.gaussian()) } }
        let centroids = (0..<max(1, concepts)).map { _ in unit(gaussianVector()) }
        let stops = (0..<max(1, stopwords)).map { _ in unit(gaussianVector()) }
        let scale = 1 / Float(dimension).squareRoot()
        func token(near c: [Float], noise: Float) -> [Float] {
            unit((0..<dimension).map { j in c[j] + noise * scale * Float(rng.gaussian()) })
        }
        let zipf = SeededRandom.zipfCDF(n: centroids.count, s: popularity)
        var tokens: [Float] = []
        var counts: [Int] = [], offsets: [Int] = [0]
        var docConcepts: [[Int]] = []
        var attrs: [[String: AttributeValue]] = []
        let langs = ["en", "de", "fr", "ja"]
        tokens.reserveCapacity(documents * (minTokens + maxTokens) / 2 * dimension)
        for i in 0..<documents {
            // Skewed length: mean about a third of the way from minTokens to maxTokens.
            let u = rng.unit()
            let m = minTokens + Int(Double(maxTokens - minTokens) * u * u + 0.5)
            if i > 0 && rng.unit() < nearDuplicateFraction {
                // A near duplicate of an earlier document: its tokens, a quarter redrawn.
                let src = Int(rng.next() % UInt64(i))
                let cs = docConcepts[src]
                for t in 0..<counts[src] {
                    if rng.unit() < 0.25 {
                        tokens += token(near: centroids[cs[Int(rng.next() % UInt64(cs.count))]], noise: 0.3)
                    } else {
                        tokens += Array(tokens[(offsets[src] + t) * dimension..<(offsets[src] + t + 1) * dimension])
                    }
                }
                counts.append(counts[src])
                docConcepts.append(cs)
            } else {
                let nc = min(8 + Int(rng.next() % 9), centroids.count)
                var cs: [Int] = []
                while cs.count < nc {
                    let c = rng.zipf(zipf)
                    if !cs.contains(c) { cs.append(c) }
                }
                for _ in 0..<m {
                    if rng.unit() < 0.15 {
                        tokens += token(near: stops[Int(rng.next() % UInt64(stops.count))], noise: 0.3)
                    } else {
                        tokens += token(near: centroids[cs[Int(rng.next() % UInt64(cs.count))]], noise: 0.3)
                    }
                }
                counts.append(m)
                docConcepts.append(cs)
            }
            offsets.append(offsets[i] + counts[i])
            attrs.append(["group": .int(Int64(rng.next() % 1000)), "lang": .string(langs[Int(rng.next() % 4)])])
        }
        var qt: [Float] = [], qc: [Int] = [], qo: [Int] = [0], targets: [Int] = []
        for i in 0..<queries {
            let target = Int(rng.next() % UInt64(documents))
            let cs = docConcepts[target]
            let picked = Array(cs.shuffled(using: &rng).prefix(4 + Int(rng.next() % 5)))
            for _ in 0..<queryLength {
                if rng.unit() < 0.25 {
                    if rng.unit() < 0.5 {
                        qt += token(near: stops[Int(rng.next() % UInt64(stops.count))], noise: 0.5)
                    } else {
                        qt += token(near: centroids[Int(rng.next() % UInt64(centroids.count))], noise: 0.5)
                    }
                } else {
                    qt += token(near: centroids[picked[Int(rng.next() % UInt64(picked.count))]], noise: 0.5)
                }
            }
            qc.append(queryLength)
            qo.append(qo[i] + queryLength)
            targets.append(target)
        }
        self.tokens = tokens
        self.counts = counts
        self.offsets = offsets
        self.attributes = attrs
        self.queryTokens = qt
        self.queryCounts = qc
        self.queryOffsets = qo
        self.queryTargets = targets
    }

    /// Document `i`'s tokens.
    public func document(_ i: Int) -> [Float] { Array(tokens[offsets[i] * dimension..<offsets[i + 1] * dimension]) }
    /// Query `i`'s tokens.
    public func query(_ i: Int) -> [Float] { Array(queryTokens[queryOffsets[i] * dimension..<queryOffsets[i + 1] * dimension]) }

    /// The `k` documents (indices among `candidates`, all when nil) of largest Chamfer
    /// similarity to `query`, best first, ties by index: brute force, the oracle.
    public func exactTop(_ query: [Float], k: Int, candidates: [Int]? = nil) -> [(index: Int, chamfer: Float)] {
        var scratch: [Float] = []
        var scored: [(index: Int, chamfer: Float)] = []
        let nq = query.count / dimension
        query.withUnsafeBytes { q in
            tokens.withUnsafeBytes { t in
                for i in candidates ?? Array(0..<documentCount) {
                    let s = Chamfer.similarity(query: q.baseAddress!, queryCount: nq, document: t.baseAddress! + offsets[i] * dimension * 4,
                                               documentCount: counts[i], dimension: dimension, scratch: &scratch)
                    scored.append((i, s))
                }
            }
        }
        scored.sort { $0.chamfer > $1.chamfer || ($0.chamfer == $1.chamfer && $0.index < $1.index) }
        return Array(scored.prefix(k))
    }

    /// Chamfer similarity in double precision, summed plainly: an oracle for the kernels.
    public static func referenceChamfer(_ q: [Float], _ p: [Float], dimension d: Int) -> Double {
        var total = 0.0
        for i in 0..<(q.count / d) {
            var best = -Double.infinity
            for j in 0..<(p.count / d) {
                var s = 0.0
                for x in 0..<d { s += Double(q[i * d + x]) * Double(p[j * d + x]) }
                best = max(best, s)
            }
            total += best
        }
        return total
    }
}

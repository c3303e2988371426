import Foundation
import SextantFilter
import SextantKernels
import SextantStorage

/// One query of a multi-vector search: a token set, `k`, an optional filter.
public struct MultiVectorQuery: Sendable {
    /// Packed row-major query tokens of the collection's token dimension, at least one.
    public var tokens: [Float]
    public var k: Int
    /// Rows must satisfy it; nil matches every row.
    public var filter: Filter?
    public init(tokens: [Float], k: Int, filter: Filter? = nil) {
        self.tokens = tokens
        self.k = k
        self.filter = filter
    }
}

/// Options of a multi-vector search.
public struct MultiVectorSearchOptions: Sendable {
    /// Documents fetched through the index over encodings and re-ranked with exact Chamfer
    /// (nil: ``defaultCandidates(k:)``). Raised to `k`.
    public var candidates: Int?
    /// Score every matching document with exact Chamfer, whatever the indexes.
    public var exact: Bool
    /// Exact Chamfer over the matches when there are at most this many (nil: 4 × candidates):
    /// a selective predicate then costs no more than a re-rank and misses nothing.
    public var exactBelow: Int?
    /// The plan of the candidate stage over encodings (nil: the planner's choice).
    public var candidatePlan: PlanKind?
    /// HNSW beam width of the candidate stage (nil: 4 × the number of candidates, which bought
    /// more recall per millisecond than more candidates on the benchmark).
    public var ef: Int?
    /// PQ re-scoring depth of the candidate stage's code scan (nil: 4 × the number of
    /// candidates, as the beam).
    public var rerank: Int?
    /// With both an HNSW graph and PQ codes built: traverse the graph with code distances and
    /// re-score the whole beam with full encodings (true), never (false), or when the cost
    /// model expects it to be cheaper than the planner's best plan (nil). Ignored when
    /// ``candidatePlan`` forces a plan. Chosen by cost alone: with coarse codes (many
    /// dimensions per sub-quantizer) the traversal can miss candidates the full encodings
    /// would find; `false` keeps it off.
    public var traverseCodes: Bool?

    public init(candidates: Int? = nil, exact: Bool = false, exactBelow: Int? = nil, candidatePlan: PlanKind? = nil,
                ef: Int? = nil, rerank: Int? = nil, traverseCodes: Bool? = nil) {
        self.candidates = candidates
        self.exact = exact
        self.exactBelow = exactBelow
        self.candidatePlan = candidatePlan
        self.ef = ef
        self.rerank = rerank
        self.traverseCodes = traverseCodes
    }

    /// Candidates re-ranked by default: `max(400, 40 · k)` (with the default beam about 0.90
    /// recall@10 on the synthetic benchmark at 10,240 dimensions, see Bench/README.md).
    public static func defaultCandidates(k: Int) -> Int { max(400, 40 * k) }
}

/// How a multi-vector search ran. See ``VectorCollection/explainSearch(tokens:k:filter:options:)``.
public struct MultiVectorExplanation: Sendable, CustomStringConvertible {
    /// `"exact-chamfer"` (every match scored) or `"fde-candidates"` (index over encodings, then
    /// exact Chamfer re-rank of the candidates).
    public var plan: String
    /// Whether `exact` forced the plan.
    public var forced: Bool
    public var matches: Int
    public var liveRows: Int
    /// Candidates requested from the index (0 for the exact plan).
    public var candidates: Int
    /// How the candidates were found: `"graph-over-codes"` or the planner's plan over the
    /// encodings (`"codes"`, `"filtered-graph"`, …); nil for the exact plan.
    public var candidateSource: String?
    /// The candidate stages weighed, with their estimated seconds, cheapest first.
    public var candidateEstimates: [CandidateEstimate]
    /// The planner's own explanation when it ran the candidate stage (nil for the exact plan
    /// and for a traversal over codes).
    public var candidateStage: SearchExplanation?

    /// A candidate stage and the time the cost model expects of it.
    public struct CandidateEstimate: Sendable {
        public var source: String
        public var seconds: Double
        /// Beam width or re-rank depth.
        public var knob: Int?
    }
    /// Documents whose tokens were scored with exact Chamfer.
    public var documentsScored: Int
    public var results: [SearchResult]
    /// Wall time per stage: "filter" (predicate, matches), "encode", "candidates", "rerank"
    /// or "exact".
    public var stages: [SearchExplanation.Stage]

    public var description: String {
        var lines = ["plan: \(plan) (\(forced ? "forced" : "chosen by the planner"))",
                     "matches: \(matches) of \(liveRows) live rows; documents scored with exact Chamfer: \(documentsScored); results: \(results.count)"]
        if let source = candidateSource {
            // The candidate stage chosen and what was weighed against it.
            var line = "candidates: \(candidates) from the encodings — \(source)"
            if let c = candidateStage { line += " (\(c.plan.forced ? "forced" : "chosen by the planner")); \(c.detail); rows scored \(c.rowsScored)" }
            lines.append(line)
            for e in candidateEstimates {
                let knob = e.knob.map { (e.source == PlanKind.codes.rawValue ? "re-rank " : "ef ") + String($0) } ?? ""
                lines.append("  estimate " + e.source.padding(toLength: 17, withPad: " ", startingAt: 0)
                             + String(format: "%10.3f ms  ", e.seconds * 1000) + knob)
            }
        }
        for s in stages { lines.append("  stage " + s.name.padding(toLength: 11, withPad: " ", startingAt: 0) + String(format: "%10.3f ms", s.seconds * 1000)) }
        lines.append(String(format: "total: %.3f ms", stages.reduce(0) { $0 + $1.seconds } * 1000))
        return lines.joined(separator: "\n") + "\n"
    }
}

extension VectorCollection {
    /// The `k` documents of smallest `−Chamfer(query, document)` (largest Chamfer similarity)
    /// among live rows satisfying `filter`, sorted by (distance, id).
    ///
    /// The query's fixed-dimensional encoding fetches candidates through the collection's
    /// index (the ordinary planner and plans, metric `ip`), which are re-ranked with exact
    /// Chamfer from the stored tokens; a predicate matching few rows (see
    /// ``MultiVectorSearchOptions/exactBelow``) is answered by exact Chamfer over its matches.
    /// Returns `min(k, matches)` results.
    public func search(tokens: [Float], k: Int, filter: Filter? = nil, options: MultiVectorSearchOptions = MultiVectorSearchOptions()) throws -> [SearchResult] {
        try runMultiVector([MultiVectorQuery(tokens: tokens, k: k, filter: filter)], options, profile: false).results[0]
    }

    /// Answers many multi-vector queries; result `i` belongs to `queries[i]`. Candidate stages
    /// run as one batch search; documents that are candidates of several queries are read and
    /// scored once for all of them (one stacked tile per document).
    public func search(_ queries: [MultiVectorQuery], options: MultiVectorSearchOptions = MultiVectorSearchOptions()) throws -> [[SearchResult]] {
        try runMultiVector(queries, options, profile: false).results
    }

    /// Runs one multi-vector search and reports its plan and stage times.
    public func explainSearch(tokens: [Float], k: Int, filter: Filter? = nil, options: MultiVectorSearchOptions = MultiVectorSearchOptions()) throws -> MultiVectorExplanation {
        try runMultiVector([MultiVectorQuery(tokens: tokens, k: k, filter: filter)], options, profile: true).explanations[0]
    }

    struct MultiVectorRun {
        var results: [[SearchResult]]
        var explanations: [MultiVectorExplanation]
    }

    func runMultiVector(_ queries: [MultiVectorQuery], _ options: MultiVectorSearchOptions, profile: Bool) throws -> MultiVectorRun {
        let mv = try requireMultiVector()
        if let c = options.candidates, c < 1 { throw SextantError(.invalidArgument, "candidates must be at least 1, got \(c)") }
        if let e = options.exactBelow, e < 0 { throw SextantError(.invalidArgument, "exactBelow must be at least 0, got \(e)") }
        var counts: [Int] = []
        var bound: [Filter: BoundFilter] = [:]
        var filters: [BoundFilter?] = []
        for (i, q) in queries.enumerated() {
            guard q.k >= 1 else { throw SextantError(.invalidArgument, "k must be at least 1, got \(q.k)", context: ["query": String(i)]) }
            counts.append(try validate(tokens: q.tokens, mv, context: ["query": String(i)]))
            var f: BoundFilter? = nil
            if let p = q.filter, p != .matchAll {
                if let b = bound[p] { f = b } else {
                    do { f = try p.bind(to: schema) } catch { throw error.adding(["query": String(i)]) }
                    bound[p] = f
                }
            }
            filters.append(f)
        }
        // One snapshot for planning, the candidate stage and the re-rank: a document deleted or
        // replaced meanwhile can neither drop out between the stages nor be scored with tokens
        // other than those its encoding was ranked by.
        let threads = max(1, store.configuration.searchThreads)
        return try store.env.readSnapshot(count: threads) { txns in
            try runMultiVector(queries, options, profile: profile, mv, counts: counts, filters: filters, txns)
        }
    }

    /// The multi-vector search in one snapshot (`txns`: its transactions, planning and re-rank
    /// in the first).
    private func runMultiVector(_ queries: [MultiVectorQuery], _ options: MultiVectorSearchOptions, profile: Bool, _ mv: MultiVectorInfo,
                                counts: [Int], filters: [BoundFilter?], _ txns: [Transaction]) throws -> MultiVectorRun {
        var clock = monotonicSeconds()
        var stages: [SearchExplanation.Stage] = []
        func stage(_ name: String) {
            let now = monotonicSeconds()
            stages.append(.init(name: name, seconds: now - clock))
            clock = now
        }
        let txn = txns[0]
        _ = try state(txn)
        let candidates = queries.map { max($0.k, options.candidates ?? MultiVectorSearchOptions.defaultCandidates(k: $0.k)) }
        // Plan: exact Chamfer over the matches when forced or when they are few.
        var results = [[SearchResult]](repeating: [], count: queries.count)
        var scored = [Int](repeating: 0, count: queries.count)
        var exact = [Bool](repeating: false, count: queries.count)
        var matchCounts = [Int](repeating: 0, count: queries.count)
        var live = 0
        var exactSeconds = 0.0
        var allowed = [Bitmap?](repeating: nil, count: queries.count)
        var groups: [Filter?: [Int]] = [:]
        var order: [Filter?] = []
        for (i, q) in queries.enumerated() {
            let key = q.filter == .matchAll ? nil : q.filter
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(i)
        }
        for key in order {
            let members = groups[key]!
            let m = try match(txn, filters[members[0]])
            live = m.liveRows
            for i in members {
                matchCounts[i] = m.slots.count
                if filters[members[0]] != nil { allowed[i] = m.slots }
            }
            let exactMembers = members.filter { i in
                options.exact || m.slots.count <= (options.exactBelow ?? 4 * candidates[i])
            }
            guard !exactMembers.isEmpty else { continue }
            for i in exactMembers { exact[i] = true }
            let all = filters[members[0]] == nil
            let started = monotonicSeconds()
            let (r, n) = try exactChamfer(txn, mv, exactMembers.map { queries[$0] }, slots: all ? nil : m.slots)
            exactSeconds += monotonicSeconds() - started
            for (j, i) in exactMembers.enumerated() { results[i] = r[j]; scored[i] = n }
        }
        // Exact Chamfer ran while planning; its time is its own stage.
        clock += exactSeconds
        stage("filter")
        clock -= exactSeconds
        // Candidate stage over encodings.
        let approximate = queries.indices.filter { !exact[$0] }
        var stagePlan = CandidateStagePlan()
        if !approximate.isEmpty {
            let encoder = EncoderCache.shared.encoder(mv.fde)
            var encoded = [[Float]](repeating: [], count: queries.count)
            for i in approximate {
                encoded[i] = queries[i].tokens.withUnsafeBytes { encoder.encode($0.baseAddress!, count: counts[i], side: .query) }
            }
            stage("encode")
            let lists = try candidateLists(approximate, encoded, candidates: candidates, filters: queries.map(\.filter), allowed: allowed, live: live, options, profile: profile,
                                           txns, plan: &stagePlan)
            stage("candidates")
            let reranked = try rerankChamfer(txn, mv, approximate.map { queries[$0] }, approximate.map { lists[$0] })
            for (j, i) in approximate.enumerated() {
                results[i] = reranked.results[j]
                scored[i] = reranked.scored[j]
            }
            stage("rerank")
        }
        if exactSeconds > 0 { stages.append(.init(name: "exact", seconds: exactSeconds)) }
        let explanations: [MultiVectorExplanation] = profile ? queries.indices.map { i in
            MultiVectorExplanation(plan: exact[i] ? "exact-chamfer" : "fde-candidates", forced: options.exact, matches: matchCounts[i],
                                   liveRows: live, candidates: exact[i] ? 0 : candidates[i],
                                   candidateSource: exact[i] ? nil : stagePlan.source[i], candidateEstimates: exact[i] ? [] : stagePlan.estimates[i] ?? [],
                                   candidateStage: exact[i] ? nil : stagePlan.explanation,
                                   documentsScored: scored[i], results: results[i], stages: stages)
        } : []
        return MultiVectorRun(results: results, explanations: explanations)
    }

    /// Queries' tokens packed back to back, with each query's token range.
    static func packed(_ queries: [MultiVectorQuery], dimension: Int) -> ([Float], [Range<Int>]) {
        var all: [Float] = []
        var segments: [Range<Int>] = []
        var at = 0
        for q in queries {
            all += q.tokens
            let n = q.tokens.count / dimension
            segments.append(at..<(at + n))
            at += n
        }
        return (all, segments)
    }

    /// Exact Chamfer of every query against every document in `slots` (every live row when
    /// nil), one pass: each document's tokens are decoded once and scored for all queries in
    /// one stacked tile. Returns each query's top k and the documents scored.
    func exactChamfer(_ txn: Transaction, _ mv: MultiVectorInfo, _ queries: [MultiVectorQuery], slots: Bitmap?) throws -> ([[SearchResult]], Int) {
        let d = mv.tokenDimension
        let t = try tokensDB
        let (packedQueries, segments) = VectorCollection.packed(queries, dimension: d)
        var heaps = queries.map { TopK(k: $0.k) }
        var tokens: [Float] = []
        var scratch: [Float] = []
        var sims = [Float](repeating: 0, count: queries.count)
        var n = 0
        func score(_ id: UInt64, _ v: UnsafeRawBufferPointer) throws {
            let count = try TokenRecord.decode(v, dimension: d, storage: mv.tokenStorage, into: &tokens)
            packedQueries.withUnsafeBytes { q in
                tokens.withUnsafeBytes { p in
                    sims.withUnsafeMutableBufferPointer { o in
                        Chamfer.similarities(queries: q.baseAddress!, segments: segments, document: p.baseAddress!, documentCount: count,
                                             dimension: d, scratch: &scratch, into: o.baseAddress!)
                    }
                }
            }
            for j in heaps.indices { _ = heaps[j].insert(distance: -sims[j], id: id) }
            n += 1
        }
        if let slots {
            let reader = try vectorReader(txn)
            for slot in slots {
                let (id, _) = try vectorEntry(reader, slot)
                let found: Void? = try Keys.withExternalKey(cid, id) { k in try txn.withValue(t, key: k) { v in try score(id, v) } }
                if found == nil {
                    throw SextantError(.corrupted, "row \(id) has no token record", context: ["collection": name, "id": String(id)])
                }
            }
        } else {
            // Every live row: the token records in key order, one cursor pass.
            try txn.scan(t, prefix: Keys.prefix(cid)) { k, v in
                guard let (_, id) = Keys.decodeExternal(k) else {
                    throw SextantError(.corrupted, "token key of \(k.count) bytes", context: ["collection": name])
                }
                try score(id, v)
                return true
            }
        }
        return (heaps.map { $0.sortedResults().map { SearchResult(id: $0.id, distance: $0.distance) } }, n)
    }

    /// Re-ranks each query's candidates with exact Chamfer in `txn`, the candidate stage's
    /// snapshot. A document that is a candidate of several queries is decoded once and scored
    /// for all of them in one stacked tile.
    func rerankChamfer(_ txn: Transaction, _ mv: MultiVectorInfo, _ queries: [MultiVectorQuery], _ lists: [[SearchResult]]) throws -> (results: [[SearchResult]], scored: [Int]) {
        let d = mv.tokenDimension
        let t = try tokensDB
        var wanted: [UInt64: [Int]] = [:]
        for (i, list) in lists.enumerated() { for r in list { wanted[r.id, default: []].append(i) } }
        var heaps = queries.map { TopK(k: $0.k) }
        var scored = [Int](repeating: 0, count: queries.count)
        let offsets = queries.reduce(into: [0]) { $0.append($0.last! + $1.tokens.count / d) }
        let all = Array(queries.map(\.tokens).joined())
        var gathered: [Float] = []
        var tokens: [Float] = []
        var scratch: [Float] = []
        var sims: [Float] = []
        for id in wanted.keys.sorted() {
            let members = wanted[id]!
            let found: Void? = try Keys.withExternalKey(cid, id) { k in
                try txn.withValue(t, key: k) { v in
                    let count = try TokenRecord.decode(v, dimension: d, storage: mv.tokenStorage, into: &tokens)
                    var segments: [Range<Int>] = []
                    gathered.removeAll(keepingCapacity: true)
                    for i in members {
                        let start = gathered.count / d
                        gathered.append(contentsOf: all[(offsets[i] * d)..<(offsets[i + 1] * d)])
                        segments.append(start..<(gathered.count / d))
                    }
                    if sims.count < members.count { sims = [Float](repeating: 0, count: members.count) }
                    gathered.withUnsafeBytes { q in
                        tokens.withUnsafeBytes { p in
                            sims.withUnsafeMutableBufferPointer { o in
                                Chamfer.similarities(queries: q.baseAddress!, segments: segments, document: p.baseAddress!,
                                                     documentCount: count, dimension: d, scratch: &scratch, into: o.baseAddress!)
                            }
                        }
                    }
                    for (j, i) in members.enumerated() {
                        _ = heaps[i].insert(distance: -sims[j], id: id)
                        scored[i] += 1
                    }
                }
            }
            if found == nil {
                throw SextantError(.corrupted, "candidate \(id) has no token record", context: ["collection": name, "id": String(id)])
            }
        }
        return (heaps.map { $0.sortedResults().map { SearchResult(id: $0.id, distance: $0.distance) } }, scored)
    }
}

import CSextantSIMD
import SextantKernels
import SextantStorage

/// Graph distances from PQ codes: the query's float lookup table against each node's code
/// (asymmetric distance). A traversal then reads `codeSize` bytes per node instead of the
/// full vector — 1,280 bytes instead of 40 KB for `PQ2560x4` over a 10,240-dim encoding.
/// Search only: inserts and repairs use the full vectors.
struct CodeGraphSource: GraphDistanceSource {
    let codes: SlotBlocks.Reader
    let codeSize: Int

    typealias Query = PQDistanceTable

    @inline(__always)
    private func code(_ node: UInt32) throws -> UnsafePointer<UInt8> {
        guard let p = try codes.pointer(node) else {
            throw SextantError(.corrupted, "graph node \(node) has no code", context: ["slot": String(node)])
        }
        return p.assumingMemoryBound(to: UInt8.self)
    }

    func query(for node: UInt32) throws -> PQDistanceTable {
        throw SextantError(.invalidArgument, "a graph over codes only searches; links are made with full vectors")
    }

    func distance(_ query: PQDistanceTable, to node: UInt32) throws -> Float {
        var d: Float = 0
        query.distances(codes: try code(node), count: 1, into: &d)
        return d
    }

    /// Requests every neighbour's code first, so their cache misses overlap.
    func distances(_ query: PQDistanceTable, to nodes: UnsafeBufferPointer<UInt32>, into out: UnsafeMutablePointer<Float>) throws {
        var pointers: [UnsafePointer<UInt8>] = []
        pointers.reserveCapacity(nodes.count)
        for n in nodes {
            let p = try code(n)
            sextant_prefetch(p, codeSize)
            pointers.append(p)
        }
        for (i, p) in pointers.enumerated() { query.distances(codes: p, count: 1, into: out + i) }
    }

    func distance(between a: UInt32, and b: UInt32) throws -> Float {
        throw SextantError(.invalidArgument, "a graph over codes only searches; links are made with full vectors")
    }
}

extension VectorCollection {
    /// The indexes a graph-over-codes candidate stage needs, read in the search's snapshot.
    struct CodeGraph {
        var graph: LMDBGraph
        var pq: ProductQuantizer
        var model: CostModel
    }

    /// The collection's graph and codes when both are built, with its cost model; else nil.
    func codeGraph(_ txn: Transaction, live: Int) throws -> CodeGraph? {
        guard let g = try graph(txn), let pq = try quantizer(txn) else { return nil }
        return CodeGraph(graph: g, pq: pq, model: try costModel(txn, liveRows: live, hasGraph: true, hasCodes: true))
    }

    /// Estimated seconds of a traversal over codes with beam `ef` at selectivity `s`, its beam
    /// re-scored with full vectors: the full-vector traversal's time with each distance priced
    /// as a code instead of a vector, plus the re-scoring (nil without the measurements).
    static func codeGraphSeconds(_ model: CostModel, selectivity s: Double, ef: Int) -> Double? {
        guard let one = model.graphCost(selectivity: s, ef: ef), let perCode = model.codePerRow else { return nil }
        let overhead = max(0, one.seconds - one.distances * model.exactPerRow)
        return overhead + one.distances * perCode + Double(ef) * model.exactPerRow
    }

    /// The `k` rows nearest `vector` among `allowed` (every row when nil): the graph is
    /// traversed with code distances and a beam of `ef`, and the whole beam is re-scored with
    /// full vectors. Results carry external ids and exact distances.
    func codeGraphSearch(_ vector: [Float], k: Int, ef: Int, allowed: Bitmap?, _ txn: Transaction, _ cg: CodeGraph) throws -> [SearchResult] {
        let table = vector.withUnsafeBufferPointer { cg.pq.distanceTable(query: $0) }
        let session = ScanSession(try CollectionSnapshot(self, txn))
        let source = CodeGraphSource(codes: try session.codes(cg.pq), codeSize: cg.pq.codeSize)
        let context = store.searchContexts.take()
        defer { store.searchContexts.give(context) }
        let beam = max(ef, k)
        let found: [Neighbor]
        if let allowed {
            found = try HNSW.search(table, k: beam, ef: beam,
                                    filter: HNSWFilter(allowed: allowed, allowedBits: DenseBitset(allowed, bound: cg.graph.nodeIDBound),
                                                       exhaustiveBelowMatches: graphExhaustiveBelow),
                                    storage: cg.graph, distances: source, context: context).neighbors
        } else {
            found = try HNSW.search(table, k: beam, ef: beam, storage: cg.graph, distances: source, context: context)
        }
        var approximate = TopK(k: max(1, found.count))
        for n in found { _ = approximate.insert(distance: n.distance, id: n.id) }
        let q = PreparedQuery(index: 0, vectorID: 0, vector: vector, k: k, predicate: nil, filter: nil)
        let exact = try rerankCodes(q, approximate, rerank: found.count, txn, vectors: try session.vectors())
        return exact.sortedResults().map { SearchResult(id: $0.id, distance: $0.distance) }
    }
}

/// How a multi-vector search's candidate stage ran, per query index (for explain).
struct CandidateStagePlan {
    var source: [Int: String] = [:]
    var estimates: [Int: [MultiVectorExplanation.CandidateEstimate]] = [:]
    /// The planner's explanation of a lone query it answered.
    var explanation: SearchExplanation? = nil
}

extension VectorCollection {
    /// Each approximate query's candidates (indexed like `encoded`, by query), with exact
    /// distances between encodings. With a graph and codes, a traversal over codes is weighed
    /// against the planner's best plan by the cost model; the other queries run as one batch
    /// through the planner. Everything reads the snapshot of `txns`.
    func candidateLists(_ approximate: [Int], _ encoded: [[Float]], candidates: [Int], filters: [Filter?], allowed: [Bitmap?], live: Int,
                        _ options: MultiVectorSearchOptions, profile: Bool, _ txns: [Transaction],
                        plan: inout CandidateStagePlan) throws -> [[SearchResult]] {
        var lists = [[SearchResult]](repeating: [], count: encoded.count)
        let txn = txns[0]
        let cg = options.candidatePlan == nil && options.traverseCodes != false ? try codeGraph(txn, live: live) : nil
        var viaPlanner: [Int] = []
        for i in approximate {
            guard let cg else { viaPlanner.append(i); continue }
            let c = candidates[i]
            let ef = options.ef ?? 4 * c
            let rerank = options.rerank ?? 4 * c
            let m = allowed[i]?.count ?? live
            let s = live > 0 ? Double(max(m, 1)) / Double(live) : 1
            var weighed: [MultiVectorExplanation.CandidateEstimate] = []
            if let t = Self.codeGraphSeconds(cg.model, selectivity: s, ef: ef) {
                weighed.append(.init(source: "graph-over-codes", seconds: t, knob: ef))
            }
            for e in estimates(cg.model, matches: m, live: live, queries: 1, k: c, ef: ef, rerank: rerank, defaultRerank: rerank,
                               target: 0, hasGraph: true, hasCodes: true) {
                weighed.append(.init(source: e.kind.rawValue, seconds: e.seconds, knob: e.knob))
            }
            weighed.sort { $0.seconds < $1.seconds }
            plan.estimates[i] = weighed
            if options.traverseCodes == true || weighed.first?.source == "graph-over-codes" {
                plan.source[i] = "graph-over-codes"
                lists[i] = try codeGraphSearch(encoded[i], k: c, ef: ef, allowed: allowed[i], txn, cg)
            } else {
                viaPlanner.append(i)
            }
        }
        guard !viaPlanner.isEmpty else { return lists }
        // The knobs are the caller's or proportional to the candidates; the FDE-space recall
        // model does not speak for Chamfer recall, so the cost alone decides.
        let widest = viaPlanner.map { candidates[$0] }.max() ?? 1
        let fdeOptions = SearchOptions(rerank: options.rerank ?? 4 * widest, ef: options.ef ?? 4 * widest, plan: options.candidatePlan, recall: 0)
        let e = try execute(viaPlanner.map { Query(vector: encoded[$0], k: candidates[$0], filter: filters[$0]) },
                            options: fdeOptions, profile: profile, snapshot: txns)
        for (j, i) in viaPlanner.enumerated() {
            lists[i] = e.results[j]
            let p = e.groups[e.groupOfQuery[j]].plan
            plan.source[i] = p.kind.rawValue
            if plan.estimates[i] == nil {
                plan.estimates[i] = p.estimates.map { .init(source: $0.kind.rawValue, seconds: $0.seconds, knob: $0.knob) }
            }
        }
        if profile && viaPlanner.count == 1 {
            plan.explanation = SearchExplanation(plan: e.groups[0].plan, results: e.results[0], rowsScored: e.stats[0].rowsScored,
                                                 detail: e.stats[0].detail, stages: e.stages, partitionsTouched: e.groups[0].partitionsTouched)
        }
        return lists
    }
}

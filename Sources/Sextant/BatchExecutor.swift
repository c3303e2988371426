import Dispatch
import Foundation
import SextantKernels
import SextantStorage

// The batch executor: group, plan, schedule, merge. Every search — a lone query too — runs
// through `execute`, in one snapshot of the store (SPEC §1): planning in the first read
// transaction, each search thread in one of the others, all opened on the same commit, so a
// query whose slots are split between threads is exact and no row moves between two ranges.

/// Wall time per stage of a search, for explain.
struct StageClock {
    private(set) var stages: [SearchExplanation.Stage] = []
    private var mark = monotonicSeconds()

    /// Ends stage `name`; `deferred` seconds spent in it are counted in the next stage instead.
    mutating func end(_ name: String, deferring deferred: Double = 0) {
        let now = monotonicSeconds()
        stages.append(.init(name: name, seconds: now - mark - deferred))
        mark = now - deferred
    }
}

extension VectorCollection {
    /// The queries of a batch by group, identical ones set aside.
    struct BatchGrouping {
        /// Queries of each group (same predicate, and same probed cells when probing).
        var members: [[PreparedQuery]] = []
        /// Per group, the probed cells nearest its first query, nearest first, and that query's
        /// distance to every cell (probing only: further cells are taken in that order when the
        /// probed ones hold fewer than k matches).
        var cellOrder: [[Int]] = []
        var cellDistances: [[Float]] = []
        var groupOfQuery: [Int]
        /// For a query identical to an earlier one (vector bits, k, predicate), that query.
        var duplicateOf: [Int?]
        var cellQuantizer: CoarseQuantizer?

        var duplicates: Int { duplicateOf.lazy.filter { $0 != nil }.count }
    }

    /// What the planning transaction read: exact matches per group, index state, cost model.
    struct BatchPlanning {
        var nextSlot: UInt32 = 0
        var live = 0
        var hasGraph = false
        var hasCodes = false
        var candidates: [Bitmap] = []
        /// Per group: the sample's estimate of its matches when its predicate is checked row by
        /// row in a post-filter search instead of evaluated as a set (its candidates are empty).
        var estimated: [Int?] = []
        /// Cells each group reads (nil: all).
        var cells: [[Int]?] = []
        var partitionsTouched: [Int] = []
        var model: CostModel?
        var modelSeconds = 0.0
    }

    /// Plans and runs a batch: evaluate each distinct predicate once, plan each group, then
    /// run the work items on the search threads, each thread in one read transaction.
    ///
    /// `snapshot`: transactions of one snapshot to run in (planning in the first, one search
    /// thread per transaction) instead of opening a snapshot here — for callers that read more
    /// in the same snapshot.
    func execute(_ queries: [Query], options: SearchOptions, profile: Bool, control: OperationControl? = nil,
                 snapshot: [Transaction]? = nil) throws -> Execution {
        var clock = StageClock()
        let prepared = try prepare(queries, options: options)
        clock.end("prepare")
        let threads = snapshot?.count ?? max(1, store.configuration.searchThreads)
        return try withSnapshot(snapshot, count: threads) { txns -> Execution in
            // One view of the collection per transaction of the snapshot: planning reads the
            // first, search thread w the w-th, each resolving state, readers and indexes once.
            let views = try txns.map { try CollectionSnapshot(self, $0) }
            let grouping = try group(prepared, count: queries.count, options: options, views[0])
            let planning = try plan(grouping, options: options, profile: profile, views)
            // The cost model lookup (or measurement) belongs to planning, though it ran in the
            // planning snapshot's transaction.
            clock.end("filter", deferring: planning.modelSeconds)
            try checkForced(options.forcedPlan, planning)
            var groups = planGroups(grouping.members, planning, options: options, profile: profile)
            // Queries that share a traversal leave their groups before the pass is weighed.
            let traversals = sharedTraversals(&groups, planning, options: options)
            let pass = partitionPass(&groups, model: planning.model, slotBound: planning.nextSlot,
                                     slotsPerBlock: try views[0].vectors().blocks.slotsPerBlock, forced: options.forcedPlan)
            clock.end("plan")
            let items = workItems(groups, pass: pass, traversals: traversals, slotBound: planning.nextSlot, threads: threads)
            control?.begin(.searching, total: queries.count)
            // Identical queries count as done at once.
            control?.advance(by: Double(grouping.duplicates))
            let parts = try run(items, groups: groups, pass: pass, traversals: traversals, views: views, options: options,
                                planning: planning, control: control)
            control?.finishPhase()
            clock.end("search")
            learnFromLoneQuery(groups, planning, seconds: clock.stages.last?.seconds ?? 0)
            var execution = merge(parts, items: items, groups: groups, pass: pass, traversals: traversals, grouping: grouping)
            clock.end("merge")
            execution.stages = clock.stages
            return execution
        }
    }

    /// Sets identical queries aside and groups the others by predicate (and probed cells), in
    /// order of first appearance.
    func group(_ prepared: [PreparedQuery], count: Int, options: SearchOptions, _ view: CollectionSnapshot) throws -> BatchGrouping {
        // Predicates by their batch number (equal predicates, equal numbers).
        struct Identity: Hashable {
            var vectorID: Int
            var k: Int
            var predicate: Int
        }
        struct GroupKey: Hashable {
            var predicate: Int
            var cells: [Int]?
        }
        var out = BatchGrouping(groupOfQuery: [Int](repeating: 0, count: count), duplicateOf: [Int?](repeating: nil, count: count))
        // Probing: each query's cells, nearest first (the exact plan reads every cell).
        if options.probes != nil && options.forcedPlan != .exact { out.cellQuantizer = try view.coarseQuantizer() }
        var firstWith: [Identity: Int] = [:]
        var groupIndex: [GroupKey: Int] = [:]
        for q in prepared {
            let identity = Identity(vectorID: q.vectorID, k: q.k, predicate: q.predicateID)
            if let first = firstWith[identity] {
                out.duplicateOf[q.index] = first
                out.groupOfQuery[q.index] = out.groupOfQuery[first]
                continue
            }
            firstWith[identity] = q.index
            var key = GroupKey(predicate: q.predicateID, cells: nil)
            var order: [Int] = []
            var distances: [Float] = []
            if let cq = out.cellQuantizer, let probes = options.probes {
                distances = cq.distances(to: q.vector)
                order = CoarseQuantizer.nearest(distances, count: probes)
                key.cells = order.sorted()
            }
            let g: Int
            if let e = groupIndex[key] { g = e } else {
                g = out.members.count
                groupIndex[key] = g
                out.members.append([])
                out.cellOrder.append(order)
                out.cellDistances.append(distances)
            }
            out.members[g].append(q)
            out.groupOfQuery[q.index] = g
        }
        return out
    }

    /// Reads each group's exact matches (in its probed cells), the index state and the cost
    /// model: the state in the first transaction, the groups' matches on as many threads as the
    /// snapshot has transactions (a batch's filter stage is otherwise serial).
    func plan(_ grouping: BatchGrouping, options: SearchOptions, profile: Bool, _ views: [CollectionSnapshot]) throws -> BatchPlanning {
        let view = views[0], txn = view.txn
        var p = BatchPlanning()
        p.nextSlot = view.slotBound
        p.hasGraph = try view.graph() != nil
        p.hasCodes = try view.hasCodes()
        p.live = try view.live().count
        // A Flat collection needs the model only to weigh a partition-major pass.
        if p.hasGraph || p.hasCodes || grouping.members.count > 1 {
            let t = monotonicSeconds()
            p.model = try costModel(txn, liveRows: p.live, hasGraph: p.hasGraph, hasCodes: p.hasCodes)
            p.modelSeconds = monotonicSeconds() - t
        }
        let header = p
        let rows = try Self.perGroup(grouping.members.count, views) { g, view in
            try self.groupRows(g, grouping, header, options: options, view)
        }
        for r in rows {
            p.candidates.append(r.candidates)
            p.estimated.append(r.estimated)
            p.cells.append(r.cells)
        }
        if profile {
            // Partitions a query is routed to: those holding at least one of its matches.
            if let layout = try partitionLayout(txn) {
                let parts = try partitionMembers(txn, layout)
                // A predicate checked row by row may meet its matches anywhere.
                p.partitionsTouched = p.candidates.indices.map { g in
                    p.estimated[g] != nil ? parts.count : parts.filter { !$0.isDisjoint(with: p.candidates[g]) }.count
                }
            } else {
                p.partitionsTouched = p.candidates.map { _ in 1 }
            }
        }
        return p
    }

    /// One group's rows in the planning snapshot.
    struct GroupRows {
        var candidates = Bitmap()
        /// The sample's estimate when the predicate is left to a post-filter search.
        var estimated: Int? = nil
        /// The cells read (nil: all).
        var cells: [Int]? = nil
    }

    func groupRows(_ g: Int, _ grouping: BatchGrouping, _ p: BatchPlanning, options: SearchOptions,
                   _ view: CollectionSnapshot) throws -> GroupRows {
        let group = grouping.members[g]
        let reader = view.postings
        if let estimate = try deferredEstimate(group, p, options: options, view.txn, reader: reader) {
            return GroupRows(estimated: estimate)
        }
        let m = try view.match(group[0].filter)
        var rows = m.slots
        var probed: [Int]? = nil
        if let cq = grouping.cellQuantizer {
            // The probed cells' matches, cell by cell (cells are disjoint); further cells,
            // nearest first, while they hold fewer than k of the matches (never fewer than
            // min(k, matches) rows).
            let need = min(group.map(\.k).max() ?? 1, m.slots.count)
            var inCells = Bitmap()
            var found = 0
            var taken: [Int] = []
            func take(_ c: Int) throws {
                let part = m.slots.intersection(try view.cell(c))
                found += part.count
                inCells.formUnion(part)
                taken.append(c)
            }
            for c in grouping.cellOrder[g] { try take(c) }
            if found < need {
                let probed = Set(taken)
                for c in CoarseQuantizer.nearest(grouping.cellDistances[g], count: cq.cells) where !probed.contains(c) {
                    if found >= need { break }
                    try take(c)
                }
            }
            rows = inCells
            probed = taken.count == cq.cells ? nil : taken.sorted()
        }
        return GroupRows(candidates: rows, estimated: nil, cells: probed)
    }

    /// `body(i, view)` for i in 0..<count, on one thread per transaction of the snapshot (each
    /// transaction used by its thread only); results in order, the first error thrown.
    static func perGroup<T>(_ count: Int, _ views: [CollectionSnapshot], _ body: @escaping (Int, CollectionSnapshot) throws -> T) throws -> [T] {
        let workers = min(views.count, count)
        if workers <= 1 { return try (0..<count).map { try body($0, views[0]) } }
        let results = ClaimedResults<T>(count: count)
        let failure = FirstError()
        let shared = SnapshotViews(views)
        let run = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            while failure.error == nil {
                let i = results.claim()
                guard i < count else { return }
                do { results.set(i, try run.value(i, shared[w])) } catch { failure.set(error) }
            }
        }
        if let e = failure.error { throw e }
        return results.values
    }

    /// A small group whose predicate the attribute sample shows broad, when the planner would
    /// answer it by post-filter search at the sample's estimate and its set is not cached: the
    /// estimate (its rows are then checked one by one on the traversal's candidates).
    func deferredEstimate(_ group: [PreparedQuery], _ p: BatchPlanning, options: SearchOptions, _ txn: Transaction,
                          reader: IndexReader) throws -> Int? {
        guard p.hasGraph, let model = p.model, options.probes == nil, group.count <= Self.deferredMaximumGroup,
              options.forcedPlan == nil || options.forcedPlan == .postFilter,
              let filter = group[0].filter, !filter.matchesEverything, !txn.isWritable,
              store.filterCache.get(cid, filter.predicate, snapshot: txn.snapshotID) == nil,
              let estimate = try broadPredicateEstimate(filter, txn, reader: reader) else { return nil }
        if options.forcedPlan == .postFilter { return estimate }
        let k = group.map(\.k).max() ?? 1
        let est = estimates(model, matches: estimate, live: p.live, queries: group.count, k: k, ef: options.ef, rerank: options.rerank,
                            defaultRerank: defaultRerank(k: k), target: options.recall,
                            hasGraph: p.hasGraph, hasCodes: p.hasCodes)
        // Every other plan first evaluates the predicate as a set, which costs at least
        // `setSecondsPerMatch` per matching row; the deferred search does not.
        guard let post = est.first(where: { $0.kind == .postFilter }), let best = est.first else { return nil }
        if best.kind == .postFilter { return estimate }
        let meetsTarget = post.recall.map { $0 >= options.recall } ?? true
        return meetsTarget && post.seconds <= best.seconds + Double(estimate) * Self.setSecondsPerMatch ? estimate : nil
    }

    /// A forced plan whose index is absent is `invalidArgument`.
    func checkForced(_ forced: PlanKind?, _ planning: BatchPlanning) throws {
        guard let forced else { return }
        if (forced == .filteredGraph || forced == .postFilter) && !planning.hasGraph {
            throw SextantError(.invalidArgument, "plan '\(forced.rawValue)' needs an HNSW graph; collection '\(name)' has none built",
                               context: ["collection": name, "plan": forced.rawValue])
        }
        if forced == .codes && !planning.hasCodes {
            throw SextantError(.invalidArgument, "plan 'codes' needs trained PQ codes; collection '\(name)' has none",
                               context: ["collection": name, "plan": forced.rawValue])
        }
    }

    /// Each group's plan and knob: the cheapest estimate meeting the recall target, or the forced plan.
    func planGroups(_ members: [[PreparedQuery]], _ planning: BatchPlanning, options: SearchOptions, profile: Bool) -> [PlannedGroup] {
        let forced = options.forcedPlan
        var groups: [PlannedGroup] = []
        for (g, qs) in members.enumerated() {
            let m = planning.estimated[g] ?? planning.candidates[g].count
            let k = qs.map(\.k).max() ?? 1
            let defaultRerank = defaultRerank(k: k)
            var est: [PlanEstimate] = []
            if let model = planning.model {
                est = estimates(model, matches: m, live: planning.live, queries: qs.count, k: k, ef: options.ef, rerank: options.rerank,
                                defaultRerank: defaultRerank, target: options.recall, forced: forced,
                                hasGraph: planning.hasGraph, hasCodes: planning.hasCodes)
            } else {
                est = [PlanEstimate(kind: .exact, seconds: 0, rows: m)]
            }
            // Nothing matches: any plan returns nothing, the exact one without touching data.
            // A deferred predicate has no set to run any other plan on.
            let kind = planning.estimated[g] != nil ? .postFilter : forced ?? (m == 0 ? .exact : est.first?.kind ?? .exact)
            let rows = est.first { $0.kind == kind }?.rows ?? m
            var plan = QueryPlan(kind: kind, forced: forced != nil, matches: m, liveRows: planning.live, queries: qs.count,
                                 estimates: est, estimatedRows: rows)
            plan.matchesEstimated = planning.estimated[g] != nil
            var shared = false
            if kind == .codes, let model = planning.model, let oneByOne = model.codeScanSeconds(matches: m, live: planning.live, queries: qs.count),
               let pass = model.sharedCodePass(matches: m, queries: qs.count) {
                shared = pass < oneByOne
            }
            // The knob the estimate was made with (the recall model's, or the caller's).
            let knob = est.first { $0.kind == kind }?.knob
            groups.append(PlannedGroup(predicate: qs[0].predicate, filter: qs[0].filter, queries: qs, plan: plan,
                                       candidates: planning.candidates[g],
                                       partitionsTouched: profile ? planning.partitionsTouched[g] : 1, sharedCodePass: shared,
                                       cells: planning.cells[g],
                                       ef: kind == .filteredGraph || kind == .postFilter ? knob ?? options.ef : options.ef,
                                       rerank: kind == .codes ? knob ?? options.rerank : options.rerank,
                                       estimatedMatches: planning.estimated[g]))
        }
        return groups
    }

    /// The work items, in the order threads claim them.
    func workItems(_ groups: [PlannedGroup], pass: PartitionPass?, traversals: [SharedTraversal] = [], slotBound: UInt32,
                   threads: Int) -> [WorkItem] {
        // Exact groups in chunks of 64 queries and shared fast-scan groups of 128 (one shared pass
        // each); the other plans in chunks of 4 (per-query work, small items balance the
        // threads); the pass in block ranges.
        var items: [WorkItem] = []
        for (g, group) in groups.enumerated() where pass == nil || group.plan.kind != .partitionMajor {
            let chunk = group.sharedCodePass ? sharedCodePassQueries : group.plan.kind == .exact ? sharedPassQueries : 4
            for start in stride(from: 0, to: group.queries.count, by: chunk) {
                items.append(WorkItem(group: g, range: start..<min(start + chunk, group.queries.count), slots: nil))
            }
        }
        let passRanges = pass?.ranges(parts: threads > 1 ? 4 * threads : 1) ?? []
        items += passRanges.map { WorkItem(group: -1, range: 0..<0, slots: nil, passBlocks: $0) }
        items += traversals.indices.map { WorkItem(group: -1, range: 0..<0, slots: nil, traversal: $0) }
        // Fewer items than threads: split exact items' slot space so that one query also uses
        // every core; the partial top-k lists merge.
        if threads > 1 && items.count < threads && slotBound >= 4096 {
            let parts = UInt32(threads * 2)
            let step = (slotBound + parts - 1) / parts
            items = items.flatMap { item -> [WorkItem] in
                guard item.group >= 0, groups[item.group].plan.kind == .exact, groups[item.group].candidates.count >= 4096 else { return [item] }
                return stride(from: UInt32(0), to: slotBound, by: Int(step)).map {
                    WorkItem(group: item.group, range: item.range, slots: $0..<min($0 + step, slotBound))
                }
            }
        }
        // Longest first: threads claim items in order, so the big items start early and the
        // small ones fill in at the end instead of one late big item running alone.
        guard threads > 1 && items.count > threads else { return items }
        let passSeconds = groups.reduce(0.0) { $0 + ($1.plan.kind == .partitionMajor ? $1.plan.estimates[0].seconds : 0) }
        let cost = items.map { item -> Double in
            if let t = item.traversal { return traversals[t].seconds }
            guard item.group >= 0 else { return passSeconds / Double(max(1, passRanges.count)) }
            let plan = groups[item.group].plan
            let whole = plan.estimates.first { $0.kind == plan.kind }?.seconds ?? Double(plan.matches)
            return whole * Double(item.range.count) / Double(max(1, plan.queries))
        }
        return items.indices.sorted { cost[$0] > cost[$1] || (cost[$0] == cost[$1] && $0 < $1) }.map { items[$0] }
    }

    /// Runs the items on the search threads; worker w uses transaction w of the snapshot, and
    /// only it (LMDB: one thread at a time). Returns each item's partial top-k lists.
    func run(_ items: [WorkItem], groups: [PlannedGroup], pass: PartitionPass?, traversals: [SharedTraversal], views: [CollectionSnapshot],
             options: SearchOptions, planning: BatchPlanning, control: OperationControl?) throws -> [PartialResults.Part] {
        let partials = PartialResults(count: items.count)
        let failure = FirstError()
        let slotCount = Double(max(1, planning.nextSlot))
        let (ef, rerank, refine, live) = (options.ef, options.rerank, refines, planning.live)
        let workerViews = SnapshotViews(views)
        let tables = BatchTables()
        let work: @Sendable (Int) -> Void = { [self] w in
            do {
                var runner = GroupRunner(workerViews[w], tables: tables)
                defer { runner.finish() }
                var passRunner: PartitionPassRunner? = nil
                while failure.error == nil {
                    if control?.isCancelled == true {
                        failure.set(SextantError(.cancelled, "the batch search was cancelled"))
                        return
                    }
                    let i = partials.claim()
                    guard i < items.count else { return }
                    let item = items[i]
                    if let t = item.traversal {
                        partials.set(i, try runner.run(traversals[t], groups: groups, live: live))
                        control?.advance(by: Double(traversals[t].members.count))
                        continue
                    }
                    if let blocks = item.passBlocks, let pass {
                        if passRunner == nil { passRunner = PartitionPassRunner(pass, metric: metric) }
                        let partial = try passRunner!.run(blocks, reader: try runner.session.vectors(), collection: name)
                        partials.set(i, pass.flatten(partial))
                        control?.advance(by: Double(pass.memberCount) * Double(blocks.count) / Double(max(1, pass.blocks.count)))
                        continue
                    }
                    let group = groups[item.group]
                    partials.set(i, try runner.run(group, groupIndex: item.group, item: item, ef: group.ef ?? ef,
                                                  rerank: group.rerank ?? rerank, refine: refine, live: live))
                    // A split item counts as its share of the slots.
                    control?.advance(by: Double(item.range.count) * (item.slots.map { Double($0.count) / slotCount } ?? 1))
                }
            } catch { failure.set(error) }
        }
        let workers = min(views.count, items.count)
        if workers <= 1 { work(0) } else { DispatchQueue.concurrentPerform(iterations: workers, execute: work) }
        if let e = failure.error { throw e }
        return partials.values
    }

    /// A lone query teaches the cost model how long its graph plan really took.
    func learnFromLoneQuery(_ groups: [PlannedGroup], _ planning: BatchPlanning, seconds: Double) {
        guard groups.count == 1, groups[0].queries.count == 1, let model = planning.model,
              groups[0].plan.kind == .postFilter || (groups[0].plan.kind == .filteredGraph && groups[0].plan.matches > graphExhaustiveBelow)
        else { return }
        let plan = groups[0].plan
        let uncorrected = estimates(model, matches: plan.matches, live: plan.liveRows, queries: 1, k: groups[0].queries[0].k,
                                    ef: groups[0].ef, rerank: 0, defaultRerank: 0, target: 0, forced: plan.kind,
                                    hasGraph: planning.hasGraph, hasCodes: false, corrected: false)
        if let e = uncorrected.first(where: { $0.kind == plan.kind }) {
            store.costModels.observe(cid, plan.kind, selectivity: plan.selectivity, seconds: seconds, estimate: e.seconds)
        }
    }

    /// Merges the items' partial top-k lists per query; identical queries get their first's results.
    func merge(_ values: [PartialResults.Part], items: [WorkItem], groups: [PlannedGroup], pass: PartitionPass?,
               traversals: [SharedTraversal], grouping: BatchGrouping) -> Execution {
        let count = grouping.duplicateOf.count
        var heaps: [TopK?] = Array(repeating: nil, count: count)
        var stats = [QueryStats](repeating: QueryStats(), count: count)
        func add(_ query: Int, _ heap: TopK, _ part: QueryStats) {
            if heaps[query] == nil { heaps[query] = heap } else { heaps[query]!.merge(heap) }
            stats[query].rowsScored += part.rowsScored
            if stats[query].detail.isEmpty { stats[query].detail = part.detail }
            stats[query].sharedTraversal = stats[query].sharedTraversal || part.sharedTraversal
        }
        for (i, item) in items.enumerated() {
            let (partHeaps, partStats) = values[i]
            if let t = item.traversal {
                for (j, member) in traversals[t].members.enumerated() { add(member.query.index, partHeaps[j], partStats[j]) }
            } else if item.passBlocks != nil, let pass {
                for (j, member) in pass.members.joined().enumerated() { add(member.query, partHeaps[j], partStats[j]) }
            } else {
                for (j, r) in item.range.enumerated() { add(groups[item.group].queries[r].index, partHeaps[j], partStats[j]) }
            }
        }
        if let cq = grouping.cellQuantizer {
            for i in stats.indices where grouping.duplicateOf[i] == nil {
                guard let cells = groups[grouping.groupOfQuery[i]].cells else { continue }
                stats[i].detail += "; \(cells.count) of \(cq.cells) cells probed"
            }
        }
        var results = heaps.map { h in h.map { $0.sortedResults().map { SearchResult(id: $0.id, distance: $0.distance) } } ?? [] }
        for (i, first) in grouping.duplicateOf.enumerated() {
            guard let first else { continue }
            results[i] = results[first]
            // A literal: explain reports repeats per group, and formatting the first's index for
            // each of thousands of repeats was a quarter of this stage.
            stats[i] = QueryStats(rowsScored: 0, detail: "identical to an earlier query of the batch: its results")
        }
        return Execution(results: results, groups: groups, groupOfQuery: grouping.groupOfQuery, duplicateOf: grouping.duplicateOf,
                         stats: stats, stages: [])
    }
}

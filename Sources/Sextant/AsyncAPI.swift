import Foundation
import SextantStorage

// The async forms of the calls that can take time. Each runs the synchronous call on a thread
// Sextant owns (LMDB transactions block and belong to their thread; none of them may run on
// the cooperative pool) and suspends the calling task meanwhile. Long operations take an
// `onProgress` handler and honour task cancellation: they stop with `cancelled`, leaving the
// store exactly as it was, at any point before they commit.

extension Store {
    /// Opens (or creates) the store at `path` without blocking the calling task's thread.
    ///
    /// Opening runs `mdb_env_open`, clears stale readers and may write the format record, all
    /// of which touch the disk.
    ///
    /// - Throws: as ``init(path:configuration:)``: `formatVersion`, `locked`, `notFound`,
    ///   storage errors; `cancelled` when the task was cancelled before the store was opened.
    public static func open(path: String, configuration: Configuration = Configuration()) async throws -> Store {
        try await WorkerThreads.shared.run { try Store(path: path, configuration: configuration) }
    }

    /// Runs `body` — any synchronous Sextant calls — on one of Sextant's threads and returns
    /// its result, so that code in an async context can make calls that have no async form
    /// (or several calls in a row) without blocking the cooperative pool.
    ///
    /// - Throws: whatever `body` throws; `cancelled` when the task was cancelled before `body`
    ///   started (once started it runs to its end).
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await WorkerThreads.shared.run(body)
    }

    /// Creates a collection (see ``createCollection(_:dimension:metric:schema:indexRecipe:)``).
    ///
    /// - Throws: `invalidArgument` (name, dimension), `syntax` (recipe), `alreadyExists`,
    ///   storage errors, `cancelled` before it started.
    @discardableResult
    public func createCollection(
        _ name: String, dimension: Int, metric: Metric, schema: Schema = try! Schema([]), indexRecipe: String? = nil
    ) async throws -> VectorCollection {
        try await run { try self.createCollection(name, dimension: dimension, metric: metric, schema: schema, indexRecipe: indexRecipe) }
    }

    /// Deletes a collection and all its rows in one transaction.
    ///
    /// - Throws: `notFound`, storage errors, `cancelled` before it started.
    public func dropCollection(_ name: String) async throws {
        try await run { try self.dropCollection(name) }
    }

    /// Writes a consistent compacted copy of the store to `destination` (a hot backup; writers
    /// go on meanwhile).
    ///
    /// - Throws: `alreadyExists` when the destination holds a store, `io`, storage errors,
    ///   `cancelled` before it started.
    public func copy(to destination: String) async throws {
        try await run { try self.copy(to: destination) }
    }

    /// Verifies every invariant of every collection (see `check(deep:)`).
    ///
    /// - Throws: storage errors, `cancelled` before it started. Problems found are in the
    ///   report, not thrown.
    public func check(deep: Bool = true) async throws -> CheckReport {
        try await run { try self.check(deep: deep) }
    }

    /// Compacts the store at `path` (which no handle or process may have open) and returns
    /// the file sizes before and after (see ``compact(path:)``).
    ///
    /// - Throws: `locked` while the store is open anywhere, `notFound`, `io`, storage errors,
    ///   `cancelled` before it started.
    public static func compact(path: String) async throws -> (before: Int, after: Int) {
        let r = try await WorkerThreads.shared.run { () -> [Int] in
            let r = try Store.compact(path: path)
            return [r.before, r.after]
        }
        return (r[0], r[1])
    }
}

extension VectorCollection {
    // MARK: Writes

    /// Inserts or replaces one row.
    ///
    /// - Throws: `dimensionMismatch`, `nonFiniteValue`, `invalidArgument` (zero vector under
    ///   cosine), `unknownAttribute`, `typeMismatch`, `nullViolation` (with the field in
    ///   `context`), `notFound` (collection dropped), storage errors, `cancelled` before it
    ///   started.
    public func upsert(_ row: Row) async throws {
        try await upsert([row])
    }

    /// Inserts or replaces `id`'s vector and attributes.
    ///
    /// - Throws: as `upsert(_:)`.
    public func upsert(id: UInt64, vector: [Float], attributes: [String: AttributeValue] = [:]) async throws {
        try await upsert([Row(id: id, vector: vector, attributes: attributes)])
    }

    /// Inserts or replaces many rows in one transaction — all of them or, on any error or on
    /// cancellation, none — reporting ``OperationProgress/Phase/writing`` as it goes.
    ///
    /// For an import of any size: one call, one commit, and a cancelled task leaves the
    /// collection as it was.
    ///
    /// - Throws: as `upsert(_:)`, with `row` in the context naming the position of the
    ///   offending row; `cancelled` when the task was cancelled before the commit.
    public func upsert(_ rows: [Row], onProgress: (@Sendable (OperationProgress) -> Void)? = nil) async throws {
        let control = OperationControl(onProgress: onProgress)
        try await WorkerThreads.shared.run(control: control) { try self.upsert(rows, control: control) }
    }

    /// The bulk upsert: rows validated, then written in chunks inside one write transaction,
    /// checking for cancellation between chunks.
    func upsert(_ rows: [Row], control: OperationControl) throws {
        // Multi-vector collections take token sets (`upsert(documents:)`), as in the synchronous form.
        try rejectSingleVectorWrite()
        var prepared: [PreparedRow] = []
        prepared.reserveCapacity(rows.count)
        for (i, r) in rows.enumerated() {
            if i & 4095 == 0 { try control.checkCancellation("the upsert") }
            prepared.append(try prepare(r, position: i))
        }
        try store.env.write { txn in
            control.begin(.writing, total: prepared.count)
            var start = 0
            while start < prepared.count {
                try control.checkCancellation("the upsert")
                let end = min(prepared.count, start + 4096)
                try write(Array(prepared[start..<end]), txn)
                start = end
                control.report(start)
            }
            try control.checkCancellation("the upsert")
        }
        control.finishPhase()
    }

    /// Deletes a row; returns whether it existed.
    ///
    /// - Throws: `notFound` (collection dropped), storage errors, `cancelled` before it started.
    @discardableResult
    public func delete(_ id: UInt64) async throws -> Bool {
        try await store.run { try self.delete(id) }
    }

    /// Deletes rows in one transaction; returns how many existed.
    ///
    /// - Throws: `notFound` (collection dropped), storage errors, `cancelled` before it started.
    @discardableResult
    public func delete(_ ids: [UInt64]) async throws -> Int {
        try await store.run { try self.delete(ids) }
    }

    // MARK: Reads

    /// The row with external id `id`, or nil.
    ///
    /// - Throws: `notFound` (collection dropped), `corrupted`, storage errors.
    public func get(_ id: UInt64) async throws -> Record? {
        try await store.run { try self.get(id) }
    }

    /// The number of live rows.
    ///
    /// - Throws: `notFound` (collection dropped), storage errors.
    public func count() async throws -> Int {
        try await store.run { try self.count() }
    }

    /// The exact number of live rows matching `filter` (from the attribute indexes).
    ///
    /// - Throws: `unknownAttribute` or `typeMismatch` for a filter that does not bind to the
    ///   schema, `notFound`, storage errors.
    public func count(where filter: Filter?) async throws -> Int {
        try await store.run { try self.count(where: filter) }
    }

    /// The `k` nearest live rows satisfying `filter`, sorted by (distance, id) — see
    /// `search(_:k:filter:options:)`.
    ///
    /// - Throws: `invalidArgument` (k < 1, bad options, zero vector under cosine),
    ///   `dimensionMismatch`, `nonFiniteValue`, `unknownAttribute` or `typeMismatch` for the
    ///   filter, `notFound`, storage errors, `cancelled` before it started.
    public func search(_ vector: [Float], k: Int, filter: Filter? = nil, options: SearchOptions = SearchOptions()) async throws -> [SearchResult] {
        try await store.run { try self.search(vector, k: k, filter: filter, options: options) }
    }

    /// Answers many queries; result `i` belongs to `queries[i]` (see
    /// `search(_:options:)`), reporting ``OperationProgress/Phase/searching``.
    ///
    /// The batch is planned and executed in one snapshot, as the synchronous form; progress is
    /// reported as work items finish and cancellation is checked before each item is claimed.
    ///
    /// - Throws: as `search(_:k:filter:options:)`, with `query` in the context;
    ///   `cancelled` when the task was cancelled before the last chunk finished.
    public func search(_ queries: [Query], options: SearchOptions = SearchOptions(),
                       onProgress: (@Sendable (OperationProgress) -> Void)? = nil) async throws -> [[SearchResult]] {
        let control = OperationControl(onProgress: onProgress)
        return try await WorkerThreads.shared.run(control: control) { try self.search(queries, options: options, control: control) }
    }

    func search(_ queries: [Query], options: SearchOptions, control: OperationControl) throws -> [[SearchResult]] {
        try control.checkCancellation("the batch search")
        return try execute(queries, options: options, profile: false, control: control).results
    }

    /// Runs one search and reports its plan, estimates and time per stage.
    ///
    /// - Throws: as `search(_:k:filter:options:)`.
    public func explainSearch(_ vector: [Float], k: Int, filter: Filter? = nil, options: SearchOptions = SearchOptions()) async throws -> SearchExplanation {
        try await store.run { try self.explainSearch(vector, k: k, filter: filter, options: options) }
    }

    // MARK: Long operations

    /// Builds the recipe's indexes (see ``buildIndex(threads:progress:)``) off the calling
    /// task's thread, reporting typed progress.
    ///
    /// Cancelling the task stops the build at the next check (every few thousand rows, and
    /// between chunks of the graph build) with `cancelled`; until the build commits, the store
    /// is left exactly as it was. Once committed, the cost model is measured and the call
    /// returns normally even if the task was cancelled meanwhile.
    ///
    /// - Throws: as ``buildIndex(threads:progress:)``; `cancelled`.
    public func buildIndex(threads: Int? = nil, onProgress: (@Sendable (OperationProgress) -> Void)? = nil) async throws {
        let control = OperationControl(onProgress: onProgress)
        try await WorkerThreads.shared.run(control: control) { try self.buildIndex(threads: threads, control: control) }
    }

    /// Re-lays the collection out for `workload` (see
    /// ``partition(workload:maxPartitions:minRows:cells:queryVectors:probes:threads:progress:)``)
    /// off the calling task's thread, reporting typed progress.
    ///
    /// Cancelling the task stops it with `cancelled`, leaving the store exactly as it was,
    /// at any point until the rewritten rows commit (training cells, placing rows, building the
    /// new graph in memory and rewriting the rows all come before). After that, storing the
    /// graph and measuring the cost model run to their end and the call returns the layout.
    ///
    /// - Throws: as ``partition(workload:maxPartitions:minRows:cells:queryVectors:probes:threads:progress:)``;
    ///   `cancelled`.
    @discardableResult
    public func partition(workload: [Filter?], maxPartitions: Int = 64, minRows: Int? = nil,
                          cells: Int = 0, queryVectors: [[Float]]? = nil, probes: Int = 1,
                          threads: Int? = nil, onProgress: (@Sendable (OperationProgress) -> Void)? = nil) async throws -> PartitionLayout {
        let control = OperationControl(onProgress: onProgress)
        return try await WorkerThreads.shared.run(control: control) {
            try self.partition(workload: workload, maxPartitions: maxPartitions, minRows: minRows, cells: cells,
                               queryVectors: queryVectors, probes: probes, threads: threads, control: control)
        }
    }

    /// Measures the planner's cost model on this machine and stores it (see `calibrate()`).
    ///
    /// - Throws: `notFound`, storage errors, `cancelled` before it started.
    @discardableResult
    public func calibrate(queries: [[Float]]? = nil) async throws -> CostModel {
        try await store.run { try self.calibrate(queries: queries) }
    }
}

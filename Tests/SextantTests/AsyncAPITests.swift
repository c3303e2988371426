import Foundation
import Testing
@testable import Sextant
import SextantTestSupport

/// Cancels a task from inside a progress handler: the handler may run before the task handle
/// is stored, so a request made early is honoured when the handle arrives.
final class TaskCanceller: @unchecked Sendable {
    private let lock = NSLock()
    private var task: Task<Void, any Error>?
    private var requested = false
    private(set) var requestedAt: OperationProgress?

    func set(_ t: Task<Void, any Error>) {
        lock.lock(); task = t; let now = requested; lock.unlock()
        if now { t.cancel() }
    }

    func cancel(at p: OperationProgress) {
        lock.lock()
        if requested { lock.unlock(); return }
        requested = true
        requestedAt = p
        let t = task
        lock.unlock()
        t?.cancel()
    }

    var wasRequested: Bool { lock.lock(); defer { lock.unlock() }; return requested }
}

/// Thread-safe list of progress values (handlers run on Sextant's threads).
final class ProgressLog: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [OperationProgress] = []
    private var threads: [Bool] = []

    func add(_ p: OperationProgress) {
        let onWorker = WorkerThreads.isWorkerThread
        lock.lock(); values.append(p); threads.append(onWorker); lock.unlock()
    }

    var all: [OperationProgress] { lock.lock(); defer { lock.unlock() }; return values }
    /// Whether every value was delivered on one of Sextant's threads.
    var allOnWorkerThreads: Bool { lock.lock(); defer { lock.unlock() }; return !threads.isEmpty && threads.allSatisfy { $0 } }
}

/// What a test compares to see that a store did not change: every row (dumped), the check
/// report, the index state, the layout and the results of some searches.
struct StoreContent: Equatable {
    var rows: [String]
    var problems: [String]
    var rowsChecked: Int
    var index: IndexStatus
    var partitions: Int?
    var results: [[SearchResult]]
    var exactResults: [[SearchResult]]

    init(_ c: VectorCollection, queries: [[Float]], filter: Filter?) throws {
        rows = try snapshot(c)
        let report = try c.store.check(deep: true)
        problems = report.problems
        rowsChecked = report.rowsChecked
        index = try c.indexStatus()
        partitions = try c.partitionLayout()?.leaves.count
        // Approximate plans forced (the planner's choice may learn from earlier runs).
        var approximate = SearchOptions(exact: true)
        if index.graphBuilt { approximate = SearchOptions(plan: .filteredGraph) } else if index.codesTrained { approximate = SearchOptions(plan: .codes) }
        results = try queries.map { try c.search($0, k: 10, filter: filter, options: approximate) }
        exactResults = try queries.map { try c.search($0, k: 10, filter: filter, options: SearchOptions(exact: true)) }
    }
}

@Suite struct AsyncAPITests {
    static let data = SyntheticDataset(rows: 3000, dimension: 16, queries: 12, clusters: 12, seed: 11)

    static func rows(_ range: Range<Int>) -> [Row] {
        range.map { Row(id: UInt64($0), vector: data.vector($0), attributes: data.attributes[$0]) }
    }

    static var queries: [[Float]] { (0..<data.queryCount).map { data.query($0) } }

    @Test func asyncCallsRunOnSextantThreads() async throws {
        let store = try await Store.open(path: temporaryStorePath())
        defer { store.close() }
        let c = try await store.createCollection("c", dimension: 16, metric: .l2, schema: SyntheticDataset.schema)
        let before = WorkerThreads.shared.jobsCompleted
        let log = ProgressLog()
        try await c.upsert(Self.rows(0..<500), onProgress: log.add)
        #expect(log.allOnWorkerThreads)
        #expect(try await store.run { WorkerThreads.isWorkerThread })
        #expect(!WorkerThreads.isWorkerThread)
        let hits = try await c.search(Self.data.query(0), k: 5, filter: Attr("date") >= 20200101)
        #expect(hits == (try await c.search(Self.data.query(0), k: 5, filter: Attr("date") >= 20200101)))
        #expect(try await c.count() == 500)
        #expect(try await c.count(where: Attr("in_stock") == true) == (try await c.count(where: Attr("in_stock") == true)))
        #expect(try await c.get(7) == (try await c.get(7)))
        #expect(try await c.delete([1, 2, 3, 100_000]) == 3)
        // Every call above went through the pool.
        #expect(WorkerThreads.shared.jobsCompleted >= before + 8)
    }

    /// The work of an async call runs while every thread of the cooperative pool is blocked:
    /// the work itself waits until blockers hold all of them (as many as there are cores, the
    /// pool's width), then releases them. Work that needed a cooperative thread could not run,
    /// and the test would fail at the deadlock guard.
    ///
    /// Blocking the whole pool stalls every other test of a parallel run, so this one runs on
    /// its own: `Scripts/test.sh` runs it after the suite with `SEXTANT_POOL_TEST=1`.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["SEXTANT_POOL_TEST"] != nil, "run alone by Scripts/test.sh (SEXTANT_POOL_TEST=1)"),
          .timeLimit(.minutes(20)))
    func asyncWorkRunsWhileTheCooperativePoolIsBlocked() async throws {
        let store = try Store(path: temporaryStorePath())
        defer { store.close() }
        let c = try await store.createCollection("c", dimension: 16, metric: .l2, schema: SyntheticDataset.schema)
        try await c.upsert(Self.rows(0..<1000))
        let width = ProcessInfo.processInfo.activeProcessorCount
        let blocked = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let started = ManagedFlag()
        let sawAllBlocked = ManagedFlag()
        let expected = try await c.search(Self.data.query(1), k: 5)
        async let hits: [SearchResult] = c.search([Query(vector: Self.data.query(1), k: 5)], onProgress: { p in
            guard p.done == 0 else { return }
            started.set()
            // Deadlock guard, not a timing check: other tests' synchronous bodies may hold
            // cooperative threads for a while before the blockers get them all.
            var all = true
            for _ in 0..<width where blocked.wait(timeout: .now() + 600) == .timedOut { all = false }
            if all { sawAllBlocked.set() }
            for _ in 0..<width { release.signal() }
        })[0]
        while !started.isSet { await Task.yield() }
        for _ in 0..<width {
            Task.detached {
                blocked.signal()
                _ = release.wait(timeout: .now() + 900)
            }
        }
        #expect(try await hits == expected)
        #expect(sawAllBlocked.isSet)
    }

    @Test func cancelledBeforeStartingDoesNothing() async throws {
        let store = try Store(path: temporaryStorePath())
        defer { store.close() }
        let c = try await store.createCollection("c", dimension: 16, metric: .l2, schema: SyntheticDataset.schema)
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await c.upsert(Self.rows(0..<10))
        }
        let error = await #expect(throws: SextantError.self) { try await task.value }
        #expect(error?.code == .cancelled)
        #expect(try await c.count() == 0)
    }

    // MARK: Cancellation mid-way leaves the store as it was

    /// Runs `operation` in a task cancelled when `when` first holds for a progress value, and
    /// checks that it failed with `cancelled` and that the collection is as before.
    static func expectCancelledWithoutChange(
        _ c: VectorCollection, filter: Filter? = nil,
        when: @escaping @Sendable (OperationProgress) -> Bool,
        _ operation: @escaping @Sendable (@escaping @Sendable (OperationProgress) -> Void) async throws -> Void
    ) async throws {
        let before = try StoreContent(c, queries: queries, filter: filter)
        let canceller = TaskCanceller()
        let log = ProgressLog()
        let task = Task {
            try await operation { p in
                log.add(p)
                if when(p) { canceller.cancel(at: p) }
            }
        }
        canceller.set(task)
        let error = await #expect(throws: SextantError.self) { try await task.value }
        #expect(canceller.wasRequested, "the phase was never reached: \(log.all.map(\.phase.name))")
        #expect(error?.code == .cancelled, "\(String(describing: error))")
        let after = try StoreContent(c, queries: queries, filter: filter)
        #expect(after == before, "cancelled at \(String(describing: canceller.requestedAt))")
        #expect(after.problems.isEmpty)
    }

    static func phaseBegins(_ phase: OperationProgress.Phase) -> @Sendable (OperationProgress) -> Bool {
        { $0.phase == phase }
    }

    @Test(arguments: [("reading", 1), ("training", 2), ("reading", 3), ("linking", 4), ("storing", 5), ("encoding", 6)])
    func cancelIndexBuild(phase: String, step: Int) async throws {
        let store = try Store(path: temporaryStorePath("cancel-index-\(phase)-\(step)"))
        defer { store.close() }
        let c = try await store.createCollection("c", dimension: 16, metric: .l2, schema: SyntheticDataset.schema, indexRecipe: "HNSW8_32,PQ4x4,Refine")
        try await c.upsert(Self.rows(0..<1200))
        // An index already built: a cancelled rebuild must leave this one in place.
        try await c.buildIndex(threads: 2)
        try await c.upsert(Self.rows(1200..<1500))
        try await Self.expectCancelledWithoutChange(c, when: { $0.phase.name == phase && $0.step == step }) { handler in
            try await c.buildIndex(threads: 2, onProgress: handler)
        }
        // And the same build, not cancelled, then succeeds.
        try await c.buildIndex(threads: 2)
        #expect(try await store.check().isConsistent)
    }

    @Test(arguments: ["reading", "training", "placing", "writing", "storing"])
    func cancelPartition(phase: String) async throws {
        let store = try Store(path: temporaryStorePath("cancel-partition-\(phase)"))
        defer { store.close() }
        let c = try await store.createCollection("c", dimension: 16, metric: .l2, schema: SyntheticDataset.schema, indexRecipe: "HNSW8_32")
        try await c.upsert(Self.rows(0..<1500))
        try await c.buildIndex(threads: 2)
        let workload: [Filter?] = [Attr("category") == "cat0", Attr("date") >= 20200101, Attr("in_stock") == true, nil]
        let filter: Filter = Attr("date") >= 20200101
        try await Self.expectCancelledWithoutChange(c, filter: filter, when: { $0.phase.name == phase }) { handler in
            try await c.partition(workload: workload, maxPartitions: 8, minRows: 100, cells: 16, threads: 2, onProgress: handler)
        }
        let layout = try await c.partition(workload: workload, maxPartitions: 8, minRows: 100, cells: 16, threads: 2)
        #expect(layout.leaves.count >= 2)
        #expect(try await store.check().isConsistent)
    }

    @Test func cancelBatch() async throws {
        let store = try Store(path: temporaryStorePath())
        defer { store.close() }
        let c = try await store.createCollection("c", dimension: 16, metric: .l2, schema: SyntheticDataset.schema)
        try await c.upsert(Self.rows(0..<500))
        let n = 4096 * 3
        // Distinct vectors (identical queries would be answered at once, not item by item).
        let queries = (0..<n).map { i -> Query in
            var v = Self.data.query(i % Self.data.queryCount)
            v[0] += Float(i) * 1e-3
            return Query(vector: v, k: 5, filter: i % 2 == 0 ? nil : Attr("in_stock") == true)
        }
        // Cancelled once some work items are done.
        try await Self.expectCancelledWithoutChange(c, when: { $0.done > 0 && $0.done < $0.total }) { handler in
            _ = try await c.search(queries, onProgress: handler)
        }
        // Not cancelled: the batch answers like the synchronous one.
        let all = try await c.search(queries)
        #expect(all.count == n)
        let sync = try await c.search(Array(queries.prefix(50)))
        #expect(Array(all.prefix(50)) == sync)
        #expect(all[4096 + 1] == (try await c.search([queries[4096 + 1]])[0]))
    }

    @Test func cancelImport() async throws {
        let store = try Store(path: temporaryStorePath())
        defer { store.close() }
        let c = try await store.createCollection("c", dimension: 16, metric: .l2, schema: SyntheticDataset.schema, indexRecipe: "HNSW8_32")
        try await c.upsert(Self.rows(0..<300))
        try await c.buildIndex(threads: 1)
        let big = (0..<(2 * 4096 + 100)).map { i in
            Row(id: UInt64(100 + i), vector: Self.data.vector(i % 3000), attributes: Self.data.attributes[i % 3000])
        }
        try await Self.expectCancelledWithoutChange(c, when: { $0.phase == .writing && $0.done > 0 && $0.done < $0.total }) { handler in
            try await c.upsert(big, onProgress: handler)
        }
        try await c.upsert(big)
        #expect(try await c.count() == 100 + big.count)
    }

    /// The async bulk upsert refuses plain rows for a multi-vector collection, like the
    /// synchronous one.
    @Test func bulkUpsertRefusesPlainRowsForMultiVectorCollections() async throws {
        let store = try Store(path: temporaryStorePath())
        defer { store.close() }
        let c = try store.createMultiVectorCollection("docs", fde: testFDE(8), tokenStorage: .float32,
                                                      schema: MultiVectorDataset.schema, indexRecipe: "Flat")
        let error = await #expect(throws: SextantError.self) {
            try await c.upsert([Row(id: 1, vector: Array(repeating: 1, count: c.dimension))], onProgress: { _ in })
        }
        #expect(error?.code == .invalidArgument)
        #expect(try await c.count() == 0)
    }

    @Test func errorsOfBatchesNameTheQueryInTheWholeBatch() async throws {
        let store = try Store(path: temporaryStorePath())
        defer { store.close() }
        let c = try await store.createCollection("c", dimension: 4, metric: .l2)
        try await c.upsert(Row(id: 1, vector: [1, 2, 3, 4]))
        var queries = Array(repeating: Query(vector: [0, 0, 0, 0], k: 1), count: 4096 + 10)
        queries[4096 + 3] = Query(vector: [0, 0, 0], k: 1)
        let error = await #expect(throws: SextantError.self) { _ = try await c.search(queries) }
        #expect(error?.code == .dimensionMismatch)
        #expect(error?.context["query"] == String(4096 + 3))
    }
}

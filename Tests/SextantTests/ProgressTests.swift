import Foundation
import Testing
@testable import Sextant
import SextantTestSupport

/// Progress of long operations: within each phase `done` never decreases, never exceeds
/// `total` and ends at `total`; phases advance in steps; values arrive through a handler or an
/// `AsyncSequence`.
@Suite struct ProgressTests {
    static let data = AsyncAPITests.data

    /// Checks the contract on a sequence of values and returns the phases seen, in order.
    @discardableResult
    static func expectWellFormed(_ values: [OperationProgress], sourceLocation: SourceLocation = #_sourceLocation) -> [String] {
        #expect(!values.isEmpty, sourceLocation: sourceLocation)
        var phases: [String] = []
        var previous: OperationProgress? = nil
        for v in values {
            #expect(v.done >= 0 && v.done <= v.total, "\(v)", sourceLocation: sourceLocation)
            #expect(v.step >= 1 && v.step <= v.steps, "\(v)", sourceLocation: sourceLocation)
            #expect(v.fraction >= 0 && v.fraction <= 1, sourceLocation: sourceLocation)
            #expect(v.rate >= 0 && v.elapsed >= 0, sourceLocation: sourceLocation)
            if let p = previous, p.step == v.step {
                #expect(p.phase == v.phase, sourceLocation: sourceLocation)
                #expect(v.done >= p.done, "went back: \(p) then \(v)", sourceLocation: sourceLocation)
                #expect(v.total == p.total, sourceLocation: sourceLocation)
            } else {
                if let p = previous {
                    // A phase ends at its total before the next begins.
                    #expect(p.done == p.total, "phase \(p.phase) ended at \(p.done)/\(p.total)", sourceLocation: sourceLocation)
                    #expect(v.step == p.step + 1, sourceLocation: sourceLocation)
                }
                phases.append(v.phase.name)
            }
            previous = v
        }
        if let last = previous {
            #expect(last.done == last.total, "ended at \(last)", sourceLocation: sourceLocation)
            #expect(last.step == last.steps, "ended at step \(last.step) of \(last.steps)", sourceLocation: sourceLocation)
            #expect(last.estimatedSecondsRemaining == 0, sourceLocation: sourceLocation)
        }
        return phases
    }

    @Test func indexBuildReportsEveryPhase() async throws {
        let store = try Store(path: temporaryStorePath())
        defer { store.close() }
        let c = try await store.createCollection("c", dimension: 16, metric: .cosine, schema: SyntheticDataset.schema, indexRecipe: "HNSW8_32,PQ4x8")
        try await c.upsert(AsyncAPITests.rows(0..<1500))
        let log = ProgressLog()
        try await c.buildIndex(threads: 2, onProgress: log.add)
        let phases = Self.expectWellFormed(log.all)
        #expect(phases == ["reading", "training", "reading", "linking", "storing", "encoding", "calibrating"])
        #expect(log.all.contains { $0.phase == .linking && $0.total == 1500 })
        // The synchronous form with typed progress reports the same phases.
        let sync = ProgressLog()
        try await c.buildIndex(threads: 1, onProgress: sync.add)
        #expect(Self.expectWellFormed(sync.all) == phases)
        // And the log-line form still gets its lines.
        nonisolated(unsafe) var lines: [String] = []
        try c.buildIndex(threads: 1) { lines.append($0) }
        #expect(lines.contains { $0.hasPrefix("building HNSW8") })
    }

    @Test func partitionReportsEveryPhase() async throws {
        let store = try Store(path: temporaryStorePath())
        defer { store.close() }
        let c = try await store.createCollection("c", dimension: 16, metric: .l2, schema: SyntheticDataset.schema, indexRecipe: "HNSW8_32")
        try await c.upsert(AsyncAPITests.rows(0..<3000))
        try await c.buildIndex(threads: 1)
        let log = ProgressLog()
        let layout = try await c.partition(workload: [Attr("category") == "cat0", Attr("date") >= 20200101, nil],
                                           maxPartitions: 8, minRows: 100, cells: 16, threads: 2, onProgress: log.add)
        #expect(layout.leaves.count >= 2)
        let phases = Self.expectWellFormed(log.all)
        #expect(phases == ["reading", "training", "placing", "writing", "storing", "calibrating"])
        #expect(log.all.contains { $0.phase == .writing && $0.done == 3000 })
    }

    @Test func batchAndUpsertReportQueriesAndRows() async throws {
        let store = try Store(path: temporaryStorePath())
        defer { store.close() }
        let c = try await store.createCollection("c", dimension: 16, metric: .l2, schema: SyntheticDataset.schema)
        let rows = (0..<9000).map { i in Row(id: UInt64(i), vector: Self.data.vector(i % 3000), attributes: Self.data.attributes[i % 3000]) }
        let writes = ProgressLog()
        try await c.upsert(rows, onProgress: writes.add)
        #expect(Self.expectWellFormed(writes.all) == ["writing"])
        #expect(writes.all.filter { $0.done > 0 && $0.done < 9000 }.count >= 1)
        let searches = ProgressLog()
        let queries = (0..<(4096 + 7)).map { Query(vector: Self.data.query($0 % 12), k: 3) }
        let results = try await c.search(queries, onProgress: searches.add)
        #expect(results.count == queries.count)
        #expect(Self.expectWellFormed(searches.all) == ["searching"])
        #expect(searches.all.last?.total == queries.count)
    }

    @Test func progressAsAnAsyncSequence() async throws {
        let store = try Store(path: temporaryStorePath())
        defer { store.close() }
        let c = try await store.createCollection("c", dimension: 16, metric: .l2, schema: SyntheticDataset.schema, indexRecipe: "HNSW8_32")
        try await c.upsert(AsyncAPITests.rows(0..<1000))
        let (updates, handler, finish) = OperationProgress.stream(bufferingNewest: 1000)
        async let values: [OperationProgress] = {
            var out: [OperationProgress] = []
            for await p in updates { out.append(p) }
            return out
        }()
        try await c.buildIndex(threads: 2, onProgress: handler)
        finish()
        let seen = await values
        #expect(Self.expectWellFormed(seen) == ["reading", "linking", "storing", "calibrating"])
    }

    @Test func describesItself() {
        let p = OperationProgress(phase: .linking, done: 50, total: 200, rate: 25, elapsed: 2, step: 2, steps: 4)
        #expect(p.fraction == 0.25)
        #expect(p.estimatedSecondsRemaining == 6)
        #expect(p.description == "[2/4] linking 50/200 rows (25%, 25 rows/s, ETA 6 s)")
        #expect(OperationProgress(phase: .reading, done: 0, total: 0, rate: 0, elapsed: 0).fraction == 1)
        #expect(OperationProgress(phase: .reading, done: 0, total: 10, rate: 0, elapsed: 0).estimatedSecondsRemaining == nil)
    }

    /// The reporter keeps values monotonic when a phase starts over (a write retried after map
    /// growth) and clamps them to the total.
    @Test func reporterIsMonotonic() {
        let log = ProgressLog()
        let control = OperationControl(onProgress: log.add)
        control.begin(.writing, total: 100)
        control.report(60, force: true)
        control.begin(.writing, total: 100)   // the same phase again
        control.report(10, force: true)
        control.report(500)
        control.begin(.linking, total: 5)
        control.finishPhase()
        let phases = Self.expectWellFormed(log.all)
        #expect(phases == ["writing", "linking"])
        #expect(log.all.map(\.done) == [0, 60, 60, 60, 100, 0, 5])
    }

    /// Concurrent workers adding fractions of units: the values delivered stay in order and
    /// the phase ends at its total.
    @Test func concurrentAdvancesStayMonotonic() {
        let log = ProgressLog()
        let control = OperationControl(onProgress: log.add)
        control.begin(.searching, total: 1000)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<1000 { control.advance(by: 0.25) }
        }
        control.finishPhase()
        Self.expectWellFormed(log.all)
        #expect(log.all.last?.done == 1000)
    }
}

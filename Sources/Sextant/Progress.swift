import Foundation

/// How far a long operation has come: the phase it is in, the units of that phase done out of
/// its total, and the rate so far.
///
/// Long operations (`VectorCollection.buildIndex(threads:onProgress:)`,
/// `VectorCollection.partition(workload:maxPartitions:minRows:cells:queryVectors:probes:threads:onProgress:)`,
/// batch searches and bulk upserts) call a `@Sendable` handler with these values, from the
/// thread doing the work; ``OperationProgress/stream(bufferingNewest:)`` turns the handler into an
/// `AsyncSequence`. Within one phase, ``done`` never decreases, never exceeds ``total``, and the
/// last value of every phase has `done == total`. Phases follow each other in the order the
/// operation runs them; ``step`` and ``steps`` say where that phase sits.
///
/// Named `OperationProgress` so that it does not collide with Foundation's `Progress`.
public struct OperationProgress: Sendable, Equatable, CustomStringConvertible {
    /// A stage of a long operation. Open like `SextantError.Code`: match on the constants.
    public struct Phase: Hashable, Sendable, CustomStringConvertible {
        /// A stable name, also used in the CLI's `--json` progress lines.
        public let name: String
        /// What is counted in this phase (`rows`, `queries`, `vectors`, ...).
        public let unit: String
        /// A phase named `name` counting `unit`s (the constants below cover the engine's phases).
        public init(_ name: String, unit: String) {
            self.name = name
            self.unit = unit
        }
        /// The phase's name.
        public var description: String { name }

        /// Writing rows (a bulk upsert or an import).
        public static let writing = Phase("writing", unit: "rows")
        /// Reading rows to train on or to rewrite.
        public static let reading = Phase("reading", unit: "rows")
        /// Training PQ codebooks or k-means cells (counted in training runs).
        public static let training = Phase("training", unit: "steps")
        /// Encoding every row with freshly trained codebooks.
        public static let encoding = Phase("encoding", unit: "rows")
        /// Linking rows into a new HNSW graph.
        public static let linking = Phase("linking", unit: "rows")
        /// Storing a built graph.
        public static let storing = Phase("storing", unit: "rows")
        /// Placing rows into partitions (and vector cells).
        public static let placing = Phase("placing", unit: "rows")
        /// Measuring the planner's cost model.
        public static let calibrating = Phase("calibrating", unit: "steps")
        /// Answering the queries of a batch.
        public static let searching = Phase("searching", unit: "queries")
    }

    /// The current phase.
    public var phase: Phase
    /// Units of the phase done so far (`0...total`).
    public var done: Int
    /// Units the phase has in all.
    public var total: Int
    /// Units per second since the phase began (0 until measurable).
    public var rate: Double
    /// Seconds since the phase began.
    public var elapsed: Double
    /// The phase's position among the operation's phases, from 1.
    public var step: Int
    /// How many phases the operation runs (as far as known when it started).
    public var steps: Int

    /// A progress value (operations make these; tests and custom progress displays may too).
    public init(phase: Phase, done: Int, total: Int, rate: Double, elapsed: Double, step: Int = 1, steps: Int = 1) {
        self.phase = phase
        self.done = done
        self.total = total
        self.rate = rate
        self.elapsed = elapsed
        self.step = step
        self.steps = steps
    }

    /// `done / total` in `0...1` (1 for an empty phase).
    public var fraction: Double { total > 0 ? min(1, Double(done) / Double(total)) : 1 }

    /// Seconds left in this phase at the current rate; nil until a rate is known.
    public var estimatedSecondsRemaining: Double? {
        guard done >= total || rate > 0 else { return nil }
        return done >= total ? 0 : Double(total - done) / rate
    }

    /// Whether this is the last value of its phase.
    public var isPhaseComplete: Bool { done >= total }

    /// One line for a log: step, phase, done of total, percentage, rate and ETA.
    public var description: String {
        var s = "[\(step)/\(steps)] \(phase.name) \(done)/\(total) \(phase.unit)"
        s += String(format: " (%.0f%%", fraction * 100)
        if rate > 0 { s += String(format: ", %.0f %@/s", rate, phase.unit) }
        if let eta = estimatedSecondsRemaining, done < total { s += String(format: ", ETA %.0f s", eta) }
        return s + ")"
    }

    /// A handler and the `AsyncSequence` of the values given to it: pass `handler` as an
    /// operation's `onProgress` and iterate `updates` in another task. The stream finishes when
    /// `finish` is called (or the handler and stream are released); values arriving faster than
    /// they are read are dropped except the newest few, so a slow reader never slows the work.
    public static func stream(bufferingNewest limit: Int = 16) -> (
        updates: AsyncStream<OperationProgress>, handler: @Sendable (OperationProgress) -> Void, finish: @Sendable () -> Void
    ) {
        let (stream, continuation) = AsyncStream<OperationProgress>.makeStream(bufferingPolicy: .bufferingNewest(max(1, limit)))
        return (stream, { continuation.yield($0) }, { continuation.finish() })
    }
}

import Foundation

/// What a long operation reports to and checks with its caller: a cancellation flag (set by
/// the awaiting task's cancellation handler, read by the working threads), the typed progress
/// handler, and the log-line handler of the synchronous API.
///
/// Progress values are throttled (at most one per 50 ms per phase, plus the first and the last
/// of every phase) and kept monotonic: a write retried after map growth starts its phase over,
/// but the values reported do not go back.
final class OperationControl: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false
    private let handler: (@Sendable (OperationProgress) -> Void)?
    private let log: ((String) -> Void)?
    private var phase: OperationProgress.Phase?
    private var phaseStart = 0.0
    private var lastReport = 0.0
    private var lastDone = -1
    private var lastTotal = 0
    private var step = 0
    private var steps: Int
    /// Values are numbered as they are made and handed over in that order under
    /// `delivery` (build threads report concurrently); a value overtaken by a newer one is
    /// dropped. `delivery` is never held while taking `lock`'s side: a handler may cancel.
    private var made = 0
    private let delivery = NSLock()
    private var delivered = 0

    /// - Parameters:
    ///   - steps: how many phases the operation expects to run (for ``OperationProgress/steps``).
    init(steps: Int = 1, onProgress: (@Sendable (OperationProgress) -> Void)? = nil, log: ((String) -> Void)? = nil) {
        self.steps = max(1, steps)
        self.handler = onProgress
        self.log = log
    }

    /// Nothing to report to, nothing to cancel.
    static var silent: OperationControl { OperationControl() }

    // MARK: Cancellation

    func cancel() {
        lock.lock(); cancelled = true; lock.unlock()
    }

    var isCancelled: Bool {
        lock.lock(); defer { lock.unlock() }
        return cancelled
    }

    /// Throws `SextantError.Code.cancelled` once cancelled. Call only where throwing leaves
    /// the store as it was (inside a write transaction, which then aborts, or before one).
    func checkCancellation(_ what: @autoclosure () -> String = "the operation") throws(SextantError) {
        if isCancelled { throw SextantError(.cancelled, "\(what()) was cancelled; nothing was changed") }
    }

    // MARK: Progress

    /// A free-form line for the synchronous API's `progress` closure.
    func note(_ line: @autoclosure () -> String) {
        log?(line())
    }

    /// Declares more phases than expected at the start (for example when a step turns out to
    /// need a graph rebuild).
    func expect(steps n: Int) {
        lock.lock(); steps = max(steps, n); lock.unlock()
    }

    /// Enters `phase` (a new step unless it is the current phase) and reports `done` of `total`.
    func begin(_ phase: OperationProgress.Phase, total: Int) {
        lock.lock()
        if self.phase != phase {
            self.phase = phase
            step += 1
            if step > steps { steps = step }
            phaseStart = monotonicSeconds()
            lastDone = -1
            lastReport = 0
        }
        lastTotal = max(0, total)
        lock.unlock()
        report(0, force: true)
    }

    /// Reports `done` units of the current phase (clamped to be monotonic and ≤ total).
    func report(_ done: Int, force: Bool = false) {
        guard let handler else { return }
        lock.lock()
        guard let phase else { lock.unlock(); return }
        let now = monotonicSeconds()
        let d = min(max(done, lastDone, 0), lastTotal)
        let complete = d >= lastTotal
        // The first value, the last, and at most one per 50 ms in between.
        guard force || complete || now - lastReport >= 0.05, d != lastDone || force else {
            lock.unlock()
            return
        }
        if d == lastDone && !force { lock.unlock(); return }
        lastDone = d
        lastReport = now
        let elapsed = now - phaseStart
        let value = OperationProgress(phase: phase, done: d, total: lastTotal, rate: elapsed > 1e-3 ? Double(d) / elapsed : 0,
                                      elapsed: elapsed, step: step, steps: steps)
        made += 1
        let number = made
        lock.unlock()
        delivery.lock()
        if number > delivered {
            delivered = number
            handler(value)
        }
        delivery.unlock()
    }

    /// Reports the current phase complete.
    func finishPhase() { report(Int.max) }

    /// Runs a phase of `total` units with no finer reports than its start and end.
    func phase<T>(_ p: OperationProgress.Phase, total: Int = 1, _ body: () throws -> T) rethrows -> T {
        begin(p, total: total)
        let r = try body()
        finishPhase()
        return r
    }
}

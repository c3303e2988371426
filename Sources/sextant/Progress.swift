import Foundation
import Sextant

/// Renders the engine's ``OperationProgress`` values on stderr: a bar with the phase, fraction,
/// rate and ETA on a terminal (one line per phase), NDJSON lines with `--json`, and one summary
/// line per finished phase otherwise (logs stay readable when stderr is a file).
///
/// Thread-safe: long operations call ``update(_:)`` from their own threads.
final class ProgressBar: @unchecked Sendable {
    let json: Bool
    let tty: Bool
    private let lock = NSLock()
    private var lastDraw = 0.0
    private var current: OperationProgress?
    private var drawn: OperationProgress?
    private var lineOpen = false

    init(json: Bool) {
        self.json = json
        self.tty = Console.stderrIsTTY
    }

    /// The handler to pass as an operation's `onProgress`.
    var handler: @Sendable (OperationProgress) -> Void { { [self] in update($0) } }

    func update(_ p: OperationProgress) {
        lock.lock(); defer { lock.unlock() }
        let now = Date().timeIntervalSinceReferenceDate
        let newPhase = current.map { $0.phase != p.phase || $0.step != p.step } ?? true
        if newPhase, let previous = current, drawn != previous { draw(previous) }
        if newPhase { endLine() }
        current = p
        guard newPhase || p.isPhaseComplete || now - lastDraw >= (json ? 1.0 : 0.1) else { return }
        lastDraw = now
        draw(p)
    }

    /// Draws the last value if it was not drawn, and ends the line.
    func finish() {
        lock.lock(); defer { lock.unlock() }
        if let current, drawn != current { draw(current) }
        endLine()
    }

    private func endLine() {
        if lineOpen { FileHandle.standardError.write(Data("\n".utf8)) }
        lineOpen = false
    }

    private func draw(_ p: OperationProgress) {
        drawn = p
        let eta = p.estimatedSecondsRemaining
        let stepText = p.steps > 1 ? "[\(p.step)/\(p.steps)] " : ""
        if json {
            Console.err("{\"phase\":\"\(p.phase.name)\",\"step\":\(p.step),\"steps\":\(p.steps),\"progress\":\(p.done),\"total\":\(p.total),"
                        + "\"unit\":\"\(p.phase.unit)\",\"rate\":\(Int(p.rate)),\"eta_seconds\":\(eta.map { String(format: "%.1f", $0) } ?? "null")}")
        } else if tty {
            let width = 30
            let filled = Int(p.fraction * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            let name = p.phase.name.padding(toLength: max(11, p.phase.name.count), withPad: " ", startingAt: 0)
            let line = String(format: "\r%@%@ [%@] %3.0f%% %d/%d %@  %.0f %@/s  ETA %@ ", stepText, name, bar, p.fraction * 100,
                              p.done, p.total, p.phase.unit, p.rate, p.phase.unit, eta.map { String(format: "%.0fs", $0) } ?? "?")
            FileHandle.standardError.write(Data(line.utf8))
            lineOpen = true
        } else if p.isPhaseComplete {
            Console.err(String(format: "%@%@: %d %@ in %.2f s (%.0f %@/s)", stepText, p.phase.name, p.total, p.phase.unit, p.elapsed, p.rate, p.phase.unit))
        }
    }
}

/// Progress of a loop the CLI runs itself (an import's batches, a batch file's chunks), as
/// one phase of ``OperationProgress`` drawn by a ``ProgressBar``.
final class Progress {
    let total: Int
    let phase: OperationProgress.Phase
    let bar: ProgressBar
    let start = Date()
    private(set) var done = 0

    init(total: Int, unit: String, json: Bool) {
        self.total = total
        self.phase = unit == "queries" ? .searching : unit == "rows" ? .writing : OperationProgress.Phase(unit, unit: unit)
        self.bar = ProgressBar(json: json)
        bar.update(value())
    }

    private func value() -> OperationProgress {
        let elapsed = Date().timeIntervalSince(start)
        return OperationProgress(phase: phase, done: min(done, total), total: total, rate: elapsed > 1e-3 ? Double(done) / elapsed : 0, elapsed: elapsed)
    }

    func advance(to n: Int) {
        done = max(done, n)
        bar.update(value())
    }

    func finish() {
        bar.update(value())
        bar.finish()
    }
}

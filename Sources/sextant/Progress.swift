import Foundation

/// Progress on stderr: a bar with rate and ETA on a terminal, NDJSON lines with `--json`,
/// and nothing otherwise (logs stay clean when stderr is a file).
final class Progress {
    let total: Int
    let unit: String
    let json: Bool
    let tty: Bool
    let start = Date()
    private var lastDraw = Date.distantPast
    private var drawnDone = -1
    private(set) var done = 0

    init(total: Int, unit: String, json: Bool) {
        self.total = total
        self.unit = unit
        self.json = json
        self.tty = Console.stderrIsTTY
    }

    func advance(to n: Int) {
        done = n
        let now = Date()
        guard now.timeIntervalSince(lastDraw) >= (json ? 1.0 : 0.1) || n == total else { return }
        lastDraw = now
        draw(now)
    }

    private func draw(_ now: Date) {
        drawnDone = done
        let elapsed = max(now.timeIntervalSince(start), 1e-9)
        let rate = Double(done) / elapsed
        let eta = rate > 0 ? Double(max(total - done, 0)) / rate : 0
        if json {
            Console.err("{\"progress\":\(done),\"total\":\(total),\"unit\":\"\(unit)\",\"rate\":\(Int(rate)),\"eta_seconds\":\(String(format: "%.1f", eta))}")
        } else if tty {
            let width = 30
            let frac = total > 0 ? min(1, Double(done) / Double(total)) : 1
            let filled = Int(frac * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            let line = String(format: "\r[%@] %3.0f%% %d/%d %@  %.0f %@/s  ETA %.0fs ", bar, frac * 100, done, total, unit, rate, unit, eta)
            FileHandle.standardError.write(line.data(using: .utf8)!)
        }
    }

    func finish() {
        if drawnDone != done { draw(Date()) }
        if tty && !json { FileHandle.standardError.write("\n".data(using: .utf8)!) }
    }
}

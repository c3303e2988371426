import Foundation

/// Threads Sextant owns, on which the async API runs its synchronous work.
///
/// LMDB transactions block (on the disk, on the writer lock) and belong to the thread that
/// began them, and a graph build or a batch can take minutes: none of that may run on Swift's
/// cooperative pool, whose few threads every task of the process shares. An async call therefore
/// hands its work to one of these threads and suspends until it is done.
///
/// The pool grows on demand up to ``maxThreads`` (further jobs wait in order) and idle threads
/// beyond the first few leave after a while. Jobs never wait for other jobs, so a full pool
/// delays work but cannot deadlock.
final class WorkerThreads: @unchecked Sendable {
    static let shared = WorkerThreads()

    /// More concurrent jobs than this queue up (LMDB's reader table is 126 slots by default).
    let maxThreads: Int
    /// Idle threads kept indefinitely.
    let keepIdle = 2
    static let threadName = "sextant-worker"

    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []
    private var head = 0
    private var threads = 0
    private var idle = 0
    /// Jobs run so far (tests read it to see that async calls came through here).
    private(set) var completed = 0

    init(maxThreads: Int = max(8, 4 * ProcessInfoCores.count)) {
        self.maxThreads = maxThreads
    }

    /// Whether the calling thread is one of the pool's.
    static var isWorkerThread: Bool { Thread.current.threadDictionary[markerKey] != nil }
    private static let markerKey = "sextant.worker"

    func submit(_ job: @escaping @Sendable () -> Void) {
        condition.lock()
        jobs.append(job)
        let spawn = jobs.count - head > idle && threads < maxThreads
        if spawn { threads += 1 }
        condition.signal()
        condition.unlock()
        if spawn { start() }
    }

    var jobsCompleted: Int {
        condition.lock(); defer { condition.unlock() }
        return completed
    }

    private func start() {
        let t = Thread { [self] in
            Thread.current.threadDictionary[WorkerThreads.markerKey] = true
            Thread.current.name = WorkerThreads.threadName
            loop()
        }
        // Graph builds and batch searches recurse little but keep sizeable frames.
        t.stackSize = 8 << 20
        t.start()
    }

    private func loop() {
        condition.lock()
        while true {
            if head < jobs.count {
                let job = jobs[head]
                head += 1
                if head > 64 && head * 2 > jobs.count {
                    jobs.removeFirst(head)
                    head = 0
                }
                condition.unlock()
                job()
                condition.lock()
                completed += 1
                continue
            }
            idle += 1
            let woke = condition.wait(until: Date(timeIntervalSinceNow: 30))
            idle -= 1
            if !woke && head >= jobs.count && threads > keepIdle {
                threads -= 1
                condition.unlock()
                return
            }
        }
    }

    /// Runs `body` on a pool thread and returns its result; while waiting, the calling task is
    /// suspended, not blocking its thread. Cancelling the task sets `control`'s flag, which
    /// long operations check at points where stopping leaves the store unchanged. A task
    /// cancelled before the work starts gets `SextantError.Code.cancelled` without it running.
    func run<T: Sendable>(control: OperationControl = .silent, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withTaskCancellationHandler {
            if Task.isCancelled { throw SextantError(.cancelled, "the operation was cancelled before it started") }
            return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                submit {
                    do {
                        try control.checkCancellation()
                        continuation.resume(returning: try body())
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
            }
        } onCancel: {
            control.cancel()
        }
    }
}

import CLMDB
import SextantCore
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Every `mdb_*` call the storage layer makes, named, so a ``FaultInjector`` can target it.
package enum LMDBCall: String, Sendable, CaseIterable {
    case envCreate, envSetMapsize, envSetMaxReaders, envSetMaxDBs, envOpen, envClose, envInfo, envStat
    case envCopy, envSync, readerCheck, readerList
    case txnBegin, txnCommit, txnAbort
    case dbiOpen, stat, drop
    case get, put, del
    case cursorOpen, cursorGet, cursorPut, cursorDel, cursorClose

    /// Calls that change the store (or end a write transaction), the targets of write-path fault loops.
    package var isMutating: Bool {
        switch self {
        case .put, .del, .cursorPut, .cursorDel, .drop, .txnCommit, .dbiOpen: true
        default: false
        }
    }
}

/// Makes the Nth `mdb_*` call fail with a chosen code — the hook behind the fault-injection tests.
///
/// Counting is per environment (the injector is handed to one ``Environment`` through
/// ``StorageConfiguration/faultInjector``), so parallel tests do not interfere.
package final class FaultInjector: Sendable {
    /// One planned failure.
    package struct Plan: Sendable {
        /// Fail the call whose 1-based sequence number (among the calls ``matching``) is this.
        package var failAt: Int
        /// The code the failing call returns (`MDB_MAP_FULL`, `EIO`, `MDB_READERS_FULL`, ...).
        package var code: Int32
        /// Keep failing every later matching call too (until ``FaultInjector/clear()``).
        package var persistent: Bool
        /// Which calls count; nil counts every call.
        package var matching: Set<LMDBCall>?

        package init(failAt: Int, code: Int32, persistent: Bool = false, matching: Set<LMDBCall>? = nil) {
            self.failAt = failAt
            self.code = code
            self.persistent = persistent
            self.matching = matching
        }
    }

    private struct State {
        var plan: Plan?
        var seen = 0
        var calls: [LMDBCall] = []
        var recording = false
        var injected = 0
    }
    private let state = Mutex(State())

    package init() {}

    /// Arms a plan and resets the counter.
    package func arm(_ plan: Plan) {
        state.withLock { $0.plan = plan; $0.seen = 0 }
    }

    /// Disarms; later calls succeed.
    package func clear() {
        state.withLock { $0.plan = nil; $0.seen = 0 }
    }

    /// Starts recording the sequence of calls (to learn how many calls an operation makes).
    package func startRecording() {
        state.withLock { $0.calls = []; $0.recording = true }
    }

    /// Stops recording and returns the calls seen since ``startRecording()``.
    package func stopRecording() -> [LMDBCall] {
        state.withLock { s in s.recording = false; return s.calls }
    }

    /// How many failures have been injected so far.
    package var injectedCount: Int { state.withLock { $0.injected } }

    /// Returns the code to fail with, or nil to let the call run.
    func intercept(_ call: LMDBCall) -> Int32? {
        state.withLock { s in
            if s.recording { s.calls.append(call) }
            guard let plan = s.plan else { return nil }
            if let m = plan.matching, !m.contains(call) { return nil }
            s.seen += 1
            if s.seen == plan.failAt || (plan.persistent && s.seen > plan.failAt) {
                s.injected += 1
                return plan.code
            }
            return nil
        }
    }
}

/// The single choke point for `mdb_*` calls: every call the storage layer makes passes here,
/// so faults can be injected at any of them and errors are mapped in one place.
struct LMDB {
    let injector: FaultInjector?

    /// Runs `body` (an `mdb_*` call returning an int) unless a fault is planned for it.
    @inline(__always)
    func call(_ op: LMDBCall, _ body: () -> Int32) -> Int32 {
        if let injector, let code = injector.intercept(op) { return code }
        return body()
    }

    /// Like ``call(_:_:)`` but throws the mapped error for any non-zero result.
    @inline(__always)
    func check(_ op: LMDBCall, _ body: () -> Int32) throws(SextantError) {
        let rc = call(op, body)
        if rc != 0 { throw LMDB.error(rc, op) }
    }

    /// For `void` calls (abort, close): they cannot fail, but still pass the choke point.
    @inline(__always)
    func perform(_ op: LMDBCall, _ body: () -> Void) {
        _ = injector?.intercept(op)
        body()
    }

    /// Maps an LMDB or errno code to a typed error.
    static func error(_ rc: Int32, _ op: LMDBCall) -> SextantError {
        let text = String(cString: mdb_strerror(rc))
        let ctx = ["call": "mdb_" + op.rawValue, "rc": String(rc)]
        let code: SextantError.Code
        switch rc {
        case MDB_MAP_FULL: code = .mapFull
        case MDB_READERS_FULL: code = .readersFull
        case MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_PANIC, MDB_BAD_TXN: code = .corrupted
        case MDB_INVALID: code = .corrupted
        case MDB_VERSION_MISMATCH: code = .formatVersion
        case MDB_KEYEXIST: code = .alreadyExists
        case MDB_NOTFOUND: code = .notFound
        case MDB_BAD_VALSIZE: code = .limitExceeded
        case MDB_DBS_FULL, MDB_TXN_FULL, MDB_CURSOR_FULL, MDB_PAGE_FULL, MDB_TLS_FULL: code = .limitExceeded
        case EACCES, EROFS, EPERM: code = .readOnly
        case EAGAIN, EBUSY, EWOULDBLOCK: code = .locked
        case ENOSPC: code = .mapFull
        case EIO: code = .io
        case ENOENT: code = .notFound
        default: code = rc > 0 ? .io : .storage
        }
        return SextantError(code, "\(text) (in mdb_\(op.rawValue))", context: ctx, underlying: rc)
    }
}

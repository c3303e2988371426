#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A reader-writer lock guarding the map: every transaction holds it shared for its lifetime,
/// and growing the map (`mdb_env_set_mapsize`, which LMDB requires to run with no transaction
/// active in the process) holds it exclusively. Writer-preferring, so growth is not starved.
final class RWGate: @unchecked Sendable {
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>
    private let depthKey: pthread_key_t

    init() {
        lock = .allocate(capacity: 1)
        var attr = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attr)
        #if canImport(Glibc)
        pthread_rwlockattr_setkind_np(&attr, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        #endif
        pthread_rwlock_init(lock, &attr)
        pthread_rwlockattr_destroy(&attr)
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        depthKey = key
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
        pthread_key_delete(depthKey)
    }

    /// How many shared holds the calling thread has (used to refuse a self-deadlocking resize).
    var sharedDepth: Int { Int(bitPattern: pthread_getspecific(depthKey)) }

    private func setDepth(_ d: Int) { pthread_setspecific(depthKey, UnsafeRawPointer(bitPattern: d)) }

    func withShared<R>(_ body: () throws -> R) rethrows -> R {
        let depth = sharedDepth
        // A thread that already holds the gate must not queue behind a waiting writer.
        if depth == 0 { pthread_rwlock_rdlock(lock) }
        setDepth(depth + 1)
        defer {
            setDepth(depth)
            if depth == 0 { pthread_rwlock_unlock(lock) }
        }
        return try body()
    }

    func withExclusive<R>(_ body: () throws -> R) rethrows -> R {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}

/// A plain mutex whose critical section may return any value (``Mutex`` demands `sending`).
final class PlainLock: @unchecked Sendable {
    private let m: UnsafeMutablePointer<pthread_mutex_t>
    init() {
        m = .allocate(capacity: 1)
        pthread_mutex_init(m, nil)
    }
    deinit {
        pthread_mutex_destroy(m)
        m.deallocate()
    }
    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(m)
        defer { pthread_mutex_unlock(m) }
        return try body()
    }
}

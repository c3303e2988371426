import SextantStorage

extension Store {
    /// How a store is opened. Every value has a default; change only what you need.
    public struct Configuration: Sendable {
        /// Open for reading only (several processes may do so while one writes).
        public var readOnly: Bool = false
        /// Create the store when the directory holds none.
        public var createIfMissing: Bool = true
        /// How commits reach the disk (default: fsync on every commit).
        public var syncMode: SyncMode = .durable
        /// Initial address space reserved for the map; it grows by itself.
        public var initialMapSize: Int = 1 << 30
        /// Upper bound for map growth.
        public var maxMapSize: Int = 1 << 40
        /// Concurrent readers across all processes.
        public var maxReaders: UInt32 = 126
        /// Threads a multi-query search may use (default: all cores).
        public var searchThreads: Int = max(1, ProcessInfoCores.count)
        /// Free the reader slots of dead processes when opening (off only to inspect them,
        /// as `sextant stat --readers` does).
        public var clearStaleReadersAtOpen: Bool = true
        /// Map every page of the data file into the process at open (Linux 5.14 and later;
        /// elsewhere nothing), as ``Store/prefault()`` does: later reads take no page faults.
        /// It costs about 0.1 s per GB of file at open (more where the file is not in the page
        /// cache) and leaves the whole file resident; for stores that fit in memory and serve
        /// many searches.
        public var prefaultMap: Bool = false
        /// Test hook: fails chosen `mdb_*` calls.
        package var faultInjector: FaultInjector? = nil

        /// The defaults: durable, created if missing, 1 GiB initial map growing to 1 TiB, 126 readers.
        public init() {}
    }
}

enum ProcessInfoCores {
    static let count: Int = {
        #if canImport(Glibc)
        let n = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        return n > 0 ? n : 1
        #else
        return 1
        #endif
    }()
}
#if canImport(Glibc)
import Glibc
#endif

/// How an ``Environment`` is opened. Every value has a sensible default.
public struct StorageConfiguration: Sendable {
    /// How commits reach the disk.
    public enum SyncMode: String, Sendable, CaseIterable {
        /// fsync data and meta page on every commit: a returned commit survives power loss.
        case durable
        /// Skip the meta-page fsync: a crash may lose the last commits but never corrupts.
        case noMetaSync
        /// No fsync at all: fastest; the OS flushes later. A power loss may lose recent commits,
        /// and with some file systems corrupt the store. For bulk loads you can redo.
        case noSync
    }

    /// The store's directory (created if missing and ``createIfMissing``).
    public var path: String
    /// The initial map size in bytes. It is address space, not disk: the file grows as data is
    /// written, and the map grows by itself when full, up to ``maxMapSize``.
    public var initialMapSize: Int = 1 << 30
    /// The largest the map may grow to.
    public var maxMapSize: Int = 1 << 40
    /// Concurrent read transactions across all processes.
    public var maxReaders: UInt32 = 126
    /// Named databases the environment can hold.
    public var maxDatabases: UInt32 = 32
    /// Open for reading only: writes throw ``SextantError/Code/readOnly``.
    public var readOnly: Bool = false
    public var syncMode: SyncMode = .durable
    /// Create the directory and files when they do not exist.
    public var createIfMissing: Bool = true
    /// Free the reader slots of dead processes when opening (off only to inspect them).
    public var clearStaleReadersAtOpen: Bool = true
    /// Test hook: fails chosen `mdb_*` calls (see ``FaultInjector``).
    public var faultInjector: FaultInjector? = nil

    public init(path: String) { self.path = path }
}

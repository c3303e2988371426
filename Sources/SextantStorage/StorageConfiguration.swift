import SextantCore

/// How an ``Environment`` is opened. Every value has a sensible default.
package struct StorageConfiguration: Sendable {
    /// How commits reach the disk (``SyncMode``, defined with the vocabulary types so that the
    /// engine's configuration names no storage type).
    package typealias SyncMode = SextantCore.SyncMode

    /// The store's directory (created if missing and ``createIfMissing``).
    package var path: String
    /// The initial map size in bytes. It is address space, not disk: the file grows as data is
    /// written, and the map grows by itself when full, up to ``maxMapSize``.
    package var initialMapSize: Int = 1 << 30
    /// The largest the map may grow to.
    package var maxMapSize: Int = 1 << 40
    /// Concurrent read transactions across all processes.
    package var maxReaders: UInt32 = 126
    /// Named databases the environment can hold.
    package var maxDatabases: UInt32 = 32
    /// Open for reading only: writes throw ``SextantError/Code/readOnly``.
    package var readOnly: Bool = false
    package var syncMode: SyncMode = .durable
    /// Create the directory and files when they do not exist.
    package var createIfMissing: Bool = true
    /// Free the reader slots of dead processes when opening (off only to inspect them).
    package var clearStaleReadersAtOpen: Bool = true
    /// Test hook: fails chosen `mdb_*` calls (see ``FaultInjector``).
    package var faultInjector: FaultInjector? = nil

    package init(path: String) { self.path = path }
}

/// How commits reach the disk; the store's durability (SPEC §1).
public enum SyncMode: String, Sendable, CaseIterable {
    /// fsync data and meta page on every commit: a returned commit survives power loss.
    case durable
    /// Skip the meta-page fsync: a crash may lose the last commits but never corrupts.
    case noMetaSync
    /// No fsync at all: fastest; the OS flushes later. A power loss may lose recent commits,
    /// and with some file systems corrupt the store. For bulk loads you can redo.
    case noSync
}

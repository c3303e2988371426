import Foundation
import SextantKernels
import SextantStorage

/// A Sextant store: one LMDB environment (a directory) holding any number of collections.
///
/// Open a store once per process and share the instance: it is thread-safe. Writes from all
/// threads are serialized; reads run concurrently on snapshots and never block writers.
/// Other processes may open the same directory at the same time (one writer at a time
/// across processes, readers without limit).
public final class Store: Sendable {
    /// The on-disk format this build writes and the newest it reads.
    public static let formatVersion = 2
    static let magic = "sextant"

    /// The store's directory, as opened.
    public let path: String
    /// How the store was opened.
    public let configuration: Configuration
    let env: Environment
    let db: Databases
    /// Decoded codebooks by collection id, reused while their stored version is unchanged.
    let quantizers = QuantizerCache()
    /// Reusable graph-search scratch (visited sets), so a query does not allocate one.
    let searchContexts = ContextPool()
    let costModels = CostModelCache()
    /// Matching rows of recent predicates, per snapshot.
    let filterCache = FilterCache()
    /// Flat bitsets of predicates filtered graph searches repeat, per snapshot.
    let denseBitsets = DenseBitsetCache()
    /// A decoded sample of each collection's rows per snapshot, for selectivity estimates.
    let attributeSamples = AttributeSampleCache()
    /// Vector and code block pointers per snapshot, shared by read transactions.
    let blockPointers = BlockPointerCache()
    /// Coarse quantizers and decoded cell postings per snapshot, for probing searches.
    let cellCache = CellCache()

    struct Databases: Sendable {
        let meta, state, ids, rows, vectors, free, postings, codes, index, graph, links: Database
        static let names = ["sextant.meta", "sextant.state", "sextant.ids", "sextant.rows", "sextant.vectors", "sextant.free", "sextant.postings",
                            "sextant.codes", "sextant.index", "sextant.graph", "sextant.links"]
        /// Token sets of multi-vector collections; nil only when a store older than that
        /// database is opened read-only (it then holds no multi-vector collection).
        var tokens: Database? = nil
        static let tokensName = "sextant.tokens"
    }

    /// Opens the store at `path`, creating it unless `configuration.createIfMissing` is false.
    ///
    /// Throws `SextantError.Code.formatVersion` for a store of a newer format or a directory
    /// holding some other LMDB environment, `SextantError.Code.locked` when the store is already
    /// open in this process or being compacted, `SextantError.Code.notFound` when absent.
    public init(path: String, configuration: Configuration = Configuration()) throws {
        var sc = StorageConfiguration(path: path)
        sc.readOnly = configuration.readOnly
        sc.createIfMissing = configuration.createIfMissing
        sc.syncMode = configuration.syncMode
        sc.initialMapSize = configuration.initialMapSize
        sc.maxMapSize = configuration.maxMapSize
        sc.maxReaders = configuration.maxReaders
        sc.faultInjector = configuration.faultInjector
        sc.clearStaleReadersAtOpen = configuration.clearStaleReadersAtOpen
        let env = try Environment(sc)
        do {
            let existing = try env.databaseNames()
            let ours = Set(Databases.names + [Databases.tokensName])
            if let foreign = existing.first(where: { !ours.contains($0) }) {
                throw SextantError(.formatVersion, "'\(path)' holds an LMDB environment that is not a Sextant store (database '\(foreign)')", context: ["path": path])
            }
            let create = !configuration.readOnly
            guard let handles = try env.openDatabases(Databases.names, create: create) else {
                throw SextantError(.notFound, "'\(path)' is not an initialised Sextant store", context: ["path": path])
            }
            self.db = Databases(meta: handles[0], state: handles[1], ids: handles[2], rows: handles[3], vectors: handles[4], free: handles[5], postings: handles[6], codes: handles[7], index: handles[8], graph: handles[9], links: handles[10],
                                tokens: try env.openDatabases([Databases.tokensName], create: create)?.first)
            self.env = env
            self.path = env.path
            self.configuration = configuration
            try checkOrWriteFormat()
            if configuration.prefaultMap { prefault() }
        } catch {
            env.close()
            throw error
        }
    }

    private func checkOrWriteFormat() throws {
        let found: (UInt32, String)? = try env.read { txn in
            guard let v = try txn.value(db.meta, key: Array("format".utf8)) else { return nil }
            let m = try txn.value(db.meta, key: Array("magic".utf8)) ?? []
            guard v.count == 4 else { throw SextantError(.corrupted, "format record has \(v.count) bytes") }
            let ver = v.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
            return (ver, String(decoding: m, as: UTF8.self))
        }
        if let (version, magic) = found {
            guard magic == Store.magic else {
                throw SextantError(.formatVersion, "not a Sextant store (magic '\(magic)')", context: ["path": path])
            }
            guard version == UInt32(Store.formatVersion) else {
                throw SextantError.formatVersion(found: Int(version), supported: Store.formatVersion,
                    "the store has format version \(version); this build reads version \(Store.formatVersion) (move data across versions with dump and load)")
            }
            return
        }
        guard !configuration.readOnly else {
            throw SextantError(.notFound, "'\(path)' is not an initialised Sextant store", context: ["path": path])
        }
        try env.write { txn in
            // Another process may have initialised it between our read and this write.
            if try txn.value(db.meta, key: Array("format".utf8)) != nil { return }
            for d in [db.state, db.ids, db.rows, db.vectors, db.free] where try txn.count(d) != 0 {
                throw SextantError(.corrupted, "store has data but no format record", context: ["path": path])
            }
            try txn.put(db.meta, key: Array("format".utf8), value: withUnsafeBytes(of: UInt32(Store.formatVersion).littleEndian) { Array($0) })
            try txn.put(db.meta, key: Array("magic".utf8), value: Array(Store.magic.utf8))
        }
    }

    /// Maps every page of the data file into this process now, so that reads take no page
    /// faults (Linux 5.14 and later, `MADV_POPULATE_READ`; elsewhere it does nothing).
    ///
    /// A fresh process otherwise faults in each 64 KiB of the map it first reads, inside its
    /// first searches, and threads faulting on one map at once slow each other down. Worth it
    /// before a large batch on a store that fits in memory: it reads the file from disk where
    /// the page cache does not hold it, and leaves the whole file resident. Results do not
    /// change. Returns whether the pages were mapped.
    @discardableResult
    public func prefault() -> Bool { env.populateMappedPages() }

    /// Flushes commits made in `SyncMode.noSync` mode to disk.
    ///
    /// - Throws: `closed`, `io`, storage errors (`mapFull`, `io`, `storage`, ...).
    public func sync() throws { try env.sync() }

    /// Closes the store. Collections obtained from it stop working. Idempotent.
    public func close() { env.close() }

    deinit { env.close() }

    // MARK: Catalog

    static func catalogKey(_ name: String) -> [UInt8] { Array(("catalog/" + name).utf8) }

    /// Creates a collection. The recipe is stored as given after validation
    /// (`"Flat"` when nil; see SPEC.md for the recipe grammar).
    ///
    /// - Throws: `invalidArgument` for a bad name or dimension or recipe, `alreadyExists`,
    ///   `readOnly`, storage errors (`mapFull`, `io`, `storage`, ...).
    @discardableResult
    public func createCollection(
        _ name: String, dimension: Int, metric: Metric, schema: Schema = try! Schema([]), indexRecipe: String? = nil
    ) throws -> VectorCollection {
        try CollectionInfo.validateName(name)
        guard dimension >= 1, dimension <= CollectionInfo.maxDimension else {
            throw SextantError(.invalidArgument, "dimension must be 1…\(CollectionInfo.maxDimension), got \(dimension)", context: ["collection": name])
        }
        let recipe = try IndexRecipe(parsing: indexRecipe ?? "Flat")
        if recipe.components.contains(.sq8) && dimension > ScalarQuantizer.maxDimension {
            throw SextantError(.invalidArgument, "SQ8 supports dimensions up to \(ScalarQuantizer.maxDimension), got \(dimension)",
                               context: ["collection": name])
        }
        let info = try env.write { txn in
            try register(txn, name) { id in
                CollectionInfo(name: name, id: id, dimension: dimension, metric: metric, schema: schema,
                               indexRecipe: recipe.description, createdAt: Date().timeIntervalSince1970)
            }
        }
        return VectorCollection(store: self, info: info)
    }

    /// Adds a collection to the catalog in `txn`: refuses a taken name, allocates the next
    /// collection id, stores the entry `make` builds for it and an empty state record.
    func register(_ txn: Transaction, _ name: String, _ make: (UInt32) -> CollectionInfo) throws -> CollectionInfo {
        let key = Store.catalogKey(name)
        if try txn.value(db.meta, key: key) != nil {
            throw SextantError(.alreadyExists, "collection '\(name)' exists", context: ["collection": name])
        }
        let nextKey = Array("nextCollectionID".utf8)
        let next = try txn.value(db.meta, key: nextKey).map { b -> UInt32 in
            guard b.count == 4 else { throw SextantError(.corrupted, "nextCollectionID has \(b.count) bytes") }
            return b.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
        } ?? 1
        guard next < UInt32.max else { throw SextantError(.limitExceeded, "collection ids exhausted") }
        let info = make(next)
        try txn.put(db.meta, key: key, value: Array(try Store.encoder.encode(info)))
        try txn.put(db.meta, key: nextKey, value: withUnsafeBytes(of: (next + 1).littleEndian) { Array($0) })
        try CollectionState(count: 0, nextSlot: 0).write(txn, db.state, cid: next)
        return info
    }

    /// Opens an existing collection.
    ///
    /// - Throws: `notFound` when there is no such collection, `corrupted`, storage errors
    ///   (`mapFull`, `io`, `storage`, ...).
    public func collection(_ name: String) throws -> VectorCollection {
        guard let info = try env.read({ txn in try catalogEntry(txn, name) }) else {
            throw SextantError(.notFound, "no collection '\(name)'", context: ["collection": name])
        }
        return VectorCollection(store: self, info: info)
    }

    func catalogEntry(_ txn: Transaction, _ name: String) throws -> CollectionInfo? {
        try txn.withValue(db.meta, key: Store.catalogKey(name)) { raw in
            do { return try Store.decoder.decode(CollectionInfo.self, from: Data(raw)) } catch {
                throw SextantError(.corrupted, "catalog entry of '\(name)' does not decode: \(error)", context: ["collection": name])
            }
        }
    }

    /// Every collection, by name.
    ///
    /// - Throws: `corrupted` for a catalog entry that does not decode, storage errors (`mapFull`,
    ///   `io`, `storage`, ...).
    public func collections() throws -> [CollectionInfo] {
        try env.read { txn in
            var out: [CollectionInfo] = []
            try txn.scan(db.meta, prefix: Array("catalog/".utf8)) { k, v in
                do { out.append(try Store.decoder.decode(CollectionInfo.self, from: Data(v))) } catch {
                    throw SextantError(.corrupted, "catalog entry '\(String(decoding: k, as: UTF8.self))' does not decode")
                }
                return true
            }
            return out
        }
    }

    /// Deletes a collection and all its rows in one transaction.
    ///
    /// - Throws: `notFound`, `readOnly`, storage errors (`mapFull`, `io`, `storage`, ...).
    public func dropCollection(_ name: String) throws {
        try env.write { txn in
            guard let info = try catalogEntry(txn, name) else {
                throw SextantError(.notFound, "no collection '\(name)'", context: ["collection": name])
            }
            let prefix = Keys.prefix(info.id)
            for d in [db.ids, db.rows, db.vectors, db.free, db.postings, db.codes, db.index, db.graph, db.links] + (db.tokens.map { [$0] } ?? []) {
                try txn.deleteAll(d, prefix: prefix)
            }
            try txn.delete(db.state, key: prefix)
            try txn.delete(db.meta, key: Store.catalogKey(name))
        }
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }()
    static let decoder = JSONDecoder()
}

/// Per-collection counters, one record per collection in `sextant.state`:
/// `count(u64 LE) ‖ nextSlot(u32 LE) ‖ reserved(u32)`.
struct CollectionState: Equatable {
    var count: UInt64
    var nextSlot: UInt32

    static func read(_ txn: Transaction, _ db: Database, cid: UInt32) throws -> CollectionState? {
        try Keys.prefix(cid).withUnsafeBytes { k in
            try txn.withValue(db, key: k) { v in try decode(v, cid: cid) }
        }
    }

    static func decode(_ v: UnsafeRawBufferPointer, cid: UInt32) throws(SextantError) -> CollectionState {
        guard v.count == 16 else { throw SextantError(.corrupted, "collection state has \(v.count) bytes", context: ["cid": String(cid)]) }
        let st = CollectionState(count: UInt64(littleEndian: v.loadUnaligned(as: UInt64.self)),
                                 nextSlot: UInt32(littleEndian: v.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
        guard st.count <= UInt64(st.nextSlot) else {
            throw SextantError(.corrupted, "collection state counts \(st.count) rows in \(st.nextSlot) slots", context: ["cid": String(cid)])
        }
        return st
    }

    func write(_ txn: Transaction, _ db: Database, cid: UInt32) throws {
        var b = [UInt8](repeating: 0, count: 16)
        b.withUnsafeMutableBytes { p in
            p.storeBytes(of: count.littleEndian, toByteOffset: 0, as: UInt64.self)
            p.storeBytes(of: nextSlot.littleEndian, toByteOffset: 8, as: UInt32.self)
        }
        try txn.put(db, key: Keys.prefix(cid), value: b)
    }
}

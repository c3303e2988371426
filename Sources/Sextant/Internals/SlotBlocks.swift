import Foundation
import Synchronization
import SextantStorage

/// Fixed-size per-slot entries (vectors, PQ codes, graph adjacency) kept `slotsPerBlock` slots
/// to an LMDB record: `cid u32 BE ‖ block u32 BE → region 0 ‖ region 1 ‖ …`, where region `r`
/// holds `slotsPerBlock` entries of `strides[r]` bytes (so the vectors of a block are contiguous,
/// apart from their ids).
///
/// Why blocks: a record of tens of KiB lives in contiguous overflow pages of the map, so a scan
/// reads one pointer per block and then streams memory (no B-tree step per row), and a graph
/// hop resolves a block pointer once and then indexes into it. Blocks are about 64 KiB, so a
/// single-row write rewrites one such record.
struct SlotBlocks {
    let db: Database
    let cid: UInt32
    let layout: SlotLayout

    init(db: Database, cid: UInt32, strides: [Int]) {
        self.db = db
        self.cid = cid
        layout = SlotLayout(strides: strides)
    }

    init(db: Database, cid: UInt32, stride: Int) {
        self.init(db: db, cid: cid, strides: [stride])
    }

    var strides: [Int] { layout.strides }
    var stride: Int { layout.stride }
    var slotsPerBlock: Int { layout.slotsPerBlock }
    var regionOffsets: [Int] { layout.regionOffsets }
    var blockBytes: Int { layout.blockBytes }
    @inline(__always) func offset(_ slot: UInt32, region r: Int) -> Int { layout.offset(slot, region: r) }

    func block(of slot: UInt32) -> UInt32 { slot / UInt32(slotsPerBlock) }

    func withKey<R>(_ block: UInt32, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var k = (UInt64(cid) << 32 | UInt64(block)).bigEndian
        return try withUnsafeBytes(of: &k) { try body($0) }
    }

    /// Buffers the blocks one write transaction changes and writes each once at `flush`.
    final class Writer {
        let blocks: SlotBlocks
        private var pending: [UInt32: [UInt8]] = [:]

        init(_ blocks: SlotBlocks) { self.blocks = blocks }

        private func load(_ txn: Transaction, _ b: UInt32) throws -> [UInt8] {
            if let p = pending[b] { return p }
            let stored = try blocks.withKey(b) { k in try txn.withValue(blocks.db, key: k) { Array($0) } }
            if let stored {
                guard stored.count == blocks.blockBytes else {
                    throw SextantError(.corrupted, "index block \(b) has \(stored.count) bytes, expected \(blocks.blockBytes)", context: ["block": String(b)])
                }
                return stored
            }
            return [UInt8](repeating: 0, count: blocks.blockBytes)
        }

        /// The slot's current entry in region `r` (buffered or stored); nil without a block.
        func read(_ txn: Transaction, slot: UInt32, region r: Int) throws -> [UInt8]? {
            let b = blocks.block(of: slot)
            let exists = try pending[b] != nil || (blocks.withKey(b) { k in try txn.withValue(blocks.db, key: k) { _ in true } } ?? false)
            guard exists else { return nil }
            let data = try load(txn, b)
            let off = blocks.offset(slot, region: r)
            return Array(data[off..<(off + blocks.strides[r])])
        }

        /// Replaces slot's entry in region `r` (`bytes.count == strides[r]`).
        func set(_ txn: Transaction, slot: UInt32, region r: Int = 0, _ bytes: UnsafeRawBufferPointer) throws {
            precondition(bytes.count == blocks.strides[r])
            let b = blocks.block(of: slot)
            var data = try load(txn, b)
            let off = blocks.offset(slot, region: r)
            data.withUnsafeMutableBytes { UnsafeMutableRawBufferPointer(rebasing: $0[off..<(off + bytes.count)]).copyMemory(from: bytes) }
            pending[b] = data
        }

        /// Zeroes a slot's entries (a deleted row leaves no stale bytes behind).
        func clear(_ txn: Transaction, slot: UInt32) throws {
            let b = blocks.block(of: slot)
            if pending[b] == nil {
                let exists = try blocks.withKey(b) { k in try txn.withValue(blocks.db, key: k) { _ in true } } ?? false
                guard exists else { return }
            }
            for r in blocks.strides.indices {
                try [UInt8](repeating: 0, count: blocks.strides[r]).withUnsafeBytes { try set(txn, slot: slot, region: r, $0) }
            }
        }

        func flush(_ txn: Transaction) throws {
            for b in pending.keys.sorted() {
                let data = pending[b]!
                try blocks.withKey(b) { k in
                    try data.withUnsafeBytes { try txn.put(blocks.db, key: k, value: $0) }
                }
            }
            pending.removeAll()
        }
    }

    /// Resolves slot entries to pointers into the map for the life of a read transaction,
    /// one B-tree lookup per block.
    final class Reader {
        let blocks: SlotBlocks
        let txn: Transaction
        // Read on every graph hop and scored row, so plain memory owned by the reader: an array
        // property of a class is retained and released around each read, and the runtime
        // exclusivity check costs a TLS lookup per access. A reader belongs to one transaction
        // on one thread. Entry i: block i's pointer (nil: no such block), once `resolved[i]`; kept
        // by write transactions only (read transactions share their snapshot's table).
        private let cache: UnsafeMutablePointer<UnsafeRawPointer?>
        private let resolved: UnsafeMutablePointer<Bool>
        private let blockBound: Int
        // The layout as plain values, for the same reason.
        private let perBlock: UInt32
        private let regionOffset: UnsafeMutablePointer<Int>
        private let regionStride: UnsafeMutablePointer<Int>

        /// Pointers other read transactions of the same snapshot resolved (nil: none shared).
        let shared: BlockPointerCache.Table?
        /// `shared`, unretained: binding the optional reference on every lookup cost a retain
        /// and a release (a search resolves about a thousand blocks); `shared` keeps it alive.
        private let sharedTable: Unmanaged<BlockPointerCache.Table>?

        init(_ blocks: SlotBlocks, txn: Transaction, slotBound: UInt32, shared: BlockPointerCache? = nil) {
            self.blocks = blocks
            self.txn = txn
            // Only read transactions have a map generation: a write transaction's pages are its own.
            let n = Int(slotBound) / blocks.slotsPerBlock + 1
            self.shared = txn.mapGeneration >= 0 ? shared?.table(blocks, snapshot: txn.snapshotID, generation: txn.mapGeneration, blockBound: n) : nil
            sharedTable = self.shared.map { Unmanaged.passUnretained($0) }
            // A read transaction looks blocks up in the snapshot's shared table; only a write
            // transaction keeps pointers of its own (clearing them per reader was a tenth of a
            // search call that scored nothing).
            let own = self.shared == nil ? n : 0
            blockBound = own
            cache = .allocate(capacity: max(own, 1))
            cache.initialize(repeating: nil, count: own)
            resolved = .allocate(capacity: max(own, 1))
            resolved.initialize(repeating: false, count: own)
            perBlock = UInt32(blocks.slotsPerBlock)
            regionOffset = .allocate(capacity: blocks.strides.count)
            regionOffset.initialize(from: blocks.regionOffsets, count: blocks.strides.count)
            regionStride = .allocate(capacity: blocks.strides.count)
            regionStride.initialize(from: blocks.strides, count: blocks.strides.count)
        }

        deinit {
            cache.deallocate()
            resolved.deallocate()
            regionOffset.deallocate()
            regionStride.deallocate()
        }

        /// The block's bytes, or nil when the block was never written.
        @inline(__always)
        func blockPointer(_ b: UInt32) throws -> UnsafeRawPointer? {
            let i = Int(b)
            if let sharedTable {
                // Blocks past the table's capacity (maps over 64 GiB) are looked up each time.
                if let known = sharedTable._withUnsafeGuaranteedRef({ $0.lookup(b) }) { return known }
                let p = try fetch(b)
                sharedTable._withUnsafeGuaranteedRef { $0.publish(b, p) }
                return p
            }
            if i < blockBound && resolved[i] { return cache[i] }
            let p = try fetch(b)
            if i < blockBound { cache[i] = p; resolved[i] = true }
            return p
        }

        /// Block `b`'s bytes from the B-tree.
        private func fetch(_ b: UInt32) throws -> UnsafeRawPointer? {
            try blocks.withKey(b) { k in
                try txn.withValue(blocks.db, key: k) { v -> UnsafeRawPointer? in
                    guard v.count == blocks.blockBytes else {
                        throw SextantError(.corrupted, "index block \(b) has \(v.count) bytes, expected \(blocks.blockBytes)", context: ["block": String(b)])
                    }
                    return v.baseAddress
                }
            } ?? nil
        }

        /// Pointer to `slot`'s entry in region `r`, valid until the transaction ends.
        @inline(__always)
        func pointer(_ slot: UInt32, region r: Int = 0) throws -> UnsafeRawPointer? {
            guard let base = try blockPointer(slot / perBlock) else { return nil }
            return base + regionOffset[r] + Int(slot % perBlock) * regionStride[r]
        }
    }
}

/// Where each slot's entries sit in a block (see ``SlotBlocks``).
struct SlotLayout {
    let strides: [Int]
    /// Sum of the strides: bytes per slot.
    let stride: Int
    /// The largest power of two (at most 4,096) whose block fits 64 KiB, at least 1.
    let slotsPerBlock: Int
    /// Byte offset of each region in a block.
    let regionOffsets: [Int]

    init(strides: [Int]) {
        self.strides = strides
        stride = strides.reduce(0, +)
        var b = 1
        while b * 2 * stride <= 64 * 1024 && b < 4096 { b *= 2 }
        slotsPerBlock = b
        var offsets: [Int] = []
        var o = 0
        for s in strides { offsets.append(o); o += s * b }
        regionOffsets = offsets
    }

    var blockBytes: Int { slotsPerBlock * stride }

    /// Offset of slot's entry in region `r` of its block.
    @inline(__always)
    func offset(_ slot: UInt32, region r: Int) -> Int {
        regionOffsets[r] + Int(slot % UInt32(slotsPerBlock)) * strides[r]
    }
}

/// Block pointers resolved by read transactions, reused by later read transactions that see
/// the same snapshot with the map at the same address. A pointer into the map stays valid while
/// a reader of its snapshot is open (LMDB frees no page such a reader can see), and the reader
/// using a shared pointer is one; a committed write changes the snapshot id, a map resize the
/// generation, and either makes the table start over. Saves a B-tree lookup per block per query.
final class BlockPointerCache: @unchecked Sendable {
    private struct Key: Hashable {
        var db: Database
        var cid: UInt32
    }

    /// One snapshot's pointers for one collection's blocks, one atomic word per block: 0
    /// unknown, 1 no such block, else the pointer. A reader takes its table once, then looks
    /// blocks up without a lock or a hash (a graph search resolves about a thousand blocks).
    /// A word is written once per snapshot, always with the same value (the map does not move
    /// within a generation), so relaxed ordering suffices.
    final class Table: @unchecked Sendable {
        let snapshot: Int
        let generation: Int
        let capacity: Int
        private let words: UnsafeMutablePointer<Atomic<UInt>>

        init(snapshot: Int, generation: Int, capacity: Int) {
            self.snapshot = snapshot
            self.generation = generation
            self.capacity = capacity
            words = .allocate(capacity: capacity)
            for i in 0..<capacity { (words + i).initialize(to: Atomic(0)) }
        }

        deinit {
            words.deinitialize(count: capacity)
            words.deallocate()
        }

        /// The pointer of block `b` (inner nil: the block does not exist), or nil when unknown.
        @inline(__always)
        func lookup(_ b: UInt32) -> UnsafeRawPointer?? {
            let i = Int(b)
            guard i < capacity else { return nil }
            let v = words[i].load(ordering: .relaxed)
            if v == 0 { return nil }
            return .some(v == 1 ? nil : UnsafeRawPointer(bitPattern: v))
        }

        func publish(_ b: UInt32, _ p: UnsafeRawPointer?) {
            let i = Int(b)
            guard i < capacity else { return }
            words[i].store(p.map { UInt(bitPattern: $0) } ?? 1, ordering: .relaxed)
        }
    }

    private var tables: [Key: Table] = [:]
    private let lock = NSLock()
    /// Blocks kept per table (about 64 KiB each, so this covers 64 GiB of map).
    static let limit = 1 << 20

    /// The table of `blocks` at this snapshot and map generation, for blocks below
    /// `blockBound`. A reader of an older snapshot than the table's gets a table of its own (it
    /// does not overwrite the newer one); a newer snapshot or another generation starts the
    /// shared table over.
    func table(_ blocks: SlotBlocks, snapshot: Int, generation: Int, blockBound: Int) -> Table {
        let key = Key(db: blocks.db, cid: blocks.cid)
        let capacity = Swift.min(BlockPointerCache.limit, Swift.max(1, blockBound))
        lock.lock(); defer { lock.unlock() }
        if let t = tables[key], t.generation == generation {
            if t.snapshot == snapshot && t.capacity >= capacity { return t }
            if t.snapshot > snapshot { return Table(snapshot: snapshot, generation: generation, capacity: capacity) }
        }
        let t = Table(snapshot: snapshot, generation: generation, capacity: capacity)
        tables[key] = t
        return t
    }
}

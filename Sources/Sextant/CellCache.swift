import Foundation
import SextantKernels

/// A collection's coarse quantizer and decoded cell postings, per read snapshot.
///
/// A probing search reads the quantizer (up to 4,096 × dimension floats) and a few cells'
/// postings; decoding them on every call cost more than scoring the rows they select (1M rows,
/// 1,024 cells, 8 probes). A snapshot never changes, so what one reader decoded serves every
/// later reader of the same snapshot; a newer snapshot replaces the entry. Write transactions
/// never use it.
final class CellCache: @unchecked Sendable {
    /// One collection's cells in one snapshot. Cells are decoded on first use.
    final class Entry: @unchecked Sendable {
        let snapshot: Int
        let quantizer: CoarseQuantizer?
        private var cells: [Bitmap?]
        private let lock = NSLock()

        init(snapshot: Int, quantizer: CoarseQuantizer?) {
            self.snapshot = snapshot
            self.quantizer = quantizer
            cells = Array(repeating: nil, count: quantizer?.cells ?? 0)
        }

        /// Cell `c`'s slots, decoded by `load` the first time.
        func cell(_ c: Int, load: () throws -> Bitmap) rethrows -> Bitmap {
            lock.lock()
            if let b = cells[c] { lock.unlock(); return b }
            lock.unlock()
            let b = try load()
            lock.lock(); cells[c] = b; lock.unlock()
            return b
        }
    }

    private var entries: [UInt32: Entry] = [:]
    private let lock = NSLock()

    /// The entry of collection `cid` in `snapshot`, made by `load` (the quantizer, or nil
    /// without cells) when there is none for that snapshot.
    func entry(_ cid: UInt32, snapshot: Int, load: () throws -> CoarseQuantizer?) throws -> Entry {
        lock.lock()
        if let e = entries[cid], e.snapshot == snapshot { lock.unlock(); return e }
        lock.unlock()
        let e = Entry(snapshot: snapshot, quantizer: try load())
        lock.lock()
        // Keep the newer snapshot's entry when two readers race.
        if let old = entries[cid], old.snapshot > snapshot { lock.unlock(); return e }
        entries[cid] = e
        lock.unlock()
        return e
    }
}

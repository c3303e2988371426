import SextantKernels
import SextantStorage
import SextantFilter

/// One collection as one transaction sees it.
///
/// Everything a search, a plan or a calibration derives from the collection's records — its
/// state, the vector and code readers, the graph and the distances it traverses with, the PQ,
/// SQ8 and coarse quantizers, the postings reader, the live rows — is resolved here at most once
/// per transaction, and every consumer takes it from here instead of re-reading it from a raw
/// `Transaction`. A batch makes one per transaction of its snapshot (planning uses the first,
/// search thread `w` the `w`-th; `Environment.readSnapshot` opens them all on one committed
/// state), so everything a batch reads comes from one snapshot.
///
/// Not thread-safe, like the transaction it wraps: it belongs to the thread using that
/// transaction. Pointers its readers hand out stay valid until the transaction ends.
final class CollectionSnapshot {
    let collection: VectorCollection
    let txn: Transaction
    /// The collection's state in this transaction (read once; its absence is `notFound`).
    let state: CollectionState

    private var vectorReader: SlotBlocks.Reader?
    private var codeReader: SlotBlocks.Reader?
    private var postingsReader: IndexReader?
    private var graphHandle: LMDBGraph??
    private var traversalSource: BlockVectors?
    private var productQuantizer: ProductQuantizer??
    private var sq8Quantizer: ScalarQuantizer??
    private var sq8Reader: SlotBlocks.Reader?
    private var cellQuantizer: CoarseQuantizer??

    /// The collection in `txn`; throws `notFound` when it was dropped.
    init(_ collection: VectorCollection, _ txn: Transaction) throws {
        self.collection = collection
        self.txn = txn
        state = try collection.state(txn)
    }

    /// Slots below this bound have been used (the readers' and the graph's bound).
    var slotBound: UInt32 { state.nextSlot }

    /// The vector blocks (id, vector, norm per slot).
    func vectors() throws -> SlotBlocks.Reader {
        if let vectorReader { return vectorReader }
        let r = SlotBlocks.Reader(collection.vectorBlocks, txn: txn, slotBound: slotBound, shared: collection.store.blockPointers)
        vectorReader = r
        return r
    }

    /// The PQ code blocks of `pq` (the collection's codebooks in this transaction).
    func codes(_ pq: ProductQuantizer) throws -> SlotBlocks.Reader {
        if let codeReader { return codeReader }
        let r = SlotBlocks.Reader(collection.codeBlocks(pq), txn: txn, slotBound: slotBound, shared: collection.store.blockPointers)
        codeReader = r
        return r
    }

    /// The attribute postings, cell postings and live set.
    var postings: IndexReader {
        if let postingsReader { return postingsReader }
        let r = IndexReader(txn: txn, db: collection.db.postings, cid: collection.cid)
        postingsReader = r
        return r
    }

    /// The HNSW graph, or nil when the recipe has none or it is not built yet.
    func graph() throws -> LMDBGraph? {
        if let graphHandle { return graphHandle }
        var g: LMDBGraph? = nil
        if let params = collection.hnswComponent, try LMDBGraph.readHeader(txn, collection.db.index, cid: collection.cid) != nil {
            g = try LMDBGraph(txn: txn, db: collection.db, cid: collection.cid, parameters: params, nodeIDBound: slotBound,
                              shared: collection.store.blockPointers)
        }
        graphHandle = .some(g)
        return g
    }

    /// The distances a search traverses the graph with: SQ8 codes when the recipe has them
    /// (trained), else the float vectors; re-ranks always read the float vectors.
    func searchSource() throws -> BlockVectors {
        if let traversalSource { return traversalSource }
        var traversal: ScalarTraversal? = nil
        if let sq = try scalarQuantizer() { traversal = ScalarTraversal(quantizer: sq, reader: scalarCodes()) }
        let m = collection.metric
        let s = BlockVectors(reader: try vectors(), kind: m == .l2 ? .l2 : .ip, cosine: m == .cosine, dimension: collection.dimension,
                             traversal: traversal)
        traversalSource = s
        return s
    }

    /// The PQ codebooks, or nil when the recipe has none or they are not trained yet.
    func quantizer() throws -> ProductQuantizer? {
        if let productQuantizer { return productQuantizer }
        let pq = try collection.quantizer(txn)
        productQuantizer = .some(pq)
        return pq
    }

    /// The SQ8 quantizer, or nil when the recipe has none or it is not trained yet.
    func scalarQuantizer() throws -> ScalarQuantizer? {
        if let sq8Quantizer { return sq8Quantizer }
        let sq = try collection.scalarQuantizer(txn)
        sq8Quantizer = .some(sq)
        return sq
    }

    /// The SQ8 code blocks (`dimension` bytes a slot).
    func scalarCodes() -> SlotBlocks.Reader {
        if let sq8Reader { return sq8Reader }
        let r = SlotBlocks.Reader(collection.scalarCodeBlocks, txn: txn, slotBound: slotBound, shared: collection.store.blockPointers)
        sq8Reader = r
        return r
    }

    /// Whether rows carry codes a codes plan can score: PQ codebooks or an SQ8 quantizer, trained.
    func hasCodes() throws -> Bool {
        try quantizer() != nil || scalarQuantizer() != nil
    }

    /// The coarse quantizer of a layout with cells, else nil.
    func coarseQuantizer() throws -> CoarseQuantizer? {
        if let cellQuantizer { return cellQuantizer }
        let cq = try collection.coarseQuantizer(txn)
        cellQuantizer = .some(cq)
        return cq
    }

    /// The slots of cell `c` (decoded once per read snapshot, shared by its readers).
    func cell(_ c: Int) throws -> Bitmap {
        try collection.cellSlots(txn, c, reader: postings)
    }

    /// The live rows matching `filter` (every live row for nil): from the store's predicate
    /// cache when this snapshot evaluated it before.
    func match(_ filter: BoundFilter?) throws -> FilterMatch {
        try collection.match(txn, filter)
    }

    /// Every live slot.
    func live() throws -> Bitmap {
        try match(nil).slots
    }
}

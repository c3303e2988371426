import Foundation
import SextantKernels
import SextantStorage

// The encoding's parameters are part of the public API of multi-vector collections.
@_exported import struct SextantKernels.FDEParameters

/// How a multi-vector collection stores its tokens.
public enum TokenStorage: String, Sendable, Codable, CaseIterable {
    /// IEEE binary32, exact.
    case float32
    /// IEEE binary16 (half the bytes; tokens are rounded to nearest on write, and the encoding
    /// and re-rank use the rounded values, so stored rows stay self-consistent).
    case float16

    /// Bytes per component.
    public var width: Int { self == .float32 ? 4 : 2 }
}

/// What makes a collection multi-vector: stored in its catalog entry (SPEC.md §2).
public struct MultiVectorInfo: Sendable, Codable, Equatable {
    /// The fixed-dimensional encoding; its `tokenDimension` is the tokens' dimension.
    public var fde: FDEParameters
    public var tokenStorage: TokenStorage
    /// `FDEParameters.encoderVersion` at creation; a build with another version refuses the
    /// collection rather than mixing encodings.
    public var encoderVersion: Int

    public init(fde: FDEParameters, tokenStorage: TokenStorage = .float32) {
        self.fde = fde
        self.tokenStorage = tokenStorage
        self.encoderVersion = FDEParameters.encoderVersion
    }

    public var tokenDimension: Int { fde.tokenDimension }
}

/// A document of a multi-vector collection to insert or replace.
public struct MultiVectorRow: Sendable, Equatable {
    public var id: UInt64
    /// The tokens, packed row-major: `count × tokenDimension` floats, at least one token.
    public var tokens: [Float]
    /// Attributes by name; missing names are null.
    public var attributes: [String: AttributeValue]

    public init(id: UInt64, tokens: [Float], attributes: [String: AttributeValue] = [:]) {
        self.id = id
        self.tokens = tokens
        self.attributes = attributes
    }
}

/// A stored document as returned by ``VectorCollection/getDocument(_:)``.
public struct MultiVectorRecord: Sendable, Equatable {
    public var id: UInt64
    /// The stored tokens (as rounded by the collection's ``TokenStorage``), packed row-major.
    public var tokens: [Float]
    /// Non-null attributes by name.
    public var attributes: [String: AttributeValue]
    /// The fixed-dimensional encoding the index holds.
    public var encoding: [Float]
}

/// The most tokens one document or query may hold.
public let maxTokensPerSet = 65_536

/// Shared encoders by parameters (drawing the matrices costs milliseconds).
final class EncoderCache: @unchecked Sendable {
    private var encoders: [FDEParameters: FDEEncoder] = [:]
    private let lock = NSLock()
    static let shared = EncoderCache()
    func encoder(_ p: FDEParameters) -> FDEEncoder {
        lock.lock(); defer { lock.unlock() }
        if let e = encoders[p] { return e }
        let e = FDEEncoder(p)
        if encoders.count > 64 { encoders.removeAll() }
        encoders[p] = e
        return e
    }
}

extension Store {
    /// Creates a multi-vector (late-interaction) collection: each row holds a set of tokens of
    /// `fde.tokenDimension` floats, searched by Chamfer similarity (distance `−Chamfer`). The
    /// index (`indexRecipe`, e.g. `"HNSW32"` or `"PQ1280x8,Refine"`) is built over the rows'
    /// fixed-dimensional encodings with metric `ip`; candidates are re-ranked with exact Chamfer.
    @discardableResult
    public func createMultiVectorCollection(
        _ name: String, fde: FDEParameters, tokenStorage: TokenStorage = .float32,
        schema: Schema = try! Schema([]), indexRecipe: String? = nil
    ) throws -> VectorCollection {
        try CollectionInfo.validateName(name)
        if let problem = fde.problem {
            throw SextantError(.invalidArgument, "FDE parameters: \(problem)", context: ["collection": name])
        }
        guard db.tokens != nil else {
            throw SextantError(.readOnly, "the store is read-only", context: ["collection": name])
        }
        let recipe = try IndexRecipe(parsing: indexRecipe ?? "Flat")
        if recipe.components.contains(.sq8) && fde.dimension > ScalarQuantizer.maxDimension {
            throw SextantError(.invalidArgument, "SQ8 supports dimensions up to \(ScalarQuantizer.maxDimension); the encoding has \(fde.dimension)",
                               context: ["collection": name])
        }
        let info = try env.write { txn in
            try register(txn, name) { id in
                var info = CollectionInfo(name: name, id: id, dimension: fde.dimension, metric: .ip, schema: schema,
                                          indexRecipe: recipe.description, createdAt: Date().timeIntervalSince1970)
                info.multiVector = MultiVectorInfo(fde: fde, tokenStorage: tokenStorage)
                return info
            }
        }
        return VectorCollection(store: self, info: info)
    }
}

/// The token record of `sextant.tokens`: `count u32 LE ‖ count × dimension components`
/// (float32 or float16 LE, as the collection declares).
enum TokenRecord {
    static func encode(_ tokens: [Float], count: Int, storage: TokenStorage) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 4 + tokens.count * storage.width)
        out.withUnsafeMutableBytes { p in
            p.storeBytes(of: UInt32(count).littleEndian, as: UInt32.self)
            switch storage {
            case .float32:
                tokens.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: p[4...]).copyMemory(from: $0) }
            case .float16:
                for (i, x) in tokens.enumerated() {
                    p.storeBytes(of: HalfFloat.encode(x).littleEndian, toByteOffset: 4 + 2 * i, as: UInt16.self)
                }
            }
        }
        return out
    }

    /// The token count of a record, checking its length.
    static func count(_ v: UnsafeRawBufferPointer, dimension: Int, storage: TokenStorage) throws(SextantError) -> Int {
        guard v.count >= 4 else { throw SextantError(.corrupted, "token record has \(v.count) bytes") }
        let n = Int(UInt32(littleEndian: v.loadUnaligned(as: UInt32.self)))
        guard n >= 1, n <= maxTokensPerSet else { throw SextantError(.corrupted, "token record holds \(n) tokens") }
        guard v.count == 4 + n * dimension * storage.width else {
            throw SextantError(.corrupted, "token record of \(n) tokens × \(dimension) has \(v.count) bytes")
        }
        return n
    }

    /// Decodes a record's tokens into `out` (resized to hold them); returns the count.
    @discardableResult
    static func decode(_ v: UnsafeRawBufferPointer, dimension: Int, storage: TokenStorage, into out: inout [Float]) throws(SextantError) -> Int {
        let n = try count(v, dimension: dimension, storage: storage)
        let floats = n * dimension
        if out.count < floats { out = [Float](repeating: 0, count: floats) }
        out.withUnsafeMutableBufferPointer { o in
            switch storage {
            case .float32:
                UnsafeMutableRawPointer(o.baseAddress!).copyMemory(from: v.baseAddress! + 4, byteCount: floats * 4)
            case .float16:
                HalfFloat.decode(v.baseAddress! + 4, count: floats, into: o.baseAddress!)
            }
        }
        return n
    }
}

extension VectorCollection {
    /// The collection's multi-vector description, or `invalidArgument` for a single-vector one.
    func requireMultiVector() throws(SextantError) -> MultiVectorInfo {
        guard let mv = info.multiVector else {
            throw SextantError(.invalidArgument, "collection '\(name)' holds single vectors, not token sets", context: ["collection": name])
        }
        guard mv.encoderVersion == FDEParameters.encoderVersion else {
            throw SextantError.formatVersion(found: mv.encoderVersion, supported: FDEParameters.encoderVersion,
                "collection '\(name)' was encoded with FDE encoder version \(mv.encoderVersion); this build has version \(FDEParameters.encoderVersion) (dump and load it to re-encode)")
        }
        return mv
    }

    /// Single-vector writes would leave a multi-vector row without tokens.
    func rejectSingleVectorWrite() throws(SextantError) {
        if info.multiVector != nil {
            throw SextantError(.invalidArgument, "collection '\(name)' is multi-vector: write token sets with upsert(documents:)",
                               context: ["collection": name])
        }
    }

    var tokensDB: Database {
        get throws(SextantError) {
            guard let t = db.tokens else { throw SextantError(.corrupted, "the store has no token database", context: ["collection": name]) }
            return t
        }
    }

    /// Removes `id`'s token record (a no-op for single-vector collections).
    func deleteTokens(_ txn: Transaction, id: UInt64) throws {
        guard info.multiVector != nil else { return }
        let t = try tokensDB
        try Keys.withExternalKey(cid, id) { k in _ = try txn.delete(t, key: k) }
    }

    /// Validates a token set: at least one token, whole tokens of the dimension, finite (and
    /// representable in float16 when stored so). Returns the token count.
    func validate(tokens: [Float], _ mv: MultiVectorInfo, context: [String: String]) throws(SextantError) -> Int {
        var ctx = context
        ctx["collection"] = name
        let d = mv.tokenDimension
        guard !tokens.isEmpty else { throw SextantError(.invalidArgument, "a token set needs at least one token", context: ctx) }
        guard tokens.count % d == 0 else {
            ctx["expected"] = "a multiple of \(d)"; ctx["got"] = String(tokens.count)
            throw SextantError(.dimensionMismatch, "\(tokens.count) components are not whole tokens of dimension \(d)", context: ctx)
        }
        let n = tokens.count / d
        guard n <= maxTokensPerSet else {
            throw SextantError(.limitExceeded, "\(n) tokens; at most \(maxTokensPerSet) per set", context: ctx)
        }
        for (i, x) in tokens.enumerated() {
            if !x.isFinite {
                ctx["token"] = String(i / d); ctx["component"] = String(i % d)
                throw SextantError(.nonFiniteValue, "token \(i / d) component \(i % d) is \(x)", context: ctx)
            }
            if mv.tokenStorage == .float16 && abs(x) > HalfFloat.maxFinite {
                ctx["token"] = String(i / d); ctx["component"] = String(i % d)
                throw SextantError(.invalidArgument, "token \(i / d) component \(i % d) (\(x)) exceeds float16 storage", context: ctx)
            }
        }
        return n
    }

    /// Tokens as stored (rounded to float16 when stored so).
    static func stored(_ tokens: [Float], _ storage: TokenStorage) -> [Float] {
        guard storage == .float16 else { return tokens }
        let bits = tokens.map(HalfFloat.encode)
        var out = [Float](repeating: 0, count: tokens.count)
        bits.withUnsafeBytes { b in out.withUnsafeMutableBufferPointer { HalfFloat.decode(b.baseAddress!, count: tokens.count, into: $0.baseAddress!) } }
        return out
    }

    /// Inserts or replaces documents (token sets with attributes) in one transaction: all of
    /// them or, on any error, none. Each document's fixed-dimensional encoding is computed from
    /// its stored tokens and written as the row's vector; the tokens go to `sextant.tokens` in
    /// the same transaction. A later document with the same id replaces an earlier one.
    public func upsert(documents: [MultiVectorRow]) throws {
        let mv = try requireMultiVector()
        let encoder = EncoderCache.shared.encoder(mv.fde)
        var prepared: [PreparedRow] = []
        var records: [[UInt8]] = []
        prepared.reserveCapacity(documents.count)
        for (i, doc) in documents.enumerated() {
            let n = try validate(tokens: doc.tokens, mv, context: ["row": String(i)])
            let tokens = VectorCollection.stored(doc.tokens, mv.tokenStorage)
            let fde = tokens.withUnsafeBytes { encoder.encode($0.baseAddress!, count: n, side: .document) }
            prepared.append(try prepare(Row(id: doc.id, vector: fde, attributes: doc.attributes), position: i))
            records.append(TokenRecord.encode(tokens, count: n, storage: mv.tokenStorage))
        }
        let t = try tokensDB
        try store.env.write { txn in
            try write(prepared, txn)
            for (row, rec) in zip(prepared, records) {
                try Keys.withExternalKey(cid, row.id) { k in try rec.withUnsafeBytes { try txn.put(t, key: k, value: $0) } }
            }
        }
    }

    /// Inserts or replaces one document.
    public func upsert(document: MultiVectorRow) throws { try upsert(documents: [document]) }

    /// The document with external id `id`, or nil.
    public func getDocument(_ id: UInt64) throws -> MultiVectorRecord? {
        let mv = try requireMultiVector()
        let t = try tokensDB
        return try store.env.read { txn in
            _ = try state(txn)
            guard let slot = try Keys.withExternalKey(cid, id, { k in try txn.withValue(db.ids, key: k) { v in try VectorCollection.slot(v) } }) else { return nil }
            let rec = try record(txn, slot: slot)
            var tokens: [Float] = []
            let found = try Keys.withExternalKey(cid, id) { k in
                try txn.withValue(t, key: k) { v in try TokenRecord.decode(v, dimension: mv.tokenDimension, storage: mv.tokenStorage, into: &tokens) }
            }
            guard found != nil else {
                throw SextantError(.corrupted, "row \(id) has no token record", context: ["collection": name, "id": String(id)])
            }
            return MultiVectorRecord(id: id, tokens: tokens, attributes: rec.attributes, encoding: rec.vector)
        }
    }

    /// Verifies the token records of a multi-vector collection: one per live row and none
    /// other, each decoding to 1…65,536 finite tokens; `deep` also re-encodes every document
    /// and compares the result with the stored vector bit for bit. Problems go to `note`.
    func checkTokens(_ txn: Transaction, deep: Bool, note: (String) -> Void) throws {
        guard let mv = info.multiVector else { return }
        guard let t = db.tokens else { note("collection '\(name)': the store has no token database"); return }
        var ids = Set<UInt64>()
        try txn.scan(db.ids, prefix: Keys.prefix(cid)) { k, _ in
            if let (_, ext) = Keys.decodeExternal(k) { ids.insert(ext) }
            return true
        }
        let encoder = deep ? EncoderCache.shared.encoder(mv.fde) : nil
        let reader = try vectorReader(txn)
        var tokens: [Float] = []
        var seen = 0
        try txn.scan(t, prefix: Keys.prefix(cid)) { k, v in
            guard let (_, ext) = Keys.decodeExternal(k) else {
                note("collection '\(name)': token key of \(k.count) bytes")
                return true
            }
            guard ids.contains(ext) else {
                note("collection '\(name)': token record of id \(ext), which is not a live row")
                return true
            }
            seen += 1
            let n: Int
            do { n = try TokenRecord.decode(v, dimension: mv.tokenDimension, storage: mv.tokenStorage, into: &tokens) } catch {
                note("collection '\(name)': tokens of id \(ext): \((error as? SextantError)?.message ?? "\(error)")")
                return true
            }
            if tokens.prefix(n * mv.tokenDimension).contains(where: { !$0.isFinite }) {
                note("collection '\(name)': tokens of id \(ext) are not finite")
            } else if let encoder {
                let fde = tokens.withUnsafeBytes { encoder.encode($0.baseAddress!, count: n, side: .document) }
                let slot = try Keys.withExternalKey(cid, ext) { kk in try txn.withValue(db.ids, key: kk) { vv in try VectorCollection.slot(vv) } }
                if let slot {
                    let (_, p) = try vectorEntry(reader, slot)
                    let same = fde.withUnsafeBytes { memcmp($0.baseAddress!, p, 4 * dimension) == 0 }
                    if !same { note("collection '\(name)': the stored encoding of id \(ext) differs from its tokens' encoding") }
                }
            }
            return true
        }
        if seen != ids.count {
            note("collection '\(name)': \(ids.count) live rows but \(seen) of them have token records")
        }
    }

    /// The check of this collection's token records (see `Store.check(deep:)`).
    public func checkTokens(deep: Bool = true) throws -> [String] {
        try store.env.read { txn in
            var problems: [String] = []
            try checkTokens(txn, deep: deep) { if problems.count < 1000 { problems.append($0) } }
            return problems
        }
    }
}

@_spi(Testing)
extension RecordCodec {
    /// Decodes a token record of `sextant.tokens` (`float32` or `float16` storage): the tokens,
    /// packed row-major.
    public static func decodeTokenRecord(_ bytes: [UInt8], dimension: Int, float16: Bool) throws -> [Float] {
        var out: [Float] = []
        let n = try bytes.withUnsafeBytes { try TokenRecord.decode($0, dimension: dimension, storage: float16 ? .float16 : .float32, into: &out) }
        return Array(out.prefix(n * dimension))
    }
}

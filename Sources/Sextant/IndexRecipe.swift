/// An index recipe in the style of FAISS's index factory: comma-separated components.
///
/// ```
/// recipe    := component ("," component)*
/// component := "Flat"                 exact scan of full vectors (the default)
///            | "HNSW" M ["_" efC]     graph with M links per node (efConstruction, default 200)
///            | "PQ" m "x" bits ["fs"] product quantizer: m sub-quantizers of 8 or 4 bits
///                                     ("fs" = 4-bit fast-scan layout)
///            | "OPQ" m                learned rotation before PQ with m sub-spaces
///            | "Refine"               re-rank candidates with full vectors
///            | "SQ8"                  traverse the graph over 8-bit scalar codes, re-rank
///                                     the beam with full vectors
/// ```
/// Component names are case-insensitive; ``description`` is the canonical spelling, which is
/// what the store persists. At most one of each kind; OPQ and Refine require PQ; SQ8 requires
/// HNSW and excludes PQ (the codes of a collection are of one kind).
public struct IndexRecipe: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// One component of a recipe.
    public enum Component: Sendable, Equatable, Hashable {
        /// No approximate index: every search is exact.
        case flat
        /// An HNSW graph with `m` links per node (2m on level 0) and `efConstruction`.
        case hnsw(m: Int, efConstruction: Int)
        /// Product quantization: `m` sub-quantizers of `bits` bits (4-bit codes may use fast-scan).
        case pq(m: Int, bits: Int, fastScan: Bool)
        /// An OPQ rotation before PQ (accepted and persisted; not yet applied).
        case opq(m: Int)
        /// Re-rank code-scan candidates with full vectors.
        case refine
        /// 8-bit scalar codes that graph traversal scores instead of the full vectors.
        case sq8
    }

    /// The components in canonical order.
    public private(set) var components: [Component]

    /// Parses and validates a recipe such as `HNSW32,PQ48x8,Refine`.
    ///
    /// - Throws: `invalidArgument` for an unknown or misplaced component or out-of-range numbers.
    public init(parsing text: String) throws(SextantError) {
        var comps: [Component] = []
        var column = 1
        for raw in text.split(separator: ",", omittingEmptySubsequences: false) {
            let part = raw.trimmingCharacters(in: .whitespaces)
            let at = column + (raw.count - raw.drop(while: { $0 == " " }).count)
            column += raw.count + 1
            func fail(_ expected: String) -> SextantError {
                SextantError(.invalidArgument, "index recipe '\(text)' at column \(at): expected \(expected), found '\(part)'",
                             context: ["position": String(at), "expected": expected])
            }
            let lower = part.lowercased()
            var comp: Component
            if lower == "flat" {
                comp = .flat
            } else if lower == "refine" {
                comp = .refine
            } else if lower == "sq8" {
                comp = .sq8
            } else if lower.hasPrefix("hnsw") {
                let rest = lower.dropFirst(4).split(separator: "_", omittingEmptySubsequences: false)
                guard rest.count == 1 || rest.count == 2, let m = Int(rest[0]), (2...256).contains(m) else {
                    throw fail("HNSW<M> with M in 2…256, optionally _<efConstruction>")
                }
                var ef = 200
                if rest.count == 2 {
                    guard let e = Int(rest[1]), (1...100_000).contains(e) else { throw fail("an efConstruction of 1…100000 after '_'") }
                    ef = e
                }
                comp = .hnsw(m: m, efConstruction: ef)
            } else if lower.hasPrefix("opq") {
                guard let m = Int(lower.dropFirst(3)), (1...4096).contains(m) else { throw fail("OPQ<m> with m in 1…4096") }
                comp = .opq(m: m)
            } else if lower.hasPrefix("pq") {
                var body = lower.dropFirst(2)
                var fs = false
                if body.hasSuffix("fs") { fs = true; body = body.dropLast(2) }
                let mb = body.split(separator: "x", omittingEmptySubsequences: false)
                guard (1...2).contains(mb.count), let m = Int(mb[0]), (1...4096).contains(m) else {
                    throw fail("PQ<m>x<bits> with m in 1…4096")
                }
                let bits = mb.count == 2 ? Int(mb[1]) : 8
                guard let bits, bits == 8 || bits == 4 else { throw fail("PQ bits of 8 or 4") }
                if fs && bits != 4 { throw fail("'fs' (fast-scan) only with 4-bit codes") }
                if fs && m > 256 { throw fail("'fs' (fast-scan) with at most 256 sub-quantizers") }
                comp = .pq(m: m, bits: bits, fastScan: fs)
            } else {
                throw fail("Flat, HNSW<M>, PQ<m>x<bits>, OPQ<m>, Refine or SQ8")
            }
            func kind(_ c: Component) -> Int {
                switch c { case .flat: 0; case .hnsw: 1; case .pq: 2; case .opq: 3; case .refine: 4; case .sq8: 5 }
            }
            if comps.contains(where: { kind($0) == kind(comp) }) { throw fail("each component at most once") }
            comps.append(comp)
        }
        func has(_ k: (Component) -> Bool) -> Bool { comps.contains(where: k) }
        let hasPQ = has { if case .pq = $0 { true } else { false } }
        if has({ $0 == .refine }) && !hasPQ {
            throw SextantError(.invalidArgument, "index recipe '\(text)': Refine needs a PQ component", context: ["expected": "PQ before Refine"])
        }
        if has({ if case .opq = $0 { true } else { false } }) && !hasPQ {
            throw SextantError(.invalidArgument, "index recipe '\(text)': OPQ needs a PQ component", context: ["expected": "PQ with OPQ"])
        }
        if has({ $0 == .sq8 }) {
            guard has({ if case .hnsw = $0 { true } else { false } }) else {
                throw SextantError(.invalidArgument, "index recipe '\(text)': SQ8 needs an HNSW component", context: ["expected": "HNSW with SQ8"])
            }
            if hasPQ {
                throw SextantError(.invalidArgument, "index recipe '\(text)': SQ8 and PQ cannot be combined", context: ["expected": "SQ8 or PQ"])
            }
        }
        if has({ $0 == .flat }) && comps.count > 1 {
            throw SextantError(.invalidArgument, "index recipe '\(text)': Flat stands alone", context: ["expected": "Flat alone"])
        }
        // Canonical order: OPQ, HNSW, PQ, Refine, SQ8.
        func order(_ c: Component) -> Int {
            switch c { case .opq: 0; case .flat: 1; case .hnsw: 2; case .pq: 3; case .refine: 4; case .sq8: 5 }
        }
        components = comps.sorted { order($0) < order($1) }
    }

    /// The canonical text of the recipe (how it is stored).
    public var description: String {
        components.map { c in
            switch c {
            case .flat: "Flat"
            case .hnsw(let m, let ef): ef == 200 ? "HNSW\(m)" : "HNSW\(m)_\(ef)"
            case .pq(let m, let bits, let fs): "PQ\(m)x\(bits)" + (fs ? "fs" : "")
            case .opq(let m): "OPQ\(m)"
            case .refine: "Refine"
            case .sq8: "SQ8"
            }
        }.joined(separator: ",")
    }
}
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Namespace for the HNSW (hierarchical navigable small world) graph algorithms: search,
/// filtered search, insert, bulk build, delete repair, update and check. Every algorithm is
/// generic over ``GraphStorage`` / ``MutableGraphStorage`` and ``GraphDistanceSource``.
public enum HNSW {}

/// Construction parameters of an HNSW graph. Stored with the graph: the level of every node
/// and the degree bounds follow from them.
public struct HNSWParameters: Sendable, Hashable {
    /// Maximum degree above level 0; level 0 allows `2 * m` (hnswlib's convention).
    public var m: Int
    /// Beam width of the searches that insert runs.
    public var efConstruction: Int
    /// Seeds the level assignment: the same (node id, seed) always gets the same level, so
    /// rebuilding a graph from the same rows reproduces it.
    public var seed: UInt64
    /// `mL` of the paper: a node reaches level `l` with probability `exp(-l / mL)`.
    /// Defaults to `1 / ln(m)`.
    public var levelMultiplier: Double
    /// Levels are capped here (keeps level records and the descent bounded).
    public var maxLevel: Int

    /// Parameters with hnswlib's defaults (`m` 16, `efConstruction` 200, `mL` = 1/ln m).
    public init(m: Int = 16, efConstruction: Int = 200, seed: UInt64 = 0x5EC7A47, levelMultiplier: Double? = nil, maxLevel: Int = 16) {
        precondition(m >= 2, "m must be at least 2")
        precondition(efConstruction >= 1, "efConstruction must be positive")
        precondition((0...64).contains(maxLevel), "maxLevel out of range")
        self.m = m
        self.efConstruction = efConstruction
        self.seed = seed
        self.levelMultiplier = levelMultiplier ?? 1 / log(Double(m))
        self.maxLevel = maxLevel
    }

    /// The fixed maximum length of a neighbour list at `level`: `2m` at 0, `m` above.
    @inlinable
    public func maxDegree(atLevel level: Int) -> Int { level == 0 ? 2 &* m : m }

    /// The deterministic level of `node`: `floor(-ln(u) * mL)` for a `u` in (0, 1] hashed
    /// from the node id and ``seed``, capped at ``maxLevel``.
    public func level(for node: UInt32) -> Int {
        // splitmix64 finaliser over (seed, id): independent, reproducible draws per id.
        var z = seed &+ (UInt64(node) &+ 1) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        let u = Double((z >> 11) &+ 1) * 0x1.0p-53
        let l = -log(u) * levelMultiplier
        return l >= Double(maxLevel) ? maxLevel : Int(l)
    }
}

/// The distance a kernel computes. Always a *distance*: smaller is closer.
///
/// This mirrors `SextantCore.Metric` case for case; it lives here because the kernels
/// module is pure compute with no dependencies.
///
/// - `l2`: squared Euclidean distance, `Σ (q_i − x_i)²`.
/// - `ip`: negative inner product, `−Σ q_i x_i`.
/// - `cosine`: `1 − (q·x) / (‖q‖ ‖x‖)`. A zero vector on either side gives exactly `1`
///   (treated as orthogonal) rather than NaN; the engine rejects zero vectors before they
///   get here, so this only keeps the kernels total.
public enum DistanceKind: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case l2
    case ip
    case cosine

    /// The metric name, as `SextantCore.Metric` spells it.
    public var description: String {
        switch self {
        case .l2: "l2"
        case .ip: "ip"
        case .cosine: "cosine"
        }
    }
}

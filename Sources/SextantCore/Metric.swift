/// A distance: smaller is closer, always.
///
/// - `l2`: squared Euclidean distance, `Σ (q_i − x_i)²`.
/// - `ip`: negative inner product, `−Σ q_i x_i`.
/// - `cosine`: `1 − (q·x) / (‖q‖ ‖x‖)`; zero vectors are rejected.
public enum Metric: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case l2
    case ip
    case cosine

    public init(parsing text: String) throws(SextantError) {
        guard let m = Metric(rawValue: text.lowercased()) else {
            throw SextantError(.invalidArgument, "unknown metric '\(text)'; expected l2, ip or cosine")
        }
        self = m
    }

    public var description: String { rawValue }
}

import Foundation
import SextantCore

/// The recall the approximate plans reach on this collection, measured on the store itself the
/// way the ``CostModel`` is (see `VectorCollection.calibrate(queries:)`), so that the planner can
/// choose the cheapest plan — and its beam width or re-rank depth — whose *expected* recall
/// meets ``SearchOptions/recall``.
///
/// For each approximate plan and each measured selectivity band it holds a curve: recall@10
/// against the plan's knob (the beam width `ef` of the graph plans, the re-rank depth of the
/// codes plan), the worst of three predicate families — rows chosen independently of the
/// vectors, rows near the query (correlated), rows around a point far from it
/// (anti-correlated) — each averaged over sampled stored vectors used as queries (their own
/// rows excluded). Recall is made non-decreasing in the knob along each curve (noise aside, a
/// wider beam or deeper re-rank never finds less).
///
/// A query of `k` above 10 scales the knob by `k / 10`: the beam (or re-rank list) has to hold
/// proportionally more candidates for the same fraction of true neighbours. A smaller `k` keeps
/// the knob measured at 10 (finding the single nearest row with a beam of 2 is not as likely as
/// finding ten with a beam of 20).
public struct RecallModel: Sendable, Equatable {
    /// The k the curves were measured at.
    public static let measuredK = 10

    /// Recall at one knob setting.
    public struct Point: Sendable, Equatable {
        public var knob: Int
        public var recall: Double
        public init(knob: Int, recall: Double) {
            self.knob = knob
            self.recall = recall
        }
    }

    /// One plan's recall curve at one selectivity.
    public struct Curve: Sendable, Equatable {
        public var selectivity: Double
        /// Ascending knobs, non-decreasing recall.
        public var points: [Point]
        public init(selectivity: Double, points: [Point]) {
            self.selectivity = selectivity
            // Monotone in the knob: a measured dip is noise of the sample.
            var best = 0.0
            self.points = points.sorted { $0.knob < $1.knob }.map { p in
                best = max(best, p.recall)
                return Point(knob: p.knob, recall: best)
            }
        }
    }

    /// Curves per plan, by descending selectivity.
    public var curves: [PlanKind: [Curve]]
    /// Whether the curves were measured with the workload's own query vectors
    /// (`calibrate(queries:)`) rather than points made from stored rows.
    public var fromWorkload: Bool

    public init(curves: [PlanKind: [Curve]], fromWorkload: Bool = false) {
        self.curves = curves.mapValues { $0.sorted { $0.selectivity > $1.selectivity } }
        self.fromWorkload = fromWorkload
    }

    /// The recall a plan is chosen to reach for `target`. Curves from points made from stored
    /// rows speak for queries easier than real ones (which sit farther from the rows and need
    /// wider beams), so the plan must reach half the misses the target allows; curves from the
    /// workload's vectors speak for its queries, and the target stands.
    public func aim(for target: Double) -> Double {
        fromWorkload ? target : 1 - (1 - target) / 2
    }

    /// The curves that bracket selectivity `s` (one or two). Between two measured bands both
    /// are consulted and the worse answer taken; outside the measured range the nearest band
    /// stands for it.
    private func bracket(_ kind: PlanKind, _ s: Double) -> [Curve] {
        guard let cs = curves[kind], !cs.isEmpty else { return [] }
        if s >= cs[0].selectivity { return [cs[0]] }
        for i in 1..<cs.count where s >= cs[i].selectivity { return [cs[i - 1], cs[i]] }
        return [cs[cs.count - 1]]
    }

    /// Knob at k = 10 equivalent to `knob` at `k`.
    private static func scaledDown(_ knob: Int, k: Int) -> Double {
        Double(knob) * Double(measuredK) / Double(max(k, measuredK))
    }

    /// Recall of a curve at knob `x` (at k = 10), interpolated linearly between measured knobs;
    /// below the smallest measured knob, 0 (not known to reach anything); above the largest,
    /// the largest's.
    private static func recall(_ c: Curve, at x: Double) -> Double {
        guard let first = c.points.first else { return 0 }
        if x < Double(first.knob) { return 0 }
        for i in 1..<c.points.count where x < Double(c.points[i].knob) {
            let (a, b) = (c.points[i - 1], c.points[i])
            let t = (x - Double(a.knob)) / Double(b.knob - a.knob)
            return a.recall + t * (b.recall - a.recall)
        }
        return c.points[c.points.count - 1].recall
    }

    /// Expected recall@k of `kind` at selectivity `s` with knob `knob`; nil when the plan was
    /// not measured.
    public func expectedRecall(_ kind: PlanKind, selectivity s: Double, k: Int, knob: Int) -> Double? {
        let cs = bracket(kind, s)
        guard !cs.isEmpty else { return nil }
        let x = Self.scaledDown(knob, k: k)
        return cs.map { Self.recall($0, at: x) }.min()
    }

    /// The smallest knob (scaled to `k`) at which `kind` is expected to reach `target` at
    /// selectivity `s`, with that expected recall; nil when no measured setting reaches it (the
    /// plan is then not eligible for this target).
    ///
    /// Between the two measured knobs around the target the knob is read off the straight line
    /// joining them: recall grows with diminishing returns as the beam or re-rank depth widens
    /// (a concave curve), so the chord lies below it and the knob it gives errs on the wide side.
    /// When the curve is not increasing there (the chord would not reach the target by that
    /// knob), the measured knob stands.
    public func setting(_ kind: PlanKind, selectivity s: Double, k: Int, target: Double) -> (knob: Int, recall: Double)? {
        let cs = bracket(kind, s)
        guard !cs.isEmpty else { return nil }
        func knob(_ x: Double) -> Int { max(k, Int((x * Double(max(k, Self.measuredK)) / Double(Self.measuredK)).rounded(.up))) }
        var measured = 0
        var interpolated = 0.0
        for c in cs {
            guard let i = c.points.firstIndex(where: { $0.recall >= target }) else { return nil }
            let b = c.points[i]
            measured = max(measured, b.knob)
            var x = Double(b.knob)
            if i > 0, case let a = c.points[i - 1], b.recall > a.recall {
                x = Double(a.knob) + (target - a.recall) / (b.recall - a.recall) * Double(b.knob - a.knob)
            }
            interpolated = max(interpolated, x)
        }
        let chosen = knob(interpolated)
        if let r = expectedRecall(kind, selectivity: s, k: k, knob: chosen), r >= target { return (chosen, r) }
        let fallback = knob(Double(measured))
        return (fallback, expectedRecall(kind, selectivity: s, k: k, knob: fallback) ?? 0)
    }
}

// MARK: Persistence (inside the cost model record)

extension RecallModel {
    /// The stored JSON form (inside the cost model record).
    public var json: JSONValue {
        .object(JSONObject(PlanKind.allCases.compactMap { kind -> (key: String, value: JSONValue)? in
            guard let cs = curves[kind] else { return nil }
            return (kind.rawValue, .array(cs.map { c in
                .array([.double(c.selectivity), .array(c.points.map { .array([.int(Int64($0.knob)), .double($0.recall)]) })])
            }))
        } + (fromWorkload ? [(key: "fromWorkload", value: JSONValue.bool(true))] : [])))
    }

    /// Decodes the form ``json`` writes; nil for anything else (the model is then measured again).
    init?(json: JSONValue) {
        guard case .object(let o) = json else { return nil }
        var curves: [PlanKind: [Curve]] = [:]
        func number(_ v: JSONValue) -> Double? {
            switch v {
            case .double(let d): d.isFinite ? d : nil
            case .int(let i): Double(i)
            default: nil
            }
        }
        var fromWorkload = false
        for (key, value) in o.members {
            if key == "fromWorkload" {
                guard case .bool(let b) = value else { return nil }
                fromWorkload = b
                continue
            }
            guard let kind = PlanKind(rawValue: key), kind != .exact, case .array(let cs) = value else { return nil }
            var out: [Curve] = []
            for c in cs {
                guard case .array(let pair) = c, pair.count == 2, let s = number(pair[0]), s > 0, s <= 1,
                      case .array(let ps) = pair[1], !ps.isEmpty else { return nil }
                var points: [Point] = []
                for p in ps {
                    guard case .array(let kr) = p, kr.count == 2, case .int(let knob) = kr[0], knob >= 1, knob <= 1 << 24,
                          let r = number(kr[1]), r >= 0, r <= 1 else { return nil }
                    points.append(Point(knob: Int(knob), recall: r))
                }
                out.append(Curve(selectivity: s, points: points))
            }
            curves[kind] = out
        }
        self.init(curves: curves, fromWorkload: fromWorkload)
    }
}

import Foundation

/// How a filter was answered: one node per predicate node, with the index each used.
public struct FilterExplanation: Sendable, CustomStringConvertible {
    /// One part of a predicate and how it was answered.
    public struct Node: Sendable {
        /// The sub-predicate, in SQL form.
        public var expression: String
        /// How it was answered: `posting lookup`, `range scan`, `null list`, `complement`,
        /// `intersection`, `union`, `constant`, or `row check (field not indexed)`.
        public var access: String
        /// Rows the index proves match this node.
        public var matches: Int
        /// Rows the index cannot decide (checked against the stored row).
        public var undecided: Int
        /// Index entries read for this node (children included).
        public var keysRead: Int
        /// The parts of a compound predicate.
        public var children: [Node]
    }

    /// The whole predicate.
    public var root: Node
    /// Exact number of live rows matching the filter.
    public var matchCount: Int
    /// Live rows in the collection.
    public var liveRows: Int
    /// Rows whose stored attributes had to be read to decide (0 when every field is indexed).
    public var rowsChecked: Int
    /// Index entries read in all.
    public var indexKeysRead: Int
    /// Wall time of the evaluation.
    public var seconds: Double
    /// A relative cost for the planner: index entries read plus row checks (a row check costs
    /// about as much as several index entries; the planner calibrates the ratio).
    public var estimatedCost: Double

    /// An indented tree of the parts, their access paths and counts.
    public var description: String {
        var out = "filter matches \(matchCount) of \(liveRows) rows (\(String(format: "%.3f", seconds * 1000)) ms, \(indexKeysRead) index entries, \(rowsChecked) rows checked)\n"
        func walk(_ n: Node, _ depth: Int) {
            out += String(repeating: "  ", count: depth) + "\(n.access): \(n.expression) → \(n.matches) rows"
            if n.undecided > 0 { out += ", \(n.undecided) undecided" }
            out += " [\(n.keysRead) entries]\n"
            for c in n.children { walk(c, depth + 1) }
        }
        walk(root, 1)
        return out
    }
}

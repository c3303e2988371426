// Deletes (batch repair of tombstoned nodes), updates, export and the consistency check.

/// What ``HNSW/repair(deleted:storage:distances:parameters:context:)`` did.
public struct HNSWRepairSummary: Sendable, Hashable {
    /// Neighbour lists that pointed into the deleted set and were re-selected.
    public var listsRewritten = 0
    /// Deleted nodes removed from the graph (their slots are free for inserts).
    public var nodesRemoved = 0
    /// The entry point afterwards.
    public var entryPoint: GraphEntryPoint?
    /// Live nodes that the re-selection left unreachable and ``HNSW/reconnect(storage:distances:parameters:context:deleted:)`` linked back.
    public var nodesReconnected = 0

    public init() {}
}

extension HNSW {
    /// Consolidates deletes (FreshDiskANN-style): every live node with an edge into
    /// `deleted` re-selects its list, with the heuristic, from its live neighbours plus the
    /// live neighbours of the deleted ones it pointed to (looking through up to two deleted
    /// nodes in a row). The entry point moves to the highest live node if it was deleted, the
    /// deleted nodes are removed, and live nodes left unreachable are linked back
    /// (``reconnect(storage:distances:parameters:context:deleted:)``). Afterwards no edge
    /// points to a deleted node and every live node is reachable at level 0.
    ///
    /// Scans every node once (the graph keeps no in-edges), so batch the deletes.
    @inlinable
    public static func repair<S: MutableGraphStorage, D: GraphDistanceSource>(
        deleted: Bitmap, storage: inout S, distances: D, parameters: HNSWParameters, context: HNSWSearchContext
    ) throws -> HNSWRepairSummary {
        var summary = HNSWRepairSummary()
        guard !deleted.isEmpty else {
            summary.entryPoint = try storage.entryPoint()
            return summary
        }
        let bound = storage.nodeIDBound
        var list = [UInt32]()
        var frontier = [UInt32]()
        var next = [UInt32]()
        var keys = [UInt64]()
        var u: UInt32 = 0
        while u < bound {
            defer { u &+= 1 }
            guard !deleted.contains(u), let top = try storage.level(of: u) else { continue }
            for lc in 0...top {
                list.removeAll(keepingCapacity: true)
                try storage.withNeighbors(of: u, level: lc) { list.append(contentsOf: $0) }
                guard list.contains(where: { deleted.contains($0) }) else { continue }
                context.begin(bound: bound)
                context.markVisited(u)
                keys.removeAll(keepingCapacity: true)
                frontier.removeAll(keepingCapacity: true)
                func consider(_ x: UInt32) throws {
                    guard x < bound, context.visited.insert(x) else { return }
                    if deleted.contains(x) {
                        frontier.append(x)
                    } else if let l = try storage.level(of: x), l >= lc {
                        keys.append(_hnswKey(try distances.distance(between: u, and: x), x))
                    }
                }
                for x in list { try consider(x) }
                // Look through deleted neighbours, then through deleted neighbours of those.
                for _ in 0..<2 {
                    next.removeAll(keepingCapacity: true)
                    swap(&frontier, &next)
                    for d in next {
                        list.removeAll(keepingCapacity: true)
                        try storage.withNeighbors(of: d, level: lc) { list.append(contentsOf: $0) }
                        for x in list { try consider(x) }
                    }
                }
                keys.sort()
                let maxDegree = parameters.maxDegree(atLevel: lc)
                context.reserveSelection(keys: 0, selected: maxDegree, link: 0)
                let selected = context.selected
                let kept = try keys.withUnsafeMutableBufferPointer {
                    try selectNeighbors($0.baseAddress!, count: $0.count, maxCount: maxDegree, distances: distances, into: selected)
                }
                try storage.setNeighbors(of: u, level: lc, to: UnsafeBufferPointer(start: selected, count: kept))
                summary.listsRewritten += 1
            }
        }
        var entry = try storage.entryPoint()
        if let e = entry, deleted.contains(e.node) { entry = nil }
        if entry == nil {
            entry = try highestNode(storage: storage) { !deleted.contains($0) }
            try storage.setEntryPoint(entry)
        }
        for d in deleted where try storage.level(of: d) != nil {
            try storage.removeNode(d)
            summary.nodesRemoved += 1
        }
        summary.entryPoint = entry
        summary.nodesReconnected = try reconnect(storage: &storage, distances: distances, parameters: parameters, context: context)
        return summary
    }

    /// Re-places `node` after its vector changed (the source must already return the new
    /// vector): each neighbour that links back to it re-selects its list without it, from
    /// its other neighbours plus the node's, then the node is removed and inserted again at
    /// the same level. Links to it from elsewhere stay (they point to a live node at that level).
    @inlinable
    public static func update<S: MutableGraphStorage, D: GraphDistanceSource>(
        _ node: UInt32, storage: inout S, distances: D, parameters: HNSWParameters, context: HNSWSearchContext
    ) throws {
        guard let top = try storage.level(of: node) else {
            try insert(node, storage: &storage, distances: distances, parameters: parameters, context: context)
            return
        }
        for lc in 0...top {
            var own = [UInt32]()
            try storage.withNeighbors(of: node, level: lc) { own.append(contentsOf: $0) }
            var usable = [UInt32]()
            for x in own where x != node {
                if let l = try storage.level(of: x), l >= lc { usable.append(x) }
            }
            let maxDegree = parameters.maxDegree(atLevel: lc)
            for n in usable {
                var keys = [UInt64]()
                context.reserveSelection(keys: 0, selected: 0, link: maxDegree &+ usable.count &+ 1)
                let out = context.linkIDs
                try storage.updateNeighbors(of: n, level: lc) { list -> UnsafeBufferPointer<UInt32>? in
                    guard list.contains(node) else { return nil }
                    var seen = Set<UInt32>()
                    for c in list where c != node && c != n && seen.insert(c).inserted {
                        keys.append(_hnswKey(try distances.distance(between: n, and: c), c))
                    }
                    for c in usable where c != n && seen.insert(c).inserted {
                        keys.append(_hnswKey(try distances.distance(between: n, and: c), c))
                    }
                    keys.sort()
                    let kept = try keys.withUnsafeMutableBufferPointer {
                        try selectNeighbors($0.baseAddress!, count: $0.count, maxCount: maxDegree, distances: distances, into: out)
                    }
                    return UnsafeBufferPointer(start: out, count: kept)
                }
            }
        }
        if let e = try storage.entryPoint(), e.node == node {
            try storage.setEntryPoint(try highestNode(storage: storage) { $0 != node })
        }
        try storage.removeNode(node)
        // At its old level, not the one its id draws: links into it from other nodes' upper
        // lists stay, and a graph whose nodes were renamed (`partition`) has levels of its own.
        try insert(node, level: top, storage: &storage, distances: distances, parameters: parameters, context: context)
    }

    /// The node with the highest level (smallest id on ties) among those `include` accepts.
    @inlinable
    static func highestNode<S: GraphStorage>(storage: S, include: (UInt32) -> Bool) throws -> GraphEntryPoint? {
        var best: GraphEntryPoint? = nil
        var id: UInt32 = 0
        let bound = storage.nodeIDBound
        while id < bound {
            if include(id), let l = try storage.level(of: id), l > (best?.level ?? -1) {
                best = GraphEntryPoint(node: id, level: l)
            }
            id &+= 1
        }
        return best
    }

    /// Copies every node, list and the entry point of `source` into `destination` (export
    /// to another store, e.g. from an in-memory build into the database).
    @inlinable
    public static func copy<S: GraphStorage, T: MutableGraphStorage>(from source: S, into destination: inout T) throws {
        let bound = source.nodeIDBound
        var id: UInt32 = 0
        while id < bound {
            if let top = try source.level(of: id) {
                try destination.setLevel(top, of: id)
                for l in 0...top {
                    try source.withNeighbors(of: id, level: l) { try destination.setNeighbors(of: id, level: l, to: $0) }
                }
            }
            id &+= 1
        }
        try destination.setEntryPoint(try source.entryPoint())
    }
}

// MARK: - Check

/// A structural problem found by ``HNSW/check(storage:parameters:deleted:issueLimit:)``.
public enum GraphIssue: Sendable, Hashable, CustomStringConvertible {
    /// The entry point is missing, absent from the graph, deleted, or not at the top level.
    case invalidEntryPoint(String)
    /// An edge to an id that is not in the graph, or is in it below the edge's level.
    case danglingEdge(from: UInt32, level: Int, to: UInt32)
    /// An edge to a deleted (tombstoned) node.
    case edgeToDeleted(from: UInt32, level: Int, to: UInt32)
    /// A list longer than the level's maximum degree.
    case overDegree(node: UInt32, level: Int, degree: Int, limit: Int)
    /// A node listed as its own neighbour.
    case selfLoop(node: UInt32, level: Int)
    /// The same neighbour twice in one list.
    case duplicateEdge(from: UInt32, level: Int, to: UInt32)
    /// A live node that level-0 traversal from the entry point never reaches.
    case unreachable(node: UInt32)

    public var description: String {
        switch self {
        case .invalidEntryPoint(let why): "invalid entry point: \(why)"
        case .danglingEdge(let f, let l, let t): "dangling edge \(f) -> \(t) at level \(l)"
        case .edgeToDeleted(let f, let l, let t): "edge to deleted node \(f) -> \(t) at level \(l)"
        case .overDegree(let n, let l, let d, let m): "node \(n) has \(d) neighbours at level \(l) (limit \(m))"
        case .selfLoop(let n, let l): "node \(n) links to itself at level \(l)"
        case .duplicateEdge(let f, let l, let t): "duplicate edge \(f) -> \(t) at level \(l)"
        case .unreachable(let n): "node \(n) is unreachable from the entry point"
        }
    }
}

/// Out-degree statistics of one level.
public struct GraphDegreeStatistics: Sendable, Hashable {
    public var level: Int
    /// Nodes whose top level is at least ``level``.
    public var nodes = 0
    public var edges = 0
    public var minDegree = 0
    public var maxDegree = 0
    public var meanDegree: Double { nodes == 0 ? 0 : Double(edges) / Double(nodes) }

    public init(level: Int) { self.level = level }
}

/// The outcome of a graph check: problems (reported, never trapped on) and statistics.
public struct GraphCheckReport: Sendable {
    /// The first problems found (at most the check's `issueLimit`).
    public var issues: [GraphIssue] = []
    /// All problems found, including those not listed.
    public var issueCount = 0
    /// Nodes in the graph, and those of them not deleted.
    public var nodeCount = 0
    public var liveNodeCount = 0
    /// Live nodes not reachable at level 0 from the entry point.
    public var unreachableCount = 0
    /// Degree statistics per level, level 0 first.
    public var degrees: [GraphDegreeStatistics] = []
    public var entryPoint: GraphEntryPoint?
    /// No problem found.
    public var isClean: Bool { issueCount == 0 }

    public init() {}
}

extension HNSW {
    /// Checks the graph's structure: entry point, edges to missing or deleted nodes, degree
    /// bounds, self-loops and duplicates, and reachability of every live node at level 0
    /// (traversing through deleted nodes, as search does). Storage errors propagate;
    /// structural problems are reported.
    public static func check<S: GraphStorage>(
        storage: S, parameters: HNSWParameters, deleted: Bitmap? = nil, issueLimit: Int = 100
    ) throws -> GraphCheckReport {
        var report = GraphCheckReport()
        func issue(_ i: GraphIssue) {
            report.issueCount += 1
            if report.issues.count < issueLimit { report.issues.append(i) }
        }
        let bound = storage.nodeIDBound
        var levels = [Int8](repeating: -1, count: Int(bound))
        var topLevel = -1
        var id: UInt32 = 0
        while id < bound {
            if let l = try storage.level(of: id) {
                levels[Int(id)] = Int8(clamping: l)
                topLevel = max(topLevel, l)
                report.nodeCount += 1
                if !(deleted?.contains(id) ?? false) { report.liveNodeCount += 1 }
            }
            id &+= 1
        }
        let entry = try storage.entryPoint()
        report.entryPoint = entry
        if let e = entry {
            if e.node >= bound || levels[Int(e.node)] < 0 {
                issue(.invalidEntryPoint("node \(e.node) is not in the graph"))
            } else {
                if Int(levels[Int(e.node)]) != e.level {
                    issue(.invalidEntryPoint("recorded level \(e.level), node level \(levels[Int(e.node)])"))
                }
                if deleted?.contains(e.node) ?? false { issue(.invalidEntryPoint("node \(e.node) is deleted")) }
            }
            if topLevel > e.level { issue(.invalidEntryPoint("a node has level \(topLevel) above the entry's \(e.level)")) }
        } else if report.nodeCount > 0 {
            issue(.invalidEntryPoint("no entry point in a non-empty graph"))
        }

        report.degrees = (0..<max(0, topLevel + 1)).map { GraphDegreeStatistics(level: $0) }
        var seen = Set<UInt32>()
        id = 0
        while id < bound {
            defer { id &+= 1 }
            let top = Int(levels[Int(id)])
            guard top >= 0 else { continue }
            for l in 0...top {
                let list = try storage.withNeighbors(of: id, level: l) { Array($0) }
                let limit = parameters.maxDegree(atLevel: l)
                if list.count > limit { issue(.overDegree(node: id, level: l, degree: list.count, limit: limit)) }
                seen.removeAll(keepingCapacity: true)
                for x in list {
                    if x == id { issue(.selfLoop(node: id, level: l)) }
                    if !seen.insert(x).inserted { issue(.duplicateEdge(from: id, level: l, to: x)) }
                    if x >= bound || Int(levels[Int(x)]) < l {
                        issue(.danglingEdge(from: id, level: l, to: x))
                    } else if deleted?.contains(x) ?? false {
                        issue(.edgeToDeleted(from: id, level: l, to: x))
                    }
                }
                var s = report.degrees[l]
                s.minDegree = s.nodes == 0 ? list.count : min(s.minDegree, list.count)
                s.maxDegree = max(s.maxDegree, list.count)
                s.nodes += 1
                s.edges += list.count
                report.degrees[l] = s
            }
        }

        // Level-0 reachability from the entry point.
        if let e = entry, e.node < bound, levels[Int(e.node)] >= 0 {
            var reached = [Bool](repeating: false, count: Int(bound))
            var stack = [e.node]
            reached[Int(e.node)] = true
            while let n = stack.popLast() {
                try storage.withNeighbors(of: n, level: 0) { nb in
                    for x in nb where x < bound && levels[Int(x)] >= 0 && !reached[Int(x)] {
                        reached[Int(x)] = true
                        stack.append(x)
                    }
                }
            }
            id = 0
            while id < bound {
                if levels[Int(id)] >= 0, !reached[Int(id)], !(deleted?.contains(id) ?? false) {
                    report.unreachableCount += 1
                    issue(.unreachable(node: id))
                }
                id &+= 1
            }
        }
        return report
    }
}

// MARK: - Reconnect

@usableFromInline
struct _ReachedNodes: _HNSWEligibility {
    @usableFromInline let reached: UnsafeMutablePointer<Bool>
    @usableFromInline let bound: UInt32

    @inlinable init(reached: UnsafeMutablePointer<Bool>, bound: UInt32) {
        self.reached = reached
        self.bound = bound
    }

    @inlinable @inline(__always)
    func isEligible(_ node: UInt32) -> Bool { node < bound && reached[Int(node)] }
}

extension HNSW {
    /// Links live nodes that level-0 traversal from the entry point cannot reach (what
    /// ``check(storage:parameters:deleted:issueLimit:)`` reports as unreachable) back into
    /// the graph.
    ///
    /// hnswlib's back-link pruning can leave a node with no in-edges, so a small fraction of
    /// nodes in any HNSW graph is never found by search. For each such node this searches for
    /// its nearest reachable nodes and adds an edge from the closest one that has room, or
    /// else replaces the farthest neighbour of the closest one. Returns the nodes linked.
    @inlinable
    @discardableResult
    public static func reconnect<S: MutableGraphStorage, D: GraphDistanceSource>(
        storage: inout S, distances: D, parameters: HNSWParameters, context: HNSWSearchContext, deleted: Bitmap? = nil
    ) throws -> Int {
        guard let ep = try storage.entryPoint() else { return 0 }
        let bound = storage.nodeIDBound
        var present = [Bool](repeating: false, count: Int(bound))
        var id: UInt32 = 0
        while id < bound {
            present[Int(id)] = try storage.level(of: id) != nil
            id &+= 1
        }
        var reached = [Bool](repeating: false, count: Int(bound))
        var stack = [UInt32]()
        func spread(from start: UInt32) throws {
            guard start < bound, present[Int(start)], !reached[Int(start)] else { return }
            reached[Int(start)] = true
            stack.append(start)
            while let n = stack.popLast() {
                try storage.withNeighbors(of: n, level: 0) { nb in
                    for x in nb where x < bound && present[Int(x)] && !reached[Int(x)] {
                        reached[Int(x)] = true
                        stack.append(x)
                    }
                }
            }
        }
        try spread(from: ep.node)
        let maxDegree = parameters.maxDegree(atLevel: 0)
        context.reserveSelection(keys: parameters.efConstruction &+ 1, selected: 0, link: maxDegree &+ 1)
        var linked = 0
        id = 0
        while id < bound {
            defer { id &+= 1 }
            let u = id
            guard present[Int(u)], !reached[Int(u)], !(deleted?.contains(u) ?? false) else { continue }
            let query = try distances.query(for: u)
            let (cur, curDistance) = try descend(query, from: ep, toLevel: 0, storage: storage, distances: distances, context: context)
            context.begin(bound: bound)
            context.markVisited(u)
            context.markVisited(cur)
            let key = _hnswKey(curDistance, cur)
            context.candidates.push(key)
            if reached[Int(cur)] { context.results.push(~key) }
            try reached.withUnsafeMutableBufferPointer { r in
                try beamSearch(query, level: 0, ef: parameters.efConstruction, storage: storage, distances: distances,
                               context: context, eligible: _ReachedNodes(reached: r.baseAddress!, bound: bound), twoHop: false)
            }
            let found = context.drainResultsAscending()
            guard found > 0 else { continue }
            let keys = context.keys
            let out = context.linkIDs
            var done = false
            for i in 0..<found where !done {
                let t = _hnswID(keys[i])
                if let d = deleted, d.contains(t) { continue }
                try storage.updateNeighbors(of: t, level: 0) { list -> UnsafeBufferPointer<UInt32>? in
                    guard list.count < maxDegree, !list.contains(u) else { return nil }
                    for j in list.indices { out[j] = list[j] }
                    out[list.count] = u
                    done = true
                    return UnsafeBufferPointer(start: out, count: list.count &+ 1)
                }
            }
            if !done {
                let t = _hnswID(keys[0])
                try storage.updateNeighbors(of: t, level: 0) { list -> UnsafeBufferPointer<UInt32>? in
                    guard !list.isEmpty else { return nil }
                    var farthest = 0
                    var farthestDistance = -Float.infinity
                    for j in list.indices {
                        out[j] = list[j]
                        let dj = try distances.distance(between: t, and: list[j])
                        if dj > farthestDistance { farthestDistance = dj; farthest = j }
                    }
                    out[farthest] = u
                    return UnsafeBufferPointer(start: out, count: list.count)
                }
            }
            linked &+= 1
            try spread(from: u)
        }
        return linked
    }
}

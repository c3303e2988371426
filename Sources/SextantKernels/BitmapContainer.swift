// Containers of a Roaring-style bitmap: each holds the low 16 bits of the ids that share one
// high 16-bit key. Three representations:
//   - array:  sorted, strictly increasing [UInt16], 1...4096 values;
//   - bitset: 1024 x UInt64 words (bit `v & 63` of word `v >> 6`), 4097...65536 values;
//   - run:    sorted, non-overlapping, non-adjacent (start, lengthMinusOne) pairs; produced by
//             `init(range:)`, subtraction from runs (so complements stay compact), full
//             (65536-value) results of set operations, and `runOptimize()`.
// Cardinality is cached for bitset and run containers (arrays know their count).
// Containers are never empty inside a Bitmap.

/// One run of consecutive values `start ... start + lengthMinusOne`.
struct BitmapRun: Sendable, Hashable {
    var start: UInt16
    var lengthMinusOne: UInt16

    @inline(__always) var end: UInt32 { UInt32(start) &+ UInt32(lengthMinusOne) }
    @inline(__always) var length: Int { Int(lengthMinusOne) + 1 }
}

enum BitmapContainerKind: UInt8, Sendable {
    case array = 0
    case bitset = 1
    case run = 2
}

enum BitmapContainer: Sendable {
    case array([UInt16])
    case bitset([UInt64], Int)
    case run([BitmapRun], Int)

    /// Maximum number of values in an array container.
    static let arrayMax = 4096
    static let wordCount = 1024

    var kind: BitmapContainerKind {
        switch self {
        case .array: .array
        case .bitset: .bitset
        case .run: .run
        }
    }

    @inline(__always) var cardinality: Int {
        switch self {
        case .array(let a): a.count
        case .bitset(_, let c): c
        case .run(_, let c): c
        }
    }

    // MARK: Construction helpers

    /// A single run `lo...hi` in its smallest representation.
    static func range(_ lo: UInt16, _ hi: UInt16) -> BitmapContainer {
        let c = Int(hi) - Int(lo) + 1
        if c == 1 { return .array([lo]) }
        return .run([BitmapRun(start: lo, lengthMinusOne: hi &- lo)], c)
    }

    /// From a sorted, strictly increasing array of any size (1...65536).
    static func fromSorted(_ a: [UInt16]) -> BitmapContainer {
        if a.count <= arrayMax { return .array(a) }
        return .bitset(words(fromArray: a), a.count)
    }

    /// From words with a known popcount; nil when empty. Small results become arrays.
    static func fromWords(_ w: [UInt64], count: Int) -> BitmapContainer? {
        if count == 0 { return nil }
        if count <= arrayMax { return .array(array(fromWords: w, count: count)) }
        if count == 65536 { return .run([BitmapRun(start: 0, lengthMinusOne: 65535)], 65536) }
        return .bitset(w, count)
    }

    static func fromArray(_ a: [UInt16]) -> BitmapContainer? {
        a.isEmpty ? nil : fromSorted(a)
    }

    static func words(fromArray a: [UInt16]) -> [UInt64] {
        var w = [UInt64](repeating: 0, count: wordCount)
        w.withUnsafeMutableBufferPointer { wp in
            for v in a { wp[Int(v &>> 6)] |= 1 &<< UInt64(v & 63) }
        }
        return w
    }

    static func array(fromWords w: [UInt64], count: Int) -> [UInt16] {
        var out = [UInt16]()
        out.reserveCapacity(count)
        w.withUnsafeBufferPointer { wp in
            for i in 0..<wordCount {
                var x = wp[i]
                let base = UInt16(i &<< 6)
                while x != 0 {
                    out.append(base | UInt16(x.trailingZeroBitCount))
                    x &= x &- 1
                }
            }
        }
        return out
    }

    static func setRange(_ w: inout UnsafeMutableBufferPointer<UInt64>, _ lo: Int, _ hi: Int) {
        // inclusive lo...hi, 0 <= lo <= hi <= 65535
        let lw = lo >> 6, hw = hi >> 6
        let lmask = ~UInt64(0) &<< UInt64(lo & 63)
        let hmask = ~UInt64(0) &>> UInt64(63 - (hi & 63))
        if lw == hw {
            w[lw] |= lmask & hmask
            return
        }
        w[lw] |= lmask
        var i = lw + 1
        while i < hw { w[i] = ~0; i += 1 }
        w[hw] |= hmask
    }

    static func words(fromRuns r: [BitmapRun]) -> [UInt64] {
        var w = [UInt64](repeating: 0, count: wordCount)
        w.withUnsafeMutableBufferPointer { wp in
            for run in r { setRange(&wp, Int(run.start), Int(run.end)) }
        }
        return w
    }

    static func array(fromRuns r: [BitmapRun], count: Int) -> [UInt16] {
        var out = [UInt16]()
        out.reserveCapacity(count)
        for run in r {
            var v = UInt32(run.start)
            let e = run.end
            while v <= e { out.append(UInt16(truncatingIfNeeded: v)); v &+= 1 }
        }
        return out
    }

    /// Runs become arrays or bitsets; arrays and bitsets are returned unchanged.
    var materialized: BitmapContainer {
        switch self {
        case .array, .bitset: return self
        case .run(let r, let c):
            if c <= Self.arrayMax { return .array(Self.array(fromRuns: r, count: c)) }
            return .bitset(Self.words(fromRuns: r), c)
        }
    }

    var asWords: [UInt64] {
        switch self {
        case .array(let a): Self.words(fromArray: a)
        case .bitset(let w, _): w
        case .run(let r, _): Self.words(fromRuns: r)
        }
    }

    // MARK: Runs

    var numberOfRuns: Int {
        switch self {
        case .array(let a):
            if a.isEmpty { return 0 }
            var n = 1
            a.withUnsafeBufferPointer { p in
                for i in 1..<p.count where p[i] != p[i - 1] &+ 1 { n += 1 }
            }
            return n
        case .bitset(let w, _):
            var n = 0
            var carry: UInt64 = 0
            w.withUnsafeBufferPointer { p in
                for i in 0..<Self.wordCount {
                    let x = p[i]
                    n += (x & ~((x &<< 1) | carry)).nonzeroBitCount
                    carry = x &>> 63
                }
            }
            return n
        case .run(let r, _):
            return r.count
        }
    }

    func toRuns() -> [BitmapRun] {
        var out = [BitmapRun]()
        var cur: (UInt32, UInt32)? = nil
        forEach { v in
            let x = UInt32(v)
            if let (s, e) = cur, e &+ 1 == x {
                cur = (s, x)
            } else {
                if let (s, e) = cur { out.append(BitmapRun(start: UInt16(s), lengthMinusOne: UInt16(e - s))) }
                cur = (x, x)
            }
        }
        if let (s, e) = cur { out.append(BitmapRun(start: UInt16(s), lengthMinusOne: UInt16(e - s))) }
        return out
    }

    /// Payload bytes of each representation in the serialized format.
    static func arrayBytes(_ c: Int) -> Int { 2 * c }
    static let bitsetBytes = 8192
    static func runBytes(_ n: Int) -> Int { 2 + 4 * n }

    /// The smallest representation of the same values.
    func optimized() -> BitmapContainer {
        let c = cardinality
        let nRuns = numberOfRuns
        let plain = c <= Self.arrayMax ? Self.arrayBytes(c) : Self.bitsetBytes
        if Self.runBytes(nRuns) < plain {
            if case .run = self { return self }
            return .run(toRuns(), c)
        }
        switch self {
        case .run: return materialized
        default: return self
        }
    }

    // MARK: Queries

    @inline(__always)
    static func lowerBound(_ a: UnsafeBufferPointer<UInt16>, _ x: UInt16, from: Int = 0) -> Int {
        var lo = from, hi = a.count
        while lo < hi {
            let m = (lo &+ hi) &>> 1
            if a[m] < x { lo = m &+ 1 } else { hi = m }
        }
        return lo
    }

    static func lowerBound(_ a: [UInt16], _ x: UInt16) -> Int {
        a.withUnsafeBufferPointer { lowerBound($0, x) }
    }

    /// Number of runs whose start is <= x.
    static func runUpper(_ r: [BitmapRun], _ x: UInt16) -> Int {
        var lo = 0, hi = r.count
        while lo < hi {
            let m = (lo + hi) >> 1
            if r[m].start <= x { lo = m + 1 } else { hi = m }
        }
        return lo
    }

    func contains(_ x: UInt16) -> Bool {
        switch self {
        case .array(let a):
            let i = Self.lowerBound(a, x)
            return i < a.count && a[i] == x
        case .bitset(let w, _):
            return w[Int(x &>> 6)] & (1 &<< UInt64(x & 63)) != 0
        case .run(let r, _):
            let j = Self.runUpper(r, x)
            return j > 0 && UInt32(x) <= r[j - 1].end
        }
    }

    var minimum: UInt16 {
        switch self {
        case .array(let a): return a[0]
        case .bitset(let w, _):
            for i in 0..<Self.wordCount where w[i] != 0 {
                return UInt16(i &<< 6) | UInt16(w[i].trailingZeroBitCount)
            }
            return 0
        case .run(let r, _): return r[0].start
        }
    }

    var maximum: UInt16 {
        switch self {
        case .array(let a): return a[a.count - 1]
        case .bitset(let w, _):
            for i in stride(from: Self.wordCount - 1, through: 0, by: -1) where w[i] != 0 {
                return UInt16(i &<< 6) | UInt16(63 - w[i].leadingZeroBitCount)
            }
            return 0
        case .run(let r, _): return UInt16(truncatingIfNeeded: r[r.count - 1].end)
        }
    }

    @inline(__always)
    func forEach(_ body: (UInt16) throws -> Void) rethrows {
        switch self {
        case .array(let a):
            for v in a { try body(v) }
        case .bitset(let w, _):
            for i in 0..<Self.wordCount {
                var x = w[i]
                let base = UInt16(i &<< 6)
                while x != 0 {
                    try body(base | UInt16(x.trailingZeroBitCount))
                    x &= x &- 1
                }
            }
        case .run(let r, _):
            for run in r {
                var v = UInt32(run.start)
                let e = run.end
                while v <= e { try body(UInt16(truncatingIfNeeded: v)); v &+= 1 }
            }
        }
    }

    // MARK: Mutation

    /// Inserts; converts array -> bitset past 4096 values. Returns whether x was new.
    mutating func insert(_ x: UInt16) -> Bool {
        switch self {
        case .array(var a):
            let i = Self.lowerBound(a, x)
            if i < a.count && a[i] == x { return false }
            self = .array([])
            if a.count >= Self.arrayMax {
                var w = Self.words(fromArray: a)
                w[Int(x &>> 6)] |= 1 &<< UInt64(x & 63)
                self = .bitset(w, a.count + 1)
            } else {
                a.insert(x, at: i)
                self = .array(a)
            }
            return true
        case .bitset(var w, let c):
            let idx = Int(x &>> 6), m: UInt64 = 1 &<< UInt64(x & 63)
            if w[idx] & m != 0 { return false }
            self = .array([])
            w[idx] |= m
            self = .bitset(w, c + 1)
            return true
        case .run(var r, let c):
            let j = Self.runUpper(r, x)
            let xv = UInt32(x)
            if j > 0 && xv <= r[j - 1].end { return false }
            self = .array([])
            let mergePrev = j > 0 && r[j - 1].end &+ 1 == xv
            let mergeNext = j < r.count && UInt32(r[j].start) == xv &+ 1
            if mergePrev && mergeNext {
                r[j - 1].lengthMinusOne = UInt16(r[j].end - UInt32(r[j - 1].start))
                r.remove(at: j)
            } else if mergePrev {
                r[j - 1].lengthMinusOne &+= 1
            } else if mergeNext {
                r[j].start &-= 1
                r[j].lengthMinusOne &+= 1
            } else {
                r.insert(BitmapRun(start: x, lengthMinusOne: 0), at: j)
            }
            self = .run(r, c + 1)
            return true
        }
    }

    /// Removes; converts bitset -> array at 4096 values. Returns whether x was present.
    /// The container may become empty (the caller drops it).
    mutating func remove(_ x: UInt16) -> Bool {
        switch self {
        case .array(var a):
            let i = Self.lowerBound(a, x)
            guard i < a.count && a[i] == x else { return false }
            self = .array([])
            a.remove(at: i)
            self = .array(a)
            return true
        case .bitset(var w, let c):
            let idx = Int(x &>> 6), m: UInt64 = 1 &<< UInt64(x & 63)
            if w[idx] & m == 0 { return false }
            self = .array([])
            w[idx] &= ~m
            if c - 1 <= Self.arrayMax {
                self = .array(Self.array(fromWords: w, count: c - 1))
            } else {
                self = .bitset(w, c - 1)
            }
            return true
        case .run(var r, let c):
            let j = Self.runUpper(r, x)
            let xv = UInt32(x)
            guard j > 0 && xv <= r[j - 1].end else { return false }
            self = .array([])
            let s = UInt32(r[j - 1].start), e = r[j - 1].end
            if s == e {
                r.remove(at: j - 1)
            } else if xv == s {
                r[j - 1].start &+= 1
                r[j - 1].lengthMinusOne &-= 1
            } else if xv == e {
                r[j - 1].lengthMinusOne &-= 1
            } else {
                r[j - 1].lengthMinusOne = UInt16(xv - 1 - s)
                r.insert(BitmapRun(start: UInt16(xv + 1), lengthMinusOne: UInt16(e - xv - 1)), at: j)
            }
            self = .run(r, c - 1)
            return true
        }
    }
}

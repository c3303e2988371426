// Pairwise container algebra. Run operands are materialised to array/bitset first, except for
// the cases where runs are the natural answer (full containers, run minus anything).
// Results are nil when empty, arrays up to 4096 values, bitsets above.

extension BitmapContainer {
    @inline(__always)
    static func bit(_ w: UnsafeBufferPointer<UInt64>, _ v: UInt16) -> Bool {
        w[Int(v &>> 6)] & (1 &<< UInt64(v & 63)) != 0
    }

    var isFull: Bool { cardinality == 65536 }

    // MARK: Array kernels

    /// Galloping search: first index >= `from` whose value is >= x.
    @inline(__always)
    static func gallop(_ a: UnsafeBufferPointer<UInt16>, _ x: UInt16, from: Int) -> Int {
        var lo = from
        var step = 1
        var hi = from
        while hi < a.count && a[hi] < x {
            lo = hi + 1
            hi = from + step
            step &<<= 1
        }
        if hi > a.count { hi = a.count }
        while lo < hi {
            let m = (lo &+ hi) &>> 1
            if a[m] < x { lo = m &+ 1 } else { hi = m }
        }
        return lo
    }

    static func intersectArrays(_ a: [UInt16], _ b: [UInt16], countOnly: Bool) -> (values: [UInt16], count: Int) {
        var out = [UInt16]()
        var n = 0
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                let (small, large) = pa.count <= pb.count ? (pa, pb) : (pb, pa)
                if !countOnly { out.reserveCapacity(small.count) }
                if small.count * 32 < large.count {
                    var j = 0
                    for x in small {
                        j = gallop(large, x, from: j)
                        if j == large.count { break }
                        if large[j] == x {
                            n += 1
                            if !countOnly { out.append(x) }
                            j += 1
                        }
                    }
                } else {
                    var i = 0, j = 0
                    while i < small.count && j < large.count {
                        let x = small[i], y = large[j]
                        if x < y { i += 1 } else if y < x { j += 1 } else {
                            n += 1
                            if !countOnly { out.append(x) }
                            i += 1; j += 1
                        }
                    }
                }
            }
        }
        return (out, n)
    }

    /// mode: 0 union, 1 a minus b, 2 symmetric difference.
    static func mergeArrays(_ a: [UInt16], _ b: [UInt16], mode: Int) -> [UInt16] {
        var out = [UInt16]()
        out.reserveCapacity(mode == 1 ? a.count : a.count + b.count)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                var i = 0, j = 0
                while i < pa.count && j < pb.count {
                    let x = pa[i], y = pb[j]
                    if x < y {
                        out.append(x); i += 1
                    } else if y < x {
                        if mode != 1 { out.append(y) }
                        j += 1
                    } else {
                        if mode == 0 { out.append(x) }
                        i += 1; j += 1
                    }
                }
                if i < pa.count { out.append(contentsOf: pa[i...]) }
                if mode != 1 && j < pb.count { out.append(contentsOf: pb[j...]) }
            }
        }
        return out
    }

    // MARK: Bitset kernels

    /// op: 0 and, 1 or, 2 andNot, 3 xor. Returns the words and their popcount.
    static func wordOp(_ a: [UInt64], _ b: [UInt64], _ op: Int) -> ([UInt64], Int) {
        var out = [UInt64](repeating: 0, count: wordCount)
        var c = 0
        out.withUnsafeMutableBufferPointer { po in
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    switch op {
                    case 0: for i in 0..<wordCount { let v = pa[i] & pb[i]; po[i] = v; c &+= v.nonzeroBitCount }
                    case 1: for i in 0..<wordCount { let v = pa[i] | pb[i]; po[i] = v; c &+= v.nonzeroBitCount }
                    case 2: for i in 0..<wordCount { let v = pa[i] & ~pb[i]; po[i] = v; c &+= v.nonzeroBitCount }
                    default: for i in 0..<wordCount { let v = pa[i] ^ pb[i]; po[i] = v; c &+= v.nonzeroBitCount }
                    }
                }
            }
        }
        return (out, c)
    }

    static func andCountWords(_ a: [UInt64], _ b: [UInt64]) -> Int {
        var c = 0
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                for i in 0..<wordCount { c &+= (pa[i] & pb[i]).nonzeroBitCount }
            }
        }
        return c
    }

    // MARK: Operations

    static func and(_ l: BitmapContainer, _ r: BitmapContainer) -> BitmapContainer? {
        if l.isFull { return r }
        if r.isFull { return l }
        switch (l.materialized, r.materialized) {
        case (.array(let a), .array(let b)):
            return fromArray(intersectArrays(a, b, countOnly: false).values)
        case (.array(let a), .bitset(let w, _)), (.bitset(let w, _), .array(let a)):
            var out = [UInt16]()
            out.reserveCapacity(a.count)
            w.withUnsafeBufferPointer { pw in
                for v in a where bit(pw, v) { out.append(v) }
            }
            return fromArray(out)
        case (.bitset(let a, _), .bitset(let b, _)):
            let (w, c) = wordOp(a, b, 0)
            return fromWords(w, count: c)
        default:
            preconditionFailure("unreachable: materialized containers are arrays or bitsets")
        }
    }

    static func andCount(_ l: BitmapContainer, _ r: BitmapContainer) -> Int {
        if l.isFull { return r.cardinality }
        if r.isFull { return l.cardinality }
        switch (l, r) {
        case (.run(let ra, _), .run(let rb, _)):
            // Two-pointer overlap of run lists.
            var i = 0, j = 0, n = 0
            while i < ra.count && j < rb.count {
                let s = max(UInt32(ra[i].start), UInt32(rb[j].start))
                let e = min(ra[i].end, rb[j].end)
                if s <= e { n += Int(e - s) + 1 }
                if ra[i].end < rb[j].end { i += 1 } else { j += 1 }
            }
            return n
        case (.run(let rr, _), .array(let a)), (.array(let a), .run(let rr, _)):
            var n = 0, j = 0
            for v in a {
                let x = UInt32(v)
                while j < rr.count && rr[j].end < x { j += 1 }
                if j == rr.count { break }
                if UInt32(rr[j].start) <= x { n += 1 }
            }
            return n
        default:
            break
        }
        switch (l.materialized, r.materialized) {
        case (.array(let a), .array(let b)):
            return intersectArrays(a, b, countOnly: true).count
        case (.array(let a), .bitset(let w, _)), (.bitset(let w, _), .array(let a)):
            var n = 0
            w.withUnsafeBufferPointer { pw in
                for v in a where bit(pw, v) { n += 1 }
            }
            return n
        case (.bitset(let a, _), .bitset(let b, _)):
            return andCountWords(a, b)
        default:
            preconditionFailure("unreachable")
        }
    }

    static func or(_ l: BitmapContainer, _ r: BitmapContainer) -> BitmapContainer {
        if l.isFull { return l }
        if r.isFull { return r }
        switch (l.materialized, r.materialized) {
        case (.array(let a), .array(let b)):
            return fromSorted(mergeArrays(a, b, mode: 0))
        case (.array(let a), .bitset(var w, var c)), (.bitset(var w, var c), .array(let a)):
            w.withUnsafeMutableBufferPointer { pw in
                for v in a {
                    let i = Int(v &>> 6), m: UInt64 = 1 &<< UInt64(v & 63)
                    if pw[i] & m == 0 { pw[i] |= m; c += 1 }
                }
            }
            return fromWords(w, count: c)!
        case (.bitset(let a, _), .bitset(let b, _)):
            let (w, c) = wordOp(a, b, 1)
            return fromWords(w, count: c)!
        default:
            preconditionFailure("unreachable")
        }
    }

    static func andNot(_ l: BitmapContainer, _ r: BitmapContainer) -> BitmapContainer? {
        if r.isFull { return nil }
        if case .run(let runs, _) = l {
            return runsMinus(runs, r)
        }
        switch (l, r.materialized) {
        case (.array(let a), .array(let b)):
            return fromArray(mergeArrays(a, b, mode: 1))
        case (.array(let a), .bitset(let w, _)):
            var out = [UInt16]()
            out.reserveCapacity(a.count)
            w.withUnsafeBufferPointer { pw in
                for v in a where !bit(pw, v) { out.append(v) }
            }
            return fromArray(out)
        case (.bitset(var w, var c), .array(let b)):
            w.withUnsafeMutableBufferPointer { pw in
                for v in b {
                    let i = Int(v &>> 6), m: UInt64 = 1 &<< UInt64(v & 63)
                    if pw[i] & m != 0 { pw[i] &= ~m; c -= 1 }
                }
            }
            return fromWords(w, count: c)
        case (.bitset(let a, _), .bitset(let b, _)):
            let (w, c) = wordOp(a, b, 2)
            return fromWords(w, count: c)
        default:
            preconditionFailure("unreachable")
        }
    }

    /// Runs minus any container, computed on runs (keeps complements of sparse sets compact),
    /// then stored in its smallest representation.
    static func runsMinus(_ runs: [BitmapRun], _ r: BitmapContainer) -> BitmapContainer? {
        var out = [BitmapRun]()
        out.reserveCapacity(runs.count + 4)
        var c = 0
        var i = 0
        // Current remaining part of runs[i]: cs...ce
        var cs: UInt32 = runs.isEmpty ? 0 : UInt32(runs[0].start)
        var ce: UInt32 = runs.isEmpty ? 0 : runs[0].end
        // A plain loop over the values (no closure capturing the state: captured variables
        // are checked for exclusivity at run time on every access).
        let values: [UInt16]
        switch r {
        case .array(let a): values = a
        case .bitset(let w, let n): values = BitmapContainer.array(fromWords: w, count: n)
        case .run(let rr, let n): values = BitmapContainer.array(fromRuns: rr, count: n)
        }
        for v in values {
            let x = UInt32(v)
            while i < runs.count && ce < x {
                if cs <= ce {
                    out.append(BitmapRun(start: UInt16(cs), lengthMinusOne: UInt16(ce - cs)))
                    c += Int(ce - cs) + 1
                }
                i += 1
                if i < runs.count { cs = UInt32(runs[i].start); ce = runs[i].end }
            }
            if i < runs.count && cs <= x && x <= ce {
                if cs < x {
                    out.append(BitmapRun(start: UInt16(cs), lengthMinusOne: UInt16(x - 1 - cs)))
                    c += Int(x - 1 - cs) + 1
                }
                cs = x + 1 // may exceed ce (then the run is exhausted)
            }
        }
        while i < runs.count {
            if cs <= ce {
                out.append(BitmapRun(start: UInt16(cs), lengthMinusOne: UInt16(ce - cs)))
                c += Int(ce - cs) + 1
            }
            i += 1
            if i < runs.count { cs = UInt32(runs[i].start); ce = runs[i].end }
        }
        if c == 0 { return nil }
        return BitmapContainer.run(out, c).optimized()
    }

    static func xor(_ l: BitmapContainer, _ r: BitmapContainer) -> BitmapContainer? {
        if l.isFull { return andNot(l, r) }
        if r.isFull { return andNot(r, l) }
        switch (l.materialized, r.materialized) {
        case (.array(let a), .array(let b)):
            return fromArray(mergeArrays(a, b, mode: 2))
        case (.array(let a), .bitset(var w, var c)), (.bitset(var w, var c), .array(let a)):
            w.withUnsafeMutableBufferPointer { pw in
                for v in a {
                    let i = Int(v &>> 6), m: UInt64 = 1 &<< UInt64(v & 63)
                    if pw[i] & m != 0 { c -= 1 } else { c += 1 }
                    pw[i] ^= m
                }
            }
            return fromWords(w, count: c)
        case (.bitset(let a, _), .bitset(let b, _)):
            let (w, c) = wordOp(a, b, 3)
            return fromWords(w, count: c)
        default:
            preconditionFailure("unreachable")
        }
    }
}

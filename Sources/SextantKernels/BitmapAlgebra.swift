// Set algebra on bitmaps, container by container over the merged key lists.

extension Bitmap {
    /// Ids in both `self` and `other`.
    public func intersection(_ other: Bitmap) -> Bitmap {
        var keys = [UInt16](), containers = [BitmapContainer]()
        var i = 0, j = 0
        while i < self.keys.count && j < other.keys.count {
            let a = self.keys[i], b = other.keys[j]
            if a < b { i += 1 } else if b < a { j += 1 } else {
                if let c = BitmapContainer.and(self.containers[i], other.containers[j]) {
                    keys.append(a); containers.append(c)
                }
                i += 1; j += 1
            }
        }
        return Bitmap(keys: keys, containers: containers)
    }

    public mutating func formIntersection(_ other: Bitmap) {
        self = intersection(other)
    }

    /// Ids in `self`, `other` or both.
    public func union(_ other: Bitmap) -> Bitmap {
        merging(other) { BitmapContainer.or($0, $1) }
    }

    public mutating func formUnion(_ other: Bitmap) {
        self = union(other)
    }

    /// Ids in `self` but not in `other` (and-not).
    public func subtracting(_ other: Bitmap) -> Bitmap {
        var keys = [UInt16](), containers = [BitmapContainer]()
        keys.reserveCapacity(self.keys.count)
        containers.reserveCapacity(self.keys.count)
        var j = 0
        for i in 0..<self.keys.count {
            let k = self.keys[i]
            while j < other.keys.count && other.keys[j] < k { j += 1 }
            if j < other.keys.count && other.keys[j] == k {
                if let c = BitmapContainer.andNot(self.containers[i], other.containers[j]) {
                    keys.append(k); containers.append(c)
                }
            } else {
                keys.append(k); containers.append(self.containers[i])
            }
        }
        return Bitmap(keys: keys, containers: containers)
    }

    public mutating func subtract(_ other: Bitmap) {
        self = subtracting(other)
    }

    /// Ids in exactly one of `self` and `other`.
    public func symmetricDifference(_ other: Bitmap) -> Bitmap {
        merging(other) { BitmapContainer.xor($0, $1) }
    }

    /// Walks both key lists in order: containers under one key only are kept as they are,
    /// containers under a shared key are combined by `both` (nil drops the key).
    private func merging(_ other: Bitmap, _ both: (BitmapContainer, BitmapContainer) -> BitmapContainer?) -> Bitmap {
        var keys = [UInt16](), containers = [BitmapContainer]()
        keys.reserveCapacity(self.keys.count + other.keys.count)
        containers.reserveCapacity(self.keys.count + other.keys.count)
        var i = 0, j = 0
        while i < self.keys.count || j < other.keys.count {
            if j == other.keys.count || (i < self.keys.count && self.keys[i] < other.keys[j]) {
                keys.append(self.keys[i]); containers.append(self.containers[i]); i += 1
            } else if i == self.keys.count || other.keys[j] < self.keys[i] {
                keys.append(other.keys[j]); containers.append(other.containers[j]); j += 1
            } else {
                if let c = both(self.containers[i], other.containers[j]) {
                    keys.append(self.keys[i]); containers.append(c)
                }
                i += 1; j += 1
            }
        }
        return Bitmap(keys: keys, containers: containers)
    }

    public mutating func formSymmetricDifference(_ other: Bitmap) {
        self = symmetricDifference(other)
    }

    /// `intersection(other).count` without building the intersection.
    public func intersectionCount(_ other: Bitmap) -> Int {
        var n = 0
        var i = 0, j = 0
        while i < self.keys.count && j < other.keys.count {
            let a = self.keys[i], b = other.keys[j]
            if a < b { i += 1 } else if b < a { j += 1 } else {
                n += BitmapContainer.andCount(self.containers[i], other.containers[j])
                i += 1; j += 1
            }
        }
        return n
    }

    /// Whether every id of `self` is in `other`.
    public func isSubset(of other: Bitmap) -> Bool {
        var j = 0
        for i in 0..<keys.count {
            let k = keys[i]
            while j < other.keys.count && other.keys[j] < k { j += 1 }
            guard j < other.keys.count && other.keys[j] == k else { return false }
            let c = containers[i], d = other.containers[j]
            if c.cardinality > d.cardinality { return false }
            if BitmapContainer.andCount(c, d) != c.cardinality { return false }
        }
        return true
    }

    public func isSuperset(of other: Bitmap) -> Bool { other.isSubset(of: self) }

    /// Whether `self` and `other` share no id.
    public func isDisjoint(with other: Bitmap) -> Bool {
        var i = 0, j = 0
        while i < keys.count && j < other.keys.count {
            let a = keys[i], b = other.keys[j]
            if a < b { i += 1 } else if b < a { j += 1 } else {
                if BitmapContainer.andCount(containers[i], other.containers[j]) != 0 { return false }
                i += 1; j += 1
            }
        }
        return true
    }

    /// The ids of `universe` that are not in `self` (ids of `self` outside `universe` are
    /// ignored). Chunks of the universe absent from `self` are stored as single runs.
    public func complement(universe: Range<UInt32>) -> Bitmap {
        Bitmap(range: universe).subtracting(self)
    }
}

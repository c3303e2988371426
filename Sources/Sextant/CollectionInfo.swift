/// What a collection is: fixed at creation and stored in the catalog.
public struct CollectionInfo: Sendable, Codable, Equatable {
    /// The collection's name (letters, digits, `_`, `-`, `.`; 1–128 bytes).
    public var name: String
    /// Internal numeric id (the key prefix of the collection's records).
    public var id: UInt32
    /// Components per vector.
    public var dimension: Int
    /// The distance, stored with the collection and never guessed.
    public var metric: Metric
    /// The typed attribute fields.
    public var schema: Schema
    /// The index recipe, persisted as given (e.g. `"Flat"`, `"HNSW32,PQ48x8,Refine"`).
    public var indexRecipe: String
    /// Seconds since 1970 at creation.
    public var createdAt: Double

    /// The longest vector a collection may declare.
    public static let maxDimension = 65_536

    static func validateName(_ name: String) throws(SextantError) {
        let u = Array(name.utf8)
        guard !u.isEmpty, u.count <= 128, u.allSatisfy({ c in
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95 || c == 45 || c == 46
        }) else {
            throw SextantError(.invalidArgument, "invalid collection name '\(name)': use 1–128 letters, digits, '_', '-' or '.'", context: ["collection": name])
        }
    }
}

/// A stored row as returned by `VectorCollection.get(_:)`.
public struct Record: Sendable, Equatable {
    /// The external id.
    public var id: UInt64
    /// The vector (the collection's dimension).
    public var vector: [Float]
    /// Non-null attributes by name.
    public var attributes: [String: AttributeValue]
}

/// A row to insert or replace.
public struct Row: Sendable, Equatable {
    /// The external id.
    public var id: UInt64
    /// The vector (the collection's dimension).
    public var vector: [Float]
    /// Attributes by name; missing names are null.
    public var attributes: [String: AttributeValue]

    /// A row; attributes left out are null.
    public init(id: UInt64, vector: [Float], attributes: [String: AttributeValue] = [:]) {
        self.id = id
        self.vector = vector
        self.attributes = attributes
    }
}

/// One search hit.
public struct SearchResult: Sendable, Equatable, Hashable {
    /// The row's external id.
    public var id: UInt64
    /// The metric's distance (smaller is closer).
    public var distance: Float
    /// A result: row `id` at `distance` from the query.
    public init(id: UInt64, distance: Float) {
        self.id = id
        self.distance = distance
    }
}

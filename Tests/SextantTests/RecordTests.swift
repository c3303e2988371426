import Foundation
import Testing
import Sextant
import SextantTestSupport

/// Application types as rows: every attribute type (nullable and lists included) round-trips
/// through `VectorRecord`, and a property that does not fit the schema is a typed error naming
/// the field.
@Suite struct RecordTests {
    enum Mood: String, Codable, Sendable { case calm, loud }

    struct Song: VectorRecord, Equatable {
        var id: UInt64
        var vector: [Float]
        var title: String
        var year: Int
        var rating: Double
        var live: Bool
        var tags: [String]
        var charts: [Int]
        var mood: Mood
        var released: Date
        var subtitle: String?
        var plays: Int32?
        var score: Float?
        var remastered: Bool?
        var labels: [String]?
        var weeks: [Int64]?
    }

    static let schema = try! Schema(parsing: "title:string!,year:int,rating:double,live:bool,tags:[string],charts:[int],mood:string,released:double,subtitle:string,plays:int,score:double,remastered:bool,labels:[string],weeks:[int]")

    static func song(_ i: Int, nulls: Bool) -> Song {
        Song(id: UInt64(i), vector: [Float(i), 1, 2, 3], title: "song \(i) — \"quoted\" 'é'", year: 1990 + i, rating: Double(i) / 3,
             live: i % 2 == 0, tags: i % 3 == 0 ? [] : ["a", "b\(i)"], charts: [i, -i, Int(Int64.max)], mood: i % 2 == 0 ? .calm : .loud,
             released: Date(timeIntervalSinceReferenceDate: Double(i) * 86_400.5),
             subtitle: nulls ? nil : "sub", plays: nulls ? nil : Int32(i * 1000), score: nulls ? nil : Float(i) + 0.5,
             remastered: nulls ? nil : false, labels: nulls ? nil : ["x"], weeks: nulls ? nil : [1, 2, Int64.min])
    }

    @Test func roundTripOfEveryAttributeType() async throws {
        let store = try Store(path: temporaryStorePath())
        defer { store.close() }
        let c = try await store.createCollection("songs", dimension: 4, metric: .l2, schema: Self.schema)
        let songs = (1...20).map { Self.song($0, nulls: $0 % 2 == 1) }
        try await c.upsert(songs)
        for s in songs {
            let back: Song? = try await c.get(s.id)
            #expect(back == s)
        }
        // Nulls are stored as nulls, values as the schema's types.
        let raw = try #require(try await c.get(1))
        #expect(raw.attributes["subtitle"] == nil && raw.attributes["plays"] == nil)
        #expect(raw.attributes["mood"] == .string("loud"))
        #expect(raw.attributes["charts"] == .intList([1, -1, Int64.max]))
        let full = try #require(try await c.get(2))
        #expect(full.attributes["score"] == .double(2.5))
        #expect(full.attributes["weeks"] == .intList([1, 2, Int64.min]))
        // Typed search results, filtered on the record's fields.
        let hits: [Match<Song>] = try await c.search([4, 1, 2, 3], k: 3, filter: Attr("live") == true)
        #expect(hits.map(\.id) == [4, 2, 6])
        #expect(hits[0].record == songs[3] && hits[0].distance == 0)
        let batch: [[Match<Song>]] = try await c.search([Query(vector: [4, 1, 2, 3], k: 2), Query(vector: [9, 1, 2, 3], k: 1)])
        #expect(batch.map { $0.map(\.id) } == [[4, 3], [9]])
    }

    @Test func synchronousForms() throws {
        let store = try Store(path: temporaryStorePath())
        defer { store.close() }
        let c = try store.createCollection("songs", dimension: 4, metric: .l2, schema: Self.schema)
        let songs = (1...6).map { Self.song($0, nulls: $0 == 3) }
        try c.upsert(songs)
        #expect(try c.get(3, as: Song.self) == songs[2])
        let hits: [Match<Song>] = try c.search([4, 1, 2, 3], k: 2)
        #expect(hits.map(\.record) == [songs[3], songs[2]])
        #expect(try c.row(for: songs[2]).attributes["year"] == .int(1993))
        #expect(try c.decode(try #require(try c.get(5)), as: Song.self) == songs[4])
        // A hit deleted before its row is read is left out; the others stay in order.
        try c.delete(4)
        let after: [Match<Song>] = try c.search([4, 1, 2, 3], k: 3)
        #expect(after.map(\.id) == [3, 5, 2])
    }

    struct WrongType: VectorRecord {
        var id: UInt64
        var vector: [Float]
        var title: String
        var year: String            // int in the schema
    }

    struct UnknownField: VectorRecord {
        var id: UInt64
        var vector: [Float]
        var title: String
        var colour: String          // not in the schema
    }

    struct Nested: VectorRecord {
        struct Inner: Codable, Sendable { var a: Int }
        var id: UInt64
        var vector: [Float]
        var title: String
        var tags: Inner             // an object where a list is expected
    }

    struct MissingRequired: VectorRecord {
        var id: UInt64
        var vector: [Float]
        var title: String?          // non-nullable in the schema
    }

    struct MixedList: VectorRecord {
        var id: UInt64
        var vector: [Float]
        var title: String
        var charts: [Double]        // [int] in the schema
    }

    struct TooBig: VectorRecord {
        var id: UInt64
        var vector: [Float]
        var title: String
        var year: UInt64
    }

    struct NotFinite: VectorRecord {
        var id: UInt64
        var vector: [Float]
        var title: String
        var rating: Double
    }

    /// Decodes a stored row into a property of another type.
    struct ReadsYearAsString: VectorRecord {
        var id: UInt64
        var vector: [Float]
        var title: String
        var year: String
    }

    struct ReadsNullIntoNonOptional: VectorRecord {
        var id: UInt64
        var vector: [Float]
        var title: String
        var subtitle: String
    }

    static func expectFieldError(_ code: SextantError.Code, field: String, sourceLocation: SourceLocation = #_sourceLocation,
                                 _ body: () async throws -> Void) async {
        do {
            try await body()
            Issue.record("no error", sourceLocation: sourceLocation)
        } catch let e as SextantError {
            #expect(e.code == code, "\(e)", sourceLocation: sourceLocation)
            #expect(e.context["field"] == field, "\(e)", sourceLocation: sourceLocation)
            #expect(e.message.contains(field), "\(e)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("not a SextantError: \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func propertiesThatDoNotFitNameTheField() async throws {
        let store = try Store(path: temporaryStorePath())
        defer { store.close() }
        let c = try await store.createCollection("songs", dimension: 4, metric: .l2, schema: Self.schema)
        let v: [Float] = [1, 2, 3, 4]
        await Self.expectFieldError(.typeMismatch, field: "year") { try await c.upsert([WrongType(id: 1, vector: v, title: "t", year: "1999")]) }
        await Self.expectFieldError(.unknownAttribute, field: "colour") { try await c.upsert([UnknownField(id: 1, vector: v, title: "t", colour: "red")]) }
        await Self.expectFieldError(.typeMismatch, field: "tags") { try await c.upsert([Nested(id: 1, vector: v, title: "t", tags: .init(a: 1))]) }
        await Self.expectFieldError(.nullViolation, field: "title") { try await c.upsert([MissingRequired(id: 1, vector: v, title: nil)]) }
        await Self.expectFieldError(.typeMismatch, field: "charts") { try await c.upsert([MixedList(id: 1, vector: v, title: "t", charts: [1.5])]) }
        await Self.expectFieldError(.typeMismatch, field: "year") { try await c.upsert([TooBig(id: 1, vector: v, title: "t", year: UInt64.max)]) }
        await Self.expectFieldError(.nonFiniteValue, field: "rating") { try await c.upsert([NotFinite(id: 1, vector: v, title: "t", rating: .nan)]) }
        // The batch position is in the context, and nothing was written.
        let error = await #expect(throws: SextantError.self) {
            try await c.upsert([WrongType(id: 1, vector: v, title: "t", year: "1"), WrongType(id: 2, vector: v, title: "t", year: "2")])
        }
        #expect(error?.context["row"] == "0" && error?.context["record"] == "WrongType")
        #expect(try await c.count() == 0)
        // Reading a row into a type that does not fit it.
        try await c.upsert([Self.song(1, nulls: true)])
        await Self.expectFieldError(.typeMismatch, field: "year") { _ = try await c.get(1, as: ReadsYearAsString.self) }
        await Self.expectFieldError(.nullViolation, field: "subtitle") { _ = try await c.get(1, as: ReadsNullIntoNonOptional.self) }
        // A property that fits is read even when the record has fewer properties than fields.
        struct TitleOnly: VectorRecord { var id: UInt64; var vector: [Float]; var title: String }
        #expect(try await c.get(1, as: TitleOnly.self)?.title == Self.song(1, nulls: true).title)
    }

    struct Renamed: VectorRecord, Equatable {
        var id: UInt64
        var vector: [Float]
        var title: String
        static var idKey: String { "key" }
        static var vectorKey: String { "embedding" }
        enum CodingKeys: String, CodingKey {
            case id = "key", vector = "embedding", title
        }
    }

    @Test func idAndVectorKeysCanBeRenamed() async throws {
        let store = try Store(path: temporaryStorePath())
        defer { store.close() }
        let c = try await store.createCollection("songs", dimension: 4, metric: .l2, schema: Self.schema)
        let r = Renamed(id: 9, vector: [1, 2, 3, 4], title: "x")
        try await c.upsert([r])
        #expect(try await c.get(9, as: Renamed.self) == r)
    }
}

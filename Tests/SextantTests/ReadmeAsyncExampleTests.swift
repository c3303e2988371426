import Foundation
import Testing
import Sextant

/// The README's async, Codable example, kept compiling and correct.
@Suite struct ReadmeAsyncExampleTests {
    struct Song: VectorRecord, Equatable {
        var id: UInt64
        var vector: [Float]
        var genre: String
        var year: Int
        var tags: [String]
        var rating: Double?
    }

    @Test func readmeAsyncExample() async throws {
        let store = try await Store.open(path: temporaryStorePath("readme-async"))
        defer { store.close() }
        let songs = try await store.createCollection(
            "songs", dimension: 3, metric: .cosine,
            schema: try Schema(parsing: "genre:string,year:int,tags:[string],rating:double"), indexRecipe: "HNSW16")
        let mySongs = [
            Song(id: 1, vector: [1, 0, 0], genre: "jazz", year: 2012, tags: ["live"], rating: 4.5),
            Song(id: 2, vector: [0, 1, 0], genre: "blues", year: 1998, tags: [], rating: nil),
            Song(id: 3, vector: [1, 1, 0], genre: "jazz", year: 1965, tags: [], rating: 5),
        ]
        let queryVector: [Float] = [1, 0.1, 0]
        let queries = [queryVector, [0, 1, 0.1]]
        let log = ProgressLog()
        try await songs.upsert(mySongs) { log.add($0) }
        try await songs.buildIndex { log.add($0) }
        #expect(log.all.last?.phase == .calibrating)

        let recentJazz = Attr("genre") == "jazz" && Attr("year") >= 2010
        let hits: [Match<Song>] = try await songs.search(queryVector, k: 10, filter: recentJazz)
        let same = try await songs.search(queryVector, k: 10, filter: try Filter(sql: "genre = 'jazz' AND year >= 2010"))
        #expect(hits.map(\.record) == [mySongs[0]])
        #expect(hits.map(\.id) == same.map(\.id))
        let batch: [[Match<Song>]] = try await songs.search(queries.map { Query(vector: $0, k: 10, filter: recentJazz) })
        #expect(batch.map { $0.map(\.id) } == [[1], [1]])

        let lastMonthsFilters: [Filter?] = [recentJazz, Attr("genre") == "blues", nil]
        let layout = Task { try await songs.partition(workload: lastMonthsFilters, maxPartitions: 64) }
        layout.cancel()
        do {
            _ = try await layout.value
        } catch let e as SextantError {
            #expect(e.code == .cancelled)
        }
        #expect(try await songs.count(where: recentJazz) == 1)
        let song: Song? = try await songs.get(1)
        #expect(song == mySongs[0])
        try await songs.delete([2])
        #expect(try await songs.count() == 2)
    }
}

import Foundation
import Testing
import Sextant

/// The README's Swift example, kept compiling and correct.
@Test func readmeExample() throws {
    let store = try Store(path: temporaryStorePath("readme"))
    defer { store.close() }
    let songs = try store.createCollection(
        "songs", dimension: 3, metric: .cosine,
        schema: try Schema(parsing: "genre:string,year:int,tags:[string]"))
    let embedding1: [Float] = [1, 0, 0], embedding2: [Float] = [0, 1, 0], queryVector: [Float] = [1, 0.1, 0]
    try songs.upsert([
        Row(id: 1, vector: embedding1, attributes: ["genre": "jazz", "year": 2012, "tags": .stringList(["live"])]),
        Row(id: 2, vector: embedding2, attributes: ["genre": "blues", "year": 1998]),
    ])
    let recentJazz = Attr("genre") == "jazz" && Attr("year") >= 2010
    let hits = try songs.search(queryVector, k: 10, filter: recentJazz)
    let same = try songs.search(queryVector, k: 10, filter: try Filter(sql: "genre = 'jazz' AND year >= 2010"))
    #expect(hits.map(\.id) == [1])
    #expect(hits == same)
    let queries = [queryVector, embedding2]
    let batch = try songs.search(queries.map { Query(vector: $0, k: 10, filter: recentJazz) })
    #expect(batch.count == 2)
    let e = try songs.explainSearch(queryVector, k: 10, filter: recentJazz)
    #expect(e.plan.kind == .exact && e.results == hits)
    let exact = try songs.search(queryVector, k: 10, filter: recentJazz, options: SearchOptions(plan: .exact))
    #expect(exact == hits)
    let n = try songs.count(where: recentJazz)
    #expect(n == 1)
    #expect(try songs.explain(recentJazz).description.contains("posting lookup"))
    #expect(try songs.get(1)?.attributes["genre"] == "jazz")
    try songs.delete([2])
    #expect(try songs.count() == 1)
}

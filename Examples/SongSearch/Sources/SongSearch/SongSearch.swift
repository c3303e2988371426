import Foundation
import Sextant

// A small music catalogue: import it with a progress bar, build its graph index, answer
// filtered queries concurrently with async calls, and cancel a long operation half-way.
// Usage: SongSearch [store-directory] [rows]

struct Song: VectorRecord, Equatable {
    var id: UInt64
    var vector: [Float]
    var title: String
    var genre: String
    var year: Int
    var tags: [String]
    var rating: Double?
}

enum Catalogue {
    static let genres = ["jazz", "blues", "rock", "folk", "classical", "electronic"]
    static let tags = ["live", "remaster", "acoustic", "instrumental", "duet"]
    static let dimension = 32

    /// A deterministic catalogue: each genre a cluster of vectors around its own centre.
    static func songs(_ n: Int) -> [Song] {
        var rng = SplitMix(seed: 2026)
        let centres = genres.map { _ in (0..<dimension).map { _ in Float(rng.unit() * 4 - 2) } }
        return (0..<n).map { i in
            let g = Int(rng.next() % UInt64(genres.count))
            let vector = centres[g].map { $0 + Float(rng.unit() - 0.5) }
            let tagCount = Int(rng.next() % 3)
            return Song(id: UInt64(i + 1), vector: vector, title: "Song \(i + 1)", genre: genres[g],
                        year: 1960 + Int(rng.next() % 65),
                        tags: (0..<tagCount).map { _ in tags[Int(rng.next() % UInt64(tags.count))] },
                        rating: rng.unit() < 0.2 ? nil : (rng.unit() * 5 * 10).rounded() / 10)
        }
    }

    static func query(near genre: String, seed: UInt64) -> [Float] {
        var rng = SplitMix(seed: 2026)
        let centres = genres.map { _ in (0..<dimension).map { _ in Float(rng.unit() * 4 - 2) } }
        var q = SplitMix(seed: seed)
        return centres[genres.firstIndex(of: genre)!].map { $0 + Float(q.unit() - 0.5) }
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}

/// One line per phase: redrawn in place on a terminal, written when the phase ends otherwise.
@Sendable func show(_ p: OperationProgress) {
    let tty = isatty(2) == 1
    guard tty || p.isPhaseComplete else { return }
    let eta = p.estimatedSecondsRemaining.map { String(format: "%.1f s", $0) } ?? "?"
    let line = String(format: "  [%d/%d] %@ %5.1f%%  %d/%d %@  %.0f %@/s  ETA %@", p.step, p.steps,
                      p.phase.name.padding(toLength: 11, withPad: " ", startingAt: 0), p.fraction * 100, p.done, p.total,
                      p.phase.unit, p.rate, p.phase.unit, eta)
    FileHandle.standardError.write(Data(((tty ? "\r" : "") + line + (p.isPhaseComplete ? "\n" : "")).utf8))
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("SongSearch: \(message)\n".utf8))
    exit(1)
}

@main
struct SongSearch {
    // An async entry point (not top-level code, where Swift prefers the synchronous overloads).
    static func main() async throws {
        let arguments = CommandLine.arguments
        let path = arguments.count > 1 ? arguments[1] : NSTemporaryDirectory() + "songsearch-\(UUID().uuidString.prefix(8))"
        let rows = arguments.count > 2 ? Int(arguments[2]) ?? 5_000 : 5_000

        let store = try await Store.open(path: path)
        defer { store.close() }
        let schema = try Schema(parsing: "title:string!,genre:string,year:int,tags:[string],rating:double")
        let songs = try await store.createCollection("songs", dimension: Catalogue.dimension, metric: .cosine,
                                                     schema: schema, indexRecipe: "HNSW16")

        // 1. Import: one transaction, with progress.
        print("importing \(rows) songs into \(path)")
        let catalogue = Catalogue.songs(rows)
        try await songs.upsert(catalogue, onProgress: show)

        // 2. The graph index, with progress through an AsyncSequence this time.
        print("building the index")
        let (updates, handler, finish) = OperationProgress.stream()
        let printer = Task { for await p in updates { show(p) } }
        try await songs.buildIndex(onProgress: handler)
        finish()
        await printer.value

        // 3. Filtered queries, many at once, each an async call.
        let questions: [(String, Filter)] = [
            ("recent jazz", Attr("genre") == "jazz" && Attr("year") >= 2000),
            ("live blues", Attr("genre") == "blues" && Attr("tags").contains("live")),
            ("well-rated folk before 1980", try Filter(sql: "genre = 'folk' AND year < 1980 AND rating >= 4")),
            ("unrated anything", Attr("rating").isNull),
        ]
        let answers = try await withThrowingTaskGroup(of: (Int, [Match<Song>], Int).self) { group in
            for (i, (_, filter)) in questions.enumerated() {
                group.addTask {
                    let near = ["jazz", "blues", "folk", "rock"][i]
                    let hits: [Match<Song>] = try await songs.search(Catalogue.query(near: near, seed: UInt64(i)), k: 5, filter: filter)
                    return (i, hits, try await songs.count(where: filter))
                }
            }
            var out = [([Match<Song>], Int)](repeating: ([], 0), count: questions.count)
            for try await (i, hits, count) in group { out[i] = (hits, count) }
            return out
        }
        for ((name, filter), (hits, matches)) in zip(questions, answers) {
            print("\(name): \(matches) matches, nearest \(hits.count)")
            for hit in hits {
                let s = hit.record
                print(String(format: "  %-10@ %@ %d %@ rating %@  distance %.4f", s.title as NSString, s.genre as NSString, s.year,
                             s.tags.description as NSString, (s.rating.map { String($0) } ?? "none") as NSString, hit.distance))
                // Check the answer against the predicate, evaluated on the record's own fields.
                let row = try songs.row(for: s)
                guard try filter.bind(to: schema).matches(values: schema.fields.map { row.attributes[$0.name] ?? .null }) else {
                    fail("\(s.title) does not satisfy \(name)")
                }
            }
            guard hits.count == min(5, matches) else { fail("\(name): \(hits.count) hits for \(matches) matches") }
        }

        // 4. Cancel a long operation half-way: a re-layout for a workload, cancelled once it starts
        //    placing rows. The store is left exactly as it was.
        print("partitioning, then cancelling")
        let before = try await songs.count()
        let probe = Catalogue.query(near: "rock", seed: 99)
        let resultsBefore = try await songs.search(probe, k: 10, filter: Attr("year") >= 1990, options: SearchOptions(exact: true))
        let workload: [Filter?] = questions.map(\.1) + [nil, Attr("genre") == "rock"]
        // The work runs in a task; this code watches its progress, as a UI would, and cancels it.
        let (progress, report, finishProgress) = OperationProgress.stream()
        let partitioning = Task { try await songs.partition(workload: workload, maxPartitions: 16, cells: 16, onProgress: report) }
        for await p in progress {
            show(p)
            if p.phase == .placing {
                partitioning.cancel()
                break
            }
        }
        finishProgress()
        do {
            _ = try await partitioning.value
            fail("the partitioning was not cancelled")
        } catch let error as SextantError where error.code == .cancelled {
            print("cancelled: \(error.message)")
        }
        let check = try await store.check()
        let resultsAfter = try await songs.search(probe, k: 10, filter: Attr("year") >= 1990, options: SearchOptions(exact: true))
        guard check.isConsistent, try await songs.count() == before, resultsAfter == resultsBefore,
              try songs.partitionLayout() == nil else {
            fail("the store changed after a cancelled partitioning: \(check.problems.prefix(3))")
        }
        print("store unchanged: \(before) songs, check passed, same results")

        // 5. The same partitioning, not cancelled.
        let layout = try await songs.partition(workload: workload, maxPartitions: 16, cells: 16, onProgress: show)
        print("partitioned into \(layout.leaves.count) partitions; the workload now reads \(Int(layout.rowsTouchedPartitioned)) of \(Int(layout.rowsTouchedUnpartitioned)) rows")
        print("done")
    }
}

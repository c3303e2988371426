import Foundation
import Testing
@testable import Sextant
import SextantStorage
import SextantTestSupport

@Suite struct StoreTests {
    @Test func createListDescribeDrop() throws {
        let path = temporaryStorePath()
        let store = try Store(path: path)
        defer { store.close() }
        let c = try store.createCollection("items", dimension: 4, metric: .l2, schema: testSchema, indexRecipe: "hnsw16,pq2x8,refine")
        #expect(c.info.indexRecipe == "HNSW16,PQ2x8,Refine")
        try store.createCollection("other", dimension: 2, metric: .cosine)
        #expect(try store.collections().map(\.name) == ["items", "other"])
        let again = try store.collection("items")
        #expect(again.info == c.info)
        #expect(sextantError { try store.createCollection("items", dimension: 4, metric: .l2) }?.code == .alreadyExists)
        #expect(sextantError { _ = try store.collection("nope") }?.code == .notFound)
        try c.upsert(id: 1, vector: [1, 2, 3, 4], attributes: ["name": "a"])
        try store.dropCollection("items")
        #expect(sextantError { _ = try c.count() }?.code == .notFound)
        #expect(try store.collections().map(\.name) == ["other"])
        #expect(try store.check().isConsistent)
    }

    /// A store opened with `prefaultMap` (or prefaulted later) answers exactly as one that is
    /// not, and where the kernel supports it the data file's pages are resident in this process.
    @Test func prefaultedStoreAnswersTheSame() throws {
        let path = temporaryStorePath()
        do {
            let store = try Store(path: path)
            let c = try store.createCollection("items", dimension: 8, metric: .l2)
            var rng = SeededRandom(seed: 17)
            try c.upsert((0..<3000).map { i in Row(id: UInt64(i), vector: (0..<8).map { _ in Float.random(in: -1...1, using: &rng) }) })
            store.close()
        }
        let q: [Float] = [0.1, -0.2, 0.3, 0, 0.5, -0.6, 0.7, 0.05]
        let plain = try Store(path: path)
        let expected = try plain.collection("items").search(q, k: 10, options: SearchOptions(exact: true))
        plain.close()
        var config = Store.Configuration()
        config.prefaultMap = true
        config.readOnly = true
        let warm = try Store(path: path, configuration: config)
        defer { warm.close() }
        // Measured before anything is read: what opening mapped.
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path + "/data.mdb")[.size] as? Int)
        let resident = try residentBytes(of: (path as NSString).lastPathComponent + "/data.mdb")
        #expect(try warm.collection("items").search(q, k: 10, options: SearchOptions(exact: true)) == expected)
        if warm.prefault() {
            #expect(resident >= size * 9 / 10, "resident \(resident) of \(size) bytes after opening")
        }
        // Where the kernel populates mappings, finding the map must not depend on how many other
        // mappings the process has: 400 more, placed below the store's map (listed before it).
        #if os(Linux)
        guard kernelPopulates() else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = try #require(try mappingStart(of: (path as NSString).lastPathComponent + "/data.mdb"))
        var extra: [UnsafeMutableRawPointer] = []
        defer { for p in extra { munmap(p, page) } }
        for i in 1...800 where extra.count < 400 {
            // Below the map, every other page (separate mappings), where nothing is mapped yet.
            guard start > UInt(2 * i * page), let hint = UnsafeMutableRawPointer(bitPattern: start - UInt(2 * i * page)) else { break }
            let p = mmap(hint, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | 0x100000 /* MAP_FIXED_NOREPLACE */, -1, 0)
            if let p, p != MAP_FAILED { extra.append(p) }
        }
        #expect(extra.count >= 100)
        #expect(warm.prefault(), "the data file's mapping was not found among \(extra.count) more mappings")
        #endif
    }

    #if os(Linux)
    /// The start address of this process's first mapping of a file whose path ends with `suffix`.
    private func mappingStart(of suffix: String) throws -> UInt? {
        let handle = try #require(FileHandle(forReadingAtPath: "/proc/self/maps"))
        defer { try? handle.close() }
        let maps = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
        for line in maps.split(separator: "\n") where line.hasSuffix(suffix) {
            return line.split(separator: "-").first.flatMap { UInt($0, radix: 16) }
        }
        return nil
    }

    /// Whether this kernel knows `MADV_POPULATE_READ` (Linux 5.14 and later).
    private func kernelPopulates() -> Bool {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard let p = mmap(nil, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else { return false }
        defer { munmap(p, page) }
        return madvise(p, page, 22) == 0
    }
    #endif

    /// Resident bytes of this process's mappings of files whose path ends with `suffix`.
    private func residentBytes(of suffix: String) throws -> Int {
        // Read to the end: procfs reports a size of 0.
        let handle = try #require(FileHandle(forReadingAtPath: "/proc/self/smaps"))
        defer { try? handle.close() }
        let smaps = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
        var resident = 0, inFile = false
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count >= 5, fields[0].contains("-"), !fields[0].hasSuffix(":") {
                inFile = line.hasSuffix(suffix)
            } else if inFile, line.hasPrefix("Rss:"), fields.count >= 2 {
                resident += (Int(fields[1]) ?? 0) * 1024
            }
        }
        return resident
    }

    @Test func invalidCollectionDefinitions() throws {
        let store = try Store(path: temporaryStorePath())
        defer { store.close() }
        #expect(sextantError { try store.createCollection("", dimension: 4, metric: .l2) }?.code == .invalidArgument)
        #expect(sextantError { try store.createCollection("a/b", dimension: 4, metric: .l2) }?.code == .invalidArgument)
        #expect(sextantError { try store.createCollection("a", dimension: 0, metric: .l2) }?.code == .invalidArgument)
        #expect(sextantError { try store.createCollection("a", dimension: 4, metric: .l2, indexRecipe: "HNSW") }?.code == .invalidArgument)
        #expect(sextantError { try store.createCollection("a", dimension: 4, metric: .l2, indexRecipe: "Refine") }?.code == .invalidArgument)
        #expect(sextantError { _ = try Schema(parsing: "a:int,a:string") }?.code == .invalidArgument)
        #expect(sextantError { _ = try Schema(parsing: "a:float32x") }?.code == .invalidArgument)
        #expect(sextantError { _ = try Metric(parsing: "manhattan") }?.code == .invalidArgument)
        #expect(try store.collections().isEmpty)
    }

    @Test func recipesRoundTrip() throws {
        for text in ["Flat", "HNSW32", "HNSW16_400", "PQ48x8", "PQ96x4fs", "HNSW32,PQ48x8,Refine", "OPQ16,PQ16x8", "OPQ8,HNSW8,PQ8x4fs,Refine"] {
            let r = try IndexRecipe(parsing: text)
            #expect(r.description == text)
            #expect(try IndexRecipe(parsing: r.description) == r)
        }
        let e = sextantError { _ = try IndexRecipe(parsing: "HNSW32,PQ48y8") }
        #expect(e?.context["position"] == "8")
    }

    @Test func newerFormatIsRefused() throws {
        let path = temporaryStorePath()
        try Store(path: path).close()
        // Rewrite the format record through the storage layer, as a newer build would.
        do {
            let env = try Environment(StorageConfiguration(path: path))
            let meta = try #require(try env.openDatabase("sextant.meta", create: false))
            try env.write { txn in try txn.put(meta, key: Array("format".utf8), value: withUnsafeBytes(of: UInt32(99).littleEndian) { Array($0) }) }
            env.close()
        }
        let e = sextantError { _ = try Store(path: path) }
        #expect(e?.code == .formatVersion)
        #expect(e?.foundVersion == 99)
        #expect(e?.supportedVersion == Store.formatVersion)
    }

    @Test func foreignEnvironmentIsRefused() throws {
        let path = temporaryStorePath()
        do {
            let env = try Environment(StorageConfiguration(path: path))
            let other = try #require(try env.openDatabase("someone.else"))
            try env.write { txn in try txn.put(other, key: [1], value: [2]) }
            env.close()
        }
        #expect(sextantError { _ = try Store(path: path) }?.code == .formatVersion)
        // A file that is not LMDB at all.
        let junk = temporaryStorePath("junk")
        try FileManager.default.createDirectory(atPath: junk, withIntermediateDirectories: true)
        try Data(repeating: 0xAB, count: 65536).write(to: URL(fileURLWithPath: junk + "/data.mdb"))
        let e = sextantError { _ = try Store(path: junk) }
        #expect(e?.code == .formatVersion || e?.code == .corrupted)
    }

    @Test func lockedAndReadOnly() throws {
        let path = temporaryStorePath()
        let store = try Store(path: path)
        #expect(sextantError { _ = try Store(path: path) }?.code == .locked)
        let c = try store.createCollection("c", dimension: 2, metric: .l2)
        try c.upsert(id: 7, vector: [1, 1])
        store.close()
        #expect(sextantError { _ = try c.count() }?.code == .closed)
        var ro = Store.Configuration()
        ro.readOnly = true
        let r = try Store(path: path, configuration: ro)
        defer { r.close() }
        let rc = try r.collection("c")
        #expect(try rc.count() == 1)
        #expect(sextantError { try rc.upsert(id: 8, vector: [1, 2]) }?.code == .readOnly)
        var missing = Store.Configuration()
        missing.createIfMissing = false
        #expect(sextantError { _ = try Store(path: temporaryStorePath("missing"), configuration: missing) }?.code == .notFound)
    }

    @Test func upsertReplacesAndSlotsAreReused() throws {
        let store = try Store(path: temporaryStorePath())
        defer { store.close() }
        let c = try store.createCollection("c", dimension: 3, metric: .l2, schema: testSchema)
        try c.upsert((0..<10).map { Row(id: UInt64($0), vector: [Float($0), 0, 0], attributes: ["year": .int(Int64(2000 + $0))]) })
        try c.upsert(id: 3, vector: [9, 9, 9], attributes: ["name": "three"])
        let r = try #require(try c.get(3))
        #expect(r.vector == [9, 9, 9])
        #expect(r.attributes == ["name": "three"])
        #expect(try c.count() == 10)
        #expect(try c.delete([2, 4, 100]) == 2)
        #expect(try c.get(2) == nil)
        try c.upsert([Row(id: 50, vector: [1, 1, 1]), Row(id: 51, vector: [2, 2, 2])])
        let stats = try store.statistics().collections[0]
        #expect(stats.rows == 10)
        #expect(stats.slots == 10)  // both freed slots were reused
        #expect(stats.freeSlots == 0)
        #expect(try store.check().isConsistent)
    }

    @Test func exactSearchOrdersByDistanceThenID() throws {
        let store = try Store(path: temporaryStorePath())
        defer { store.close() }
        let c = try store.createCollection("c", dimension: 2, metric: .l2, schema: testSchema)
        // Ties: ids 5 and 3 at the same distance; 3 must come first.
        try c.upsert([
            Row(id: 5, vector: [1, 0], attributes: ["year": 2001]), Row(id: 3, vector: [0, 1], attributes: ["year": 2002]),
            Row(id: 9, vector: [3, 3], attributes: ["year": 2003]), Row(id: 1, vector: [0, 0]),
        ])
        let r = try c.search([0, 0], k: 3)
        #expect(r.map(\.id) == [1, 3, 5])
        #expect(r.map(\.distance) == [0, 1, 1])
        // Fewer matches than k: exactly the matches.
        let f = try c.search([0, 0], k: 10, filter: Attr("year") >= 2002)
        #expect(f.map(\.id) == [3, 9])
        // NULL year never matches a comparison (three-valued logic), but IS NULL does.
        #expect(try c.search([0, 0], k: 10, filter: .isNull("year")).map(\.id) == [1])
        #expect(try c.search([0, 0], k: 10, filter: try Filter(sql: "year < 1900")).isEmpty)
    }

    @Test func metricsMatchTheirFormulas() throws {
        let store = try Store(path: temporaryStorePath())
        defer { store.close() }
        let x: [Float] = [1, 2, 2], q: [Float] = [2, 0, 1]
        for (m, expected) in [(Metric.l2, 1.0 + 4 + 1), (.ip, -4.0), (.cosine, 1 - 4.0 / (3 * 5.0.squareRoot()))] {
            let c = try store.createCollection("m-\(m)", dimension: 3, metric: m)
            try c.upsert(id: 1, vector: x)
            let d = try c.search(q, k: 1)[0].distance
            #expect(abs(Double(d) - expected) < 1e-5, "\(m)")
        }
    }
}

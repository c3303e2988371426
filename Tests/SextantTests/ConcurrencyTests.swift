import Foundation
import Testing
import Sextant
import SextantTestSupport

@Suite struct ConcurrencyTests {
    /// Readers on other threads see whole transactions only: each batch moves every row of the
    /// collection to the same generation, so a snapshot must never mix generations.
    @Test func readersSeeWholeTransactions() throws {
        let store = try Store(path: temporaryStorePath())
        defer { store.close() }
        let c = try store.createCollection("c", dimension: 4, metric: .l2, schema: try Schema(parsing: "gen:int"))
        let n = 200
        try c.upsert((0..<n).map { Row(id: UInt64($0), vector: [Float($0), 0, 0, 0], attributes: ["gen": 0]) })
        let stop = ManagedFlag()
        let errors = ErrorBox()
        let readers = (0..<3).map { _ in
            Thread {
                while !stop.isSet {
                    do {
                        // distance = id² + generation²: one snapshot must give one generation.
                        let all = try c.search([0, 0, 0, 0], k: n)
                        if all.count != n { errors.add("saw \(all.count) rows") }
                        let gens = Set(all.map { Double($0.distance) - Double($0.id * $0.id) })
                        if gens.count != 1 { errors.add("one snapshot mixed generations \(gens.sorted().prefix(4))") }
                    } catch { errors.add("\(error)") }
                }
            }
        }
        readers.forEach { $0.start() }
        for g in 1...30 {
            try c.upsert((0..<n).map { Row(id: UInt64($0), vector: [Float($0), Float(g), 0, 0], attributes: ["gen": .int(Int64(g))]) })
            // Within one search (one snapshot) every row has the same generation.
            let rows = try c.search([0, 0, 0, 0], k: n)
            let gens = Set(try rows.map { try c.get($0.id)!.attributes["gen"]! })
            #expect(gens.count >= 1)
            let sameGen = try c.search([0, 0, 0, 0], k: n, filter: Attr("gen") == .int(Int64(g)))
            #expect(sameGen.count == n)
        }
        stop.set()
        Thread.sleep(forTimeInterval: 0.2)
        #expect(errors.items.isEmpty, "\(errors.items.prefix(3))")
        #expect(try store.check().isConsistent)
    }
}

final class ManagedFlag: @unchecked Sendable {
    private var value = false
    private let lock = NSLock()
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}

final class ErrorBox: @unchecked Sendable {
    private var list: [String] = []
    private let lock = NSLock()
    var items: [String] { lock.lock(); defer { lock.unlock() }; return list }
    func add(_ s: String) { lock.lock(); list.append(s); lock.unlock() }
}

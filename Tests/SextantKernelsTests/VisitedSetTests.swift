import SextantTestSupport
import Testing
@testable import SextantKernels

/// The traversal's visited set against a `Set<UInt32>`: insertion reports first visits only,
/// and a reset forgets everything, whether it clears the words it touched or all of them.
struct VisitedSetTests {
    @Test(arguments: [10, 500, 20_000])
    func agreesWithASetAcrossResets(visits: Int) {
        var rng = SeededRandom(seed: 0x715_17ED &+ UInt64(visits))
        var visited = _VisitedSet()
        defer { visited.deallocate() }
        for round in 0..<6 {
            // Bounds that grow, shrink and land between words.
            let bound = [1_000, 70_001, 64, 200_000, 5_000, 130][round]
            visited.reset(bound: bound)
            #expect(visited.bound >= bound)
            var model = Set<UInt32>()
            for _ in 0..<visits {
                let id = UInt32.random(in: 0..<UInt32(bound), using: &rng)
                #expect(visited.insert(id) == model.insert(id).inserted, "round \(round) id \(id)")
            }
            for _ in 0..<2_000 {
                let id = UInt32.random(in: 0..<UInt32(bound), using: &rng)
                #expect(visited.contains(id) == model.contains(id), "round \(round) id \(id)")
            }
            for id in model.prefix(100) { #expect(visited.contains(id)) }
        }
        // After a reset nothing from the rounds before remains.
        visited.reset(bound: 200_000)
        for id in stride(from: UInt32(0), to: 200_000, by: 1) where visited.contains(id) {
            Issue.record("id \(id) still visited after reset")
            break
        }
    }
}

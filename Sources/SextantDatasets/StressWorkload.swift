import Sextant

/// The deterministic write workload of `sextant stress --mode write`: step `i` upserts a few rows
/// and then deletes a few, both derived from (seed, i), over ids 0..<400 of a small collection.
public enum StressWorkload {
    public static let idSpace: UInt64 = 400
    public static let schema = try! Schema(parsing: "step:int,tag:string")

    public static func transaction(seed: UInt64, index: Int, dimension: Int) -> (upserts: [Row], deletes: [UInt64]) {
        var rng = SeededRandom(seed: seed &* 1_000_003 &+ UInt64(index))
        let n = 1 + Int(rng.next() % 40)
        let rows = (0..<n).map { _ -> Row in
            let id = rng.next() % idSpace
            let v = (0..<dimension).map { _ in Float(Int(rng.next() % 200) - 100) / 8 }
            return Row(id: id, vector: v, attributes: ["step": .int(Int64(index)), "tag": .string("t\(rng.next() % 5)")])
        }
        let deletes = (0..<Int(rng.next() % 8)).map { _ in rng.next() % idSpace }
        return (rows, deletes)
    }
}

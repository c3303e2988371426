import Sextant
import SextantDatasets

extension StressWorkload {
    /// The model after the first `steps` steps; `halfStep` also applies the upserts of step `steps`
    /// (a kill can land between a step's two commits).
    public static func model(seed: UInt64, steps: Int, dimension: Int, halfStep: Bool = false) -> ReferenceModel {
        var m = ReferenceModel(metric: .l2, schema: schema)
        for i in 0..<(steps + (halfStep ? 1 : 0)) {
            let (rows, deletes) = transaction(seed: seed, index: i, dimension: dimension)
            for r in rows { m.upsert(r) }
            if halfStep && i == steps { break }
            for d in deletes { m.delete(d) }
        }
        return m
    }
}

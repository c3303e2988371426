import ArgumentParser
import Sextant

/// Predicates read from a file, with the 1-based line each came from.
struct FilePredicates {
    var filters: [Filter?]
    /// The file they came from (nil for one `--where` or none).
    var file: String?
    /// The line of each filter in `file`.
    var lines: [Int]

    /// Binds every distinct predicate to the collection's schema before any search, so that an
    /// unknown attribute or a type mismatch names the file and its 1-based line (the search
    /// itself could only name the query's position).
    func bind(to schema: Schema) throws {
        var seen = Set<Filter>()
        for (i, f) in filters.enumerated() {
            guard let f, seen.insert(f).inserted else { continue }
            do { _ = try f.bind(to: schema) } catch {
                var ctx = ["line": String(lines[i])]
                if let file { ctx["file"] = file }
                throw error.adding(ctx)
            }
        }
    }
}

/// Range checks of numeric options. ArgumentParser reads `-5` as an option name (and would say
/// "Missing value"), so these options parse their value unconditionally and are checked here,
/// as usage errors (exit 64) that name the option and the value.
enum OptionCheck {
    static func atLeast(_ minimum: Int, _ value: Int?, _ name: String) throws {
        if let value, value < minimum {
            throw ValidationError("\(name) must be at least \(minimum), got \(value)")
        }
    }
}

import SextantCore
import SextantFilter
import SextantTestSupport
import Testing

/// Hostile input must produce a value or a `SextantError`, never a trap. (A trap would crash
/// the test process, so merely finishing is the assertion; typed throws guarantee the error type.)
@Suite struct FuzzTests {
    static let sqlSeeds = [
        "year >= 2010 AND genre = 'jazz'", "tags CONTAINS 'x' OR NOT (a IS NULL)", "x NOT BETWEEN -1.5e3 AND 2",
        "major_version IN (0, 1) AND summary_len >= 51", "\"q\"\"id\" NOT IN ('a''b', 3, TRUE)", "a <> 1 OR b != 2",
        "((((a = 1))))", "NOT NOT NOT x IS NOT NULL", "x = -9223372036854775808",
    ]
    static let jsonSeeds = [
        #"{"and": [{"field": "year", "op": ">=", "value": 2010}, {"not": {"field": "t", "op": "contains", "value": "x"}}]}"#,
        #"{"or": [true, false, {"field": "x", "op": "between", "value": [1, 2.5e3]}]}"#,
        #"[1, -0.0, 1e-5, "\u00e9\ud83c\udfb7\n", null, {"a": {"b": []}}]"#,
        #"{"field": "x", "op": "in", "value": [1, "a", true]}"#,
    ]
    static let alphabet: [UInt8] = Array(#"()[]{},:"'\ -+.eE0123456789aAnNdDoOrRtTuUlLfFsSiIbB=<>!_xyz"#.utf8) + [0x00, 0x0A, 0xC3, 0xA9, 0xFF, 0xED, 0xA0, 0xF0]

    func mutate(_ s: [UInt8], _ rng: inout SeededRandom) -> [UInt8] {
        var b = s
        for _ in 0...(rng.next() % 4) {
            let op = rng.next() % 5
            let pos = b.isEmpty ? 0 : Int(rng.next() % UInt64(b.count))
            switch op {
            case 0 where !b.isEmpty: b.remove(at: pos)
            case 1: b.insert(Self.alphabet[Int(rng.next() % UInt64(Self.alphabet.count))], at: pos)
            case 2 where !b.isEmpty: b[pos] = UInt8(truncatingIfNeeded: rng.next())
            case 3 where !b.isEmpty:
                let end = min(b.count, pos + Int(rng.next() % 8))
                b.insert(contentsOf: b[pos..<end], at: pos)
            default: b = Array(b.prefix(pos))
            }
        }
        return b
    }

    func checkSQL(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        do {
            let p = try Filter(sql: text)
            // Whatever parses must print and re-parse to itself.
            #expect(try Filter(sql: p.toSQL()) == p, "\(text.debugDescription)")
        } catch {
            #expect(error.code == .syntax)
            #expect(Int(error.context["position"] ?? "") != nil)
        }
    }

    func checkJSON(_ bytes: [UInt8]) {
        do {
            let v = try JSONValue(parsing: bytes)
            #expect(try JSONValue(parsing: v.jsonText) == v)
            if let p = try? Filter(json: v) { #expect(try Filter(json: p.toJSON()) == p) }
        } catch {
            #expect(error.code == .syntax)
            #expect(Int(error.context["offset"] ?? "") != nil)
        }
    }

    @Test func mutatedInputs() {
        var rng = SeededRandom(seed: 2024)
        for i in 0..<6000 {
            let sql = Array(Self.sqlSeeds[i % Self.sqlSeeds.count].utf8)
            checkSQL(mutate(sql, &rng))
            let json = Array(Self.jsonSeeds[i % Self.jsonSeeds.count].utf8)
            let m = mutate(json, &rng)
            checkJSON(m)
            checkSQL(m)
        }
    }

    @Test func randomBytes() {
        var rng = SeededRandom(seed: 77)
        for _ in 0..<4000 {
            let n = Int(rng.next() % 40)
            let bytes: [UInt8] = (0..<n).map { _ in
                rng.next() % 2 == 0 ? Self.alphabet[Int(rng.next() % UInt64(Self.alphabet.count))] : UInt8(truncatingIfNeeded: rng.next())
            }
            checkSQL(bytes)
            checkJSON(bytes)
        }
    }
}

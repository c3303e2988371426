import Foundation
import Testing
@_spi(Testing) @testable import Sextant
import SextantFormats
import SextantTestSupport

@Suite struct AttributeCodecTests {
    @Test func roundTripsEveryTypeAndNull() throws {
        let schema = try Schema(parsing: "s:string,i:int,d:double,b:bool,ls:[string],li:[int]")
        let rows: [AttributeRow] = [
            AttributeRow(nullsFor: 6),
            AttributeRow(values: ["", .int(Int64.min), .double(-0.0), false, .stringList([]), .intList([])]),
            AttributeRow(values: ["ünï ✓", .int(Int64.max), .double(1e300), true, .stringList(["a", "", "b"]), .intList([-1, 0, 1 << 40])]),
            AttributeRow(values: [.string(String(repeating: "tag ", count: 100)), .null, .null, .null, .stringList(Array(repeating: "repeat", count: 50)), .null]),
        ]
        for r in rows {
            let bytes = RecordCodec.encodeAttributes(r, schema: schema)
            #expect(try RecordCodec.decodeAttributes(bytes, schema: schema) == r)
        }
        // The long repetitive row is stored compressed; the short ones are not.
        #expect(RecordCodec.encodeAttributes(rows[3], schema: schema)[0] == 1)
        #expect(RecordCodec.encodeAttributes(rows[2], schema: schema)[0] == 0)
    }

    @Test func truncatedAndMutatedRecordsAreCorruptedNotTraps() throws {
        let schema = try Schema(parsing: "s:string,i:int,d:double,b:bool,ls:[string],li:[int]")
        let row = AttributeRow(values: ["hello", 42, 2.5, true, .stringList(["x", "y"]), .intList([7, 8])])
        let bytes = RecordCodec.encodeAttributes(row, schema: schema)
        for cut in 0..<bytes.count {
            let e = sextantError { _ = try RecordCodec.decodeAttributes(Array(bytes.prefix(cut)), schema: schema) }
            #expect(e?.code == .corrupted, "prefix \(cut)")
        }
        var rng = SeededRandom(seed: 3)
        for _ in 0..<3000 {
            var m = bytes
            for _ in 0..<(1 + Int(rng.next() % 3)) { m[Int(rng.next() % UInt64(m.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            do { _ = try RecordCodec.decodeAttributes(m, schema: schema) } catch let e as SextantError {
                #expect(e.code == .corrupted)
            }
        }
    }

    /// The measurement behind "compress attribute rows only where LZ4 wins": per-row sizes with
    /// and without LZ4 on generated data and, when present, pypi-50k's attributes.
    @Test func compressionIsUsedOnlyWhereItWins() throws {
        func measure(_ rows: [AttributeRow], _ schema: Schema) -> (raw: Int, stored: Int, compressed: Int) {
            var raw = 0, stored = 0, compressed = 0
            for r in rows {
                var payload: [UInt8] = []
                AttributeCodec.encodePayload(r, schema: schema, into: &payload)
                let rec = RecordCodec.encodeAttributes(r, schema: schema)
                raw += payload.count + 1
                stored += rec.count
                if rec[0] == 1 { compressed += 1 }
            }
            return (raw, stored, compressed)
        }
        let ds = SyntheticDataset(rows: 5000, dimension: 4, queries: 0)
        let schema = SyntheticDataset.schema
        let rows = ds.attributes.map { a in AttributeRow(values: schema.fields.map { a[$0.name] ?? .null }) }
        let m = measure(rows, schema)
        #expect(m.stored <= m.raw)
        print("attribute rows (synthetic, \(rows.count)): raw \(m.raw) B, stored \(m.stored) B, \(m.compressed) rows compressed")
        if let dir = sharedDataset("pypi-50k") {
            let pschema = try Schema(parsing: "name:string,month:int,year:int,rank:int,major_version:int,summary_len:int,tags:[string]")
            let store = try Store(path: temporaryStorePath("lz4"))
            defer { store.close() }
            let c = try store.createCollection("p", dimension: 1, metric: .l2, schema: pschema)
            var prow: [AttributeRow] = []
            _ = try LineReader(path: dir + "/attributes.jsonl").forEachLine { b, _ in
                let named = try c.attributes(fromJSON: try JSONValue(parsing: b))
                prow.append(AttributeRow(values: pschema.fields.map { named[$0.name] ?? .null }))
            }
            let p = measure(prow, pschema)
            #expect(p.stored <= p.raw)
            print("attribute rows (pypi-50k, \(prow.count)): raw \(p.raw) B, stored \(p.stored) B, \(p.compressed) rows compressed")
        } else {
            print("pypi-50k not found; the real-data half of the compression measurement skipped")
        }
    }
}

import Testing
import SextantCore
import SextantFormats

@Suite struct LineReaderTests {
    func lines(_ path: String, chunkSize: Int = 1 << 20, maxLineLength: Int = 64 << 20) throws -> [String] {
        var out: [String] = []
        let reader = LineReader(path: path, chunkSize: chunkSize, maxLineLength: maxLineLength)
        let n = try reader.forEachLine { bytes, number in
            #expect(number == out.count)
            out.append(String(decoding: bytes, as: UTF8.self))
        }
        #expect(n == out.count)
        return out
    }

    @Test(arguments: [16, 17, 64, 1 << 20])
    func splitsLines(chunkSize: Int) throws {
        let dir = TempDir()
        let cases: [(String, [String])] = [
            ("", []),
            ("\n", [""]),
            ("a", ["a"]),
            ("a\nb\n", ["a", "b"]),
            ("a\r\nb\r\nc", ["a", "b", "c"]),
            ("\u{FEFF}{\"x\":1}\n\n{\"x\":2}", ["{\"x\":1}", "", "{\"x\":2}"]),
            (String(repeating: "x", count: 100) + "\n" + String(repeating: "y", count: 37), [String(repeating: "x", count: 100), String(repeating: "y", count: 37)]),
        ]
        for (text, expected) in cases {
            let path = dir.write("l.jsonl", Array(text.utf8))
            #expect(try lines(path, chunkSize: chunkSize) == expected, "\(text.debugDescription)")
        }
    }

    @Test func manyLinesAcrossChunks() throws {
        let dir = TempDir()
        let expected = (0..<20_000).map { "{\"id\": \($0), \"pad\": \"\(String(repeating: "z", count: $0 % 50))\"}" }
        let path = dir.write("big.jsonl", Array(expected.joined(separator: "\n").utf8) + [0x0A])
        #expect(try lines(path, chunkSize: 4096) == expected)
    }

    @Test func limitsAndErrors() throws {
        let dir = TempDir()
        let path = dir.write("long.jsonl", Array(("ok\n" + String(repeating: "x", count: 5000) + "\nafter").utf8))
        do {
            _ = try lines(path, chunkSize: 64, maxLineLength: 1000)
            Issue.record("over-long line accepted")
        } catch let e as SextantError {
            #expect(e.code == .malformedFile && e.context["line"] == "1")
        }
        #expect(try lines(path, chunkSize: 64, maxLineLength: 5000).count == 3)

        struct Stop: Error {}
        var seen = 0
        #expect(throws: Stop.self) {
            try LineReader(path: path).forEachLine { _, n in
                seen += 1
                if n == 1 { throw Stop() }
            }
        }
        #expect(seen == 2)
        #expect(throws: SextantError.self) { try LineReader(path: dir.file("missing")).forEachLine { _, _ in } }
    }
}

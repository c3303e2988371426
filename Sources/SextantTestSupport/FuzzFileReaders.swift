import Foundation
import Sextant
import SextantFormats

/// Vector files and JSONL lines. The first byte picks the reader (and, for `LineReader`, the
/// chunk size and line limit); the rest is written to a scratch file and read back.
///
/// Invariants: opening throws only `.malformedFile`/`.unsupportedFormat`; an opened file has
/// `count ≥ 0`, `dimension ≥ 1` (or no rows), every row range reads back `range.count × dimension`
/// values, TEXMEX values are exactly the bytes of the file, ranges outside `0..<count` throw
/// `.invalidArgument`; `LineReader` delivers exactly the file's lines (CR before LF dropped, BOM
/// skipped, a final unterminated line delivered) or stops with `.malformedFile` at a line that
/// really is longer than the limit.
enum FileReadersFuzz {
    static let extensions = ["fvecs", "ivecs", "bvecs", "npy", "bin"]

    static func run(_ data: [UInt8]) throws {
        var input = FuzzBytes(data)
        let selector = input.byte()
        let body = input.rest()
        if selector & 0x80 != 0 {
            try lines(body, chunkSize: 16 + Int(selector & 0x0F) * 3, maxLineLength: 1 + Int(selector & 0x70) / 2)
        } else {
            let ext = extensions[Int(selector) % extensions.count]
            let explicit = (selector >> 3) & 1 == 1
            try vectorFile(body, ext: ext, explicitFormat: explicit)
        }
    }

    static func write(_ bytes: [UInt8], ext: String) throws -> String {
        let path = FuzzScratch.path("input.\(ext)")
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw FuzzFailure(message: "harness: cannot write \(path)")
        }
        return path
    }

    static func vectorFile(_ bytes: [UInt8], ext: String, explicitFormat: Bool) throws {
        let path = try write(bytes, ext: ext)
        defer { unlink(path) }
        let format: VectorFileFormat? = explicitFormat ? VectorFileFormat(rawValue: ext) : nil
        let file: VectorFile
        do {
            file = try VectorFile(path: path, format: format)
        } catch {
            try require(error.code == .malformedFile || error.code == .unsupportedFormat,
                        "VectorFile(path:) threw \(error.code) for \(bytes.count) bytes (.\(ext)): \(error)")
            return
        }
        let n = file.count, d = file.dimension
        try require(n >= 0, "negative count \(n)")
        try require(d >= 1 || n == 0, "\(n) rows of dimension \(d)")
        try require(d >= 0, "negative dimension \(d) (count \(n), \(file.format), \(file.elementType))")
        let isInt = file.elementType == .int32
        let isTexmex = file.format != .npy
        if isTexmex {
            let width = file.elementType.byteWidth
            try require(n * (4 + d * width) == bytes.count, "\(file.format): \(n) rows of dimension \(d) do not fill \(bytes.count) bytes")
        }
        // Read in batches; stop early on the first malformed record (TEXMEX checks prefixes lazily).
        var row = 0
        var failedAt: Int? = nil
        while row < n {
            let range = row..<min(n, row + 1 + Int(bytes.count % 7))
            do {
                if isInt {
                    let values = try file.int32Rows(range)
                    try require(values.count == range.count * d, "int32Rows(\(range)) returned \(values.count) values, dimension \(d)")
                    if isTexmex {
                        for (j, v) in values.enumerated() {
                            let r = range.lowerBound + j / d, i = j % d
                            try require(v == int32(bytes, at: r * (4 + 4 * d) + 4 + 4 * i), "ivecs value \(r),\(i) differs from the file")
                        }
                    }
                    do { _ = try file.rows(range); throw FuzzFailure(message: "rows(_:) read an Int32 file") } catch let e as SextantError {
                        try require(e.code == .unsupportedFormat, "rows(_:) on Int32 threw \(e.code)")
                    }
                } else {
                    let values = try file.rows(range)
                    try require(values.count == range.count * d, "rows(\(range)) returned \(values.count) values, dimension \(d)")
                    if isTexmex {
                        let width = file.elementType.byteWidth
                        for (j, v) in values.enumerated() {
                            let r = range.lowerBound + j / d, i = j % d
                            let offset = r * (4 + width * d) + 4 + width * i
                            let expected: Float = width == 4 ? Float(bitPattern: UInt32(bitPattern: int32(bytes, at: offset))) : Float(bytes[offset])
                            try require(v.bitPattern == expected.bitPattern, "\(file.format) value \(r),\(i) is \(v), the file holds \(expected)")
                        }
                    }
                    do { _ = try file.int32Rows(range); throw FuzzFailure(message: "int32Rows read a float file") } catch let e as SextantError {
                        try require(e.code == .unsupportedFormat, "int32Rows on floats threw \(e.code)")
                    }
                }
            } catch let e as SextantError {
                try require(isTexmex && e.code == .malformedFile, "reading rows \(range) threw \(e.code): \(e)")
                // Only a record whose dimension prefix differs may fail.
                let bad = (range.lowerBound..<range.upperBound).first { int32(bytes, at: $0 * (4 + file.elementType.byteWidth * d)) != Int32(d) }
                try require(bad != nil, "rows \(range) failed but every prefix in it is \(d): \(e)")
                failedAt = bad
                break
            }
            row = range.upperBound
        }
        do {
            try file.validate(batchSize: 3)
            try require(failedAt == nil, "validate() passed but row \(failedAt ?? -1) failed to read")
        } catch let e as SextantError {
            try require(e.code == .malformedFile && isTexmex, "validate() threw \(e.code)")
        }
        for bad in [n..<n + 1, -1..<0] {
            do {
                _ = try (isInt ? file.int32Rows(bad).count : file.rows(bad).count)
                throw FuzzFailure(message: "rows \(bad) of a \(n)-row file did not throw")
            } catch let e as SextantError {
                try require(e.code == .invalidArgument, "rows \(bad) threw \(e.code)")
            }
        }
        if n > 0 { _ = file.batches(of: 1 + bytes.count % 5) }
    }

    static func int32(_ bytes: [UInt8], at offset: Int) -> Int32 {
        guard offset >= 0, offset + 4 <= bytes.count else { return -1 }
        return Int32(bitPattern: UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24)
    }

    static func lines(_ bytes: [UInt8], chunkSize: Int, maxLineLength: Int) throws {
        let path = try write(bytes, ext: "jsonl")
        defer { unlink(path) }
        // The expected lines: split at LF; the last piece is a line only when non-empty.
        var raw = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
        if raw.last?.isEmpty == true { raw.removeLast() }
        var expected = raw.map { line -> [UInt8] in line.last == 0x0D ? Array(line.dropLast()) : line }
        if let first = expected.first, first.starts(with: [0xEF, 0xBB, 0xBF]) { expected[0] = Array(first.dropFirst(3)) }

        var got: [[UInt8]] = []
        let reader = LineReader(path: path, chunkSize: chunkSize, maxLineLength: maxLineLength)
        do {
            let n = try reader.forEachLine { line, number in
                guard number == got.count else { throw FuzzFailure(message: "line number \(number) delivered as line \(got.count)") }
                got.append(Array(line))
            }
            try require(n == got.count, "forEachLine returned \(n) after delivering \(got.count) lines")
            try require(got == expected, "LineReader(chunk \(chunkSize)) delivered \(got.count) lines \(got.prefix(3)), expected \(expected.count) \(expected.prefix(3))")
        } catch let e as SextantError {
            try require(e.code == .malformedFile, "LineReader threw \(e.code): \(e)")
            try require(Array(expected.prefix(got.count)) == got, "lines delivered before the error differ from the file's")
            let line = Int(e.context["line"] ?? "") ?? -1
            try require(line == got.count, "error names line \(line) after \(got.count) lines were delivered")
            try require(line < raw.count && raw[line].count > maxLineLength,
                        "line \(line) rejected as longer than \(maxLineLength) but has \(line < raw.count ? raw[line].count : -1) bytes")
        }
    }
}

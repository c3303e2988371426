import SextantTestSupport
import Testing
import SextantCore
@testable import SextantFormats
#if canImport(Glibc)
import Glibc
#endif

@Suite struct RoundTrips {
    @Test(arguments: [VectorFileFormat.fvecs, .npy])
    func floatRoundTrip(format: VectorFileFormat) throws {
        let dir = TempDir()
        var rng = SeededRandom(seed: 11)
        for (n, d) in [(1, 1), (7, 3), (1000, 128), (0, 5)] where !(format == .fvecs && n == 0) {
            let rows = (0..<n * d).map { _ in Float.random(in: -1e3...1e3, using: &rng) }
            let path = dir.file("v\(n)x\(d).\(format)")
            try VectorFileWriter.write(rows, dimension: d, to: path, format: format)
            let f = try VectorFile(path: path)
            #expect(f.format == format && f.elementType == .float32)
            #expect(f.count == n && f.dimension == d)
            #expect(try f.readAll() == rows)
            // Batches reassemble the whole file.
            var joined: [Float] = []
            for r in f.batches(of: 300) { joined += try f.rows(r) }
            #expect(joined == rows)
            if n > 5 { #expect(try f.row(5) == Array(rows[5 * d..<6 * d])) }
        }
        #expect(dir.listing().allSatisfy { !$0.contains(".tmp-") }, "no temp files left")
    }

    @Test func npyHeaderLayoutMatchesNumpy() throws {
        let bytes = NpyHeader.encode(descr: "<f4", count: 50000, dimension: 384)
        #expect(bytes.count % 64 == 0, "data starts 64-byte aligned")
        #expect(bytes.last == 0x0A)
        let text = String(decoding: bytes[10...], as: UTF8.self)
        #expect(text.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (50000, 384), }"))
    }

    @Test func ivecsRoundTripWithPadding() throws {
        let dir = TempDir()
        let rows: [Int32] = [3, 1, 4, 1, 5, -1, -1, -1, 9, 2, 6, -1]
        let path = dir.file("gt.ivecs")
        try VectorFileWriter.writeIvecs(rows, dimension: 4, to: path)
        let f = try VectorFile(path: path)
        #expect(f.format == .ivecs && f.count == 3 && f.dimension == 4)
        #expect(try f.int32Rows(0..<3) == rows)
        #expect(try f.int32Rows(1..<2) == [5, -1, -1, -1])
        expectError(.unsupportedFormat, "ivecs as floats") { _ = try f.rows(0..<1) }
    }

    @Test func streamingWriterAndAtomicReplace() throws {
        let dir = TempDir()
        let path = dir.file("s.fvecs")
        try VectorFileWriter.write([1, 2], dimension: 2, to: path, format: .fvecs)
        // A writer abandoned midway leaves the old file and no temp file.
        do {
            let w = try VectorFileWriter(path: path, format: .fvecs, dimension: 2)
            try w.append([9, 9, 9, 9])
        }
        #expect(try VectorFile(path: path).readAll() == [1, 2])
        #expect(dir.listing() == ["s.fvecs"])
        // Appends in batches, then finish replaces atomically.
        let w = try VectorFileWriter(path: path, format: .fvecs, dimension: 2)
        for i in 0..<5 { try w.append([Float(i), Float(-i)]) }
        try w.finish()
        #expect(try VectorFile(path: path).readAll() == [0, 0, 1, -1, 2, -2, 3, -3, 4, -4])
        // npy needs its count; a wrong count fails at finish and leaves nothing behind.
        expectError(.invalidArgument, "npy without count") {
            _ = try VectorFileWriter(path: dir.file("x.npy"), format: .npy, dimension: 2)
        }
        let short = try VectorFileWriter(path: dir.file("short.npy"), format: .npy, dimension: 2, count: 3)
        try short.append([1, 2])
        expectError(.invalidArgument, "short npy") { try short.finish() }
        expectError(.dimensionMismatch, "partial row") {
            let w = try VectorFileWriter(path: dir.file("p.fvecs"), format: .fvecs, dimension: 3)
            try w.append([1, 2])
        }
        #expect(dir.listing() == ["s.fvecs"])
    }

    @Test func bvecsConvertsToFloat() throws {
        let dir = TempDir()
        let path = dir.write("b.bvecs", texmex([(3, [0, 127, 255]), (3, [1, 2, 3])]))
        let f = try VectorFile(path: path)
        #expect(f.format == .bvecs && f.elementType == .uint8 && f.count == 2 && f.dimension == 3)
        #expect(try f.readAll() == [0, 127, 255, 1, 2, 3])
    }

    @Test func npyFloat16AndFloat64AndVersions() throws {
        let dir = TempDir()
        // 1.0, -2.0, 65504 (max), smallest subnormal, -0, +inf as binary16.
        let halves: [UInt16] = [0x3C00, 0xC000, 0x7BFF, 0x0001, 0x8000, 0x7C00]
        let payload16 = halves.flatMap { withUnsafeBytes(of: $0.littleEndian) { Array($0) } }
        for major: UInt8 in [1, 2, 3] {
            let path = dir.write("h\(major).npy", npy(major: major, dict: "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }", payload: payload16))
            let f = try VectorFile(path: path)
            #expect(f.elementType == .float16 && f.count == 2 && f.dimension == 3)
            let v = try f.readAll()
            #expect(v[0] == 1 && v[1] == -2 && v[2] == 65504 && v[3] == 0x1p-24)
            #expect(v[4] == 0 && v[4].sign == .minus && v[5] == .infinity)
        }
        let doubles: [Double] = [1.5, -1e300, 0.1]
        let payload64 = doubles.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian) { Array($0) } }
        // 1-D: one row; double quotes and no trailing comma are valid Python too.
        let path = dir.write("d.npy", npy(dict: "{\"descr\": \"<f8\", \"shape\": (3,), \"fortran_order\": False}", payload: payload64))
        let f = try VectorFile(path: path)
        #expect(f.count == 1 && f.dimension == 3)
        #expect(try f.readAll() == [1.5, -.infinity, Float(0.1)])
        // Magic bytes win over the extension.
        let disguised = dir.write("d.fvecs", npy(dict: "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 3), }", payload: payload64))
        #expect(try VectorFile(path: disguised).format == .npy)
    }

    @Test func float16DecoderIsExactForAllBitPatterns() {
        for bits in 0...UInt16.max {
            let mine = decodeFloat16(bits)
            let reference = Float(Float16(bitPattern: bits))
            if reference.isNaN {
                #expect(mine.isNaN && mine.sign == reference.sign, "bits \(bits)")
            } else {
                #expect(mine.bitPattern == reference.bitPattern, "bits \(bits)")
            }
        }
    }
}

@Suite struct HostileFiles {
    @Test func texmexHeadersAndLengths() throws {
        let dir = TempDir()
        let good = le32(Float(1)) + le32(Float(2))
        let cases: [(String, [UInt8])] = [
            ("empty", []),
            ("3 bytes", [2, 0, 0]),
            ("dimension 0", texmex([(0, [])])),
            ("negative dimension", texmex([(-5, good)])),
            ("absurd dimension", le32(Int32.max) + good),
            ("truncated first record", texmex([(2, Array(good.prefix(5)))])),
            ("wrong length", texmex([(2, good), (2, good)]) + [1, 2, 3]),
            ("last record dimension differs", texmex([(2, good), (2, good), (1, le32(Float(1)) + [0, 0, 0, 0])])),
            ("dims 2 then 3, same total", texmex([(2, good), (3, good + le32(Float(3)))]) + [0, 0, 0]),
        ]
        for (name, bytes) in cases {
            let path = dir.write("h.fvecs", bytes)
            expectError(.malformedFile, name) { _ = try VectorFile(path: path).readAll() }
        }
        // A middle record with another dimension is found when read, naming its row.
        let sneaky = texmex([(2, good), (1, good), (2, good)])
        #expect(sneaky.count % 12 == 0)
        let path = dir.write("m.fvecs", sneaky)
        let f = try VectorFile(path: path)
        #expect(try f.rows(0..<1) == [1, 2])
        let error = caught { _ = try f.rows(0..<3) }
        #expect(error?.code == .malformedFile && error?.context["row"] == "1" && error?.context["offset"] == "12")
        expectError(.malformedFile, "validate") { try f.validate() }
        expectError(.invalidArgument, "out of range") { _ = try f.rows(2..<4) }
        expectError(.notFound, "missing file") { _ = try VectorFile(path: dir.file("nope.fvecs")) }
        let unknown = dir.write("x.txt", [1, 2, 3, 4, 5, 6, 7, 8])
        expectError(.unsupportedFormat, "unknown extension") { _ = try VectorFile(path: unknown) }
    }

    @Test func npyHeaders() throws {
        let dir = TempDir()
        let f4x6 = [UInt8](repeating: 0, count: 24)
        func dict(descr: String = "'<f4'", fortran: String = "False", shape: String = "(2, 3)") -> String {
            "{'descr': \(descr), 'fortran_order': \(fortran), 'shape': \(shape), }"
        }
        let malformed: [(String, [UInt8])] = [
            ("too short", [0x93, 0x4E, 0x55]),
            ("bad magic", [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x5A, 1, 0, 0, 0] + f4x6),
            ("header past end", NpyHeader.magic + [1, 0, 0xFF, 0x7F] + Array("{'descr'".utf8)),
            ("huge v2 header length", NpyHeader.magic + [2, 0, 0xFF, 0xFF, 0xFF, 0x7F] + f4x6),
            ("garbage header", npy(dict: "{'descr': '<f4', 'fortran_order': Fals", payload: f4x6)),
            ("not a dict", npy(dict: "('<f4', False, (2, 3))", payload: f4x6)),
            ("missing shape", npy(dict: "{'descr': '<f4', 'fortran_order': False}", payload: f4x6)),
            ("shape not a tuple", npy(dict: dict(shape: "'2x3'"), payload: f4x6)),
            ("negative shape", npy(dict: dict(shape: "(-2, 3)"), payload: f4x6)),
            ("shape overflows", npy(dict: dict(shape: "(4611686018427387904, 4611686018427387904)"), payload: f4x6)),
            ("shape beyond 64 bits", npy(dict: dict(shape: "(99999999999999999999999, 3)"), payload: f4x6)),
            ("absurd shape", npy(dict: dict(shape: "(1000000000, 1000000)"), payload: f4x6)),
            ("truncated data", npy(dict: dict(), payload: Array(f4x6.prefix(23)))),
            ("trailing data", npy(dict: dict(), payload: f4x6 + [0])),
            ("zero-length rows", npy(dict: dict(shape: "(2, 0)"), payload: [])),
            ("deep nesting", npy(dict: "{'descr': " + String(repeating: "(", count: 5000) + "}", payload: f4x6)),
            ("unterminated string", npy(dict: "{'descr: '<f4'}", payload: f4x6)),
            ("fortran_order not bool", npy(dict: dict(fortran: "0"), payload: f4x6)),
        ]
        for (name, bytes) in malformed {
            let path = dir.write("m.npy", bytes)
            expectError(.malformedFile, name) { _ = try VectorFile(path: path).readAll() }
        }
        let unsupported: [(String, [UInt8])] = [
            ("big-endian", npy(dict: dict(descr: "'>f4'"), payload: f4x6)),
            ("int64", npy(dict: dict(descr: "'<i8'"), payload: f4x6 + f4x6)),
            ("object", npy(dict: dict(descr: "'|O'"), payload: f4x6 + f4x6)),
            ("structured", npy(dict: dict(descr: "[('a', '<f4'), ('b', '<f4')]"), payload: f4x6)),
            ("fortran order", npy(dict: dict(fortran: "True"), payload: f4x6)),
            ("3-D", npy(dict: dict(shape: "(1, 2, 3)"), payload: f4x6)),
            ("0-D", npy(dict: dict(shape: "()"), payload: [0, 0, 0, 0])),
            ("version 4", NpyHeader.magic + [4, 0, 0, 0] + f4x6),
        ]
        for (name, bytes) in unsupported {
            let path = dir.write("u.npy", bytes)
            expectError(.unsupportedFormat, name) { _ = try VectorFile(path: path).readAll() }
        }
        // The message names the dtype.
        let path = dir.write("i8.npy", npy(dict: dict(descr: "'<i8'"), payload: f4x6 + f4x6))
        #expect(caught { _ = try VectorFile(path: path) }?.message.contains("<i8") == true)
    }

    @Test func randomBytesNeverTrap() throws {
        let dir = TempDir()
        var rng = SeededRandom(seed: 2024)
        var opened = 0, rejected = 0
        for i in 0..<3000 {
            let length = Int.random(in: 0..<160, using: &rng)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            // Give some inputs a plausible start so parsing gets past the first check.
            switch i % 4 {
            case 1 where length >= 4: bytes.replaceSubrange(0..<4, with: le32(Int32.random(in: -2...8, using: &rng)))
            case 2: bytes = npy(major: UInt8.random(in: 1...3, using: &rng),
                                dict: ["{'descr': '<f4', 'fortran_order': False, 'shape': (", "{'descr': '<f2', 'shape': (3,", "{'descr': ["].randomElement(using: &rng)!,
                                payload: []) + bytes
            case 3 where length > 20:
                var valid = npy(dict: "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 2), }", payload: [UInt8](repeating: 0, count: 8))
                valid[Int.random(in: 0..<valid.count, using: &rng)] = bytes[0]
                bytes = valid
            default: break
            }
            for ext in ["fvecs", "ivecs", "bvecs", "npy"] {
                let path = dir.write("r.\(ext)", bytes)
                let error = caught {
                    let f = try VectorFile(path: path)
                    if f.elementType == .int32 { _ = try f.int32Rows(0..<f.count) } else { _ = try f.readAll() }
                    try f.validate()
                }
                if let error {
                    #expect(error.code == .malformedFile || error.code == .unsupportedFormat, "\(error)")
                    rejected += 1
                } else {
                    opened += 1
                }
            }
        }
        #expect(opened + rejected == 12_000)
        #expect(opened > 0 && rejected > 0)
    }
}

@Suite struct SharedDataset {
    static let dir = "/work/shared/data/pypi-50k"

    @Test func pypi50kShapesAndUnitNorms() throws {
        guard access(Self.dir + "/base.npy", R_OK) == 0, access(Self.dir + "/queries.fvecs", R_OK) == 0 else {
            print("SKIPPED pypi50kShapesAndUnitNorms: \(Self.dir) not present")
            return
        }
        let base = try VectorFile(path: Self.dir + "/base.npy")
        #expect(base.format == .npy && base.elementType == .float16)
        #expect(base.count == 50_000 && base.dimension == 384)
        var checked = 0
        for r in base.batches(of: 10_000) {
            let rows = try base.rows(r)
            for i in Swift.stride(from: 0, to: r.count, by: 97) {
                let v = rows[i * 384..<(i + 1) * 384]
                let norm = v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                #expect(abs(norm - 1) < 1e-2, "row \(r.lowerBound + i) norm \(norm)")
                checked += 1
            }
        }
        #expect(checked > 500)
        let queries = try VectorFile(path: Self.dir + "/queries.fvecs")
        #expect(queries.format == .fvecs && queries.count == 500 && queries.dimension == 384)
        try queries.validate()
        let q = try queries.readAll()
        for i in 0..<500 {
            let norm = q[i * 384..<(i + 1) * 384].reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            #expect(abs(norm - 1) < 1e-2, "query \(i) norm \(norm)")
        }
        // queries.npy holds the same floats as queries.fvecs.
        if access(Self.dir + "/queries.npy", R_OK) == 0 {
            #expect(try VectorFile(path: Self.dir + "/queries.npy").readAll() == q)
        }
        if access(Self.dir + "/gt-unfiltered.ivecs", R_OK) == 0 {
            let gt = try VectorFile(path: Self.dir + "/gt-unfiltered.ivecs")
            #expect(gt.count == 500 && gt.dimension == 100)
            #expect(try gt.int32Rows(0..<500).allSatisfy { $0 >= -1 && $0 < 50_000 })
        }
    }
}

import SextantCore

/// The on-disk vector formats Sextant reads and writes.
///
/// - `fvecs`, `ivecs`, `bvecs` (TEXMEX): per vector a little-endian `Int32` dimension,
///   then that many `Float32`, `Int32` or `UInt8` values.
/// - `npy`: a numpy array, C order, 1-D (one row) or 2-D (`count × dimension`).
public enum VectorFileFormat: String, Sendable, CaseIterable, CustomStringConvertible {
    case fvecs
    case ivecs
    case bvecs
    case npy

    /// The file extension, without the dot.
    public var description: String { rawValue }

    /// The format for a path: `.npy` files are recognised by their magic bytes whatever
    /// their name; otherwise the extension decides.
    public static func detect(path: String) throws(SextantError) -> VectorFileFormat {
        let file = try ReadOnlyFile(path: path)
        if file.size >= 6, try file.bytes(at: 0, count: 6) == NpyHeader.magic { return .npy }
        let ext = path.split(separator: "/").last.flatMap { name in
            name.lastIndex(of: ".").map { String(name[name.index(after: $0)...]).lowercased() }
        }
        if let ext, let format = VectorFileFormat(rawValue: ext) { return format }
        throw SextantError(.unsupportedFormat,
                           "cannot tell the vector format of '\(path)' (expected .fvecs, .ivecs, .bvecs or .npy)",
                           context: ["file": path])
    }
}

/// The element type stored in a vector file.
public enum VectorElementType: String, Sendable, CustomStringConvertible {
    case float32
    case float16
    case float64
    case int32
    case uint8

    /// The type name.
    public var description: String { rawValue }

    /// Bytes per element on disk.
    public var byteWidth: Int {
        switch self {
        case .float32, .int32: 4
        case .float16: 2
        case .float64: 8
        case .uint8: 1
        }
    }

    init?(npyDescr: String) {
        switch npyDescr {
        case "<f4": self = .float32
        case "<f2": self = .float16
        case "<f8": self = .float64
        case "<i4": self = .int32
        default: return nil
        }
    }
}

/// A vector file opened for reading: `count` rows of `dimension` values.
///
/// Opening reads only the header (and, for TEXMEX files, the first and last record
/// prefixes) and checks it against the file size before anything is allocated, so a
/// hostile header cannot request absurd memory. Rows are read on demand with `pread`
/// (``rows(_:)``), so a multi-gigabyte file can be imported in batches; every TEXMEX
/// record read is checked to carry the file's dimension. All problems throw
/// `SextantError` with `.malformedFile` (the bytes are wrong) or `.unsupportedFormat`
/// (the bytes are valid but describe something Sextant does not read), with `file`,
/// `offset` and, where it applies, `row` in the context.
///
/// Immutable and `Sendable`: several threads may read different ranges concurrently.
public final class VectorFile: Sendable {
    /// The path it was opened with.
    public let path: String
    /// The format, as given or detected.
    public let format: VectorFileFormat
    /// The element type on disk (rows are always delivered as `Float`, or `Int32` via ``int32Rows(_:)``).
    public let elementType: VectorElementType
    /// Number of rows (vectors).
    public let count: Int
    /// Values per row.
    public let dimension: Int

    private let file: ReadOnlyFile
    /// Byte offset of row 0's record.
    private let dataOffset: Int
    /// Bytes per record, including TEXMEX's 4-byte dimension prefix.
    private let recordSize: Int
    /// 4 for TEXMEX (the dimension prefix), 0 for npy.
    private let prefixSize: Int

    /// Opens `path`; `format` defaults to ``VectorFileFormat/detect(path:)``.
    public init(path: String, format: VectorFileFormat? = nil) throws(SextantError) {
        let file = try ReadOnlyFile(path: path)
        let resolved: VectorFileFormat
        if let format { resolved = format } else { resolved = try VectorFileFormat.detect(path: path) }
        let format = resolved
        self.path = path
        self.file = file
        self.format = format
        if format == .npy {
            let header = try NpyHeader.read(file)
            elementType = header.elementType
            count = header.count
            dimension = header.dimension
            dataOffset = header.dataOffset
            recordSize = header.dimension * header.elementType.byteWidth
            prefixSize = 0
            return
        }
        let element: VectorElementType = format == .fvecs ? .float32 : format == .ivecs ? .int32 : .uint8
        func malformed(_ message: String, offset: Int, row: Int? = nil) -> SextantError {
            var context = ["file": path, "offset": String(offset)]
            if let row { context["row"] = String(row) }
            return SextantError(.malformedFile, "\(format): \(message)", context: context)
        }
        guard file.size > 0 else { throw malformed("empty file", offset: 0) }
        guard file.size >= 4 else { throw malformed("truncated header: \(file.size) bytes", offset: 0) }
        let d = Self.int32(try file.bytes(at: 0, count: 4), at: 0)
        guard d > 0 else { throw malformed("dimension \(d) is not positive", offset: 0, row: 0) }
        let record = 4 + Int(d) * element.byteWidth
        guard record <= file.size else {
            throw malformed("first record needs \(record) bytes for dimension \(d); the file has \(file.size)",
                            offset: 0, row: 0)
        }
        guard file.size % record == 0 else {
            let rows = file.size / record
            throw malformed(
                "file length \(file.size) is not a multiple of the record size \(record) (dimension \(d)); the record at row \(rows) is truncated or a dimension differs",
                offset: rows * record, row: rows)
        }
        let n = file.size / record
        if n > 1 {
            let last = (n - 1) * record
            let dl = Self.int32(try file.bytes(at: last, count: 4), at: 0)
            guard dl == d else {
                throw malformed("record has dimension \(dl), the file's first record \(d)", offset: last, row: n - 1)
            }
        }
        elementType = element
        count = n
        dimension = Int(d)
        dataOffset = 0
        recordSize = record
        prefixSize = 4
    }

    private static func int32(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Int32 {
        Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self))
    }

    private static func int32(_ bytes: [UInt8], at offset: Int) -> Int32 {
        bytes.withUnsafeBytes { int32($0, at: offset) }
    }

    private func checkRange(_ range: Range<Int>) throws(SextantError) {
        guard range.lowerBound >= 0, range.upperBound <= count else {
            throw SextantError(.invalidArgument, "rows \(range) are outside 0..<\(count)",
                               context: ["file": path, "row": String(range.lowerBound)])
        }
    }

    /// Reads the raw records of `range` and hands each row's value bytes to `body`,
    /// checking TEXMEX dimension prefixes on the way.
    private func withRecords(
        _ range: Range<Int>, _ body: (_ row: Int, _ values: UnsafeRawPointer) -> Void
    ) throws(SextantError) {
        try checkRange(range)
        guard !range.isEmpty else { return }
        let start = dataOffset + range.lowerBound * recordSize
        let byteCount = range.count * recordSize
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(byteCount, 1), alignment: 16)
        defer { buffer.deallocate() }
        try file.readExactly(into: buffer.baseAddress!, count: byteCount, at: start)
        let base = UnsafeRawPointer(buffer.baseAddress!)
        for r in 0..<range.count {
            let record = base + r * recordSize
            if prefixSize == 4 {
                let d = Int32(littleEndian: record.loadUnaligned(as: Int32.self))
                guard d == dimension else {
                    throw SextantError(
                        .malformedFile, "\(format): record has dimension \(d), the file's first record \(dimension)",
                        context: ["file": path, "offset": String(start + r * recordSize),
                                  "row": String(range.lowerBound + r)])
                }
            }
            body(range.lowerBound + r, record + prefixSize)
        }
    }

    /// Rows `range` as contiguous row-major `Float`s (`range.count * dimension` values).
    /// Float16/Float64/UInt8 are converted (Float64 rounds to nearest).
    /// Int32 files (`.ivecs`) throw `.unsupportedFormat`: use ``int32Rows(_:)``.
    public func rows(_ range: Range<Int>) throws(SextantError) -> [Float] {
        guard elementType != .int32 else {
            throw SextantError(.unsupportedFormat, "\(format) holds Int32 values, not vectors of floats; read it with int32Rows",
                               context: ["file": path])
        }
        try checkRange(range)
        let d = dimension
        let element = elementType
        var out = [Float](repeating: 0, count: range.count * d)
        try typedThrows { try out.withUnsafeMutableBufferPointer { o in
            try withRecords(range) { row, values in
                let dst = o.baseAddress! + (row - range.lowerBound) * d
                switch element {
                case .float32:
                    UnsafeMutableRawPointer(dst).copyMemory(from: values, byteCount: d * 4)
                case .float16:
                    for i in 0..<d {
                        dst[i] = decodeFloat16(UInt16(littleEndian: values.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                    }
                case .float64:
                    for i in 0..<d {
                        dst[i] = Float(Double(bitPattern: UInt64(littleEndian:
                            values.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
                    }
                case .uint8:
                    for i in 0..<d { dst[i] = Float(values.load(fromByteOffset: i, as: UInt8.self)) }
                case .int32:
                    break  // rejected above
                }
            }
        } }
        return out
    }

    /// One row as `Float`s.
    public func row(_ index: Int) throws(SextantError) -> [Float] {
        try rows(index..<index + 1)
    }

    /// All rows as one contiguous row-major array. Prefer ``rows(_:)`` in batches for
    /// large files.
    public func readAll() throws(SextantError) -> [Float] {
        try rows(0..<count)
    }

    /// Rows `range` of an Int32 file (`.ivecs`, npy `<i4`), e.g. ground-truth ids.
    public func int32Rows(_ range: Range<Int>) throws(SextantError) -> [Int32] {
        guard elementType == .int32 else {
            throw SextantError(.unsupportedFormat, "\(format) holds \(elementType) values, not Int32",
                               context: ["file": path])
        }
        try checkRange(range)
        let d = dimension
        var out = [Int32](repeating: 0, count: range.count * d)
        try typedThrows { try out.withUnsafeMutableBufferPointer { o in
            try withRecords(range) { row, values in
                UnsafeMutableRawPointer(o.baseAddress! + (row - range.lowerBound) * d)
                    .copyMemory(from: values, byteCount: d * 4)
            }
        } }
        return out
    }

    /// Row ranges of at most `size` rows covering the file, for batched imports:
    /// `for r in file.batches(of: 10_000) { let rows = try file.rows(r) … }`.
    public func batches(of size: Int) -> [Range<Int>] {
        precondition(size > 0, "batch size must be positive")
        return stride(from: 0, to: count, by: size).map { $0..<min($0 + size, count) }
    }

    /// Reads every record once to check that all TEXMEX dimension prefixes agree
    /// (``rows(_:)`` checks the records it reads; this checks the whole file up front).
    public func validate(batchSize: Int = 16_384) throws(SextantError) {
        guard prefixSize == 4 else { return }
        for r in batches(of: batchSize) { try withRecords(r) { _, _ in } }
    }
}

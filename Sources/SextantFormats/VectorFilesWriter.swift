import SextantCore

/// Writes `.fvecs`, `.ivecs` or `.npy` (`<f4`) files, streaming rows in batches.
///
/// Data goes to a temporary file next to `path`, renamed into place by ``finish()``; a
/// writer dropped without `finish()` (or after an error) removes its temporary file and
/// leaves any existing file at `path` untouched.
public final class VectorFileWriter {
    /// The final path (written under a temporary name until ``finish()``).
    public let path: String
    /// `.fvecs`, `.ivecs` or `.npy`.
    public let format: VectorFileFormat
    /// Values per row.
    public let dimension: Int
    /// Rows written so far.
    public private(set) var count = 0
    private let expectedCount: Int?
    private var output: AtomicFileWriter?

    /// - Parameters:
    ///   - format: `.fvecs`, `.ivecs` or `.npy` (written as `<f4`, version 1.0).
    ///   - count: the number of rows that will be written; required for `.npy`, whose header
    ///     states the shape up front, and checked by ``finish()`` when given.
    public init(path: String, format: VectorFileFormat, dimension: Int, count: Int? = nil) throws(SextantError) {
        guard dimension > 0, dimension <= Int(Int32.max) / 8 else {
            throw SextantError(.invalidArgument, "dimension \(dimension) is out of range", context: ["file": path])
        }
        guard format != .bvecs else {
            throw SextantError(.unsupportedFormat, "writing .bvecs is not supported", context: ["file": path])
        }
        if format == .npy {
            guard let count, count >= 0 else {
                throw SextantError(.invalidArgument, "writing .npy needs the row count up front", context: ["file": path])
            }
        }
        self.path = path
        self.format = format
        self.dimension = dimension
        self.expectedCount = count
        let output = try AtomicFileWriter(path: path)
        if format == .npy, let count {
            try output.append(NpyHeader.encode(descr: "<f4", count: count, dimension: dimension))
        }
        self.output = output
    }

    private func checkAppend(_ valueCount: Int) throws(SextantError) -> AtomicFileWriter {
        guard let output else {
            throw SextantError(.invalidArgument, "writer already finished", context: ["file": path])
        }
        guard valueCount % dimension == 0 else {
            throw SextantError(.dimensionMismatch, "\(valueCount) values are not whole rows of dimension \(dimension)",
                               context: ["file": path, "row": String(count)])
        }
        if let expectedCount, count + valueCount / dimension > expectedCount {
            throw SextantError(.invalidArgument, "more rows than the \(expectedCount) declared",
                               context: ["file": path, "row": String(count)])
        }
        return output
    }

    /// Appends rows given row-major (`rows.count` a multiple of `dimension`).
    /// `.ivecs` files take ``append(int32Rows:)`` instead.
    public func append(_ rows: [Float]) throws(SextantError) {
        guard format != .ivecs else {
            throw SextantError(.invalidArgument, "an .ivecs writer takes Int32 rows", context: ["file": path])
        }
        let output = try checkAppend(rows.count)
        try typedThrows { try rows.withUnsafeBytes { bytes in
            if format == .npy {
                try output.append(bytes)
            } else {
                try appendRecords(bytes, to: output)
            }
        } }
        count += rows.count / dimension
    }

    /// Appends Int32 rows (e.g. ground-truth ids padded with −1) to an `.ivecs` file.
    public func append(int32Rows rows: [Int32]) throws(SextantError) {
        guard format == .ivecs else {
            throw SextantError(.invalidArgument, "only an .ivecs writer takes Int32 rows", context: ["file": path])
        }
        let output = try checkAppend(rows.count)
        try typedThrows { try rows.withUnsafeBytes { try appendRecords($0, to: output) } }
        count += rows.count / dimension
    }

    private func appendRecords(_ values: UnsafeRawBufferPointer, to output: AtomicFileWriter) throws(SextantError) {
        let rowBytes = dimension * 4
        var prefix = Int32(dimension).littleEndian
        let n = values.count / rowBytes
        for r in 0..<n {
            try typedThrows { try withUnsafeBytes(of: &prefix) { try output.append($0) } }
            try output.append(UnsafeRawBufferPointer(rebasing: values[r * rowBytes..<(r + 1) * rowBytes]))
        }
    }

    /// Syncs the file and renames it into place. Throws if fewer rows than declared were written.
    public func finish() throws(SextantError) {
        guard let output else {
            throw SextantError(.invalidArgument, "writer already finished", context: ["file": path])
        }
        self.output = nil  // on any failure below, the temp file is removed by deinit
        if let expectedCount, count != expectedCount {
            throw SextantError(.invalidArgument, "wrote \(count) rows, declared \(expectedCount)", context: ["file": path])
        }
        try output.commit()
    }

    /// Writes `rows` (row-major Float32) as a whole `.fvecs` or `.npy` file.
    public static func write(_ rows: [Float], dimension: Int, to path: String, format: VectorFileFormat) throws(SextantError) {
        guard dimension > 0, rows.count % dimension == 0 else {
            throw SextantError(.dimensionMismatch, "\(rows.count) values are not whole rows of dimension \(dimension)",
                               context: ["file": path])
        }
        let w = try VectorFileWriter(path: path, format: format, dimension: dimension, count: rows.count / dimension)
        try w.append(rows)
        try w.finish()
    }

    /// Writes Int32 rows as a whole `.ivecs` file (one record per query; pad with −1).
    public static func writeIvecs(_ rows: [Int32], dimension: Int, to path: String) throws(SextantError) {
        guard dimension > 0, rows.count % dimension == 0 else {
            throw SextantError(.dimensionMismatch, "\(rows.count) values are not whole rows of dimension \(dimension)",
                               context: ["file": path])
        }
        let w = try VectorFileWriter(path: path, format: .ivecs, dimension: dimension, count: rows.count / dimension)
        try w.append(int32Rows: rows)
        try w.finish()
    }
}

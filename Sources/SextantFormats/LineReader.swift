import SextantCore
#if canImport(Glibc)
import Glibc  // memchr, errno
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Streams the lines of a (possibly multi-gigabyte) text file such as JSONL.
///
/// Lines end at `\n`; a trailing `\r` is dropped (`\r\n` files), a final line without a
/// newline is still delivered, and a UTF-8 byte-order mark at the start of the file is
/// skipped. Empty lines are delivered too (as empty buffers) so line numbers stay equal
/// to file line numbers minus one. Memory stays at about `chunkSize` plus the longest
/// line; a line longer than `maxLineLength` throws `.malformedFile` naming it, so a file
/// without newlines cannot make the reader buffer the whole file.
public struct LineReader: Sendable {
    /// The file read.
    public let path: String
    /// Bytes read per system call.
    public var chunkSize: Int
    /// Longest line accepted, in bytes (excluding the newline).
    public var maxLineLength: Int

    /// A reader for `path`; nothing is opened until ``forEachLine(_:)``.
    public init(path: String, chunkSize: Int = 1 << 20, maxLineLength: Int = 64 << 20) {
        self.path = path
        self.chunkSize = max(chunkSize, 16)
        self.maxLineLength = max(maxLineLength, 1)
    }

    /// Calls `body` with each line's bytes (valid only during the call) and its 0-based
    /// line number. Errors thrown by `body` stop the iteration and propagate unchanged.
    /// Returns the number of lines delivered.
    @discardableResult
    public func forEachLine(
        _ body: (_ line: UnsafeRawBufferPointer, _ lineNumber: Int) throws -> Void
    ) throws -> Int {
        let file = try ReadOnlyFile(path: path)
        var capacity = chunkSize
        var buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        defer { buffer.deallocate() }
        var start = 0        // first byte of the current line
        var end = 0          // end of valid bytes
        var scanned = 0      // bytes before this index hold no newline of the current line
        var fileOffset = 0   // file offset of buffer[end]
        var lineNumber = 0
        var atEOF = false

        func deliver(_ from: Int, _ to: Int) throws {
            // Checked here too: a long line may arrive whole within one chunk.
            if to - from > maxLineLength {
                throw SextantError(.malformedFile, "line \(lineNumber) is longer than \(maxLineLength) bytes",
                                   context: ["file": path, "line": String(lineNumber),
                                             "offset": String(fileOffset - end + from)])
            }
            var last = to
            if last > from, buffer.load(fromByteOffset: last - 1, as: UInt8.self) == 0x0D { last -= 1 }
            var first = from
            if lineNumber == 0, fileOffset - end + from == 0, last - first >= 3,
               buffer.load(fromByteOffset: first, as: UInt8.self) == 0xEF,
               buffer.load(fromByteOffset: first + 1, as: UInt8.self) == 0xBB,
               buffer.load(fromByteOffset: first + 2, as: UInt8.self) == 0xBF {
                first += 3
            }
            try body(UnsafeRawBufferPointer(start: buffer + first, count: last - first), lineNumber)
            lineNumber += 1
        }

        while true {
            // Deliver every complete line in the buffer.
            while scanned < end {
                guard let hit = memchr(buffer + scanned, 0x0A, end - scanned) else {
                    scanned = end
                    break
                }
                let nl = UnsafeRawPointer(hit) - UnsafeRawPointer(buffer)
                try deliver(start, nl)
                start = nl + 1
                scanned = start
            }
            if end - start > maxLineLength {
                throw SextantError(.malformedFile, "line \(lineNumber) is longer than \(maxLineLength) bytes",
                                   context: ["file": path, "line": String(lineNumber),
                                             "offset": String(fileOffset - end + start)])
            }
            if atEOF {
                if start < end { try deliver(start, end) }
                return lineNumber
            }
            // Keep the partial line, then refill.
            if start > 0 {
                if end > start { (buffer).copyMemory(from: buffer + start, byteCount: end - start) }
                end -= start
                scanned -= start
                start = 0
            }
            if capacity - end < chunkSize / 2 {
                // The partial line fills the buffer: grow (bounded by maxLineLength above).
                let bigger = capacity * 2
                let b = UnsafeMutableRawPointer.allocate(byteCount: bigger, alignment: 16)
                b.copyMemory(from: buffer, byteCount: end)
                buffer.deallocate()
                buffer = b
                capacity = bigger
            }
            let n = file.readSequential(into: buffer + end, count: capacity - end)
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError("cannot read", path: path, errno: errno)
            }
            if n == 0 { atEOF = true }
            end += n
            fileOffset += n
        }
    }
}

// The only place SextantFormats talks to the operating system: open/fstat/pread/read for
// readers, and a temp-file-plus-rename writer. Every call turns errno into a
// SextantError naming the file.

import SextantCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

#if _endian(big)
#error("SextantFormats decodes little-endian files by reinterpreting bytes; port the decoders first")
#endif

/// Runs `body`, whose closures can only throw `SextantError`, as a typed-throws call
/// (stdlib `withUnsafe…` helpers erase the error type).
@inline(__always)
func typedThrows<R>(_ body: () throws -> R) throws(SextantError) -> R {
    do { return try body() } catch let e as SextantError { throw e } catch {
        throw SextantError(.io, "\(error)")
    }
}

func ioError(_ what: String, path: String, errno e: Int32) -> SextantError {
    let reason = String(cString: strerror(e))
    let code: SextantError.Code = e == ENOENT ? .notFound : .io
    return SextantError(code, "\(what) '\(path)': \(reason)", context: ["file": path], underlying: e)
}

/// An open, read-only file descriptor, closed on deinit. `pread` keeps no shared
/// offset, so one instance serves concurrent readers.
final class ReadOnlyFile: Sendable {
    let path: String
    let fd: Int32
    let size: Int

    init(path: String) throws(SextantError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ioError("cannot open", path: path, errno: errno) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = errno
            close(fd)
            throw ioError("cannot stat", path: path, errno: e)
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw SextantError(.invalidArgument, "'\(path)' is not a regular file", context: ["file": path])
        }
        self.fd = fd
        self.size = Int(st.st_size)
    }

    deinit { close(fd) }

    /// Reads exactly `count` bytes at `offset` into `buffer` (short reads retried).
    func readExactly(into buffer: UnsafeMutableRawPointer, count: Int, at offset: Int) throws(SextantError) {
        var done = 0
        while done < count {
            let n = pread(fd, buffer + done, count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError("cannot read", path: path, errno: errno)
            }
            if n == 0 {
                // The file shrank under us since open.
                throw SextantError(.malformedFile, "unexpected end of file (file changed while reading?)",
                                   context: ["file": path, "offset": String(offset + done)])
            }
            done += n
        }
    }

    /// One `read(2)` from the current offset (for sequential streaming); 0 at end of file.
    func readSequential(into buffer: UnsafeMutableRawPointer, count: Int) -> Int {
        read(fd, buffer, count)
    }

    /// Reads `count` bytes at `offset` into a new array.
    func bytes(at offset: Int, count: Int) throws(SextantError) -> [UInt8] {
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 8)
        defer { b.deallocate() }
        if count > 0 { try readExactly(into: b.baseAddress!, count: count, at: offset) }
        return Array(UnsafeRawBufferPointer(rebasing: b[0..<count]))
    }
}

/// Writes a file under a temporary name next to `path` and renames it into place on
/// ``commit()``, so readers never see a half-written file and a crash leaves the old one.
final class AtomicFileWriter {
    let path: String
    let tempPath: String
    private var fd: Int32
    private var buffer: [UInt8] = []
    private static let flushThreshold = 1 << 20

    init(path: String) throws(SextantError) {
        self.path = path
        var suffix = UInt64.random(in: 0...UInt64.max)
        var fd: Int32 = -1
        var temp = ""
        for _ in 0..<8 {
            temp = "\(path).tmp-\(getpid())-\(String(suffix, radix: 36))"
            fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if fd >= 0 || errno != EEXIST { break }
            suffix &+= 1
        }
        guard fd >= 0 else { throw ioError("cannot create", path: temp, errno: errno) }
        self.fd = fd
        self.tempPath = temp
        buffer.reserveCapacity(Self.flushThreshold + 4096)
    }

    deinit {
        // Not committed: leave no litter behind.
        if fd >= 0 {
            close(fd)
            unlink(tempPath)
        }
    }

    func append(_ bytes: UnsafeRawBufferPointer) throws(SextantError) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= Self.flushThreshold { try flush() }
    }

    func append(_ bytes: [UInt8]) throws(SextantError) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= Self.flushThreshold { try flush() }
    }

    private func flush() throws(SextantError) {
        var done = 0
        let total = buffer.count
        while done < total {
            let n = buffer.withUnsafeBytes { b in write(fd, b.baseAddress! + done, total - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError("cannot write", path: tempPath, errno: errno)
            }
            done += n
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes, syncs and renames into place.
    func commit() throws(SextantError) {
        try flush()
        guard fsync(fd) == 0 else { throw ioError("cannot sync", path: tempPath, errno: errno) }
        let closed = close(fd)
        fd = -1
        guard closed == 0 else {
            let e = errno
            unlink(tempPath)
            throw ioError("cannot close", path: tempPath, errno: e)
        }
        guard rename(tempPath, path) == 0 else {
            let e = errno
            unlink(tempPath)
            throw ioError("cannot rename into", path: path, errno: e)
        }
        // Make the rename itself durable.
        let dir = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let dfd = open(dir.isEmpty ? "/" : dir, O_RDONLY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }
}

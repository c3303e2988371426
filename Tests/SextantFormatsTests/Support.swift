import SextantTestSupport
import Testing
import SextantCore
@testable import SextantFormats
#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory per test (tests run in parallel), removed at the end.
final class TempDir {
    let path: String
    init() {
        var template = Array("/tmp/sextant-formats-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }
    deinit {
        if let dir = opendir(path) {
            while let e = readdir(dir) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { unlink(path + "/" + name) }
            }
            closedir(dir)
        }
        rmdir(path)
    }
    func file(_ name: String) -> String { path + "/" + name }
    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let p = file(name)
        let fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        precondition(fd >= 0)
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        return p
    }
    func exists(_ name: String) -> Bool { access(file(name), F_OK) == 0 }
    func listing() -> [String] {
        var names: [String] = []
        if let dir = opendir(path) {
            while let e = readdir(dir) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(dir)
        }
        return names.sorted()
    }
}

func le32(_ v: Int32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
func le32(_ v: Float) -> [UInt8] { withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }

/// A TEXMEX file from rows given as (dimension prefix, payload bytes).
func texmex(_ records: [(Int32, [UInt8])]) -> [UInt8] {
    records.flatMap { le32($0.0) + $0.1 }
}

/// An npy file with an arbitrary header dict and payload.
func npy(major: UInt8 = 1, dict: String, payload: [UInt8]) -> [UInt8] {
    var header = Array(dict.utf8)
    let prefix = major == 1 ? 10 : 12
    header += [UInt8](repeating: 0x20, count: (64 - (prefix + header.count + 1) % 64) % 64)
    header.append(0x0A)
    let n = header.count
    let length: [UInt8] = major == 1 ? [UInt8(n & 0xFF), UInt8(n >> 8)] : le32(Int32(n))
    return NpyHeader.magic + [major, 0] + length + header + payload
}

/// Expects `body` to throw a SextantError with `code`, whose context names the file.
func expectError(
    _ code: SextantError.Code, _ what: String, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("\(what): no error, expected \(code)", sourceLocation: sourceLocation)
    } catch let e as SextantError {
        #expect(e.code == code, "\(what): \(e)", sourceLocation: sourceLocation)
        #expect(e.context["file"] != nil, "\(what): no file in context: \(e)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("\(what): not a SextantError: \(error)", sourceLocation: sourceLocation)
    }
}

/// The SextantError `body` throws, or nil (any other error is recorded as an issue).
func caught(_ body: () throws -> Void) -> SextantError? {
    do {
        try body()
        return nil
    } catch let e as SextantError {
        return e
    } catch {
        Issue.record("not a SextantError: \(error)")
        return SextantError(.io, "\(error)")
    }
}

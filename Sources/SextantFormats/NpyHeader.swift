// The `.npy` header: magic, version, and the Python-literal dict describing the array.
// https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html

import SextantCore

/// What an `.npy` header says, after validation against the file size.
struct NpyHeader: Sendable, Equatable {
    var major: UInt8
    var minor: UInt8
    /// The dtype string as written, e.g. `<f4`.
    var descr: String
    var elementType: VectorElementType
    var count: Int
    var dimension: Int
    /// Byte offset of the first element.
    var dataOffset: Int

    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY
    /// Headers written by numpy are a few hundred bytes; anything this large is hostile.
    static let maxHeaderLength = 1 << 20

    /// Parses and validates the header of `file`.
    static func read(_ file: ReadOnlyFile) throws(SextantError) -> NpyHeader {
        let path = file.path
        func malformed(_ message: String, offset: Int) -> SextantError {
            SextantError(.malformedFile, "npy: \(message)", context: ["file": path, "offset": String(offset)])
        }
        guard file.size >= 10 else { throw malformed("file too short for an npy header (\(file.size) bytes)", offset: 0) }
        let pre = try file.bytes(at: 0, count: min(12, file.size))
        guard Array(pre[0..<6]) == magic else { throw malformed("bad magic (not an npy file)", offset: 0) }
        let major = pre[6], minor = pre[7]
        let headerLength: Int, prefix: Int
        switch major {
        case 1:
            headerLength = Int(pre[8]) | Int(pre[9]) << 8
            prefix = 10
        case 2, 3:
            guard pre.count >= 12 else { throw malformed("truncated header length", offset: 8) }
            headerLength = Int(pre[8]) | Int(pre[9]) << 8 | Int(pre[10]) << 16 | Int(pre[11]) << 24
            prefix = 12
        default:
            throw SextantError(.unsupportedFormat, "npy format version \(major).\(minor) is not supported (1.0, 2.0, 3.0 are)",
                               context: ["file": path, "offset": "6"])
        }
        guard headerLength <= maxHeaderLength else {
            throw malformed("header length \(headerLength) exceeds \(maxHeaderLength) bytes", offset: 8)
        }
        guard prefix + headerLength <= file.size else {
            throw malformed("header of \(headerLength) bytes runs past the end of the \(file.size)-byte file", offset: prefix)
        }
        let text = try file.bytes(at: prefix, count: headerLength)
        var parser = PyLiteralParser(bytes: text)
        let dict: [(String, PyLiteral)]
        do throws(PyLiteralParser.Failure) {
            let value = try parser.parseTop()
            guard case .dict(let d) = value else { throw PyLiteralParser.Failure(position: 0, expected: "a dict") }
            dict = d
        } catch {
            throw malformed("bad header dict: expected \(error.expected) at header byte \(error.position)",
                            offset: prefix + error.position)
        }
        func value(_ key: String) throws(SextantError) -> PyLiteral {
            guard let v = dict.first(where: { $0.0 == key })?.1 else {
                throw malformed("header has no '\(key)' key", offset: prefix)
            }
            return v
        }
        func unsupported(_ message: String) -> SextantError {
            SextantError(.unsupportedFormat, "npy: \(message)", context: ["file": path, "offset": String(prefix)])
        }

        let descr: String
        switch try value("descr") {
        case .string(let s): descr = s
        default: throw unsupported("structured or non-string dtype is not supported (need '<f4', '<f2', '<f8' or '<i4')")
        }
        guard let element = VectorElementType(npyDescr: descr) else {
            throw unsupported("dtype '\(descr)' is not supported (need '<f4', '<f2', '<f8' or '<i4', little-endian)")
        }
        guard case .bool(let fortran) = try value("fortran_order") else {
            throw malformed("'fortran_order' is not True or False", offset: prefix)
        }
        guard case .tuple(let dims) = try value("shape") else {
            throw malformed("'shape' is not a tuple", offset: prefix)
        }
        var shape: [Int] = []
        for d in dims {
            guard case .int(let n) = d else { throw malformed("'shape' holds a non-integer", offset: prefix) }
            shape.append(n)
        }
        let count: Int, dimension: Int
        switch shape.count {
        case 1:
            // A lone vector (np.save of one query): one row.
            count = shape[0] == 0 ? 0 : 1
            dimension = shape[0]
        case 2:
            if fortran { throw unsupported("Fortran-order (column-major) arrays are not supported; save with C order") }
            count = shape[0]
            dimension = shape[1]
        default:
            throw unsupported("\(shape.count)-dimensional shape \(shape) is not supported (need 1-D or 2-D)")
        }
        guard dimension > 0 || count == 0 else {
            throw malformed("shape \(shape) has zero-length rows", offset: prefix)
        }
        let dataOffset = prefix + headerLength
        let (elements, o1) = count.multipliedReportingOverflow(by: dimension)
        let (bytes, o2) = elements.multipliedReportingOverflow(by: element.byteWidth)
        let available = file.size - dataOffset
        guard !o1, !o2, bytes == available else {
            throw malformed(
                "shape \(shape) of '\(descr)' needs \(o1 || o2 ? "more than Int.max" : String(bytes)) data bytes; the file has \(available)",
                offset: dataOffset)
        }
        return NpyHeader(major: major, minor: minor, descr: descr, elementType: element,
                         count: count, dimension: dimension, dataOffset: dataOffset)
    }

    /// The header bytes numpy would write for a C-order `count × dimension` array:
    /// version 1.0, padded with spaces so the data starts on a 64-byte boundary.
    static func encode(descr: String, count: Int, dimension: Int) -> [UInt8] {
        let dict = "{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(count), \(dimension)), }"
        var header = Array(dict.utf8)
        let unpadded = 10 + header.count + 1
        header += [UInt8](repeating: 0x20, count: (64 - unpadded % 64) % 64)
        header.append(0x0A)
        let length = header.count
        return magic + [1, 0, UInt8(length & 0xFF), UInt8(length >> 8)] + header
    }
}

/// The subset of Python literals that `.npy` headers use.
enum PyLiteral: Equatable {
    case string(String)
    case int(Int)
    case bool(Bool)
    case none
    case tuple([PyLiteral])  // tuples and lists alike
    case dict([(String, PyLiteral)])

    static func == (a: PyLiteral, b: PyLiteral) -> Bool {
        switch (a, b) {
        case let (.string(x), .string(y)): x == y
        case let (.int(x), .int(y)): x == y
        case let (.bool(x), .bool(y)): x == y
        case (.none, .none): true
        case let (.tuple(x), .tuple(y)): x == y
        case let (.dict(x), .dict(y)): x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }
}

/// A small recursive-descent parser for header dicts; bounded depth so hostile nesting
/// cannot exhaust the stack.
struct PyLiteralParser {
    struct Failure: Error {
        var position: Int
        var expected: String
    }

    let bytes: [UInt8]
    var i = 0
    static let maxDepth = 16

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func parseTop() throws(Failure) -> PyLiteral {
        let v = try parseValue(depth: 0)
        skipSpace()
        guard i == bytes.count else { throw Failure(position: i, expected: "end of header") }
        return v
    }

    private mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    private func peek() -> UInt8? { i < bytes.count ? bytes[i] : nil }

    private mutating func expect(_ c: UInt8) throws(Failure) {
        skipSpace()
        guard peek() == c else { throw Failure(position: i, expected: "'\(Character(Unicode.Scalar(c)))'") }
        i += 1
    }

    private mutating func parseValue(depth: Int) throws(Failure) -> PyLiteral {
        guard depth < Self.maxDepth else { throw Failure(position: i, expected: "less nesting") }
        skipSpace()
        guard let c = peek() else { throw Failure(position: i, expected: "a value") }
        switch c {
        case UInt8(ascii: "'"), UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "("):
            return .tuple(try parseSequence(close: UInt8(ascii: ")"), depth: depth))
        case UInt8(ascii: "["):
            return .tuple(try parseSequence(close: UInt8(ascii: "]"), depth: depth))
        case UInt8(ascii: "{"):
            i += 1
            var items: [(String, PyLiteral)] = []
            while true {
                skipSpace()
                if peek() == UInt8(ascii: "}") { i += 1; break }
                skipSpace()
                guard let q = peek(), q == UInt8(ascii: "'") || q == UInt8(ascii: "\"") else {
                    throw Failure(position: i, expected: "a string key or '}'")
                }
                let key = try parseString()
                try expect(UInt8(ascii: ":"))
                items.append((key, try parseValue(depth: depth + 1)))
                skipSpace()
                if peek() == UInt8(ascii: ",") { i += 1; continue }
                try expect(UInt8(ascii: "}"))
                break
            }
            return .dict(items)
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "+"):
            return .int(try parseInt())
        default:
            for (word, value) in [("True", PyLiteral.bool(true)), ("False", .bool(false)), ("None", .none)] {
                let w = Array(word.utf8)
                if bytes.count - i >= w.count, Array(bytes[i..<i + w.count]) == w {
                    i += w.count
                    return value
                }
            }
            throw Failure(position: i, expected: "a value")
        }
    }

    private mutating func parseSequence(close: UInt8, depth: Int) throws(Failure) -> [PyLiteral] {
        i += 1
        var items: [PyLiteral] = []
        while true {
            skipSpace()
            if peek() == close { i += 1; return items }
            items.append(try parseValue(depth: depth + 1))
            skipSpace()
            if peek() == UInt8(ascii: ",") { i += 1; continue }
            try expect(close)
            return items
        }
    }

    private mutating func parseString() throws(Failure) -> String {
        let quote = bytes[i]
        let start = i
        i += 1
        var out: [UInt8] = []
        while i < bytes.count {
            let c = bytes[i]
            if c == quote {
                i += 1
                return String(decoding: out, as: UTF8.self)
            }
            if c == UInt8(ascii: "\\") {
                i += 1
                guard i < bytes.count else { break }
            }
            out.append(bytes[i])
            i += 1
        }
        throw Failure(position: start, expected: "a closing quote")
    }

    private mutating func parseInt() throws(Failure) -> Int {
        let start = i
        var negative = false
        if bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+") {
            negative = bytes[i] == UInt8(ascii: "-")
            i += 1
        }
        var value = 0
        var digits = 0
        while let c = peek(), c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") {
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int(c - UInt8(ascii: "0")))
            guard !o1, !o2 else { throw Failure(position: start, expected: "an integer that fits in 64 bits") }
            value = a
            digits += 1
            i += 1
        }
        guard digits > 0 else { throw Failure(position: start, expected: "digits") }
        if peek() == UInt8(ascii: "L") { i += 1 }  // Python 2 longs, as old numpy wrote them
        guard !negative else { throw Failure(position: start, expected: "a non-negative integer") }
        return value
    }
}

/// Exact IEEE 754 binary16 → binary32, done on bits so it is the same on every platform
/// (Swift's `Float16` is unavailable on some targets) and needs no F16C: normal numbers
/// re-bias the exponent, subnormals are `mantissa · 2⁻²⁴` (exact in Float), and
/// infinities/NaNs keep their sign and payload.
@inlinable @inline(__always)
public func decodeFloat16(_ bits: UInt16) -> Float {
    let sign = UInt32(bits & 0x8000) << 16
    let exponent = UInt32(bits >> 10) & 0x1F
    let mantissa = UInt32(bits & 0x3FF)
    if exponent == 0x1F {
        return Float(bitPattern: sign | 0x7F80_0000 | mantissa << 13)
    }
    if exponent == 0 {
        let magnitude = Float(mantissa) * 0x1p-24
        return sign != 0 ? -magnitude : magnitude
    }
    return Float(bitPattern: sign | (exponent + 112) << 23 | mantissa << 13)
}

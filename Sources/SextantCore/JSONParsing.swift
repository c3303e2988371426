// MARK: - Parsing

extension JSONValue {
    /// Parses one JSON document (surrounding whitespace allowed, nothing else).
    ///
    /// Throws ``SextantError/Code/syntax`` with context `offset` (0-based byte offset of the
    /// problem) and `expected`. Never traps, whatever the input.
    public init(parsing text: String) throws(SextantError) {
        var t = text
        // withUTF8 makes the storage contiguous UTF-8 (already so for native strings).
        let r = t.withUTF8 { p in
            Result { () throws(SextantError) -> JSONValue in try JSONValue.parse(UnsafeRawBufferPointer(p)) }
        }
        self = try r.get()
    }

    /// Parses one JSON document from UTF-8 bytes (`[UInt8]`, `ArraySlice<UInt8>`, `Data`, ...).
    public init<Bytes: Sequence<UInt8>>(parsing bytes: Bytes) throws(SextantError) {
        let r = bytes.withContiguousStorageIfAvailable { p in
            Result { () throws(SextantError) -> JSONValue in try JSONValue.parse(UnsafeRawBufferPointer(p)) }
        }
        if let r {
            self = try r.get()
        } else {
            let copy = Array(bytes)
            let r2 = copy.withUnsafeBytes { p in
                Result { () throws(SextantError) -> JSONValue in try JSONValue.parse(p) }
            }
            self = try r2.get()
        }
    }

    /// Parses one JSON document from raw UTF-8 bytes, e.g. one line of a memory-mapped file.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(SextantError) {
        self = try JSONValue.parse(bytes)
    }

    private static func parse(_ buffer: UnsafeRawBufferPointer) throws(SextantError) -> JSONValue {
        var p = JSONParser(buffer)
        return try p.parseDocument()
    }
}

/// The parser proper. It only lives inside the scoped closures above, so `buf` never escapes.
/// It is iterative (an explicit container stack), so hostile nesting cannot overflow the call stack.
private struct JSONParser {
    let buf: UnsafeRawBufferPointer
    var pos = 0

    init(_ buf: UnsafeRawBufferPointer) { self.buf = buf }

    @inline(__always) var atEnd: Bool { pos >= buf.count }
    /// The current byte, or 0 at end (0 is never valid where it is tested).
    @inline(__always) var cur: UInt8 { pos < buf.count ? buf[pos] : 0 }

    func fail(_ expected: String, at offset: Int? = nil, found: String? = nil) -> SextantError {
        let off = offset ?? pos
        let what = found ?? describe(at: off)
        return SextantError(
            .syntax, "JSON at byte \(off): expected \(expected) but found \(what)",
            context: ["offset": String(off), "expected": expected])
    }

    func describe(at off: Int) -> String {
        guard off < buf.count else { return "end of input" }
        let b = buf[off]
        if b >= 0x21 && b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
        return "byte 0x" + String(b, radix: 16, uppercase: true)
    }

    @inline(__always) mutating func skipWS() {
        while pos < buf.count {
            let b = buf[pos]
            guard b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 else { return }
            pos += 1
        }
    }

    mutating func parseDocument() throws(SextantError) -> JSONValue {
        let v = try parseValue()
        skipWS()
        guard atEnd else { throw fail("end of input after the JSON value") }
        return v
    }

    /// An open array or object: its elements so far are `values[start...]` (and, for an
    /// object, their keys are `keys[keyStart...]`).
    struct Frame {
        var isObject: Bool
        var start: Int
        var keyStart: Int
        /// For objects with many members: their keys, for the duplicate check.
        var keySet: Set<String>?
    }

    /// Iterative: open containers live on `frames`, and the elements of all open containers on
    /// one shared `values` stack, so each finished container costs one exactly-sized allocation.
    mutating func parseValue() throws(SextantError) -> JSONValue {
        var frames: [Frame] = []
        var values: [JSONValue] = []
        var keys: [String] = []

        while true {
            // 1. Parse one value, or open a container and loop to parse its first element.
            var value: JSONValue
            skipWS()
            switch cur {
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                guard frames.count < JSONValue.maxDepth else {
                    throw fail("nesting depth at most \(JSONValue.maxDepth)", found: "deeper nesting")
                }
                let isObject = cur == UInt8(ascii: "{")
                pos += 1
                skipWS()
                if cur == (isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                    pos += 1
                    value = isObject ? .object(JSONObject()) : .array([])
                } else {
                    if isObject {
                        keys.append(try parseKey(keys[keys.endIndex...], nil))
                    }
                    frames.append(Frame(isObject: isObject, start: values.count, keyStart: keys.count - (isObject ? 1 : 0)))
                    continue
                }
            case UInt8(ascii: "\""): value = .string(try parseString())
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): value = try parseNumber()
            case UInt8(ascii: "t"): try literal("true"); value = .bool(true)
            case UInt8(ascii: "f"): try literal("false"); value = .bool(false)
            case UInt8(ascii: "n"): try literal("null"); value = .null
            default: throw fail("a JSON value")
            }

            // 2. Attach the value to the innermost container, closing as many as end here.
            while true {
                guard !frames.isEmpty else { return value }
                let f = frames.count - 1
                values.append(value)
                skipWS()
                let c = cur
                if c == UInt8(ascii: ",") {
                    pos += 1
                    if frames[f].isObject {
                        skipWS()
                        let n = values.count - frames[f].start
                        if n >= 16 && frames[f].keySet == nil { frames[f].keySet = Set(keys[frames[f].keyStart...]) }
                        let k = try parseKey(keys[frames[f].keyStart...], frames[f].keySet)
                        frames[f].keySet?.insert(k)
                        keys.append(k)
                    }
                    break
                }
                let frame = frames[f]
                if frame.isObject {
                    guard c == UInt8(ascii: "}") else { throw fail("',' or '}' in an object") }
                    var members: [(key: String, value: JSONValue)] = []
                    members.reserveCapacity(values.count - frame.start)
                    for i in frame.start..<values.count {
                        members.append((key: keys[frame.keyStart + i - frame.start], value: values[i]))
                    }
                    keys.removeSubrange(frame.keyStart...)
                    value = .object(JSONObject(members))
                } else {
                    guard c == UInt8(ascii: "]") else { throw fail("',' or ']' in an array") }
                    value = .array(Array(values[frame.start...]))
                }
                pos += 1
                values.removeSubrange(frame.start...)
                frames.removeLast()
            }
        }
    }

    /// Parses `"key" :` (whitespace before the key already skipped), rejecting a key already in
    /// `existing` (or in `keySet`, when the object is large enough to have one).
    mutating func parseKey(_ existing: ArraySlice<String>, _ keySet: Set<String>?) throws(SextantError) -> String {
        guard cur == UInt8(ascii: "\"") else { throw fail("a string key in an object") }
        let start = pos
        let key = try parseString()
        let dup = keySet.map { $0.contains(key) } ?? existing.contains(key)
        if dup {
            throw SextantError(
                .syntax, "JSON at byte \(start): duplicate object key \"\(key)\"",
                context: ["offset": String(start), "expected": "a unique object key"])
        }
        skipWS()
        guard cur == UInt8(ascii: ":") else { throw fail("':' after an object key") }
        pos += 1
        return key
    }

    mutating func literal(_ word: StaticString) throws(SextantError) {
        let n = word.utf8CodeUnitCount
        let start = pos
        let p = word.utf8Start
        for i in 0..<n {
            guard pos < buf.count, buf[pos] == p[i] else {
                throw fail("'\(word)'", at: start)
            }
            pos += 1
        }
    }

    mutating func parseNumber() throws(SextantError) -> JSONValue {
        let start = pos
        var negative = false
        if cur == UInt8(ascii: "-") { negative = true; pos += 1 }
        // Integer part: 0 or [1-9][0-9]*. Accumulate the magnitude while it fits.
        var mag: UInt64 = 0
        var fits = true
        let c0 = cur
        guard c0 >= 0x30 && c0 <= 0x39 else { throw fail("a digit") }
        if c0 == 0x30 {
            pos += 1
        } else {
            while pos < buf.count, case let d = buf[pos], d >= 0x30 && d <= 0x39 {
                if fits {
                    let (m1, o1) = mag.multipliedReportingOverflow(by: 10)
                    let (m2, o2) = m1.addingReportingOverflow(UInt64(d - 0x30))
                    if o1 || o2 { fits = false } else { mag = m2 }
                }
                pos += 1
            }
        }
        var isDouble = false
        if cur == UInt8(ascii: ".") {
            isDouble = true
            pos += 1
            guard cur >= 0x30 && cur <= 0x39 else { throw fail("a digit after '.'") }
            while cur >= 0x30 && cur <= 0x39 { pos += 1 }
        }
        if cur == UInt8(ascii: "e") || cur == UInt8(ascii: "E") {
            isDouble = true
            pos += 1
            if cur == UInt8(ascii: "+") || cur == UInt8(ascii: "-") { pos += 1 }
            guard cur >= 0x30 && cur <= 0x39 else { throw fail("a digit in the exponent") }
            while cur >= 0x30 && cur <= 0x39 { pos += 1 }
        }
        if !isDouble && fits {
            if negative {
                if mag <= UInt64(Int64.max) { return .int(-Int64(mag)) }
                if mag == UInt64(Int64.max) + 1 { return .int(Int64.min) }
            } else {
                return .unsigned(mag)
            }
        }
        // Swift's Double(String) is correctly rounded; the text is already validated JSON.
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: buf[start..<pos]), as: UTF8.self)
        guard let d = Double(text), d.isFinite else {
            throw fail("a number within the range of a double", at: start, found: text)
        }
        return .double(d)
    }

    /// Parses a string starting at the opening quote. ASCII strings without escapes (the common
    /// case) are one scan and one copy; UTF-8 is validated as it is scanned.
    mutating func parseString() throws(SextantError) -> String {
        pos += 1  // opening quote
        let start = pos
        // Fast scan up to the closing quote or the first escape.
        while true {
            guard pos < buf.count else { throw fail("'\"' to close the string", found: "end of input") }
            let b = buf[pos]
            if b == UInt8(ascii: "\"") {
                let s = String(decoding: UnsafeRawBufferPointer(rebasing: buf[start..<pos]), as: UTF8.self)
                pos += 1
                return s
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { throw fail("a character (control characters must be escaped)") }
            if b < 0x80 { pos += 1 } else { try skipUTF8() }
        }
        // Slow path: copy what we have, then decode escapes.
        var out = [UInt8](UnsafeRawBufferPointer(rebasing: buf[start..<pos]))
        while true {
            guard pos < buf.count else { throw fail("'\"' to close the string", found: "end of input") }
            let b = buf[pos]
            if b == UInt8(ascii: "\"") {
                pos += 1
                return String(decoding: out, as: UTF8.self)
            }
            if b == UInt8(ascii: "\\") {
                let escStart = pos
                pos += 1
                let e = cur
                pos += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if scalar >= 0xD800 && scalar <= 0xDBFF {
                        // A high surrogate must be followed by an escaped low surrogate.
                        guard cur == UInt8(ascii: "\\"), pos + 1 < buf.count, buf[pos + 1] == UInt8(ascii: "u") else {
                            throw fail("a \\u escape of a low surrogate after a high surrogate")
                        }
                        pos += 2
                        let lowStart = pos - 2
                        let low = try hex4()
                        guard low >= 0xDC00 && low <= 0xDFFF else {
                            throw fail("a low surrogate (\\uDC00-\\uDFFF)", at: lowStart, found: "a \\u escape of U+" + String(low, radix: 16, uppercase: true))
                        }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if scalar >= 0xDC00 && scalar <= 0xDFFF {
                        throw fail("a high surrogate before a low surrogate", at: escStart, found: "a lone low surrogate")
                    }
                    // Valid by construction: not a surrogate, at most 0x10FFFF.
                    out.append(contentsOf: Unicode.Scalar(scalar)!.utf8)
                default:
                    throw fail("an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)", at: escStart)
                }
                continue
            }
            if b < 0x20 { throw fail("a character (control characters must be escaped)") }
            if b < 0x80 {
                out.append(b)
                pos += 1
            } else {
                let s = pos
                try skipUTF8()
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: buf[s..<pos]))
            }
        }
    }

    mutating func hex4() throws(SextantError) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = cur
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c - 0x30
            case 0x41...0x46: d = c - 0x41 + 10
            case 0x61...0x66: d = c - 0x61 + 10
            default: throw fail("4 hex digits after \\u")
            }
            v = v << 4 | UInt32(d)
            pos += 1
        }
        return v
    }

    /// Skips one multi-byte UTF-8 sequence at `pos`, rejecting invalid, overlong and surrogate forms.
    mutating func skipUTF8() throws(SextantError) {
        let b0 = buf[pos]
        let n: Int
        var lo: UInt8 = 0x80, hi: UInt8 = 0xBF  // allowed range of the second byte
        switch b0 {
        case 0xC2...0xDF: n = 2
        case 0xE0: n = 3; lo = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: n = 3
        case 0xED: n = 3; hi = 0x9F
        case 0xF0: n = 4; lo = 0x90
        case 0xF1...0xF3: n = 4
        case 0xF4: n = 4; hi = 0x8F
        default: throw fail("valid UTF-8")
        }
        guard pos + n <= buf.count else { throw fail("valid UTF-8", found: "a truncated UTF-8 sequence") }
        let b1 = buf[pos + 1]
        guard b1 >= lo && b1 <= hi else { throw fail("valid UTF-8", at: pos + 1) }
        for i in 2..<max(n, 2) where buf[pos + i] & 0xC0 != 0x80 {
            throw fail("valid UTF-8", at: pos + i)
        }
        pos += n
    }
}

import Foundation
import SextantCore
import SextantTestSupport
import Testing

@Suite struct JSONTests {
    static let validCases: [(String, JSONValue)] = [
        ("null", JSONValue.null),
        (" true ", .bool(true)),
        ("false", .bool(false)),
        ("0", .int(0)),
        ("-0", .int(0)),
        ("-0.0", .double(-0.0)),
        ("42", .int(42)),
        ("-9223372036854775808", .int(Int64.min)),
        ("9223372036854775807", .int(Int64.max)),
        ("9223372036854775808", .uint(9_223_372_036_854_775_808)),
        ("18446744073709551615", .uint(UInt64.max)),
        ("18446744073709551616", .double(18_446_744_073_709_551_616)),
        ("-9223372036854775809", .double(-9_223_372_036_854_775_809)),
        ("123456789012345678901234567890", .double(1.2345678901234568e29)),
        ("1.5", .double(1.5)),
        ("1e2", .double(100)),
        ("1E+2", .double(100)),
        ("-1.25e-2", .double(-0.0125)),
        ("1e-400", .double(0)),
        ("2.0", .double(2)),
        (#""""#, .string("")),
        (#""abc""#, .string("abc")),
        (#""\"\\\/\b\f\n\r\t""#, .string("\"\\/\u{8}\u{c}\n\r\t")),
        (#""\u0041\u00e9\u20AC""#, .string("Aé€")),
        (#""\ud83c\udfb7""#, .string("🎷")),
        (#""\u0000""#, .string("\u{0}")),
        ("\"héllo 🎷\"", .string("héllo 🎷")),
        ("[]", .array([])),
        ("[ 1 , [2, []], {} ]", .array([1, [2, []], .object(JSONObject())])),
        (#"{"b": 1, "a": [true, null]}"#, ["b": 1, "a": [true, .null]]),
        ("\t\n\r {\"k\":\"v\"} \n", ["k": "v"]),
    ]

    @Test(arguments: validCases)
    func validDocuments(_ text: String, _ expected: JSONValue) throws {
        let v = try JSONValue(parsing: text)
        #expect(v == expected, "\(text)")
        #expect(try JSONValue(parsing: Array(text.utf8)) == expected)
        #expect(try JSONValue(parsing: v.jsonText) == v)
    }

    @Test func keyOrderIsPreserved() throws {
        let v = try JSONValue(parsing: #"{"z": 1, "a": 2, "m": {"y": 1, "b": 2}}"#)
        #expect(v.objectValue?.keys == ["z", "a", "m"])
        #expect(v["a"] == .int(2))
        #expect(v["m"]?["b"] == .int(2))
        #expect(v["nope"] == nil)
        #expect(v.jsonText == #"{"z":1,"a":2,"m":{"y":1,"b":2}}"#)
    }

    static let invalidCases: [(String, Int, String)] = [
        ("", 0, "a JSON value"),
        ("   ", 3, "a JSON value"),
        ("nul", 0, "'null'"),
        ("tru", 0, "'true'"),
        ("[1,]", 3, "a JSON value"),
        ("[1 2]", 3, "',' or ']'"),
        ("{\"a\" 1}", 5, "':'"),
        ("{\"a\":1,}", 7, "a string key"),
        ("{a:1}", 1, "a string key"),
        ("{\"a\":1 \"b\":2}", 7, "',' or '}'"),
        ("{\"a\":1,\"a\":2}", 7, "a unique object key"),
        ("01", 1, "end of input"),
        ("1.", 2, "a digit after '.'"),
        (".5", 0, "a JSON value"),
        ("-", 1, "a digit"),
        ("+1", 0, "a JSON value"),
        ("1e", 2, "a digit in the exponent"),
        ("1e999", 0, "a number within the range of a double"),
        ("-1e400", 0, "a number within the range of a double"),
        ("NaN", 0, "a JSON value"),
        ("\"abc", 4, "'\"' to close the string"),
        ("\"a\nb\"", 2, "control characters must be escaped"),
        ("\"\\x\"", 1, "an escape"),
        ("\"\\u12\"", 5, "4 hex digits"),
        ("\"\\ud800\"", 7, "low surrogate"),
        ("\"\\ud800\\u0041\"", 7, "a low surrogate"),
        ("\"\\udc00\"", 1, "a high surrogate"),
        ("1 2", 2, "end of input"),
        ("{} x", 3, "end of input"),
        ("[1]]", 3, "end of input"),
        ("// c\n1", 0, "a JSON value"),
    ]

    @Test(arguments: invalidCases)
    func invalidDocuments(_ text: String, _ offset: Int, _ expected: String) {
        do {
            let v = try JSONValue(parsing: text)
            Issue.record("\(text.debugDescription) parsed as \(v)")
        } catch {
            #expect(error.code == .syntax)
            #expect(error.context["offset"] == String(offset), "\(text.debugDescription): \(error)")
            #expect(error.context["expected"]?.contains(expected) == true, "\(text.debugDescription): \(error)")
        }
    }

    @Test func invalidUTF8() throws {
        let cases: [([UInt8], Int)] = [
            ([0x22, 0xFF, 0x22], 1),  // never valid
            ([0x22, 0xC0, 0x80, 0x22], 1),  // overlong NUL
            ([0x22, 0xE0, 0x80, 0x80, 0x22], 2),  // overlong 3-byte
            ([0x22, 0xED, 0xA0, 0x80, 0x22], 2),  // encoded surrogate
            ([0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], 2),  // above U+10FFFF
            ([0x22, 0xC3, 0x22], 2),  // truncated sequence
            ([0x22, 0xE2, 0x82], 1),  // truncated at end
            ([0x22, 0x5C, 0x6E, 0x80, 0x22], 3),  // stray continuation after an escape
            ([0xEF, 0xBB, 0xBF, 0x31], 0),  // a byte-order mark is not JSON
        ]
        for (bytes, offset) in cases {
            do {
                _ = try JSONValue(parsing: bytes)
                Issue.record("\(bytes) parsed")
            } catch {
                #expect(error.code == .syntax)
                #expect(error.context["offset"] == String(offset), "\(bytes): \(error)")
            }
        }
        #expect(try JSONValue(parsing: [0x22, 0xF0, 0x9F, 0x8E, 0xB7, 0x22] as [UInt8]) == .string("🎷"))
    }

    @Test func nestingLimit() throws {
        let ok = String(repeating: "[", count: JSONValue.maxDepth) + String(repeating: "]", count: JSONValue.maxDepth)
        let v = try JSONValue(parsing: ok)
        #expect(try JSONValue(parsing: v.jsonText) == v)
        let tooDeep = "[" + ok + "]"
        #expect(throws: SextantError.self) { try JSONValue(parsing: tooDeep) }
        let objects = String(repeating: "{\"a\":", count: JSONValue.maxDepth) + "1" + String(repeating: "}", count: JSONValue.maxDepth)
        #expect(try JSONValue(parsing: objects)["a"]?["a"] != nil)
        let hostile = String(repeating: "[{\"a\":", count: 1_000_000)
        #expect(throws: SextantError.self) { try JSONValue(parsing: hostile) }
    }

    @Test func manyKeysDuplicateDetection() throws {
        let keys = (0..<100).map { "\"k\($0)\":\($0)" }
        let v = try JSONValue(parsing: "{" + keys.joined(separator: ",") + "}")
        #expect(v.objectValue?.count == 100)
        #expect(v["k99"] == .int(99))
        #expect(throws: SextantError.self) { try JSONValue(parsing: "{" + keys.joined(separator: ",") + ",\"k50\":1}") }
    }

    @Test func serializer() {
        let v: JSONValue = [
            "s": .string("q\"b\\n\n\t\u{1}\u{1f}\u{7f}é🎷/"),
            "i": .int(-3), "d": .double(2), "e": .double(1e-7), "big": .double(1e300),
            "nan": .double(.nan), "inf": .double(-.infinity), "a": [], "o": .object(JSONObject()), "n": .null, "t": true,
        ]
        #expect(v.jsonText == #"{"s":"q\"b\\n\n\t\u0001\u001f"# + "\u{7f}é🎷/" + #"","i":-3,"d":2.0,"e":1e-07,"big":1e+300,"nan":null,"inf":null,"a":[],"o":{},"n":null,"t":true}"#)
        var bytes: [UInt8] = []
        v.write(into: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == v.jsonText)
    }

    @Test func serializerRoundTripRandom() throws {
        var rng = SeededRandom(seed: 99)
        func gen(_ depth: Int) -> JSONValue {
            switch rng.next() % (depth > 0 ? 8 : 6) {
            case 0: return .null
            case 1: return .bool(rng.next() % 2 == 0)
            case 2: return .int(Int64(bitPattern: rng.next()))
            case 3: return .double(Double(bitPattern: rng.next() & 0x7FEF_FFFF_FFFF_FFFF))
            case 4, 5:
                let scalars = (0..<rng.next() % 8).compactMap { _ in Unicode.Scalar(UInt32(rng.next() % 0x11000)) }
                return .string(String(String.UnicodeScalarView(scalars)))
            case 6: return .array((0..<rng.next() % 5).map { _ in gen(depth - 1) })
            default:
                var o = JSONObject()
                for i in 0..<rng.next() % 5 { o.members.append((key: "k\(i)\(rng.next() % 3)", value: gen(depth - 1))) }
                return .object(o)
            }
        }
        for _ in 0..<2000 {
            let v = gen(4)
            #expect(try JSONValue(parsing: v.jsonText) == v)
        }
    }

    @Test func sequencesAndBuffers() throws {
        let text = #"{"x": [1, 2.5, "three"]}"#
        let expected: JSONValue = ["x": [1, 2.5, "three"]]
        #expect(try JSONValue(parsing: Array(text.utf8)[...]) == expected)
        #expect(try JSONValue(parsing: Data(text.utf8)) == expected)
        #expect(try JSONValue(parsing: text.utf8) == expected)
        let fromBuffer = try Array(text.utf8).withUnsafeBytes { buf in try JSONValue(parsing: buf) }
        #expect(fromBuffer == expected)
        // A non-contiguous sequence takes the copying path.
        #expect(try JSONValue(parsing: text.utf8.lazy.map { $0 }) == expected)
    }
}

import Foundation
import SextantTestSupport
import Testing

/// Replays every seed under `Fuzz/Corpus/<Target>/` and every minimised failure under
/// `Fuzz/Regressions/<Target>/` through the same bodies the libFuzzer targets run
/// (``FuzzTargets``), so `swift test` keeps them fixed without a sanitizer build.
///
/// A regression whose file name starts with `open-` documents a bug not fixed yet: it is
/// replayed as a known issue (the test fails once the bug is fixed, as a reminder to drop the
/// prefix). `open-trap-` files crash inside the engine and are not replayed at all.
@Suite struct FuzzRegressionTests {
    static let fuzzDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    struct Input: CustomTestStringConvertible, Sendable {
        var target: FuzzTargets.Target
        var path: String
        var kind: String  // Corpus or Regressions
        var name: String { (path as NSString).lastPathComponent }
        var isOpen: Bool { kind == "Regressions" && name.hasPrefix("open-") }
        var testDescription: String { "\(kind)/\(target.rawValue)/\(name)" }
    }

    static func inputs(_ kind: String) -> [Input] {
        var out: [Input] = []
        for target in FuzzTargets.Target.allCases {
            let dir = fuzzDirectory.appendingPathComponent(kind).appendingPathComponent(target.rawValue)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            for name in names.sorted() where !name.hasPrefix(".") && !name.hasPrefix("README") {
                out.append(Input(target: target, path: dir.appendingPathComponent(name).path, kind: kind))
            }
        }
        return out
    }

    static func replay(_ input: Input) throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: input.path)))
        if input.isOpen {
            if input.name.hasPrefix("open-trap-") { return }
            withKnownIssue("open bug, see \(input.testDescription)") {
                let failure = FuzzTargets.check(input.target, bytes)
                #expect(failure == nil)
            }
        } else {
            let failure = FuzzTargets.check(input.target, bytes)
            #expect(failure == nil, "\(input.testDescription): \(failure ?? "")")
        }
    }

    @Test func corporaArePresent() {
        for target in FuzzTargets.Target.allCases {
            #expect(Self.inputs("Corpus").contains { $0.target == target }, "no seeds for \(target.rawValue)")
        }
    }

    @Test(arguments: inputs("Corpus"))
    func corpus(_ input: Input) throws { try Self.replay(input) }

    @Test(arguments: inputs("Regressions"))
    func regression(_ input: Input) throws { try Self.replay(input) }
}

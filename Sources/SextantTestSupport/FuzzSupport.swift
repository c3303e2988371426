import Foundation

/// The bodies of the libFuzzer targets in `Fuzz/` (one executable per target there, each a
/// one-line `LLVMFuzzerTestOneInput` calling the function here), kept in this library so that
/// `swift test` can replay the seed corpora and the minimised regressions through exactly the
/// same code (see `Tests/SextantTests/FuzzRegressionTests.swift`).
///
/// Every body accepts any bytes. Hostile input must yield a value or a `SextantError`; a body
/// traps (`fatalError`) only when an invariant is violated — a round trip that does not
/// re-parse to the same value, a decoder throwing the wrong error, the engine disagreeing with
/// ``ReferenceModel`` — and then the message names the invariant.
public enum FuzzTargets {
    /// The fuzz targets, by the name of their executable (and of their corpus directory).
    public enum Target: String, CaseIterable, Sendable {
        case filterParser = "FuzzFilterParser"
        case fileReaders = "FuzzFileReaders"
        case recordDecoders = "FuzzRecordDecoders"
        case operations = "FuzzOperations"
    }

    /// SQL and JSON predicate parsers, printers and the bound evaluator.
    public static func filterParser(_ data: [UInt8]) { trapOnFailure(.filterParser, data) }
    /// `.fvecs/.ivecs/.bvecs/.npy` readers and the JSONL `LineReader`.
    public static func fileReaders(_ data: [UInt8]) { trapOnFailure(.fileReaders, data) }
    /// The on-disk record decoders (attribute rows, catalog entries, LZ4 blocks).
    public static func recordDecoders(_ data: [UInt8]) { trapOnFailure(.recordDecoders, data) }
    /// Operation sequences on a real store, checked against ``ReferenceModel``.
    public static func operations(_ data: [UInt8]) { trapOnFailure(.operations, data) }

    /// Runs `target`'s body on `data` and returns the violated invariant instead of trapping
    /// (nil when every check passed). Traps that come from inside the engine still trap.
    public static func check(_ target: Target, _ data: [UInt8]) -> String? {
        do {
            switch target {
            case .filterParser: try FilterParserFuzz.run(data)
            case .fileReaders: try FileReadersFuzz.run(data)
            case .recordDecoders: try RecordDecodersFuzz.run(data)
            case .operations: try OperationsFuzz.run(data)
            }
            return nil
        } catch let failure as FuzzFailure {
            return failure.message
        } catch {
            return "an unexpected error escaped the checks: \(error)"
        }
    }

    /// Runs `target`'s body on `data`, trapping on a violated invariant (what libFuzzer needs).
    public static func run(_ target: Target, _ data: [UInt8]) { trapOnFailure(target, data) }

    private static func trapOnFailure(_ target: Target, _ data: [UInt8]) {
        if let message = check(target, data) {
            fatalError("\(target.rawValue): invariant violated: \(message)")
        }
    }
}

/// A violated invariant (a bug), as opposed to an input the API rightly rejects.
struct FuzzFailure: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

@inline(__always)
func require(_ condition: Bool, _ message: @autoclosure () -> String) throws(FuzzFailure) {
    if !condition { throw FuzzFailure(message: message()) }
}

/// Reads fuzzer bytes as decisions; past the end every read is 0, so any input is a valid program.
struct FuzzBytes {
    let data: [UInt8]
    var position = 0

    init(_ data: [UInt8]) { self.data = data }

    var isAtEnd: Bool { position >= data.count }
    var remaining: Int { max(0, data.count - position) }

    mutating func byte() -> UInt8 {
        guard position < data.count else { return 0 }
        defer { position += 1 }
        return data[position]
    }

    /// A value in `0..<n` (n ≥ 1).
    mutating func below(_ n: Int) -> Int { Int(byte()) % max(n, 1) }

    mutating func bool() -> Bool { byte() & 1 == 1 }

    mutating func uint16() -> UInt16 { UInt16(byte()) | UInt16(byte()) << 8 }

    mutating func uint64() -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(byte()) << (8 * UInt64(i)) }
        return v
    }

    /// Everything not read yet.
    mutating func rest() -> [UInt8] {
        guard position < data.count else { return [] }
        defer { position = data.count }
        return Array(data[position...])
    }
}

/// A private scratch directory per process (tmpfs when available: the store target creates and
/// deletes an LMDB environment per execution), removed at exit.
enum FuzzScratch {
    static let root: String = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let dir = (base as NSString).appendingPathComponent("sextant-fuzz-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        // Directories of fuzzers that died (a crash or a kill skips atexit) go first.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] where name.hasPrefix("sextant-fuzz-") {
            let parts = name.split(separator: "-")
            if parts.count == 4, let pid = Int32(parts[2]), pid != getpid(), kill(pid, 0) != 0, errno == ESRCH {
                try? FileManager.default.removeItem(atPath: (base as NSString).appendingPathComponent(name))
            }
        }
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: FuzzScratch.root) }
        return dir
    }()

    nonisolated(unsafe) private static var counter = 0
    private static let lock = NSLock()

    /// A fresh path inside the scratch directory (not created).
    static func path(_ name: String) -> String {
        lock.lock()
        counter += 1
        let n = counter
        lock.unlock()
        return (root as NSString).appendingPathComponent("\(n)-\(name)")
    }
}

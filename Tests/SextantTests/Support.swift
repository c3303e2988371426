import Foundation
import Sextant
import SextantTestSupport

/// A fresh store directory in the test process's scratch directory (removed at exit).
func temporaryStorePath(_ tag: String = #function) -> String {
    ScratchDirectory.path(tag)
}

/// The repository root (two levels above this file's directory).
let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// `../shared/data/NAME` when present (optional large-data tests skip without it).
func sharedDataset(_ name: String) -> String? {
    for base in [repositoryRoot + "/../shared/data", "/work/shared/data"] {
        let p = base + "/" + name
        if FileManager.default.fileExists(atPath: p) { return p }
    }
    return nil
}

/// Runs `body` and returns the SextantError it throws (nil if none or another error).
func sextantError(_ body: () throws -> Void) -> SextantError? {
    do { try body(); return nil } catch let e as SextantError { return e } catch { return nil }
}

/// Everything visible in a collection, as a comparable value (for "store unchanged" checks).
func snapshot(_ c: VectorCollection) throws -> [String] {
    var lines: [String] = []
    try c.dump { lines.append(String(decoding: $0, as: UTF8.self)) }
    return lines
}

let testSchema = try! Schema(parsing: "name:string,year:int,score:double,ok:bool,tags:[string],nums:[int]")

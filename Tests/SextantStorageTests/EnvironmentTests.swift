import Foundation
import Testing
import SextantCore
@testable import SextantStorage
import CLMDB
import SextantTestSupport
#if canImport(Glibc)
import Glibc
#endif

func temporaryDirectory(_ tag: String = #function) -> String {
    ScratchDirectory.path(tag)
}

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

@Suite struct EnvironmentTests {
    @Test func writeCommitsAndThrowAborts() throws {
        let env = try Environment(StorageConfiguration(path: temporaryDirectory()))
        defer { env.close() }
        let db = try #require(try env.openDatabase("t"))
        try env.write { txn in try txn.put(db, key: bytes("a"), value: bytes("1")) }
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try env.write { txn in
                try txn.put(db, key: bytes("b"), value: bytes("2"))
                throw Boom()
            }
        }
        try env.read { txn throws in
            #expect(try txn.value(db, key: bytes("a")) == bytes("1"))
            #expect(try txn.value(db, key: bytes("b")) == nil)
        }
    }

    @Test func transactionCannotBeUsedAfterItsClosure() throws {
        let env = try Environment(StorageConfiguration(path: temporaryDirectory()))
        defer { env.close() }
        let db = try #require(try env.openDatabase("t"))
        let escaped = try env.read { $0 }
        #expect(throws: SextantError.self) { _ = try escaped.value(db, key: bytes("a")) }
    }

    @Test func secondOpenInSameProcessIsLocked() throws {
        let path = temporaryDirectory()
        let env = try Environment(StorageConfiguration(path: path))
        defer { env.close() }
        let e = #expect(throws: SextantError.self) { _ = try Environment(StorageConfiguration(path: path)) }
        #expect(e?.code == .locked)
        env.close()
        let again = try Environment(StorageConfiguration(path: path))
        again.close()
    }

    @Test func readOnlyRefusesWrites() throws {
        let path = temporaryDirectory()
        do {
            let env = try Environment(StorageConfiguration(path: path))
            _ = try env.openDatabase("t")
            env.close()
        }
        var c = StorageConfiguration(path: path)
        c.readOnly = true
        let env = try Environment(c)
        defer { env.close() }
        let e = #expect(throws: SextantError.self) { try env.write { _ in } }
        #expect(e?.code == .readOnly)
        #expect(try env.openDatabase("t") != nil)
        #expect(try env.openDatabase("missing") == nil)
    }

    @Test func missingStoreIsNotFound() throws {
        var c = StorageConfiguration(path: temporaryDirectory())
        c.createIfMissing = false
        let e = #expect(throws: SextantError.self) { _ = try Environment(c) }
        #expect(e?.code == .notFound)
    }

    @Test func mapGrowsWhenFull() throws {
        var c = StorageConfiguration(path: temporaryDirectory())
        c.initialMapSize = 1 << 20
        let env = try Environment(c)
        defer { env.close() }
        let db = try #require(try env.openDatabase("t"))
        let value = [UInt8](repeating: 7, count: 4000)
        var runs = 0
        // 16 MB in one transaction forces several doublings; the body is re-run after each.
        try env.write { txn in
            runs += 1
            for i in 0..<4000 { try txn.put(db, key: bytes("k\(i)"), value: value) }
        }
        #expect(runs > 1)
        #expect(try env.info().mapSize > 1 << 20)
        try env.read { txn throws in #expect(try txn.count(db) == 4000) }
    }

    @Test func mapFullAtLimitIsTyped() throws {
        var c = StorageConfiguration(path: temporaryDirectory())
        c.initialMapSize = 1 << 20
        c.maxMapSize = 2 << 20
        let env = try Environment(c)
        defer { env.close() }
        let db = try #require(try env.openDatabase("t"))
        let value = [UInt8](repeating: 7, count: 4000)
        let e = #expect(throws: SextantError.self) {
            try env.write { txn in for i in 0..<4000 { try txn.put(db, key: bytes("k\(i)"), value: value) } }
        }
        #expect(e?.code == .mapFull)
        try env.read { txn throws in #expect(try txn.count(db) == 0) }
        try env.write { txn in try txn.put(db, key: bytes("small"), value: bytes("ok")) }
    }

    @Test func cursorScanInOrder() throws {
        let env = try Environment(StorageConfiguration(path: temporaryDirectory()))
        defer { env.close() }
        let db = try #require(try env.openDatabase("t"))
        try env.write { txn in
            for k in ["b/2", "a/1", "b/1", "c/1"] { try txn.put(db, key: bytes(k), value: bytes(k)) }
        }
        var seen: [String] = []
        try env.read { txn throws in
            try txn.scan(db, prefix: bytes("b/")) { k, _ in seen.append(String(decoding: k, as: UTF8.self)); return true }
        }
        #expect(seen == ["b/1", "b/2"])
    }

    @Test func faultAtEveryCallOfAWriteIsTypedAndAtomic() throws {
        let injector = FaultInjector()
        var c = StorageConfiguration(path: temporaryDirectory())
        c.faultInjector = injector
        let env = try Environment(c)
        defer { env.close() }
        let db = try #require(try env.openDatabase("t"))
        func op(_ n: Int) throws {
            try env.write { txn in
                for i in 0..<5 { try txn.put(db, key: bytes("n\(n)-\(i)"), value: bytes("v")) }
                try txn.delete(db, key: bytes("n\(n - 1)-0"))
            }
        }
        injector.startRecording()
        try op(0)
        let calls = injector.stopRecording()
        #expect(calls.count >= 8)
        var expectedCount = try env.read { try $0.count(db) }
        for (n, code) in zip(1...calls.count, [EIO, MDB_READERS_FULL, EIO, MDB_MAP_FULL].cycled(calls.count)) {
            injector.arm(.init(failAt: n, code: code))
            do {
                try op(n)
                // Faults on calls that cannot fail (abort/close) or on a grown-and-retried MAP_FULL succeed.
                expectedCount += 4
            } catch let e as SextantError {
                #expect([.io, .readersFull, .mapFull].contains(e.code), "call \(n): \(e)")
                // Nothing of the failed transaction is visible; a retry succeeds.
                injector.clear()
                #expect(try env.read { try $0.count(db) } == expectedCount)
                try op(n)
                expectedCount += 4
            }
            injector.clear()
            #expect(try env.read { try $0.count(db) } == expectedCount)
        }
        #expect(injector.injectedCount > 0)
    }

    @Test func hotCopyAndCompaction() throws {
        let path = temporaryDirectory()
        do {
            let env = try Environment(StorageConfiguration(path: path))
            let db = try #require(try env.openDatabase("t"))
            let value = [UInt8](repeating: 1, count: 1000)
            try env.write { txn in for i in 0..<2000 { try txn.put(db, key: bytes("k\(i)"), value: value) } }
            try env.write { txn in for i in 0..<1900 { try txn.delete(db, key: bytes("k\(i)")) } }
            let copy = temporaryDirectory("copy")
            try env.copy(to: copy, compact: true)
            let c2 = try Environment(StorageConfiguration(path: copy))
            let db2 = try #require(try c2.openDatabase("t"))
            #expect(try c2.read { try $0.count(db2) } == 100)
            c2.close()
            // Refused while open (here: by this process).
            #expect(throws: SextantError.self) { _ = try Environment.compact(path: path) }
            env.close()
        }
        let (before, after) = try Environment.compact(path: path)
        #expect(after < before)
        let env = try Environment(StorageConfiguration(path: path))
        defer { env.close() }
        let db = try #require(try env.openDatabase("t"))
        #expect(try env.read { try $0.count(db) } == 100)
    }

    @Test func lz4RoundTripAndHostileBlocks() throws {
        let text = Array(String(repeating: "tags:json,http,mcp;", count: 40).utf8)
        let z = try #require(LZ4.compress(text))
        #expect(z.count < text.count)
        #expect(try z.withUnsafeBytes { try LZ4.decompress($0, originalSize: text.count) } == text)
        #expect(LZ4.compress([1, 2, 3]) == nil)
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            var junk = z
            junk[Int.random(in: 0..<junk.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            let n = Int.random(in: 0...2000, using: &rng)
            _ = try? junk.withUnsafeBytes { try LZ4.decompress($0, originalSize: n) }
        }
    }
}

extension Array {
    func cycled(_ n: Int) -> [Element] { (0..<n).map { self[$0 % count] } }
}

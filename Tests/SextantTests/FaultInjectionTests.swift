import Foundation
import Testing
@_spi(Testing) @testable import Sextant
import SextantStorage
import SextantTestSupport
import CLMDB

/// Fails each `mdb_*` call of each mutating API in turn: every failure is a typed error, the
/// store reopens consistent with its last commit, and a retry succeeds once the fault clears.
@Suite struct FaultInjectionTests {
    struct Op: Sendable {
        var name: String
        var run: @Sendable (Store) throws -> Void
    }

    static let ops: [Op] = [
        Op(name: "upsert batch") { s in
            try s.collection("c").upsert((0..<6).map { Row(id: UInt64(100 + $0), vector: [Float($0), 1, 2], attributes: ["tag": "new"]) })
        },
        Op(name: "upsert replace") { s in try s.collection("c").upsert(id: 3, vector: [9, 9, 9], attributes: ["tag": "changed"]) },
        Op(name: "delete") { s in _ = try s.collection("c").delete([1, 2, 5]) },
        Op(name: "create collection") { s in try s.createCollection("d", dimension: 2, metric: .ip) },
        Op(name: "drop collection") { s in try s.dropCollection("c") },
    ]

    func seed(_ path: String, injector: FaultInjector, initialize: Bool = false) throws -> Store {
        var config = Store.Configuration()
        config.faultInjector = injector
        let s = try Store(path: path, configuration: config)
        if initialize {
            let c = try s.createCollection("c", dimension: 3, metric: .l2, schema: try Schema(parsing: "tag:string"))
            try c.upsert((0..<10).map { Row(id: UInt64($0), vector: [Float($0), 0, 1], attributes: ["tag": .string("t\($0 % 3)")]) })
        }
        return s
    }

    func state(_ s: Store) throws -> [String] {
        var out = try s.collections().map { "\($0.name) \($0.dimension) \($0.metric)" }
        for info in try s.collections() { out += try snapshot(try s.collection(info.name)) }
        return out
    }

    @Test(arguments: [EIO, MDB_MAP_FULL, MDB_READERS_FULL, ENOSPC])
    func everyCallFailsInTurn(code: Int32) throws {
        var injected = 0
        for op in FaultInjectionTests.ops {
            let path = temporaryStorePath("fault")
            let injector = FaultInjector()
            var store = try seed(path, injector: injector, initialize: true)
            let before = try state(store)
            injector.startRecording()
            try op.run(store)
            let calls = injector.stopRecording().count
            let after = try state(store)
            store.close()
            try? FileManager.default.removeItem(atPath: path)
            #expect(calls > 0)
            for n in 1...calls {
                store = try seed(path, injector: injector, initialize: true)
                let persistent = n % 2 == 0
                injector.arm(.init(failAt: n, code: code, persistent: persistent))
                var failed = false
                do { try op.run(store) } catch let e as SextantError {
                    failed = true
                    #expect([.io, .mapFull, .readersFull].contains(e.code), "\(op.name) call \(n): \(e)")
                } catch { Issue.record("\(op.name) call \(n): untyped \(error)") }
                injector.clear()
                store.close()
                // Reopen: consistent, and holding exactly the state before or after the operation.
                store = try seed(path, injector: injector)
                let now = try state(store)
                #expect(try store.check().isConsistent, "\(op.name) call \(n)")
                if failed {
                    injected += 1
                    #expect(now == before, "\(op.name) call \(n): a failed operation left changes")
                    try op.run(store)  // the retry succeeds
                    #expect(try state(store) == after)
                } else {
                    // MAP_FULL is absorbed by growing the map; faults on calls that cannot fail are ignored.
                    #expect(now == after, "\(op.name) call \(n)")
                }
                store.close()
                try? FileManager.default.removeItem(atPath: path)
            }
        }
        #expect(injected > 0)
        print("fault injection (code \(code)): \(injected) injected failures surfaced as typed errors; store consistent after each")
    }
}

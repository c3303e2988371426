import CLMDB

/// A named LMDB database inside an ``Environment``. Cheap to copy; valid while the environment is open.
package struct Database: Sendable, Hashable {
    package let name: String
    let dbi: MDB_dbi
}

/// Flags for ``Environment/openDatabase(_:create:integerKeys:)``-style calls.
package struct DatabaseOptions: OptionSet, Sendable {
    package let rawValue: UInt32
    package init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Keys are native-endian unsigned integers (4 or 8 bytes), compared numerically.
    package static let integerKey = DatabaseOptions(rawValue: UInt32(MDB_INTEGERKEY))
}

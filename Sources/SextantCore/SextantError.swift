/// The one error type Sextant throws.
///
/// Match on ``code`` (an extensible set of values, like `POSIXErrorCode` but open),
/// never on ``message``: the message is for people and may change.
public struct SextantError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, as a stable, matchable value.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// A stable name, also used in the CLI's `--json` error output.
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        /// An argument was outside its domain (bad k, empty name, zero vector for cosine...).
        public static let invalidArgument = Code("invalidArgument")
        /// A vector's length differs from the collection's dimension.
        public static let dimensionMismatch = Code("dimensionMismatch")
        /// A vector component is NaN or infinite.
        public static let nonFiniteValue = Code("nonFiniteValue")
        /// An attribute name that the schema does not declare.
        public static let unknownAttribute = Code("unknownAttribute")
        /// A value whose type does not match the schema (or a predicate comparing incompatible types).
        public static let typeMismatch = Code("typeMismatch")
        /// A null value for a field declared non-nullable.
        public static let nullViolation = Code("nullViolation")
        /// A predicate that does not parse.
        public static let syntax = Code("syntax")
        /// A file that does not parse or is inconsistent (truncated, wrong header, ...).
        public static let malformedFile = Code("malformedFile")
        /// A file type or element type that is understood but not supported.
        public static let unsupportedFormat = Code("unsupportedFormat")
        /// A named object does not exist.
        public static let notFound = Code("notFound")
        /// A named object exists already.
        public static let alreadyExists = Code("alreadyExists")
        /// The store was written by a different (usually newer) format version.
        public static let formatVersion = Code("formatVersion")
        /// The store's bytes violate an invariant; the store should be restored from a copy.
        public static let corrupted = Code("corrupted")
        /// The LMDB map is full and could not be grown (disk full or the configured limit reached).
        public static let mapFull = Code("mapFull")
        /// The store is held by another process (or already open in this one).
        public static let locked = Code("locked")
        /// The reader table is full (too many concurrent readers).
        public static let readersFull = Code("readersFull")
        /// A write was attempted on a store opened read-only.
        public static let readOnly = Code("readOnly")
        /// An operating-system I/O error.
        public static let io = Code("io")
        /// The store has been closed.
        public static let closed = Code("closed")
        /// An LMDB error with no more specific code.
        public static let storage = Code("storage")
        /// A limit of the format or the engine was exceeded.
        public static let limitExceeded = Code("limitExceeded")
        /// The operation was cancelled (its `Task` was cancelled) before it committed; the store
        /// is as it was before the call.
        public static let cancelled = Code("cancelled")
    }

    public var code: Code
    /// A human-readable explanation.
    public var message: String
    /// Where it happened: the row (0-based position in a batch or file), the field, the byte offset...
    public var context: [String: String]
    /// For ``Code/formatVersion``: the version found in the store.
    public var foundVersion: Int?
    /// For ``Code/formatVersion``: the highest version this build supports.
    public var supportedVersion: Int?
    /// The underlying errno or LMDB return code, when there is one.
    public var underlying: Int32?

    public init(
        _ code: Code, _ message: String, context: [String: String] = [:],
        underlying: Int32? = nil
    ) {
        self.code = code
        self.message = message
        self.context = context
        self.underlying = underlying
    }

    /// A ``Code/formatVersion`` error.
    public static func formatVersion(found: Int, supported: Int, _ message: String) -> SextantError {
        var e = SextantError(.formatVersion, message, context: ["found": String(found), "supported": String(supported)])
        e.foundVersion = found
        e.supportedVersion = supported
        return e
    }

    public var description: String {
        var s = "\(code.name): \(message)"
        if !context.isEmpty {
            s += " [" + context.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ") + "]"
        }
        return s
    }

    /// The same error with more context (existing keys are kept).
    public func adding(_ extra: [String: String]) -> SextantError {
        var e = self
        for (k, v) in extra where e.context[k] == nil { e.context[k] = v }
        return e
    }
}

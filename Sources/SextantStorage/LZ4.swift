import CLZ4
import SextantCore

/// LZ4 block compression for records that compress (attribute rows, dumps, posting lists).
///
/// The block format stores no length; callers keep the decompressed size next to the block.
/// Decompression is the safe variant: hostile input yields ``SextantError/Code/corrupted``.
package enum LZ4 {
    /// The largest input one block may hold.
    package static let maxInputSize = Int(LZ4_MAX_INPUT_SIZE)

    /// Compresses `input`; returns nil when the result would not be smaller (store it raw then).
    package static func compress(_ input: UnsafeRawBufferPointer) -> [UInt8]? {
        guard input.count > 0, input.count <= maxInputSize else { return nil }
        let bound = Int(LZ4_compressBound(Int32(input.count)))
        var out = [UInt8](repeating: 0, count: bound)
        let n = out.withUnsafeMutableBytes { o in
            LZ4_compress_default(
                input.baseAddress!.assumingMemoryBound(to: CChar.self),
                o.baseAddress!.assumingMemoryBound(to: CChar.self),
                Int32(input.count), Int32(bound))
        }
        guard n > 0, Int(n) < input.count else { return nil }
        out.removeSubrange(Int(n)...)
        return out
    }

    package static func compress(_ input: [UInt8]) -> [UInt8]? {
        input.withUnsafeBytes { compress($0) }
    }

    /// Decompresses a block that must expand to exactly `originalSize` bytes.
    package static func decompress(_ block: UnsafeRawBufferPointer, originalSize: Int) throws(SextantError) -> [UInt8] {
        guard originalSize >= 0, originalSize <= maxInputSize, block.count <= Int(Int32.max) else {
            throw SextantError(.corrupted, "LZ4 block claims an impossible size", context: ["size": String(originalSize)])
        }
        if originalSize == 0 {
            guard block.isEmpty || block.count == 1 else {
                throw SextantError(.corrupted, "LZ4 block has data for an empty record")
            }
            return []
        }
        guard let src = block.baseAddress else { throw SextantError(.corrupted, "empty LZ4 block") }
        var out = [UInt8](repeating: 0, count: originalSize)
        let n = out.withUnsafeMutableBytes { o in
            LZ4_decompress_safe(
                src.assumingMemoryBound(to: CChar.self), o.baseAddress!.assumingMemoryBound(to: CChar.self),
                Int32(block.count), Int32(originalSize))
        }
        guard n == Int32(originalSize) else {
            throw SextantError(.corrupted, "LZ4 block does not decompress to its recorded size", context: ["expected": String(originalSize), "got": String(n)])
        }
        return out
    }
}

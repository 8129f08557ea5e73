// Bounds-checked little-endian reads over a byte buffer. Every parser of file data goes through it, so a
// truncated or hostile file ends in `FaceEmbedError`, never an out-of-bounds read.

/// A cursor over raw bytes that throws instead of reading past the end.
package struct ByteReader {
    /// The bytes being read (not owned: they must outlive the reader).
    package let base: UnsafeRawBufferPointer
    /// The next byte to read.
    package private(set) var offset: Int
    /// Builds the error for "what" (e.g. invalidWeights) with a reason.
    package let fail: (String) -> FaceEmbedError

    package init(_ base: UnsafeRawBufferPointer, offset: Int = 0, fail: @escaping (String) -> FaceEmbedError) {
        self.base = base
        self.offset = offset
        self.fail = fail
    }

    /// Bytes left after the cursor.
    package var remaining: Int { base.count - offset }

    /// Throws unless `count` more bytes are present (`what` names what was being read).
    package func need(_ count: Int, _ what: String) throws(FaceEmbedError) {
        guard count >= 0, count <= remaining else {
            throw fail("truncated: \(what) needs \(count) bytes at offset \(offset), \(max(0, remaining)) left")
        }
    }

    package mutating func u32(_ what: String) throws(FaceEmbedError) -> UInt32 {
        try need(4, what)
        defer { offset += 4 }
        return UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    package mutating func i32(_ what: String) throws(FaceEmbedError) -> Int32 { Int32(bitPattern: try u32(what)) }

    package mutating func u64(_ what: String) throws(FaceEmbedError) -> UInt64 {
        try need(8, what)
        defer { offset += 8 }
        return UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    package mutating func i64(_ what: String) throws(FaceEmbedError) -> Int64 { Int64(bitPattern: try u64(what)) }

    package mutating func f32(_ what: String) throws(FaceEmbedError) -> Float { Float(bitPattern: try u32(what)) }

    /// Skips `count` bytes.
    package mutating func skip(_ count: Int, _ what: String) throws(FaceEmbedError) {
        try need(count, what)
        offset += count
    }

    /// Reads `count` bytes as UTF-8 text.
    package mutating func string(count: Int, _ what: String) throws(FaceEmbedError) -> String {
        try need(count, what)
        defer { offset += count }
        return String(decoding: UnsafeRawBufferPointer(rebasing: base[offset..<offset + count]), as: UTF8.self)
    }
}

import FaceEmbed

// Protocol Buffers wire-format decoding over a byte buffer, enough to read ONNX files without a generated schema.
//
// A message is a sequence of fields, each a varint key `(number << 3) | wireType` followed by its payload:
//   0 varint (1–10 bytes, 7 bits each, little-endian groups), 1 fixed 64-bit, 2 length-delimited (varint length,
//   then that many bytes: strings, bytes, nested messages, packed repeated scalars), 5 fixed 32-bit.
// Wire types 3/4 (groups) are deprecated and refused. Every read is bounds-checked against the enclosing message,
// nested messages are opened with a depth limit, and all failures are `FaceEmbedError`s: hostile input never traps.

/// One field's key.
struct ProtoKey: Equatable {
    var number: Int
    var wireType: Int
}

/// A cursor over one protobuf message (`offset..<end` of `base`).
struct ProtoReader {
    /// Wire types.
    static let varint = 0, fixed64 = 1, lengthDelimited = 2, fixed32 = 5
    /// Deepest nesting of messages accepted.
    static let maxDepth = 32

    let base: UnsafeRawBufferPointer
    private(set) var offset: Int
    let end: Int
    let depth: Int
    let fail: (String) -> FaceEmbedError

    /// A reader over the whole buffer (the top-level message).
    init(_ base: UnsafeRawBufferPointer, fail: @escaping (String) -> FaceEmbedError) {
        self.init(base, range: 0..<base.count, depth: 0, fail: fail)
    }

    private init(
        _ base: UnsafeRawBufferPointer, range: Range<Int>, depth: Int, fail: @escaping (String) -> FaceEmbedError
    ) {
        self.base = base
        offset = range.lowerBound
        end = range.upperBound
        self.depth = depth
        self.fail = fail
    }

    var atEnd: Bool { offset >= end }

    /// The next field's key, or nil at the end of the message.
    mutating func next() throws(FaceEmbedError) -> ProtoKey? {
        guard offset < end else { return nil }
        let at = offset
        let key = try readVarint()
        let number = key >> 3, wire = Int(key & 7)
        guard number >= 1, number <= (1 << 29) - 1 else {
            throw fail("protobuf: field number \(number) at offset \(at)")
        }
        guard wire == Self.varint || wire == Self.fixed64 || wire == Self.lengthDelimited || wire == Self.fixed32 else {
            throw fail("protobuf: wire type \(wire) (field \(number)) at offset \(at) is not supported")
        }
        return ProtoKey(number: Int(number), wireType: wire)
    }

    /// A varint (up to 64 bits).
    mutating func readVarint() throws(FaceEmbedError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        let start = offset
        while true {
            guard offset < end else { throw fail("protobuf: truncated varint at offset \(start)") }
            let b = base[offset]
            offset += 1
            guard shift < 63 || (shift == 63 && b <= 1) else {
                throw fail("protobuf: varint longer than 64 bits at offset \(start)")
            }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
        }
    }

    mutating func readFixed32() throws(FaceEmbedError) -> UInt32 {
        guard end - offset >= 4 else { throw fail("protobuf: truncated 32-bit value at offset \(offset)") }
        defer { offset += 4 }
        return UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    mutating func readFixed64() throws(FaceEmbedError) -> UInt64 {
        guard end - offset >= 8 else { throw fail("protobuf: truncated 64-bit value at offset \(offset)") }
        defer { offset += 8 }
        return UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// The byte range of a length-delimited payload (absolute offsets into `base`), moving past it.
    mutating func readBytes() throws(FaceEmbedError) -> Range<Int> {
        let at = offset
        let n = try readVarint()
        guard n <= UInt64(end - offset) else {
            throw fail(
                "protobuf: length \(n) at offset \(at) runs past the end of its message (\(end - offset) bytes left)")
        }
        let r = offset..<offset + Int(n)
        offset += Int(n)
        return r
    }

    /// A length-delimited payload as UTF-8 text.
    mutating func readString() throws(FaceEmbedError) -> String {
        let r = try readBytes()
        return String(decoding: UnsafeRawBufferPointer(rebasing: base[r]), as: UTF8.self)
    }

    /// A reader over a nested message (the length-delimited payload that follows).
    mutating func readMessage() throws(FaceEmbedError) -> ProtoReader {
        guard depth < Self.maxDepth else { throw fail("protobuf: messages nested deeper than \(Self.maxDepth)") }
        let r = try readBytes()
        return ProtoReader(base, range: r, depth: depth + 1, fail: fail)
    }

    /// Skips the payload of a field with key `key`.
    mutating func skip(_ key: ProtoKey) throws(FaceEmbedError) {
        switch key.wireType {
        case Self.varint: _ = try readVarint()
        case Self.fixed64: _ = try readFixed64()
        case Self.fixed32: _ = try readFixed32()
        default: _ = try readBytes()
        }
    }

    /// Expects wire type `wire` for `key` (a file that uses another one for a known field is malformed).
    func expect(_ key: ProtoKey, _ wire: Int, _ what: String) throws(FaceEmbedError) {
        guard key.wireType == wire else {
            throw fail("protobuf: \(what) (field \(key.number)) has wire type \(key.wireType), expected \(wire)")
        }
    }

    // MARK: Scalars of known fields

    /// An int64/int32/enum field (varint), as a signed value.
    mutating func int(_ key: ProtoKey, _ what: String) throws(FaceEmbedError) -> Int64 {
        try expect(key, Self.varint, what)
        return Int64(bitPattern: try readVarint())
    }

    /// A float field (fixed 32-bit).
    mutating func float(_ key: ProtoKey, _ what: String) throws(FaceEmbedError) -> Float {
        try expect(key, Self.fixed32, what)
        return Float(bitPattern: try readFixed32())
    }

    /// A string field.
    mutating func string(_ key: ProtoKey, _ what: String) throws(FaceEmbedError) -> String {
        try expect(key, Self.lengthDelimited, what)
        return try readString()
    }

    /// A nested message field.
    mutating func message(_ key: ProtoKey, _ what: String) throws(FaceEmbedError) -> ProtoReader {
        try expect(key, Self.lengthDelimited, what)
        return try readMessage()
    }

    /// Appends one or more values of a repeated varint field, packed (length-delimited) or not.
    /// `limit` bounds how many values the list may hold in all.
    mutating func appendInts(_ key: ProtoKey, to list: inout [Int64], limit: Int, _ what: String) throws(FaceEmbedError)
    {
        if key.wireType == Self.lengthDelimited {
            let r = try readBytes()
            var sub = ProtoReader(base, range: r, depth: depth, fail: fail)
            while !sub.atEnd {
                guard list.count < limit else { throw fail("\(what): more than \(limit) values") }
                list.append(Int64(bitPattern: try sub.readVarint()))
            }
        } else {
            guard list.count < limit else { throw fail("\(what): more than \(limit) values") }
            list.append(try int(key, what))
        }
    }

    /// Appends one or more values of a repeated float field, packed or not.
    mutating func appendFloats(_ key: ProtoKey, to list: inout [Float], limit: Int, _ what: String)
        throws(FaceEmbedError)
    {
        if key.wireType == Self.lengthDelimited {
            let r = try readBytes()
            guard r.count % 4 == 0 else { throw fail("\(what): packed floats of \(r.count) bytes") }
            guard list.count + r.count / 4 <= limit else { throw fail("\(what): more than \(limit) values") }
            for o in stride(from: r.lowerBound, to: r.upperBound, by: 4) {
                list.append(
                    Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: o, as: UInt32.self))))
            }
        } else {
            guard list.count < limit else { throw fail("\(what): more than \(limit) values") }
            list.append(try float(key, what))
        }
    }
}

// Inflate.swift — zlib (RFC 1950) and DEFLATE (RFC 1951) decompression in pure Swift, for the PNG decoder.
//
// Layout:
//   Inflate.zlib(_:limit:)    the zlib wrapper: CMF/FLG header, DEFLATE body, Adler-32 trailer (checked)
//   Inflate.deflate(...)      the DEFLATE body: stored, fixed-Huffman and dynamic-Huffman blocks
//   InflateBits               LSB-first bit reader over the input, bounds-checked (truncation throws)
//   InflateHuffman            canonical Huffman table: a 9-bit lookup plus a bit-by-bit slow path
//
// The caller gives the exact or maximal output size (`limit`): output beyond it is an error, so a "zip bomb"
// cannot make the decoder allocate more than the caller expects. Every malformed stream throws
// `FaceEmbedError.invalidImage`; nothing traps on hostile input.

/// zlib / DEFLATE decompression with a caller-supplied output limit.
enum Inflate {
    /// Decompresses a zlib stream (header, DEFLATE data, Adler-32) into at most `limit` bytes.
    ///
    /// Bytes after the Adler-32 trailer are ignored. Throws if the stream is malformed, truncated, uses a preset
    /// dictionary, fails its checksum, or would produce more than `limit` bytes.
    static func zlib(_ data: [UInt8], limit: Int) throws(FaceEmbedError) -> [UInt8] {
        guard data.count >= 2 else { throw bad("zlib stream is truncated in its header") }
        let cmf = data[0], flg = data[1]
        guard cmf & 0x0F == 8, cmf >> 4 <= 7 else {
            throw bad(
                "zlib stream uses compression method \(cmf & 0x0F) (window \(cmf >> 4)); only DEFLATE is supported")
        }
        guard (UInt16(cmf) << 8 | UInt16(flg)) % 31 == 0 else { throw bad("zlib header check bits are wrong") }
        guard flg & 0x20 == 0 else { throw bad("zlib stream needs a preset dictionary") }
        var bits = InflateBits(data, start: 2)
        let out = try deflate(&bits, limit: limit)
        let end = bits.byteAlignedPosition()
        guard end + 4 <= data.count else { throw bad("zlib stream is truncated before its Adler-32 checksum") }
        let stored =
            UInt32(data[end]) << 24 | UInt32(data[end + 1]) << 16 | UInt32(data[end + 2]) << 8 | UInt32(data[end + 3])
        let actual = adler32(out)
        guard stored == actual else { throw bad("zlib Adler-32 checksum mismatch (data is corrupt)") }
        return out
    }

    /// Adler-32 of `bytes` (RFC 1950).
    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        var i = 0
        bytes.withUnsafeBufferPointer { p in
            while i < p.count {
                let n = min(5552, p.count - i)  // the largest run that cannot overflow 32 bits before the modulo
                for k in i..<(i + n) {
                    a &+= UInt32(p[k])
                    b &+= a
                }
                a %= 65521
                b %= 65521
                i += n
            }
        }
        return b << 16 | a
    }

    /// Decodes DEFLATE blocks from `bits` until the final block, producing at most `limit` bytes.
    ///
    /// The output buffer is allocated at `limit` bytes up front and trimmed at the end.
    static func deflate(_ bits: inout InflateBits, limit: Int) throws(FaceEmbedError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: max(0, limit))
        var n = 0
        try out.withUnsafeMutableBufferPointer { (o) throws(FaceEmbedError) in
            var final = false
            while !final {
                final = try bits.read(1) == 1
                let type = try bits.read(2)
                switch type {
                case 0:
                    bits.alignToByte()
                    let len = try bits.read(16), nlen = try bits.read(16)
                    guard len ^ 0xFFFF == nlen else { throw bad("DEFLATE stored block length check fails") }
                    guard n + len <= o.count else { throw tooBig(limit) }
                    try bits.copyBytes(len, into: o, at: n)
                    n += len
                case 1:
                    try inflateBlock(&bits, o, &n, lit: fixedLiteral, dist: fixedDistance)
                case 2:
                    let (lit, dist) = try readDynamicTables(&bits)
                    try inflateBlock(&bits, o, &n, lit: lit, dist: dist)
                default:
                    throw bad("DEFLATE block type 3 is invalid")
                }
            }
        }
        out.removeLast(out.count - n)
        return out
    }

    // MARK: - Blocks

    private static let lengthBase: [Int] = [
        3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
        35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258,
    ]
    private static let lengthExtra: [Int] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
        3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
    ]
    private static let distBase: [Int] = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385,
        513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
    ]
    private static let distExtra: [Int] = [
        0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7,
        8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13,
    ]

    private static let fixedLiteral: InflateHuffman = {
        var lengths = [UInt8](repeating: 8, count: 288)
        for i in 144..<256 { lengths[i] = 9 }
        for i in 256..<280 { lengths[i] = 7 }
        // The fixed code is complete and valid by construction.
        return (try? InflateHuffman(lengths)) ?? InflateHuffman.empty
    }()

    private static let fixedDistance: InflateHuffman = {
        (try? InflateHuffman([UInt8](repeating: 5, count: 30))) ?? InflateHuffman.empty
    }()

    private static func readDynamicTables(_ bits: inout InflateBits) throws(FaceEmbedError) -> (
        InflateHuffman, InflateHuffman
    ) {
        let hlit = try bits.read(5) + 257, hdist = try bits.read(5) + 1, hclen = try bits.read(4) + 4
        guard hlit <= 286, hdist <= 30 else {
            throw bad("DEFLATE dynamic block declares \(hlit) literal or \(hdist) distance codes")
        }
        let order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
        var clen = [UInt8](repeating: 0, count: 19)
        for i in 0..<hclen { clen[order[i]] = UInt8(try bits.read(3)) }
        let codeLengthCode = try InflateHuffman(clen)
        var lengths = [UInt8](repeating: 0, count: hlit + hdist)
        var i = 0
        while i < hlit + hdist {
            let sym = try codeLengthCode.decode(&bits)
            var value: UInt8 = 0, repeatCount = 0
            switch sym {
            case 0...15:
                lengths[i] = UInt8(sym)
                i += 1
                continue
            case 16:
                guard i > 0 else { throw bad("DEFLATE code lengths repeat a previous length that does not exist") }
                value = lengths[i - 1]
                repeatCount = 3 + (try bits.read(2))
            case 17: repeatCount = 3 + (try bits.read(3))
            default: repeatCount = 11 + (try bits.read(7))
            }
            guard i + repeatCount <= hlit + hdist else { throw bad("DEFLATE code lengths overrun the table") }
            for k in i..<(i + repeatCount) { lengths[k] = value }
            i += repeatCount
        }
        guard lengths[256] != 0 else { throw bad("DEFLATE dynamic block has no end-of-block code") }
        let lit = try InflateHuffman(Array(lengths[0..<hlit]))
        let dist = try InflateHuffman(Array(lengths[hlit...]))
        return (lit, dist)
    }

    /// Decodes one Huffman-coded block into `o`, from position `n` on; `o.count` is the output limit.
    private static func inflateBlock(
        _ bits: inout InflateBits, _ o: UnsafeMutableBufferPointer<UInt8>, _ n: inout Int,
        lit: InflateHuffman, dist: InflateHuffman
    ) throws(FaceEmbedError) {
        guard let base = o.baseAddress else {
            // A zero limit: only an empty block fits.
            guard try lit.decode(&bits) == 256 else { throw tooBig(0) }
            return
        }
        let limit = o.count
        while true {
            let sym = try lit.decode(&bits)
            if sym < 256 {
                guard n < limit else { throw tooBig(limit) }
                base[n] = UInt8(truncatingIfNeeded: sym)
                n += 1
                continue
            }
            if sym == 256 { return }
            let li = sym - 257
            guard li < lengthBase.count else { throw bad("DEFLATE length code \(sym) is invalid") }
            let length = lengthBase[li] + (try bits.read(lengthExtra[li]))
            let di = try dist.decode(&bits)
            guard di < distBase.count else { throw bad("DEFLATE distance code \(di) is invalid") }
            let distance = distBase[di] + (try bits.read(distExtra[di]))
            guard distance <= n else {
                throw bad("DEFLATE distance \(distance) reaches before the start of the output")
            }
            guard length <= limit - n else { throw tooBig(limit) }
            // Byte by byte: the source may overlap the bytes being written.
            let dst = base + n, src = base + (n - distance)
            for i in 0..<length { dst[i] = src[i] }
            n += length
        }
    }

    fileprivate static func bad(_ reason: String) -> FaceEmbedError { .invalidImage(file: nil, reason: reason) }

    private static func tooBig(_ limit: Int) -> FaceEmbedError {
        bad("compressed data expands beyond the expected \(limit) bytes")
    }
}

/// An LSB-first bit reader over a byte array. Reading past the end throws "truncated".
struct InflateBits {
    private let data: [UInt8]
    private var pos: Int
    private var buffer: UInt64 = 0
    private var count = 0

    init(_ data: [UInt8], start: Int) {
        self.data = data
        self.pos = start
    }

    /// Tops the buffer up to at least 57 bits, or as far as the input goes.
    @inline(__always)
    mutating func refill() {
        while count <= 56, pos < data.count {
            buffer |= UInt64(data[pos]) << UInt64(count)
            pos += 1
            count += 8
        }
    }

    /// The buffered bits (low bits first) and how many are valid, after a refill.
    @inline(__always)
    mutating func peek() -> (UInt64, Int) {
        if count < 16 { refill() }
        return (buffer, count)
    }

    @inline(__always)
    mutating func consume(_ n: Int) {
        buffer >>= UInt64(n)
        count -= n
    }

    /// Reads `n` (0…16) bits as an integer, low bit first.
    @inline(__always)
    mutating func read(_ n: Int) throws(FaceEmbedError) -> Int {
        if n == 0 { return 0 }
        if count < n { refill() }
        guard count >= n else { throw Inflate.bad("compressed data is truncated") }
        let v = Int(buffer & ((1 << UInt64(n)) - 1))
        consume(n)
        return v
    }

    /// Drops the bits up to the next byte boundary.
    mutating func alignToByte() { consume(count & 7) }

    /// The input position of the next whole byte, after dropping the partial byte.
    mutating func byteAlignedPosition() -> Int {
        alignToByte()
        return pos - count / 8
    }

    /// Copies `n` raw bytes (a stored block's payload) to `out[at...]`, after byte alignment.
    /// The caller guarantees `at + n <= out.count`.
    mutating func copyBytes(_ n: Int, into out: UnsafeMutableBufferPointer<UInt8>, at: Int) throws(FaceEmbedError) {
        let start = byteAlignedPosition()
        guard start + n <= data.count, at + n <= out.count else {
            throw Inflate.bad("compressed data is truncated in a stored block")
        }
        for i in 0..<n { out[at + i] = data[start + i] }
        pos = start + n
        buffer = 0
        count = 0
    }
}

/// A canonical DEFLATE Huffman code: a 9-bit direct lookup table, and a per-length walk for longer codes.
struct InflateHuffman {
    private static let fastBits = 9
    /// Indexed by the next 9 input bits: `symbol << 4 | length`, or 0 when the code is longer than 9 bits.
    private var fast: [UInt16]
    /// Number of codes of each length 0…15.
    private var counts: [Int]
    /// Symbols sorted by code.
    private var symbols: [Int]

    static let empty = InflateHuffman(
        fast: [UInt16](repeating: 0, count: 1 << fastBits), counts: [Int](repeating: 0, count: 16), symbols: [])

    private init(fast: [UInt16], counts: [Int], symbols: [Int]) {
        self.fast = fast
        self.counts = counts
        self.symbols = symbols
    }

    /// Builds the code from per-symbol code lengths (0 = unused). Over-subscribed codes are rejected;
    /// incomplete codes are allowed (DEFLATE permits them, e.g. a single distance code).
    init(_ lengths: [UInt8]) throws(FaceEmbedError) {
        var counts = [Int](repeating: 0, count: 16)
        for l in lengths { counts[Int(l & 15)] += 1 }
        counts[0] = 0
        var left = 1
        for len in 1...15 {
            left <<= 1
            left -= counts[len]
            guard left >= 0 else { throw Inflate.bad("DEFLATE Huffman code is over-subscribed") }
        }
        var offsets = [Int](repeating: 0, count: 16)
        for len in 1..<15 { offsets[len + 1] = offsets[len] + counts[len] }
        var symbols = [Int](repeating: 0, count: offsets[15] + counts[15])
        for (sym, l) in lengths.enumerated() where l != 0 {
            symbols[offsets[Int(l)]] = sym
            offsets[Int(l)] += 1
        }
        var fast = [UInt16](repeating: 0, count: 1 << Self.fastBits)
        var code = 0, index = 0
        for len in 1...Self.fastBits {
            for _ in 0..<counts[len] {
                // Codes are sent most significant bit first; the reader holds them low bit first.
                var reversed = 0
                for b in 0..<len where code & (1 << b) != 0 { reversed |= 1 << (len - 1 - b) }
                var k = reversed
                while k < fast.count {
                    fast[k] = UInt16(symbols[index] << 4 | len)
                    k += 1 << len
                }
                code += 1
                index += 1
            }
            code <<= 1
        }
        self.fast = fast
        self.counts = counts
        self.symbols = symbols
    }

    /// Decodes one symbol.
    @inline(__always)
    func decode(_ bits: inout InflateBits) throws(FaceEmbedError) -> Int {
        let (buf, n) = bits.peek()
        let entry = Int(fast[Int(buf & UInt64((1 << Self.fastBits) - 1))])
        let len = entry & 15
        if len != 0 && len <= n {
            bits.consume(len)
            return entry >> 4
        }
        // Slow path: walk the canonical code one bit at a time.
        var code = 0, first = 0, index = 0
        var b = buf
        for l in 1...15 {
            guard l <= n else { throw Inflate.bad("compressed data is truncated") }
            code |= Int(b & 1)
            b >>= 1
            let c = counts[l]
            if code - first < c {
                bits.consume(l)
                return symbols[index + code - first]
            }
            index += c
            first = (first + c) << 1
            code <<= 1
        }
        throw Inflate.bad("DEFLATE data has an invalid Huffman code")
    }
}

// JPEGHuffman.swift — the entropy-coded-segment bit reader and canonical Huffman tables shared by the sequential
// and progressive JPEG scan decoders.
//
// Layout:
//   JPEGBits      MSB-first bit reader with 0xFF00 unstuffing; it stops at markers and pads with zero bits,
//                 counting them, so consuming data that is not there is detected as truncation; RSTn handling
//   JPEGHuffman   canonical Huffman table (DHT): 9-bit lookup plus per-length maximum codes

/// MSB-first entropy-coded-segment reader. Stops at any marker; past it (or past the end) it supplies zero
/// bits and counts them in `fake`, so `count < fake` after consuming means the data ran out.
struct JPEGBits {
    let data: [UInt8]
    var pos: Int
    /// Next bit is bit 63.
    var acc: UInt64 = 0
    var count = 0
    var fake = 0
    var atMarker = false

    init(_ data: [UInt8], pos: Int) {
        self.data = data
        self.pos = pos
    }

    /// Tops the buffer up to at least 57 bits (real or padding).
    @inline(__always)
    mutating func fill() {
        while count <= 56 {
            var byte: UInt8 = 0
            if !atMarker && pos < data.count {
                byte = data[pos]
                if byte == 0xFF {
                    if pos + 1 < data.count && data[pos + 1] == 0 {
                        pos += 2
                    } else {
                        atMarker = true
                        byte = 0
                    }
                } else {
                    pos += 1
                }
            } else {
                atMarker = true
            }
            if atMarker { fake += 8 }
            acc |= UInt64(byte) << UInt64(56 - count)
            count += 8
        }
    }

    @inline(__always)
    mutating func consume(_ n: Int) {
        acc <<= UInt64(n)
        count -= n
    }

    /// True when bits that are not in the file have been consumed.
    @inline(__always)
    var overran: Bool { count < fake }

    /// Reads `s` (1…15) bits and sign-extends them as JPEG's EXTEND does.
    @inline(__always)
    mutating func receiveExtend(_ s: Int) -> Int32 {
        let v = Int32(truncatingIfNeeded: acc >> UInt64(64 - s))
        consume(s)
        return v < (1 << Int32(s - 1)) ? v - (1 << Int32(s)) + 1 : v
    }

    /// Reads `n` (1…16) bits as an unsigned value.
    @inline(__always)
    mutating func bits(_ n: Int) -> Int {
        if count < n { fill() }
        let v = Int(truncatingIfNeeded: acc >> UInt64(64 - n))
        consume(n)
        return v
    }

    /// Reads one bit.
    @inline(__always)
    mutating func bit() -> Bool {
        if count < 1 { fill() }
        let set = acc >> 63 != 0
        consume(1)
        return set
    }

    /// Discards buffered bits and moves past the next RSTn marker. Throws if another marker or the end comes first.
    mutating func restart() throws(FaceEmbedError) {
        acc = 0
        count = 0
        fake = 0
        atMarker = false
        while pos + 1 < data.count {
            if data[pos] != 0xFF { pos += 1; continue }
            let m = data[pos + 1]
            if m >= 0xD0 && m <= 0xD7 { pos += 2; return }
            if m == 0xFF { pos += 1; continue }
            if m == 0x00 { pos += 2; continue }
            throw JPEG.bad("expected a restart marker, found marker 0x\(String(m, radix: 16, uppercase: true))")
        }
        throw JPEG.bad("truncated in scan data (before a restart marker)")
    }

    /// The position of the next marker that is not RSTn, after the scan; `data.count` if there is none.
    mutating func endOfScan() -> Int {
        while pos + 1 < data.count {
            if data[pos] == 0xFF {
                let m = data[pos + 1]
                if m != 0 && m != 0xFF && !(m >= 0xD0 && m <= 0xD7) { return pos }
                pos += m == 0xFF ? 1 : 2
            } else {
                pos += 1
            }
        }
        return data.count
    }
}

/// A canonical JPEG Huffman table (DHT).
struct JPEGHuffman {
    /// Indexed by the next 9 bits: `length << 8 | symbol`, or 0 when the code is longer.
    var fast = [UInt16](repeating: 0, count: 512)
    /// Largest code of each length 0…16 (−1 when none).
    var maxCode = [Int32](repeating: -1, count: 17)
    /// Index of a code's symbol in `values` is `code + valueOffset[length]`.
    var valueOffset = [Int32](repeating: 0, count: 17)
    var values: [UInt8] = []

    /// Builds the table from BITS (codes per length 1…16) and HUFFVAL. Over-full tables are refused.
    init(counts: [Int], values: [UInt8]) throws(FaceEmbedError) {
        self.values = values
        var code: Int32 = 0
        var k: Int32 = 0
        var codes: [(Int32, Int)] = []
        for len in 1...16 {
            let n = Int32(counts[len - 1])
            if n > 0 {
                valueOffset[len] = k - code
                for _ in 0..<n { codes.append((code, len)); code += 1 }
                k += n
                maxCode[len] = code - 1
            }
            guard code <= (1 << Int32(len)) else { throw JPEG.bad("Huffman table has too many codes of length \(len)") }
            code <<= 1
        }
        for (i, (c, len)) in codes.enumerated() where len <= 9 {
            let shift = 9 - len
            let first = Int(c) << shift
            for j in first..<(first + (1 << shift)) { fast[j] = UInt16(len << 8) | UInt16(values[i]) }
        }
    }

    /// Decodes one symbol; the reader must hold at least 16 bits.
    @inline(__always)
    func decode(_ bits: inout JPEGBits) throws(FaceEmbedError) -> Int {
        let e = Int(fast[Int(bits.acc >> 55)])
        if e != 0 {
            bits.consume(e >> 8)
            return e & 0xFF
        }
        var len = 10
        while len <= 16 {
            let code = Int32(truncatingIfNeeded: bits.acc >> UInt64(64 - len))
            if code <= maxCode[len] {
                bits.consume(len)
                let i = Int(code + valueOffset[len])
                guard i >= 0 && i < values.count else { break }
                return Int(values[i])
            }
            len += 1
        }
        if bits.fake > 0 {
            throw JPEG.bad("truncated in scan data")
        }
        throw JPEG.bad("invalid Huffman code in scan data")
    }
}

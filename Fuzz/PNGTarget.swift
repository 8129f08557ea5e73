// Fuzz target: PNG (chunk walk, IHDR/PLTE/IDAT/eXIf, zlib + DEFLATE, unfiltering, every colour type and Adam7,
// the EXIF orientation applied).
//
// Each input is decoded twice: as given (so the CRC and Adler-32 failure paths are fuzzed), then with its
// checksums repaired (every chunk CRC recomputed, the IDAT stream's Adler-32 replaced by the one of what it
// inflates to), so mutations reach the inflater's tail, the unfilters and the pixel emitters instead of dying at
// the first CRC check.
/// libFuzzer's entry point: one input of `size` bytes at `data`; returns 0.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = FuzzSupport.bytes(data, size)
    _ = try? PNG.decode(bytes)
    _ = try? Inflate.zlib(bytes, limit: 1 << 16)  // the raw input as a zlib stream too
    if let fixed = repaired(bytes), fixed != bytes, let (image, orientation) = try? PNG.decodeWithOrientation(fixed) {
        precondition(image.pixels.count == image.width * image.height * 3)
        precondition(image.oriented(orientation).pixels.count == image.pixels.count)
    }
    return 0
}

private func be32(_ b: [UInt8], _ i: Int) -> UInt32 {
    UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
}

private func put32(_ v: UInt32, _ out: inout [UInt8]) {
    out += [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
}

/// The input with valid chunk CRCs and a valid zlib Adler-32 (IDAT chunks merged into one), or nil.
private func repaired(_ b: [UInt8]) -> [UInt8]? {
    guard b.count >= 8, Array(b[0..<8]) == PNG.signature else { return nil }
    var chunks: [(type: [UInt8], data: [UInt8])] = []
    var pos = 8
    while pos + 8 <= b.count {
        let length = min(Int(be32(b, pos)), b.count - pos - 8)
        chunks.append((Array(b[(pos + 4)..<(pos + 8)]), Array(b[(pos + 8)..<(pos + 8 + length)])))
        pos += 8 + length + 4
    }
    let idatType = Array("IDAT".utf8)
    var idat = chunks.filter { $0.type == idatType }.flatMap { $0.data }
    if idat.count >= 6 {
        var bits = InflateBits(idat, start: 2)
        if let out = try? Inflate.deflate(&bits, limit: min(idat.count * 1040 + 1024, 1 << 24)) {
            let end = bits.byteAlignedPosition()
            if end <= idat.count {
                idat = Array(idat[0..<end])
                put32(Inflate.adler32(out), &idat)
            }
        }
    }
    var out = PNG.signature
    var wroteIDAT = false
    for c in chunks {
        var d = c.data
        if c.type == idatType {
            if wroteIDAT { continue }
            wroteIDAT = true
            d = idat
        }
        put32(UInt32(d.count), &out)
        let body = c.type + d
        out += body
        put32(body.withUnsafeBufferPointer { PNG.crc32($0[...]) }, &out)
    }
    return out
}

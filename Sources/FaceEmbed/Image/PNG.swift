// PNG.swift — a pure-Swift PNG decoder producing 8-bit RGB.
//
// Layout:
//   PNG.decode(_:)        signature, chunk walk (CRC-32 of every chunk checked), IHDR/PLTE/IDAT/IEND, eXIf
//   PNG.Header            IHDR fields and the derived row geometry
//   PNG.unfilter          the five row filters (None, Sub, Up, Average, Paeth)
//   PNG.emitRow           one unfiltered row → RGB pixels (gray, gray+alpha, RGB, RGBA, palette; 1–16 bits)
//   PNG.crc32             CRC-32 (ISO 3309) with a table built once
//
// Supported: every colour type and bit depth of the PNG spec, non-interlaced and Adam7 interlaced.
// Alpha is dropped (no compositing), gray expands to R=G=B, 16-bit samples keep their high byte, tRNS is ignored,
// palette indices beyond the palette give black (as Pillow does). The image data is inflated with an output limit
// equal to the exact size the header implies, after checking that the compressed bytes present could produce it.
// An eXIf chunk's orientation is read (EXIF.swift) for ImageDecoder to apply.

/// PNG decoding to ``RGBImage``.
enum PNG {
    /// The 8-byte PNG signature.
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// IHDR fields and derived geometry.
    struct Header {
        var width = 0, height = 0, depth = 0, colorType = 0, interlaced = false
        /// Samples per pixel.
        var channels: Int {
            switch colorType {
            case 2: return 3
            case 4: return 2
            case 6: return 4
            default: return 1
            }
        }
        var bitsPerPixel: Int { channels * depth }
        /// Distance in bytes to the corresponding byte of the previous pixel, for filtering.
        var filterStride: Int { max(1, bitsPerPixel / 8) }
        func rowBytes(_ w: Int) -> Int { (w * bitsPerPixel + 7) / 8 }
    }

    /// Adam7 passes: x start, y start, x step, y step.
    private static let adam7: [(Int, Int, Int, Int)] = [
        (0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
        (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2),
    ]

    /// Decodes a PNG file's bytes into RGB, pixels as stored.
    static func decode(_ bytes: [UInt8]) throws(FaceEmbedError) -> RGBImage {
        try decodeWithOrientation(bytes).image
    }

    /// Decodes a PNG and reads the orientation of its eXIf chunk (the last one, as Pillow; 1 when absent or
    /// unreadable) without applying it.
    static func decodeWithOrientation(_ bytes: [UInt8]) throws(FaceEmbedError) -> (image: RGBImage, orientation: Int) {
        guard bytes.count >= 8, Array(bytes[0..<8]) == signature else { throw bad("not a PNG file (bad signature)") }
        var pos = 8
        var header: Header?
        var palette: [UInt8] = []
        var idat: [UInt8] = []
        var sawIDAT = false, idatEnded = false, sawEnd = false
        var orientation = 1
        while !sawEnd {
            guard pos + 8 <= bytes.count else {
                throw bad(header == nil ? "truncated before IHDR" : "truncated before IEND")
            }
            let length = Int(be32(bytes, pos))
            let type = Array(bytes[(pos + 4)..<(pos + 8)])
            let name = String(decoding: type.map { $0 >= 32 && $0 < 127 ? $0 : 63 }, as: UTF8.self)
            guard length <= 0x7FFF_FFFF, length <= bytes.count - pos - 12 else {
                throw bad("truncated in chunk \(name)")
            }
            let dataStart = pos + 8, dataEnd = dataStart + length
            let storedCRC = be32(bytes, dataEnd)
            let crc = bytes.withUnsafeBufferPointer { crc32($0[(pos + 4)..<dataEnd]) }
            guard crc == storedCRC else { throw bad("CRC mismatch in chunk \(name)") }
            pos = dataEnd + 4
            if header == nil && name != "IHDR" { throw bad("first chunk is \(name), not IHDR") }
            if sawIDAT && name != "IDAT" { idatEnded = true }
            switch name {
            case "IHDR":
                guard header == nil else { throw bad("more than one IHDR chunk") }
                header = try parseHeader(bytes, dataStart, length)
            case "PLTE":
                guard length % 3 == 0, length / 3 >= 1, length / 3 <= 256 else {
                    throw bad("PLTE chunk has invalid length \(length)")
                }
                guard !sawIDAT else { throw bad("PLTE chunk after image data") }
                palette = Array(bytes[dataStart..<dataEnd])
            case "IDAT":
                guard !idatEnded else { throw bad("IDAT chunks are not consecutive") }
                sawIDAT = true
                idat.append(contentsOf: bytes[dataStart..<dataEnd])
            case "IEND":
                sawEnd = true
            case "eXIf":
                orientation = EXIF.orientation(tiff: bytes[dataStart..<dataEnd])
            default:
                // Ancillary chunks (lower-case first letter) are skipped; unknown critical ones are refused.
                if let first = type.first, first & 0x20 == 0 { throw bad("unknown critical chunk \(name)") }
            }
        }
        guard let h = header else { throw bad("missing IHDR") }
        guard sawIDAT else { throw bad("no image data (IDAT)") }
        if h.colorType == 3 && palette.isEmpty { throw bad("palette image without PLTE chunk") }

        // Exact inflated size: one filter byte per row of each (non-empty) pass.
        var expected = 0
        let passes = h.interlaced ? adam7 : [(0, 0, 1, 1)]
        for (x0, y0, dx, dy) in passes {
            let pw = (h.width - x0 + dx - 1) / dx, ph = (h.height - y0 + dy - 1) / dy
            if pw > 0 && ph > 0 { expected += ph * (1 + h.rowBytes(pw)) }
        }
        // DEFLATE cannot expand by more than about 1032:1, so a tiny file cannot claim a huge image.
        guard expected <= idat.count * 1040 + 1024 else {
            throw bad(
                "\(h.width)x\(h.height) image needs \(expected) bytes but only \(idat.count) compressed bytes are present"
            )
        }
        var raw = try Inflate.zlib(idat, limit: expected)
        guard raw.count == expected else { throw bad("image data is truncated (\(raw.count) of \(expected) bytes)") }

        // A 256-entry RGB palette; entries the file does not define are black.
        var lut = [UInt8](repeating: 0, count: 768)
        for i in 0..<min(palette.count, 768) { lut[i] = palette[i] }
        var out = [UInt8](repeating: 0, count: h.width * h.height * 3)
        let maxRow = passes.map { h.rowBytes((h.width - $0.0 + $0.2 - 1) / $0.2) }.max() ?? 0
        let zero = [UInt8](repeating: 0, count: maxRow)
        try raw.withUnsafeMutableBufferPointer { (r) throws(FaceEmbedError) in
            try zero.withUnsafeBufferPointer { (z) throws(FaceEmbedError) in
                try out.withUnsafeMutableBufferPointer { (o) throws(FaceEmbedError) in
                    try lut.withUnsafeBufferPointer { (pal) throws(FaceEmbedError) in
                        guard let rb0 = r.baseAddress, let zb = z.baseAddress,
                            let ob = o.baseAddress, let lb = pal.baseAddress
                        else { throw bad("internal: empty buffers") }
                        // `raw` holds exactly the rows of every pass (checked above), `out` every pixel.
                        var offset = 0
                        for (x0, y0, dx, dy) in passes {
                            let pw = (h.width - x0 + dx - 1) / dx, ph = (h.height - y0 + dy - 1) / dy
                            guard pw > 0 && ph > 0 else { continue }
                            let rb = h.rowBytes(pw)
                            var prev = UnsafePointer(zb)
                            for py in 0..<ph {
                                let filter = rb0[offset]
                                let row = rb0 + offset + 1
                                offset += 1 + rb
                                try unfilter(filter, row, prev, count: rb, stride: h.filterStride)
                                emitRow(
                                    UnsafePointer(row), h, lb, count: pw, into: ob + (y0 + py * dy) * h.width * 3,
                                    x0: x0, dx: dx)
                                prev = UnsafePointer(row)
                            }
                        }
                    }
                }
            }
        }
        return (try RGBImage(width: h.width, height: h.height, pixels: out), orientation)
    }

    private static func parseHeader(_ b: [UInt8], _ at: Int, _ length: Int) throws(FaceEmbedError) -> Header {
        guard length == 13 else { throw bad("IHDR has length \(length), not 13") }
        var h = Header()
        let w = Int(be32(b, at)), hh = Int(be32(b, at + 4))
        guard w > 0, hh > 0, w <= ImageLimits.maxSide, hh <= ImageLimits.maxSide, w * hh <= ImageLimits.maxPixels else {
            throw bad("dimensions \(w)x\(hh) are outside the supported range")
        }
        h.width = w
        h.height = hh
        h.depth = Int(b[at + 8])
        h.colorType = Int(b[at + 9])
        let valid: [Int] =
            switch h.colorType {
            case 0: [1, 2, 4, 8, 16]
            case 3: [1, 2, 4, 8]
            case 2, 4, 6: [8, 16]
            default: []
            }
        guard !valid.isEmpty else { throw bad("invalid color type \(h.colorType)") }
        guard valid.contains(h.depth) else { throw bad("invalid bit depth \(h.depth) for color type \(h.colorType)") }
        guard b[at + 10] == 0 else { throw bad("unknown compression method \(b[at + 10])") }
        guard b[at + 11] == 0 else { throw bad("unknown filter method \(b[at + 11])") }
        guard b[at + 12] <= 1 else { throw bad("unknown interlace method \(b[at + 12])") }
        h.interlaced = b[at + 12] == 1
        return h
    }

    /// Reverses one row's filter in place, given the previous (already unfiltered) row of the same pass
    /// (zeros for the first row). Both hold `n` bytes.
    static func unfilter(
        _ filter: UInt8, _ r: UnsafeMutablePointer<UInt8>, _ p: UnsafePointer<UInt8>, count n: Int,
        stride bpp: Int
    ) throws(FaceEmbedError) {
        switch filter {
        case 0:
            break
        case 1:
            if bpp < n { for i in bpp..<n { r[i] = r[i] &+ r[i - bpp] } }
        case 2:
            for i in 0..<n { r[i] = r[i] &+ p[i] }
        case 3:
            for i in 0..<min(bpp, n) { r[i] = r[i] &+ p[i] >> 1 }
            if bpp < n {
                for i in bpp..<n { r[i] = r[i] &+ UInt8(truncatingIfNeeded: (Int(r[i - bpp]) &+ Int(p[i])) >> 1) }
            }
        case 4:
            // Paeth: with no left neighbour the predictor is the byte above.
            for i in 0..<min(bpp, n) { r[i] = r[i] &+ p[i] }
            if bpp < n {
                for i in bpp..<n {
                    let a = Int(r[i - bpp]), b = Int(p[i]), c = Int(p[i - bpp])
                    let pa = abs(b &- c), pb = abs(a &- c), pc = abs(a &+ b &- 2 &* c)
                    let pred = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c)
                    r[i] = r[i] &+ UInt8(truncatingIfNeeded: pred)
                }
            }
        default:
            throw bad("unknown row filter type \(filter)")
        }
    }

    /// Writes `count` pixels of an unfiltered row to the output row `o`, at columns `x0`, `x0+dx`, ….
    /// `pal` is a 256-entry RGB palette.
    private static func emitRow(
        _ row: UnsafePointer<UInt8>, _ h: Header, _ pal: UnsafePointer<UInt8>, count: Int,
        into o: UnsafeMutablePointer<UInt8>, x0: Int, dx: Int
    ) {
        let depth = h.depth, ch = h.channels
        let step = 3 * dx
        var q = o + 3 * x0
        if depth == 8 {
            switch h.colorType {
            case 2, 6:
                for x in 0..<count {
                    let s = row + x * ch
                    q[0] = s[0]; q[1] = s[1]; q[2] = s[2]
                    q += step
                }
            case 3:
                for x in 0..<count {
                    let e = pal + 3 * Int(row[x])
                    q[0] = e[0]; q[1] = e[1]; q[2] = e[2]
                    q += step
                }
            default:
                for x in 0..<count {
                    let v = row[x * ch]
                    q[0] = v; q[1] = v; q[2] = v
                    q += step
                }
            }
            return
        }
        @inline(__always) func sample(_ i: Int) -> Int {
            // The i-th sample of the row: the high byte of a 16-bit sample, or the i-th packed field.
            if depth == 16 { return Int(row[2 * i]) }
            let bit = i * depth
            return Int(row[bit >> 3] >> UInt8(8 - depth - (bit & 7))) & ((1 << depth) - 1)
        }
        let scale = depth < 8 ? 255 / ((1 << depth) - 1) : 1
        for x in 0..<count {
            switch h.colorType {
            case 3:
                let e = pal + 3 * sample(x)
                q[0] = e[0]; q[1] = e[1]; q[2] = e[2]
            case 0, 4:
                let v = UInt8(truncatingIfNeeded: sample(x * ch) * scale)
                q[0] = v; q[1] = v; q[2] = v
            default:
                q[0] = UInt8(truncatingIfNeeded: sample(x * ch))
                q[1] = UInt8(truncatingIfNeeded: sample(x * ch + 1))
                q[2] = UInt8(truncatingIfNeeded: sample(x * ch + 2))
            }
            q += step
        }
    }

    private static func be32(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
    }

    private static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// CRC-32 as used by PNG chunks.
    static func crc32(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        crcTable.withUnsafeBufferPointer { t in
            for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        }
        return c ^ 0xFFFF_FFFF
    }

    private static func bad(_ reason: String) -> FaceEmbedError { .invalidImage(file: nil, reason: reason) }
}

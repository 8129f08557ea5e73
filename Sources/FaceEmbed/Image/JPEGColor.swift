// JPEGColor.swift — the colour conversions after upsampling: libjpeg's into its output colour space, then Pillow's
// CMYK → RGB for 4-component files.
//
// Layout:
//   JPEGColor.gray / rgb / ycc   1 plane → R=G=B; 3 planes copied; JFIF YCbCr → RGB with libjpeg's tables
//   JPEGColor.cmyk               4 planes (CMYK, or YCCK turned into CMYK by libjpeg) → RGB as Pillow does it
//   YCbCr.tables                 libjpeg's fixed-point YCbCr → RGB tables (16 fractional bits)
//
// Pillow and 4-component JPEGs: libjpeg delivers CMYK (YCCK: C, M, Y = 255 − the YCbCr → RGB result of the first
// three components, K unchanged); Pillow reads it with raw mode "CMYK;I" (inverted: Adobe's polarity, assumed
// for every CMYK JPEG) and `convert("RGB")` computes, per channel, R = (255 − K') − (C' · (255 − K') / 255) with
// C' = 255 − C, K' = 255 − K and the division as round-to-nearest ((t + (t >> 8)) >> 8 of t = a·b + 128). So
// R = K − C'·K/255: for YCCK, C' is the clamped YCbCr → RGB value itself.

/// Conversions of full-resolution component planes (each `out.count / 3` samples) into interleaved RGB.
enum JPEGColor {
    static func gray(_ y: [UInt8], into o: UnsafeMutableBufferPointer<UInt8>) {
        for i in 0..<(o.count / 3) { let v = y[i]; o[3 * i] = v; o[3 * i + 1] = v; o[3 * i + 2] = v }
    }

    static func rgb(_ r: [UInt8], _ g: [UInt8], _ b: [UInt8], into o: UnsafeMutableBufferPointer<UInt8>) {
        for i in 0..<(o.count / 3) { o[3 * i] = r[i]; o[3 * i + 1] = g[i]; o[3 * i + 2] = b[i] }
    }

    static func ycc(_ y: [UInt8], _ cb: [UInt8], _ cr: [UInt8], into o: UnsafeMutableBufferPointer<UInt8>) {
        let t = YCbCr.tables
        y.withUnsafeBufferPointer { a in
            cb.withUnsafeBufferPointer { b in
                cr.withUnsafeBufferPointer { c in
                    let n = o.count / 3
                    guard var out = o.baseAddress, a.count >= n, b.count >= n, c.count >= n else { return }
                    for i in 0..<n {
                        let rgb = t.rgb(a[i], b[i], c[i])
                        out[0] = rgb.0; out[1] = rgb.1; out[2] = rgb.2
                        out += 3
                    }
                }
            }
        }
    }

    static func cmyk(
        _ p0: [UInt8], _ p1: [UInt8], _ p2: [UInt8], _ k: [UInt8], ycck: Bool,
        into o: UnsafeMutableBufferPointer<UInt8>
    ) {
        let t = YCbCr.tables
        for i in 0..<(o.count / 3) {
            // Pillow's C', M', Y' (the inverted CMYK): for YCCK, the YCbCr → RGB result; for CMYK, 255 − sample.
            let inv = ycck ? t.rgb(p0[i], p1[i], p2[i]) : (255 - p0[i], 255 - p1[i], 255 - p2[i])
            let nk = Int(k[i])
            o[3 * i] = UInt8(nk - mulDiv255(Int(inv.0), nk))
            o[3 * i + 1] = UInt8(nk - mulDiv255(Int(inv.1), nk))
            o[3 * i + 2] = UInt8(nk - mulDiv255(Int(inv.2), nk))
        }
    }

    /// a·b/255 rounded to nearest, as Pillow's MULDIV255; at most `b` for a, b in 0...255.
    @inline(__always)
    private static func mulDiv255(_ a: Int, _ b: Int) -> Int {
        let t = a * b + 128
        return ((t >> 8) + t) >> 8
    }
}

/// libjpeg's fixed-point YCbCr → RGB tables (16 fractional bits, JFIF full range).
enum YCbCr {
    struct Tables {
        var crR = [Int32](repeating: 0, count: 256)
        var cbB = [Int32](repeating: 0, count: 256)
        var crG = [Int32](repeating: 0, count: 256)
        var cbG = [Int32](repeating: 0, count: 256)
        /// Clamps `v` to 0...255 when indexed by `v + 384` (v in -384..<640).
        var limit = [UInt8](repeating: 0, count: 1024)

        /// One pixel's RGB; every sum lies in -227...480, so the offset index is in 157...864.
        @inline(__always)
        func rgb(_ y: UInt8, _ cb: UInt8, _ cr: UInt8) -> (UInt8, UInt8, UInt8) {
            let y = Int32(y), cb = Int(cb), cr = Int(cr)
            return (
                limit[Int(y &+ crR[cr]) &+ 384], limit[Int(y &+ ((cbG[cb] &+ crG[cr]) >> 16)) &+ 384],
                limit[Int(y &+ cbB[cb]) &+ 384]
            )
        }
    }

    static let tables: Tables = {
        func fix(_ x: Double) -> Int32 { Int32(x * 65536 + 0.5) }
        let half: Int32 = 1 << 15
        var t = Tables()
        for i in 0..<256 {
            let x = Int32(i) - 128
            t.crR[i] = (fix(1.40200) * x + half) >> 16
            t.cbB[i] = (fix(1.77200) * x + half) >> 16
            t.crG[i] = -fix(0.71414) * x
            t.cbG[i] = -fix(0.34414) * x + half
        }
        for i in 0..<1024 { t.limit[i] = UInt8(min(max(i - 384, 0), 255)) }
        return t
    }()
}

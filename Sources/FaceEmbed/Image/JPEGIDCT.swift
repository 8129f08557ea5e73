// JPEGIDCT.swift — the accurate integer 8×8 inverse DCT of libjpeg's default (islow) method.
//
// Layout:
//   JPEGIDCT.islow   dequantized coefficients (natural order, Int32) → 8×8 samples at a row pitch; columns then rows,
//                    13-bit constants and 2 extra bits between the passes (Loeffler–Ligtenberg–Moschytz)

/// The accurate integer inverse DCT (the "islow" method): separable 1-D LLM transforms, columns then rows,
/// 13-bit fixed-point constants, 2 extra fraction bits kept between the passes, output level-shifted by 128
/// and clamped.
enum JPEGIDCT {
    private static let constBits = 13, pass1Bits = 2
    private static let f0_298631336 = 2446, f0_390180644 = 3196, f0_541196100 = 4433, f0_765366865 = 6270
    private static let f0_899976223 = 7373, f1_175875602 = 9633, f1_501321110 = 12299, f1_847759065 = 15137
    private static let f1_961570560 = 16069, f2_053119869 = 16819, f2_562915447 = 20995, f3_072711026 = 25172

    /// Transforms the dequantized coefficients in `coef` (natural order; cleared on return) into 8×8 samples at
    /// `out` with row pitch `stride`. `last` is the last zigzag index that may be non-zero.
    @inline(__always)
    static func islow(
        _ coef: UnsafeMutablePointer<Int32>, last: Int, work: UnsafeMutablePointer<Int>,
        out: UnsafeMutablePointer<UInt8>, stride: Int
    ) {
        if last == 0 {
            // DC only: both passes reduce to a rounded division by 8.
            let v = clampSample(((Int(coef[0]) + 4) >> 3) + 128)
            coef[0] = 0
            for y in 0..<8 {
                let row = out + y * stride
                for x in 0..<8 { row[x] = v }
            }
            return
        }
        // Pass 1: columns, into `work` scaled up by 2^pass1Bits.
        for col in 0..<8 {
            let c = coef + col
            if c[8] == 0 && c[16] == 0 && c[24] == 0 && c[32] == 0 && c[40] == 0 && c[48] == 0 && c[56] == 0 {
                let dc = Int(c[0]) << pass1Bits
                for r in 0..<8 { work[r * 8 + col] = dc }
                continue
            }
            let r = oneD(Int(c[0]), Int(c[8]), Int(c[16]), Int(c[24]), Int(c[32]), Int(c[40]), Int(c[48]), Int(c[56]))
            let shift = constBits - pass1Bits, round = 1 << (shift - 1)
            work[col] = (r.0 + round) >> shift
            work[8 + col] = (r.1 + round) >> shift
            work[16 + col] = (r.2 + round) >> shift
            work[24 + col] = (r.3 + round) >> shift
            work[32 + col] = (r.4 + round) >> shift
            work[40 + col] = (r.5 + round) >> shift
            work[48 + col] = (r.6 + round) >> shift
            work[56 + col] = (r.7 + round) >> shift
        }
        for i in 0..<64 { coef[i] = 0 }
        // Pass 2: rows, descaled by 2^(constBits + pass1Bits + 3), level-shifted and clamped.
        let shift = constBits + pass1Bits + 3, round = 1 << (shift - 1)
        for row in 0..<8 {
            let w = work + row * 8
            let o = out + row * stride
            let r = oneD(w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7])
            o[0] = clampSample(((r.0 + round) >> shift) + 128)
            o[1] = clampSample(((r.1 + round) >> shift) + 128)
            o[2] = clampSample(((r.2 + round) >> shift) + 128)
            o[3] = clampSample(((r.3 + round) >> shift) + 128)
            o[4] = clampSample(((r.4 + round) >> shift) + 128)
            o[5] = clampSample(((r.5 + round) >> shift) + 128)
            o[6] = clampSample(((r.6 + round) >> shift) + 128)
            o[7] = clampSample(((r.7 + round) >> shift) + 128)
        }
    }

    /// One 8-point LLM inverse transform with outputs scaled by 2^constBits (before descaling).
    @inline(__always)
    private static func oneD(_ i0: Int, _ i1: Int, _ i2: Int, _ i3: Int, _ i4: Int, _ i5: Int, _ i6: Int, _ i7: Int)
        -> (Int, Int, Int, Int, Int, Int, Int, Int)
    {
        // Even part: the rotation of inputs 2 and 6, and the butterflies of 0 and 4.
        let z1 = (i2 + i6) * f0_541196100
        let t2 = z1 - i6 * f1_847759065
        let t3 = z1 + i2 * f0_765366865
        let t0 = (i0 + i4) << constBits
        let t1 = (i0 - i4) << constBits
        let e10 = t0 + t3, e13 = t0 - t3, e11 = t1 + t2, e12 = t1 - t2
        // Odd part: inputs 7, 5, 3, 1.
        let za = i7 + i1, zb = i5 + i3, zc = i7 + i3, zd = i5 + i1
        let z5 = (zc + zd) * f1_175875602
        let ma = -za * f0_899976223, mb = -zb * f2_562915447
        let mc = -zc * f1_961570560 + z5, md = -zd * f0_390180644 + z5
        let o0 = i7 * f0_298631336 + ma + mc
        let o1 = i5 * f2_053119869 + mb + md
        let o2 = i3 * f3_072711026 + mb + mc
        let o3 = i1 * f1_501321110 + ma + md
        return (e10 + o3, e11 + o2, e12 + o1, e13 + o0, e13 - o0, e12 - o1, e11 - o2, e10 - o3)
    }

    @inline(__always)
    private static func clampSample(_ v: Int) -> UInt8 { UInt8(truncatingIfNeeded: min(max(v, 0), 255)) }
}

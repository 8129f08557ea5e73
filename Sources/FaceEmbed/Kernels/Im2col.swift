// im2col: the B matrix of a convolution as an implicit GEMM (ConvolutionGEMM.swift), K = inC·kH·kW rows by output
// pixels, row (ic · kH + ky) · kW + kx holding each pixel's tap input[ic][oy·sH − padH + ky][ox·sW − padW + kx],
// zero in the padding, mapped through the optional input affine (in-bounds taps only).
//
//   im2col      rows × a band of pixels, in memory at stride band (AVX-512 builds' `.im2colGEMM`)
//   packPanel   all rows × one 16-pixel panel, packed[k][16] (other builds' `.packedGEMM`)

/// Output pixels per im2col band when `convolution` builds an im2col (AVX-512 builds, not an unpadded 1×1), else 0.
/// Gathering each 16-pixel panel tap by tap (`packPanel`) costs more than the micro-kernel calls that use it, while
/// whole rows of a tap are contiguous or stride-2 runs. The whole image when the im2col takes at most 4 MB:
/// `gemmConvolution16` then runs each block of weights over all panels, reading the weights from memory once rather
/// than once per panel (ResNet100's stride-2 3×3 layers on small maps). Otherwise bands of whole panels whose im2col
/// takes at most 1 MB, so that a band is still in L2 when the GEMM reads it (ResNet100's 64×112×112 → 56×56 layer,
/// 7 MB as one im2col: 4.7 → 2.9 ms; SCRFD's 3×640×640 → 16×320×320 stem, 11 MB as one).
func im2colPixels(_ g: ConvGeometry) -> Int {
    #if FACEEMBED_AVX512
    if g.isPointwise { return 0 }
    if g.k * g.pixels <= 1 << 20 { return g.pixels }
    return max(gemmNR, (1 << 18) / g.k / gemmNR * gemmNR)
    #else
    return 0
    #endif
}

/// Builds rows `rows` of B = im2col(input) for output pixels `pixels`, K × pixels.count at stride `pixels.count`:
/// row (ic · kH + ky) · kW + kx holds, for each of those pixels, the tap
/// input[ic][oy · strideH − padH + ky][ox · strideW − padW + kx] mapped through `affine`, zero in the padding.
/// Within one output row the in-bounds taps of a row of B are a contiguous run of the input (stride 1) or every
/// other float of one (stride 2, a deinterleave of 32 loaded floats), so they are copied 16 at a time.
func im2col(
    _ g: ConvGeometry, input: UnsafePointer<Float>, affine: InputAffine?, rows: Range<Int>,
    pixels: Range<Int>, into b: UnsafeMutablePointer<Float>
) {
    typealias V = SIMD16<Float>
    let taps = g.kH * g.kW, sW = g.strideW
    guard !pixels.isEmpty else { return }
    let firstRow = pixels.lowerBound / g.outW, lastRow = (pixels.upperBound - 1) / g.outW
    for row in rows {
        let ic = row / taps, ky = row % taps / g.kW, kx = row % g.kW
        let plane = input + ic * g.inH * g.inW
        let mul = affine?.scale[ic] ?? 1, add = affine?.shift[ic] ?? 0
        // Output columns lo..<hi read inside the input row: ix = ox · sW − padW + kx in 0..<inW.
        let first = g.padW - kx, last = g.inW - 1 + g.padW - kx
        let lo = min(g.outW, max(0, (first + sW - 1) / sW))
        let hi = last < 0 ? lo : max(lo, min(g.outW, last / sW + 1))
        for oy in firstRow...lastRow {
            // Output columns x0..<x1 of this row are in the band; dst[ox] is column ox.
            let x0 = max(0, pixels.lowerBound - oy * g.outW), x1 = min(g.outW, pixels.upperBound - oy * g.outW)
            let dst = b + row * pixels.count + oy * g.outW - pixels.lowerBound
            let iy = oy * g.strideH - g.padH + ky
            guard iy >= 0 && iy < g.inH else {
                (dst + x0).update(repeating: 0, count: x1 - x0)
                continue
            }
            let src = iy * g.inW - g.padW + kx  // input column of output column 0, relative to the plane
            let from = min(max(lo, x0), x1), to = min(max(hi, x0), x1)
            (dst + x0).update(repeating: 0, count: from - x0)
            (dst + to).update(repeating: 0, count: x1 - to)
            var ox = from
            // Whole vectors, then one more ending at `to` (it rewrites a few columns with the same values), so that
            // only rows under 8 (stride 2) or 16 columns wide take the scalar loop. Every load stays in the row.
            if sW == 1 && to - from >= 16 {
                while ox < to {
                    ox = min(ox, to - 16)
                    let v = loadVector(UnsafeRawPointer(plane + src + ox), as: V.self)
                    UnsafeMutableRawPointer(dst + ox).storeBytes(of: v * mul + add, as: V.self)
                    ox += 16
                }
            } else if sW == 2 && to - from >= 16 {
                while ox < to {
                    ox = min(ox, to - 16)
                    UnsafeMutableRawPointer(dst + ox).storeBytes(
                        of: evenFloats16(plane + src + 2 * ox) * mul + add,
                        as: V.self)
                    ox += 16
                }
            } else if sW == 2 && to - from >= 8 {
                let m8 = SIMD8<Float>(repeating: mul), a8 = SIMD8<Float>(repeating: add)
                while ox < to {
                    ox = min(ox, to - 8)
                    UnsafeMutableRawPointer(dst + ox).storeBytes(
                        of: evenFloats8(plane + src + 2 * ox) * m8 + a8,
                        as: SIMD8<Float>.self)
                    ox += 8
                }
            }
            while ox < to {
                dst[ox] = plane[src + ox * sW] * mul + add
                ox += 1
            }
        }
    }
}

/// Gathers B[k][n0 ..< n0 + nr] into `packed[k * 16 + j]`, zero-filling columns past `nr`.
@inline(__always)
func packPanel(
    _ g: ConvGeometry, input: UnsafePointer<Float>, affine: InputAffine?, n0: Int, nr: Int,
    into packed: UnsafeMutablePointer<Float>
) {
    if g.isPointwise && affine == nil {
        for k in 0..<g.k {
            let src = input + k * g.pixels + n0
            let dst = packed + k * gemmNR
            if nr == gemmNR {
                UnsafeMutableRawPointer(dst).storeBytes(
                    of: loadVector(UnsafeRawPointer(src), as: SIMD16<Float>.self),
                    as: SIMD16<Float>.self)
            } else {
                for j in 0..<nr { dst[j] = src[j] }
                for j in nr..<gemmNR { dst[j] = 0 }
            }
        }
        return
    }
    // Per tap (ky, kx) and lane j: the input offset it reads and whether it is in bounds. Computed once per panel
    // (the same for every input channel); lanes out of bounds (padding, or past `nr`) read offset 0 and are then
    // replaced by zero, so the channel loop below is branch-free and never reads outside the plane.
    let taps = g.kH * g.kW
    withUnsafeTemporaryAllocation(of: Int32.self, capacity: taps * gemmNR) { offs in
        withUnsafeTemporaryAllocation(of: SIMD16<Float>.self, capacity: taps) { inside in
            let offs = offs.baseAddress!, inside = inside.baseAddress!
            for t in 0..<taps { inside[t] = SIMD16<Float>() }
            for j in 0..<gemmNR {
                let p = n0 + j
                let iy0 = (p / g.outW) * g.strideH - g.padH, ix0 = (p % g.outW) * g.strideW - g.padW
                for ky in 0..<g.kH {
                    for kx in 0..<g.kW {
                        let t = ky * g.kW + kx, iy = iy0 + ky, ix = ix0 + kx
                        let ok = j < nr && iy >= 0 && iy < g.inH && ix >= 0 && ix < g.inW
                        offs[t * gemmNR + j] = ok ? Int32(iy * g.inW + ix) : 0
                        if ok { inside[t][j] = 1 }
                    }
                }
            }
            var dst = packed
            for ic in 0..<g.inC {
                let plane = input + ic * g.inH * g.inW
                let mul = affine?.scale[ic] ?? 1, add = affine?.shift[ic] ?? 0
                for t in 0..<taps {
                    let o = offs + t * gemmNR
                    var v = SIMD16<Float>()
                    for j in 0..<gemmNR { v[j] = plane[Int(o[j])] }
                    if affine != nil { v = v * mul + add }
                    v.replace(with: 0, where: inside[t] .== 0)
                    UnsafeMutableRawPointer(dst).storeBytes(of: v, as: SIMD16<Float>.self)
                    dst += gemmNR
                }
            }
        }
    }
}

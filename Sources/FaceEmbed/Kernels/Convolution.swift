// Convolution (groups = 1) as an implicit GEMM, one image at a time.
//
//   C[M × N] = A[M × K] · B[K × N]     M = outC, K = inC·kh·kw, N = outH·outW
//   A = weights, lane-packed (Weights/WeightLayout.swift): a[blk][k][16], used in place from the mapped file.
//   B = im2col of the input, in general not materialised: a panel of NR = 16 output pixels × K is gathered into a
//       contiguous scratch buffer (zero where the tap falls in the padding), then reused by every row tile.
//   Micro-kernel (`gemmTile`): AVX-512 builds 16 output channels × 16 pixels in 16 zmm accumulators; other builds
//       6 × 16 in 12 SIMD8 accumulators, three row tiles (rows 0, 6, 12) per block of 16 channels.
//   AVX-512 builds: B is a K × N matrix in memory, read in place (`gemmConvolution16`): the input itself for an
//       unpadded 1×1 convolution without input affine, otherwise an im2col, of the whole image when it is small
//       (`im2colPixels`), else of one band of pixels at a time; full panels apply the epilogue in registers, a
//       partial last panel runs a narrow kernel of 16 channels × up to 4 pixels.
//
// Optional `inputAffine` maps every in-bounds tap x of input channel c to x · scale[c] + shift[c] while packing
// (or building the im2col): a batch norm that precedes the convolution, exact at the borders, where the padding
// stays zero. Work is split across threads by pixel panels, or by row tiles (AVX-512 path: blocks of 16 output
// channels) when that balances better.

/// Geometry of one convolution on one image.
package struct ConvGeometry: Equatable, Sendable {
    package var inC: Int, inH: Int, inW: Int
    package var outC: Int, outH: Int, outW: Int
    package var kH: Int, kW: Int, strideH: Int, strideW: Int, padH: Int, padW: Int
    package var groups: Int

    /// Output size for the given input, kernel, stride and padding (MXNet's floor rule).
    package init(inC: Int, inH: Int, inW: Int, outC: Int, kH: Int, kW: Int, strideH: Int, strideW: Int,
         padH: Int, padW: Int, groups: Int) {
        self.inC = inC; self.inH = inH; self.inW = inW; self.outC = outC
        self.kH = kH; self.kW = kW; self.strideH = strideH; self.strideW = strideW
        self.padH = padH; self.padW = padW; self.groups = groups
        outH = (inH + 2 * padH - kH) / strideH + 1
        outW = (inW + 2 * padW - kW) / strideW + 1
    }

    /// Rows of the implicit GEMM's B matrix (per group).
    package var k: Int { inC / groups * kH * kW }
    /// Output pixels.
    package var pixels: Int { outH * outW }
    /// True for a 1×1, stride-1, unpadded convolution, whose B matrix is the input itself.
    package var isPointwise: Bool { kH == 1 && kW == 1 && strideH == 1 && strideW == 1 && padH == 0 && padW == 0 }
    /// Multiply-adds for one image.
    package var macs: Int { outC * pixels * k }
}

/// A per-input-channel affine map applied to in-bounds taps (a batch norm before a padded convolution).
struct InputAffine {
    var scale: UnsafePointer<Float>
    var shift: UnsafePointer<Float>
}

/// Pixel-panel width of the GEMM micro-kernel.
let gemmNR = 16
#if FACEEMBED_AVX512
/// Output channels per micro-kernel call: a whole block of lane-packed weights.
let gemmMR = 16
#else
/// Output channels per micro-kernel call: three calls (rows 0, 6, 12) cover a block of lane-packed weights.
let gemmMR = 6
#endif
/// Micro-kernel row tiles per block of `weightLanes` output channels.
let gemmTilesPerBlock = (weightLanes + gemmMR - 1) / gemmMR

/// Output pixels per im2col band when `convolution` builds an im2col (AVX-512 builds, not an unpadded 1×1), else 0.
/// Gathering each 16-pixel panel tap by tap (`packPanel`) costs more than the micro-kernel calls that use it, while
/// whole rows of a tap are contiguous or stride-2 runs. The whole image when K ≤ 64 or the im2col takes at most
/// 4 MB: `gemmConvolution16` then runs each block of weights over all panels, reading the weights from memory once
/// rather than once per panel (ResNet100's stride-2 3×3 layers on small maps). Otherwise bands of whole panels
/// whose im2col takes at most 1 MB, so that a band is still in L2 when the GEMM reads it (ResNet100's
/// 64×112×112 → 56×56 layer, 7 MB as one im2col: 4.7 → 2.9 ms).
func im2colPixels(_ g: ConvGeometry) -> Int {
    #if FACEEMBED_AVX512
    if g.isPointwise { return 0 }
    if g.k <= 64 || g.k * g.pixels <= 1 << 20 { return g.pixels }
    return max(gemmNR, (1 << 18) / g.k / gemmNR * gemmNR)
    #else
    return 0
    #endif
}

/// Scratch floats one thread needs to run `convolution` on `g`: a packed B panel and one C tile; with an im2col,
/// one band of it (used by all threads, from the start of the scratch) and one C tile.
func convolutionScratch(_ g: ConvGeometry) -> Int {
    let band = im2colPixels(g)
    return band > 0 ? (g.k * band + 15) / 16 * 16 + gemmMR * gemmNR : g.k * gemmNR + gemmMR * gemmNR
}

/// C[rows][16] (row stride ldc) = A · B[k][16 at stride ldb], A lane-packed (row r of the tile at a[k · aStride + r]).
/// `rows` ≤ gemmMR; only those rows are stored. `spread` lines are requested along the way.
@inline(__always)
func gemmTile(a: UnsafePointer<Float>, aStride: Int, b: UnsafePointer<Float>, ldb: Int, k: Int,
              c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, spread: PrefetchSpread = .none) {
    #if FACEEMBED_AVX512
    gemmKernel16x16(a: a, aStride: aStride, b: b, ldb: ldb, k: k, c: c, ldc: ldc, rows: rows, spread: spread)
    #else
    gemmKernel6x16(a: a, aStride: aStride, b: b, ldb: ldb, k: k, c: c, ldc: ldc, rows: rows, spread: spread)
    #endif
}

/// Row tile `t` of a convolution with `outC` output channels: its first channel, its offset into lane-packed
/// weights (relative to the block array, K = `k`), and its row count (0 for a tile wholly past `outC`).
@inline(__always)
func gemmRowTile(_ t: Int, outC: Int, k: Int) -> (m0: Int, aOffset: Int, rows: Int) {
    let blk = t / gemmTilesPerBlock, r0 = (t % gemmTilesPerBlock) * gemmMR
    let m0 = blk * weightLanes + r0
    return (m0, blk * k * weightLanes + r0, max(0, min(gemmMR, weightLanes - r0, outC - m0)))
}

/// C[rows][cols] (row stride ldc) = A · B[k][cols at stride ldb] for 1 ≤ cols ≤ 4, A lane-packed (one block's 16
/// output channels at a[k · aStride], aStride ≥ 16): one vector of 16 channels per k times each pixel's broadcast
/// value, so a panel with few pixels (or Winograd tiles) costs no more than they do. Two accumulators per pixel
/// (even and odd k) keep 8 FMA chains in flight; pixels past `cols` reread the last one and are discarded.
@inline(__always)
func gemmKernel16x4(a: UnsafePointer<Float>, aStride: Int = weightLanes, b: UnsafePointer<Float>, ldb: Int, k: Int,
                    cols: Int, c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int) {
    typealias V = SIMD16<Float>
    let j1 = min(1, cols - 1), j2 = min(2, cols - 1), j3 = min(3, cols - 1)
    var p0 = V(), p1 = V(), p2 = V(), p3 = V(), q0 = V(), q1 = V(), q2 = V(), q3 = V()
    let araw = UnsafeRawPointer(a), aBytes = aStride * 4
    for kp in 0..<(k / 2) {
        let kk = 2 * kp
        let a0 = araw.loadUnaligned(fromByteOffset: kk * aBytes, as: V.self)
        let a1 = araw.loadUnaligned(fromByteOffset: kk * aBytes + aBytes, as: V.self)
        let b0 = b + kk * ldb, b1 = b0 + ldb
        multiplyAdd(&p0, a0, V(repeating: b0[0])); multiplyAdd(&p1, a0, V(repeating: b0[j1]))
        multiplyAdd(&p2, a0, V(repeating: b0[j2])); multiplyAdd(&p3, a0, V(repeating: b0[j3]))
        multiplyAdd(&q0, a1, V(repeating: b1[0])); multiplyAdd(&q1, a1, V(repeating: b1[j1]))
        multiplyAdd(&q2, a1, V(repeating: b1[j2])); multiplyAdd(&q3, a1, V(repeating: b1[j3]))
    }
    if k % 2 == 1 {
        let a0 = araw.loadUnaligned(fromByteOffset: (k - 1) * aBytes, as: V.self), b0 = b + (k - 1) * ldb
        multiplyAdd(&p0, a0, V(repeating: b0[0])); multiplyAdd(&p1, a0, V(repeating: b0[j1]))
        multiplyAdd(&p2, a0, V(repeating: b0[j2])); multiplyAdd(&p3, a0, V(repeating: b0[j3]))
    }
    p0 += q0; p1 += q1; p2 += q2; p3 += q3
    // Pixel j's accumulator holds channel r in lane r: store it transposed, as column j of C.
    for r in 0..<rows {
        let o = c + r * ldc
        o[0] = p0[r]
        if cols > 1 { o[1] = p1[r] }
        if cols > 2 { o[2] = p2[r] }
        if cols > 3 { o[3] = p3[r] }
    }
}

#if FACEEMBED_AVX512
/// Pixel panels per group in `gemmConvolution16`. Applying one block of weights to a group of panels before the next
/// block reads each block once per group rather than once per panel, and writes each output channel in runs of 1 KB
/// rather than 64 bytes (the 64×56×56 → 128 layer: 0.75 → 0.52 ms); the group's B, K × 256 floats, stays in L2.
let gemmPanelGroup = 16

/// AVX-512 builds: the GEMM for output pixels `pixels` (all by default) from a B matrix that is in memory, K rows of
/// those pixels at stride `ldb` (the input itself for an unpadded 1×1 convolution, else an im2col band built by
/// `im2col`). Full panels read B in place; the last, partial panel goes through `gemmKernel16x4`, whose cost follows
/// its pixel count (a 16-pixel micro-kernel call there would waste up to 15/16 of its work: 49 = 3·16 + 1 pixels on
/// a 7×7 map).
/// Each block of weights runs over a group of `gemmPanelGroup` panels in turn. `tiles` holds `threads` C tiles of
/// 16 × 16 floats.
func gemmConvolution16(_ g: ConvGeometry, pixels: Range<Int>? = nil, b: UnsafePointer<Float>, ldb: Int,
                       weights: UnsafePointer<Float>, epilogue: Epilogue, output: UnsafeMutablePointer<Float>,
                       tiles: UnsafeMutablePointer<Float>, threads: Int) {
    let base = pixels?.lowerBound ?? 0, n = pixels?.count ?? g.pixels, k = g.k
    let panels = (n + gemmNR - 1) / gemmNR
    let blocks = g.weightBlocks
    // Split by pixel panels, unless splitting by blocks of output channels gives the busiest thread clearly less
    // work (in pixels × blocks, by more than 1/8; each thread then reads all of B): on a 7×7 map, 3 panels and a
    // 1-pixel tail split 2 : 1 by panels, while 8 blocks split 4 : 4 (2 threads: 0.037 → 0.033 ms for 512 → 128).
    let split = min(threads, max(panels, blocks))
    let busiestPanels = (0..<split).lazy.map { chunk(panels, parts: split, index: $0) }
        .map { min(n, $0.upperBound * gemmNR) - min(n, $0.lowerBound * gemmNR) }.max() ?? 0
    let byPanels = busiestPanels * blocks * 8 <= (blocks + split - 1) / split * n * 9
    let parts = max(1, min(split, byPanels ? panels : blocks))
    parallelFor(parts, threads: threads) { part in
        let tile = tiles + part * weightLanes * gemmNR
        let panelRange = byPanels ? chunk(panels, parts: parts, index: part) : 0..<panels
        let blockRange = byPanels ? 0..<blocks : chunk(blocks, parts: parts, index: part)
        for g0 in stride(from: panelRange.lowerBound, to: panelRange.upperBound, by: gemmPanelGroup) {
            let group = g0..<min(g0 + gemmPanelGroup, panelRange.upperBound)
            for t in blockRange {
                let m0 = t * weightLanes, rows = min(weightLanes, g.outC - m0), a = weights + t * k * weightLanes
                for panel in group {
                    let n0 = panel * gemmNR, nr = min(gemmNR, n - n0)
                    if nr == gemmNR {
                        gemmKernel16x16Epilogue(a: a, b: b + n0, ldb: ldb, k: k, epilogue: epilogue, m0: m0, rows: rows,
                                                output: output, ldo: g.pixels, n0: base + n0)
                        continue
                    }
                    for j0 in stride(from: 0, to: nr, by: 4) {
                        gemmKernel16x4(a: a, b: b + n0 + j0, ldb: ldb, k: k, cols: min(4, nr - j0), c: tile + j0,
                                       ldc: gemmNR, rows: rows)
                    }
                    for r in 0..<rows {
                        epilogue.apply(channel: m0 + r, acc: tile + r * gemmNR, out: output,
                                       offset: (m0 + r) * g.pixels + base + n0, count: nr)
                    }
                }
            }
        }
    }
}

/// Builds rows `rows` of B = im2col(input) for output pixels `pixels`, K × pixels.count at stride `pixels.count`:
/// row (ic · kH + ky) · kW + kx holds, for each of those pixels, the tap
/// input[ic][oy · strideH − padH + ky][ox · strideW − padW + kx] mapped through `affine`, zero in the padding.
/// Within one output row the in-bounds taps of a row of B are a contiguous run of the input (stride 1) or every
/// other float of one (stride 2, a deinterleave of 32 loaded floats), so they are copied 16 at a time.
func im2col(_ g: ConvGeometry, input: UnsafePointer<Float>, affine: InputAffine?, rows: Range<Int>,
            pixels: Range<Int>, into b: UnsafeMutablePointer<Float>) {
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
                    let v = UnsafeRawPointer(plane + src + ox).loadUnaligned(as: V.self)
                    UnsafeMutableRawPointer(dst + ox).storeBytes(of: v * mul + add, as: V.self)
                    ox += 16
                }
            } else if sW == 2 && to - from >= 16 {
                while ox < to {
                    ox = min(ox, to - 16)
                    UnsafeMutableRawPointer(dst + ox).storeBytes(of: evenFloats16(plane + src + 2 * ox) * mul + add,
                                                                 as: V.self)
                    ox += 16
                }
            } else if sW == 2 && to - from >= 8 {
                let m8 = SIMD8<Float>(repeating: mul), a8 = SIMD8<Float>(repeating: add)
                while ox < to {
                    ox = min(ox, to - 8)
                    UnsafeMutableRawPointer(dst + ox).storeBytes(of: evenFloats8(plane + src + 2 * ox) * m8 + a8,
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

/// Output channels m0 ..< m0 + rows of 16 pixels: A · B[k][16 at stride ldb] as in `gemmKernel16x16` (A one block of
/// lane-packed weights), with the epilogue applied to the accumulators in registers and channel c's 16 values stored
/// straight to output[c · ldo + n0 ..]: no C tile is stored and reloaded, which matters most for a short K.
@inline(__always)
func gemmKernel16x16Epilogue(a: UnsafePointer<Float>, b: UnsafePointer<Float>, ldb: Int, k: Int, epilogue: Epilogue,
                             m0: Int, rows: Int, output: UnsafeMutablePointer<Float>, ldo: Int, n0: Int) {
    typealias V = SIMD16<Float>
    var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V(), c6 = V(), c7 = V()
    var c8 = V(), c9 = V(), c10 = V(), c11 = V(), c12 = V(), c13 = V(), c14 = V(), c15 = V()
    let braw = UnsafeRawPointer(b), bStride = ldb * 4
    for kk in 0..<k {
        let bv = braw.loadUnaligned(fromByteOffset: kk * bStride, as: V.self)
        let ak = a + kk * weightLanes
        multiplyAdd(&c0, V(repeating: ak[0]), bv); multiplyAdd(&c1, V(repeating: ak[1]), bv)
        multiplyAdd(&c2, V(repeating: ak[2]), bv); multiplyAdd(&c3, V(repeating: ak[3]), bv)
        multiplyAdd(&c4, V(repeating: ak[4]), bv); multiplyAdd(&c5, V(repeating: ak[5]), bv)
        multiplyAdd(&c6, V(repeating: ak[6]), bv); multiplyAdd(&c7, V(repeating: ak[7]), bv)
        multiplyAdd(&c8, V(repeating: ak[8]), bv); multiplyAdd(&c9, V(repeating: ak[9]), bv)
        multiplyAdd(&c10, V(repeating: ak[10]), bv); multiplyAdd(&c11, V(repeating: ak[11]), bv)
        multiplyAdd(&c12, V(repeating: ak[12]), bv); multiplyAdd(&c13, V(repeating: ak[13]), bv)
        multiplyAdd(&c14, V(repeating: ak[14]), bv); multiplyAdd(&c15, V(repeating: ak[15]), bv)
    }
    // The same steps as `Epilogue.apply`: bias, PReLU, residual.
    @inline(__always) func put(_ r: Int, _ x: V) {
        guard r < rows else { return }
        let ch = m0 + r, o = ch * ldo + n0
        var v = x + V(repeating: epilogue.bias[ch])
        if let s = epilogue.slope { v = v.replacing(with: v * s[ch], where: v .< 0) }
        if let res = epilogue.residual { v += UnsafeRawPointer(res + o).loadUnaligned(as: V.self) }
        UnsafeMutableRawPointer(output + o).storeBytes(of: v, as: V.self)
    }
    put(0, c0); put(1, c1); put(2, c2); put(3, c3); put(4, c4); put(5, c5); put(6, c6); put(7, c7)
    put(8, c8); put(9, c9); put(10, c10); put(11, c11); put(12, c12); put(13, c13); put(14, c14); put(15, c15)
}

/// C[rows][16] (row stride ldc) = A · B, A packed as a[k · aStride + r] (row r in lane r, aStride ≥ 16), B rows of
/// 16 at stride ldb: 16 zmm accumulators, one B load and 16 broadcast-FMAs per k. Stores only `rows` rows.
/// `spread` lines are requested along the way.
@inline(__always)
func gemmKernel16x16(a: UnsafePointer<Float>, aStride: Int, b: UnsafePointer<Float>, ldb: Int, k: Int,
                     c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, spread: PrefetchSpread = .none) {
    typealias V = SIMD16<Float>
    var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V(), c6 = V(), c7 = V()
    var c8 = V(), c9 = V(), c10 = V(), c11 = V(), c12 = V(), c13 = V(), c14 = V(), c15 = V()
    let braw = UnsafeRawPointer(b), bStride = ldb * 4
    for kk in 0..<k {
        spread.step(kk)
        let bv = braw.loadUnaligned(fromByteOffset: kk * bStride, as: V.self)
        let ak = a + kk * aStride
        multiplyAdd(&c0, V(repeating: ak[0]), bv); multiplyAdd(&c1, V(repeating: ak[1]), bv)
        multiplyAdd(&c2, V(repeating: ak[2]), bv); multiplyAdd(&c3, V(repeating: ak[3]), bv)
        multiplyAdd(&c4, V(repeating: ak[4]), bv); multiplyAdd(&c5, V(repeating: ak[5]), bv)
        multiplyAdd(&c6, V(repeating: ak[6]), bv); multiplyAdd(&c7, V(repeating: ak[7]), bv)
        multiplyAdd(&c8, V(repeating: ak[8]), bv); multiplyAdd(&c9, V(repeating: ak[9]), bv)
        multiplyAdd(&c10, V(repeating: ak[10]), bv); multiplyAdd(&c11, V(repeating: ak[11]), bv)
        multiplyAdd(&c12, V(repeating: ak[12]), bv); multiplyAdd(&c13, V(repeating: ak[13]), bv)
        multiplyAdd(&c14, V(repeating: ak[14]), bv); multiplyAdd(&c15, V(repeating: ak[15]), bv)
    }
    @inline(__always) func put(_ r: Int, _ x: V) {
        if r < rows { UnsafeMutableRawPointer(c + r * ldc).storeBytes(of: x, as: V.self) }
    }
    put(0, c0); put(1, c1); put(2, c2); put(3, c3); put(4, c4); put(5, c5); put(6, c6); put(7, c7)
    put(8, c8); put(9, c9); put(10, c10); put(11, c11); put(12, c12); put(13, c13); put(14, c14); put(15, c15)
}
#endif

/// Fast convolution with groups = 1 on one image (see the layout comment at the top of this file).
/// `scratch` holds `threads` blocks of `convolutionScratch(g)` floats.
func convolution(_ g: ConvGeometry, input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                 inputAffine: InputAffine?, epilogue: Epilogue, output: UnsafeMutablePointer<Float>,
                 scratch: UnsafeMutablePointer<Float>, threads: Int) {
    #if FACEEMBED_AVX512
    if inputAffine == nil && g.isPointwise {
        gemmConvolution16(g, b: input, ldb: g.pixels, weights: weights, epilogue: epilogue, output: output,
                          tiles: scratch, threads: threads)
        return
    }
    let band = im2colPixels(g)
    if band > 0 {
        let k = g.k, parts = max(1, min(threads, k))
        for p0 in stride(from: 0, to: g.pixels, by: band) {
            let pixels = p0..<min(p0 + band, g.pixels)
            parallelFor(parts, threads: threads) { part in
                im2col(g, input: input, affine: inputAffine, rows: chunk(k, parts: parts, index: part), pixels: pixels,
                       into: scratch)
            }
            gemmConvolution16(g, pixels: pixels, b: scratch, ldb: pixels.count, weights: weights, epilogue: epilogue,
                              output: output, tiles: scratch + (k * band + 15) / 16 * 16, threads: threads)
        }
        return
    }
    #endif
    let panels = (g.pixels + gemmNR - 1) / gemmNR
    let tiles = g.weightBlocks * gemmTilesPerBlock
    let perThread = convolutionScratch(g)
    // Split by pixel panels when there are enough of them to share; otherwise by row tiles.
    let byPanels = panels >= 2 * threads || tiles < 2 * threads
    let parts = max(1, min(threads, byPanels ? panels : tiles))
    parallelFor(parts, threads: threads) { part in
        let packed = scratch + part * perThread
        let tile = packed + g.k * gemmNR
        let panelRange = byPanels ? chunk(panels, parts: parts, index: part) : 0..<panels
        let tileRange = byPanels ? 0..<tiles : chunk(tiles, parts: parts, index: part)
        for panel in panelRange {
            let n0 = panel * gemmNR
            let nr = min(gemmNR, g.pixels - n0)
            packPanel(g, input: input, affine: inputAffine, n0: n0, nr: nr, into: packed)
            for t in tileRange {
                let (m0, aOffset, mr) = gemmRowTile(t, outC: g.outC, k: g.k)
                gemmTile(a: weights + aOffset, aStride: weightLanes, b: packed, ldb: gemmNR, k: g.k, c: tile, ldc: gemmNR,
                         rows: mr)
                for r in 0..<mr {
                    epilogue.apply(channel: m0 + r, acc: tile + r * gemmNR, out: output,
                                   offset: (m0 + r) * g.pixels + n0, count: nr)
                }
            }
        }
    }
}

/// Gathers B[k][n0 ..< n0 + nr] into `packed[k * 16 + j]`, zero-filling columns past `nr`.
@inline(__always)
func packPanel(_ g: ConvGeometry, input: UnsafePointer<Float>, affine: InputAffine?, n0: Int, nr: Int,
               into packed: UnsafeMutablePointer<Float>) {
    if g.isPointwise && affine == nil {
        for k in 0..<g.k {
            let src = input + k * g.pixels + n0
            let dst = packed + k * gemmNR
            if nr == gemmNR {
                UnsafeMutableRawPointer(dst).storeBytes(of: UnsafeRawPointer(src).loadUnaligned(as: SIMD16<Float>.self),
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
    }}
}

/// C[rows][16] (row stride ldc) = A · B[k][16 at stride ldb], A packed as a[k · aStride + r] (rows ≤ 6): 12 SIMD8
/// accumulators, two B loads and six broadcasts per k. Stores only `rows` rows. `spread` lines are requested
/// along the way.
@inline(__always)
func gemmKernel6x16(a: UnsafePointer<Float>, aStride: Int, b: UnsafePointer<Float>, ldb: Int, k: Int,
                    c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, spread: PrefetchSpread = .none) {
    typealias V = SIMD8<Float>
    var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V()
    var c30 = V(), c31 = V(), c40 = V(), c41 = V(), c50 = V(), c51 = V()
    let braw = UnsafeRawPointer(b), bStride = ldb * 4
    for kk in 0..<k {
        spread.step(kk)
        let b0 = braw.loadUnaligned(fromByteOffset: kk * bStride, as: V.self)
        let b1 = braw.loadUnaligned(fromByteOffset: kk * bStride + 32, as: V.self)
        let ak = a + kk * aStride
        var s = V(repeating: ak[0]); multiplyAdd(&c00, s, b0); multiplyAdd(&c01, s, b1)
        s = V(repeating: ak[1]); multiplyAdd(&c10, s, b0); multiplyAdd(&c11, s, b1)
        s = V(repeating: ak[2]); multiplyAdd(&c20, s, b0); multiplyAdd(&c21, s, b1)
        s = V(repeating: ak[3]); multiplyAdd(&c30, s, b0); multiplyAdd(&c31, s, b1)
        s = V(repeating: ak[4]); multiplyAdd(&c40, s, b0); multiplyAdd(&c41, s, b1)
        s = V(repeating: ak[5]); multiplyAdd(&c50, s, b0); multiplyAdd(&c51, s, b1)
    }
    @inline(__always) func put(_ r: Int, _ x: V, _ y: V) {
        guard r < rows else { return }
        let o = UnsafeMutableRawPointer(c + r * ldc)
        o.storeBytes(of: x, as: V.self); o.storeBytes(of: y, toByteOffset: 32, as: V.self)
    }
    put(0, c00, c01); put(1, c10, c11); put(2, c20, c21); put(3, c30, c31); put(4, c40, c41); put(5, c50, c51)
}

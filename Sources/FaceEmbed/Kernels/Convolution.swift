// Convolution (groups = 1) as an implicit GEMM, one image at a time.
//
//   C[M × N] = A[M × K] · B[K × N]     M = outC, K = inC·kh·kw, N = outH·outW
//   A = weights, lane-packed (Weights/WeightLayout.swift): a[blk][k][16], used in place from the mapped file.
//   B = im2col of the input, never materialised: a panel of NR = 16 output pixels × K is gathered into a
//       contiguous scratch buffer (zero where the tap falls in the padding), then reused by every row tile.
//   Micro-kernel (`gemmTile`): AVX-512 builds 16 output channels × 16 pixels in 16 zmm accumulators; other builds
//       6 × 16 in 12 SIMD8 accumulators, three row tiles (rows 0, 6, 12) per block of 16 channels.
//
// Optional `inputAffine` maps every in-bounds tap x of input channel c to x · scale[c] + shift[c] while packing:
// a batch norm that precedes the convolution, exact at the borders, where the padding stays zero.
// Work is split across threads by pixel panels, or by row tiles when there are too few panels.

/// Geometry of one convolution on one image.
struct ConvGeometry: Equatable, Sendable {
    var inC: Int, inH: Int, inW: Int
    var outC: Int, outH: Int, outW: Int
    var kH: Int, kW: Int, strideH: Int, strideW: Int, padH: Int, padW: Int
    var groups: Int

    /// Output size for the given input, kernel, stride and padding (MXNet's floor rule).
    init(inC: Int, inH: Int, inW: Int, outC: Int, kH: Int, kW: Int, strideH: Int, strideW: Int,
         padH: Int, padW: Int, groups: Int) {
        self.inC = inC; self.inH = inH; self.inW = inW; self.outC = outC
        self.kH = kH; self.kW = kW; self.strideH = strideH; self.strideW = strideW
        self.padH = padH; self.padW = padW; self.groups = groups
        outH = (inH + 2 * padH - kH) / strideH + 1
        outW = (inW + 2 * padW - kW) / strideW + 1
    }

    /// Rows of the implicit GEMM's B matrix (per group).
    var k: Int { inC / groups * kH * kW }
    /// Output pixels.
    var pixels: Int { outH * outW }
    /// True for a 1×1, stride-1, unpadded convolution, whose B matrix is the input itself.
    var isPointwise: Bool { kH == 1 && kW == 1 && strideH == 1 && strideW == 1 && padH == 0 && padW == 0 }
    /// Multiply-adds for one image.
    var macs: Int { outC * pixels * k }
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

/// Scratch floats one thread needs to run `convolution` on `g`: a packed B panel and one C tile.
func convolutionScratch(_ g: ConvGeometry) -> Int { g.k * gemmNR + gemmMR * gemmNR }

/// C[rows][16] (row stride ldc) = A · B[k][16 at stride ldb], A lane-packed (row r of the tile at a[k · aStride + r]).
/// `rows` ≤ gemmMR; only those rows are stored.
@inline(__always)
func gemmTile(a: UnsafePointer<Float>, aStride: Int, b: UnsafePointer<Float>, ldb: Int, k: Int,
              c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int) {
    #if FACEEMBED_AVX512
    gemmKernel16x16(a: a, aStride: aStride, b: b, ldb: ldb, k: k, c: c, ldc: ldc, rows: rows)
    #else
    gemmKernel6x16(a: a, aStride: aStride, b: b, ldb: ldb, k: k, c: c, ldc: ldc, rows: rows)
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

#if FACEEMBED_AVX512
/// AVX-512 builds run unpadded 1×1 convolutions without an input affine with B read straight from the input for
/// full panels (only the last, partial panel is copied).
func pointwiseConvolution16(_ g: ConvGeometry, input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                            epilogue: Epilogue, output: UnsafeMutablePointer<Float>,
                            scratch: UnsafeMutablePointer<Float>, threads: Int) {
    let n = g.pixels, k = g.k
    let panels = (n + gemmNR - 1) / gemmNR
    let tiles = g.weightBlocks
    let perThread = convolutionScratch(g)
    let byPanels = panels >= 2 * threads || tiles < 2 * threads
    let parts = max(1, min(threads, byPanels ? panels : tiles))
    parallelFor(parts, threads: threads) { part in
        let packedB = scratch + part * perThread
        let tile = packedB + k * gemmNR
        let panelRange = byPanels ? chunk(panels, parts: parts, index: part) : 0..<panels
        let tileRange = byPanels ? 0..<tiles : chunk(tiles, parts: parts, index: part)
        for panel in panelRange {
            let n0 = panel * gemmNR, nr = min(gemmNR, n - n0)
            let b: UnsafePointer<Float>, ldb: Int
            if nr == gemmNR {
                b = input + n0; ldb = n
            } else {
                packPanel(g, input: input, affine: nil, n0: n0, nr: nr, into: packedB)
                b = UnsafePointer(packedB); ldb = gemmNR
            }
            for t in tileRange {
                let m0 = t * 16, rows = min(16, g.outC - m0)
                gemmKernel16x16(a: weights + t * k * 16, aStride: 16, b: b, ldb: ldb, k: k, c: tile, ldc: 16, rows: 16)
                for r in 0..<rows {
                    epilogue.apply(channel: m0 + r, acc: tile + r * 16, out: output, offset: (m0 + r) * n + n0, count: nr)
                }
            }
        }
    }
}

/// C[rows][16] (row stride ldc) = A · B, A packed as a[k · aStride + r] (row r in lane r, aStride ≥ 16), B rows of
/// 16 at stride ldb: 16 zmm accumulators, one B load and 16 broadcast-FMAs per k. Stores only `rows` rows.
@inline(__always)
func gemmKernel16x16(a: UnsafePointer<Float>, aStride: Int, b: UnsafePointer<Float>, ldb: Int, k: Int,
                     c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int) {
    typealias V = SIMD16<Float>
    var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V(), c6 = V(), c7 = V()
    var c8 = V(), c9 = V(), c10 = V(), c11 = V(), c12 = V(), c13 = V(), c14 = V(), c15 = V()
    let braw = UnsafeRawPointer(b), bStride = ldb * 4
    for kk in 0..<k {
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
        pointwiseConvolution16(g, input: input, weights: weights, epilogue: epilogue, output: output, scratch: scratch,
                               threads: threads)
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
/// accumulators, two B loads and six broadcasts per k. Stores only `rows` rows.
@inline(__always)
func gemmKernel6x16(a: UnsafePointer<Float>, aStride: Int, b: UnsafePointer<Float>, ldb: Int, k: Int,
                    c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int) {
    typealias V = SIMD8<Float>
    var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V()
    var c30 = V(), c31 = V(), c40 = V(), c41 = V(), c50 = V(), c51 = V()
    let braw = UnsafeRawPointer(b), bStride = ldb * 4
    for kk in 0..<k {
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

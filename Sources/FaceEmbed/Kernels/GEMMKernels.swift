// GEMM micro-kernels: C = A · B on register tiles, A lane-packed weights (WeightLayout.swift), B a K × N matrix of
// pixels (an im2col panel or band, the input itself, or Winograd's transformed tiles).
//
//   gemmKernel16x16   16 channels × 16 pixels in 16 zmm accumulators (AVX-512 builds' `gemmTile`, and the
//                     in-memory-B GEMM of ConvolutionGEMM.swift with the epilogue applied in registers)
//   gemmKernel6x16    6 channels × 16 pixels in 12 SIMD8 accumulators (other builds' `gemmTile`: rows 0, 6, 12)
//   gemmKernel16x4    16 channels × up to 4 pixels, channels in lanes (partial panels, small Winograd maps)
// Per-ISA variants go here, chosen at compile time by `gemmTile` and `gemmWideKernels`.

/// Pixel-panel width of the GEMM micro-kernel.
let gemmNR = 16
#if FACEEMBED_AVX512
/// Output channels per micro-kernel call: a whole block of lane-packed weights.
let gemmMR = 16
/// True when `gemmKernel16x16` runs in registers: convolutions then read B in memory, in place or from an im2col
/// (`ConvolutionKernel`), rather than packing a panel per micro-kernel call.
let gemmWideKernels = true
#else
/// Output channels per micro-kernel call: three calls (rows 0, 6, 12) cover a block of lane-packed weights.
let gemmMR = 6
/// True when `gemmKernel16x16` runs in registers (AVX-512 builds only).
let gemmWideKernels = false
#endif
/// Micro-kernel row tiles per block of `weightLanes` output channels.
let gemmTilesPerBlock = (weightLanes + gemmMR - 1) / gemmMR

/// C[rows][16] (row stride ldc) = A · B[k][16 at stride ldb], A lane-packed (row r of the tile at a[k · aStride + r]).
/// `rows` ≤ gemmMR; only those rows are stored. `spread` lines are requested along the way.
@inline(__always)
func gemmTile(
    a: UnsafePointer<Float>, aStride: Int, b: UnsafePointer<Float>, ldb: Int, k: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, spread: PrefetchSpread = .none
) {
    #if FACEEMBED_AVX512
    gemmKernel16x16(a: a, aStride: aStride, b: b, ldb: ldb, k: k, rows: rows, spread: spread) { r, x in
        storeVector(x, to: c + r * ldc)
    }
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
func gemmKernel16x4(
    a: UnsafePointer<Float>, aStride: Int = weightLanes, b: UnsafePointer<Float>, ldb: Int, k: Int,
    cols: Int, c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int
) {
    typealias V = SIMD16<Float>
    let j1 = min(1, cols - 1), j2 = min(2, cols - 1), j3 = min(3, cols - 1)
    var p0 = V(), p1 = V(), p2 = V(), p3 = V(), q0 = V(), q1 = V(), q2 = V(), q3 = V()
    let araw = UnsafeRawPointer(a), aBytes = aStride * 4
    for kp in 0..<(k / 2) {
        let kk = 2 * kp
        let a0 = loadVector(araw + kk * aBytes, as: V.self)
        let a1 = loadVector(araw + kk * aBytes + aBytes, as: V.self)
        let b0 = b + kk * ldb, b1 = b0 + ldb
        multiplyAdd(&p0, a0, V(repeating: b0[0])); multiplyAdd(&p1, a0, V(repeating: b0[j1]))
        multiplyAdd(&p2, a0, V(repeating: b0[j2])); multiplyAdd(&p3, a0, V(repeating: b0[j3]))
        multiplyAdd(&q0, a1, V(repeating: b1[0])); multiplyAdd(&q1, a1, V(repeating: b1[j1]))
        multiplyAdd(&q2, a1, V(repeating: b1[j2])); multiplyAdd(&q3, a1, V(repeating: b1[j3]))
    }
    if k % 2 == 1 {
        let a0 = loadVector(araw + (k - 1) * aBytes, as: V.self), b0 = b + (k - 1) * ldb
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

/// A · B for one block of 16 rows, A packed as a[k · aStride + r] (row r in lane r, aStride ≥ 16), B rows of 16
/// at stride ldb: 16 zmm accumulators, one B load and 16 broadcast-FMAs per k. Hands row r's 16 values to
/// `row(r, values)` in registers, for r < rows. `spread` lines are requested along the way.
@inline(__always)
func gemmKernel16x16(
    a: UnsafePointer<Float>, aStride: Int, b: UnsafePointer<Float>, ldb: Int, k: Int, rows: Int,
    spread: PrefetchSpread = .none, _ row: (Int, SIMD16<Float>) -> Void
) {
    typealias V = SIMD16<Float>
    var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V(), c6 = V(), c7 = V()
    var c8 = V(), c9 = V(), c10 = V(), c11 = V(), c12 = V(), c13 = V(), c14 = V(), c15 = V()
    let braw = UnsafeRawPointer(b), bStride = ldb * 4
    for kk in 0..<k {
        spread.step(kk)
        let bv = loadVector(braw + kk * bStride, as: V.self)
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
    @inline(__always) func put(_ r: Int, _ x: V) { if r < rows { row(r, x) } }
    put(0, c0); put(1, c1); put(2, c2); put(3, c3); put(4, c4); put(5, c5); put(6, c6); put(7, c7)
    put(8, c8); put(9, c9); put(10, c10); put(11, c11); put(12, c12); put(13, c13); put(14, c14); put(15, c15)
}

/// C[rows][16] (row stride ldc) = A · B[k][16 at stride ldb], A packed as a[k · aStride + r] (rows ≤ 6): 12 SIMD8
/// accumulators, two B loads and six broadcasts per k. Stores only `rows` rows. `spread` lines are requested
/// along the way.
@inline(__always)
func gemmKernel6x16(
    a: UnsafePointer<Float>, aStride: Int, b: UnsafePointer<Float>, ldb: Int, k: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, spread: PrefetchSpread = .none
) {
    typealias V = SIMD8<Float>
    var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V()
    var c30 = V(), c31 = V(), c40 = V(), c41 = V(), c50 = V(), c51 = V()
    let braw = UnsafeRawPointer(b), bStride = ldb * 4
    for kk in 0..<k {
        spread.step(kk)
        let b0 = loadVector(braw + kk * bStride, as: V.self)
        let b1 = loadVector(braw + kk * bStride + 32, as: V.self)
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

// Winograd F(4×4, 3×3) convolution for 3×3, stride-1, groups = 1 layers (ResNet100's 96 %), one image at a time.
//
// Each 4×4 block of output ("tile") comes from a 6×6 input patch: Y = Aᵀ [ Σ_ic (G g Gᵀ) ⊙ (Bᵀ d B) ] A.
// The 36 element-wise products become 36 independent GEMMs  M[ξ] (outC × T) = U[ξ] (outC × inC) · V[ξ] (inC × T),
// 4× fewer multiplies than the direct convolution (2.25–3.8× after transform costs and tile rounding).
//
// Phases, each split across threads by `parallelFor`; V in `shared` scratch, the rest per thread:
//   B  V[ξ][panel][ic][16] = Bᵀ d B            16 tiles per panel, laid out as the GEMM micro-kernel's B panel;
//                                             the input affine (batch norm before the zero-padded convolution) is
//                                             applied to in-bounds pixels only, so the borders stay exact
//   then per block of 16 output channels, so that U and M stay in cache between their producer and consumer:
//   A  U[ic][ξ][16]       = G g Gᵀ             from the block's lane-packed weights (16 lanes per tap, read in
//                                             place): weights are transformed on the fly, since storing them would
//                                             need 4× the weight memory (ResNet100 would exceed its memory budget)
//   C  M[ξ][r][tile]      = U[ξ] · V[ξ]        `gemmTile` (16 × 16 on AVX-512, else 6 × 16 thrice), which also
//                                             prefetches the next block's weights; panels of at most 8 tiles (7×7
//                                             maps, tails) `gemmKernel16x4`
//   D  out = Aᵀ M A, then the epilogue (bias, PReLU, residual) over each of the block's 16 output planes.
// `ConvolutionKernel` chooses it for these layers (`winogradApplies`); the direct GEMM (`.im2colGEMM`, `.packedGEMM`)
// runs every other shape and is the check (Tests/WinogradTests.swift).

/// Tile geometry of a Winograd F(4,3) convolution.
struct WinogradPlan {
    let tilesY: Int, tilesX: Int
    /// The layer's output row length.
    let outW: Int
    var tiles: Int { tilesY * tilesX }
    var panels: Int { (tiles + gemmNR - 1) / gemmNR }
    /// Floats from one ξ to the next in V and in M: whole panels plus one cache line, so that the 36 ξ of a tile,
    /// which phases B and D touch together, fall in different L1 sets (multiples of 4 KB put them all in one).
    func vXiStride(inC: Int) -> Int { panels * inC * gemmNR + 16 }
    var mXiStride: Int { weightLanes * panels * gemmNR + 16 }
    /// Tile rows per 8-lane vector in phases B and D: two when a row has exactly four tiles (maps 13–16 wide, as
    /// ResNet100's 14×14 stage), so that no lane idles; else one, with eight tiles of the row per vector.
    var rowsPerVector: Int { tilesX == 4 ? 2 : 1 }
    /// Sides of the padded input plane a thread builds in phase B.
    var paddedH: Int { tilesY * 4 + 2 }
    var paddedW: Int { tilesX * 4 + 2 }
    /// Floats of phase D's output plane: rows of `outW` back to back, as in the output, and room for the 32-float
    /// row stores of the tiles' rows past the layer's last to spill into.
    var outputFloats: Int { tilesY * 4 * outW + 32 }

    init(_ g: ConvGeometry) {
        tilesY = (g.outH + 3) / 4
        tilesX = (g.outW + 3) / 4
        outW = g.outW
    }
}

/// True when `winogradConvolution` handles `g` and is expected to beat the direct convolution (down to 7×7 maps:
/// four tiles for 49 outputs still need 3× fewer multiplies).
func winogradApplies(_ g: ConvGeometry) -> Bool {
    g.groups == 1 && g.kH == 3 && g.kW == 3 && g.strideH == 1 && g.strideW == 1 && g.padH <= 2 && g.padW <= 2
        && g.inC >= 16 && g.outC >= 16 && g.outH >= 6 && g.outW >= 6
}

/// Shared scratch floats (not per thread) for `winogradConvolution` on `g`: the transformed input V.
func winogradSharedScratch(_ g: ConvGeometry) -> Int {
    36 * WinogradPlan(g).vXiStride(inC: g.inC)
}

/// Per-thread scratch floats for `winogradConvolution` on `g`: phase B's padded plane and staging rows, or
/// U[inC][36][16], one block's M[36][16][tiles] and phase D's output plane; whole cache lines.
func winogradScratch(_ g: ConvGeometry) -> Int {
    let p = WinogradPlan(g)
    let u = 36 * g.inC * weightLanes, m = 36 * p.mXiStride, d = p.outputFloats
    return (max(p.paddedH * p.paddedW + winogradPlaneSlack + winogradStageFloats(p), u + m + d) + 15) / 16 * 16
}

/// Winograd F(4,3) convolution (see the top of this file). `o.scratch` holds `threads` blocks of
/// `winogradScratch(g)` floats; `o.shared` holds `winogradSharedScratch(g)` floats.
func winogradConvolution(_ g: ConvGeometry, _ o: ConvolutionOperands, threads: Int) {
    let p = WinogradPlan(g)
    winogradInputPhase(g, p, o, threads: threads)
    let blocks = g.weightBlocks, perThread = winogradScratch(g)
    let parts = max(1, min(threads, blocks))
    parallelFor(parts, threads: threads) { part in
        let mine = chunk(blocks, parts: parts, index: part)
        for blk in mine {
            winogradBlock(
                g, p, o, block: blk, prefetchNext: blk + 1 < mine.upperBound,
                scratch: o.scratch + part * perThread)
        }
    }
}

/// Phase B: V = Bᵀ d B of every input channel into `o.shared`, channels split across threads.
func winogradInputPhase(_ g: ConvGeometry, _ p: WinogradPlan, _ o: ConvolutionOperands, threads: Int) {
    let ic = g.inC, vXi = p.vXiStride(inC: ic), perThread = winogradScratch(g)
    let parts = max(1, min(threads, ic))
    parallelFor(parts, threads: threads) { part in
        let plane = o.scratch + part * perThread, stage = plane + p.paddedH * p.paddedW + winogradPlaneSlack
        // Zeroed once: every channel then writes the same interior positions, so the border and slack stay zero.
        plane.initialize(repeating: 0, count: p.paddedH * p.paddedW + winogradPlaneSlack)
        for c in chunk(ic, parts: parts, index: part) {
            winogradTransformInput(
                g, p, input: o.input + c * g.inH * g.inW,
                mul: o.inputAffine?.scale[c] ?? 1, add: o.inputAffine?.shift[c] ?? 0,
                plane: plane, stage: stage, into: o.shared + c * gemmNR, panelStride: ic * gemmNR,
                xiStride: vXi)
        }
    }
}

/// Phases A, C and D for block `blk` of 16 output channels, in one thread's `scratch` (U, then M, then phase D's
/// plane). With `prefetchNext`, the next block's weights are requested during the GEMMs.
@inline(__always)
func winogradBlock(
    _ g: ConvGeometry, _ p: WinogradPlan, _ o: ConvolutionOperands, block blk: Int, prefetchNext: Bool,
    scratch u: UnsafeMutablePointer<Float>
) {
    let ic = g.inC, L = weightLanes, tp = p.panels * gemmNR, mXi = p.mXiStride
    let m = u + 36 * ic * L, plane = m + 36 * mXi
    let m0 = blk * L, rows = min(L, g.outC - m0)
    winogradTransformWeightBlock(o.weights + blk * ic * 9 * L, inC: ic, into: u)
    let next = prefetchNext ? UnsafeRawPointer(o.weights + (blk + 1) * ic * 9 * L) : nil
    winogradProducts(p, u: u, v: o.shared, inC: ic, rows: rows, into: m, prefetching: next)
    let planeCount = g.outH * g.outW
    for r in 0..<rows {
        winogradTransformOutput(p, m + r * tp, xiStride: mXi, plane: plane)
        // The plane is laid out as the channel's output, so one pass applies the epilogue to all of it.
        o.epilogue.apply(channel: m0 + r, acc: plane, out: o.output, offset: (m0 + r) * planeCount, count: planeCount)
    }
}

/// Phase C: M[ξ] = U[ξ] · V[ξ] for the block's `rows` output channels, every ξ and panel of tiles.
/// The next block's weights (9·inC lines, from `next`) stream in under these GEMMs: ⌈inC/4⌉ lines per ξ, spread
/// through the first 16-tile kernel call of each ξ (r100, 1 thread: weight transform −5 ms, GEMMs +1.7 ms). Maps
/// with under 9 tiles (7×7) do without: there it cost the narrow kernel more than it saved.
@inline(__always)
func winogradProducts(
    _ p: WinogradPlan, u: UnsafePointer<Float>, v: UnsafePointer<Float>, inC ic: Int, rows: Int,
    into m: UnsafeMutablePointer<Float>, prefetching next: UnsafeRawPointer?
) {
    let L = weightLanes, tp = p.panels * gemmNR, vXi = p.vXiStride(inC: ic), mXi = p.mXiStride
    let linesPerXi = (ic + 3) / 4
    for xi in 0..<36 {
        var spread = PrefetchSpread(
            base: next.map { $0 + xi * linesPerXi * 64 },
            lines: min(linesPerXi, ic * 9 - xi * linesPerXi))
        for panel in 0..<p.panels {
            let a = u + xi * L, b = v + xi * vXi + panel * ic * gemmNR
            let c = m + xi * mXi + panel * gemmNR
            let n = min(gemmNR, p.tiles - panel * gemmNR)
            if n <= 8 {
                // Few tiles (7×7 maps, a panel's tail): channels in lanes, no work on absent tiles.
                for j in stride(from: 0, to: n, by: 4) {
                    gemmKernel16x4(
                        a: a, aStride: 36 * L, b: b + j, ldb: gemmNR, k: ic, cols: min(4, n - j),
                        c: c + j, ldc: tp, rows: rows)
                }
            } else {
                var r0 = 0
                while r0 < rows {
                    gemmTile(
                        a: a + r0, aStride: 36 * L, b: b, ldb: gemmNR, k: ic, c: c + r0 * tp, ldc: tp,
                        rows: min(gemmMR, rows - r0), spread: spread)
                    spread = .none
                    r0 += gemmMR
                }
            }
        }
    }
}

/// Bᵀ x B along one axis: six values in, six out.
@inline(__always)
func winogradB(
    _ x0: SIMD8<Float>, _ x1: SIMD8<Float>, _ x2: SIMD8<Float>, _ x3: SIMD8<Float>, _ x4: SIMD8<Float>,
    _ x5: SIMD8<Float>
) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
    let a = x4 - x2 * 4, b = x3 - x1 * 4  // for y1, y2
    let c = x4 - x2, d = (x3 - x1) * 2  // for y3, y4
    return (x0 * 4 - x2 * 5 + x4, a + b, a - b, c + d, c - d, x1 * 4 - x3 * 5 + x5)
}

/// Floats past the end of phase B's plane that its strided loads may touch (their lanes are then unused).
let winogradPlaneSlack = 48

/// Floats of phase B's staging rows: S[ξ][tile], each row padded to whole panels plus one spare vector.
func winogradStageFloats(_ p: WinogradPlan) -> Int { 36 * (p.panels * gemmNR + 8) }

/// Phase B for one input channel: fills the interior of the zero-bordered plane (affine-mapped; the caller zeroes
/// the plane once), then writes Bᵀ d B of every tile to `into + ξ·xiStride + panel·panelStride + lane`. Eight tiles
/// at a time, one per lane (of one tile row, or of two when `p.rowsPerVector` says so): each of their six input rows
/// is read as two 32-float segments split into column phases (no gathers), transformed along x, then the six
/// results along y, stored whole into staging rows S[ξ][tile] in tile order (lanes past a tile row's end are
/// overwritten by the next row, or land in the padding); then S is copied into V panel by panel.
/// `stage` holds `winogradStageFloats(p)` floats.
@inline(__always)
func winogradTransformInput(
    _ g: ConvGeometry, _ p: WinogradPlan, input: UnsafePointer<Float>, mul: Float, add: Float,
    plane: UnsafeMutablePointer<Float>, stage: UnsafeMutablePointer<Float>,
    into v: UnsafeMutablePointer<Float>, panelStride: Int, xiStride: Int
) {
    typealias V = SIMD8<Float>
    let ss = p.panels * gemmNR + 8
    let pw = p.paddedW, ph = p.paddedH
    let rows = min(g.inH, ph - g.padH), cols = min(g.inW, pw - g.padW)
    for y in 0..<rows {
        let src = input + y * g.inW, dst = plane + (y + g.padH) * pw + g.padW
        if mul == 1 && add == 0 {
            dst.update(from: src, count: cols)
        } else {
            for x in 0..<cols { dst[x] = src[x] * mul + add }
        }
    }
    withUnsafeTemporaryAllocation(of: V.self, capacity: 36) { h in
        let h = h.baseAddress!
        let paired = p.rowsPerVector == 2
        for ty in stride(from: 0, to: p.tilesY, by: p.rowsPerVector) {
            var tx0 = 0
            while tx0 < p.tilesX {
                for r in 0..<6 {
                    // Paired rows: lanes 0–3 from tile row ty, 4–7 from ty + 1 (a copy of ty past the last row).
                    let row = plane + (ty * 4 + r) * pw + tx0 * 4
                    let next = paired ? (ty + 1 < p.tilesY ? row + 4 * pw : row) : row + 16
                    let (x0, x1, x2, x3) = columnPhases(row, next)
                    let (x4, x5, _, _) = columnPhases(row + 4, next + 4)
                    let (y0, y1, y2, y3, y4, y5) = winogradB(x0, x1, x2, x3, x4, x5)
                    h[r * 6] = y0; h[r * 6 + 1] = y1; h[r * 6 + 2] = y2
                    h[r * 6 + 3] = y3; h[r * 6 + 4] = y4; h[r * 6 + 5] = y5
                }
                let d = UnsafeMutableRawPointer(stage + ty * p.tilesX + tx0), row = ss * 4
                for l in 0..<6 {
                    let (z0, z1, z2, z3, z4, z5) = winogradB(h[l], h[6 + l], h[12 + l], h[18 + l], h[24 + l], h[30 + l])
                    d.storeBytes(of: z0, toByteOffset: l * row, as: V.self)
                    d.storeBytes(of: z1, toByteOffset: (6 + l) * row, as: V.self)
                    d.storeBytes(of: z2, toByteOffset: (12 + l) * row, as: V.self)
                    d.storeBytes(of: z3, toByteOffset: (18 + l) * row, as: V.self)
                    d.storeBytes(of: z4, toByteOffset: (24 + l) * row, as: V.self)
                    d.storeBytes(of: z5, toByteOffset: (30 + l) * row, as: V.self)
                }
                tx0 += 8
            }
        }
    }
    for xi in 0..<36 {
        for panel in 0..<p.panels {
            let x = loadVector(UnsafeRawPointer(stage + xi * ss + panel * gemmNR), as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(v + xi * xiStride + panel * panelStride).storeBytes(of: x, as: SIMD16<Float>.self)
        }
    }
}

/// Aᵀ m along one axis: six values in, four out.
@inline(__always)
func winogradA(
    _ m0: SIMD8<Float>, _ m1: SIMD8<Float>, _ m2: SIMD8<Float>, _ m3: SIMD8<Float>, _ m4: SIMD8<Float>,
    _ m5: SIMD8<Float>
) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
    let s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4
    return (m0 + s12 + s34, d12 + d34 * 2, s12 + s34 * 4, d12 + d34 * 8 + m5)
}

/// Phase D for one output channel: `m + ξ·xiStride + tile` → the plane [tilesY·4][outW] (`p.outputFloats`). Eight
/// tiles per vector, as in phase B; each of their four output rows is interleaved from its four column vectors into
/// 32 consecutive floats (16 per tile row when rows are paired) and stored whole. Lanes past a tile row's end read
/// neighbouring floats of M (or the plane that follows it in scratch), and their stores run into the next rows: so
/// a tile row's groups of eight tiles go from last to first, and rows from top to bottom (a pair's first tile row
/// before its second), each store then being overwritten by the later ones wherever it strays (the last rows'
/// spill lands in the plane's slack).
@inline(__always)
func winogradTransformOutput(
    _ p: WinogradPlan, _ m: UnsafePointer<Float>, xiStride: Int,
    plane: UnsafeMutablePointer<Float>
) {
    typealias V = SIMD8<Float>
    let pw = p.outW, paired = p.rowsPerVector == 2
    for ty in stride(from: 0, to: p.tilesY, by: p.rowsPerVector) {
        var tx0 = (p.tilesX - 1) / 8 * 8
        while tx0 >= 0 {
            let t0 = ty * p.tilesX + tx0
            @inline(__always) func ld(_ xi: Int) -> V {
                loadVector(UnsafeRawPointer(m + xi * xiStride + t0), as: V.self)
            }
            // Along y (rows ξ = r·6 + c, combined over r), then along x.
            let (a00, a10, a20, a30) = winogradA(ld(0), ld(6), ld(12), ld(18), ld(24), ld(30))
            let (a01, a11, a21, a31) = winogradA(ld(1), ld(7), ld(13), ld(19), ld(25), ld(31))
            let (a02, a12, a22, a32) = winogradA(ld(2), ld(8), ld(14), ld(20), ld(26), ld(32))
            let (a03, a13, a23, a33) = winogradA(ld(3), ld(9), ld(15), ld(21), ld(27), ld(33))
            let (a04, a14, a24, a34) = winogradA(ld(4), ld(10), ld(16), ld(22), ld(28), ld(34))
            let (a05, a15, a25, a35) = winogradA(ld(5), ld(11), ld(17), ld(23), ld(29), ld(35))
            @inline(__always) func row(
                _ x0: V, _ x1: V, _ x2: V, _ x3: V, _ x4: V,
                _ x5: V
            ) -> (SIMD16<Float>, SIMD16<Float>) {
                let (o0, o1, o2, o3) = winogradA(x0, x1, x2, x3, x4, x5)
                return interleavingColumnPhases(o0, o1, o2, o3)
            }
            let r0 = row(a00, a01, a02, a03, a04, a05), r1 = row(a10, a11, a12, a13, a14, a15)
            let r2 = row(a20, a21, a22, a23, a24, a25), r3 = row(a30, a31, a32, a33, a34, a35)
            let top = UnsafeMutableRawPointer(plane + ty * 4 * pw + tx0 * 4), rowBytes = pw * 4
            @inline(__always) func put(_ x: SIMD16<Float>, row k: Int, at offset: Int) {
                top.storeBytes(of: x, toByteOffset: k * rowBytes + offset, as: SIMD16<Float>.self)
            }
            if paired {
                put(r0.0, row: 0, at: 0); put(r1.0, row: 1, at: 0); put(r2.0, row: 2, at: 0); put(r3.0, row: 3, at: 0)
                if ty + 1 < p.tilesY {
                    put(r0.1, row: 4, at: 0); put(r1.1, row: 5, at: 0); put(r2.1, row: 6, at: 0);
                    put(r3.1, row: 7, at: 0)
                }
            } else {
                put(r0.0, row: 0, at: 0); put(r0.1, row: 0, at: 64); put(r1.0, row: 1, at: 0); put(r1.1, row: 1, at: 64)
                put(r2.0, row: 2, at: 0); put(r2.1, row: 2, at: 64); put(r3.0, row: 3, at: 0); put(r3.1, row: 3, at: 64)
            }
            tx0 -= 8
        }
    }
}

/// U[ic][ξ][lane] = (G g Gᵀ)[ξ] for one block of 16 output channels, from its lane-packed weights
/// `w[(ic · 9 + tap) · 16 + lane]`: for each input channel, 9 lane vectors in, 36 out, every load and store at a
/// constant offset from one pointer. Lanes past the layer's output channels hold zeros and are never stored.
@inline(__always)
func winogradTransformWeightBlock(_ w: UnsafePointer<Float>, inC: Int, into u: UnsafeMutablePointer<Float>) {
    typealias V = SIMD16<Float>
    // G's rows: (¼, 0, 0), −⅙(1, 1, 1), −⅙(1, −1, 1), (1/24, 1/12, ⅙), (1/24, −1/12, ⅙), (0, 0, 1). Five adds and
    // six multiplies (one fused): adds and multiplies issue on different pipes, so neither kind waits long.
    @inline(__always) func rowsG(_ a: V, _ b: V, _ c: V) -> (V, V, V, V, V, V) {
        let sixth = Float(1) / 6
        let s = a + c
        let t = s + b, d = s - b
        var p = c * sixth
        multiplyAdd(&p, a, V(repeating: Float(1) / 24))
        let q = b * (Float(1) / 12)
        return (a * 0.25, t * -sixth, d * -sixth, p + q, p - q, c)
    }
    let vb = MemoryLayout<V>.stride
    for c in 0..<inC {
        let src = UnsafeRawPointer(w + c * 9 * weightLanes)
        // The weights stream from memory once per call: ask for them 16 channels (9 KB) ahead.
        if c + 16 < inC {
            let ahead = src + 16 * 9 * vb
            for l in 0..<9 { prefetch(ahead + l * vb) }
        }
        @inline(__always) func tap(_ t: Int) -> V { loadVector(src + t * vb, as: V.self) }
        let (t00, t10, t20, t30, t40, t50) = rowsG(tap(0), tap(3), tap(6))
        let (t01, t11, t21, t31, t41, t51) = rowsG(tap(1), tap(4), tap(7))
        let (t02, t12, t22, t32, t42, t52) = rowsG(tap(2), tap(5), tap(8))
        let base = UnsafeMutableRawPointer(u + c * 36 * weightLanes)
        @inline(__always) func store(_ row: Int, _ a: V, _ b: V, _ cc: V) {
            let (x0, x1, x2, x3, x4, x5) = rowsG(a, b, cc)
            let d = row * 6 * vb
            base.storeBytes(of: x0, toByteOffset: d, as: V.self)
            base.storeBytes(of: x1, toByteOffset: d + vb, as: V.self)
            base.storeBytes(of: x2, toByteOffset: d + 2 * vb, as: V.self)
            base.storeBytes(of: x3, toByteOffset: d + 3 * vb, as: V.self)
            base.storeBytes(of: x4, toByteOffset: d + 4 * vb, as: V.self)
            base.storeBytes(of: x5, toByteOffset: d + 5 * vb, as: V.self)
        }
        store(0, t00, t01, t02); store(1, t10, t11, t12); store(2, t20, t21, t22)
        store(3, t30, t31, t32); store(4, t40, t41, t42); store(5, t50, t51, t52)
    }
}

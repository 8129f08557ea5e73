// Convolution (groups = 1) as an implicit GEMM, one image at a time: the `.pointwiseGEMM`, `.im2colGEMM` and
// `.packedGEMM` kernels of `ConvolutionKernel`.
//
//   C[M × N] = A[M × K] · B[K × N]     M = outC, K = inC·kh·kw, N = outH·outW
//   A = weights, lane-packed (WeightLayout.swift): a[blk][k][16], used in place from the mapped file.
//   B = im2col of the input (Im2col.swift):
//     .packedGEMM     a panel of NR = 16 output pixels × K is gathered into a contiguous per-thread buffer, then
//                     reused by every row tile of `gemmTile` (16 × 16 on AVX-512, else 6 × 16 thrice per block)
//     .pointwiseGEMM  (AVX-512) the input itself, read in place, for an unpadded 1×1 convolution without input affine
//     .im2colGEMM     (AVX-512) an im2col in shared scratch, of the whole image when it is small (`im2colPixels`),
//                     else of one band of pixels at a time
//   The last two run `gemmConvolution16`: full panels apply the epilogue in registers, a partial last panel runs a
//   narrow kernel of 16 channels × up to 4 pixels.
//
// Optional `inputAffine` maps every in-bounds tap x of input channel c to x · scale[c] + shift[c] while packing
// (or building the im2col): a batch norm that precedes the convolution, exact at the borders, where the padding
// stays zero. Work is split across threads by pixel panels, or by row tiles (blocks of 16 output channels for
// `gemmConvolution16`) when that balances better.

/// Per-thread scratch floats of `.packedGEMM`: a packed B panel and one C tile.
func packedGEMMScratch(_ g: ConvGeometry) -> Int { g.k * gemmNR + gemmMR * gemmNR }

/// `.packedGEMM`: packs each panel of B, then runs the micro-kernel row tiles over it and applies the epilogue to
/// the C tile. `o.scratch` holds `threads` blocks of `packedGEMMScratch(g)` floats.
func packedGEMMConvolution(_ g: ConvGeometry, _ o: ConvolutionOperands, threads: Int) {
    let panels = (g.pixels + gemmNR - 1) / gemmNR
    let tiles = g.weightBlocks * gemmTilesPerBlock
    let perThread = packedGEMMScratch(g)
    // Split by pixel panels when there are enough of them to share; otherwise by row tiles.
    let byPanels = panels >= 2 * threads || tiles < 2 * threads
    let parts = max(1, min(threads, byPanels ? panels : tiles))
    parallelFor(parts, threads: threads) { part in
        let packed = o.scratch + part * perThread
        let tile = packed + g.k * gemmNR
        let panelRange = byPanels ? chunk(panels, parts: parts, index: part) : 0..<panels
        let tileRange = byPanels ? 0..<tiles : chunk(tiles, parts: parts, index: part)
        for panel in panelRange {
            let n0 = panel * gemmNR
            let nr = min(gemmNR, g.pixels - n0)
            packPanel(g, input: o.input, affine: o.inputAffine, n0: n0, nr: nr, into: packed)
            for t in tileRange {
                let (m0, aOffset, mr) = gemmRowTile(t, outC: g.outC, k: g.k)
                gemmTile(
                    a: o.weights + aOffset, aStride: weightLanes, b: packed, ldb: gemmNR, k: g.k, c: tile,
                    ldc: gemmNR, rows: mr)
                for r in 0..<mr {
                    o.epilogue.apply(
                        channel: m0 + r, acc: tile + r * gemmNR, out: o.output,
                        offset: (m0 + r) * g.pixels + n0, count: nr)
                }
            }
        }
    }
}

/// Per-thread scratch floats of `gemmConvolution16`: one C tile for a partial panel.
let gemmTileScratch = weightLanes * gemmNR

/// `.pointwiseGEMM`: B is the input. `o.scratch` holds `threads` blocks of `gemmTileScratch` floats.
func pointwiseGEMMConvolution(_ g: ConvGeometry, _ o: ConvolutionOperands, threads: Int) {
    gemmConvolution16(
        g, b: o.input, ldb: g.pixels, weights: o.weights, epilogue: o.epilogue, output: o.output,
        tiles: o.scratch, threads: threads)
}

/// Shared scratch floats of `.im2colGEMM`: one band of the im2col, whole cache lines.
func im2colGEMMSharedScratch(_ g: ConvGeometry) -> Int { (g.k * im2colPixels(g) + 15) / 16 * 16 }

/// `.im2colGEMM`: builds the im2col of each band of pixels in `o.shared` (its rows split across threads), then
/// runs the GEMM on it. `o.scratch` holds `threads` blocks of `gemmTileScratch` floats.
func im2colGEMMConvolution(_ g: ConvGeometry, _ o: ConvolutionOperands, threads: Int) {
    let band = im2colPixels(g), k = g.k, parts = max(1, min(threads, k))
    for p0 in stride(from: 0, to: g.pixels, by: band) {
        let pixels = p0..<min(p0 + band, g.pixels)
        parallelFor(parts, threads: threads) { part in
            im2col(
                g, input: o.input, affine: o.inputAffine, rows: chunk(k, parts: parts, index: part), pixels: pixels,
                into: o.shared)
        }
        gemmConvolution16(
            g, pixels: pixels, b: o.shared, ldb: pixels.count, weights: o.weights,
            epilogue: o.epilogue, output: o.output, tiles: o.scratch, threads: threads)
    }
}

/// Pixel panels per group in `gemmConvolution16`. Applying one block of weights to a group of panels before the next
/// block reads each block once per group rather than once per panel, and writes each output channel in runs of 1 KB
/// rather than 64 bytes (the 64×56×56 → 128 layer: 0.75 → 0.52 ms); the group's B, K × 256 floats, stays in L2.
let gemmPanelGroup = 16

/// The GEMM for output pixels `pixels` (all by default) from a B matrix that is in memory, K rows of those pixels
/// at stride `ldb`. Each block of weights runs over a group of `gemmPanelGroup` panels in turn (`gemmBlockPanel`).
/// `tiles` holds `threads` C tiles of `gemmTileScratch` floats.
func gemmConvolution16(
    _ g: ConvGeometry, pixels: Range<Int>? = nil, b: UnsafePointer<Float>, ldb: Int,
    weights: UnsafePointer<Float>, epilogue: Epilogue, output: UnsafeMutablePointer<Float>,
    tiles: UnsafeMutablePointer<Float>, threads: Int
) {
    let base = pixels?.lowerBound ?? 0, n = pixels?.count ?? g.pixels, k = g.k
    let panels = (n + gemmNR - 1) / gemmNR
    let blocks = g.weightBlocks
    let (byPanels, parts) = gemmSplit(pixels: n, panels: panels, blocks: blocks, threads: threads)
    parallelFor(parts, threads: threads) { part in
        let tile = tiles + part * gemmTileScratch
        let panelRange = byPanels ? chunk(panels, parts: parts, index: part) : 0..<panels
        let blockRange = byPanels ? 0..<blocks : chunk(blocks, parts: parts, index: part)
        for g0 in stride(from: panelRange.lowerBound, to: panelRange.upperBound, by: gemmPanelGroup) {
            for t in blockRange {
                let m0 = t * weightLanes, rows = min(weightLanes, g.outC - m0), a = weights + t * k * weightLanes
                for panel in g0..<min(g0 + gemmPanelGroup, panelRange.upperBound) {
                    let n0 = panel * gemmNR
                    gemmBlockPanel(
                        a: a, b: b + n0, ldb: ldb, k: k, m0: m0, rows: rows, cols: min(gemmNR, n - n0),
                        epilogue: epilogue, output: output, ldo: g.pixels, n0: base + n0, tile: tile)
                }
            }
        }
    }
}

/// How `gemmConvolution16` splits its work: by pixel panels, unless splitting by blocks of output channels gives
/// the busiest thread clearly less work (in pixels × blocks, by more than 1/8; each thread then reads all of B): on
/// a 7×7 map, 3 panels and a 1-pixel tail split 2 : 1 by panels, while 8 blocks split 4 : 4 (2 threads: 0.037 →
/// 0.033 ms for 512 → 128).
func gemmSplit(pixels n: Int, panels: Int, blocks: Int, threads: Int) -> (byPanels: Bool, parts: Int) {
    let split = min(threads, max(panels, blocks))
    let busiestPanels =
        (0..<split).lazy.map { chunk(panels, parts: split, index: $0) }
        .map { min(n, $0.upperBound * gemmNR) - min(n, $0.lowerBound * gemmNR) }.max() ?? 0
    let byPanels = busiestPanels * blocks * 8 <= (blocks + split - 1) / split * n * 9
    return (byPanels, max(1, min(split, byPanels ? panels : blocks)))
}

/// Output channels m0 ..< m0 + rows (one block of lane-packed weights `a`) for `cols` ≤ 16 pixels of B, written
/// to output[c · ldo + n0 ...]. A full panel runs `gemmKernel16x16` with the epilogue applied in registers (no C
/// tile is stored and reloaded, which matters most for a short K); a partial one goes through `gemmKernel16x4`
/// into `tile`, whose cost follows its pixel count (a 16-pixel call would waste up to 15/16 of its work: 49 =
/// 3·16 + 1 pixels on a 7×7 map).
@inline(__always)
func gemmBlockPanel(
    a: UnsafePointer<Float>, b: UnsafePointer<Float>, ldb: Int, k: Int, m0: Int, rows: Int, cols: Int,
    epilogue: Epilogue, output: UnsafeMutablePointer<Float>, ldo: Int, n0: Int,
    tile: UnsafeMutablePointer<Float>
) {
    if cols == gemmNR {
        gemmFullPanel(
            a: a, b: b, ldb: ldb, k: k, m0: m0, rows: rows, epilogue: epilogue, output: output, ldo: ldo,
            n0: n0)
        return
    }
    for j0 in stride(from: 0, to: cols, by: 4) {
        gemmKernel16x4(a: a, b: b + j0, ldb: ldb, k: k, cols: min(4, cols - j0), c: tile + j0, ldc: gemmNR, rows: rows)
    }
    for r in 0..<rows {
        epilogue.apply(channel: m0 + r, acc: tile + r * gemmNR, out: output, offset: (m0 + r) * ldo + n0, count: cols)
    }
}

/// The full-panel case of `gemmBlockPanel`, not inlined into the panel loops (as the kernel was before it shared
/// its k-loop), which keeps them small enough for the optimiser to inline everything inside.
@inline(never)
func gemmFullPanel(
    a: UnsafePointer<Float>, b: UnsafePointer<Float>, ldb: Int, k: Int, m0: Int, rows: Int,
    epilogue: Epilogue, output: UnsafeMutablePointer<Float>, ldo: Int, n0: Int
) {
    gemmKernel16x16(a: a, aStride: weightLanes, b: b, ldb: ldb, k: k, rows: rows) { r, x in
        let o = (m0 + r) * ldo + n0
        storeVector(epilogue.channel(m0 + r, offset: o, as: SIMD16<Float>.self)(x, at: 0), to: output + o)
    }
}

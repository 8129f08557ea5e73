// A 3×3 stride-1 depthwise convolution and the 1×1 convolution that reads it, fused by bands of output rows.
//
//   x [C][H][W] --depthwise + its epilogue--> t [C][R][W]   output rows y0 ..< y0 + R, in per-thread scratch
//   t --pointwise GEMM, K = C, B = t (ldb = R·W)--> y [outC][H][W] rows y0 ..< y0 + R, + the 1×1's epilogue
//
// Apart, t is a whole map written to memory and read back (SCRFD's 16 × 320 × 320: 6.5 MB each way, both layers
// bound by memory); by bands it stays in L2: 1.96 → 1.61 ms on one thread, 1.07 → 0.89 on two. Smaller maps gain
// nothing (40 × 160 × 160 and below: ±5 %, and slower on two threads, where each band's GEMM runs alone), so only
// maps of more than 2^20 values are fused. The depthwise part is `depthwise3x3Stride1Channel` on a band's
// zero-bordered plane (rows y0 − 1 ..< y0 + R + 1, zero outside the input), the pointwise part `gemmConvolution16`
// on the band's pixels. Bands are split across threads, each running its own GEMM.

/// Whether a depthwise layer `dw` and the 1×1 layer `pw` that reads it run fused: the depthwise 3×3, stride 1,
/// padding 1, with no residual and no input affine, its output more than 2^20 values; the 1×1 on the AVX-512
/// pointwise GEMM (`pointwiseGEMM`).
func depthwisePointwiseApplies(dw: ConvLayer, pw: ConvLayer) -> Bool {
    let d = dw.geometry, p = pw.geometry
    return d.outC * d.pixels > 1 << 20 && d.isDepthwise && d.kH == 3 && d.kW == 3 && d.strideH == 1 && d.strideW == 1
        && d.padH == 1 && d.padW == 1
        && d.outH > 1 && dw.residual == nil && dw.inputScale == nil && dw.quantization == nil
        && pw.input == dw.output && pw.inputScale == nil && pw.quantization == nil
        && ConvolutionKernel(p, inputAffine: false) == .pointwiseGEMM
}

/// Rows per band: about 32 K floats of t (128 KB), whole rows.
func depthwisePointwiseBandRows(_ d: ConvGeometry) -> Int { max(1, min(d.outH, 32_768 / (d.outC * d.outW))) }

/// The plane of one band: rows y0 − 1 ... y0 + R, as `DepthwiseLayout` pads them.
private func bandLayout(_ d: ConvGeometry) -> DepthwiseLayout {
    var band = d
    band.inH = depthwisePointwiseBandRows(d); band.outH = band.inH
    return DepthwiseLayout(band)
}

/// Per-thread scratch floats: the band's plane, t, and one C tile of the GEMM.
func depthwisePointwiseScratch(_ d: ConvGeometry) -> Int {
    (bandLayout(d).floats + 15) / 16 * 16 + d.outC * depthwisePointwiseBandRows(d) * d.outW + gemmTileScratch
}

/// Runs the pair: `d`/`dw` the depthwise layer (its output is never written), `p`/`pw` the 1×1 layer. `dw.scratch`
/// holds `threads` blocks of `depthwisePointwiseScratch(d)` floats.
func depthwisePointwiseConvolution(
    _ d: ConvGeometry, _ dw: ConvolutionOperands, _ p: ConvGeometry, _ pw: ConvolutionOperands, threads: Int
) {
    let rows = depthwisePointwiseBandRows(d), bands = (d.outH + rows - 1) / rows
    let layout = bandLayout(d), perThread = depthwisePointwiseScratch(d)
    let planeFloats = (layout.floats + 15) / 16 * 16
    let parts = max(1, min(threads, bands))
    parallelFor(parts, threads: threads) { part in
        let plane = dw.scratch + part * perThread, t = plane + planeFloats, tile = t + d.outC * rows * d.outW
        plane.initialize(repeating: 0, count: layout.planeFloats)
        for band in chunk(bands, parts: parts, index: part) {
            let y0 = band * rows, count = min(rows, d.outH - y0)
            var g = d
            g.inH = count; g.outH = count
            for c in 0..<d.outC {
                fillBandPlane(
                    d, input: dw.input + c * d.inH * d.inW, firstRow: 0, y0: y0, rows: count, plane: plane,
                    layout: layout)
                depthwise3x3Stride1Channel(
                    g, taps: DepthwiseTapRows(first: plane, second: plane + 1, shift: 2, width: layout.planeWidth),
                    weights: dw.weights + c * 9,
                    sink: DepthwiseSink(dw.epilogue, channel: c, output: t, count: count * d.outW))
            }
            gemmConvolution16(
                p, pixels: y0 * d.outW..<(y0 + count) * d.outW, b: t, ldb: count * d.outW, weights: pw.weights,
                epilogue: pw.epilogue, output: pw.output, tiles: tile, threads: 1)
        }
    }
}

/// Input rows y0 − 1 ..< y0 + rows + 1 of one channel into the plane's rows 0 ..< rows + 2 (columns from 1), rows
/// outside the input as zeros; the plane's border columns stay zero from its initialisation. `input` holds the
/// channel's rows from `firstRow` on (every row the band reads).
@inline(__always)
func fillBandPlane(
    _ d: ConvGeometry, input: UnsafePointer<Float>, firstRow: Int, y0: Int, rows: Int,
    plane: UnsafeMutablePointer<Float>, layout: DepthwiseLayout
) {
    let pw = layout.planeWidth
    for r in 0..<(rows + 2) {
        let y = y0 - 1 + r, dst = plane + r * pw + 1
        if y >= 0 && y < d.inH {
            depthwiseCopyRow(input + (y - firstRow) * d.inW, to: dst, count: d.inW)
        } else {
            dst.update(repeating: 0, count: d.inW)
        }
    }
}

// An int8 inverted bottleneck (MobileFaceNet's body): 1×1 expansion, 3×3 depthwise in float32 at stride s = 1 or 2,
// 1×1 projection, run by bands of output rows, one band per thread from the block's input to its output.
//
//   x [C][H][W] --expansion (int8 GEMM + epilogue) on the input rows band b reads--> e [T][≤ s·R + 2][W]   per band
//   e --depthwise 3×3, stride s, padding 1 (zero rows outside the map) + epilogue--> d [T][R][W/s]        per band
//   d --projection (int8 GEMM + epilogue, residual)--> y [C'][H/s][W/s] rows y0 ..< y0 + R
//
// Output rows y0 ..< y0 + R read input rows s·y0 − 1 ..< s·(y0 + R − 1) + 2 (inside the map). Layer by layer on two
// threads the GEMMs split the pixels and the depthwise layer the channels, so each core reads half of what the other
// wrote, and a core rewriting lines the other has read waits for every copy to be invalidated (50 KB in 4.6 µs
// against 0.9 when the other core had written them: two pinned threads, a C microbenchmark). By bands only the halo
// rows of x cross between cores; e and d stay in the band's core (per-band scratch). The expansion computes the halo
// rows in both bands (one or two extra rows each).
//
// Each 8-bit input is quantized with the max |x| of the whole tensor, as layer by layer, so the block's output is
// the same bit for bit: max |x| before the bands start, max |d| of every band before any band projects (two joins).

/// The bands `quantizedBlock` splits the depthwise layer `d`'s output rows into on `threads` threads (fewer than 2:
/// none, and the block runs layer by layer). A band takes at least 7 input rows and 4 output rows (one four-row pass
/// of the depthwise kernel): smaller ones spent more on the halo and single-row passes than they saved (y1's 7×7
/// bottlenecks and its 14×14 → 7×7 one, `faceembed bench --layers`), so those stay layer by layer.
func quantizedBlockBands(_ d: ConvGeometry, threads: Int) -> Int {
    min(threads, d.outH * d.strideH / 7, d.outH / 4)
}

/// The three layers of a block, as `quantizedBlock` reads them.
struct QuantizedBlockOperands {
    let input: UnsafePointer<Float>
    let expansion: QuantizedWeightPointers, expansionEpilogue: Epilogue
    let depthwise: ConvGeometry, depthwiseWeights: UnsafePointer<Float>, depthwiseEpilogue: Epilogue
    let projection: QuantizedWeightPointers, projectionEpilogue: Epilogue
    let output: UnsafeMutablePointer<Float>
}

/// The input rows (inside the map) that output rows `rows` of `d` read.
private func inputRows(_ d: ConvGeometry, _ rows: Range<Int>) -> Range<Int> {
    max(0, rows.lowerBound * d.strideH - 1)..<min(d.inH, (rows.upperBound - 1) * d.strideH + 2)
}

/// The depthwise layer on a band of `rows` output rows: input rows s·rows, output rows `rows`.
private func bandGeometry(_ d: ConvGeometry, rows: Int) -> ConvGeometry {
    var band = d
    band.inH = rows * d.strideH; band.outH = rows
    return band
}

/// Per-band scratch, in floats: e, d, the depthwise layer's band plane(s), and B of either GEMM.
private struct QuantizedBlockLayout {
    let expanded: Int, depthwise: Int, plane: Int, b: Int
    let planeLayout: DepthwiseLayout

    init(_ d: ConvGeometry, expansionGroups: Int, projectionGroups: Int, rows: Int) {
        let inRows = rows * d.strideH + 2
        expanded = (d.inC * inRows * d.inW + 15) / 16 * 16
        depthwise = (d.inC * rows * d.outW + 15) / 16 * 16
        planeLayout = DepthwiseLayout(bandGeometry(d, rows: rows))
        plane = (planeLayout.floats + 15) / 16 * 16
        let bytes =
            max(
                expansionGroups * quantizedLeadingDimension(inRows * d.inW),
                projectionGroups * quantizedLeadingDimension(rows * d.outW)) * 4
        b = (bytes + 63) / 64 * 16
    }

    var floats: Int { expanded + depthwise + plane + b }
}

/// Floats of shared scratch `quantizedBlock` needs for the depthwise geometry `d` on up to `threads` threads.
func quantizedBlockScratch(_ d: ConvGeometry, expansionGroups: Int, projectionGroups: Int, threads: Int) -> Int {
    let most = quantizedBlockBands(d, threads: threads)
    guard most >= 2 else { return 0 }
    return (2...most).map { bands in
        let rows = (d.outH + bands - 1) / bands
        return bands
            * QuantizedBlockLayout(
                d, expansionGroups: expansionGroups, projectionGroups: projectionGroups, rows: rows
            ).floats
    }.max()!
}

/// Runs the block in `quantizedBlockBands(_:threads:)` bands (at least 2); `scratch` holds `quantizedBlockScratch`
/// floats.
func quantizedBlock(_ o: QuantizedBlockOperands, scratch: UnsafeMutablePointer<Float>, threads: Int) {
    let d = o.depthwise, bands = quantizedBlockBands(d, threads: threads)
    let layout = QuantizedBlockLayout(
        d, expansionGroups: o.expansion.kGroups, projectionGroups: o.projection.kGroups,
        rows: (d.outH + bands - 1) / bands)
    let inputQuantization = ActivationQuantization(
        range: inputRange(o.input, channels: o.expansion.k, plane: d.inH * d.inW, affine: nil, threads: threads),
        precision: o.expansion.precision, maxAbsRowSum: o.expansion.maxAbsRowSum)
    withUnsafeTemporaryAllocation(of: Float.self, capacity: bands) { ranges in
        parallelFor(bands, threads: threads) { band in
            let s = scratch + band * layout.floats
            ranges[band] = expandAndFilter(
                o, rows: chunk(d.outH, parts: bands, index: band), quantization: inputQuantization, layout: layout,
                expanded: s, filtered: s + layout.expanded, plane: s + layout.expanded + layout.depthwise,
                b: UnsafeMutableRawPointer(s + layout.expanded + layout.depthwise + layout.plane))
        }
        let q = ActivationQuantization(
            range: ranges.max()!, precision: o.projection.precision, maxAbsRowSum: o.projection.maxAbsRowSum)
        parallelFor(bands, threads: threads) { band in
            let rows = chunk(d.outH, parts: bands, index: band), s = scratch + band * layout.floats
            let pixels = rows.count * d.outW, ld = quantizedLeadingDimension(pixels)
            let b = UnsafeMutableRawPointer(s + layout.expanded + layout.depthwise + layout.plane)
            packPointwise(
                s + layout.expanded, channels: d.inC, pixels: pixels, columns: 0..<pixels, quantization: q,
                kGroups: 0..<o.projection.kGroups, into: b, ld: ld)
            quantizedGEMM(
                o.projection, b: b, ld: ld, pixels: (rows.lowerBound * d.outW)..<(rows.upperBound * d.outW),
                stride: d.pixels, quantization: q, output: .float(o.output, o.projectionEpilogue), threads: 1)
        }
    }
}

/// One band's expansion (the input rows its output rows read) into `expanded`, then its depthwise rows into
/// `filtered`; returns max |filtered| (NaN ignored, as `maxAbs`).
private func expandAndFilter(
    _ o: QuantizedBlockOperands, rows: Range<Int>, quantization q: ActivationQuantization, layout: QuantizedBlockLayout,
    expanded: UnsafeMutablePointer<Float>, filtered: UnsafeMutablePointer<Float>, plane: UnsafeMutablePointer<Float>,
    b: UnsafeMutableRawPointer
) -> Float {
    let d = o.depthwise, read = inputRows(d, rows), pixels = read.count * d.inW
    let ld = quantizedLeadingDimension(pixels)
    packPointwise(
        o.input, channels: o.expansion.k, pixels: d.inH * d.inW,
        columns: (read.lowerBound * d.inW)..<(read.upperBound * d.inW), quantization: q,
        kGroups: 0..<o.expansion.kGroups, into: b, ld: ld)
    quantizedGEMM(
        o.expansion, b: b, ld: ld, pixels: 0..<pixels, stride: pixels, quantization: q,
        output: .float(expanded, o.expansionEpilogue), threads: 1)
    let g = bandGeometry(d, rows: rows.count), count = rows.count * d.outW, pl = layout.planeLayout
    plane.initialize(repeating: 0, count: pl.planes * pl.planeFloats)
    for c in 0..<d.inC {
        let input = expanded + c * pixels, weights = o.depthwiseWeights + c * 9
        let sink = DepthwiseSink(o.depthwiseEpilogue, channel: c, output: filtered, count: count)
        if d.strideH == 1 {
            fillBandPlane(
                d, input: input, firstRow: read.lowerBound, y0: rows.lowerBound, rows: rows.count, plane: plane,
                layout: pl)
            depthwise3x3Stride1Channel(
                g, taps: DepthwiseTapRows(first: plane, second: plane + 1, shift: 2, width: pl.planeWidth),
                weights: weights, sink: sink)
        } else {
            // Plane row r holds input row 2·y0 − 1 + r; rows outside the map stay zero from the initialisation.
            for y in read {
                depthwiseSplitIntoPlanes(
                    input + (y - read.lowerBound) * d.inW, d, row: y - (rows.lowerBound * 2 - 1), planes: plane,
                    layout: pl)
            }
            depthwise3x3Stride2Channel(
                g, taps: DepthwiseTapRows(first: plane, second: plane + pl.planeFloats, shift: 1, width: pl.planeWidth),
                weights: weights, sink: sink)
        }
    }
    return maxAbs(filtered, count: d.inC * count)
}

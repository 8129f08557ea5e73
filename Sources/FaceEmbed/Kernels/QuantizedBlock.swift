// An int8 inverted bottleneck (MobileFaceNet's body at stride 1): 1×1 expansion, 3×3 depthwise in float32, 1×1
// projection, run by bands of output rows, one band per thread from the block's input to its output.
//
//   x [C][H][W] --expansion (int8 GEMM + epilogue) on rows y0 − 1 ..< y0 + R + 1--> e [T][R + 2][W]   per band
//   e --depthwise 3×3, stride 1, padding 1 (zero rows outside the map) + epilogue--> d [T][R][W]      per band
//   d --projection (int8 GEMM + epilogue, residual)--> y [C][H][W] rows y0 ..< y0 + R
//
// Layer by layer on two threads the GEMMs split the pixels and the depthwise layer the channels, so each core reads
// half of what the other wrote, and a core rewriting lines the other has read waits for every copy to be invalidated
// (50 KB in 4.6 µs against 0.9 when the other core had written them: two pinned threads, a C microbenchmark). By
// bands only the halo rows of x cross between cores; e and d stay in the band's core (per-band scratch). The
// expansion computes the halo rows in both bands (two extra rows each).
//
// Each 8-bit input is quantized with the max |x| of the whole tensor, as layer by layer, so the block's output is
// the same bit for bit: max |x| before the bands start, max |d| of every band before any band projects (two joins).

/// Rows a band needs at least: smaller bands spend more on the halo than they save (7×7 maps stay layer by layer).
let quantizedBlockMinimumRows = 7

/// The bands `quantizedBlock` splits a map of `height` rows into on `threads` threads (fewer than 2: none, and the
/// block runs layer by layer).
func quantizedBlockBands(height: Int, threads: Int) -> Int { min(threads, height / quantizedBlockMinimumRows) }

/// The three layers of a block, as `quantizedBlock` reads them.
struct QuantizedBlockOperands {
    let input: UnsafePointer<Float>
    let expansion: QuantizedWeightPointers, expansionEpilogue: Epilogue
    let depthwise: ConvGeometry, depthwiseWeights: UnsafePointer<Float>, depthwiseEpilogue: Epilogue
    let projection: QuantizedWeightPointers, projectionEpilogue: Epilogue
    let output: UnsafeMutablePointer<Float>
}

/// Per-band scratch, in floats: e, d, the depthwise layer's band plane, and B of either GEMM.
private struct QuantizedBlockLayout {
    let expanded: Int, depthwise: Int, plane: Int, b: Int
    let planeLayout: DepthwiseLayout

    init(_ d: ConvGeometry, expansionGroups: Int, projectionGroups: Int, rows: Int) {
        expanded = (d.inC * (rows + 2) * d.inW + 15) / 16 * 16
        depthwise = (d.inC * rows * d.inW + 15) / 16 * 16
        var band = d
        band.inH = rows; band.outH = rows
        planeLayout = DepthwiseLayout(band)
        plane = (planeLayout.floats + 15) / 16 * 16
        let bytes =
            max(
                expansionGroups * quantizedLeadingDimension((rows + 2) * d.inW),
                projectionGroups * quantizedLeadingDimension(rows * d.inW)) * 4
        b = (bytes + 63) / 64 * 16
    }

    var floats: Int { expanded + depthwise + plane + b }
}

/// Floats of shared scratch `quantizedBlock` needs for the depthwise geometry `d` on up to `threads` threads.
func quantizedBlockScratch(_ d: ConvGeometry, expansionGroups: Int, projectionGroups: Int, threads: Int) -> Int {
    let most = quantizedBlockBands(height: d.outH, threads: threads)
    guard most >= 2 else { return 0 }
    return (2...most).map { bands in
        let rows = (d.outH + bands - 1) / bands
        return bands
            * QuantizedBlockLayout(
                d, expansionGroups: expansionGroups, projectionGroups: projectionGroups, rows: rows
            ).floats
    }.max()!
}

/// Runs the block in `quantizedBlockBands(height:threads:)` bands (at least 2); `scratch` holds
/// `quantizedBlockScratch` floats.
func quantizedBlock(_ o: QuantizedBlockOperands, scratch: UnsafeMutablePointer<Float>, threads: Int) {
    let d = o.depthwise, h = d.inH, w = d.inW, channels = o.expansion.k, plane = h * w
    let bands = quantizedBlockBands(height: h, threads: threads)
    let layout = QuantizedBlockLayout(
        d, expansionGroups: o.expansion.kGroups, projectionGroups: o.projection.kGroups,
        rows: (h + bands - 1) / bands)
    let inputQuantization = ActivationQuantization(
        range: inputRange(o.input, channels: channels, plane: plane, affine: nil, threads: threads),
        precision: o.expansion.precision, maxAbsRowSum: o.expansion.maxAbsRowSum)
    withUnsafeTemporaryAllocation(of: Float.self, capacity: bands) { ranges in
        parallelFor(bands, threads: threads) { band in
            let rows = chunk(h, parts: bands, index: band), s = scratch + band * layout.floats
            ranges[band] = expandAndFilter(
                o, rows: rows, quantization: inputQuantization, layout: layout, expanded: s,
                filtered: s + layout.expanded, plane: s + layout.expanded + layout.depthwise,
                b: UnsafeMutableRawPointer(s + layout.expanded + layout.depthwise + layout.plane))
        }
        let q = ActivationQuantization(
            range: ranges.max()!, precision: o.projection.precision, maxAbsRowSum: o.projection.maxAbsRowSum)
        parallelFor(bands, threads: threads) { band in
            let rows = chunk(h, parts: bands, index: band), s = scratch + band * layout.floats
            let pixels = rows.count * w,
                b = UnsafeMutableRawPointer(s + layout.expanded + layout.depthwise + layout.plane)
            let ld = quantizedLeadingDimension(pixels)
            packPointwise(
                s + layout.expanded, channels: d.inC, pixels: pixels, columns: 0..<pixels, quantization: q,
                kGroups: 0..<o.projection.kGroups, into: b, ld: ld)
            quantizedGEMM(
                o.projection, b: b, ld: ld, pixels: (rows.lowerBound * w)..<(rows.upperBound * w), stride: plane,
                quantization: q, output: .float(o.output, o.projectionEpilogue), threads: 1)
        }
    }
}

/// One band's expansion (its rows and the halo rows inside the map) into `expanded`, then its depthwise rows into
/// `filtered`; returns max |filtered| (NaN ignored, as `maxAbs`).
private func expandAndFilter(
    _ o: QuantizedBlockOperands, rows: Range<Int>, quantization q: ActivationQuantization, layout: QuantizedBlockLayout,
    expanded: UnsafeMutablePointer<Float>, filtered: UnsafeMutablePointer<Float>, plane: UnsafeMutablePointer<Float>,
    b: UnsafeMutableRawPointer
) -> Float {
    let d = o.depthwise, w = d.inW
    let first = max(0, rows.lowerBound - 1), last = min(d.inH, rows.upperBound + 1), pixels = (last - first) * w
    let ld = quantizedLeadingDimension(pixels)
    packPointwise(
        o.input, channels: o.expansion.k, pixels: d.inH * w, columns: (first * w)..<(last * w), quantization: q,
        kGroups: 0..<o.expansion.kGroups, into: b, ld: ld)
    quantizedGEMM(
        o.expansion, b: b, ld: ld, pixels: 0..<pixels, stride: pixels, quantization: q,
        output: .float(expanded, o.expansionEpilogue), threads: 1)
    var g = d
    g.inH = rows.count; g.outH = rows.count
    let count = rows.count * w
    plane.initialize(repeating: 0, count: layout.planeLayout.planeFloats)
    for c in 0..<d.inC {
        fillBandPlane(
            d, input: expanded + c * pixels, firstRow: first, y0: rows.lowerBound, rows: rows.count, plane: plane,
            layout: layout.planeLayout)
        depthwise3x3Stride1Channel(
            g, taps: DepthwiseTapRows(first: plane, second: plane + 1, shift: 2, width: layout.planeLayout.planeWidth),
            weights: o.depthwiseWeights + c * 9,
            sink: DepthwiseSink(o.depthwiseEpilogue, channel: c, output: filtered, count: count))
    }
    return maxAbs(filtered, count: d.inC * count)
}

// Depthwise convolution (groups = inC = outC), one image at a time.
//
//   input  [C][inH][inW], weights [C][kh][kw], output [C][outH][outW]
//   out[c][y][x] = Σ w[c][ky][kx] · in[c][y·sh + ky − padH][x·sw + kx − padW]   (zero outside the input)
//
// Channels are split across threads; a thread works through its channels one at a time, so the channel's plane
// stays in L1 while it is used. Three paths:
//   • 3×3, stride 1 or 2 (MobileFaceNet's body): the channel is copied into a zero-bordered plane in scratch; for
//     stride 2 the copy splits it into its even and odd padded columns, so every load is contiguous there too (and
//     no second pass splits them). Four output rows are computed per pass, 8 pixels wide, the epilogue applied in
//     registers: each input row is loaded once and added into every output row it feeds, and the four accumulators
//     are independent chains of FMAs, so their latencies overlap instead of adding up.
//   • 1×1 output (the 7×7 global depthwise head): one dot product of the weights with the input per channel.
//   • anything else: a zero-bordered plane, one output row at a time, then `Epilogue.apply`.
// The padding of a plane is zeroed once per call; the copies write only the input's own positions, so it stays zero.

/// The three cases of `depthwiseConvolution`, and the scratch layout of one thread for each.
struct DepthwiseLayout {
    enum Path { case threeByThree, global, general }
    let path: Path
    /// Row length of a plane.
    let planeWidth: Int
    let planeHeight: Int
    /// 1, or 2 for a 3×3 stride-2 convolution (even padded columns, then odd ones).
    let planes: Int
    /// Output row rounded up to whole vectors (the general path's row buffer; 0 on the others).
    let rowWidth: Int

    init(_ g: ConvGeometry) {
        planeHeight = g.inH + 2 * g.padH
        let padded = g.inW + 2 * g.padW
        // The 3×3 paths load 8 pixels at a time from column 0 to max(outW, 8) (see `depthwiseColumns`).
        let vectorEnd = max(g.outW, 8)
        if g.outH == 1 && g.outW == 1 {
            path = .global; planes = 0; planeWidth = 0; rowWidth = 0
        } else if g.kH == 3 && g.kW == 3 && g.strideH == g.strideW && (g.strideH == 1 || g.strideH == 2) {
            path = .threeByThree; rowWidth = 0
            if g.strideW == 1 {
                planes = 1; planeWidth = max(padded, vectorEnd + 2)
            } else {
                planes = 2; planeWidth = max((padded + 1) / 2, vectorEnd + 1)
            }
        } else {
            path = .general; planes = 1
            rowWidth = (g.outW + 7) / 8 * 8
            planeWidth = g.strideW == 1 ? max(padded, rowWidth + g.kW - 1) : padded
        }
    }

    var planeFloats: Int { planeHeight * planeWidth }
    var floats: Int { planes * planeFloats + rowWidth }
}

/// Scratch floats one thread needs for `depthwiseConvolution` on `g`: the plane(s) and the general path's row.
func depthwiseScratch(_ g: ConvGeometry) -> Int { DepthwiseLayout(g).floats }

/// Fast depthwise convolution on one image (`.depthwise`); `o.scratch` holds `threads` blocks of
/// `depthwiseScratch(g)` floats.
func depthwiseConvolution(_ g: ConvGeometry, _ o: ConvolutionOperands, threads: Int) {
    let parts = max(1, min(threads, g.inC / 8))
    let layout = DepthwiseLayout(g)
    parallelFor(parts, threads: threads) { part in
        let channels = chunk(g.inC, parts: parts, index: part)
        if layout.path == .global {
            for c in channels { depthwiseGlobalChannel(g, o, channel: c) }
            return
        }
        let plane = o.scratch + part * layout.floats
        plane.initialize(repeating: 0, count: layout.planes * layout.planeFloats)
        for c in channels { depthwisePlaneChannel(g, layout, o, channel: c, plane: plane) }
    }
}

/// One channel on the 3×3 or general path: its input copied into the zero-bordered plane(s) at `plane`, then
/// convolved from there.
@inline(__always)
func depthwisePlaneChannel(
    _ g: ConvGeometry, _ layout: DepthwiseLayout, _ o: ConvolutionOperands, channel c: Int,
    plane: UnsafeMutablePointer<Float>
) {
    let src = o.input + c * g.inH * g.inW, w = o.weights + c * g.kH * g.kW, pw = layout.planeWidth
    let sink = DepthwiseSink(o.epilogue, channel: c, output: o.output, count: g.pixels)
    if layout.path == .threeByThree && g.strideW == 2 {
        for y in 0..<g.inH {
            depthwiseSplitIntoPlanes(src + y * g.inW, g, row: y + g.padH, planes: plane, layout: layout)
        }
        depthwise3x3Stride2Channel(
            g, taps: DepthwiseTapRows(first: plane, second: plane + layout.planeFloats, shift: 1, width: pw),
            weights: w, sink: sink)
        return
    }
    for y in 0..<g.inH {
        depthwiseCopyRow(src + y * g.inW, to: plane + (y + g.padH) * pw + g.padW, count: g.inW)
    }
    if layout.path == .threeByThree {
        depthwise3x3Stride1Channel(
            g, taps: DepthwiseTapRows(first: plane, second: plane + 1, shift: 2, width: pw),
            weights: w, sink: sink)
        return
    }
    let row = plane + layout.planeFloats
    for oy in 0..<g.outH {
        depthwiseRow(g, plane: plane, planeWidth: pw, weights: w, oy: oy, vectorWidth: layout.rowWidth, row: row)
        o.epilogue.apply(channel: c, acc: row, out: o.output, offset: (c * g.outH + oy) * g.outW, count: g.outW)
    }
}

/// Where a kernel row's three taps for output pixels x..<x+8 are in plane row r (the padded input's row r):
/// at `first`, `second`, and `first` + `shift` (each + r·width + x). Stride 1: first = the plane, second = the
/// plane + 1, shift 2; stride 2: first = the even columns, second = the odd ones, shift 1.
struct DepthwiseTapRows {
    let first: UnsafePointer<Float>, second: UnsafePointer<Float>
    let shift: Int, width: Int
}

/// One channel's output and its epilogue (applied in registers by `depthwise3x3Channel`).
struct DepthwiseSink {
    let out: UnsafeMutablePointer<Float>
    let epilogue: ChannelEpilogue<SIMD8<Float>>
    /// Output values of the channel (outH · outW).
    let count: Int

    @inline(__always)
    init(_ e: Epilogue, channel c: Int, output: UnsafeMutablePointer<Float>, count: Int) {
        out = output + c * count
        epilogue = e.channel(c, offset: c * count)
        self.count = count
    }
}

/// Calls `body(x)` for the first column of each 8-pixel vector covering `0..<width`: 0, 8, 16, … and, when the width
/// is not a multiple of 8, a last vector ending exactly at the row's end (overlapping the one before it, so stores
/// never leave the row). A row narrower than 8 is one vector at 0.
@inline(__always)
func depthwiseColumns(_ width: Int, _ body: (Int) -> Void) {
    var x = 0
    while true {
        body(x)
        if x &+ 8 >= width { return }
        x = min(x &+ 8, width &- 8)
    }
}

/// A whole output channel of a 3×3 depthwise convolution from the plane(s) `taps` describes (one entry point per
/// stride, so the stride is a constant in the loops below). Not inlined on purpose: with `taps` unknown, the
/// compiler cannot relate the three overlapping loads of a kernel row, which it otherwise rebuilds from one another
/// with shuffles and scalar loads (measured 1.5× slower).
@inline(never)
func depthwise3x3Stride1Channel(
    _ g: ConvGeometry, taps: DepthwiseTapRows, weights w: UnsafePointer<Float>,
    sink: DepthwiseSink
) {
    depthwise3x3Channel(g, stride: 1, taps: taps, weights: w, sink: sink)
}

/// As `depthwise3x3Stride1Channel`, for stride 2.
@inline(never)
func depthwise3x3Stride2Channel(
    _ g: ConvGeometry, taps: DepthwiseTapRows, weights w: UnsafePointer<Float>,
    sink: DepthwiseSink
) {
    depthwise3x3Channel(g, stride: 2, taps: taps, weights: w, sink: sink)
}

/// Four output rows per pass, then one at a time. Each input row a pass needs is loaded once, 8 pixels wide, and
/// added into every output row whose window covers it (up to three): four independent accumulators, and at
/// stride 1 half the loads (18 per 36 multiply-adds).
@inline(__always)
func depthwise3x3Channel(
    _ g: ConvGeometry, stride s: Int, taps: DepthwiseTapRows, weights w: UnsafePointer<Float>,
    sink: DepthwiseSink
) {
    typealias V = SIMD8<Float>
    @inline(__always) func kernelRow(_ r: Int) -> (V, V, V) {
        (V(repeating: w[3 * r]), V(repeating: w[3 * r + 1]), V(repeating: w[3 * r + 2]))
    }
    let k = (kernelRow(0), kernelRow(1), kernelRow(2))
    @inline(__always) func kernel(_ r: Int) -> (V, V, V) { r == 0 ? k.0 : r == 1 ? k.1 : k.2 }
    /// Plane row `r` under output pixels x..<x+8.
    @inline(__always) func load(_ r: Int, _ x: Int) -> (V, V, V) {
        let o = r &* taps.width &+ x
        let a = UnsafeRawPointer(taps.first + o), b = UnsafeRawPointer(taps.second + o)
        return (
            loadVector(a, as: V.self), loadVector(b, as: V.self),
            loadVector(a + taps.shift &* 4, as: V.self)
        )
    }
    @inline(__always) func add(_ acc: inout V, _ t: (V, V, V), _ k: (V, V, V)) {
        multiplyAdd(&acc, k.0, t.0); multiplyAdd(&acc, k.1, t.1); multiplyAdd(&acc, k.2, t.2)
    }
    // The epilogue's values taken out of `sink` once: read through it at each store, they were loaded again every
    // time (the optimiser cannot tell that a store to the output leaves them alone), the PReLU slopes lane by lane
    // (y1 int8 on one thread 2.33 → 2.23 ms; 128×28×28 at stride 1 47 → 38 µs).
    let out = sink.out, count = sink.count, bias = sink.epilogue.bias, residual = sink.epilogue.residual
    let prelu = sink.epilogue.slope != nil, slope = sink.epilogue.slope ?? V(repeating: 1)
    // Applies the epilogue to `acc` and stores it at flat index `i` of the channel. When a row is shorter than 8 the
    // vector runs on into the next rows, which are stored after it; only at the channel's end are the lanes stored
    // one by one, so nothing outside the channel is touched.
    @inline(__always) func put(_ acc: V, at i: Int) {
        guard i &+ 8 <= count else {
            sink.epilogue.store(acc, at: i, count: count &- i, to: out)
            return
        }
        var v = acc + bias
        if prelu { v = v.replacing(with: v * slope, where: v .< V()) }
        if let residual { v += loadVector(residual + i, as: V.self) }
        storeVector(v, to: out + i)
    }
    var oy = 0
    while oy + 4 <= g.outH {
        depthwiseColumns(g.outW) { x in
            var a0 = V(), a1 = V(), a2 = V(), a3 = V()
            for r in 0..<(3 * s + 3) {  // input rows s·oy + r; output row oy + j covers r in s·j ... s·j + 2
                let t = load(s &* oy &+ r, x)
                if r <= 2 { add(&a0, t, kernel(r)) }
                if r >= s && r - s <= 2 { add(&a1, t, kernel(r - s)) }
                if r >= 2 * s && r - 2 * s <= 2 { add(&a2, t, kernel(r - 2 * s)) }
                if r >= 3 * s { add(&a3, t, kernel(r - 3 * s)) }
            }
            let i = oy &* g.outW &+ x
            put(a0, at: i); put(a1, at: i &+ g.outW)
            put(a2, at: i &+ 2 &* g.outW); put(a3, at: i &+ 3 &* g.outW)
        }
        oy += 4
    }
    while oy < g.outH {
        depthwiseColumns(g.outW) { x in
            var acc = V()
            for r in 0..<3 { add(&acc, load(s &* oy &+ r, x), kernel(r)) }
            put(acc, at: oy &* g.outW &+ x)
        }
        oy += 1
    }
}

/// Copies `count` floats with whole 8-float moves (4-float ones for a row of 4 to 7), the last one overlapping the
/// one before it rather than running past the end (the zero border around the destination row must stay zero).
@inline(__always)
func depthwiseCopyRow(_ src: UnsafePointer<Float>, to dst: UnsafeMutablePointer<Float>, count n: Int) {
    @inline(__always) func move<V: SIMD>(_ x: Int, _: V.Type) where V.Scalar == Float {
        UnsafeMutableRawPointer(dst + x).storeBytes(of: loadVector(UnsafeRawPointer(src + x), as: V.self), as: V.self)
    }
    if n < 4 {
        for x in 0..<n { dst[x] = src[x] }
    } else if n < 8 {
        move(0, SIMD4<Float>.self); move(n - 4, SIMD4<Float>.self)
    } else {
        var x = 0
        while x + 8 < n { move(x, SIMD8<Float>.self); x += 8 }
        move(n - 8, SIMD8<Float>.self)
    }
}

/// One input row of a stride-2 channel (`g.inW` floats at `src`) into plane row `row` of its two planes: the even
/// padded columns at `planes`, the odd ones a plane later. Input column x is padded column x + padW, and padded
/// column j goes to plane j & 1, index j >> 1.
@inline(__always)
func depthwiseSplitIntoPlanes(
    _ src: UnsafePointer<Float>, _ g: ConvGeometry, row: Int, planes: UnsafeMutablePointer<Float>,
    layout: DepthwiseLayout
) {
    let even = planes + row * layout.planeWidth, odd = even + layout.planeFloats
    let evenColumns = g.padW & 1 == 0 ? even : odd, oddColumns = g.padW & 1 == 0 ? odd : even
    depthwiseSplitRow(
        src, count: g.inW, evens: evenColumns + g.padW / 2, odds: oddColumns + (g.padW + 1) / 2)
}

/// Deinterleaves `count` floats: src[2m] to evens[m], src[2m + 1] to odds[m]. Whole 16- then 8-float loads; the
/// last load overlaps the one before it, starting at an even index so every value still lands in its own place.
@inline(__always)
func depthwiseSplitRow(
    _ src: UnsafePointer<Float>, count n: Int, evens: UnsafeMutablePointer<Float>,
    odds: UnsafeMutablePointer<Float>
) {
    @inline(__always) func split16(_ x: Int) {
        let v = loadVector(UnsafeRawPointer(src + x), as: SIMD16<Float>.self)
        UnsafeMutableRawPointer(evens + x / 2).storeBytes(of: v.evenHalf, as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(odds + x / 2).storeBytes(of: v.oddHalf, as: SIMD8<Float>.self)
    }
    @inline(__always) func split8(_ x: Int) {
        let v = loadVector(UnsafeRawPointer(src + x), as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(evens + x / 2).storeBytes(of: v.evenHalf, as: SIMD4<Float>.self)
        UnsafeMutableRawPointer(odds + x / 2).storeBytes(of: v.oddHalf, as: SIMD4<Float>.self)
    }
    var x = 0
    while x + 16 <= n { split16(x); x += 16 }
    while x + 8 <= n { split8(x); x += 8 }
    if x == n { return }
    if n >= 8 {
        split8((n - 8) & ~1)
        if n & 1 == 1 { evens[n / 2] = src[n - 1] }  // an odd count's last value is past an even-started vector
    } else {
        for x in 0..<n where x & 1 == 0 { evens[x / 2] = src[x] }
        for x in 0..<n where x & 1 == 1 { odds[x / 2] = src[x] }
    }
}

/// One channel of a depthwise convolution whose output is a single pixel: the weights under the input (the taps
/// in the padding contribute nothing), as one dot product when kernel rows and input rows have the same length.
@inline(__always)
func depthwiseGlobalChannel(_ g: ConvGeometry, _ o: ConvolutionOperands, channel c: Int) {
    let src = o.input + c * g.inH * g.inW, w = o.weights + c * g.kH * g.kW
    // Kernel row ky covers input row ky − padH; kernel column kx covers input column kx − padW.
    let rows = min(g.padH, g.kH)..<min(g.kH, g.inH + g.padH)
    let columns = min(g.inW, g.kW - g.padW)
    var acc: Float = 0
    if columns == g.inW && columns == g.kW {
        acc = dot(src + (rows.lowerBound - g.padH) * g.inW, w + rows.lowerBound * g.kW, count: rows.count * columns)
    } else if columns > 0 {
        for ky in rows { acc += dot(src + (ky - g.padH) * g.inW, w + ky * g.kW + g.padW, count: columns) }
    }
    withUnsafePointer(to: acc) { o.epilogue.apply(channel: c, acc: $0, out: o.output, offset: c, count: 1) }
}

/// One output row of one channel: row[x] = Σ w[ky][kx] · plane[oy·sh + ky][x·sw + kx]. Stride 1 computes
/// `vectorWidth` values 8 at a time (the plane is wide enough); other strides run scalar.
@inline(__always)
func depthwiseRow(
    _ g: ConvGeometry, plane: UnsafePointer<Float>, planeWidth pw: Int, weights w: UnsafePointer<Float>,
    oy: Int, vectorWidth: Int, row: UnsafeMutablePointer<Float>
) {
    typealias V = SIMD8<Float>
    var x = 0
    if g.strideW == 1 {
        while x < vectorWidth {
            var acc = V()
            for ky in 0..<g.kH {
                let line = UnsafeRawPointer(plane + (oy * g.strideH + ky) * pw + x)
                for kx in 0..<g.kW {
                    acc += V(repeating: w[ky * g.kW + kx]) * loadVector(line + kx * 4, as: V.self)
                }
            }
            UnsafeMutableRawPointer(row + x).storeBytes(of: acc, as: V.self)
            x += 8
        }
        return
    }
    while x < g.outW {
        var acc: Float = 0
        for ky in 0..<g.kH {
            let line = plane + (oy * g.strideH + ky) * pw + x * g.strideW
            for kx in 0..<g.kW { acc += w[ky * g.kW + kx] * line[kx] }
        }
        row[x] = acc
        x += 1
    }
}

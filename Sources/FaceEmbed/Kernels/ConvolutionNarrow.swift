// Convolution with few output channels, stride 1 (a detector's heads: 2, 8 or 20 channels from 64): the
// `.narrow` kernel of `ConvolutionKernel`.
//
//   x: [inC][H][W], copied once, zero-padded, into shared scratch P: [inC][H + 2·padH][W + 2·padW]
//   y[o][oy][ox] = Σ_{ic,ky,kx} w(o, k) · P[ic][oy + ky][ox + kx],   k = (ic·kH + ky)·kW + kx
//   w: lane-packed a[blk][K][16] read as scalars, w(o, k) = a[o / 16][k][o % 16]; lanes past outC hold zeros, so
//      a group of channels reaching past outC reads zeros and its extra channels are never stored.
//
// Vectorised over output pixels instead of channels: two vectors of 16 consecutive output pixels of one row, each
// tap one unaligned load per vector from P, times 8 (or, for the last ≤ 4 channels, 4) broadcast weights, into
// 8 channels × 2 vectors of accumulators. The GEMM kernels put 16 output channels in a vector, which leaves 14 of
// 16 lanes idle on a 2-channel convolution. A row narrower than 32 pixels overlaps its two vectors; the last block
// of a row is moved back to end at the row's end (both recompute and store the same values). Channel groups start
// at multiples of 8 (then 4 for the last), so a group never crosses a block of 16 lane-packed channels.

/// Whether `.narrow` runs `g`: few output channels, stride 1, rows of at least 16 pixels. 16 channels fill a
/// vector of the GEMM and Winograd kernels, but Winograd gives a single block of output channels to one thread and
/// its input transform costs most on wide maps: there `.narrow` runs from rows of 64 pixels (SCRFD's 16 × 80 × 80
/// 3×3: 0.465 → 0.364 ms on one thread, 0.451 → 0.205 on two; at 40 × 40 Winograd still wins on one, 0.094 ms
/// against 0.115).
func narrowApplies(_ g: ConvGeometry) -> Bool {
    g.groups == 1 && g.strideH == 1 && g.strideW == 1 && g.outC <= 24 && g.outW >= 16 && !g.isPointwise
        && (g.outC != weightLanes || g.outW >= 64)
}

/// Shared scratch floats of `.narrow`: the zero-padded input.
func narrowSharedScratch(_ g: ConvGeometry) -> Int { g.inC * (g.inH + 2 * g.padH) * (g.inW + 2 * g.padW) }

/// Per-thread scratch floats of `.narrow`: one 8-channel × 32-pixel accumulator tile for the epilogue.
let narrowScratch = 8 * 32

/// `.narrow`: pads the input into `o.shared`, then splits output rows across threads.
func narrowConvolution(_ g: ConvGeometry, _ o: ConvolutionOperands, threads: Int) {
    let ph = g.inH + 2 * g.padH, pw = g.inW + 2 * g.padW, padded = o.shared
    parallelFor(min(threads, g.inC), threads: threads) { part in
        for ic in chunk(g.inC, parts: min(threads, g.inC), index: part) {
            padPlane(o.input + ic * g.inH * g.inW, g, into: padded + ic * ph * pw)
        }
    }
    let parts = max(1, min(threads, g.outH))
    parallelFor(parts, threads: threads) { part in
        let tile = o.scratch + part * narrowScratch
        for oy in chunk(g.outH, parts: parts, index: part) {
            var o0 = 0
            while o0 < g.outC {
                let wide = g.outC - o0 > 4
                narrowRow(g, o, padded: UnsafePointer(padded), oy: oy, o0: o0, wide: wide, tile: tile)
                o0 += wide ? 8 : 4
            }
        }
    }
}

/// One input plane into the middle of its zero-bordered copy.
private func padPlane(_ x: UnsafePointer<Float>, _ g: ConvGeometry, into p: UnsafeMutablePointer<Float>) {
    let ph = g.inH + 2 * g.padH, pw = g.inW + 2 * g.padW
    p.update(repeating: 0, count: ph * pw)
    for y in 0..<g.inH {
        (p + (y + g.padH) * pw + g.padW).update(from: x + y * g.inW, count: g.inW)
    }
}

/// Output row `oy`, channels `o0 ..< o0 + 8` if `wide`, else `o0 ..< o0 + 4` (those below outC stored), in blocks
/// of 32 pixels.
@inline(__always)
private func narrowRow(
    _ g: ConvGeometry, _ o: ConvolutionOperands, padded: UnsafePointer<Float>, oy: Int, o0: Int, wide: Bool,
    tile: UnsafeMutablePointer<Float>
) {
    let second = min(16, g.outW - 16)
    var x0 = 0
    while true {
        let start = min(x0, g.outW - 16 - second)
        if wide {
            narrowBlock8(g, o.weights, padded: padded, oy: oy, x0: start, second: second, o0: o0, tile: tile)
        } else {
            narrowBlock4(g, o.weights, padded: padded, oy: oy, x0: start, second: second, o0: o0, tile: tile)
        }
        for c in 0..<min(wide ? 8 : 4, g.outC - o0) {
            let acc = tile + c * 32, offset = (o0 + c) * g.pixels + oy * g.outW + start
            o.epilogue.apply(channel: o0 + c, acc: acc, out: o.output, offset: offset, count: 16)
            o.epilogue.apply(
                channel: o0 + c, acc: acc + 16, out: o.output, offset: offset + second, count: 16)
        }
        x0 += 16 + second
        if x0 >= g.outW { break }
    }
}

/// Accumulates channels o0 ..< o0 + 4 at output pixels (oy, x0 ..< x0 + 16) and (oy, x0 + second ..< + 16) into
/// `tile` ([4][32]).
@inline(__always)
private func narrowBlock4(
    _ g: ConvGeometry, _ weights: UnsafePointer<Float>, padded: UnsafePointer<Float>, oy: Int, x0: Int,
    second: Int, o0: Int, tile: UnsafeMutablePointer<Float>
) {
    typealias V = SIMD16<Float>
    let ph = g.inH + 2 * g.padH, pw = g.inW + 2 * g.padW, taps = g.kH * g.kW
    let w = weights + (o0 / weightLanes) * g.k * weightLanes + o0 % weightLanes
    var a0 = V(), a1 = V(), a2 = V(), a3 = V(), b0 = V(), b1 = V(), b2 = V(), b3 = V()
    for ic in 0..<g.inC {
        for ky in 0..<g.kH {
            let row = UnsafeRawPointer(padded + (ic * ph + oy + ky) * pw + x0)
            let wk = w + (ic * taps + ky * g.kW) * weightLanes
            for kx in 0..<g.kW {
                let p = loadVector(row + kx * 4, as: V.self)
                let q = loadVector(row + (kx + second) * 4, as: V.self)
                let s = wk + kx * weightLanes
                let w0 = V(repeating: s[0]), w1 = V(repeating: s[1]), w2 = V(repeating: s[2])
                let w3 = V(repeating: s[3])
                multiplyAdd(&a0, p, w0); multiplyAdd(&b0, q, w0)
                multiplyAdd(&a1, p, w1); multiplyAdd(&b1, q, w1)
                multiplyAdd(&a2, p, w2); multiplyAdd(&b2, q, w2)
                multiplyAdd(&a3, p, w3); multiplyAdd(&b3, q, w3)
            }
        }
    }
    for (c, (a, b)) in [(a0, b0), (a1, b1), (a2, b2), (a3, b3)].enumerated() {
        storeVector(a, to: tile + c * 32)
        storeVector(b, to: tile + c * 32 + 16)
    }
}

/// Accumulates channels o0 ..< o0 + 8 at output pixels (oy, x0 ..< x0 + 16) and (oy, x0 + second ..< + 16) into
/// `tile` ([8][32]): 16 accumulators, two pixel loads and eight broadcasts per tap.
@inline(__always)
private func narrowBlock8(
    _ g: ConvGeometry, _ weights: UnsafePointer<Float>, padded: UnsafePointer<Float>, oy: Int, x0: Int,
    second: Int, o0: Int, tile: UnsafeMutablePointer<Float>
) {
    typealias V = SIMD16<Float>
    let ph = g.inH + 2 * g.padH, pw = g.inW + 2 * g.padW, taps = g.kH * g.kW
    let w = weights + (o0 / weightLanes) * g.k * weightLanes + o0 % weightLanes
    var a0 = V(), a1 = V(), a2 = V(), a3 = V(), a4 = V(), a5 = V(), a6 = V(), a7 = V()
    var b0 = V(), b1 = V(), b2 = V(), b3 = V(), b4 = V(), b5 = V(), b6 = V(), b7 = V()
    for ic in 0..<g.inC {
        for ky in 0..<g.kH {
            let row = UnsafeRawPointer(padded + (ic * ph + oy + ky) * pw + x0)
            let wk = w + (ic * taps + ky * g.kW) * weightLanes
            for kx in 0..<g.kW {
                let p = loadVector(row + kx * 4, as: V.self)
                let q = loadVector(row + (kx + second) * 4, as: V.self)
                let s = wk + kx * weightLanes
                var w0 = V(repeating: s[0]), w1 = V(repeating: s[1])
                multiplyAdd(&a0, p, w0); multiplyAdd(&b0, q, w0); multiplyAdd(&a1, p, w1); multiplyAdd(&b1, q, w1)
                w0 = V(repeating: s[2]); w1 = V(repeating: s[3])
                multiplyAdd(&a2, p, w0); multiplyAdd(&b2, q, w0); multiplyAdd(&a3, p, w1); multiplyAdd(&b3, q, w1)
                w0 = V(repeating: s[4]); w1 = V(repeating: s[5])
                multiplyAdd(&a4, p, w0); multiplyAdd(&b4, q, w0); multiplyAdd(&a5, p, w1); multiplyAdd(&b5, q, w1)
                w0 = V(repeating: s[6]); w1 = V(repeating: s[7])
                multiplyAdd(&a6, p, w0); multiplyAdd(&b6, q, w0); multiplyAdd(&a7, p, w1); multiplyAdd(&b7, q, w1)
            }
        }
    }
    let accumulators = [(a0, b0), (a1, b1), (a2, b2), (a3, b3), (a4, b4), (a5, b5), (a6, b6), (a7, b7)]
    for (c, (a, b)) in accumulators.enumerated() {
        storeVector(a, to: tile + c * 32)
        storeVector(b, to: tile + c * 32 + 16)
    }
}

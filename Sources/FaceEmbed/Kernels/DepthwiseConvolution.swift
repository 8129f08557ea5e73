// Depthwise convolution (groups = inC = outC), one image at a time.
//
//   input  [C][inH][inW], weights [C][kh][kw], output [C][outH][outW]
//   Each channel is copied into a zero-bordered plane [(inH + 2·padH)][(inW + 2·padW)] in scratch, so the inner
//   loop has no bounds checks: out[y][x] = Σ w[ky][kx] · plane[y·s + ky][x·s + kx]. Stride 1 runs 8 pixels wide.
// Channels are split across threads. Covers MobileFaceNet's 3×3 s1/s2 layers and its 7×7 global depthwise head.

/// Scratch floats one thread needs for `depthwiseConvolution` on `g`: a padded plane and one output row.
func depthwiseScratch(_ g: ConvGeometry) -> Int { (g.inH + 2 * g.padH) * (g.inW + 2 * g.padW) + g.outW + 8 }

/// Fast depthwise convolution on one image; `scratch` holds `threads` blocks of `depthwiseScratch(g)` floats.
func depthwiseConvolution(_ g: ConvGeometry, input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                          epilogue: Epilogue, output: UnsafeMutablePointer<Float>,
                          scratch: UnsafeMutablePointer<Float>, threads: Int) {
    let parts = max(1, min(threads, g.inC / 8))
    let perThread = depthwiseScratch(g)
    let pw = g.inW + 2 * g.padW, ph = g.inH + 2 * g.padH
    parallelFor(parts, threads: threads) { part in
        let plane = scratch + part * perThread
        let row = plane + pw * ph
        if g.padH > 0 || g.padW > 0 { plane.initialize(repeating: 0, count: pw * ph) }
        for c in chunk(g.inC, parts: parts, index: part) {
            let src = input + c * g.inH * g.inW
            for y in 0..<g.inH {
                (plane + (y + g.padH) * pw + g.padW).update(from: src + y * g.inW, count: g.inW)
            }
            let w = weights + c * g.kH * g.kW
            for oy in 0..<g.outH {
                depthwiseRow(g, plane: plane, planeWidth: pw, weights: w, oy: oy, row: row)
                epilogue.apply(channel: c, acc: row, out: output, offset: (c * g.outH + oy) * g.outW, count: g.outW)
            }
        }
    }
}

/// One output row of one channel: row[x] = Σ w[ky][kx] · plane[oy·sh + ky][x·sw + kx].
@inline(__always)
func depthwiseRow(_ g: ConvGeometry, plane: UnsafePointer<Float>, planeWidth pw: Int, weights w: UnsafePointer<Float>,
                  oy: Int, row: UnsafeMutablePointer<Float>) {
    typealias V = SIMD8<Float>
    var x = 0
    if g.strideW == 1 {
        while x + 8 <= g.outW {
            var acc = V()
            for ky in 0..<g.kH {
                let line = UnsafeRawPointer(plane + (oy * g.strideH + ky) * pw + x)
                for kx in 0..<g.kW {
                    acc += V(repeating: w[ky * g.kW + kx]) * line.loadUnaligned(fromByteOffset: kx * 4, as: V.self)
                }
            }
            UnsafeMutableRawPointer(row + x).storeBytes(of: acc, as: V.self)
            x += 8
        }
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

// Depthwise convolution (groups = inC = outC), one image at a time.
//
//   input  [C][inH][inW], weights [C][kh][kw], output [C][outH][outW]
//   Each channel is copied into a zero-bordered plane [(inH + 2·padH)][(inW + 2·padW)] in scratch, so the inner
//   loop has no bounds checks: out[y][x] = Σ w[ky][kx] · plane[y·s + ky][x·s + kx]. Stride 1 runs 8 pixels wide
//   over a plane widened so whole vectors fit; stride 2 (3 wide) splits the plane into even and odd columns so its
//   loads are contiguous too.
// Channels are split across threads. Covers MobileFaceNet's 3×3 s1/s2 layers and its 7×7 global depthwise head.

/// Padded-plane layout of a depthwise convolution: every vector load of the 8-wide loops stays inside it.
struct DepthwiseLayout {
    /// Output row length rounded up to whole vectors.
    let vectorWidth: Int
    /// Row length of the zero-bordered input plane (at least the padded input width).
    let planeWidth: Int
    let planeHeight: Int
    /// Stride 2 with a 3-wide kernel: the plane is also split into even and odd columns (`planeWidth / 2` each).
    let splitColumns: Bool

    init(_ g: ConvGeometry) {
        vectorWidth = (g.outW + 7) / 8 * 8
        planeHeight = g.inH + 2 * g.padH
        let padded = g.inW + 2 * g.padW
        splitColumns = g.strideW == 2 && g.kW == 3
        if splitColumns {
            planeWidth = (max(padded, 2 * vectorWidth + 2) + 15) / 16 * 16
        } else if g.strideW == 1 {
            planeWidth = max(padded, vectorWidth + g.kW - 1)
        } else {
            planeWidth = padded
        }
    }

    var floats: Int { planeHeight * planeWidth * (splitColumns ? 2 : 1) + vectorWidth + 8 }
}

/// Scratch floats one thread needs for `depthwiseConvolution` on `g`: the padded plane(s) and one output row.
func depthwiseScratch(_ g: ConvGeometry) -> Int { DepthwiseLayout(g).floats }

/// Fast depthwise convolution on one image; `scratch` holds `threads` blocks of `depthwiseScratch(g)` floats.
func depthwiseConvolution(_ g: ConvGeometry, input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                          epilogue: Epilogue, output: UnsafeMutablePointer<Float>,
                          scratch: UnsafeMutablePointer<Float>, threads: Int) {
    let parts = max(1, min(threads, g.inC / 8))
    let perThread = depthwiseScratch(g)
    let layout = DepthwiseLayout(g)
    let pw = layout.planeWidth, ph = layout.planeHeight
    parallelFor(parts, threads: threads) { part in
        let plane = scratch + part * perThread
        let split = plane + pw * ph           // even columns, then odd columns (split layout only)
        let row = plane + layout.floats - layout.vectorWidth - 8
        plane.initialize(repeating: 0, count: pw * ph)
        for c in chunk(g.inC, parts: parts, index: part) {
            let src = input + c * g.inH * g.inW
            for y in 0..<g.inH {
                // Row copy without a memmove call per (short) row; the zero border around it stays untouched.
                let s = src + y * g.inW, d = plane + (y + g.padH) * pw + g.padW
                var x = 0
                while x + 8 <= g.inW {
                    UnsafeMutableRawPointer(d + x).storeBytes(of: UnsafeRawPointer(s + x).loadUnaligned(as: SIMD8<Float>.self),
                                                              as: SIMD8<Float>.self)
                    x += 8
                }
                while x < g.inW { d[x] = s[x]; x += 1 }
            }
            let w = weights + c * g.kH * g.kW
            if layout.splitColumns {
                let half = pw / 2
                for y in 0..<ph {
                    let r = UnsafeRawPointer(plane + y * pw)
                    let e = UnsafeMutableRawPointer(split + y * half), o = UnsafeMutableRawPointer(split + ph * half + y * half)
                    var x = 0
                    while x < pw {
                        let v = r.loadUnaligned(fromByteOffset: x * 4, as: SIMD16<Float>.self)
                        e.storeBytes(of: v.evenHalf, toByteOffset: x * 2, as: SIMD8<Float>.self)
                        o.storeBytes(of: v.oddHalf, toByteOffset: x * 2, as: SIMD8<Float>.self)
                        x += 16
                    }
                }
                if g.kH == 3 && g.strideH == 2 {
                    depthwise3x3Stride2Channel(g, even: split, odd: split + ph * half, halfWidth: half, weights: w,
                                               epilogue: epilogue, channel: c, output: output)
                } else {
                    for oy in 0..<g.outH {
                        depthwiseRowStride2(g, even: split, odd: split + ph * half, halfWidth: half, weights: w, oy: oy,
                                            width: layout.vectorWidth, row: row)
                        epilogue.apply(channel: c, acc: row, out: output, offset: (c * g.outH + oy) * g.outW,
                                       count: g.outW)
                    }
                }
            } else if g.kH == 3 && g.kW == 3 && g.strideH == 1 && g.strideW == 1 {
                depthwise3x3Stride1Channel(g, plane: plane, planeWidth: pw, weights: w, epilogue: epilogue, channel: c,
                                           output: output)
            } else {
                for oy in 0..<g.outH {
                    depthwiseRow(g, plane: plane, planeWidth: pw, weights: w, oy: oy, vectorWidth: layout.vectorWidth,
                                 row: row)
                    epilogue.apply(channel: c, acc: row, out: output, offset: (c * g.outH + oy) * g.outW, count: g.outW)
                }
            }
        }
    }
}

/// A whole output channel of a 3×3, stride-1 depthwise convolution, the epilogue applied in registers: 8 pixels at a
/// time, the nine weights held in registers. A row's last vector may run past the row's end into the next row of the
/// same channel (rewritten right after, by this thread); only the channel's last row stores its tail lane by lane.
@inline(__always)
func depthwise3x3Stride1Channel(_ g: ConvGeometry, plane: UnsafePointer<Float>, planeWidth pw: Int,
                                weights w: UnsafePointer<Float>, epilogue: Epilogue, channel c: Int,
                                output: UnsafeMutablePointer<Float>) {
    typealias V = SIMD8<Float>
    let w0 = V(repeating: w[0]), w1 = V(repeating: w[1]), w2 = V(repeating: w[2]), w3 = V(repeating: w[3])
    let w4 = V(repeating: w[4]), w5 = V(repeating: w[5]), w6 = V(repeating: w[6]), w7 = V(repeating: w[7])
    let w8 = V(repeating: w[8])
    let bias = V(repeating: epilogue.bias[c])
    let slope = epilogue.slope.map { V(repeating: $0[c]) }
    let base = c * g.outH * g.outW
    let out = output + base, residual = epilogue.residual.map { $0 + base }
    for oy in 0..<g.outH {
        let l0 = UnsafeRawPointer(plane + oy * pw), l1 = UnsafeRawPointer(plane + (oy + 1) * pw)
        let l2 = UnsafeRawPointer(plane + (oy + 2) * pw)
        let lastRow = oy == g.outH - 1
        var x = 0
        while x < g.outW {
            let o = x * 4
            var acc = V()
            multiplyAdd(&acc, w0, l0.loadUnaligned(fromByteOffset: o, as: V.self))
            multiplyAdd(&acc, w1, l0.loadUnaligned(fromByteOffset: o + 4, as: V.self))
            multiplyAdd(&acc, w2, l0.loadUnaligned(fromByteOffset: o + 8, as: V.self))
            multiplyAdd(&acc, w3, l1.loadUnaligned(fromByteOffset: o, as: V.self))
            multiplyAdd(&acc, w4, l1.loadUnaligned(fromByteOffset: o + 4, as: V.self))
            multiplyAdd(&acc, w5, l1.loadUnaligned(fromByteOffset: o + 8, as: V.self))
            multiplyAdd(&acc, w6, l2.loadUnaligned(fromByteOffset: o, as: V.self))
            multiplyAdd(&acc, w7, l2.loadUnaligned(fromByteOffset: o + 4, as: V.self))
            multiplyAdd(&acc, w8, l2.loadUnaligned(fromByteOffset: o + 8, as: V.self))
            var v = acc + bias
            if let slope { v = v.replacing(with: v * slope, where: v .< 0) }
            let i = oy * g.outW + x
            if x + 8 <= g.outW || !lastRow {
                if let residual { v += UnsafeRawPointer(residual + i).loadUnaligned(as: V.self) }
                UnsafeMutableRawPointer(out + i).storeBytes(of: v, as: V.self)
            } else {
                for l in 0..<(g.outW - x) { out[i + l] = v[l] + (residual?[i + l] ?? 0) }
            }
            x += 8
        }
    }
}

/// A whole output channel of a 3×3, stride-2 depthwise convolution from the even/odd column planes, the epilogue
/// applied in registers (row tails as in `depthwise3x3Stride1Channel`).
@inline(__always)
func depthwise3x3Stride2Channel(_ g: ConvGeometry, even: UnsafePointer<Float>, odd: UnsafePointer<Float>,
                                halfWidth: Int, weights w: UnsafePointer<Float>, epilogue: Epilogue, channel c: Int,
                                output: UnsafeMutablePointer<Float>) {
    typealias V = SIMD8<Float>
    let w0 = V(repeating: w[0]), w1 = V(repeating: w[1]), w2 = V(repeating: w[2]), w3 = V(repeating: w[3])
    let w4 = V(repeating: w[4]), w5 = V(repeating: w[5]), w6 = V(repeating: w[6]), w7 = V(repeating: w[7])
    let w8 = V(repeating: w[8])
    let bias = V(repeating: epilogue.bias[c])
    let slope = epilogue.slope.map { V(repeating: $0[c]) }
    let base = c * g.outH * g.outW
    let out = output + base, residual = epilogue.residual.map { $0 + base }
    for oy in 0..<g.outH {
        let r0 = 2 * oy * halfWidth, r1 = r0 + halfWidth, r2 = r1 + halfWidth
        let e0 = UnsafeRawPointer(even + r0), e1 = UnsafeRawPointer(even + r1), e2 = UnsafeRawPointer(even + r2)
        let o0 = UnsafeRawPointer(odd + r0), o1 = UnsafeRawPointer(odd + r1), o2 = UnsafeRawPointer(odd + r2)
        let lastRow = oy == g.outH - 1
        var x = 0
        while x < g.outW {
            let o = x * 4
            var acc = V()
            multiplyAdd(&acc, w0, e0.loadUnaligned(fromByteOffset: o, as: V.self))
            multiplyAdd(&acc, w1, o0.loadUnaligned(fromByteOffset: o, as: V.self))
            multiplyAdd(&acc, w2, e0.loadUnaligned(fromByteOffset: o + 4, as: V.self))
            multiplyAdd(&acc, w3, e1.loadUnaligned(fromByteOffset: o, as: V.self))
            multiplyAdd(&acc, w4, o1.loadUnaligned(fromByteOffset: o, as: V.self))
            multiplyAdd(&acc, w5, e1.loadUnaligned(fromByteOffset: o + 4, as: V.self))
            multiplyAdd(&acc, w6, e2.loadUnaligned(fromByteOffset: o, as: V.self))
            multiplyAdd(&acc, w7, o2.loadUnaligned(fromByteOffset: o, as: V.self))
            multiplyAdd(&acc, w8, e2.loadUnaligned(fromByteOffset: o + 4, as: V.self))
            var v = acc + bias
            if let slope { v = v.replacing(with: v * slope, where: v .< 0) }
            let i = oy * g.outW + x
            if x + 8 <= g.outW || !lastRow {
                if let residual { v += UnsafeRawPointer(residual + i).loadUnaligned(as: V.self) }
                UnsafeMutableRawPointer(out + i).storeBytes(of: v, as: V.self)
            } else {
                for l in 0..<(g.outW - x) { out[i + l] = v[l] + (residual?[i + l] ?? 0) }
            }
            x += 8
        }
    }
}

/// One output row of a stride-2, 3-wide depthwise convolution from the even/odd column planes:
/// row[x] = Σ_ky w[ky][0]·even[2oy+ky][x] + w[ky][1]·odd[2oy+ky][x] + w[ky][2]·even[2oy+ky][x+1].
@inline(__always)
func depthwiseRowStride2(_ g: ConvGeometry, even: UnsafePointer<Float>, odd: UnsafePointer<Float>, halfWidth: Int,
                         weights w: UnsafePointer<Float>, oy: Int, width: Int, row: UnsafeMutablePointer<Float>) {
    typealias V = SIMD8<Float>
    var x = 0
    while x < width {
        var acc = V()
        for ky in 0..<g.kH {
            let line = (oy * g.strideH + ky) * halfWidth + x
            let e = UnsafeRawPointer(even + line), o = UnsafeRawPointer(odd + line)
            acc += V(repeating: w[ky * 3]) * e.loadUnaligned(as: V.self)
            acc += V(repeating: w[ky * 3 + 1]) * o.loadUnaligned(as: V.self)
            acc += V(repeating: w[ky * 3 + 2]) * e.loadUnaligned(fromByteOffset: 4, as: V.self)
        }
        UnsafeMutableRawPointer(row + x).storeBytes(of: acc, as: V.self)
        x += 8
    }
}

/// One output row of one channel: row[x] = Σ w[ky][kx] · plane[oy·sh + ky][x·sw + kx]. Stride 1 computes
/// `vectorWidth` values 8 at a time (the plane is wide enough); other strides run scalar.
@inline(__always)
func depthwiseRow(_ g: ConvGeometry, plane: UnsafePointer<Float>, planeWidth pw: Int, weights w: UnsafePointer<Float>,
                  oy: Int, vectorWidth: Int, row: UnsafeMutablePointer<Float>) {
    typealias V = SIMD8<Float>
    var x = 0
    if g.strideW == 1 {
        while x < vectorWidth {
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

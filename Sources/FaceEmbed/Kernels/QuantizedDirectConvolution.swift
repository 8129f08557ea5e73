// Direct quantized convolution: stride 1, "same" padding (2·pad = kernel − 1), 8-bit activations, input channels a
// multiple of 4, weights with K tap-major (k = (ky·kW + kx)·inC + ic, QuantizedWeights.swift): the GEMM of
// QuantizedConvolution.swift reads its panels straight from the quantized input, with no activation matrix B to build
// (building B was 6 % of r100 int8, its 3×3 layers' im2col).
//
//   Output pixel n = oy·W + ox (W = inW = outW); tap (ky, kx) reads input (oy + ky − padH, ox + kx − padW). In a plane
//   of the input with padH zero-point rows above and below and no column padding, that is lane n + ky·W + kx − padW:
//   linear in n, so the 16 pixels of a panel are 16 consecutive lanes whatever rows they span. A read that leaves its
//   row (column ox + kx − padW outside 0 ..< W) lands on an edge column of the row above or below instead, so each kx
//   has its own copy of the planes, those columns the zero point:
//     copy kx, d = kx − padW: columns < d (d > 0), or ≥ W + d (d < 0), are the zero point
//   copies[kx][icg][guard + rows·W + guard (rounded up to 16)] 32-bit lanes, rows = inH + 2·padH; lane = channels
//   4·icg ..< 4·icg + 4 (byte j = channel 4·icg + j) of one pixel; the guards (16 lanes ≥ padW) the zero point.
//   k-group (tap, icg) of pixel n: lane guard + n + ky·W + kx − padW of plane icg of copy kx. The GEMM reads B in one
//   run per tap, run (ky, kx) at byte offset kx·copyBytes + 4·(ky·W + kx − padW) from pixel n's lane in copy 0, its
//   k-groups (the input channel groups) a plane apart.
//   Threads quantize the planes by channel groups, then share the GEMM as for any convolution.
// Scratch (bytes): the copies, kW · inC/4 · planeLanes · 4 (r100's 56×56 layers: 3 × 16 × 3,280 lanes, 630 KB).

/// Lanes of zero point before and after each plane: at least the widest padding (15, Plan/Limits.swift) a tap reads
/// past the plane's first or last row, and the 16 lanes a row narrower than 16 is written with.
private let directGuard = 16

/// Whether a convolution runs directly (see the top of the file) when its activations are 8-bit: then its int8
/// weights are stored with K tap-major. Maps of fewer than 64 pixels (4 panels) stay with B: r100's 7×7 layers ran
/// 1.5 % slower directly (0.633 → 0.642 ms on one thread), its larger ones 4–9 % faster.
package func quantizedDirectApplies(_ g: ConvGeometry) -> Bool {
    g.groups == 1 && g.strideH == 1 && g.strideW == 1 && g.kH * g.kW > 1 && 2 * g.padH == g.kH - 1
        && 2 * g.padW == g.kW - 1 && g.inC % 4 == 0 && g.padW <= directGuard && g.inH * g.inW >= 64
}

/// Weights [outC][inC][kH·kW] (OIHW) reordered to [outC][kH·kW][inC]: K tap-major.
package func tapMajorOrder<T>(_ oihw: [T], outC: Int, inC: Int, taps: Int) -> [T] {
    precondition(oihw.count == outC * inC * taps, "tap-major order: \(oihw.count) values for \(outC)×\(inC)×\(taps)")
    var out = oihw
    for c in 0..<outC {
        for ic in 0..<inC {
            for t in 0..<taps { out[(c * taps + t) * inC + ic] = oihw[(c * inC + ic) * taps + t] }
        }
    }
    return out
}

/// Lanes of one plane of one copy.
private func directPlaneLanes(_ g: ConvGeometry) -> Int {
    ((g.inH + 2 * g.padH) * g.inW + 2 * directGuard + 15) / 16 * 16
}

/// Scratch bytes of `quantizedDirectConvolution` for `g`.
func quantizedDirectScratch(_ g: ConvGeometry) -> Int {
    g.kW * (g.inC / 4) * directPlaneLanes(g) * 4
}

/// The direct convolution of one image (see the top of the file) with activation quantization `q`, `affine` applied
/// to the input as it is quantized. `w` holds 8-bit weights, K tap-major.
func quantizedDirectConvolution(
    _ g: ConvGeometry, input: UnsafePointer<Float>, affine: InputAffine?, weights w: QuantizedWeightPointers,
    quantization q: ActivationQuantization, output: QuantizedOutput, scratch: UnsafeMutableRawPointer, threads: Int
) {
    precondition(quantizedDirectApplies(g) && w.precision == .int8, "direct quantized convolution: not for \(g)")
    let lanes = directPlaneLanes(g), groups = g.inC / 4, copyBytes = groups * lanes * 4
    let parts = max(1, min(threads, groups))
    parallelFor(parts, threads: threads) { part in
        for icg in chunk(groups, parts: parts, index: part) {
            let c = 4 * icg, plane = g.inH * g.inW
            @inline(__always) func affineOf(_ v: UnsafePointer<Float>?, _ none: Float) -> SIMD4<Float> {
                guard let v else { return SIMD4(repeating: none) }
                return SIMD4(v[c], v[c + 1], v[c + 2], v[c + 3])
            }
            quantizeDirectPlane(
                g, input + c * plane, scale: affineOf(affine?.scale, 1), shift: affineOf(affine?.shift, 0),
                available: (g.inC - c) * plane, q, into: scratch + icg * lanes * 4, copyBytes: copyBytes)
        }
    }
    withUnsafeTemporaryAllocation(of: Int.self, capacity: g.kH * g.kW) { runs in
        for ky in 0..<g.kH {
            for kx in 0..<g.kW { runs[ky * g.kW + kx] = kx * copyBytes + 4 * (ky * g.inW + kx - g.padW) }
        }
        quantizedGEMM(
            w, b: scratch + 4 * directGuard, ld: lanes, runs: UnsafeBufferPointer(runs), pixels: 0..<g.pixels,
            stride: g.pixels, quantization: q, output: output, threads: threads)
    }
}

/// Channels c ..< c + 4 (at `x`, planes of inH·inW) into plane icg of every copy (`into` is copy 0's, the copies
/// `copyBytes` apart): 16 columns of the four channels quantized, interleaved into lanes and stored into each copy,
/// then each copy's zero columns. A row narrower than 16 runs on into the next row, written after it (or into the
/// bottom rows and guard, written last), while its reads stay inside the `available` input values; otherwise it goes
/// value by value. Never inlined, and its steps top-level functions: nested ones were left as calls, their vectors
/// spilled (the pass took as long as the gather of B it replaces).
@inline(never)
private func quantizeDirectPlane(
    _ g: ConvGeometry, _ x: UnsafePointer<Float>, scale: SIMD4<Float>, shift: SIMD4<Float>, available: Int,
    _ q: ActivationQuantization, into plane: UnsafeMutableRawPointer, copyBytes: Int
) {
    let w = g.inW, h = g.inH, hw = h &* w, lanes = directPlaneLanes(g), top = directGuard &+ g.padH &* w
    let zero = UInt32(truncatingIfNeeded: q.zeroPoint) &* 0x0101_0101
    let affine = DirectAffine(scale, shift), indices = InterleaveIndices()
    for kx in 0..<g.kW { fillLanes(plane + kx &* copyBytes, 0..<top, zero) }
    for iy in 0..<h {
        let src = x + iy &* w, dst = plane + 4 &* (top &+ iy &* w)
        if w >= 16 {
            var c0 = 0
            while c0 < w {
                c0 = min(c0, w &- 16)
                let word = directWord(src + c0, hw, affine, q, indices)
                storeDirectCopies(word, dst + 4 &* c0, copies: g.kW, copyBytes: copyBytes)
                c0 &+= 16
            }
        } else if 3 &* hw &+ iy &* w &+ 16 <= available {
            storeDirectCopies(directWord(src, hw, affine, q, indices), dst, copies: g.kW, copyBytes: copyBytes)
        } else {
            quantizeDirectRow(g, x, iy, scale: scale, shift: shift, q, into: plane, top: top, copyBytes: copyBytes)
        }
    }
    for kx in 0..<g.kW { fillLanes(plane + kx &* copyBytes, (top &+ hw)..<lanes, zero) }
    blankDirectColumns(g, plane, top: top, zero: zero, copyBytes: copyBytes)
}

/// The input affine of four channels, each value in all 16 lanes.
private struct DirectAffine {
    var s0, s1, s2, s3, t0, t1, t2, t3: SIMD16<Float>
    init(_ s: SIMD4<Float>, _ t: SIMD4<Float>) {
        s0 = .init(repeating: s[0]); s1 = .init(repeating: s[1]); s2 = .init(repeating: s[2])
        s3 = .init(repeating: s[3]); t0 = .init(repeating: t[0]); t1 = .init(repeating: t[1])
        t2 = .init(repeating: t[2]); t3 = .init(repeating: t[3])
    }
}

/// 16 pixels at x of four channels `hw` floats apart, quantized (after the affine: channelAffine's product, then
/// sum) and interleaved: byte j of lane n is channel j's pixel n.
@_transparent
private func directWord(
    _ x: UnsafePointer<Float>, _ hw: Int, _ a: DirectAffine, _ q: ActivationQuantization, _ i: InterleaveIndices
) -> SIMD16<UInt32> {
    @_transparent func bytes(_ p: UnsafePointer<Float>, _ s: SIMD16<Float>, _ t: SIMD16<Float>) -> SIMD16<UInt8> {
        narrowedToBytes(q.quantize16(loadVector(UnsafeRawPointer(p), as: SIMD16<Float>.self) * s + t))
    }
    return interleaved(
        bytes(x, a.s0, a.t0), bytes(x + hw, a.s1, a.t1), bytes(x + 2 &* hw, a.s2, a.t2),
        bytes(x + 3 &* hw, a.s3, a.t3), i)
}

/// `word` stored at `dst` in each copy.
@_transparent
private func storeDirectCopies(_ word: SIMD16<UInt32>, _ dst: UnsafeMutableRawPointer, copies: Int, copyBytes: Int) {
    var at = dst
    for _ in 0..<copies {
        storeVector(word, to: at)
        at += copyBytes
    }
}

/// The zero point into the columns of each row that copy kx keeps at it (see the top of the file), once the rows
/// are written: a store per column and row, where blending it into each vector compiled lane by lane.
private func blankDirectColumns(
    _ g: ConvGeometry, _ plane: UnsafeMutableRawPointer, top: Int, zero: UInt32, copyBytes: Int
) {
    for kx in 0..<g.kW {
        let d = kx - g.padW
        let columns = d > 0 ? 0..<d : (g.inW + d)..<g.inW
        for iy in 0..<g.inH {
            for c in columns {
                plane.storeBytes(of: zero, toByteOffset: kx * copyBytes + 4 * (top + iy * g.inW + c), as: UInt32.self)
            }
        }
    }
}

/// Row `iy` of `quantizeDirectPlane` one value at a time.
private func quantizeDirectRow(
    _ g: ConvGeometry, _ x: UnsafePointer<Float>, _ iy: Int, scale: SIMD4<Float>, shift: SIMD4<Float>,
    _ q: ActivationQuantization, into plane: UnsafeMutableRawPointer, top: Int, copyBytes: Int
) {
    let w = g.inW, hw = g.inH * w
    for c in 0..<w {
        var word: UInt32 = 0
        for j in 0..<4 {
            let v = q.quantize(x[j * hw + iy * w + c] * scale[j] + shift[j])
            word |= (UInt32(truncatingIfNeeded: v) & 0xFF) << UInt32(8 * j)
        }
        for kx in 0..<g.kW {
            plane.storeBytes(of: word, toByteOffset: kx * copyBytes + 4 * (top + iy * w + c), as: UInt32.self)
        }
    }
}

/// Lanes `range` of a plane set to `value`.
private func fillLanes(_ plane: UnsafeMutableRawPointer, _ range: Range<Int>, _ value: UInt32) {
    (plane + 4 * range.lowerBound).bindMemory(to: UInt32.self, capacity: range.count)
        .update(repeating: value, count: range.count)
}

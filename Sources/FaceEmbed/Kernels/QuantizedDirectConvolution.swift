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
//   Threads share the panels out (as the GEMM's bands do), each thread the band of input rows its pixels read, halo
//   included, in copies of its own: no scratch line is written by one core and read by the other (sharing the
//   copies, r100's layers on two threads ran 3 % slower than the im2col path).
//   A band of input rows r0 − padH ..< r1 + padH (r0 ..< r1 the rows of the band's output pixels; rows outside the
//   input the zero point): copies[kx][icg][guard + rows·W + guard (rounded up to 16)] 32-bit lanes; lane = channels
//   4·icg ..< 4·icg + 4 (byte j = channel 4·icg + j) of one pixel; the guards (16 lanes ≥ padW) the zero point.
//   k-group (tap, icg) of output pixel n: lane guard + (n − r0·W) + ky·W + kx − padW of plane icg of copy kx. The
//   GEMM reads B in one run per tap, run (ky, kx) at byte offset kx·copyBytes + 4·(ky·W + kx − padW) from pixel n's
//   lane in copy 0, its k-groups (the input channel groups) a plane apart.
// Scratch (bytes): the copies of each thread's band, kW · inC/4 · bandLanes · 4 (r100's 56×56 layers on one thread:
// 3 × 16 × 3,280 lanes, 630 KB).

/// Lanes of zero point before and after each plane: at least the widest padding (15, Plan/Limits.swift) a tap reads
/// past the plane's first or last row, and the 16 lanes a row narrower than 16 is written with.
private let directGuard = 16

/// Whether a convolution is stored for the direct kernel (see the top of the file) when its activations are 8-bit:
/// its int8 weights with K tap-major. Maps of fewer than 64 pixels (4 panels) stay with B: r100's 7×7 layers ran
/// 1.5 % slower directly (0.633 → 0.642 ms on one thread), its larger ones 4–9 % faster.
package func quantizedDirectApplies(_ g: ConvGeometry) -> Bool {
    quantizedDirectFits(g) && g.inH * g.inW >= 64
}

/// Whether the direct kernel can run a convolution of this shape, at any map size: a detector's plan resized to a
/// small input keeps the layers stored tap-major for its conversion size (Plan/PlanResize.swift).
func quantizedDirectFits(_ g: ConvGeometry) -> Bool {
    g.groups == 1 && g.strideH == 1 && g.strideW == 1 && g.kH * g.kW > 1 && 2 * g.padH == g.kH - 1
        && 2 * g.padW == g.kW - 1 && g.inC % 4 == 0 && g.padW <= directGuard
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

/// How the direct convolution of `g` shares its panels out among `threads` threads: the output pixels and input
/// rows of each thread's band, and the lanes of a plane of any band's copies.
private struct DirectBands {
    let panels: Int, parts: Int, lanes: Int

    init(_ g: ConvGeometry, threads: Int) {
        panels = (g.pixels + 15) / 16
        parts = max(1, min(threads, panels))
        // A band's pixels span at most ⌈share·16 / W⌉ + 1 rows (it may start mid-row).
        let rows = ((panels + parts - 1) / parts * 16 + g.inW - 1) / g.inW + 1
        lanes = ((min(rows, g.inH) + 2 * g.padH) * g.inW + 2 * directGuard + 15) / 16 * 16
    }

    /// The output pixels of band `part`, and the rows they are in.
    func band(_ part: Int, _ g: ConvGeometry) -> (pixels: Range<Int>, rows: Range<Int>) {
        let mine = chunk(panels, parts: parts, index: part)
        let pixels = (mine.lowerBound * 16)..<min(g.pixels, mine.upperBound * 16)
        return (pixels, (pixels.lowerBound / g.inW)..<((pixels.upperBound - 1) / g.inW + 1))
    }

    /// Bytes of one band's copies.
    func bytes(_ g: ConvGeometry) -> Int { g.kW * (g.inC / 4) * lanes * 4 }
}

/// Scratch bytes of `quantizedDirectConvolution` for `g` on up to `threads` threads.
func quantizedDirectScratch(_ g: ConvGeometry, threads: Int) -> Int {
    (1...max(1, threads)).map { t in
        let bands = DirectBands(g, threads: t)
        return bands.parts * bands.bytes(g)
    }.max()!
}

/// The direct convolution of one image (see the top of the file) with activation quantization `q`, `affine` applied
/// to the input as it is quantized. `w` holds 8-bit weights, K tap-major.
func quantizedDirectConvolution(
    _ g: ConvGeometry, input: UnsafePointer<Float>, affine: InputAffine?, weights w: QuantizedWeightPointers,
    quantization q: ActivationQuantization, output: QuantizedOutput, scratch: UnsafeMutableRawPointer, threads: Int
) {
    precondition(quantizedDirectFits(g) && w.precision == .int8, "direct quantized convolution: not for \(g)")
    let bands = DirectBands(g, threads: threads), groups = g.inC / 4, copyBytes = groups * bands.lanes * 4
    let plane = g.inH * g.inW
    parallelFor(bands.parts, threads: threads) { part in
        let (pixels, rows) = bands.band(part, g), copies = scratch + part * bands.bytes(g)
        let indices = InterleaveIndices()
        for icg in 0..<groups {
            let c = 4 * icg
            quantizeDirectPlane(
                g, input + c * plane, rows: (rows.lowerBound - g.padH)..<(rows.upperBound + g.padH),
                scale: affine.map { channels4($0.scale + c) } ?? SIMD4(repeating: 1),
                shift: affine.map { channels4($0.shift + c) } ?? SIMD4(repeating: 0),
                available: (g.inC - c) * plane, q, indices, into: copies + icg * bands.lanes * 4, lanes: bands.lanes,
                copyBytes: copyBytes)
        }
        withUnsafeTemporaryAllocation(of: Int.self, capacity: g.kH * g.kW) { runs in
            for ky in 0..<g.kH {
                for kx in 0..<g.kW { runs[ky * g.kW + kx] = kx * copyBytes + 4 * (ky * g.inW + kx - g.padW) }
            }
            quantizedGEMM(
                w, b: copies + 4 * (directGuard + pixels.lowerBound - rows.lowerBound * g.inW), ld: bands.lanes,
                runs: UnsafeBufferPointer(runs), pixels: pixels, stride: g.pixels, quantization: q, output: output,
                threads: 1)
        }
    }
}

/// The four values at `p`.
private func channels4(_ p: UnsafePointer<Float>) -> SIMD4<Float> { SIMD4(p[0], p[1], p[2], p[3]) }

/// Channels c ..< c + 4 (at `x`, planes of inH·inW), input rows `rows` (the band with its halo; rows outside the input
/// are the zero point), into plane icg of every copy (`into` is copy 0's, the copies `copyBytes` apart): 16 columns
/// of the four channels quantized, interleaved into lanes and stored into each copy, then each copy's zero columns.
/// A row narrower than 16 runs on into the next row, written after it (or into the guard, written last), while its
/// reads stay inside the `available` input values; otherwise it goes value by value. Never inlined, and its steps
/// top-level functions: nested ones were left as calls, their vectors spilled (the pass took as long as the gather
/// of B it replaces).
@inline(never)
private func quantizeDirectPlane(
    _ g: ConvGeometry, _ x: UnsafePointer<Float>, rows: Range<Int>, scale: SIMD4<Float>, shift: SIMD4<Float>,
    available: Int, _ q: ActivationQuantization, _ indices: InterleaveIndices, into plane: UnsafeMutableRawPointer,
    lanes: Int, copyBytes: Int
) {
    let w = g.inW, hw = g.inH &* w, end = directGuard &+ rows.count &* w
    let zero = UInt32(truncatingIfNeeded: q.zeroPoint) &* 0x0101_0101
    let affine = DirectAffine(scale, shift)
    for kx in 0..<g.kW { fillLanes(plane + kx &* copyBytes, 0..<directGuard, zero) }
    for iy in rows {
        let lane = directGuard &+ (iy &- rows.lowerBound) &* w, dst = plane + 4 &* lane
        guard iy >= 0 && iy < g.inH else {
            for kx in 0..<g.kW { fillLanes(plane + kx &* copyBytes, lane..<(lane &+ w), zero) }
            continue
        }
        let src = x + iy &* w
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
            quantizeDirectRow(g, x, iy, scale: scale, shift: shift, q, into: dst, copyBytes: copyBytes)
        }
    }
    for kx in 0..<g.kW { fillLanes(plane + kx &* copyBytes, end..<lanes, zero) }
    let inside = max(rows.lowerBound, 0)..<min(rows.upperBound, g.inH)
    blankDirectColumns(
        g, plane + 4 &* (directGuard &+ (inside.lowerBound &- rows.lowerBound) &* w), rows: inside.count, zero: zero,
        copyBytes: copyBytes)
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

/// 16 pixels at x of four channels `hw` floats apart, quantized after the affine (`affineQuantized16`) and
/// interleaved: byte j of lane n is channel j's pixel n.
@_transparent
private func directWord(
    _ x: UnsafePointer<Float>, _ hw: Int, _ a: DirectAffine, _ q: ActivationQuantization, _ i: InterleaveIndices
) -> SIMD16<UInt32> {
    interleaved(
        narrowedToBytes(affineQuantized16(x, a.s0, a.t0, q)), narrowedToBytes(affineQuantized16(x + hw, a.s1, a.t1, q)),
        narrowedToBytes(affineQuantized16(x + 2 &* hw, a.s2, a.t2, q)),
        narrowedToBytes(affineQuantized16(x + 3 &* hw, a.s3, a.t3, q)), i)
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

/// The zero point into the columns that copy kx keeps at it (see the top of the file), in `rows` rows from `first`,
/// once they are written: a store per column and row, where blending it into each vector compiled lane by lane.
private func blankDirectColumns(
    _ g: ConvGeometry, _ first: UnsafeMutableRawPointer, rows: Int, zero: UInt32, copyBytes: Int
) {
    for kx in 0..<g.kW {
        let d = kx - g.padW
        let columns = d > 0 ? 0..<d : (g.inW + d)..<g.inW
        for row in 0..<rows {
            for c in columns {
                first.storeBytes(of: zero, toByteOffset: kx * copyBytes + 4 * (row * g.inW + c), as: UInt32.self)
            }
        }
    }
}

/// Input row `iy` of `quantizeDirectPlane`, one value at a time, into `dst` of each copy.
private func quantizeDirectRow(
    _ g: ConvGeometry, _ x: UnsafePointer<Float>, _ iy: Int, scale: SIMD4<Float>, shift: SIMD4<Float>,
    _ q: ActivationQuantization, into dst: UnsafeMutableRawPointer, copyBytes: Int
) {
    let w = g.inW, hw = g.inH * w
    for c in 0..<w {
        var word: UInt32 = 0
        for j in 0..<4 {
            let v = q.quantize(x[j * hw + iy * w + c] * scale[j] + shift[j])
            word |= (UInt32(truncatingIfNeeded: v) & 0xFF) << UInt32(8 * j)
        }
        for kx in 0..<g.kW { dst.storeBytes(of: word, toByteOffset: kx * copyBytes + 4 * c, as: UInt32.self) }
    }
}

/// Lanes `range` of a plane set to `value`.
private func fillLanes(_ plane: UnsafeMutableRawPointer, _ range: Range<Int>, _ value: UInt32) {
    (plane + 4 * range.lowerBound).bindMemory(to: UInt32.self, capacity: range.count)
        .update(repeating: value, count: range.count)
}

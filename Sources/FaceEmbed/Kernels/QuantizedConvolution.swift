// Quantized convolution (groups = 1, any kernel, stride and padding) and fully connected layer, one image at a time:
// float input → integers (QuantizedWeights.swift) → integer GEMM (QuantizedGEMMKernels.swift) → float output.
//
//   C[M × N] (Int32) = A[M × K] · B[K × N]     M = outC, K = inC·kH·kW, N = outH·outW, as in Convolution.swift
//   A  packed weights a[blk][kg][16][G]
//   B  b[kg][ld][G], built in scratch: 32-bit lane (kg, n) holds k = G·kg ..< G·kg + G of pixel n (value j in bits
//      8j, or 16j for 16-bit), so one 32-bit broadcast or one 64-byte panel load feeds the micro-kernels.
//      ld = 16 · panels + 16: the last 16 take the spill of row copies; k past K holds the zero point (weights 0).
//      1×1, stride 1, unpadded: straight from the float input, 16 pixels × G channels at a time, quantized and
//        interleaved in registers.
//      Otherwise the input is first quantized into padded planes p[ic][inH + 2·padH][inW + 2·padW] whose border is
//        the zero point, so no tap needs a bounds check; then row k = (ic·kH + ky)·kW + kx of B for output row oy is
//        p[ic][oy·strideH + ky][ox·strideW + kx] for all ox, read 16 pixels at a time (a row narrower than 16 writes
//        past its end into the next row, which is written after it, or into the spill).
//   GEMM: per group of 16 panels, per block of 16 output channels, per panel: `quantizedKernel16x16`, then either
//      the exact sums (tests) or y = Float(acc) · s_x · s_w[c] and the layer's `Epilogue` (its steps in registers for
//      a full panel, `Epilogue.apply` for a partial one); a partial last panel runs `quantizedKernel16x1` per pixel.
//      A fully connected layer is the 1×1 convolution of a 1×1 map.
//   Threads split the quantization by input channel, B by k-group, the GEMM by panels or by blocks of channels.
// Scratch (bytes): B, then (not for the 1×1 fast path) the padded planes and slack for the last row's vector reads.
#if hasFeature(BuiltinModule)
import Builtin
#endif

/// Where the quantized GEMM's results go: row c (output channel) at stride N (pixels).
enum QuantizedOutput {
    /// Float output: Float(acc) · s_x · s_w[c], then the epilogue.
    case float(UnsafeMutablePointer<Float>, Epilogue)
    /// The exact integer sums Σ_k q_w · x_q (the tests' view).
    case accumulators(UnsafeMutablePointer<Int32>)
}

/// Row stride (pixels) of the activation matrix B for `pixels` output pixels.
func quantizedLeadingDimension(_ pixels: Int) -> Int { (pixels + 15) / 16 * 16 + 16 }

/// Bytes of the padded planes, rounded to cache lines, plus slack for 16-pixel reads at any stride past the end.
private func quantizedPlaneBytes(_ g: ConvGeometry, _ precision: QuantizedPrecision) -> Int {
    let plane = (g.inH + 2 * g.padH) * (g.inW + 2 * g.padW)
    return (g.inC * plane * precision.elementBytes + 63) / 64 * 64 + (16 * g.strideW + 16) * precision.elementBytes
}

/// Scratch bytes `quantizedConvolution` needs for `g` (shared by all threads).
func quantizedConvolutionScratch(_ g: ConvGeometry, precision: QuantizedPrecision) -> Int {
    let kGroups = (g.k + precision.group - 1) / precision.group
    let b = (kGroups * quantizedLeadingDimension(g.pixels) * 4 + 63) / 64 * 64
    return g.isPointwise ? b : b + quantizedPlaneBytes(g, precision)
}

/// Quantized convolution with groups = 1 on one image (see the top of this file). `range` is the calibrated
/// max |x| of the input, or nil to measure it. `scratch` holds `quantizedConvolutionScratch(g, precision:)` bytes.
/// Returns the activation quantization it used.
@discardableResult
func quantizedConvolution(
    _ g: ConvGeometry, input: UnsafePointer<Float>, weights w: QuantizedWeightPointers,
    range: Float?, output: QuantizedOutput, scratch: UnsafeMutableRawPointer,
    threads: Int
) -> ActivationQuantization {
    precondition(g.groups == 1 && w.k == g.k && w.outC == g.outC, "quantized convolution: weights do not fit \(g)")
    let p = w.precision
    let q = ActivationQuantization(
        range: range ?? maxAbs(input, count: g.inC * g.inH * g.inW), precision: p,
        maxAbsRowSum: w.maxAbsRowSum)
    let ld = quantizedLeadingDimension(g.pixels), kGroups = w.kGroups
    let kParts = max(1, min(threads, kGroups))
    if g.isPointwise {
        parallelFor(kParts, threads: threads) { part in
            packPointwise(
                input, channels: g.inC, pixels: g.pixels, quantization: q,
                kGroups: chunk(kGroups, parts: kParts, index: part), into: scratch, ld: ld)
        }
    } else {
        let planes = scratch + (kGroups * ld * 4 + 63) / 64 * 64
        let cParts = max(1, min(threads, g.inC))
        parallelFor(cParts, threads: threads) { part in
            quantizePlanes(
                g, input: input, quantization: q, channels: chunk(g.inC, parts: cParts, index: part),
                into: planes)
        }
        parallelFor(kParts, threads: threads) { part in
            gatherQuantized(
                g, planes: planes, precision: p, kGroups: chunk(kGroups, parts: kParts, index: part),
                into: scratch, ld: ld)
        }
    }
    quantizedGEMM(w, b: scratch, ld: ld, pixels: g.pixels, quantization: q, output: output, threads: threads)
    return q
}

/// Scratch bytes `quantizedFullyConnected` needs for `inFeatures` inputs.
func quantizedFullyConnectedScratch(inFeatures: Int, precision: QuantizedPrecision) -> Int {
    quantizedConvolutionScratch(fullyConnectedGeometry(inFeatures, 1), precision: precision)
}

/// Quantized fully connected layer on one image: y[o] = Σ_i W[o][i] · x[i], then the epilogue (for `.float`).
/// `weights` were quantized from [out][in]; `range` as for `quantizedConvolution`.
@discardableResult
func quantizedFullyConnected(
    input: UnsafePointer<Float>, weights w: QuantizedWeightPointers, range: Float?,
    output: QuantizedOutput, scratch: UnsafeMutableRawPointer,
    threads: Int
) -> ActivationQuantization {
    quantizedConvolution(
        fullyConnectedGeometry(w.k, w.outC), input: input, weights: w, range: range, output: output,
        scratch: scratch, threads: threads)
}

/// A fully connected layer as the 1×1 convolution of a 1×1 map.
private func fullyConnectedGeometry(_ inFeatures: Int, _ outFeatures: Int) -> ConvGeometry {
    ConvGeometry(
        inC: inFeatures, inH: 1, inW: 1, outC: outFeatures, kH: 1, kW: 1, strideH: 1, strideW: 1, padH: 0,
        padW: 0, groups: 1)
}

/// Packs k-groups `kGroups` of B for a 1×1, stride-1, unpadded convolution straight from the float input
/// [channels][pixels]: quantizes 16 pixels of each of the G channels of a k-group and interleaves them.
func packPointwise(
    _ input: UnsafePointer<Float>, channels: Int, pixels n: Int, quantization q: ActivationQuantization,
    kGroups: Range<Int>, into b: UnsafeMutableRawPointer, ld: Int
) {
    let group = q.precision.group, bits = UInt32(32 / group), mask: UInt32 = group == 4 ? 0xFF : 0xFFFF
    let zero = UInt32(bitPattern: q.precision.zeroPoint) & mask
    for kg in kGroups {
        let dst = b + kg * ld * 4
        if n >= 16 {
            var p = 0
            while p < n {
                p = min(p, n - 16)
                var word = SIMD16<UInt32>()
                for j in 0..<group {
                    let c = kg * group + j
                    let v =
                        c < channels
                        ? SIMD16<UInt32>(
                            truncatingIfNeeded: q.quantize16(
                                UnsafeRawPointer(input + c * n + p).loadUnaligned(as: SIMD16<Float>.self))) & mask
                        : SIMD16(repeating: zero)
                    word |= v &<< (bits * UInt32(j))
                }
                dst.storeBytes(of: word, toByteOffset: 4 * p, as: SIMD16<UInt32>.self)
                p += 16
            }
        } else {
            for p in 0..<n {
                var word: UInt32 = 0
                for j in 0..<group {
                    let c = kg * group + j
                    let v = c < channels ? UInt32(bitPattern: q.quantize(input[c * n + p])) & mask : zero
                    word |= v &<< (bits * UInt32(j))
                }
                dst.storeBytes(of: word, toByteOffset: 4 * p, as: UInt32.self)
            }
        }
    }
}

/// Quantizes input channels `channels` into padded planes (see the top of the file), the border the zero point.
/// Each row's values are written before its padding, 16 at a time: a row narrower than 16 runs on into the rows
/// after it, which are written later, as long as it stays inside this channel's plane and the input.
func quantizePlanes(
    _ g: ConvGeometry, input: UnsafePointer<Float>, quantization q: ActivationQuantization,
    channels: Range<Int>, into planes: UnsafeMutableRawPointer
) {
    let hp = g.inH + 2 * g.padH, wp = g.inW + 2 * g.padW, eb = q.precision.elementBytes
    let zero = q.precision.zeroPoint, inputCount = g.inC * g.inH * g.inW
    @inline(__always) func put(_ row: UnsafeMutableRawPointer, _ i: Int, _ v: Int32) {
        if eb == 1 {
            row.storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: i, as: UInt8.self)
        } else {
            row.storeBytes(of: Int16(truncatingIfNeeded: v), toByteOffset: 2 * i, as: Int16.self)
        }
    }
    @inline(__always) func put16(_ dst: UnsafeMutableRawPointer, _ i: Int, _ x: UnsafePointer<Float>) {
        let v = q.quantize16(UnsafeRawPointer(x).loadUnaligned(as: SIMD16<Float>.self))
        if eb == 1 {
            dst.storeBytes(of: narrowedToBytes(v), toByteOffset: i, as: SIMD16<UInt8>.self)
        } else {
            dst.storeBytes(of: narrowedToHalves(v), toByteOffset: 2 * i, as: SIMD16<Int16>.self)
        }
    }
    for ic in channels {
        for py in 0..<hp {
            let row = planes + (ic * hp + py) * wp * eb, iy = py - g.padH
            guard iy >= 0 && iy < g.inH else {
                for i in 0..<wp { put(row, i, zero) }
                continue
            }
            let first = (ic * g.inH + iy) * g.inW, src = input + first, dst = row + g.padW * eb
            if g.inW >= 16 {
                var i = 0
                while i < g.inW {
                    i = min(i, g.inW - 16)
                    put16(dst, i, src + i)
                    i += 16
                }
            } else if py * wp + g.padW + 16 <= hp * wp && first + 16 <= inputCount {
                put16(dst, 0, src)
            } else {
                for i in 0..<g.inW { put(dst, i, q.quantize(src[i])) }
            }
            for i in 0..<g.padW { put(row, i, zero); put(row, wp - 1 - i, zero) }
        }
    }
}

#if hasFeature(BuiltinModule)
// One instruction each (`vpmovdb`, `vpmovdw`, `vpmovzxbd`, `vpmovzxwd`); the generic integer conversions of SIMD
// vectors compile to a call.
@inline(__always)
private func narrowedToBytes(_ v: SIMD16<Int32>) -> SIMD16<UInt8> {
    var r = SIMD16<UInt8>()
    r._storage._value = Builtin.trunc_Vec16xInt32_Vec16xInt8(v._storage._value)
    return r
}

@inline(__always)
private func narrowedToHalves(_ v: SIMD16<Int32>) -> SIMD16<Int16> {
    var r = SIMD16<Int16>()
    r._storage._value = Builtin.trunc_Vec16xInt32_Vec16xInt16(v._storage._value)
    return r
}

@inline(__always)
private func widened(_ v: SIMD16<UInt8>) -> SIMD16<UInt32> {
    var r = SIMD16<UInt32>()
    r._storage._value = Builtin.zext_Vec16xInt8_Vec16xInt32(v._storage._value)
    return r
}

@inline(__always)
private func widened(_ v: SIMD16<UInt16>) -> SIMD16<UInt32> {
    var r = SIMD16<UInt32>()
    r._storage._value = Builtin.zext_Vec16xInt16_Vec16xInt32(v._storage._value)
    return r
}
#else
@inline(__always)
private func narrowedToBytes(_ v: SIMD16<Int32>) -> SIMD16<UInt8> { SIMD16<UInt8>(truncatingIfNeeded: v) }
@inline(__always)
private func narrowedToHalves(_ v: SIMD16<Int32>) -> SIMD16<Int16> { SIMD16<Int16>(truncatingIfNeeded: v) }
@inline(__always)
private func widened(_ v: SIMD16<UInt8>) -> SIMD16<UInt32> { SIMD16<UInt32>(truncatingIfNeeded: v) }
@inline(__always)
private func widened(_ v: SIMD16<UInt16>) -> SIMD16<UInt32> { SIMD16<UInt32>(truncatingIfNeeded: v) }
#endif

/// 16 elements (1 or 2 bytes each, zero-extended) at element stride `stride` from `p`.
@inline(__always)
private func load16(_ p: UnsafeRawPointer, stride: Int, elementBytes eb: Int) -> SIMD16<UInt32> {
    switch (eb, stride) {
    case (1, 1): return widened(p.loadUnaligned(as: SIMD16<UInt8>.self))
    case (1, 2): return widened(p.loadUnaligned(as: SIMD16<UInt16>.self)) & 0xFF
    case (2, 1): return widened(p.loadUnaligned(as: SIMD16<UInt16>.self))
    case (2, 2): return p.loadUnaligned(as: SIMD16<UInt32>.self) & 0xFFFF
    default:
        var v = SIMD16<UInt32>()
        for i in 0..<16 {
            v[i] =
                eb == 1
                ? UInt32(p.load(fromByteOffset: i * stride, as: UInt8.self))
                : UInt32(p.loadUnaligned(fromByteOffset: 2 * i * stride, as: UInt16.self))
        }
        return v
    }
}

/// Builds k-groups `kGroups` of B from the padded planes (see the top of the file).
func gatherQuantized(
    _ g: ConvGeometry, planes: UnsafeRawPointer, precision: QuantizedPrecision, kGroups: Range<Int>,
    into b: UnsafeMutableRawPointer, ld: Int
) {
    // One copy per common precision and stride, so that the loop over a k-group's rows unrolls and `load16` picks its
    // load at compile time (a generic copy spent about as long as the GEMM on a 3×3 layer's B).
    switch (precision, g.strideW) {
    case (.int8, 1): gatherRows(g, planes, kGroups, b, ld, group: 4, elementBytes: 1, stride: 1)
    case (.int8, 2): gatherRows(g, planes, kGroups, b, ld, group: 4, elementBytes: 1, stride: 2)
    case (.int16, 1): gatherRows(g, planes, kGroups, b, ld, group: 2, elementBytes: 2, stride: 1)
    case (.int16, 2): gatherRows(g, planes, kGroups, b, ld, group: 2, elementBytes: 2, stride: 2)
    default:
        gatherRows(
            g, planes, kGroups, b, ld, group: precision.group, elementBytes: precision.elementBytes,
            stride: g.strideW)
    }
}

/// `gatherQuantized` for G = `group` rows per k-group of `eb`-byte elements read at column stride `sW`.
@inline(__always)
private func gatherRows(
    _ g: ConvGeometry, _ planes: UnsafeRawPointer, _ kGroups: Range<Int>,
    _ b: UnsafeMutableRawPointer, _ ld: Int, group: Int, elementBytes eb: Int, stride sW: Int
) {
    let bits = UInt32(32 / group), hp = g.inH + 2 * g.padH, wp = g.inW + 2 * g.padW, taps = g.kH * g.kW
    let zero = SIMD16<UInt32>(repeating: group == 4 ? 128 : 0)
    withUnsafeTemporaryAllocation(of: Int.self, capacity: 4) { tap in
        for kg in kGroups {
            // Element offset in the planes of row j's tap for output pixel (0, 0); −1 past K.
            for j in 0..<group {
                let k = kg * group + j, ic = k / taps, ky = k % taps / g.kW, kx = k % g.kW
                tap[j] = k < g.k ? (ic * hp + ky) * wp + kx : -1
            }
            for oy in 0..<g.outH {
                let rowOffset = oy &* g.strideH &* wp, dst = b + (kg &* ld &+ oy &* g.outW) &* 4
                var ox = 0
                while ox < g.outW {
                    ox = max(0, min(ox, g.outW - 16))
                    var word = SIMD16<UInt32>()
                    for j in 0..<group {
                        let v =
                            tap[j] < 0
                            ? zero
                            : load16(planes + (tap[j] &+ rowOffset &+ ox &* sW) &* eb, stride: sW, elementBytes: eb)
                        word |= v &<< (bits &* UInt32(j))
                    }
                    dst.storeBytes(of: word, toByteOffset: 4 &* ox, as: SIMD16<UInt32>.self)
                    ox += 16
                }
            }
        }
    }
}

/// C = A · B over `pixels` pixels into `output` (see the top of the file).
func quantizedGEMM(
    _ w: QuantizedWeightPointers, b: UnsafeRawPointer, ld: Int, pixels n: Int,
    quantization q: ActivationQuantization, output: QuantizedOutput, threads: Int
) {
    let panels = (n + 15) / 16, blocks = w.blocks, kGroups = w.kGroups, wide = w.precision == .int16
    let byPanels = panels >= 2 * threads || panels >= blocks
    let parts = max(1, min(threads, byPanels ? panels : blocks))
    parallelFor(parts, threads: threads) { part in
        let panelRange = byPanels ? chunk(panels, parts: parts, index: part) : 0..<panels
        let blockRange = byPanels ? 0..<blocks : chunk(blocks, parts: parts, index: part)
        withUnsafeTemporaryAllocation(of: SIMD16<Int32>.self, capacity: 17) { tiles in
            let tile = tiles.baseAddress!
            tile.initialize(repeating: SIMD16(), count: 17)
            // Channel c's values for pixels n0 ..< n0 + count, from the 16 lanes of v.
            @inline(__always) func put(_ c: Int, _ n0: Int, _ v: SIMD16<Int32>, count: Int) {
                switch output {
                case .accumulators(let out):
                    if count == 16 {
                        UnsafeMutableRawPointer(out + c * n + n0).storeBytes(of: v, as: SIMD16<Int32>.self)
                    } else {
                        for j in 0..<count { out[c * n + n0 + j] = v[j] }
                    }
                case .float(let out, let epilogue):
                    var f = floats(v) * (q.scale * w.scales[c])
                    if count == 16 {
                        // `Epilogue.apply`'s steps in registers: through a tile they cost as much as the whole GEMM
                        // loop when K is short (64 → 128 at 28×28: 16 k-groups).
                        let o = c * n + n0
                        f += SIMD16(repeating: epilogue.bias[c])
                        if let s = epilogue.slope { f = f.replacing(with: f * s[c], where: f .< 0) }
                        if let r = epilogue.residual {
                            f += UnsafeRawPointer(r + o).loadUnaligned(as: SIMD16<Float>.self)
                        }
                        UnsafeMutableRawPointer(out + o).storeBytes(of: f, as: SIMD16<Float>.self)
                        return
                    }
                    UnsafeMutableRawPointer(tile + 16).storeBytes(of: f, as: SIMD16<Float>.self)
                    epilogue.apply(
                        channel: c, acc: UnsafeRawPointer(tile + 16).assumingMemoryBound(to: Float.self),
                        out: out, offset: c * n + n0, count: count)
                }
            }
            for g0 in stride(from: panelRange.lowerBound, to: panelRange.upperBound, by: 16) {
                for t in blockRange {
                    let m0 = t * weightLanes, rows = min(weightLanes, w.outC - m0)
                    let a = w.packed + t * kGroups * 64, compensation = w.compensation + m0
                    for panel in g0..<min(g0 + 16, panelRange.upperBound) {
                        let n0 = panel * 16, nr = min(16, n - n0)
                        if nr == 16 {
                            quantizedKernel16x16(
                                wide: wide, a: a, b: b + 4 * n0, ldb: 4 * ld, kGroups: kGroups,
                                compensation: compensation, rows: rows
                            ) { r, v in
                                put(m0 + r, n0, v, count: 16)
                            }
                            continue
                        }
                        // Pixel j's sums have channel r in lane r: transpose them through the tiles.
                        for j in 0..<nr {
                            let v = quantizedKernel16x1(
                                wide: wide, a: a, x: b + 4 * (n0 + j), ldx: 4 * ld,
                                kGroups: kGroups, compensation: compensation)
                            for r in 0..<rows { tile[r][j] = v[r] }
                        }
                        for r in 0..<rows { put(m0 + r, n0, tile[r], count: nr) }
                    }
                }
            }
        }
    }
}

/// The 16 lanes of `v` as floats, in one instruction (the generic conversion is a call, lane by lane).
@inline(__always)
private func floats(_ v: SIMD16<Int32>) -> SIMD16<Float> {
    #if hasFeature(BuiltinModule)
    var f = SIMD16<Float>()
    f._storage._value = Builtin.sitofp_Vec16xInt32_Vec16xFPIEEE32(v._storage._value)
    return f
    #else
    return SIMD16<Float>(v)
    #endif
}

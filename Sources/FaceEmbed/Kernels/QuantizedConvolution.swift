// Quantized convolution (groups = 1, any kernel, stride and padding) and fully connected layer, one image at a time:
// float input → integers (QuantizedWeights.swift) → integer GEMM (QuantizedGEMMKernels.swift) → float output.
//
//   C[M × N] (Int32) = A[M × K] · B[K × N]     M = outC, K = inC·kH·kW, N = outH·outW, as in Convolution.swift
//   A  packed weights a[blk][kg][16][G]
//   B  b[kg][ld][G], built in scratch: 32-bit lane (kg, n) holds k = G·kg ..< G·kg + G of pixel n (value j in bits
//      8j, or 16j for 16-bit), so one 32-bit broadcast or one 64-byte panel load feeds the micro-kernels.
//      ld = 16 · panels + 16: the last 16 take the spill of row copies; k past K holds the zero point (weights 0).
//      When the GEMM splits by panels, B is built and multiplied band by band (`QuantizedBands`: a few panels, all
//      k-groups), each thread its own bands in its own buffer; otherwise whole, its k-groups split among threads.
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
//   Threads split the quantization by input channel, and B and the GEMM by bands of panels or else B by k-group and
//   the GEMM by blocks of channels.
//   Weights with K tap-major (8-bit, stride 1, "same" padding) run without B: QuantizedDirectConvolution.swift, whose
//   panels the same GEMM reads in one run of k-groups per tap.
// Scratch (bytes): B or one band buffer per thread, then (not for the 1×1 fast path) the padded planes and slack for
// the last row's vector reads.
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

/// Whether the GEMM splits its threads by panels of pixels (else by blocks of output channels). Blocks when a
/// thread would get fewer than 4 panels, unbalanced, of a long K (r100's 512×7×7 layers: 4 panels, the last of one
/// pixel); short-K layers (MobileFaceNet's 1×1s at 7×7) stay with panels, where B needs no shared build.
private func splitsByPanels(panels: Int, blocks: Int, kGroups: Int, threads: Int) -> Bool {
    panels >= 4 * threads || panels >= blocks || (kGroups < 256 && panels >= 2 * threads)
}

/// How B is built when the GEMM splits by panels: each thread takes an equal share of the panels (`chunk`; the
/// partial last panel goes with the last share) and builds and multiplies it in bands of consecutive panels, into its
/// own buffer, so a band is still in its core's cache when it is read.
struct QuantizedBands {
    /// Panels of the layer, most panels per band, and threads sharing them out.
    let total: Int, most: Int, parts: Int
    /// Leading dimension of a band's buffer, and its bytes.
    let ld: Int, bufferBytes: Int

    /// The bands of `g` with `kGroups` k-groups on `threads` threads; nil when the GEMM splits by blocks of channels
    /// (the threads then share one whole B).
    init?(_ g: ConvGeometry, kGroups: Int, planeBytes: Int, threads: Int) {
        total = (g.pixels + 15) / 16
        let blocks = (g.outC + weightLanes - 1) / weightLanes
        guard splitsByPanels(panels: total, blocks: blocks, kGroups: kGroups, threads: threads) else { return nil }
        parts = max(1, min(threads, total))
        // A thread's whole share in one band unless its B outgrows its cache with the planes it is gathered from
        // (each band reads all the weights again, and gathers from all over the planes).
        let share = (total + parts - 1) / parts, panelBytes = kGroups * 64
        let whole = panelBytes * share <= quantizedWholeBytes + 2 * planeBytes
        most = whole ? share : max(1, quantizedBandBytes / panelBytes)
        ld = most * 16 + 16
        bufferBytes = kGroups * ld * 4
    }

    /// Calls `body` with the output pixels of each band of thread `part`, in order, for a layer of `pixels` pixels:
    /// the thread's panels in as few bands of at most `most` panels as there can be, of nearly equal size.
    @inline(__always)
    func forEachBand(of part: Int, pixels: Int, _ body: (Range<Int>) -> Void) {
        let mine = chunk(total, parts: parts, index: part), count = (mine.count + most - 1) / most
        for band in 0..<count {
            let panels = chunk(mine.count, parts: count, index: band)
            body(((mine.lowerBound + panels.lowerBound) * 16)..<min(pixels, (mine.lowerBound + panels.upperBound) * 16))
        }
    }
}

/// Bytes of B a thread builds whole (beyond twice the planes'), and the most bytes of a band when it is larger: for
/// an L2 of 1 MiB per core (AMD Zen 4; r100 int8, layer by layer with `faceembed bench --layers`).
private let quantizedWholeBytes = 512 << 10, quantizedBandBytes = 256 << 10

/// Bytes of the padded planes plus slack for 16-pixel reads at any stride past the end, in whole cache lines.
private func quantizedPlaneBytes(_ g: ConvGeometry, _ precision: QuantizedPrecision) -> Int {
    let plane = (g.inH + 2 * g.padH) * (g.inW + 2 * g.padW)
    return ((g.inC * plane + 16 * g.strideW + 16) * precision.elementBytes + 63) / 64 * 64
}

/// Bytes of the padded planes (0 for the 1×1 fast path, which has none), the bands of `g` on `threads` threads, and
/// the bytes of B: one whole B, or a band buffer per thread.
private func quantizedLayout(_ g: ConvGeometry, _ precision: QuantizedPrecision, threads: Int)
    -> (planeBytes: Int, bands: QuantizedBands?, bBytes: Int)
{
    let planeBytes = g.isPointwise ? 0 : quantizedPlaneBytes(g, precision)
    let kGroups = (g.k + precision.group - 1) / precision.group
    let bands = QuantizedBands(g, kGroups: kGroups, planeBytes: planeBytes, threads: threads)
    let b = bands.map { $0.parts * $0.bufferBytes } ?? kGroups * quantizedLeadingDimension(g.pixels) * 4
    return (planeBytes, bands, (b + 63) / 64 * 64)
}

/// Scratch bytes `quantizedConvolution` needs for `g` on up to `threads` threads (shared by all of them): B for
/// the threads of the call, then the planes; or the direct convolution's copies of the input, whichever is larger
/// (the weights say which runs).
func quantizedConvolutionScratch(_ g: ConvGeometry, precision: QuantizedPrecision, threads: Int) -> Int {
    let direct = precision == .int8 && quantizedDirectFits(g) ? quantizedDirectScratch(g, threads: threads) : 0
    return (1...max(1, threads)).map { t in
        let layout = quantizedLayout(g, precision, threads: t)
        return max(direct, layout.bBytes + layout.planeBytes)
    }.max()!
}

/// Quantized convolution with groups = 1 on one image (see the top of this file). `range` is the calibrated
/// max |x| of the input (after `affine`), or nil to measure it. `affine` (Convolution.swift) is applied to the input
/// as it is quantized into the padded planes, so no float copy of the input is written and read back; the 1×1 fast
/// path has no planes and takes none. `scratch` holds `quantizedConvolutionScratch(g, precision:threads:)` bytes.
/// Returns the activation quantization it used.
@discardableResult
func quantizedConvolution(
    _ g: ConvGeometry, input: UnsafePointer<Float>, affine: InputAffine? = nil, weights w: QuantizedWeightPointers,
    range: Float?, output: QuantizedOutput, scratch: UnsafeMutableRawPointer,
    threads: Int
) -> ActivationQuantization {
    precondition(g.groups == 1 && w.k == g.k && w.outC == g.outC, "quantized convolution: weights do not fit \(g)")
    precondition(affine == nil || !g.isPointwise, "quantized convolution: an input affine needs padded planes")
    let p = w.precision
    let q = ActivationQuantization(
        range: range ?? inputRange(input, channels: g.inC, plane: g.inH * g.inW, affine: affine, threads: threads),
        precision: p, maxAbsRowSum: w.maxAbsRowSum)
    if w.tapMajor {
        quantizedDirectConvolution(
            g, input: input, affine: affine, weights: w, quantization: q, output: output, scratch: scratch,
            threads: threads)
        return q
    }
    let kGroups = w.kGroups, (_, bands, bBytes) = quantizedLayout(g, p, threads: threads)
    let b = scratch, planes = scratch + bBytes
    if !g.isPointwise {
        let cParts = max(1, min(threads, g.inC))
        parallelFor(cParts, threads: threads) { part in
            quantizePlanes(
                g, input: input, affine: affine, quantization: q,
                channels: chunk(g.inC, parts: cParts, index: part), into: planes)
        }
    }
    // Columns `pixels` of B, k-groups `groups`, into `dst` (column 0 = the first pixel).
    func build(_ pixels: Range<Int>, _ groups: Range<Int>, into dst: UnsafeMutableRawPointer, ld: Int) {
        if g.isPointwise {
            packPointwise(
                input, channels: g.inC, pixels: g.pixels, columns: pixels, quantization: q, kGroups: groups,
                into: dst, ld: ld)
        } else {
            gatherQuantized(g, planes: planes, precision: p, pixels: pixels, kGroups: groups, into: dst, ld: ld)
        }
    }
    guard let bands else {
        let ld = quantizedLeadingDimension(g.pixels), kParts = max(1, min(threads, kGroups))
        parallelFor(kParts, threads: threads) { part in
            build(0..<g.pixels, chunk(kGroups, parts: kParts, index: part), into: b, ld: ld)
        }
        quantizedGEMM(
            w, b: b, ld: ld, pixels: 0..<g.pixels, stride: g.pixels, quantization: q, output: output,
            threads: threads)
        return q
    }
    parallelFor(bands.parts, threads: threads) { part in
        let buffer = b + part * bands.bufferBytes
        bands.forEachBand(of: part, pixels: g.pixels) { pixels in
            build(pixels, 0..<kGroups, into: buffer, ld: bands.ld)
            quantizedGEMM(
                w, b: buffer, ld: bands.ld, pixels: pixels, stride: g.pixels, quantization: q, output: output,
                threads: 1)
        }
    }
    return q
}

/// Scratch bytes `quantizedFullyConnected` needs for `inFeatures` inputs.
func quantizedFullyConnectedScratch(inFeatures: Int, outFeatures: Int, precision: QuantizedPrecision, threads: Int)
    -> Int
{
    quantizedConvolutionScratch(fullyConnectedGeometry(inFeatures, outFeatures), precision: precision, threads: threads)
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

/// Packs columns `columns` (pixels; the first lands in column 0) of k-groups `kGroups` of B for a 1×1, stride-1,
/// unpadded convolution straight from the float input [channels][n]: quantizes 16 pixels of each of the G channels
/// of a k-group and interleaves them. The 16 pixels at the end of a band may run past it into the buffer's spill.
func packPointwise(
    _ input: UnsafePointer<Float>, channels: Int, pixels n: Int, columns: Range<Int>,
    quantization q: ActivationQuantization, kGroups: Range<Int>, into b: UnsafeMutableRawPointer, ld: Int
) {
    if q.precision == .int8 {
        packPointwiseBytes(
            input, channels: channels, pixels: n, columns: columns, quantization: q, kGroups: kGroups, into: b, ld: ld)
    } else {
        packPointwiseWords(
            input, channels: channels, pixels: n, columns: columns, quantization: q, kGroups: kGroups, into: b, ld: ld)
    }
}

/// `packPointwise` for 8-bit values: each channel's 16 pixels quantized and narrowed to bytes, the four channels of
/// a k-group interleaved as the gather does (a loop over the channels or-ing shifted words took twice as long: 10 %
/// of y1 int8 on one thread).
@inline(never)
private func packPointwiseBytes(
    _ input: UnsafePointer<Float>, channels: Int, pixels n: Int, columns: Range<Int>,
    quantization q: ActivationQuantization, kGroups: Range<Int>, into b: UnsafeMutableRawPointer, ld: Int
) {
    let indices = InterleaveIndices()
    for kg in kGroups {
        let dst = b + (kg &* ld &- columns.lowerBound) &* 4, c0 = kg &* 4
        // A last k-group with fewer than 4 channels goes value by value (the optimiser left a per-channel choice
        // between a quantized row and the zero point as a call).
        guard c0 &+ 4 <= channels else {
            packPointwiseTail(
                input, channels: channels, pixels: n, from: columns.lowerBound, to: columns.upperBound, q, kGroup: kg,
                dst)
            continue
        }
        let x = input + c0 &* n
        var p = columns.lowerBound
        while p < columns.upperBound {
            if p &+ 16 > n && n &- 16 >= columns.lowerBound { p = n &- 16 }
            guard p &+ 16 <= n else { break }
            let r0 = quantizedBytes(x + p, q), r1 = quantizedBytes(x + (n &+ p), q)
            let r2 = quantizedBytes(x + (2 &* n &+ p), q), r3 = quantizedBytes(x + (3 &* n &+ p), q)
            storeVector(interleaved(r0, r1, r2, r3, indices), to: dst + 4 &* p)
            p &+= 16
        }
        packPointwiseTail(input, channels: channels, pixels: n, from: p, to: columns.upperBound, q, kGroup: kg, dst)
    }
}

/// The 16 floats at x quantized to bytes.
@_transparent
private func quantizedBytes(_ x: UnsafePointer<Float>, _ q: ActivationQuantization) -> SIMD16<UInt8> {
    narrowedToBytes(q.quantize16(loadVector(x, as: SIMD16<Float>.self)))
}

/// `packPointwise` for 16-bit values.
private func packPointwiseWords(
    _ input: UnsafePointer<Float>, channels: Int, pixels n: Int, columns: Range<Int>,
    quantization q: ActivationQuantization, kGroups: Range<Int>, into b: UnsafeMutableRawPointer, ld: Int
) {
    let group = q.precision.group, bits = UInt32(32 / group), mask: UInt32 = group == 4 ? 0xFF : 0xFFFF
    let zero = UInt32(bitPattern: q.zeroPoint) & mask
    for kg in kGroups {
        let dst = b + (kg * ld - columns.lowerBound) * 4
        var p = columns.lowerBound
        while p < columns.upperBound {
            if p + 16 > n && n - 16 >= columns.lowerBound { p = n - 16 }
            guard p + 16 <= n else { break }
            var word = SIMD16<UInt32>()
            for j in 0..<group {
                let c = kg * group + j
                let v =
                    c < channels
                    ? SIMD16<UInt32>(
                        truncatingIfNeeded: q.quantize16(
                            loadVector(UnsafeRawPointer(input + c * n + p), as: SIMD16<Float>.self))) & mask
                    : SIMD16(repeating: zero)
                word |= v &<< (bits * UInt32(j))
            }
            storeVector(word, to: dst + 4 * p)
            p += 16
        }
        packPointwiseTail(input, channels: channels, pixels: n, from: p, to: columns.upperBound, q, kGroup: kg, dst)
    }
}

/// Columns start ..< end of k-group `kg` (none if start ≥ end) one pixel at a time: the fewer than 16 left over.
private func packPointwiseTail(
    _ input: UnsafePointer<Float>, channels: Int, pixels n: Int, from start: Int, to end: Int,
    _ q: ActivationQuantization, kGroup kg: Int, _ dst: UnsafeMutableRawPointer
) {
    let group = q.precision.group, bits = UInt32(32 / group), mask: UInt32 = group == 4 ? 0xFF : 0xFFFF
    let zero = UInt32(bitPattern: q.zeroPoint) & mask
    for p in start..<max(start, end) {
        var word: UInt32 = 0
        for j in 0..<group {
            let c = kg * group + j
            let v = c < channels ? UInt32(bitPattern: q.quantize(input[c * n + p])) & mask : zero
            word |= v &<< (bits * UInt32(j))
        }
        dst.storeBytes(of: word, toByteOffset: 4 * p, as: UInt32.self)
    }
}

/// max |x| of the input [channels][plane], after `affine` if there is one (NaN ignored; the same value as measured
/// on the affine's output), the channels split among threads.
func inputRange(
    _ input: UnsafePointer<Float>, channels: Int, plane: Int, affine: InputAffine?, threads: Int
) -> Float {
    let parts = max(1, min(threads, channels))
    return withUnsafeTemporaryAllocation(of: Float.self, capacity: parts) { partial in
        parallelFor(parts, threads: threads) { part in
            let cs = chunk(channels, parts: parts, index: part)
            guard let affine else {
                partial[part] = maxAbs(input + cs.lowerBound * plane, count: cs.count * plane)
                return
            }
            partial[part] = affineMaxAbs(
                input, plane: plane, channels: cs, scale: affine.scale, shift: affine.shift)
        }
        return partial.max()!
    }
}

/// Quantizes input channels `channels` into padded planes (see the top of the file), the border the zero point,
/// applying `affine` first if there is one.
func quantizePlanes(
    _ g: ConvGeometry, input: UnsafePointer<Float>, affine: InputAffine?, quantization q: ActivationQuantization,
    channels: Range<Int>, into planes: UnsafeMutableRawPointer
) {
    let planeBytes = (g.inH + 2 * g.padH) * (g.inW + 2 * g.padW) * q.precision.elementBytes
    for ic in channels {
        quantizePlane(
            g, input + ic * g.inH * g.inW, scale: affine?.scale[ic] ?? 1, shift: affine?.shift[ic] ?? 0,
            available: (g.inC - ic) * g.inH * g.inW, q, into: planes + ic * planeBytes)
    }
}

/// One channel's padded plane (`quantizePlanes`). Each row's values are written before its padding, 16 at a time: a
/// row narrower than 16 runs on into the rows after it, which are written later, as long as it stays inside the
/// plane and reads stay inside the `available` input values. Kept apart from the loop over channels: inside it, the optimiser
/// left the 16-value step as a call, its vectors passed in halves (4 % of r100 int8).
@inline(never)
private func quantizePlane(
    _ g: ConvGeometry, _ input: UnsafePointer<Float>, scale: Float, shift: Float, available: Int,
    _ q: ActivationQuantization, into plane: UnsafeMutableRawPointer
) {
    let hp = g.inH &+ 2 &* g.padH, wp = g.inW &+ 2 &* g.padW, eb = q.precision.elementBytes, wide = eb == 2
    let zero = q.zeroPoint, w = g.inW
    let s = SIMD16<Float>(repeating: scale), t = SIMD16<Float>(repeating: shift)
    let rowBytes = wp &* eb
    fillZero(plane, count: g.padH &* wp, wide: wide, zero: zero)
    for iy in 0..<g.inH {
        let row = plane + (g.padH &+ iy) &* rowBytes, src = input + iy &* w, dst = row + g.padW &* eb
        if w >= 16 {
            var i = 0
            while i < w {
                i = min(i, w &- 16)
                quantized16(src + i, s, t, q, wide: wide, to: dst + i &* eb)
                i &+= 16
            }
        } else if iy &* w &+ 16 <= available && (g.padH &+ iy) &* wp &+ g.padW &+ 16 <= hp &* wp {
            quantized16(src, s, t, q, wide: wide, to: dst)
        } else {
            for i in 0..<w { put(q.quantize(src[i] * scale + shift), at: dst, i, wide: wide) }
        }
        for i in 0..<g.padW { put(zero, at: row, i, wide: wide); put(zero, at: row, wp &- 1 &- i, wide: wide) }
    }
    fillZero(plane + (g.padH &+ g.inH) &* rowBytes, count: g.padH &* wp, wide: wide, zero: zero)
}

@inline(__always)
private func put(_ v: Int32, at row: UnsafeMutableRawPointer, _ i: Int, wide: Bool) {
    if wide {
        row.storeBytes(of: Int16(truncatingIfNeeded: v), toByteOffset: 2 &* i, as: Int16.self)
    } else {
        row.storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: i, as: UInt8.self)
    }
}

private func fillZero(_ p: UnsafeMutableRawPointer, count: Int, wide: Bool, zero: Int32) {
    if wide {
        p.bindMemory(to: Int16.self, capacity: count).update(repeating: Int16(truncatingIfNeeded: zero), count: count)
    } else {
        p.bindMemory(to: UInt8.self, capacity: count).update(repeating: UInt8(truncatingIfNeeded: zero), count: count)
    }
}

/// The stored integers of x[0 ..< 16] · s + t. The affine's arithmetic is channelAffine's (a product, then a sum), so
/// the values are the ones its output held. A top-level function: as a nested one it was called, not inlined, its
/// vectors passed in halves.
@_transparent
func affineQuantized16(
    _ x: UnsafePointer<Float>, _ s: SIMD16<Float>, _ t: SIMD16<Float>, _ q: ActivationQuantization
) -> SIMD16<Int32> {
    q.quantize16(loadVector(x, as: SIMD16<Float>.self) * s + t)
}

/// `affineQuantized16` stored as 16 bytes (16 halves if `wide`) at dst.
@_transparent
private func quantized16(
    _ x: UnsafePointer<Float>, _ s: SIMD16<Float>, _ t: SIMD16<Float>, _ q: ActivationQuantization, wide: Bool,
    to dst: UnsafeMutableRawPointer
) {
    let v = affineQuantized16(x, s, t, q)
    if wide {
        storeVector(narrowedToHalves(v), to: dst)
    } else {
        storeVector(narrowedToBytes(v), to: dst)
    }
}

#if hasFeature(BuiltinModule)
// One instruction each (`vpmovdb`, `vpmovdw`, `vpmovzxbd`, `vpmovzxwd`, `vpmovwb`); the generic integer conversions
// of SIMD vectors compile to a call.
@inline(__always)
func narrowedToBytes(_ v: SIMD16<Int32>) -> SIMD16<UInt8> {
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
private func evenBytes(_ v: SIMD16<UInt16>) -> SIMD16<UInt8> {
    var r = SIMD16<UInt8>()
    r._storage._value = Builtin.trunc_Vec16xInt16_Vec16xInt8(v._storage._value)
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
func narrowedToBytes(_ v: SIMD16<Int32>) -> SIMD16<UInt8> { SIMD16<UInt8>(truncatingIfNeeded: v) }
@inline(__always)
private func narrowedToHalves(_ v: SIMD16<Int32>) -> SIMD16<Int16> { SIMD16<Int16>(truncatingIfNeeded: v) }
@inline(__always)
private func widened(_ v: SIMD16<UInt8>) -> SIMD16<UInt32> { SIMD16<UInt32>(truncatingIfNeeded: v) }
@inline(__always)
private func widened(_ v: SIMD16<UInt16>) -> SIMD16<UInt32> { SIMD16<UInt32>(truncatingIfNeeded: v) }
@inline(__always)
private func evenBytes(_ v: SIMD16<UInt16>) -> SIMD16<UInt8> { SIMD16<UInt8>(truncatingIfNeeded: v) }
#endif

/// 16 elements (1 or 2 bytes each, zero-extended) at element stride `stride` from `p` (8-bit values at stride 1 or 2
/// go through `bytes16` instead).
@inline(__always)
private func load16(_ p: UnsafeRawPointer, stride: Int, elementBytes eb: Int) -> SIMD16<UInt32> {
    switch (eb, stride) {
    case (2, 1): return widened(loadVector(p, as: SIMD16<UInt16>.self))
    case (2, 2): return loadVector(p, as: SIMD16<UInt32>.self) & 0xFFFF
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

/// 16 bytes at byte stride 1 or 2 from `p`.
@inline(__always)
private func bytes16(_ p: UnsafeRawPointer, stride: Int) -> SIMD16<UInt8> {
    stride == 1 ? loadVector(p, as: SIMD16<UInt8>.self) : evenBytes(loadVector(p, as: SIMD16<UInt16>.self))
}

#if FACEEMBED_AVX512 && hasFeature(BuiltinModule)
/// The index vectors of `interleaved`: a dword permute, then a byte shuffle within each 128-bit lane.
struct InterleaveIndices {
    let dwords: SIMD16<Int32>, bytes: SIMD64<UInt8>
    init() {
        var d = SIMD16<Int32>(), b = SIMD64<UInt8>()
        // Lane L of the permuted register: dword L of each of the four sources; in it, byte 4n + j = byte n of
        // source j.
        for lane in 0..<4 { for j in 0..<4 { d[4 * lane + j] = Int32(4 * j + lane) } }
        for lane in 0..<4 { for n in 0..<4 { for j in 0..<4 { b[16 * lane + 4 * n + j] = UInt8(4 * j + n) } } }
        dwords = d; bytes = b
    }
}

/// Word n = a[n] | b[n] << 8 | c[n] << 16 | d[n] << 24: the four vectors as the 128-bit lanes of one register, a
/// dword permute and a byte shuffle (widening each byte to 32 bits, shifting and or-ing took three times as many
/// instructions).
@inline(__always)
func interleaved(
    _ a: SIMD16<UInt8>, _ b: SIMD16<UInt8>, _ c: SIMD16<UInt8>, _ d: SIMD16<UInt8>, _ i: InterleaveIndices
) -> SIMD16<UInt32> {
    // The four vectors laid end to end (the optimiser makes this two 128-bit inserts and a 256-bit one).
    @inline(__always) func words(_ v: SIMD16<UInt8>) -> SIMD4<Int32> { unsafeBitCast(v, to: SIMD4<Int32>.self) }
    let abcd = SIMD16<Int32>(
        lowHalf: SIMD8(lowHalf: words(a), highHalf: words(b)), highHalf: SIMD8(lowHalf: words(c), highHalf: words(d))
    )._storage._value
    let lanes = Builtin.int_x86_avx512_permvar_si_512(abcd, i.dwords._storage._value)
    var r = SIMD16<UInt32>()
    r._storage._value = Builtin.bitcast_Vec64xInt8_Vec16xInt32(
        Builtin.int_x86_avx512_pshuf_b_512(Builtin.bitcast_Vec16xInt32_Vec64xInt8(lanes), i.bytes._storage._value))
    return r
}
#else
struct InterleaveIndices {}

/// Word n = a[n] | b[n] << 8 | c[n] << 16 | d[n] << 24.
@inline(__always)
func interleaved(
    _ a: SIMD16<UInt8>, _ b: SIMD16<UInt8>, _ c: SIMD16<UInt8>, _ d: SIMD16<UInt8>, _: InterleaveIndices
) -> SIMD16<UInt32> {
    widened(a) | widened(b) &<< 8 | widened(c) &<< 16 | widened(d) &<< 24
}
#endif

/// Builds columns `pixels` (the first lands in column 0) of k-groups `kGroups` of B from the padded planes (see the
/// top of the file).
func gatherQuantized(
    _ g: ConvGeometry, planes: UnsafeRawPointer, precision: QuantizedPrecision, pixels: Range<Int>,
    kGroups: Range<Int>, into b: UnsafeMutableRawPointer, ld: Int
) {
    // One copy per common precision and stride, so that the loop over a k-group's rows unrolls and `load16` picks its
    // load at compile time (a generic copy spent about as long as the GEMM on a 3×3 layer's B).
    switch (precision, g.strideW) {
    case (.int8, 1): gatherBytes(g, planes, pixels, kGroups, b, ld, stride: 1)
    case (.int8, 2): gatherBytes(g, planes, pixels, kGroups, b, ld, stride: 2)
    case (.int16, 1): gatherRows(g, planes, pixels, kGroups, b, ld, group: 2, elementBytes: 2, stride: 1)
    case (.int16, 2): gatherRows(g, planes, pixels, kGroups, b, ld, group: 2, elementBytes: 2, stride: 2)
    default:
        gatherRows(
            g, planes, pixels, kGroups, b, ld, group: precision.group, elementBytes: precision.elementBytes,
            stride: g.strideW)
    }
}

/// `gatherQuantized` for G = `group` rows per k-group of `eb`-byte elements read at column stride `sW`.
@inline(__always)
private func gatherRows(
    _ g: ConvGeometry, _ planes: UnsafeRawPointer, _ pixels: Range<Int>, _ kGroups: Range<Int>,
    _ b: UnsafeMutableRawPointer, _ ld: Int, group: Int, elementBytes eb: Int, stride sW: Int
) {
    let bits = UInt32(32 / group), zero = SIMD16<UInt32>(repeating: group == 4 ? 128 : 0)
    walkB(g, pixels, kGroups, b, ld, group: group) { tap, offset in
        var word = SIMD16<UInt32>()
        for j in 0..<group {
            let v = tap[j] < 0 ? zero : load16(planes + (tap[j] &+ offset) &* eb, stride: sW, elementBytes: eb)
            word |= v &<< (bits &* UInt32(j))
        }
        return word
    }
}

/// `gatherQuantized` for 8-bit values (G = 4) read at column stride `sW` (1 or 2).
@inline(__always)
private func gatherBytes(
    _ g: ConvGeometry, _ planes: UnsafeRawPointer, _ pixels: Range<Int>, _ kGroups: Range<Int>,
    _ b: UnsafeMutableRawPointer, _ ld: Int, stride sW: Int
) {
    let indices = InterleaveIndices(), zero = SIMD16<UInt8>(repeating: 128)
    walkB(g, pixels, kGroups, b, ld, group: 4) { tap, offset in
        @inline(__always) func row(_ j: Int) -> SIMD16<UInt8> {
            tap[j] < 0 ? zero : bytes16(planes + (tap[j] &+ offset), stride: sW)
        }
        return interleaved(row(0), row(1), row(2), row(3), indices)
    }
}

/// The walk of `gatherQuantized` over B: for each k-group, each output row's part of `pixels`, 16 pixels at a time,
/// stores `word(tap, offset)`, the 16 words whose row j is read at element offset tap[j] + offset of the planes (tap[j]
/// is −1 past K). The last 16 of a part at least 16 wide are the part's last 16; a narrower part writes past its end
/// into the next row's, which is written after it, or into the spill.
@inline(__always)
private func walkB(
    _ g: ConvGeometry, _ pixels: Range<Int>, _ kGroups: Range<Int>, _ b: UnsafeMutableRawPointer, _ ld: Int,
    group: Int, _ word: (UnsafeMutablePointer<Int>, Int) -> SIMD16<UInt32>
) {
    let hp = g.inH + 2 * g.padH, wp = g.inW + 2 * g.padW, taps = g.kH * g.kW
    let p0 = pixels.lowerBound, p1 = pixels.upperBound
    // Row k = (ic·kH + ky)·kW + kx of B, counted up from the first k-group's (divisions per k-group took as long as
    // the copies on 14×14 layers).
    var k = kGroups.lowerBound * group, ic = k / taps, ky = k % taps / g.kW, kx = k % g.kW
    withUnsafeTemporaryAllocation(of: Int.self, capacity: 4) { tap in
        let tap = tap.baseAddress!
        for kg in kGroups {
            // Element offset in the planes of row j's tap for output pixel (0, 0); −1 past K.
            for j in 0..<group {
                tap[j] = k < g.k ? (ic * hp + ky) * wp + kx : -1
                k += 1; kx += 1
                if kx == g.kW { kx = 0; ky += 1 }
                if ky == g.kH { ky = 0; ic += 1 }
            }
            let column0 = b + (kg &* ld &- p0) &* 4
            var oy = p0 / g.outW
            while oy &* g.outW < p1 {
                let first = oy &* g.outW, rowOffset = oy &* g.strideH &* wp, dst = column0 + first &* 4
                let start = max(0, p0 &- first), end = min(g.outW, p1 &- first)
                var ox = start
                while ox < end {
                    if ox &+ 16 > end && end &- start >= 16 { ox = end &- 16 }
                    storeVector(word(tap, rowOffset &+ ox &* g.strideW), to: dst + 4 &* ox)
                    ox &+= 16
                }
                oy &+= 1
            }
        }
    }
}

/// C = A · B for output pixels `pixels` (B's column 0 is the first of them) into `output`, whose channels are
/// `stride` pixels apart (see the top of the file). B's k-groups are read in `runs` (QuantizedGEMMKernels.swift; nil:
/// one run, a matrix B). Never inlined: inlined into a caller's closure (a quantized
/// block's bands), its loads were left as generic calls, three times slower.
@inline(never)
func quantizedGEMM(
    _ w: QuantizedWeightPointers, b: UnsafeRawPointer, ld: Int, runs: UnsafeBufferPointer<Int>? = nil,
    pixels: Range<Int>, stride ldc: Int, quantization q: ActivationQuantization, output: QuantizedOutput, threads: Int
) {
    guard let runs else {
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 1) { run in
            run[0] = 0
            quantizedGEMM(
                w, b: b, ld: ld, runs: UnsafeBufferPointer(run), pixels: pixels, stride: ldc, quantization: q,
                output: output, threads: threads)
        }
        return
    }
    let n = pixels.count, first = pixels.lowerBound, runGroups = w.kGroups / runs.count
    let panels = (n + 15) / 16, blocks = w.blocks, kGroups = w.kGroups, wide = w.precision == .int16
    let byPanels = splitsByPanels(panels: panels, blocks: blocks, kGroups: kGroups, threads: threads)
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
                    let o = c * ldc + first + n0
                    if count == 16 {
                        storeVector(v, to: UnsafeMutableRawPointer(out + o))
                    } else {
                        for j in 0..<count { out[o + j] = v[j] }
                    }
                case .float(let out, let epilogue):
                    let f = floats(v) * (q.scale * w.scales[c]), o = c * ldc + first + n0
                    if count == 16 {
                        // The epilogue in registers: through a tile it cost as much as the whole GEMM loop when K is
                        // short (64 → 128 at 28×28: 16 k-groups).
                        storeVector(epilogue.channel(c, offset: o, as: SIMD16<Float>.self)(f, at: 0), to: out + o)
                        return
                    }
                    storeVector(f, to: UnsafeMutableRawPointer(tile + 16))
                    epilogue.apply(
                        channel: c, acc: UnsafeRawPointer(tile + 16).assumingMemoryBound(to: Float.self),
                        out: out, offset: o, count: count)
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
                                wide: wide, a: a, b: b + 4 * n0, ldb: 4 * ld, runs: runs, kGroups: runGroups,
                                compensation: compensation, rows: rows
                            ) { r, v in
                                put(m0 + r, n0, v, count: 16)
                            }
                            continue
                        }
                        partialPanel(
                            wide: wide, a: a, b: b + 4 * n0, ldb: 4 * ld, runs: runs, kGroups: runGroups,
                            compensation: compensation, pixels: nr, into: tile)
                        for r in 0..<rows { put(m0 + r, n0, tile[r], count: nr) }
                    }
                }
            }
        }
    }
}

/// The sums of a partial last panel's `pixels` pixels (fewer than 16) into tiles[r][j] (channel r, pixel j): pixel j's
/// sums have channel r in lane r. Four pixels at a time share each load of the weights: one at a time, the 4 pixels
/// ending a 14 × 14 map cost r100 int8's 14 × 14 layers 6 % (0.60 → 0.57 ms each on one thread). A function of its
/// own: inlined, it left every layer of the GEMM 1–2 % slower.
@inline(never)
private func partialPanel(
    wide: Bool, a: UnsafeRawPointer, b: UnsafeRawPointer, ldb: Int, runs: UnsafeBufferPointer<Int>, kGroups: Int,
    compensation: UnsafePointer<Int32>, pixels: Int, into tile: UnsafeMutablePointer<SIMD16<Int32>>
) {
    var j = 0
    while j + 4 <= pixels {
        let v = quantizedKernel16x4(
            wide: wide, a: a, x: b + 4 * j, ldx: ldb, runs: runs, kGroups: kGroups, compensation: compensation)
        for r in 0..<16 {
            tile[r][j] = v.0[r]; tile[r][j + 1] = v.1[r]; tile[r][j + 2] = v.2[r]; tile[r][j + 3] = v.3[r]
        }
        j += 4
    }
    for j in j..<pixels {
        let v = quantizedKernel16x1(
            wide: wide, a: a, x: b + 4 * j, ldx: ldb, runs: runs, kGroups: kGroups, compensation: compensation)
        for r in 0..<16 { tile[r][j] = v[r] }
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

import FaceEmbedTestSupport
import Foundation
import Testing

@testable import FaceEmbed

// The integer kernels (Kernels/Quantized*.swift) against ReferenceQuantized: weight and activation quantization equal
// the reference bit for bit, the packed layout is the stated one, and the kernels' integer sums equal the
// reference's exactly on random shapes (channels not multiples of 16, K not a multiple of 4, kernels 1×1 to 5×3,
// strides 1 and 2, padding 0–2, widths 7–112, 8- and 16-bit, 1 and 2 threads). Builds with AVX512 run the VNNI
// kernels, the others the portable ones. Float outputs: inputs uniform in ±1, weights uniform in ±1/sqrt(fan-in);
// the weights are int8 at either precision, so both are held to the same bound: cosine ≥ 0.9995 against the float32
// convolution, and within 1e-5 absolute (cosine ≥ 0.9999999) of the reference's dequantized sums.

/// Runs `quantizedConvolution` on one image twice: for the exact sums, and for the float output with the epilogue.
private func runQuantized(
    _ x: [Float], g: ConvGeometry, weights: QuantizedWeights, range: Float?,
    bias: [Float]? = nil, slope: [Float]? = nil, residual: [Float]? = nil,
    threads: Int
) -> (sums: [Int32], output: [Float], quantization: ActivationQuantization) {
    var sums = [Int32](repeating: 0, count: g.outC * g.pixels)
    var output = [Float](repeating: .nan, count: g.outC * g.pixels)
    var scratch = [UInt8](
        repeating: 0xA5, count: quantizedConvolutionScratch(g, precision: weights.precision, threads: threads))
    let bias = bias ?? [Float](repeating: 0, count: g.outC), slopes = slope ?? [], res = residual ?? []
    var quantization: ActivationQuantization?
    weights.withPointers { w in
        x.withUnsafeBufferPointer { xp in
            scratch.withUnsafeMutableBytes { sp in
                sums.withUnsafeMutableBufferPointer { op in
                    quantization = quantizedConvolution(
                        g, input: xp.baseAddress!, weights: w, range: range,
                        output: .accumulators(op.baseAddress!),
                        scratch: sp.baseAddress!, threads: threads)
                }
                bias.withUnsafeBufferPointer { bp in
                    slopes.withUnsafeBufferPointer { slp in
                        res.withUnsafeBufferPointer { rp in
                            output.withUnsafeMutableBufferPointer { op in
                                let epilogue = Epilogue(
                                    bias: bp.baseAddress!, slope: slope == nil ? nil : slp.baseAddress!,
                                    residual: residual == nil ? nil : rp.baseAddress!)
                                quantizedConvolution(
                                    g, input: xp.baseAddress!, weights: w, range: range,
                                    output: .float(op.baseAddress!, epilogue), scratch: sp.baseAddress!,
                                    threads: threads)
                            }
                        }
                    }
                }
            }
        }
    }
    return (sums, output, quantization!)
}

/// Values row-major [outC][k] read back from `w.packed` by the layout at the top of QuantizedWeights.swift; also
/// checks that everything past outC and K is zero.
private func unpack(_ w: QuantizedWeights) -> [Int8] {
    let g = w.precision.group, eb = w.precision.elementBytes
    var values = [Int8](repeating: 0, count: w.outC * w.k)
    for blk in 0..<w.blocks {
        for kg in 0..<w.kGroups {
            for lane in 0..<16 {
                for j in 0..<g {
                    let at = (((blk * w.kGroups + kg) * 16 + lane) * g + j) * eb
                    let v =
                        eb == 1
                        ? Int(Int8(bitPattern: w.packed[at]))
                        : Int(Int16(bitPattern: UInt16(w.packed[at]) | UInt16(w.packed[at + 1]) << 8))
                    let c = blk * 16 + lane, k = kg * g + j
                    if c < w.outC && k < w.k { values[c * w.k + k] = Int8(v) } else { #expect(v == 0) }
                }
            }
        }
    }
    return values
}

struct QuantizedKernelTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var c: Int, h: Int, w: Int, oc: Int, k: (Int, Int), s: (Int, Int), p: (Int, Int)
        var testDescription: String { "\(c)x\(h)x\(w)->\(oc) k\(k.0)x\(k.1) s\(s.0),\(s.1) p\(p.0),\(p.1)" }
        var geometry: ConvGeometry {
            ConvGeometry(
                inC: c, inH: h, inW: w, outC: oc, kH: k.0, kW: k.1, strideH: s.0, strideW: s.1, padH: p.0,
                padW: p.1, groups: 1)
        }
    }

    static let cases: [Case] = [
        Case(c: 3, h: 112, w: 112, oc: 20, k: (3, 3), s: (2, 2), p: (1, 1)),  // MobileFaceNet's first layer, K = 27
        Case(c: 17, h: 7, w: 7, oc: 33, k: (1, 1), s: (1, 1), p: (0, 0)),  // 1×1 fast path, 49 = 3·16 + 1 pixels
        Case(c: 64, h: 14, w: 14, oc: 16, k: (1, 1), s: (1, 1), p: (0, 0)),
        Case(c: 6, h: 3, w: 4, oc: 5, k: (1, 1), s: (1, 1), p: (0, 0)),  // 12 pixels: the scalar packing
        Case(c: 5, h: 9, w: 13, oc: 7, k: (3, 3), s: (1, 1), p: (1, 1)),
        Case(c: 18, h: 28, w: 28, oc: 24, k: (3, 3), s: (1, 1), p: (0, 0)),
        Case(c: 13, h: 15, w: 15, oc: 40, k: (1, 1), s: (2, 2), p: (0, 0)),  // 1×1 stride 2 (a ResNet shortcut)
        Case(c: 16, h: 56, w: 56, oc: 17, k: (3, 3), s: (2, 2), p: (1, 1)),
        Case(c: 9, h: 8, w: 30, oc: 17, k: (3, 3), s: (2, 2), p: (0, 0)),
        Case(c: 130, h: 7, w: 7, oc: 19, k: (3, 3), s: (1, 1), p: (1, 1)),  // K = 1170
        Case(c: 4, h: 10, w: 12, oc: 5, k: (5, 3), s: (1, 1), p: (2, 1)),
        Case(c: 7, h: 20, w: 23, oc: 31, k: (2, 3), s: (2, 1), p: (0, 1)),
        Case(c: 6, h: 25, w: 40, oc: 12, k: (3, 3), s: (3, 3), p: (1, 1)),  // stride 3: lane-by-lane reads
        Case(c: 32, h: 112, w: 112, oc: 18, k: (1, 1), s: (1, 1), p: (0, 0)),  // B in two or more bands
        Case(c: 512, h: 11, w: 11, oc: 20, k: (3, 3), s: (1, 1), p: (1, 1)),  // 16-bit, 1 thread: bands of 1 panel
        Case(c: 512, h: 15, w: 14, oc: 20, k: (3, 3), s: (1, 1), p: (1, 1)),  // 8-bit, 1 thread: bands of 2-3, mid-row
        // The direct convolution (8-bit, tap-major weights): rows narrower than 16 ending in a partial panel, rows of
        // 16 or more in overlapping steps, a 1×3 kernel, and a 5×3 one (also above: 4×10×12 and the 512-channel maps).
        Case(c: 64, h: 14, w: 14, oc: 40, k: (3, 3), s: (1, 1), p: (1, 1)),
        Case(c: 8, h: 20, w: 37, oc: 24, k: (3, 3), s: (1, 1), p: (1, 1)),
        Case(c: 8, h: 10, w: 33, oc: 9, k: (1, 3), s: (1, 1), p: (0, 1)),
        Case(c: 12, h: 9, w: 9, oc: 16, k: (5, 3), s: (1, 1), p: (2, 1)),
        // Maps under 64 pixels are stored for B, but a resized detector runs its tap-major layers on any map.
        Case(c: 8, h: 4, w: 5, oc: 17, k: (3, 3), s: (1, 1), p: (1, 1)),
        Case(c: 4, h: 1, w: 1, oc: 3, k: (3, 3), s: (1, 1), p: (1, 1)),
    ]

    /// The weights of `t` as the kernels take them: OIHW, and tap-major too where the direct convolution runs.
    private static func weightLayouts(_ weight: [Float], _ t: Case, _ precision: QuantizedPrecision)
        -> [QuantizedWeights]
    {
        let k = t.c * t.k.0 * t.k.1
        let oihw = QuantizedWeights(weight, outC: t.oc, k: k, precision: precision)
        guard precision == .int8 && quantizedDirectFits(t.geometry) else { return [oihw] }
        let tapMajor = tapMajorOrder(weight, outC: t.oc, inC: t.c, taps: t.k.0 * t.k.1)
        return [oihw, QuantizedWeights(tapMajor, outC: t.oc, k: k, precision: precision, tapMajor: true)]
    }

    private static func data(_ t: Case, _ salt: Int) -> (x: [Float], weight: [Float], rng: SeededRandom) {
        var rng = SeededRandom(seed: UInt64(t.c * 7919 + t.h * 31 + t.w + t.oc * 3 + t.k.0 * 101 + t.s.1 * 13 + salt))
        let x = rng.floats(t.c * t.h * t.w)
        let fanIn = t.c * t.k.0 * t.k.1
        let weight = rng.floats(t.oc * fanIn).map { $0 / Float(fanIn).squareRoot() }
        return (x, weight, rng)
    }

    @Test(
        "Weights quantize like the reference, pack in the stated layout and round-trip within half a step",
        arguments: cases, QuantizedPrecision.allCases)
    func weightsQuantizeAndPack(_ t: Case, precision: QuantizedPrecision) {
        let (_, weight, _) = Self.data(t, 1)
        let k = t.c * t.k.0 * t.k.1
        let w = QuantizedWeights(weight, outC: t.oc, k: k, precision: precision)
        let reference = ReferenceQuantized.quantizeWeights(weight, outC: t.oc, k: k)
        #expect(w.scales == reference.scales)
        #expect(unpack(w) == reference.values)
        var maxSum = 0
        for c in 0..<t.oc {
            let row = reference.values[(c * k)..<(c * k + k)]
            let sum = row.reduce(0) { $0 + Int($1) }
            maxSum = max(maxSum, row.reduce(0) { $0 + abs(Int($1)) })
            #expect(w.compensation[c] == (precision == .int8 ? Int32(128 * sum) : 0))
            for i in 0..<k {
                let error = abs(weight[c * k + i] - Float(reference.values[c * k + i]) * w.scales[c])
                #expect(error <= w.scales[c] * 0.5001)
            }
        }
        #expect(w.maxAbsRowSum == maxSum)
    }

    @Test(
        "Activations quantize like the reference, vector and scalar alike, and round-trip within half a step",
        arguments: QuantizedPrecision.allCases)
    func activationsRoundTrip(_ precision: QuantizedPrecision) {
        var rng = SeededRandom(seed: 77)
        let x = rng.floats(4096, -3...3) + [0, 1e-30, -1e-30]
        let range = x.reduce(Float(0)) { max($0, abs($1)) }
        for maxAbsRowSum in [1, 5_000, 200_000] {
            let q = ActivationQuantization(range: range, precision: precision, maxAbsRowSum: maxAbsRowSum)
            #expect(q.precision == .int16 || (q.low, q.high) == (-128, 127))
            #expect(precision == .int8 || Int(q.high) * maxAbsRowSum <= Int(Int32.max))
            let reference = ReferenceQuantized.quantize(x, inverse: q.inverse, low: q.low, high: q.high)
            let scalar = x.map { q.quantize($0) - precision.zeroPoint }
            var vector = [Int32]()
            for i in stride(from: 0, to: x.count - 15, by: 16) {
                let v = q.quantize16(SIMD16(x[i..<(i + 16)])) &- precision.zeroPoint
                vector += (0..<16).map { v[$0] }
            }
            #expect(scalar == reference)
            #expect(vector == Array(reference.prefix(vector.count)))
            // Half a step, plus the float rounding of x · inverse and of the check itself.
            for i in x.indices { #expect(abs(x[i] - Float(reference[i]) * q.scale) <= q.scale * 0.5 + 2 * x[i].ulp) }
            #expect(reference[x.count - 3] == 0)
        }
        // A calibrated range clamps what lies beyond it.
        let q = ActivationQuantization(range: 1, precision: precision, maxAbsRowSum: 1)
        #expect(q.quantize(5) - precision.zeroPoint == q.high && q.quantize(-5) - precision.zeroPoint == q.low)
        let zero = ActivationQuantization(range: 0, precision: precision, maxAbsRowSum: 1)
        #expect(zero.quantize(3) == precision.zeroPoint && zero.scale == 0)
    }

    @Test(
        "The input range under an input affine equals max |x| of the affine's output, NaN ignored",
        arguments: [1, 7, 16, 37, 196])
    func inputRangeUnderAnAffine(_ plane: Int) {
        var rng = SeededRandom(seed: UInt64(plane))
        let channels = 9
        var x = rng.floats(channels * plane, -4...4)
        x[plane / 2] = .nan  // one NaN in channel 0; channel 8 all NaN
        for i in (8 * plane)..<(9 * plane) { x[i] = .nan }
        let scale = rng.floats(channels, -3...3), shift = rng.floats(channels, -2...2)
        let affine = x.indices.map { x[$0] * scale[$0 / plane] + shift[$0 / plane] }
        let expected = affine.filter { !$0.isNaN }.map { abs($0) }.max() ?? 0
        for threads in [1, 2] {
            let (plain, fused) = x.withUnsafeBufferPointer { xp in
                scale.withUnsafeBufferPointer { sp in
                    shift.withUnsafeBufferPointer { tp in
                        affine.withUnsafeBufferPointer { ap in
                            (
                                inputRange(
                                    ap.baseAddress!, channels: channels, plane: plane, affine: nil, threads: threads),
                                inputRange(
                                    xp.baseAddress!, channels: channels, plane: plane,
                                    affine: InputAffine(scale: sp.baseAddress!, shift: tp.baseAddress!),
                                    threads: threads)
                            )
                        }
                    }
                }
            }
            #expect(plain == expected && fused == expected, "plane \(plane), \(threads) threads")
        }
    }

    @Test(
        "Quantized convolution sums equal the integer reference exactly",
        arguments: cases, QuantizedPrecision.allCases)
    func convolutionSumsAreExact(_ t: Case, precision: QuantizedPrecision) {
        let (x, weight, _) = Self.data(t, 2)
        let g = t.geometry, k = g.k
        let measured = x.reduce(Float(0)) { max($0, abs($1)) }
        // Measured at run time, and a calibrated range that clamps the largest inputs; each weight layout.
        let runs = Self.weightLayouts(weight, t, precision).flatMap { w in
            ([(nil, 1), (nil, 2), (measured * 0.6, 1)] as [(Float?, Int)]).map { (w, $0.0, $0.1) }
        }
        for (w, range, threads) in runs {
            let got = runQuantized(x, g: g, weights: w, range: range, threads: threads)
            let q = got.quantization
            #expect(
                q
                    == ActivationQuantization(
                        range: range ?? measured, precision: precision,
                        maxAbsRowSum: w.maxAbsRowSum))
            let xq = ReferenceQuantized.quantize(x, inverse: q.inverse, low: q.low, high: q.high)
            let expected = ReferenceQuantized.convolution(
                xq, inC: t.c, h: t.h, w: t.w,
                weights: ReferenceQuantized.quantizeWeights(weight, outC: t.oc, k: k).values,
                outC: t.oc, kernel: t.k, stride: t.s, pad: t.p)
            let wrong = zip(got.sums, expected).filter { $0 != $1 }.count
            #expect(
                wrong == 0,
                "\(wrong) of \(expected.count) sums differ, range \(range.map { "\($0)" } ?? "measured"), \(threads) threads, \(w.tapMajor ? "direct" : "gathered B")"
            )
        }
    }

    @Test(
        "The direct convolution's output equals the gathered one bit for bit, input affine and epilogue included",
        arguments: cases.filter { quantizedDirectFits($0.geometry) }, [1, 2, 3])
    func directConvolutionEqualsGathered(_ t: Case, threads: Int) {
        let (x, weight, seeded) = Self.data(t, 4)
        var rng = seeded
        let g = t.geometry
        let scale = rng.floats(t.c, 0.5...1.5), shift = rng.floats(t.c, -0.3...0.3)
        let bias = rng.floats(t.oc, -0.1...0.1), slope = rng.floats(t.oc, 0...0.5)
        let residual = rng.floats(t.oc * g.pixels)
        let outputs = Self.weightLayouts(weight, t, .int8).map { w in
            var y = [Float](repeating: .nan, count: t.oc * g.pixels)
            var scratch = [UInt8](
                repeating: 0xA5, count: quantizedConvolutionScratch(g, precision: .int8, threads: threads))
            w.withPointers { wp in
                withPointers(x, scale, shift, bias, slope, residual) { p in
                    y.withUnsafeMutableBufferPointer { yp in
                        scratch.withUnsafeMutableBytes { sp in
                            _ = quantizedConvolution(
                                g, input: p[0], affine: InputAffine(scale: p[1], shift: p[2]), weights: wp,
                                range: nil,
                                output: .float(yp.baseAddress!, Epilogue(bias: p[3], slope: p[4], residual: p[5])),
                                scratch: sp.baseAddress!, threads: threads)
                        }
                    }
                }
            }
            return y
        }
        #expect(outputs.count == 2)
        let differ = zip(outputs[0], outputs[1]).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(differ == 0, "\(differ) of \(outputs[0].count) outputs differ")
    }

    @Test(
        "Quantized convolution output stays close to the float32 convolution, epilogue included",
        arguments: cases, QuantizedPrecision.allCases)
    func convolutionOutputIsCloseToFloat(_ t: Case, precision: QuantizedPrecision) {
        let (x, weight, seeded) = Self.data(t, 3)
        var rng = seeded
        let g = t.geometry, k = g.k
        let bias = rng.floats(t.oc, -0.1...0.1), slope = rng.floats(t.oc, 0...0.5)
        let residual = rng.floats(t.oc * g.pixels)
        let w = QuantizedWeights(weight, outC: t.oc, k: k, precision: precision)
        let got = runQuantized(
            x, g: g, weights: w, range: nil, bias: bias, slope: slope, residual: residual, threads: 2)
        let xt = Tensor(n: 1, c: t.c, h: t.h, w: t.w, data: x)
        let float = Reference.convolution(
            xt, weight: weight, bias: [], outC: t.oc, kernel: t.k, stride: t.s, pad: t.p,
            groups: 1)
        var plain = [Float](repeating: 0, count: float.data.count), fused = plain
        let dequantized = ReferenceQuantized.dequantize(
            got.sums, scale: got.quantization.scale, weightScales: w.scales,
            pixels: g.pixels)
        for i in plain.indices {
            let c = i / g.pixels
            plain[i] = float.data[i] + bias[c]
            fused[i] = dequantized[i] + bias[c]
            fused[i] = (fused[i] < 0 ? fused[i] * slope[c] : fused[i]) + residual[i]
            plain[i] = (plain[i] < 0 ? plain[i] * slope[c] : plain[i]) + residual[i]
        }
        expectClose(got.output, fused, maxAbs: 1e-5, cosine: 0.9999999, "vs the dequantized reference sums")
        let closeness = Closeness(got.output, plain)
        #expect(closeness.cosine >= 0.9995, "\(precision) vs float32: \(closeness)")
    }

    @Test(
        "Quantized fully connected sums equal the integer reference and its output the float32 one",
        arguments: [(512 * 7 * 7, 128), (37, 5), (1030, 16), (64, 33)], QuantizedPrecision.allCases)
    func fullyConnected(_ shape: (Int, Int), precision: QuantizedPrecision) {
        let (inF, outF) = shape
        var rng = SeededRandom(seed: UInt64(inF * 3 + outF))
        let x = rng.floats(inF), weight = rng.floats(inF * outF).map { $0 / Float(inF).squareRoot() }
        let bias = rng.floats(outF)
        let w = QuantizedWeights(weight, outC: outF, k: inF, precision: precision)
        var sums = [Int32](repeating: 0, count: outF), y = [Float](repeating: .nan, count: outF)
        var scratch = [UInt8](
            repeating: 0,
            count: quantizedFullyConnectedScratch(
                inFeatures: inF, outFeatures: outF, precision: precision, threads: 2))
        var quantization: ActivationQuantization?
        w.withPointers { wp in
            x.withUnsafeBufferPointer { xp in
                scratch.withUnsafeMutableBytes { sp in
                    sums.withUnsafeMutableBufferPointer { op in
                        quantization = quantizedFullyConnected(
                            input: xp.baseAddress!, weights: wp, range: nil,
                            output: .accumulators(op.baseAddress!), scratch: sp.baseAddress!,
                            threads: 2)
                    }
                    bias.withUnsafeBufferPointer { bp in
                        y.withUnsafeMutableBufferPointer { op in
                            _ = quantizedFullyConnected(
                                input: xp.baseAddress!, weights: wp, range: nil,
                                output: .float(
                                    op.baseAddress!,
                                    Epilogue(
                                        bias: bp.baseAddress!, slope: nil,
                                        residual: nil)),
                                scratch: sp.baseAddress!, threads: 1)
                        }
                    }
                }
            }
        }
        let q = quantization!
        let xq = ReferenceQuantized.quantize(x, inverse: q.inverse, low: q.low, high: q.high)
        let values = ReferenceQuantized.quantizeWeights(weight, outC: outF, k: inF).values
        #expect(sums == ReferenceQuantized.fullyConnected(xq, weights: values, outFeatures: outF))
        let float = Reference.fullyConnected(
            Tensor(n: 1, c: inF, h: 1, w: 1, data: x), weight: weight, bias: bias,
            outFeatures: outF)
        let closeness = Closeness(y, float.data)
        #expect(closeness.cosine >= 0.9995, "\(precision) vs float32: \(closeness)")
    }

    @Test("16-bit activations are narrowed so that no accumulator can overflow, even at full range")
    func sixteenBitCannotOverflow() {
        // K = 4608 (512 · 3 · 3) with every weight at ±max and every input at ±range: the worst case.
        let k = 4608, outC = 2
        let weight = (0..<(outC * k)).map { Float($0 % 3 == 0 ? 1 : -1) }
        let w = QuantizedWeights(weight, outC: outC, k: k, precision: .int16)
        let x = (0..<k).map { Float($0 % 3 == 0 ? 1 : -1) }
        let g = ConvGeometry(
            inC: k, inH: 1, inW: 1, outC: outC, kH: 1, kW: 1, strideH: 1, strideW: 1, padH: 0, padW: 0,
            groups: 1)
        let got = runQuantized(x, g: g, weights: w, range: nil, threads: 1)
        #expect(Int(got.quantization.high) * w.maxAbsRowSum <= Int(Int32.max))
        #expect(got.sums == [Int32](repeating: Int32(k * 127) * got.quantization.high, count: outC))
        #expect(abs(got.output[0] - Float(k)) <= Float(k) * 1e-3)
    }
}

/// Single-thread speed of the quantized convolution against the float32 kernels on the models' typical shapes. Off by
/// default (it only prints): `FACEEMBED_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter
/// QuantizedSpeed`. GOPS counts 2 operations per multiply-add, as GFLOP/s does.
struct QuantizedSpeed {
    /// The best of repeated runs (at least 10, and 0.5 s unless 300 runs come first: the machine is shared), in s.
    private func best(_ body: () -> Void) -> Double {
        body()
        var best = Double.infinity, total = 0.0, runs = 0
        while runs < 10 || (total < 0.5 && runs < 300) {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            let t = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            best = min(best, t); total += t; runs += 1
        }
        return best
    }

    @Test(
        "Quantized convolution speed against float32 (prints a table)",
        .enabled(if: ProcessInfo.processInfo.environment["FACEEMBED_BENCH"] != nil))
    func speed() {
        let shapes: [(String, ConvGeometry)] = [
            (
                "1x1 128->512 7x7",
                ConvGeometry(
                    inC: 128, inH: 7, inW: 7, outC: 512, kH: 1, kW: 1, strideH: 1, strideW: 1,
                    padH: 0, padW: 0, groups: 1)
            ),
            (
                "1x1 64->128 28x28",
                ConvGeometry(
                    inC: 64, inH: 28, inW: 28, outC: 128, kH: 1, kW: 1, strideH: 1,
                    strideW: 1, padH: 0, padW: 0, groups: 1)
            ),
            (
                "1x1 256->128 14x14",
                ConvGeometry(
                    inC: 256, inH: 14, inW: 14, outC: 128, kH: 1, kW: 1, strideH: 1,
                    strideW: 1, padH: 0, padW: 0, groups: 1)
            ),
            (
                "3x3 256->256 14x14",
                ConvGeometry(
                    inC: 256, inH: 14, inW: 14, outC: 256, kH: 3, kW: 3, strideH: 1,
                    strideW: 1, padH: 1, padW: 1, groups: 1)
            ),
            (
                "3x3 64->64 56x56",
                ConvGeometry(
                    inC: 64, inH: 56, inW: 56, outC: 64, kH: 3, kW: 3, strideH: 1, strideW: 1,
                    padH: 1, padW: 1, groups: 1)
            ),
        ]
        print("shape                 MMAC   f32 direct  f32 Winograd   int8 GEMM   int8 all  int16 GEMM  int16 all")
        for (name, g) in shapes {
            var rng = SeededRandom(seed: 5)
            let x = rng.floats(g.inC * g.inH * g.inW), weight = rng.floats(g.outC * g.k).map { $0 * 0.05 }
            let bias = [Float](repeating: 0.01, count: g.outC)
            var y = [Float](repeating: 0, count: g.outC * g.pixels)
            let ops = 2 * Double(g.macs)
            @inline(__always) func rate(_ t: Double) -> String { String(format: "%11.1f", ops / t * 1e-9) }
            var line =
                name.padding(toLength: 20, withPad: " ", startingAt: 0) + String(format: "%6.1f", Double(g.macs) * 1e-6)
            let packed = lanePackedWeights(weight, g)
            func seconds(_ kernel: ConvolutionKernel) -> Double {
                var scratch = [Float](repeating: 0, count: max(1, kernel.scratchPerThread(g)))
                var shared = [Float](repeating: 0, count: max(1, kernel.sharedScratch(g)))
                return x.withUnsafeBufferPointer { xp in
                    packed.withUnsafeBufferPointer { wp in
                        bias.withUnsafeBufferPointer { bp in
                            y.withUnsafeMutableBufferPointer { yp in
                                scratch.withUnsafeMutableBufferPointer { sp in
                                    shared.withUnsafeMutableBufferPointer { hp in
                                        let o = ConvolutionOperands(
                                            input: xp.baseAddress!, weights: wp.baseAddress!, inputAffine: nil,
                                            epilogue: Epilogue(bias: bp.baseAddress!, slope: nil, residual: nil),
                                            output: yp.baseAddress!, scratch: sp.baseAddress!,
                                            shared: hp.baseAddress!)
                                        return best { kernel.run(g, o, threads: 1) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            line += rate(seconds(ConvolutionKernel(g, inputAffine: false, winograd: false)))
            let fast = ConvolutionKernel(g, inputAffine: false)
            line += fast == .winograd ? "   " + rate(seconds(fast)) : String(repeating: " ", count: 14)
            for precision in QuantizedPrecision.allCases {
                let w = QuantizedWeights(weight, outC: g.outC, k: g.k, precision: precision)
                var qScratch = [UInt8](
                    repeating: 0, count: quantizedConvolutionScratch(g, precision: precision, threads: 1))
                // A whole B for the GEMM alone (the convolution builds it band by band).
                let ld = quantizedLeadingDimension(g.pixels)
                let wholeB = [UInt8](repeating: 128, count: w.kGroups * ld * 4)
                w.withPointers { wp in
                    x.withUnsafeBufferPointer { xp in
                        bias.withUnsafeBufferPointer { bp in
                            y.withUnsafeMutableBufferPointer { yp in
                                qScratch.withUnsafeMutableBytes { sp in
                                    let output = QuantizedOutput.float(
                                        yp.baseAddress!,
                                        Epilogue(
                                            bias: bp.baseAddress!, slope: nil,
                                            residual: nil))
                                    let q = quantizedConvolution(
                                        g, input: xp.baseAddress!, weights: wp, range: nil, output: output,
                                        scratch: sp.baseAddress!, threads: 1)
                                    line +=
                                        " "
                                        + rate(
                                            best {
                                                wholeB.withUnsafeBytes { bp in
                                                    quantizedGEMM(
                                                        wp, b: bp.baseAddress!, ld: ld, pixels: 0..<g.pixels,
                                                        stride: g.pixels, quantization: q, output: output, threads: 1)
                                                }
                                            })
                                    line += rate(
                                        best {
                                            quantizedConvolution(
                                                g, input: xp.baseAddress!, weights: wp, range: nil, output: output,
                                                scratch: sp.baseAddress!, threads: 1)
                                        })
                                }
                            }
                        }
                    }
                }
            }
            print(line)
        }
    }
}

/// `body` with the base addresses of `arrays`, in order.
private func withPointers<R>(_ arrays: [Float]..., body: ([UnsafePointer<Float>]) -> R) -> R {
    func nest(_ i: Int, _ done: [UnsafePointer<Float>]) -> R {
        guard i < arrays.count else { return body(done) }
        return arrays[i].withUnsafeBufferPointer { nest(i + 1, done + [$0.baseAddress!]) }
    }
    return nest(0, [])
}

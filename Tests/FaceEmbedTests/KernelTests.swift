@testable import FaceEmbed
@testable import FaceEmbedImport
@testable import FaceEmbedEvaluation
import FaceEmbedTestSupport
import Testing

// Fast kernels against the plain reference implementations, on random shapes (odd sizes included).
// Tolerances: inputs and weights are uniform in ±1 with weights scaled by 1/sqrt(fan-in), so outputs are O(1);
// float32 accumulation against the reference's float64 stays within 1e-4 absolute, cosine ≥ 0.999999.

/// Runs the fast convolution path the network uses on one batch of one image.
private func fastConvolution(_ x: Tensor, weight: [Float], bias: [Float], slope: [Float]?, residual: Tensor?,
                             inputAffine: (scale: [Float], shift: [Float])?, g: ConvGeometry, threads: Int) -> Tensor {
    var y = Tensor(n: 1, c: g.outC, h: g.outH, w: g.outW)
    let depthwise = g.groups == g.inC && g.groups == g.outC && g.groups > 1
    let scratchCount = (depthwise ? depthwiseScratch(g) : convolutionScratch(ConvGeometry(
        inC: g.inC / g.groups, inH: g.inH, inW: g.inW, outC: g.outC / g.groups, kH: g.kH, kW: g.kW,
        strideH: g.strideH, strideW: g.strideW, padH: g.padH, padW: g.padW, groups: 1))) * threads
    var scratch = [Float](repeating: 0, count: scratchCount)
    let slopeArr = slope ?? [], res = residual?.data ?? []
    let sc = inputAffine?.scale ?? [], sh = inputAffine?.shift ?? []
    let stored = depthwise ? weight : lanePackedWeights(weight, g)  // as a flat file holds them
    x.data.withUnsafeBufferPointer { xp in stored.withUnsafeBufferPointer { wp in bias.withUnsafeBufferPointer { bp in
        slopeArr.withUnsafeBufferPointer { sp in res.withUnsafeBufferPointer { rp in
            sc.withUnsafeBufferPointer { scp in sh.withUnsafeBufferPointer { shp in
                y.data.withUnsafeMutableBufferPointer { yp in scratch.withUnsafeMutableBufferPointer { tp in
                    let ep = Epilogue(bias: bp.baseAddress!, slope: slope == nil ? nil : sp.baseAddress!,
                                      residual: residual == nil ? nil : rp.baseAddress!)
                    if depthwise {
                        depthwiseConvolution(g, input: xp.baseAddress!, weights: wp.baseAddress!, epilogue: ep,
                                             output: yp.baseAddress!, scratch: tp.baseAddress!, threads: threads)
                    } else {
                        precondition(g.groups == 1)
                        let affine = inputAffine == nil ? nil : InputAffine(scale: scp.baseAddress!, shift: shp.baseAddress!)
                        convolution(g, input: xp.baseAddress!, weights: wp.baseAddress!, inputAffine: affine, epilogue: ep,
                                    output: yp.baseAddress!, scratch: tp.baseAddress!, threads: threads)
                    }
                }}
            }}
        }}
    }}}
    return y
}

struct KernelTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var c: Int, h: Int, w: Int, oc: Int, k: (Int, Int), s: Int, p: Int, depthwise: Bool
        var testDescription: String { "\(depthwise ? "dw" : "conv") \(c)x\(h)x\(w)->\(oc) k\(k) s\(s) p\(p)" }
    }

    static let cases: [Case] = [
        Case(c: 3, h: 112, w: 112, oc: 8, k: (3, 3), s: 2, p: 1, depthwise: false),
        Case(c: 7, h: 13, w: 11, oc: 13, k: (3, 3), s: 1, p: 1, depthwise: false),
        Case(c: 16, h: 9, w: 9, oc: 6, k: (3, 3), s: 2, p: 1, depthwise: false),
        Case(c: 24, h: 14, w: 14, oc: 17, k: (1, 1), s: 1, p: 0, depthwise: false),
        Case(c: 5, h: 7, w: 3, oc: 11, k: (1, 1), s: 1, p: 0, depthwise: false),
        Case(c: 9, h: 15, w: 15, oc: 4, k: (1, 1), s: 2, p: 0, depthwise: false),
        Case(c: 4, h: 10, w: 12, oc: 5, k: (5, 3), s: 1, p: 2, depthwise: false),
        Case(c: 64, h: 28, w: 28, oc: 64, k: (3, 3), s: 1, p: 1, depthwise: false),
        // Whole-image im2col (K ≤ 64) at stride 1 and 2 with vector-wide rows and pixel tails; a 1×1 convolution
        // with more than one group of 16 panels, a 3-pixel tail and a 1-channel last block.
        Case(c: 3, h: 40, w: 37, oc: 20, k: (3, 3), s: 1, p: 1, depthwise: false),
        Case(c: 2, h: 33, w: 71, oc: 16, k: (3, 3), s: 2, p: 0, depthwise: false),
        Case(c: 20, h: 19, w: 17, oc: 33, k: (1, 1), s: 1, p: 0, depthwise: false),
        // im2col in bands (AVX-512 builds: more than 4 MB as one), band edges inside output rows, at stride 1 and
        // at stride 2 on an odd-width input, ending in a partial panel.
        Case(c: 72, h: 41, w: 43, oc: 20, k: (3, 3), s: 1, p: 1, depthwise: false),
        Case(c: 64, h: 91, w: 89, oc: 17, k: (3, 3), s: 2, p: 1, depthwise: false),
        // Stride-2 im2col rows 8–15 outputs wide: an 8-lane step, then one overlapping it.
        Case(c: 24, h: 27, w: 27, oc: 19, k: (3, 3), s: 2, p: 1, depthwise: false),
        Case(c: 6, h: 12, w: 23, oc: 16, k: (3, 3), s: 2, p: 0, depthwise: false),
        Case(c: 12, h: 17, w: 13, oc: 12, k: (3, 3), s: 1, p: 1, depthwise: true),
        Case(c: 8, h: 14, w: 15, oc: 8, k: (3, 3), s: 2, p: 1, depthwise: true),
        Case(c: 32, h: 7, w: 7, oc: 32, k: (7, 7), s: 1, p: 0, depthwise: true),
        // Depthwise edge geometries: rows narrower than a vector, odd widths, tiny planes, even and odd padding
        // at stride 2, a padded 1×1 output, and the general path (other kernels and strides).
        Case(c: 16, h: 7, w: 7, oc: 16, k: (3, 3), s: 1, p: 1, depthwise: true),
        Case(c: 9, h: 3, w: 2, oc: 9, k: (3, 3), s: 1, p: 1, depthwise: true),
        Case(c: 10, h: 5, w: 1, oc: 10, k: (3, 3), s: 1, p: 1, depthwise: true),
        Case(c: 16, h: 56, w: 56, oc: 16, k: (3, 3), s: 2, p: 1, depthwise: true),
        Case(c: 8, h: 28, w: 29, oc: 8, k: (3, 3), s: 2, p: 1, depthwise: true),
        Case(c: 10, h: 13, w: 13, oc: 10, k: (3, 3), s: 2, p: 1, depthwise: true),
        Case(c: 16, h: 7, w: 7, oc: 16, k: (3, 3), s: 2, p: 1, depthwise: true),
        Case(c: 8, h: 2, w: 3, oc: 8, k: (3, 3), s: 2, p: 1, depthwise: true),
        Case(c: 8, h: 9, w: 20, oc: 8, k: (3, 3), s: 2, p: 2, depthwise: true),
        Case(c: 8, h: 6, w: 11, oc: 8, k: (3, 3), s: 2, p: 0, depthwise: true),
        Case(c: 8, h: 1, w: 1, oc: 8, k: (3, 3), s: 1, p: 1, depthwise: true),
        Case(c: 16, h: 5, w: 5, oc: 16, k: (7, 7), s: 1, p: 1, depthwise: true),
        Case(c: 12, h: 9, w: 9, oc: 12, k: (5, 5), s: 1, p: 2, depthwise: true),
        Case(c: 8, h: 10, w: 11, oc: 8, k: (3, 3), s: 3, p: 1, depthwise: true),
    ]

    @Test("fast convolution matches the reference", arguments: cases, [1, 2])
    func convolutionMatchesReference(_ t: Case, threads: Int) {
        var rng = SeededRandom(seed: UInt64(t.c * 1000 + t.h * 10 + t.oc + threads))
        let groups = t.depthwise ? t.c : 1
        let g = ConvGeometry(inC: t.c, inH: t.h, inW: t.w, outC: t.oc, kH: t.k.0, kW: t.k.1, strideH: t.s, strideW: t.s,
                             padH: t.p, padW: t.p, groups: groups)
        let x = Tensor(n: 1, c: t.c, h: t.h, w: t.w, data: rng.floats(t.c * t.h * t.w))
        let fanIn = Float(t.c / groups * t.k.0 * t.k.1)
        let weight = rng.floats(t.oc * t.c / groups * t.k.0 * t.k.1).map { $0 / fanIn.squareRoot() }
        let bias = rng.floats(t.oc)
        let slope = rng.floats(t.oc, 0...0.5)
        let expected0 = Reference.convolution(x, weight: weight, bias: bias, outC: t.oc, kernel: t.k, stride: (t.s, t.s),
                                              pad: (t.p, t.p), groups: groups)
        let residual = Tensor(n: 1, c: t.oc, h: g.outH, w: g.outW, data: rng.floats(t.oc * g.outH * g.outW))

        // Plain, then with PReLU and a residual in the epilogue.
        let plain = fastConvolution(x, weight: weight, bias: bias, slope: nil, residual: nil, inputAffine: nil, g: g, threads: threads)
        expectClose(plain.data, expected0.data, maxAbs: 1e-4, cosine: 0.999999, "plain")
        let fused = fastConvolution(x, weight: weight, bias: bias, slope: slope, residual: residual, inputAffine: nil, g: g, threads: threads)
        let expectedFused = Reference.add(Reference.prelu(expected0, slope: slope), residual)
        expectClose(fused.data, expectedFused.data, maxAbs: 1e-4, cosine: 0.999999, "PReLU + residual epilogue")

        // A batch norm before the (zero-padded) convolution, applied to in-bounds taps only.
        if !t.depthwise {
            let scale = rng.floats(t.c, 0.5...1.5), shift = rng.floats(t.c)
            var bn = x
            for c in 0..<t.c { for i in 0..<(t.h * t.w) { bn.data[c * t.h * t.w + i] = x.data[c * t.h * t.w + i] * scale[c] + shift[c] } }
            let expected = Reference.convolution(bn, weight: weight, bias: bias, outC: t.oc, kernel: t.k, stride: (t.s, t.s),
                                                 pad: (t.p, t.p), groups: 1)
            let got = fastConvolution(x, weight: weight, bias: bias, slope: nil, residual: nil,
                                      inputAffine: (scale, shift), g: g, threads: threads)
            expectClose(got.data, expected.data, maxAbs: 1e-4, cosine: 0.999999, "input affine")
        }
    }

    @Test("fully connected matches the reference", arguments: [(60, 7), (25088, 33), (513, 128), (3, 1)], [1, 2])
    func fullyConnectedMatchesReference(_ shape: (Int, Int), threads: Int) {
        let (inF, outF) = shape
        var rng = SeededRandom(seed: UInt64(inF * 31 + outF))
        let x = Tensor(n: 1, c: inF, h: 1, w: 1, data: rng.floats(inF))
        let w = rng.floats(inF * outF).map { $0 / Float(inF).squareRoot() }, b = rng.floats(outF)
        var y = [Float](repeating: 0, count: outF)
        fullyConnected(input: x.data, weights: w, bias: b, output: &y, inFeatures: inF, outFeatures: outF, threads: threads)
        expectClose(y, Reference.fullyConnected(x, weight: w, bias: b, outFeatures: outF).data, maxAbs: 1e-4, cosine: 0.999999, "fc")
    }

    @Test("batch norm affine with PReLU matches the reference", arguments: [(5, 13), (16, 49), (3, 8)])
    func batchNormMatchesReference(_ shape: (Int, Int)) {
        let (c, plane) = shape
        var rng = SeededRandom(seed: UInt64(c * plane))
        let x = Tensor(n: 1, c: c, h: 1, w: plane, data: rng.floats(c * plane, -3...3))
        let gamma = rng.floats(c, 0.5...2), beta = rng.floats(c), mean = rng.floats(c), variance = rng.floats(c, 0.1...2)
        let slope = rng.floats(c, 0...0.5)
        let (scale, shift) = batchNormScaleShift(gamma: gamma, beta: beta, mean: mean, variance: variance, eps: 1e-3, fixGamma: false)
        var y = [Float](repeating: 0, count: c * plane)
        batchNormAffine(input: x.data, scale: scale, shift: shift, slope: slope, output: &y, channels: c, plane: plane)
        let expected = Reference.prelu(Reference.batchNorm(x, gamma: gamma, beta: beta, mean: mean, variance: variance,
                                                           eps: 1e-3, fixGamma: false), slope: slope)
        expectClose(y, expected.data, maxAbs: 1e-5, cosine: 0.999999, "affine")
    }

    @Test("add matches the reference", arguments: [1, 7, 8, 100])
    func addMatchesReference(_ n: Int) {
        var rng = SeededRandom(seed: UInt64(n))
        let a = rng.floats(n), b = rng.floats(n)
        var y = [Float](repeating: 0, count: n)
        add(a, b, output: &y, count: n)
        #expect(y == Reference.add(Tensor(n: 1, c: n, h: 1, w: 1, data: a), Tensor(n: 1, c: n, h: 1, w: 1, data: b)).data)
    }
}

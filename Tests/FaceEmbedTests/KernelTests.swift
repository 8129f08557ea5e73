import FaceEmbedTestSupport
import Foundation
import Testing

@testable import FaceEmbed
@testable import FaceEmbedEvaluation
@testable import FaceEmbedImport

// Fast kernels against the plain reference implementations, on random shapes (odd sizes included). Convolutions run
// through `ConvolutionKernel`, which chooses the kernel as the network does (here with Winograd off, so that 3×3
// stride-1 shapes exercise the direct GEMM; WinogradTests.swift turns it on).
// Tolerances: inputs and weights are uniform in ±1 with weights scaled by 1/sqrt(fan-in), so outputs are O(1);
// float32 accumulation against the reference's float64 stays within 1e-4 absolute, cosine ≥ 0.999999.

/// Runs a convolution on one image as the network does: the kernel `ConvolutionKernel` chooses for `g` (with
/// `winograd` as given), weights stored as a flat file holds them, scratch sized by the kernel and filled with NaN
/// (a kernel must not read scratch it has not written). Returns the output and the kernel that ran.
func fastConvolution(
    _ x: Tensor, weight: [Float], bias: [Float], slope: [Float]?, residual: Tensor?,
    inputAffine: (scale: [Float], shift: [Float])?, g: ConvGeometry, winograd: Bool,
    threads: Int
) -> (Tensor, ConvolutionKernel) {
    let kernel = ConvolutionKernel(g, inputAffine: inputAffine != nil, winograd: winograd)
    var held: [UnsafeMutablePointer<Float>] = []
    defer { for p in held { p.deallocate() } }
    func copy(_ a: [Float]) -> UnsafeMutablePointer<Float> {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, a.count))
        p.initialize(from: a, count: a.count)
        held.append(p)
        return p
    }
    let count = g.outC * g.pixels
    let operands = ConvolutionOperands(
        input: copy(x.data), weights: copy(g.isDepthwise ? weight : lanePackedWeights(weight, g)),
        inputAffine: inputAffine.map { InputAffine(scale: copy($0.scale), shift: copy($0.shift)) },
        epilogue: Epilogue(bias: copy(bias), slope: slope.map(copy), residual: residual.map { copy($0.data) }),
        output: copy([Float](repeating: .nan, count: count)),
        scratch: copy([Float](repeating: .nan, count: kernel.scratchPerThread(g) * threads)),
        shared: copy([Float](repeating: .nan, count: kernel.sharedScratch(g))))
    kernel.run(g, operands, threads: threads)
    let y = Array(UnsafeBufferPointer(start: operands.output, count: count))
    return (Tensor(n: 1, c: g.outC, h: g.outH, w: g.outW, data: y), kernel)
}

/// Checks `fastConvolution` on random data against `Reference.convolution`: plain; with PReLU and a residual in
/// the epilogue; and, for groups = 1, with a batch norm before the (zero-padded) convolution, applied to in-bounds
/// taps only. Inputs uniform in ±1, weights scaled by 1/sqrt(fan-in). Returns the kernel that ran.
@discardableResult
func expectConvolutionMatchesReference(
    _ g: ConvGeometry, seed: UInt64, winograd: Bool, threads: Int,
    maxAbs: Float
) -> ConvolutionKernel {
    var rng = SeededRandom(seed: seed)
    let x = Tensor(n: 1, c: g.inC, h: g.inH, w: g.inW, data: rng.floats(g.inC * g.inH * g.inW))
    let fanIn = g.inC / g.groups * g.kH * g.kW
    let weight = rng.floats(g.outC * fanIn).map { $0 / Float(fanIn).squareRoot() }
    let bias = rng.floats(g.outC), slope = rng.floats(g.outC, 0...0.5)
    let residual = Tensor(n: 1, c: g.outC, h: g.outH, w: g.outW, data: rng.floats(g.outC * g.pixels))
    func reference(_ x: Tensor) -> Tensor {
        Reference.convolution(
            x, weight: weight, bias: bias, outC: g.outC, kernel: (g.kH, g.kW),
            stride: (g.strideH, g.strideW), pad: (g.padH, g.padW), groups: g.groups)
    }
    func fast(
        slope: [Float]?, residual: Tensor?,
        affine: (scale: [Float], shift: [Float])?
    ) -> (Tensor, ConvolutionKernel) {
        fastConvolution(
            x, weight: weight, bias: bias, slope: slope, residual: residual, inputAffine: affine, g: g,
            winograd: winograd, threads: threads)
    }
    let expected = reference(x)
    let (plain, kernel) = fast(slope: nil, residual: nil, affine: nil)
    expectClose(plain.data, expected.data, maxAbs: maxAbs, cosine: 0.999999, "plain")
    let fused = fast(slope: slope, residual: residual, affine: nil).0
    expectClose(
        fused.data, Reference.add(Reference.prelu(expected, slope: slope), residual).data, maxAbs: maxAbs,
        cosine: 0.999999, "PReLU + residual epilogue")
    if g.groups == 1 {
        let scale = rng.floats(g.inC, 0.5...1.5), shift = rng.floats(g.inC)
        let got = fast(slope: nil, residual: nil, affine: (scale, shift)).0
        expectClose(
            got.data, reference(Reference.channelAffine(x, scale: scale, shift: shift)).data, maxAbs: maxAbs,
            cosine: 0.999999, "input affine")
    }
    return kernel
}

struct KernelTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var geometry: ConvGeometry
        var testDescription: String {
            let g = geometry
            let kind = g.isDepthwise ? "dw" : g.groups > 1 ? "g\(g.groups)" : "conv"
            return "\(kind) \(g.inC)x\(g.inH)x\(g.inW)->\(g.outC) k\(g.kH)x\(g.kW) s\(g.strideH) p\(g.padH)"
        }

        init(c: Int, h: Int, w: Int, oc: Int, k: (Int, Int), s: Int, p: Int, groups: Int = 1) {
            geometry = ConvGeometry(
                inC: c, inH: h, inW: w, outC: oc, kH: k.0, kW: k.1, strideH: s, strideW: s,
                padH: p, padW: p, groups: groups)
        }

        /// A depthwise convolution of `c` channels.
        static func depthwise(c: Int, h: Int, w: Int, k: (Int, Int), s: Int, p: Int) -> Case {
            Case(c: c, h: h, w: w, oc: c, k: k, s: s, p: p, groups: c)
        }
    }

    static let cases: [Case] = [
        Case(c: 3, h: 112, w: 112, oc: 8, k: (3, 3), s: 2, p: 1),
        Case(c: 7, h: 13, w: 11, oc: 13, k: (3, 3), s: 1, p: 1),
        Case(c: 16, h: 9, w: 9, oc: 6, k: (3, 3), s: 2, p: 1),
        Case(c: 24, h: 14, w: 14, oc: 17, k: (1, 1), s: 1, p: 0),
        Case(c: 5, h: 7, w: 3, oc: 11, k: (1, 1), s: 1, p: 0),
        Case(c: 9, h: 15, w: 15, oc: 4, k: (1, 1), s: 2, p: 0),
        Case(c: 4, h: 10, w: 12, oc: 5, k: (5, 3), s: 1, p: 2),
        Case(c: 64, h: 28, w: 28, oc: 64, k: (3, 3), s: 1, p: 1),
        // Whole-image im2col (K ≤ 64) at stride 1 and 2 with vector-wide rows and pixel tails; a 1×1 convolution
        // with more than one group of 16 panels, a 3-pixel tail and a 1-channel last block.
        Case(c: 3, h: 40, w: 37, oc: 33, k: (3, 3), s: 1, p: 1),
        Case(c: 2, h: 33, w: 71, oc: 16, k: (3, 3), s: 2, p: 0),
        Case(c: 20, h: 19, w: 17, oc: 33, k: (1, 1), s: 1, p: 0),
        // im2col in bands (AVX-512 builds: more than 4 MB as one), band edges inside output rows, at stride 1 and
        // at stride 2 on an odd-width input, ending in a partial panel.
        Case(c: 72, h: 41, w: 43, oc: 40, k: (3, 3), s: 1, p: 1),
        Case(c: 64, h: 91, w: 89, oc: 17, k: (3, 3), s: 2, p: 1),
        // Stride-2 im2col rows 8–15 outputs wide: an 8-lane step, then one overlapping it.
        Case(c: 24, h: 27, w: 27, oc: 19, k: (3, 3), s: 2, p: 1),
        Case(c: 6, h: 12, w: 23, oc: 16, k: (3, 3), s: 2, p: 0),
        // Narrow (pixels in lanes): SCRFD's 2-, 8- and 20-channel heads, rows of 20 (the two vectors overlap), 16
        // (they coincide) and 37 pixels (the last block moved back), a 5×3 kernel, a quad reaching past outC; 16
        // channels on 70-pixel rows (SCRFD's FPN).
        Case(c: 64, h: 20, w: 20, oc: 2, k: (3, 3), s: 1, p: 1),
        Case(c: 16, h: 6, w: 70, oc: 16, k: (3, 3), s: 1, p: 1),
        Case(c: 16, h: 18, w: 16, oc: 8, k: (3, 3), s: 1, p: 1),
        Case(c: 64, h: 11, w: 37, oc: 20, k: (3, 3), s: 1, p: 1),
        Case(c: 5, h: 9, w: 21, oc: 23, k: (5, 3), s: 1, p: 2),
        .depthwise(c: 12, h: 17, w: 13, k: (3, 3), s: 1, p: 1),
        .depthwise(c: 8, h: 14, w: 15, k: (3, 3), s: 2, p: 1),
        .depthwise(c: 32, h: 7, w: 7, k: (7, 7), s: 1, p: 0),
        // Depthwise edge geometries: rows narrower than a vector, odd widths, tiny planes, even and odd padding
        // at stride 2, a padded 1×1 output, and the general path (other kernels and strides).
        .depthwise(c: 16, h: 7, w: 7, k: (3, 3), s: 1, p: 1),
        .depthwise(c: 9, h: 3, w: 2, k: (3, 3), s: 1, p: 1),
        .depthwise(c: 10, h: 5, w: 1, k: (3, 3), s: 1, p: 1),
        .depthwise(c: 16, h: 56, w: 56, k: (3, 3), s: 2, p: 1),
        .depthwise(c: 8, h: 28, w: 29, k: (3, 3), s: 2, p: 1),
        .depthwise(c: 10, h: 13, w: 13, k: (3, 3), s: 2, p: 1),
        .depthwise(c: 16, h: 7, w: 7, k: (3, 3), s: 2, p: 1),
        .depthwise(c: 8, h: 2, w: 3, k: (3, 3), s: 2, p: 1),
        .depthwise(c: 8, h: 9, w: 20, k: (3, 3), s: 2, p: 2),
        .depthwise(c: 8, h: 6, w: 11, k: (3, 3), s: 2, p: 0),
        .depthwise(c: 8, h: 1, w: 1, k: (3, 3), s: 1, p: 1),
        .depthwise(c: 16, h: 5, w: 5, k: (7, 7), s: 1, p: 1),
        .depthwise(c: 12, h: 9, w: 9, k: (5, 5), s: 1, p: 2),
        .depthwise(c: 8, h: 10, w: 11, k: (3, 3), s: 3, p: 1),
        // Grouped, not depthwise: the GEMM on each group's slice of channels, 3×3 and 1×1.
        Case(c: 8, h: 9, w: 10, oc: 12, k: (3, 3), s: 1, p: 1, groups: 2),
        Case(c: 12, h: 7, w: 7, oc: 6, k: (1, 1), s: 1, p: 0, groups: 3),
    ]

    @Test("fast convolution matches the reference", arguments: cases, [1, 2])
    func convolutionMatchesReference(_ t: Case, threads: Int) {
        let g = t.geometry
        let seed = UInt64(g.inC * 1000 + g.inH * 10 + g.outC + threads)
        let kernel = expectConvolutionMatchesReference(g, seed: seed, winograd: false, threads: threads, maxAbs: 1e-4)
        #expect(kernel != .winograd)
    }

    @Test func eachConvolutionKernelIsChosenForItsGeometry() {
        func g(_ c: Int, _ oc: Int, k: Int, s: Int = 1, p: Int = 0, groups: Int = 1) -> ConvGeometry {
            ConvGeometry(
                inC: c, inH: 14, inW: 14, outC: oc, kH: k, kW: k, strideH: s, strideW: s, padH: p, padW: p,
                groups: groups)
        }
        let gemm: ConvolutionKernel = gemmWideKernels ? .im2colGEMM : .packedGEMM
        #expect(ConvolutionKernel(g(64, 64, k: 3, p: 1), inputAffine: true) == .winograd)
        #expect(ConvolutionKernel(g(64, 64, k: 3, p: 1), inputAffine: false, winograd: false) == gemm)
        #expect(ConvolutionKernel(g(8, 64, k: 3, p: 1), inputAffine: false) == gemm)
        #expect(ConvolutionKernel(g(64, 64, k: 3, s: 2, p: 1), inputAffine: false) == gemm)
        let pointwise: ConvolutionKernel = gemmWideKernels ? .pointwiseGEMM : .packedGEMM
        #expect(ConvolutionKernel(g(64, 128, k: 1), inputAffine: false) == pointwise)
        #expect(ConvolutionKernel(g(64, 128, k: 1), inputAffine: true) == .packedGEMM)
        #expect(ConvolutionKernel(g(64, 64, k: 3, p: 1, groups: 64), inputAffine: false) == .depthwise)
        #expect(ConvolutionKernel(g(64, 64, k: 3, p: 1, groups: 2), inputAffine: false) == .grouped(gemm))
        let head = ConvGeometry(
            inC: 64, inH: 80, inW: 80, outC: 20, kH: 3, kW: 3, strideH: 1, strideW: 1, padH: 1, padW: 1, groups: 1)
        #expect(ConvolutionKernel(head, inputAffine: false) == .narrow)
        #expect(ConvolutionKernel(head, inputAffine: true) != .narrow)
        var fpn = head
        fpn.inC = 16; fpn.outC = 16
        #expect(ConvolutionKernel(fpn, inputAffine: false) == .narrow)
        fpn.inW = 40; fpn.outW = 40
        #expect(ConvolutionKernel(fpn, inputAffine: false) == .winograd)
    }

    @Test func sigmoidMatchesTheLogisticFunctionEverywhere() {
        var rng = SeededRandom(seed: 7)
        let x = rng.floats(1000, -20...20) + [-200, -88, -87, 0, 1e-8, 87, 88, 200, -Float.greatestFiniteMagnitude]
        var y = [Float](repeating: .nan, count: x.count)
        sigmoid(input: x, output: &y, count: x.count)
        var worst: Float = 0
        for (a, b) in zip(x, y) { worst = max(worst, abs(b - Float(1 / (1 + exp(-Double(a)))))) }
        #expect(worst < 2e-7, "worst |difference| \(worst)")
        #expect(y.allSatisfy { $0 >= 0 && $0 <= 1 })
    }

    @Test("upsampling by 2 copies each value into a 2x2 square")
    func upsamplingRepeatsEachValue() {
        let x: [Float] = (0..<(3 * 5 * 7)).map(Float.init)
        var y = [Float](repeating: .nan, count: 3 * 10 * 14)
        upsampleNearest2x(input: x, output: &y, channels: 3, height: 5, width: 7)
        for c in 0..<3 {
            for oy in 0..<10 {
                for ox in 0..<14 {
                    #expect(y[(c * 10 + oy) * 14 + ox] == x[(c * 5 + oy / 2) * 7 + ox / 2])
                }
            }
        }
    }

    @Test("fully connected matches the reference", arguments: [(60, 7), (25088, 33), (513, 128), (3, 1)], [1, 2])
    func fullyConnectedMatchesReference(_ shape: (Int, Int), threads: Int) {
        let (inF, outF) = shape
        var rng = SeededRandom(seed: UInt64(inF * 31 + outF))
        let x = Tensor(n: 1, c: inF, h: 1, w: 1, data: rng.floats(inF))
        let w = rng.floats(inF * outF).map { $0 / Float(inF).squareRoot() }, b = rng.floats(outF)
        var y = [Float](repeating: 0, count: outF)
        fullyConnected(
            input: x.data, weights: w, bias: b, output: &y, inFeatures: inF, outFeatures: outF, threads: threads)
        expectClose(
            y, Reference.fullyConnected(x, weight: w, bias: b, outFeatures: outF).data, maxAbs: 1e-4, cosine: 0.999999,
            "fc")
    }

    @Test("batch norm affine with PReLU matches the reference", arguments: [(5, 13), (16, 49), (3, 8)])
    func batchNormMatchesReference(_ shape: (Int, Int)) {
        let (c, plane) = shape
        var rng = SeededRandom(seed: UInt64(c * plane))
        let x = Tensor(n: 1, c: c, h: 1, w: plane, data: rng.floats(c * plane, -3...3))
        let gamma = rng.floats(c, 0.5...2), beta = rng.floats(c), mean = rng.floats(c),
            variance = rng.floats(c, 0.1...2)
        let slope = rng.floats(c, 0...0.5)
        let (scale, shift) = batchNormScaleShift(
            gamma: gamma, beta: beta, mean: mean, variance: variance, eps: 1e-3, fixGamma: false)
        var y = [Float](repeating: 0, count: c * plane)
        channelAffine(input: x.data, scale: scale, shift: shift, slope: slope, output: &y, channels: c, plane: plane)
        let expected = Reference.prelu(
            Reference.batchNorm(
                x, gamma: gamma, beta: beta, mean: mean, variance: variance,
                eps: 1e-3, fixGamma: false), slope: slope)
        expectClose(y, expected.data, maxAbs: 1e-5, cosine: 0.999999, "affine")
    }

    @Test("add matches the reference", arguments: [1, 7, 8, 100])
    func addMatchesReference(_ n: Int) {
        var rng = SeededRandom(seed: UInt64(n))
        let a = rng.floats(n), b = rng.floats(n)
        var y = [Float](repeating: 0, count: n)
        add(a, b, output: &y, count: n)
        #expect(
            y == Reference.add(Tensor(n: 1, c: n, h: 1, w: 1, data: a), Tensor(n: 1, c: n, h: 1, w: 1, data: b)).data)
    }
}

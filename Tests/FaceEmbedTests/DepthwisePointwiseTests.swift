import FaceEmbedTestSupport
import Testing

@testable import FaceEmbed

// The fused depthwise 3×3 + 1×1 kernel (Kernels/DepthwisePointwise.swift) against Reference.convolution run twice,
// PReLU after each and a residual after the 1×1, on shapes whose bands end part-way (the last band shorter) and
// rows that are not whole vectors; on 1 and 2 threads. Tolerance as the other float kernels: 1e-4 absolute.

struct DepthwisePointwiseTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var c: Int, h: Int, w: Int, oc: Int
        var testDescription: String { "\(c)x\(h)x\(w)->\(oc)" }
    }

    static let cases: [Case] = [
        Case(c: 16, h: 23, w: 300, oc: 16),  // 6-row bands, the last of 5
        Case(c: 40, h: 17, w: 61, oc: 24),  // 13-row bands, rows of 61 (not whole vectors), a partial block
        Case(c: 8, h: 3, w: 9, oc: 40),  // one band of 3 rows, narrower than two vectors
    ]

    @Test("a fused depthwise and 1x1 convolution match the two reference convolutions", arguments: cases, [1, 2])
    func fusedPairMatchesTheReference(_ t: Case, threads: Int) {
        let d = ConvGeometry(
            inC: t.c, inH: t.h, inW: t.w, outC: t.c, kH: 3, kW: 3, strideH: 1, strideW: 1, padH: 1, padW: 1,
            groups: t.c)
        let p = ConvGeometry(
            inC: t.c, inH: t.h, inW: t.w, outC: t.oc, kH: 1, kW: 1, strideH: 1, strideW: 1, padH: 0, padW: 0,
            groups: 1)
        var rng = SeededRandom(seed: UInt64(t.c * 131 + t.h * 7 + t.w + threads))
        let x = Tensor(n: 1, c: t.c, h: t.h, w: t.w, data: rng.floats(t.c * t.h * t.w))
        let dwWeight = rng.floats(t.c * 9).map { $0 / 3 }, dwBias = rng.floats(t.c), dwSlope = rng.floats(t.c, 0...0.5)
        let pwWeight = rng.floats(t.oc * t.c).map { $0 / Float(t.c).squareRoot() }
        let pwBias = rng.floats(t.oc), pwSlope = rng.floats(t.oc, 0...0.5)
        let residual = Tensor(n: 1, c: t.oc, h: t.h, w: t.w, data: rng.floats(t.oc * t.h * t.w))

        let hidden = Reference.prelu(
            Reference.convolution(
                x, weight: dwWeight, bias: dwBias, outC: t.c, kernel: (3, 3), stride: (1, 1), pad: (1, 1),
                groups: t.c), slope: dwSlope)
        let expected = Reference.add(
            Reference.prelu(
                Reference.convolution(
                    hidden, weight: pwWeight, bias: pwBias, outC: t.oc, kernel: (1, 1), stride: (1, 1),
                    pad: (0, 0), groups: 1), slope: pwSlope), residual)

        var held: [UnsafeMutablePointer<Float>] = []
        defer { for q in held { q.deallocate() } }
        func copy(_ a: [Float]) -> UnsafeMutablePointer<Float> {
            let q = UnsafeMutablePointer<Float>.allocate(capacity: max(1, a.count))
            q.initialize(from: a, count: a.count)
            held.append(q)
            return q
        }
        let scratch = copy([Float](repeating: .nan, count: depthwisePointwiseScratch(d) * threads))
        let output = copy([Float](repeating: .nan, count: t.oc * p.pixels))
        let dw = ConvolutionOperands(
            input: copy(x.data), weights: copy(dwWeight), inputAffine: nil,
            epilogue: Epilogue(bias: copy(dwBias), slope: copy(dwSlope), residual: nil),
            output: copy([Float](repeating: .nan, count: d.outC * d.pixels)), scratch: scratch, shared: copy([0]))
        let pw = ConvolutionOperands(
            input: dw.output, weights: copy(lanePackedWeights(pwWeight, p)), inputAffine: nil,
            epilogue: Epilogue(bias: copy(pwBias), slope: copy(pwSlope), residual: copy(residual.data)),
            output: output, scratch: scratch, shared: copy([0]))
        depthwisePointwiseConvolution(d, dw, p, pw, threads: threads)
        let got = Array(UnsafeBufferPointer(start: output, count: t.oc * p.pixels))
        expectClose(got, expected.data, maxAbs: 1e-4, cosine: 0.999999, "fused \(t.testDescription)")
    }
}

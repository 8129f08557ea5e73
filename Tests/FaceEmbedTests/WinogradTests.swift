@testable import FaceEmbed
@testable import FaceEmbedImport
@testable import FaceEmbedEvaluation
import FaceEmbedTestSupport
import Testing

// Winograd F(4,3) against Reference.convolution on random shapes, odd sizes and partial tiles/panels included.
// Inputs uniform in ±1, weights scaled by 1/sqrt(fan-in), so outputs are O(1). Winograd's transforms add rounding
// (the 6×6 transforms multiply by up to 5 and 1/24): tolerance 5e-4 absolute, cosine ≥ 0.999999.

struct WinogradTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var c: Int, h: Int, w: Int, oc: Int, p: Int
        var testDescription: String { "\(c)x\(h)x\(w)->\(oc) p\(p)" }
    }

    static let cases: [Case] = [
        Case(c: 16, h: 14, w: 14, oc: 16, p: 1),
        Case(c: 17, h: 13, w: 11, oc: 23, p: 1),
        Case(c: 32, h: 28, w: 28, oc: 20, p: 1),
        Case(c: 19, h: 15, w: 13, oc: 16, p: 0),
        Case(c: 16, h: 12, w: 17, oc: 31, p: 2),
        Case(c: 64, h: 7, w: 30, oc: 64, p: 1),
        Case(c: 48, h: 7, w: 7, oc: 40, p: 1),      // 4 tiles: the narrow kernel only
        Case(c: 16, h: 6, w: 9, oc: 17, p: 1),      // 6 tiles: two narrow calls, the second partial
        Case(c: 24, h: 22, w: 22, oc: 33, p: 1),    // 36 tiles: two panels and a 4-tile tail
        Case(c: 20, h: 9, w: 13, oc: 18, p: 1),     // 4 tiles a row: rows paired, the third alone
        Case(c: 16, h: 18, w: 18, oc: 16, p: 0),    // 4 tiles a row, 16×16 outputs: no tile row spills
    ]

    private func run(_ x: Tensor, weight: [Float], bias: [Float], slope: [Float]?, residual: Tensor?,
                     affine: (scale: [Float], shift: [Float])?, g: ConvGeometry, threads: Int) -> Tensor {
        var y = Tensor(n: 1, c: g.outC, h: g.outH, w: g.outW)
        var scratch = [Float](repeating: .nan, count: winogradScratch(g) * threads)
        var shared = [Float](repeating: .nan, count: winogradSharedScratch(g))
        let slopeArr = slope ?? [], res = residual?.data ?? [], sc = affine?.scale ?? [], sh = affine?.shift ?? []
        let stored = lanePackedWeights(weight, g)
        x.data.withUnsafeBufferPointer { xp in stored.withUnsafeBufferPointer { wp in bias.withUnsafeBufferPointer { bp in
            slopeArr.withUnsafeBufferPointer { sp in res.withUnsafeBufferPointer { rp in
                sc.withUnsafeBufferPointer { scp in sh.withUnsafeBufferPointer { shp in
                    y.data.withUnsafeMutableBufferPointer { yp in scratch.withUnsafeMutableBufferPointer { tp in
                        shared.withUnsafeMutableBufferPointer { up in
                            let ep = Epilogue(bias: bp.baseAddress!, slope: slope == nil ? nil : sp.baseAddress!,
                                              residual: residual == nil ? nil : rp.baseAddress!)
                            let a = affine == nil ? nil : InputAffine(scale: scp.baseAddress!, shift: shp.baseAddress!)
                            winogradConvolution(g, input: xp.baseAddress!, weights: wp.baseAddress!, inputAffine: a,
                                                epilogue: ep, output: yp.baseAddress!, scratch: tp.baseAddress!,
                                                shared: up.baseAddress!, threads: threads)
                        }
                    }}
                }}
            }}
        }}}
        return y
    }

    @Test("Winograd F(4,3) matches the reference convolution", arguments: cases, [1, 2])
    func matchesReference(_ t: Case, threads: Int) {
        var rng = SeededRandom(seed: UInt64(t.c * 7919 + t.h * 31 + t.w + t.oc * 3 + threads))
        let g = ConvGeometry(inC: t.c, inH: t.h, inW: t.w, outC: t.oc, kH: 3, kW: 3, strideH: 1, strideW: 1,
                             padH: t.p, padW: t.p, groups: 1)
        #expect(winogradApplies(g))
        let x = Tensor(n: 1, c: t.c, h: t.h, w: t.w, data: rng.floats(t.c * t.h * t.w))
        let weight = rng.floats(t.oc * t.c * 9).map { $0 / Float(t.c * 9).squareRoot() }
        let bias = rng.floats(t.oc), slope = rng.floats(t.oc, 0...0.5)
        let residual = Tensor(n: 1, c: t.oc, h: g.outH, w: g.outW, data: rng.floats(t.oc * g.pixels))
        let expected = Reference.convolution(x, weight: weight, bias: bias, outC: t.oc, kernel: (3, 3), stride: (1, 1),
                                             pad: (t.p, t.p), groups: 1)
        let plain = run(x, weight: weight, bias: bias, slope: nil, residual: nil, affine: nil, g: g, threads: threads)
        expectClose(plain.data, expected.data, maxAbs: 5e-4, cosine: 0.999999, "plain")

        let fused = run(x, weight: weight, bias: bias, slope: slope, residual: residual, affine: nil, g: g, threads: threads)
        expectClose(fused.data, Reference.add(Reference.prelu(expected, slope: slope), residual).data,
                    maxAbs: 5e-4, cosine: 0.999999, "PReLU + residual")

        // Batch norm before the zero-padded convolution: in-bounds taps only, exact at the borders.
        let scale = rng.floats(t.c, 0.5...1.5), shift = rng.floats(t.c)
        var bn = x
        for c in 0..<t.c { for i in 0..<(t.h * t.w) { bn.data[c * t.h * t.w + i] = x.data[c * t.h * t.w + i] * scale[c] + shift[c] } }
        let expectedBN = Reference.convolution(bn, weight: weight, bias: bias, outC: t.oc, kernel: (3, 3), stride: (1, 1),
                                               pad: (t.p, t.p), groups: 1)
        let got = run(x, weight: weight, bias: bias, slope: nil, residual: nil, affine: (scale, shift), g: g, threads: threads)
        expectClose(got.data, expectedBN.data, maxAbs: 5e-4, cosine: 0.999999, "input affine")
    }
}

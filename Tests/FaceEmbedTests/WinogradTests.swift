import FaceEmbedTestSupport
import Testing

@testable import FaceEmbed
@testable import FaceEmbedEvaluation
@testable import FaceEmbedImport

// Winograd F(4,3) against Reference.convolution on random shapes, odd sizes and partial tiles/panels included, run
// through `ConvolutionKernel` as the network runs it (KernelTests.swift's `expectConvolutionMatchesReference`).
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
        Case(c: 32, h: 28, w: 28, oc: 36, p: 1),
        Case(c: 19, h: 15, w: 13, oc: 16, p: 0),
        Case(c: 16, h: 12, w: 17, oc: 31, p: 2),
        Case(c: 64, h: 7, w: 30, oc: 64, p: 1),
        Case(c: 48, h: 7, w: 7, oc: 40, p: 1),  // 4 tiles: the narrow kernel only
        Case(c: 16, h: 6, w: 9, oc: 17, p: 1),  // 6 tiles: two narrow calls, the second partial
        Case(c: 24, h: 22, w: 22, oc: 33, p: 1),  // 36 tiles: two panels and a 4-tile tail
        Case(c: 20, h: 9, w: 13, oc: 18, p: 1),  // 4 tiles a row: rows paired, the third alone
        Case(c: 16, h: 18, w: 18, oc: 16, p: 0),  // 4 tiles a row, 16×16 outputs: no tile row spills
    ]

    @Test("Winograd F(4,3) matches the reference convolution", arguments: cases, [1, 2])
    func matchesReference(_ t: Case, threads: Int) {
        let g = ConvGeometry(
            inC: t.c, inH: t.h, inW: t.w, outC: t.oc, kH: 3, kW: 3, strideH: 1, strideW: 1,
            padH: t.p, padW: t.p, groups: 1)
        let seed = UInt64(t.c * 7919 + t.h * 31 + t.w + t.oc * 3 + threads)
        let kernel = expectConvolutionMatchesReference(g, seed: seed, winograd: true, threads: threads, maxAbs: 5e-4)
        #expect(kernel == .winograd)
    }
}

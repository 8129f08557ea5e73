import FaceEmbedTestSupport
import Testing

@testable import FaceEmbed
@testable import FaceEmbedImport

// The int8 inverted bottleneck run by bands of rows (Kernels/QuantizedBlock.swift) against the same three layers run
// one after another by their own kernels (each checked against the plain references in QuantizedKernelTests and
// KernelTests): the outputs must be equal bit for bit, since both quantize each input with the whole tensor's max |x|
// and run the same arithmetic per value. Shapes whose bands end part-way through a 16-pixel panel, rows that are not
// whole vectors, three bands, 8- and 16-bit activations, with and without a residual.

struct QuantizedBlockTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var c: Int, t: Int, h: Int, w: Int, stride = 1, threads: Int, residual: Bool, precision: QuantizedPrecision
        var testDescription: String {
            "\(c)->\(t)->\(c) \(h)x\(w)/s\(stride), \(threads) threads, \(precision)\(residual ? ", residual" : "")"
        }
    }

    static let cases: [Case] = [
        Case(c: 16, t: 32, h: 14, w: 14, threads: 2, residual: true, precision: .int8),  // MobileFaceNet's 14×14
        Case(c: 24, t: 40, h: 17, w: 23, threads: 2, residual: false, precision: .int8),  // bands of 8 and 9 rows
        Case(c: 12, t: 20, h: 28, w: 9, threads: 3, residual: true, precision: .int8),  // three bands, narrow rows
        Case(c: 20, t: 36, h: 15, w: 31, threads: 2, residual: true, precision: .int16),
        Case(c: 16, t: 48, h: 16, w: 14, stride: 2, threads: 2, residual: false, precision: .int8),  // 16×14 → 8×7
        Case(c: 12, t: 24, h: 29, w: 19, stride: 2, threads: 2, residual: true, precision: .int8),  // odd sizes
        Case(c: 8, t: 16, h: 28, w: 28, stride: 2, threads: 3, residual: false, precision: .int16),  // three bands
    ]

    @Test("a quantized block by bands equals its three layers run one after another", arguments: cases)
    func blockByBandsEqualsLayerByLayer(_ t: Case) {
        let plane = t.h * t.w
        let e = ConvGeometry(
            inC: t.c, inH: t.h, inW: t.w, outC: t.t, kH: 1, kW: 1, strideH: 1, strideW: 1, padH: 0, padW: 0, groups: 1)
        let d = ConvGeometry(
            inC: t.t, inH: t.h, inW: t.w, outC: t.t, kH: 3, kW: 3, strideH: t.stride, strideW: t.stride, padH: 1,
            padW: 1, groups: t.t)
        let p = ConvGeometry(
            inC: t.t, inH: d.outH, inW: d.outW, outC: t.c, kH: 1, kW: 1, strideH: 1, strideW: 1, padH: 0, padW: 0,
            groups: 1)
        #expect(quantizedBlockBands(d, threads: t.threads) == t.threads)
        let outPlane = p.pixels
        var rng = SeededRandom(seed: UInt64(t.c * 1_000 + t.h * 10 + t.threads))
        let x = rng.floats(t.c * plane)
        let expansion = QuantizedWeights(
            rng.floats(t.t * t.c).map { $0 / Float(t.c).squareRoot() }, outC: t.t, k: t.c, precision: t.precision)
        let projection = QuantizedWeights(
            rng.floats(t.c * t.t).map { $0 / Float(t.t).squareRoot() }, outC: t.c, k: t.t, precision: t.precision)
        let eBias = rng.floats(t.t), eSlope = rng.floats(t.t, 0...0.5)
        let dWeight = rng.floats(t.t * 9).map { $0 / 3 }, dBias = rng.floats(t.t), dSlope = rng.floats(t.t, 0...0.5)
        let pBias = rng.floats(t.c), residual = rng.floats(t.c * outPlane)

        var held: [UnsafeMutablePointer<Float>] = []
        defer { for q in held { q.deallocate() } }
        func copy(_ a: [Float]) -> UnsafeMutablePointer<Float> {
            let q = UnsafeMutablePointer<Float>.allocate(capacity: max(1, a.count))
            q.initialize(from: a, count: a.count)
            held.append(q)
            return q
        }
        func nans(_ n: Int) -> UnsafeMutablePointer<Float> { copy([Float](repeating: .nan, count: n)) }
        let input = copy(x)
        let eEpilogue = Epilogue(bias: copy(eBias), slope: copy(eSlope), residual: nil)
        let dEpilogue = Epilogue(bias: copy(dBias), slope: copy(dSlope), residual: nil)
        let pEpilogue = Epilogue(
            bias: copy(pBias), slope: nil, residual: t.residual ? UnsafePointer(copy(residual)) : nil)
        let (layered, banded) = (nans(t.c * outPlane), nans(t.c * outPlane))

        expansion.withPointers { ew in
            projection.withPointers { pw in
                let quantizedScratch = nans(
                    max(
                        quantizedConvolutionScratch(e, precision: t.precision, threads: t.threads),
                        quantizedConvolutionScratch(p, precision: t.precision, threads: t.threads)) / 4 + 16)
                let (expanded, filtered) = (nans(t.t * plane), nans(t.t * outPlane))
                quantizedConvolution(
                    e, input: input, weights: ew, range: nil, output: .float(expanded, eEpilogue),
                    scratch: UnsafeMutableRawPointer(quantizedScratch), threads: t.threads)
                depthwiseConvolution(
                    d,
                    ConvolutionOperands(
                        input: expanded, weights: copy(dWeight), inputAffine: nil, epilogue: dEpilogue,
                        output: filtered, scratch: nans(depthwiseScratch(d) * t.threads), shared: nans(1)),
                    threads: t.threads)
                quantizedConvolution(
                    p, input: filtered, weights: pw, range: nil, output: .float(layered, pEpilogue),
                    scratch: UnsafeMutableRawPointer(quantizedScratch), threads: t.threads)

                let blockScratch = quantizedBlockScratch(
                    d, expansionGroups: ew.kGroups, projectionGroups: pw.kGroups, threads: t.threads)
                quantizedBlock(
                    QuantizedBlockOperands(
                        input: input, expansion: ew, expansionEpilogue: eEpilogue, depthwise: d,
                        depthwiseWeights: copy(dWeight), depthwiseEpilogue: dEpilogue, projection: pw,
                        projectionEpilogue: pEpilogue, output: banded),
                    scratch: nans(blockScratch), threads: t.threads)
            }
        }
        let a = Array(UnsafeBufferPointer(start: layered, count: t.c * outPlane))
        let b = Array(UnsafeBufferPointer(start: banded, count: t.c * outPlane))
        #expect(a.allSatisfy { $0.isFinite })
        let differing = zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(differing == 0, "\(differing) of \(a.count) values differ")
    }
}

struct QuantizedBlockModelTests {
    /// y1 in int8 has fifteen bottlenecks: three of stride 2 (the first of each stage) and twelve of stride 1 (four
    /// at 28×28, six at 14×14, two at 7×7). On two threads those with a 28×28 or 14×14 output run by bands (the
    /// three with a 7×7 output layer by layer), on one thread all layer by layer; the embedding is the same bit for
    /// bit.
    @Test func y1Int8RunsItsBottlenecksAsBlocksWithTheSameEmbedding() throws {
        guard let symbol = TestPaths.shared("models/mobilefacenet-arcface/model-symbol.json"),
            let params = TestPaths.shared("models/mobilefacenet-arcface/model-0000.params")
        else { return }
        let path = TestModels.folder.appendingPathComponent("y1-int8-blocks.feb").path
        try ModelConverter.convertMXNet(symbol: symbol, params: params, to: path, precision: .int8)
        let net = try FaceModel(contentsOf: path, threads: 2).network
        let blocks = net.kernels.filter { if case .quantizedBlock = $0 { true } else { false } }
        #expect(blocks.count == 15)
        var rng = SeededRandom(seed: 29)
        let input = rng.floats(modelInputShape.count)
        func embedding(threads: Int) -> [UInt32] {
            let w = net.checkout(threads: threads)
            defer { net.checkin(w) }
            input.withUnsafeBufferPointer { net.input(w).update(from: $0.baseAddress!, count: input.count) }
            net.run(w, threads: threads)
            return Array(UnsafeBufferPointer(start: net.output(w), count: 128)).map(\.bitPattern)
        }
        let one = embedding(threads: 1), two = embedding(threads: 2)
        #expect(one.contains { $0 != 0 })
        #expect(one == two)
    }
}
